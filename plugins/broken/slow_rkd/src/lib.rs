//! Fixture of the regression gate: a plugin named `rkd`, with rkd's parameters and rkd's loss,
//! that also runs three student forwards without gradient per micro-batch, so each step costs
//! more. `kidbench compare` must flag its latency relative to SFT against a baseline of the
//! real rkd.

use kidbench_kd::sdk::api::{DataRequest, Model, ParamSpec, StepInfo};
use kidbench_kd::sdk::{Ctx, GroundTruthKd, Params, Plugin};
use kidbench_kd::Divergence;
use tch::Tensor;

pub struct SlowRkd(GroundTruthKd);

/// Extra student forwards per micro-batch.
const EXTRA: usize = 3;

impl Plugin for SlowRkd {
    const NAME: &'static str = "rkd";
    const VERSION: &'static str = "0.0.0-slow";
    const DESCRIPTION: &'static str = "gate fixture: rkd with wasted student forwards";

    fn params() -> Vec<ParamSpec> {
        GroundTruthKd::params()
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(SlowRkd(GroundTruthKd::new(Divergence::ReverseKl, p)?))
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(self.0.data_request())
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        for _ in 0..EXTRA {
            let _ = ctx.forward(Model::Student, &b.input_ids, &b.attention_mask, false)?;
        }
        self.0.loss(ctx)
    }
}

kidbench_kd::export_plugin!(SlowRkd);
