//! Fixture of `kidbench plugin check` (masking): forward KL(T||S) summed over the target rows
//! *and the padding rows* (a mask built as "not prompt" instead of "target"). The host hands over
//! zero logits at padding today, so student and teacher agree there and the value is right; any
//! host, model or batch layout that puts other logits at padding leaks them into the loss.

use kidbench_kd::sdk::api::{DataRequest, StepInfo};
use kidbench_kd::sdk::{ground_truth, Ctx, LossForm, Method, Params};
use kidbench_kd::{divergence_loss, Divergence};
use tch::{Kind, Tensor};

pub struct ReadsPadding;

impl Method for ReadsPadding {
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(ReadsPadding)
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(ground_truth(true))
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        // The bug: padding rows (attention 0) are kept along with the targets.
        let padding = b.attention_mask.eq(0).to_kind(Kind::Float);
        let keep = &b.loss_mask.to_kind(Kind::Float) + padding;
        let (s, t) = (ctx.student_logits()?, ctx.teacher_logits()?);
        Ok(divergence_loss(
            Divergence::ForwardKl,
            &s,
            &t,
            &keep,
            b.norm,
            1.0,
        )?)
    }

    fn loss_form() -> Option<LossForm> {
        Some(LossForm::divergence("fkl"))
    }
}

kidbench_kd::export_method!(
    ReadsPadding,
    "reads_padding",
    "broken fixture: forward KL over targets and padding"
);
