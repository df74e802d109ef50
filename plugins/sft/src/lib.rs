//! `sft`: supervised fine-tuning, token cross-entropy on the ground truth.

use kidbench_kd::sdk::{Ctx, Method, Params};
use kidbench_kd::{mle_loss, IGNORE};
use tch::Tensor;

pub struct Sft;

impl Method for Sft {
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(Sft)
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        Ok(mle_loss(&ctx.student_logits()?, &b.labels, b.norm, IGNORE)?)
    }
}

kidbench_kd::export_method!(
    Sft,
    "sft",
    "supervised fine-tuning: cross-entropy on the ground truth"
);

#[cfg(test)]
mod tests {
    use super::*;
    use kidbench_plugin_host::testing::{collate, ToyHost};
    use kidbench_plugin_host::{PluginEntry, SpecialTokens, StepInfo};

    #[test]
    fn sft_is_cross_entropy_through_the_boundary() -> anyhow::Result<()> {
        let entry = PluginEntry::from_module(kidbench_plugin_root(), "<linked>".as_ref())?;
        assert_eq!(entry.name, "sft");
        let m = entry.create(&[])?;
        let mut host = ToyHost::new(11, 1);
        let gold = collate(&[(vec![1, 4, 5, 6, 2], 2), (vec![1, 7, 8, 2], 3)], 0)?;
        let step = StepInfo {
            step: 0,
            total_steps: 10,
            micro_batch: 0,
            seed: 5,
        };
        let tokens = SpecialTokens {
            pad: 0,
            eos: 2,
            mask: 3,
        };
        let loss = host.step(&m, &gold, step, tokens)?;
        let want = mle_loss(
            &host.logits(kidbench_plugin_host::Model::Student, &gold.input_ids, true),
            &gold.labels,
            gold.norm_tokens,
            IGNORE,
        )?;
        assert!(loss.equal(&want));
        loss.backward();
        assert!(
            host.student
                .grad()
                .abs()
                .sum(tch::Kind::Float)
                .double_value(&[])
                > 0.0
        );
        assert!(entry.create(&[("x".into(), "1".into())]).is_err());
        Ok(())
    }

    #[test]
    fn passes_plugin_check() {
        kidbench_plugin_host::check::assert_conforms(kidbench_plugin_root(), &[]);
    }
}
