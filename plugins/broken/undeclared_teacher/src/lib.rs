//! Fixture of `kidbench plugin check` (data): asks for the ground truth with the student's logits
//! only, then reads the teacher's logits in `loss`. On a real host every step fails (the SDK's
//! error names the plugin); it runs only where every logit is handed over anyway.

use kidbench_kd::sdk::api::{DataRequest, StepInfo};
use kidbench_kd::sdk::{ground_truth, Ctx, Method, Params};
use kidbench_kd::{divergence_loss, Divergence};
use tch::Tensor;

pub struct UndeclaredTeacher;

impl Method for UndeclaredTeacher {
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(UndeclaredTeacher)
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        // The bug: no teacher logits requested.
        Ok(ground_truth(false))
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
            1.0,
        )?)
    }
}

kidbench_kd::export_method!(
    UndeclaredTeacher,
    "undeclared_teacher",
    "broken fixture: reads teacher logits it did not request"
);
