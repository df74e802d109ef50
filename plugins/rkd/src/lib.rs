//! `rkd`: reverse KL(S||T) on the ground truth + MLE (auxiliary cross-entropy on the ground truth).

use kidbench_kd::sdk::api::{DataRequest, ParamSpec, StepInfo};
use kidbench_kd::sdk::{float_param, ground_truth, Ctx, Params, Plugin};
use kidbench_kd::{divergence_loss, mle_loss, Divergence, IGNORE};
use tch::Tensor;

pub struct Rkd {
    temperature: f64,
    mle_weight: f64,
}

impl Plugin for Rkd {
    const NAME: &'static str = "rkd";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "reverse KL(S||T) on the ground truth + MLE";

    fn params() -> Vec<ParamSpec> {
        vec![
            float_param(
                "temperature",
                1.0,
                0.01,
                100.0,
                "softmax temperature of both sides",
            ),
            float_param(
                "mle_weight",
                1.0,
                0.0,
                100.0,
                "weight of the MLE loss on the ground truth",
            ),
        ]
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(Rkd {
            temperature: p.f64("temperature")?,
            mle_weight: p.f64("mle_weight")?,
        })
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(ground_truth(true))
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let s = ctx.student_logits();
        let t = ctx.teacher_logits()?;
        let div = divergence_loss(
            Divergence::ReverseKl,
            &s,
            &t,
            &b.loss_mask,
            b.norm,
            self.temperature,
        )?;
        if self.mle_weight == 0.0 {
            return Ok(div);
        }
        Ok(div + mle_loss(&s, &b.labels, b.norm, IGNORE)? * self.mle_weight)
    }
}

kidbench_kd::export_plugin!(Rkd);

#[cfg(test)]
mod tests {
    use super::*;
    use kidbench_plugin_host::testing::{collate, ToyHost};
    use kidbench_plugin_host::{Model, PluginEntry, SpecialTokens, StepInfo};

    #[test]
    fn rkd_is_divergence_plus_mle() -> anyhow::Result<()> {
        let entry = PluginEntry::from_module(kidbench_plugin_root(), "<linked>".as_ref())?;
        let m = entry.create(&[("temperature".into(), "2".into())])?;
        let mut host = ToyHost::new(13, 2);
        let gold = collate(&[(vec![1, 4, 5, 6, 2], 2), (vec![1, 7, 8, 9, 10, 2], 3)], 0)?;
        let step = StepInfo {
            step: 3,
            total_steps: 10,
            micro_batch: 0,
            seed: 9,
        };
        let tokens = SpecialTokens {
            pad: 0,
            eos: 2,
            mask: 3,
        };
        let loss = host.step(&m, &gold, step, tokens)?;
        let s = host.logits(Model::Student, &gold.input_ids, true);
        let t = host.logits(Model::Teacher, &gold.input_ids, false);
        let want = divergence_loss(
            Divergence::ReverseKl,
            &s,
            &t,
            &gold.loss_mask,
            gold.norm_tokens,
            2.0,
        )? + mle_loss(&s, &gold.labels, gold.norm_tokens, IGNORE)?;
        assert!(loss.allclose(&want, 1e-6, 1e-7, false), "{loss} vs {want}");
        let e = entry
            .create(&[("temperature".into(), "0".into())])
            .expect_err("range")
            .to_string();
        assert!(e.contains("[0.01, 100]"), "{e}");
        Ok(())
    }
}
