//! Fixture: a plugin that panics in `create`, `data_request` or `loss` (`where=`); the SDK catches
//! the panic and the host reports it as an error naming the plugin.

use kidbench_kd::sdk::api::{DataRequest, ParamSpec, StepInfo};
use kidbench_kd::sdk::{choice_param, ground_truth, Ctx, Params, Plugin};

pub struct Panics(String);

impl Plugin for Panics {
    const NAME: &'static str = "panics";
    const VERSION: &'static str = "0.0.0";
    const DESCRIPTION: &'static str = "broken fixture: panics";
    fn params() -> Vec<ParamSpec> {
        vec![choice_param(
            "where",
            "loss",
            &["create", "data_request", "loss"],
            "where to panic",
        )]
    }
    fn new(p: &Params) -> anyhow::Result<Self> {
        let w = p.text("where")?.to_string();
        if w == "create" {
            panic!("fixture panic in create");
        }
        Ok(Panics(w))
    }
    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        if self.0 == "data_request" {
            panic!("fixture panic in data_request");
        }
        Ok(ground_truth(false))
    }
    fn loss(&mut self, _: &mut Ctx<'_>) -> anyhow::Result<tch::Tensor> {
        panic!("fixture panic in loss");
    }
}

kidbench_kd::export_plugin!(Panics);
