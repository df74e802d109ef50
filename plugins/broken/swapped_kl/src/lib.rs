//! Fixture of `kidbench plugin check` (divergence): described and declared as forward
//! KL(T||S) + MLE like `fkd`, with fkd's parameters, but it computes reverse KL(S||T): the
//! argument order of a KL helper swapped. TRL PR #4935 shipped exactly this (its "forward KL"
//! called `F.kl_div(student, teacher)`, which is KL(teacher || student) read the other way).
//! Every other property holds: only a comparison with the closed form shows it.

use kidbench_kd::sdk::api::{DataRequest, ParamSpec, StepInfo};
use kidbench_kd::sdk::{Ctx, GroundTruthKd, LossForm, Method, Params};
use kidbench_kd::Divergence;
use tch::Tensor;

pub struct SwappedKl(GroundTruthKd);

impl Method for SwappedKl {
    fn params() -> Vec<ParamSpec> {
        GroundTruthKd::params()
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        // The bug: the other direction.
        Ok(SwappedKl(GroundTruthKd::new(Divergence::ReverseKl, p)?))
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(self.0.data_request())
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        self.0.loss(ctx)
    }

    fn loss_form() -> Option<LossForm> {
        Some(GroundTruthKd::loss_form("fkl"))
    }
}

kidbench_kd::export_method!(
    SwappedKl,
    "swapped_kl",
    "broken fixture: forward KL(T||S) on the ground truth + MLE (computes reverse KL)"
);
