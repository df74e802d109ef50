//! Fixture: a plugin that misreports its build (wrong_torch); the host must refuse to load it.

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{ROk, RResult, RString};
use kidbench_kd::sdk::api::{ParamSpec, PluginInfo, PluginMod, PluginModRef};
use kidbench_kd::sdk::{Ctx, Params, Plugin};

pub struct Dummy;

impl Plugin for Dummy {
    const NAME: &'static str = "wrong_torch";
    const VERSION: &'static str = "0.0.0";
    const DESCRIPTION: &'static str = "broken fixture";
    fn params() -> Vec<ParamSpec> {
        Vec::new()
    }
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(Dummy)
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<tch::Tensor> {
        Ok(ctx.student_logits()?.sum(tch::Kind::Float))
    }
}

extern "C" fn info() -> RResult<PluginInfo, RString> {
    let mut i = kidbench_kd::sdk::info::<Dummy>();
    i.libtorch_version = "0.0.1+bogus".into();
    ROk(i)
}

#[abi_stable::export_root_module]
pub fn root() -> PluginModRef {
    PluginMod {
        info,
        create: kidbench_kd::sdk::module::<Dummy>().create(),
    }
    .leak_into_prefix()
}
