//! `imitkd` (Lin et al. 2020, imitation-learning KD): forward KL(T||S) on a mixture of
//! ground-truth and student-generated sequences. The student's share grows over training:
//! each micro-batch is student-sampled with probability `final_share * progress` (linear
//! schedule) or `final_share * progress^2` (`schedule=quadratic`), else it is the ground truth.
//! The mixture is per micro-batch (the host samples whole batches).

use kidbench_kd::sdk::api::{DataRequest, ParamSpec, StepInfo};
use kidbench_kd::sdk::{
    choice_param, float_param, int_param, progress, sampling, student_samples_with_prob, Ctx,
    Method, Params,
};
use kidbench_kd::{divergence_loss, Divergence};
use tch::Tensor;

pub struct ImitKd {
    final_share: f64,
    quadratic: bool,
    temperature: f64,
    sample_temperature: f64,
    max_new_tokens: u32,
}

impl ImitKd {
    /// Probability that the micro-batch of `step` is student-generated.
    pub fn student_share(&self, step: &StepInfo) -> f64 {
        let p = progress(step);
        self.final_share * if self.quadratic { p * p } else { p }
    }
}

impl Method for ImitKd {
    fn params() -> Vec<ParamSpec> {
        vec![
            float_param(
                "final_share",
                1.0,
                0.0,
                1.0,
                "student share at the end of training",
            ),
            choice_param(
                "schedule",
                "linear",
                &["linear", "quadratic"],
                "growth of the student share",
            ),
            float_param(
                "temperature",
                1.0,
                0.01,
                100.0,
                "softmax temperature of the KL",
            ),
            float_param(
                "sample_temperature",
                1.0,
                0.0,
                100.0,
                "student sampling temperature (0 = greedy)",
            ),
            int_param(
                "max_new_tokens",
                128,
                1,
                4096,
                "length limit of student samples",
            ),
        ]
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(ImitKd {
            final_share: p.f64("final_share")?,
            quadratic: p.text("schedule")? == "quadratic",
            temperature: p.f64("temperature")?,
            sample_temperature: p.f64("sample_temperature")?,
            max_new_tokens: u32::try_from(p.i64("max_new_tokens")?)?,
        })
    }

    fn data_request(&mut self, step: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(student_samples_with_prob(
            step,
            self.student_share(step),
            sampling(self.sample_temperature, self.max_new_tokens),
        ))
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let (s, t) = (ctx.student_logits()?, ctx.teacher_logits()?);
        Ok(divergence_loss(
            Divergence::ForwardKl,
            &s,
            &t,
            &b.loss_mask,
            b.norm,
            self.temperature,
        )?)
    }
}

kidbench_kd::export_method!(
    ImitKd,
    "imitkd",
    "forward KL on ground truth mixed with student samples, the student share growing"
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every conformance property of `kidbench plugin check` holds.
    #[test]
    fn passes_plugin_check() {
        kidbench_plugin_host::check::assert_conforms(kidbench_plugin_root(), &[]);
    }
    use kidbench_plugin_host::testing::{collate, ToyHost};
    use kidbench_plugin_host::{DataSource, Model, PluginEntry, SpecialTokens};

    #[test]
    fn student_share_grows_over_training() -> anyhow::Result<()> {
        let entry = PluginEntry::from_module(kidbench_plugin_root(), "<linked>".as_ref())?;
        let m = entry.create(&[])?;
        let share = |lo: u64, hi: u64| -> anyhow::Result<f64> {
            let mut n = 0;
            for i in lo..hi {
                let st = StepInfo {
                    step: i,
                    total_steps: 1000,
                    micro_batch: 0,
                    seed: 77 + i,
                };
                n += (m.data_request(&st)?.source == DataSource::StudentSamples) as usize;
            }
            Ok(n as f64 / (hi - lo) as f64)
        };
        let (early, late) = (share(0, 200)?, share(800, 1000)?);
        assert!(early < 0.2 && late > 0.8, "{early} {late}");
        let first = StepInfo {
            step: 0,
            total_steps: 1000,
            micro_batch: 0,
            seed: 1,
        };
        assert_eq!(m.data_request(&first)?.source, DataSource::GroundTruth);

        // the loss is FKL on whatever batch was handed (here: student samples at the end)
        let mut host = ToyHost::new(13, 4);
        let samples = collate(&[(vec![1, 4, 9, 9, 2], 2)], 0)?;
        let (ids, mask, norm) = (
            samples.input_ids.copy(),
            samples.loss_mask.copy(),
            samples.norm_tokens,
        );
        host.student_samples = Some(samples);
        let gold = collate(&[(vec![1, 4, 5, 6, 2], 2)], 0)?;
        let last = StepInfo {
            step: 1000,
            total_steps: 1000,
            micro_batch: 0,
            seed: 3,
        };
        let loss = host.step(
            &m,
            &gold,
            last,
            SpecialTokens {
                pad: 0,
                eos: 2,
                mask: 3,
            },
        )?;
        let s = host.logits(Model::Student, &ids, true);
        let t = host.logits(Model::Teacher, &ids, false);
        let want = divergence_loss(Divergence::ForwardKl, &s, &t, &mask, norm, 1.0)?;
        assert!(loss.equal(&want));
        Ok(())
    }
}
