//! Fixture of the regression gate: a plugin named `rkd`, with rkd's parameters, whose loss adds
//! noise that reaches the gradient (a random direction in logit space at every step), so the
//! student it trains is worse than rkd's. `kidbench compare` must flag it against a baseline of
//! the real rkd.

use kidbench_kd::sdk::api::{DataRequest, ParamSpec, StepInfo};
use kidbench_kd::sdk::{Ctx, GroundTruthKd, Params, Plugin};
use kidbench_kd::Divergence;
use tch::{Kind, Tensor};

pub struct WorseRkd(GroundTruthKd);

/// Weight of the noise term against rkd's loss.
const NOISE: f64 = 30.0;

impl Plugin for WorseRkd {
    const NAME: &'static str = "rkd";
    const VERSION: &'static str = "0.0.0-worse";
    const DESCRIPTION: &'static str = "gate fixture: rkd plus gradient noise";

    fn params() -> Vec<ParamSpec> {
        GroundTruthKd::params()
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(WorseRkd(GroundTruthKd::new(Divergence::ReverseKl, p)?))
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(self.0.data_request())
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let base = self.0.loss(ctx)?;
        let s = ctx.student_logits()?;
        let b = ctx.batch();
        let rows = b.loss_mask.to_kind(Kind::Float).unsqueeze(-1);
        let noise = Tensor::randn(s.size(), (Kind::Float, s.device()));
        let push = (s.log_softmax(-1, Kind::Float) * noise * rows).sum(Kind::Float) / b.norm;
        Ok(base + push * NOISE)
    }
}

kidbench_kd::export_plugin!(WorseRkd);
