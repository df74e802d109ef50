//! The check on methods linked into this test binary (no dlopen): a conforming one passes, and
//! faults the fixtures in plugins/broken/ do not cover are attributed to their property.
//! `tests/check.rs` runs the real cdylibs.

use kidbench_kd::sdk::api::{DataRequest, ParamSpec, StepInfo};
use kidbench_kd::sdk::{
    ground_truth, module, param, Ctx, Exported, FixedKd, Fkl, LossForm, Meta, Method, Params,
};
use kidbench_kd::{divergence_loss, Divergence};
use tch::{Kind, Tensor};

use super::*;

struct Named;
impl Meta for Named {
    const NAME: &'static str = "linked";
    const VERSION: &'static str = "0.0.0";
    const DESCRIPTION: &'static str = "a method linked into the test";
}

fn report<T: Method>(params: &[(&str, &str)]) -> Report {
    let r = check_module(module::<Exported<Named, T>>(), params);
    eprintln!("{r}\n");
    r
}

#[test]
fn a_conforming_method_passes_every_property() {
    let r = report::<FixedKd<Fkl>>(&[("temperature", "0.5")]);
    assert!(r.passed(), "{r}");
    assert!(r.findings.iter().all(|f| f.outcome == Outcome::Pass), "{r}");
    let text = r.to_string();
    assert!(
        text.starts_with("plugin check: linked with temperature=0.5 (<linked>)\n"),
        "{text}"
    );
    assert!(text.ends_with("9 passed, 0 failed, 0 skipped"), "{text}");
    for p in Property::ALL {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("PASS {:<13} ", p.name()))),
            "{p}: {text}"
        );
    }
}

/// Forward KL scaled by noise from torch's global generator (the gate's `worse_rkd` without its
/// -inf hazard): nothing but determinism may fail.
struct GlobalRng(kidbench_kd::sdk::GroundTruthKd);

impl Method for GlobalRng {
    fn params() -> Vec<ParamSpec> {
        kidbench_kd::sdk::GroundTruthKd::params()
    }
    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(GlobalRng(kidbench_kd::sdk::GroundTruthKd::new(
            Divergence::ForwardKl,
            p,
        )?))
    }
    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(ground_truth(true))
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let base = self.0.loss(ctx)?;
        let noise = Tensor::randn([1], (Kind::Float, tch::Device::Cpu)).squeeze();
        Ok(&base * (noise * 1e-3 + 1.0))
    }
}

#[test]
fn randomness_from_torchs_generator_fails_determinism_only() {
    let r = report::<GlobalRng>(&[]);
    assert_eq!(r.failures(), [Property::Determinism], "{r}");
    let n = r.finding(Property::Normalization).expect("normalization");
    assert!(n.measured.contains("split not compared exactly"), "{n}");
}

/// A declaration that names a parameter the method does not have.
struct BadForm;

impl Method for BadForm {
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(BadForm)
    }
    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(ground_truth(true))
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let (s, t) = (ctx.student_logits()?, ctx.teacher_logits()?);
        Ok(divergence_loss(
            Divergence::ReverseKl,
            &s,
            &t,
            &b.loss_mask,
            b.norm,
            1.0,
        )?)
    }
    fn loss_form() -> Option<LossForm> {
        Some(LossForm::divergence("rkl").temperature(param("temperature")))
    }
}

#[test]
fn a_declaration_naming_no_parameter_fails_divergence() {
    let r = report::<BadForm>(&[]);
    assert_eq!(r.failures(), [Property::Divergence], "{r}");
    let f = r
        .finding(Property::Divergence)
        .expect("divergence")
        .to_string();
    assert!(
        f.contains("refers to $temperature, which is not a parameter"),
        "{f}"
    );
}

/// The teacher asked for with grad: the host never gives it, and the check says so.
struct TeacherGrad;

impl Method for TeacherGrad {
    fn new(_: &Params) -> anyhow::Result<Self> {
        Ok(TeacherGrad)
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let s = ctx.student_logits()?;
        let t = ctx.forward_rows(
            kidbench_plugin_api::Model::Teacher,
            &b.input_ids,
            &b.attention_mask,
            &b.loss_mask,
            true,
        )?;
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

#[test]
fn asking_for_teacher_gradients_fails_loss() {
    let r = report::<TeacherGrad>(&[]);
    assert_eq!(r.failures(), [Property::Loss], "{r}");
    let f = r.finding(Property::Loss).expect("loss").to_string();
    assert!(
        f.contains("asked for 1 teacher forward(s) with grad"),
        "{f}"
    );
}
