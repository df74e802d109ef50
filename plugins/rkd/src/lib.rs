//! `rkd`: reverse KL(S||T) on the ground truth + MLE (auxiliary cross-entropy on the ground truth).

use kidbench_kd::sdk::api::{DataRequest, ParamSpec, StepInfo};
use kidbench_kd::sdk::{Ctx, GroundTruthKd, Params, Plugin};
use kidbench_kd::Divergence;
use tch::Tensor;

pub struct Rkd(GroundTruthKd);

impl Plugin for Rkd {
    const NAME: &'static str = "rkd";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "reverse KL(S||T) on the ground truth + MLE";

    fn params() -> Vec<ParamSpec> {
        GroundTruthKd::params()
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(Rkd(GroundTruthKd::new(Divergence::ReverseKl, p)?))
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(self.0.data_request())
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        self.0.loss(ctx)
    }
}

kidbench_kd::export_plugin!(Rkd);

#[cfg(test)]
mod tests {
    use super::*;
    use kidbench_kd::{divergence_loss, mle_loss, IGNORE};
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
