//! Fixture of `kidbench plugin check` (stability): forward KL(T||S) written as softmax, then
//! log. On ordinary logits it equals the closed form (it passes `divergence`); at logits of ±1e4
//! or with `-inf` entries a probability is exactly 0, its log is `-inf`, and `0 · -inf` is NaN.
//! The shared `kidbench_kd::div` works from log-softmax and drops such entries instead.

use kidbench_kd::masked_loss;
use kidbench_kd::sdk::api::{DataRequest, StepInfo};
use kidbench_kd::sdk::{ground_truth, Ctx, LossForm, Method, Params};
use tch::{Kind, Tensor};

pub struct UnstableKl;

impl Method for UnstableKl {
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(UnstableKl)
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(ground_truth(true))
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let p_s = ctx.student_logits()?.softmax(-1, Kind::Float);
        let p_t = ctx.teacher_logits()?.softmax(-1, Kind::Float);
        // The bug: log of a probability that can underflow to 0.
        let per_token = (&p_t * (p_t.log() - p_s.log())).sum_dim_intlist(-1, false, Kind::Float);
        Ok(masked_loss(&per_token, &b.loss_mask, b.norm)?)
    }

    fn loss_form() -> Option<LossForm> {
        Some(LossForm::divergence("fkl"))
    }
}

kidbench_kd::export_method!(
    UnstableKl,
    "unstable_kl",
    "broken fixture: forward KL through softmax, then log"
);
