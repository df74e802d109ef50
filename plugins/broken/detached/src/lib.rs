//! Fixture of `kidbench plugin check` (loss): cross-entropy on the ground truth computed from
//! *detached* student logits (a `.detach()` meant for a logged metric that ended up in the loss).
//! The value is right, finite and masked; the student never learns.

use kidbench_kd::sdk::{Ctx, LossForm, Method, Params};
use kidbench_kd::{mle_loss, IGNORE};
use tch::Tensor;

pub struct Detached;

impl Method for Detached {
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(Detached)
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        // The bug: no graph back to the student.
        let s = ctx.student_logits()?.detach();
        Ok(mle_loss(&s, &b.labels, b.norm, IGNORE)?)
    }

    fn loss_form() -> Option<LossForm> {
        Some(LossForm::mle(1.0))
    }
}

kidbench_kd::export_method!(
    Detached,
    "detached",
    "broken fixture: a loss without a gradient"
);
