//! Fixture of `kidbench plugin check` (parameters): fkd's method and parameters, behind a root
//! module whose `create` drops the parameter names it does not know before validating the rest.
//! A misspelled `temprature=2` then trains silently at the default temperature.

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RResult, RString, RVec, Tuple2};
use kidbench_kd::sdk::api::{DataRequest, MethodObj, ParamSpec, PluginMod, PluginModRef, StepInfo};
use kidbench_kd::sdk::{Ctx, GroundTruthKd, LossForm, Params, Plugin};
use kidbench_kd::Divergence;
use tch::Tensor;

pub struct Lenient(GroundTruthKd);

impl Plugin for Lenient {
    const NAME: &'static str = "lenient_params";
    const VERSION: &'static str = "0.0.0";
    const DESCRIPTION: &'static str = "broken fixture: ignores unknown parameters";

    fn params() -> Vec<ParamSpec> {
        GroundTruthKd::params()
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(Lenient(GroundTruthKd::new(Divergence::ForwardKl, p)?))
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

extern "C" fn create(params: RVec<Tuple2<RString, RString>>) -> RResult<MethodObj, RString> {
    let known: Vec<String> = Lenient::params()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    // The bug: unknown names are dropped instead of refused.
    let kept: RVec<Tuple2<RString, RString>> = params
        .into_iter()
        .filter(|Tuple2(k, _)| known.iter().any(|n| n == k.as_str()))
        .collect();
    (kidbench_kd::sdk::module::<Lenient>().create())(kept)
}

#[abi_stable::export_root_module]
pub fn root() -> PluginModRef {
    PluginMod {
        info: kidbench_kd::sdk::module::<Lenient>().info(),
        create,
    }
    .leak_into_prefix()
}
