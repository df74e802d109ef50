//! Fixture: a plugin whose loss is NaN; the host must refuse the loss.

use kidbench_kd::sdk::api::ParamSpec;
use kidbench_kd::sdk::{Ctx, Params, Plugin};

pub struct Nan;

impl Plugin for Nan {
    const NAME: &'static str = "nan";
    const VERSION: &'static str = "0.0.0";
    const DESCRIPTION: &'static str = "broken fixture: NaN loss";
    fn params() -> Vec<ParamSpec> {
        Vec::new()
    }
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(Nan)
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<tch::Tensor> {
        Ok(ctx.student_logits()?.sum(tch::Kind::Float) * f64::NAN)
    }
}

kidbench_kd::export_plugin!(Nan);
