//! `gkd` (Agarwal et al. 2024, generalized knowledge distillation): with probability `lambda` the
//! micro-batch's targets are sampled from the current student (temperature, no top-k/top-p),
//! otherwise the ground truth is used; the loss is a token divergence (fkl | rkl | jsd(beta))
//! between student and teacher on those sequences. The paper's main setting is `rkl`.

use kidbench_kd::sdk::api::{DataRequest, ParamSpec, StepInfo};
use kidbench_kd::sdk::{
    choice_param, float_param, int_param, param, sampling, student_samples_with_prob, Ctx,
    LossForm, Method, Params,
};
use kidbench_kd::{divergence_loss, Divergence};
use tch::Tensor;

pub struct Gkd {
    lambda: f64,
    divergence: Divergence,
    temperature: f64,
    max_new_tokens: u32,
}

impl Method for Gkd {
    fn params() -> Vec<ParamSpec> {
        vec![
            float_param(
                "lambda",
                0.5,
                0.0,
                1.0,
                "probability that a micro-batch is student-sampled",
            ),
            choice_param(
                "divergence",
                "rkl",
                &["fkl", "rkl", "jsd"],
                "token divergence",
            ),
            float_param(
                "beta",
                0.5,
                0.0,
                1.0,
                "JSD weight: 0 = forward KL, 1 = reverse KL",
            ),
            float_param(
                "temperature",
                1.0,
                0.01,
                100.0,
                "sampling and softmax temperature",
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
        Ok(Gkd {
            lambda: p.f64("lambda")?,
            divergence: Divergence::parse(p.text("divergence")?, p.f64("beta")?)?,
            temperature: p.f64("temperature")?,
            max_new_tokens: u32::try_from(p.i64("max_new_tokens")?)?,
        })
    }

    fn data_request(&mut self, step: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(student_samples_with_prob(
            step,
            self.lambda,
            sampling(self.temperature, self.max_new_tokens),
        ))
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let (s, t) = (ctx.student_logits()?, ctx.teacher_logits()?);
        Ok(divergence_loss(
            self.divergence,
            &s,
            &t,
            &b.loss_mask,
            b.norm,
            self.temperature,
        )?)
    }

    /// `divergence(beta)` at `temperature` on whichever batch was drawn; no MLE term.
    fn loss_form() -> Option<LossForm> {
        Some(
            LossForm::divergence(param("divergence"))
                .beta(param("beta"))
                .temperature(param("temperature")),
        )
    }
}

kidbench_kd::export_method!(
    Gkd,
    "gkd",
    "generalized KD: on-policy student samples with probability lambda; fkl|rkl|jsd(beta)"
);

#[cfg(test)]
mod tests {
    use super::*;
    use kidbench_plugin_host::testing::{collate, ToyHost};
    use kidbench_plugin_host::{
        DataSource, Model, PluginEntry, PluginMethod, SpecialTokens, StepInfo,
    };

    fn create(kv: &[(&str, &str)]) -> anyhow::Result<PluginMethod> {
        let entry = PluginEntry::from_module(kidbench_plugin_root(), "<linked>".as_ref())?;
        let kv: Vec<(String, String)> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(entry.create(&kv)?)
    }

    fn setup() -> anyhow::Result<ToyHost> {
        let mut host = ToyHost::new(13, 4);
        host.student_samples = Some(collate(
            &[(vec![1, 4, 9, 9, 2], 2), (vec![1, 7, 8, 11, 12, 2], 3)],
            0,
        )?);
        Ok(host)
    }

    const TOK: SpecialTokens = SpecialTokens {
        pad: 0,
        eos: 2,
        mask: 3,
    };

    fn step(i: u64) -> StepInfo {
        StepInfo {
            step: i,
            total_steps: 100,
            micro_batch: 0,
            seed: 1000 + i,
        }
    }

    #[test]
    fn lambda_zero_is_the_divergence_on_ground_truth() -> anyhow::Result<()> {
        let gold = collate(&[(vec![1, 4, 5, 6, 2], 2), (vec![1, 7, 8, 2], 3)], 0)?;
        for (div, d) in [
            ("fkl", Divergence::ForwardKl),
            ("rkl", Divergence::ReverseKl),
            ("jsd", Divergence::Jsd(0.5)),
        ] {
            let m = create(&[("lambda", "0"), ("divergence", div)])?;
            let mut host = setup()?;
            for i in 0..5 {
                let loss = host.step(&m, &gold, step(i), TOK)?;
                let s = host.logits(Model::Student, &gold.input_ids, true);
                let t = host.logits(Model::Teacher, &gold.input_ids, false);
                let want = divergence_loss(d, &s, &t, &gold.loss_mask, gold.norm_tokens, 1.0)?;
                assert!(loss.equal(&want), "{div}");
            }
            assert!(host.samples.is_empty());
        }
        Ok(())
    }

    #[test]
    fn jsd_endpoints_equal_fkl_and_rkl() -> anyhow::Result<()> {
        let gold = collate(&[(vec![1, 4, 5, 6, 2], 2)], 0)?;
        let run = |kv: &[(&str, &str)]| -> anyhow::Result<Tensor> {
            let m = create(kv)?;
            setup()?.step(&m, &gold, step(7), TOK)
        };
        let fkl = run(&[("lambda", "0.5"), ("divergence", "fkl")])?;
        let rkl = run(&[("lambda", "0.5"), ("divergence", "rkl")])?;
        assert!(run(&[("lambda", "0.5"), ("divergence", "jsd"), ("beta", "0")])?.equal(&fkl));
        assert!(run(&[("lambda", "0.5"), ("divergence", "jsd"), ("beta", "1")])?.equal(&rkl));
        Ok(())
    }

    #[test]
    fn lambda_one_samples_from_the_student_every_step() -> anyhow::Result<()> {
        let gold = collate(&[(vec![1, 4, 5, 6, 2], 2)], 0)?;
        let m = create(&[
            ("lambda", "1"),
            ("temperature", "1"),
            ("max_new_tokens", "7"),
        ])?;
        let mut host = setup()?;
        for i in 0..4 {
            let _ = host.step(&m, &gold, step(i), TOK)?;
        }
        assert_eq!(host.samples.len(), 4);
        let (model, spec) = host.samples[0];
        assert_eq!(model, Model::Student);
        assert_eq!(
            (
                spec.temperature,
                spec.top_k,
                spec.top_p,
                spec.max_new_tokens
            ),
            (1.0, 0, 1.0, 7)
        );
        // lambda = 0.5: about half the steps are on-policy, and the choice is seeded
        let m = create(&[("lambda", "0.5")])?;
        let mut host = setup()?;
        let on: Vec<bool> = (0..200)
            .map(|i| {
                m.data_request(&step(i))
                    .map(|r| r.source == DataSource::StudentSamples)
            })
            .collect::<Result<_, _>>()?;
        let n = on.iter().filter(|x| **x).count();
        assert!((60..140).contains(&n), "{n}");
        let again: Vec<bool> = (0..200)
            .map(|i| {
                m.data_request(&step(i))
                    .map(|r| r.source == DataSource::StudentSamples)
            })
            .collect::<Result<_, _>>()?;
        assert_eq!(on, again);
        let _ = host.step(&m, &gold, step(0), TOK)?;
        Ok(())
    }

    /// Every property, and each divergence choice equal to its closed form on the check's
    /// batch (on-policy samples included: lambda = 1).
    #[test]
    fn passes_plugin_check_at_every_divergence() {
        use kidbench_plugin_host::check::{assert_conforms, Property};
        for lambda in ["0.5", "1"] {
            let r = assert_conforms(
                kidbench_plugin_root(),
                &[("lambda", lambda), ("beta", "0.3")],
            );
            let d = r.finding(Property::Divergence).expect("divergence");
            for key in ["fkl", "rkl", "jsd"] {
                assert!(d.get(&format!("{key}.expected")).is_some(), "{key}: {r}");
            }
        }
    }
}
