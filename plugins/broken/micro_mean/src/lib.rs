//! Fixture of `kidbench plugin check` (normalization): forward KL(T||S) on the ground truth,
//! divided by the micro-batch's own target count instead of `norm_tokens` (the count of the whole
//! global batch). Each micro-batch becomes a per-token mean, so the accumulated gradient depends
//! on how a batch is split for gradient accumulation: TRL #4719, where GKDTrainer reduced each
//! micro-batch with its own token count. On an unsplit batch it equals the declared closed form.

use kidbench_kd::sdk::api::{DataRequest, StepInfo};
use kidbench_kd::sdk::{ground_truth, Ctx, LossForm, Method, Params};
use kidbench_kd::{divergence_loss, Divergence};
use tch::{Kind, Tensor};

pub struct MicroMean;

impl Method for MicroMean {
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(MicroMean)
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(ground_truth(true))
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        // The bug: this micro-batch's own target count, not `b.norm`.
        let local = b.loss_mask.sum(Kind::Double).double_value(&[]);
        let (s, t) = (ctx.student_logits()?, ctx.teacher_logits()?);
        Ok(divergence_loss(
            Divergence::ForwardKl,
            &s,
            &t,
            &b.loss_mask,
            local,
            1.0,
        )?)
    }

    fn loss_form() -> Option<LossForm> {
        Some(LossForm::divergence("fkl"))
    }
}

kidbench_kd::export_method!(
    MicroMean,
    "micro_mean",
    "broken fixture: forward KL averaged per micro-batch"
);
