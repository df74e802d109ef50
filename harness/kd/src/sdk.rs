//! Plugin-side SDK. A plugin is its method and nothing else: implement [`Method`] (parameters,
//! construction, the data each micro-batch needs, the loss), then export it with its name and
//! description:
//!
//! ```ignore
//! kidbench_kd::export_method!(Skewkl, "skewkl", "skew KL(T || a T + (1-a) S) on the ground truth + MLE");
//! ```
//!
//! in the plugin crate (which depends on `abi_stable` and is built as `cdylib` + `rlib`). The
//! macro supplies the version (the crate's `CARGO_PKG_VERSION`) and the root module. A method
//! that is a fixed divergence on the ground truth plus MLE needs no code of its own:
//! `export_method!(FixedKd<Fkl>, "fkd", "...")`.
//!
//! The SDK validates parameters against [`Method::params`], catches panics in every exported
//! function (returning them as errors), and wraps the host context in a safe [`Ctx`].
//! [`Plugin`] + [`export_plugin!`](crate::export_plugin) is the same thing with the name,
//! version and description written as associated constants.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use abi_stable;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RErr, ROk, RResult, RString, RVec, Tuple2};
pub use kidbench_plugin_api as api;
use kidbench_plugin_api::{
    BatchOwned, DataRequest, DataSource, HostCtx, MethodObj, Model, ParamKind, ParamSpec,
    PluginInfo, PluginMod, PluginModRef, SampleSpec, SpecialTokens, StepInfo, TensorOwned,
    TensorRef, ABI_VERSION, LIBTORCH_VERSION, TCH_VERSION,
};
use rand::SeedableRng;
use tch::Tensor;

/// A KD method, written as plain Rust.
pub trait Plugin: Sized + Send + 'static {
    const NAME: &'static str;
    const VERSION: &'static str;
    const DESCRIPTION: &'static str;
    /// Parameters with defaults and valid ranges.
    fn params() -> Vec<ParamSpec>;
    /// Builds the method from validated parameters.
    fn new(params: &Params) -> anyhow::Result<Self>;
    /// The data this micro-batch needs (default: the ground truth, no teacher logits).
    fn data_request(&mut self, _step: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(ground_truth(false))
    }
    /// The scalar loss of this micro-batch, divided by `ctx.batch().norm`.
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor>;
    /// What the loss is in the shared closed forms, when it is one (see [`LossForm`]).
    fn loss_form() -> Option<LossForm> {
        None
    }
}

/// A KD method and nothing else: what [`export_method!`](crate::export_method) exports under a
/// name and a description. The same as [`Plugin`] without the three constants.
pub trait Method: Sized + Send + 'static {
    /// Parameters with defaults and valid ranges (default: none).
    fn params() -> Vec<ParamSpec> {
        Vec::new()
    }
    /// Builds the method from validated parameters (known names, values in range, defaults
    /// filled in).
    fn new(params: &Params) -> anyhow::Result<Self>;
    /// The data this micro-batch needs (default: the ground truth, no teacher logits).
    fn data_request(&mut self, _step: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(ground_truth(false))
    }
    /// The scalar loss of this micro-batch: a sum over target tokens divided by
    /// `ctx.batch().norm`.
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor>;
    /// What the loss is in the shared closed forms, when it is one: `kidbench plugin check`
    /// then compares the loss with that closed form (see [`LossForm`]).
    fn loss_form() -> Option<LossForm> {
        None
    }
}

/// The name, version and description [`export_method!`](crate::export_method) gives a
/// [`Method`] (implemented by the macro in the plugin crate).
#[doc(hidden)]
pub trait Meta: 'static {
    const NAME: &'static str;
    const VERSION: &'static str;
    const DESCRIPTION: &'static str;
}

/// `T` exported under the name and description of `M`: the [`Plugin`] that
/// [`export_method!`](crate::export_method) builds.
pub struct Exported<M, T> {
    method: T,
    meta: PhantomData<fn() -> M>,
}

impl<M: Meta, T: Method> Plugin for Exported<M, T> {
    const NAME: &'static str = M::NAME;
    const VERSION: &'static str = M::VERSION;
    const DESCRIPTION: &'static str = M::DESCRIPTION;

    fn params() -> Vec<ParamSpec> {
        T::params()
    }
    fn new(params: &Params) -> anyhow::Result<Self> {
        Ok(Exported {
            method: T::new(params)?,
            meta: PhantomData,
        })
    }
    fn data_request(&mut self, step: &StepInfo) -> anyhow::Result<DataRequest> {
        self.method.data_request(step)
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        self.method.loss(ctx)
    }
    fn loss_form() -> Option<LossForm> {
        T::loss_form()
    }
}

// ---------------------------------------------------------------- the declared loss

/// Prefix of the line of [`PluginInfo::description`] that carries a [`LossForm`]. ABI v4 has no
/// field for it, so it travels as the description's last line; the host strips it from the
/// description it shows.
pub const LOSS_FORM_TAG: &str = "kidbench-loss-form:";

/// A value in a [`LossForm`]: fixed, or the value of one of the method's parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum FormArg {
    Fixed(String),
    Param(String),
}

/// The value of parameter `name` (as given, else its default).
pub fn param(name: &str) -> FormArg {
    FormArg::Param(name.to_string())
}

impl From<&str> for FormArg {
    fn from(s: &str) -> Self {
        FormArg::Fixed(s.to_string())
    }
}

impl From<f64> for FormArg {
    fn from(x: f64) -> Self {
        FormArg::Fixed(x.to_string())
    }
}

impl std::fmt::Display for FormArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormArg::Fixed(v) => f.write_str(v),
            FormArg::Param(p) => write!(f, "${p}"),
        }
    }
}

/// A method's loss written in the closed forms of [`crate::div`], on the batch the method asked
/// for (its student and teacher logits, its labels, its `norm_tokens`):
///
/// `divergence_loss(divergence(beta), S, T, loss_mask, norm, temperature)
///  + mle_weight · mle_loss(S, labels, norm)`
///
/// `divergence` is a name [`crate::Divergence::parse`] knows (`fkl`, `rkl`, `jsd`, `tv`, `skl`,
/// `srkl`) or absent (MLE only); `beta` is its weight (`jsd`, `skl`, `srkl`); `temperature`
/// defaults to 1, `mle_weight` to 0. Each value is fixed or a parameter ([`param`]).
/// `kidbench plugin check` compares the loss with it, so a swapped KL direction, a temperature
/// that is not applied or an extra term shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LossForm {
    pub divergence: Option<FormArg>,
    pub beta: Option<FormArg>,
    pub temperature: FormArg,
    pub mle_weight: FormArg,
}

impl LossForm {
    /// `divergence` (a name or a parameter), temperature 1, no MLE term.
    pub fn divergence(divergence: impl Into<FormArg>) -> Self {
        LossForm {
            divergence: Some(divergence.into()),
            beta: None,
            temperature: FormArg::Fixed("1".into()),
            mle_weight: FormArg::Fixed("0".into()),
        }
    }

    /// The MLE loss alone, with weight `weight`.
    pub fn mle(weight: impl Into<FormArg>) -> Self {
        LossForm {
            divergence: None,
            beta: None,
            temperature: FormArg::Fixed("1".into()),
            mle_weight: weight.into(),
        }
    }

    pub fn beta(mut self, beta: impl Into<FormArg>) -> Self {
        self.beta = Some(beta.into());
        self
    }

    pub fn temperature(mut self, temperature: impl Into<FormArg>) -> Self {
        self.temperature = temperature.into();
        self
    }

    pub fn mle_weight(mut self, weight: impl Into<FormArg>) -> Self {
        self.mle_weight = weight.into();
        self
    }

    /// `divergence=fkl temperature=$temperature mle_weight=$mle_weight` (`$`: a parameter).
    pub fn to_line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.divergence {
            parts.push(format!("divergence={d}"));
        }
        if let Some(b) = &self.beta {
            parts.push(format!("beta={b}"));
        }
        parts.push(format!("temperature={}", self.temperature));
        parts.push(format!("mle_weight={}", self.mle_weight));
        parts.join(" ")
    }

    /// The inverse of [`LossForm::to_line`].
    pub fn parse_line(line: &str) -> Result<LossForm, String> {
        let mut form = LossForm::mle(0.0);
        for part in line.split_whitespace() {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("loss form: '{part}' is not key=value"))?;
            if v.is_empty() || v == "$" {
                return Err(format!("loss form: empty value for '{k}'"));
            }
            let arg = match v.strip_prefix('$') {
                Some(p) => FormArg::Param(p.to_string()),
                None => FormArg::Fixed(v.to_string()),
            };
            match k {
                "divergence" => form.divergence = Some(arg),
                "beta" => form.beta = Some(arg),
                "temperature" => form.temperature = arg,
                "mle_weight" => form.mle_weight = arg,
                other => {
                    return Err(format!(
                    "loss form: unknown key '{other}' (divergence, beta, temperature, mle_weight)"
                ))
                }
            }
        }
        Ok(form)
    }
}

/// Splits a plugin's description into the text to show and its declared [`LossForm`] (the
/// [`LOSS_FORM_TAG`] line), if any.
pub fn split_description(description: &str) -> (String, Option<Result<LossForm, String>>) {
    let mut text = Vec::new();
    let mut form = None;
    for line in description.lines() {
        match line.trim().strip_prefix(LOSS_FORM_TAG) {
            Some(rest) => form = Some(LossForm::parse_line(rest.trim())),
            None => text.push(line),
        }
    }
    (text.join("\n").trim_end().to_string(), form)
}

// ---------------------------------------------------------------- fixed-divergence methods

/// A divergence chosen at compile time, for [`FixedKd`].
pub trait FixedDivergence: 'static {
    const DIVERGENCE: crate::Divergence;
    /// Its name for [`crate::Divergence::parse`] (and in the [`LossForm`]).
    const NAME: &'static str;
}

/// Forward KL(T||S).
pub struct Fkl;
impl FixedDivergence for Fkl {
    const DIVERGENCE: crate::Divergence = crate::Divergence::ForwardKl;
    const NAME: &'static str = "fkl";
}

/// Reverse KL(S||T).
pub struct Rkl;
impl FixedDivergence for Rkl {
    const DIVERGENCE: crate::Divergence = crate::Divergence::ReverseKl;
    const NAME: &'static str = "rkl";
}

/// The divergence `D` between student and teacher on the ground truth, plus `mle_weight` x MLE
/// on the ground truth ([`GroundTruthKd`] with `temperature` and `mle_weight`), as a [`Method`]:
/// `fkd` is `FixedKd<Fkl>`, `rkd` is `FixedKd<Rkl>`.
pub struct FixedKd<D> {
    inner: GroundTruthKd,
    divergence: PhantomData<fn() -> D>,
}

impl<D: FixedDivergence> Method for FixedKd<D> {
    fn params() -> Vec<ParamSpec> {
        GroundTruthKd::params()
    }
    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(FixedKd {
            inner: GroundTruthKd::new(D::DIVERGENCE, p)?,
            divergence: PhantomData,
        })
    }
    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        Ok(self.inner.data_request())
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        self.inner.loss(ctx)
    }
    fn loss_form() -> Option<LossForm> {
        Some(GroundTruthKd::loss_form(D::NAME))
    }
}

/// Ground-truth data with the student's logits (with grad), with or without teacher logits.
pub fn ground_truth(teacher_logits: bool) -> DataRequest {
    DataRequest {
        source: DataSource::GroundTruth,
        sampling: sampling(1.0, 0),
        student_logits: true,
        teacher_logits,
    }
}

/// A batch sampled from `source` (student or teacher) with `spec`, with the student's logits on
/// it (with grad), with or without teacher logits.
pub fn sampled(source: DataSource, spec: SampleSpec, teacher_logits: bool) -> DataRequest {
    DataRequest {
        source,
        sampling: spec,
        student_logits: true,
        teacher_logits,
    }
}

/// With probability `p` (drawn from the step's random stream 1, so seeded), the micro-batch's
/// prompts completed by the student with `spec`; otherwise the ground truth. Teacher logits on
/// either. The on-policy choice of gkd (`p = lambda`) and imitkd (`p` = the student share).
pub fn student_samples_with_prob(step: &StepInfo, p: f64, spec: SampleSpec) -> DataRequest {
    use rand::Rng;
    if p > 0.0 && step_rng(step, 1).random::<f64>() < p {
        sampled(DataSource::StudentSamples, spec, true)
    } else {
        ground_truth(true)
    }
}

/// Pure sampling at `temperature` (no top-k/top-p).
pub fn sampling(temperature: f64, max_new_tokens: u32) -> SampleSpec {
    SampleSpec {
        temperature,
        top_k: 0,
        top_p: 1.0,
        max_new_tokens,
    }
}

// ---------------------------------------------------------------- parameters

fn spec(name: &str, kind: ParamKind, default: &str, help: &str) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        kind,
        default: default.into(),
        min: f64::NEG_INFINITY,
        max: f64::INFINITY,
        choices: RVec::new(),
        help: help.into(),
    }
}

/// A float parameter in `min..=max`.
pub fn float_param(name: &str, default: f64, min: f64, max: f64, help: &str) -> ParamSpec {
    ParamSpec {
        min,
        max,
        ..spec(name, ParamKind::Float, &default.to_string(), help)
    }
}

/// An integer parameter in `min..=max`.
pub fn int_param(name: &str, default: i64, min: i64, max: i64, help: &str) -> ParamSpec {
    ParamSpec {
        min: min as f64,
        max: max as f64,
        ..spec(name, ParamKind::Int, &default.to_string(), help)
    }
}

pub fn bool_param(name: &str, default: bool, help: &str) -> ParamSpec {
    spec(name, ParamKind::Bool, &default.to_string(), help)
}

/// Free text; an empty default means "unset".
pub fn text_param(name: &str, default: &str, help: &str) -> ParamSpec {
    spec(name, ParamKind::Text, default, help)
}

pub fn choice_param(name: &str, default: &str, choices: &[&str], help: &str) -> ParamSpec {
    ParamSpec {
        choices: choices.iter().map(|c| RString::from(*c)).collect(),
        ..spec(name, ParamKind::Choice, default, help)
    }
}

#[derive(Debug, Clone)]
enum Value {
    Float(f64),
    Int(i64),
    Bool(bool),
    Text(String),
}

/// Validated parameter values (defaults filled in).
#[derive(Debug, Clone)]
pub struct Params {
    method: String,
    values: BTreeMap<String, Value>,
}

impl Params {
    /// Validates `given` against `specs`: unknown names list the valid ones, out-of-range values
    /// name the range, bad choices list the choices. A bare boolean key (`vanilla=`) means true.
    pub fn parse(
        method: &str,
        specs: &[ParamSpec],
        given: &[(String, String)],
    ) -> anyhow::Result<Params> {
        let mut values = BTreeMap::new();
        for s in specs {
            values.insert(
                s.name.to_string(),
                parse_value(method, s, s.default.as_str())?,
            );
        }
        for (k, v) in given {
            let Some(s) = specs.iter().find(|s| s.name.as_str() == k.trim()) else {
                let valid: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                anyhow::bail!(
                    "unknown parameter '{k}' for method '{method}'; valid parameters: {}",
                    if valid.is_empty() {
                        "(none)".to_string()
                    } else {
                        valid.join(", ")
                    }
                );
            };
            values.insert(s.name.to_string(), parse_value(method, s, v.trim())?);
        }
        Ok(Params {
            method: method.to_string(),
            values,
        })
    }

    fn get(&self, name: &str) -> anyhow::Result<&Value> {
        self.values
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("method '{}' has no parameter '{name}'", self.method))
    }

    pub fn f64(&self, name: &str) -> anyhow::Result<f64> {
        match self.get(name)? {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => anyhow::bail!("parameter '{name}' is not a number ({other:?})"),
        }
    }

    pub fn i64(&self, name: &str) -> anyhow::Result<i64> {
        match self.get(name)? {
            Value::Int(v) => Ok(*v),
            other => anyhow::bail!("parameter '{name}' is not an integer ({other:?})"),
        }
    }

    pub fn bool(&self, name: &str) -> anyhow::Result<bool> {
        match self.get(name)? {
            Value::Bool(v) => Ok(*v),
            other => anyhow::bail!("parameter '{name}' is not a boolean ({other:?})"),
        }
    }

    /// A choice or text parameter.
    pub fn text(&self, name: &str) -> anyhow::Result<&str> {
        match self.get(name)? {
            Value::Text(v) => Ok(v),
            other => anyhow::bail!("parameter '{name}' is not text ({other:?})"),
        }
    }
}

fn parse_value(method: &str, s: &ParamSpec, v: &str) -> anyhow::Result<Value> {
    let name = s.name.as_str();
    let range = |x: f64| -> anyhow::Result<()> {
        if x.is_nan() || x < s.min || x > s.max {
            anyhow::bail!(
                "parameter '{name}' of method '{method}' must be in [{}, {}], got {v}",
                s.min,
                s.max
            );
        }
        Ok(())
    };
    Ok(match s.kind {
        ParamKind::Float => {
            let x: f64 = v.parse().map_err(|_| {
                anyhow::anyhow!(
                    "parameter '{name}' of method '{method}' must be a number, got '{v}'"
                )
            })?;
            range(x)?;
            Value::Float(x)
        }
        ParamKind::Int => {
            let x: i64 = v.parse().map_err(|_| {
                anyhow::anyhow!(
                    "parameter '{name}' of method '{method}' must be an integer, got '{v}'"
                )
            })?;
            range(x as f64)?;
            Value::Int(x)
        }
        ParamKind::Bool => Value::Bool(match v.to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => anyhow::bail!(
                "parameter '{name}' of method '{method}' must be true or false, got '{v}'"
            ),
        }),
        ParamKind::Choice => {
            if !s.choices.iter().any(|c| c.as_str() == v) {
                let valid: Vec<&str> = s.choices.iter().map(|c| c.as_str()).collect();
                anyhow::bail!(
                    "parameter '{name}' of method '{method}' must be one of {}, got '{v}'",
                    valid.join("|")
                );
            }
            Value::Text(v.to_string())
        }
        ParamKind::Text => Value::Text(v.to_string()),
    })
}

// ---------------------------------------------------------------- the context

/// A batch as the plugin sees it (its own handles).
#[derive(Debug)]
pub struct Batch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub labels: Tensor,
    pub loss_mask: Tensor,
    pub norm: f64,
}

/// Safe view of the host's [`HostCtx`] during one `loss` call.
pub struct Ctx<'a> {
    raw: &'a mut HostCtx,
    method: &'static str,
}

impl<'a> Ctx<'a> {
    /// `method` names the plugin in errors.
    ///
    /// # Safety
    /// `raw`'s handles and callbacks must be live for `'a` (true inside `loss`).
    pub unsafe fn new(raw: &'a mut HostCtx, method: &'static str) -> Self {
        Ctx { raw, method }
    }

    fn tensor(&self, r: TensorRef) -> Tensor {
        // SAFETY: handles in the context are live during the call (`Ctx::new`'s contract).
        unsafe { r.to_tensor() }
    }

    /// The batch the [`DataRequest`] asked for.
    pub fn batch(&self) -> Batch {
        let b = &self.raw.batch;
        Batch {
            input_ids: self.tensor(b.input_ids),
            attention_mask: self.tensor(b.attention_mask),
            labels: self.tensor(b.labels),
            loss_mask: self.tensor(b.loss_mask),
            norm: b.norm_tokens,
        }
    }

    /// Student logits on the batch (with grad); an error when not requested.
    pub fn student_logits(&self) -> anyhow::Result<Tensor> {
        match self.raw.student_logits {
            abi_stable::std_types::RSome(t) => Ok(self.tensor(t)),
            abi_stable::std_types::RNone => anyhow::bail!(
                "method '{}' read the student logits of the batch but did not request them \
                 (DataRequest::student_logits is false)",
                self.method
            ),
        }
    }

    /// Whether the host ran the student forward on the batch (`DataRequest::student_logits`).
    pub fn has_student_logits(&self) -> bool {
        self.raw.student_logits.is_some()
    }

    /// Teacher logits on the batch (no grad); an error when not requested.
    pub fn teacher_logits(&self) -> anyhow::Result<Tensor> {
        match self.raw.teacher_logits {
            abi_stable::std_types::RSome(t) => Ok(self.tensor(t)),
            abi_stable::std_types::RNone => anyhow::bail!(
                "method '{}' read the teacher logits of the batch but did not request them \
                 (DataRequest::teacher_logits is false)",
                self.method
            ),
        }
    }

    /// Logits of `model` on arbitrary tokens, every row; `grad` only applies to the student.
    pub fn forward(
        &mut self,
        model: Model,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        grad: bool,
    ) -> anyhow::Result<Tensor> {
        self.forward_impl(model, input_ids, attention_mask, None, grad)
    }

    /// Like [`Ctx::forward`], but the logits are exact only where `rows != 0` (`[B, T]`, e.g.
    /// the batch's `loss_mask`) and 0 elsewhere: the host skips the LM head on the other rows,
    /// which is most of a text-to-SQL sequence (the prompt).
    pub fn forward_rows(
        &mut self,
        model: Model,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &Tensor,
        grad: bool,
    ) -> anyhow::Result<Tensor> {
        self.forward_impl(model, input_ids, attention_mask, Some(rows), grad)
    }

    fn forward_impl(
        &mut self,
        model: Model,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: Option<&Tensor>,
        grad: bool,
    ) -> anyhow::Result<Tensor> {
        let rows = abi_stable::std_types::ROption::from(rows.map(TensorRef::new));
        let r = (self.raw.forward)(
            self.raw.host,
            model,
            TensorRef::new(input_ids),
            TensorRef::new(attention_mask),
            rows,
            grad,
        );
        match r {
            // SAFETY: the host returns an owned handle made by `TensorOwned::new`.
            ROk(t) => Ok(unsafe { t.into_tensor() }),
            RErr(e) => anyhow::bail!("host forward ({model:?}): {e}"),
        }
    }

    /// This micro-batch's prompts completed by `model`.
    pub fn sample(&mut self, model: Model, spec: SampleSpec) -> anyhow::Result<Batch> {
        match (self.raw.sample)(self.raw.host, model, spec) {
            ROk(b) => Ok(owned_batch(b)),
            RErr(e) => anyhow::bail!("host sampling ({model:?}): {e}"),
        }
    }

    pub fn step(&self) -> StepInfo {
        self.raw.step
    }

    pub fn tokens(&self) -> SpecialTokens {
        self.raw.tokens
    }

    /// The seeded random source of this micro-batch; `stream` separates independent uses.
    pub fn rng(&self, stream: u64) -> rand_chacha::ChaCha8Rng {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(self.raw.step.seed);
        r.set_stream(stream);
        r
    }
}

impl Batch {
    /// The batch right-padded to `t` columns (`t` at least its own length): `pad` tokens,
    /// attention 0, labels `IGNORE`, loss mask 0. Under causal attention the appended columns
    /// change nothing at the earlier positions.
    pub fn pad_to(&self, t: i64, pad: i64) -> anyhow::Result<Batch> {
        let size = self.input_ids.size();
        anyhow::ensure!(
            size.len() == 2,
            "input_ids must be [batch, time], got {size:?}"
        );
        let extra = t - size[1];
        anyhow::ensure!(
            extra >= 0,
            "cannot pad a batch of {} columns to {t}",
            size[1]
        );
        if extra == 0 {
            return Ok(self.shallow());
        }
        let fill = |x: &Tensor, v: f64| -> Tensor {
            let tail = Tensor::full([size[0], extra], v, (x.kind(), x.device()));
            Tensor::cat(&[x, &tail], 1)
        };
        Ok(Batch {
            input_ids: fill(&self.input_ids, pad as f64),
            attention_mask: fill(&self.attention_mask, 0.0),
            labels: fill(&self.labels, crate::IGNORE as f64),
            loss_mask: fill(&self.loss_mask, 0.0),
            norm: self.norm,
        })
    }

    fn shallow(&self) -> Batch {
        Batch {
            input_ids: self.input_ids.shallow_clone(),
            attention_mask: self.attention_mask.shallow_clone(),
            labels: self.labels.shallow_clone(),
            loss_mask: self.loss_mask.shallow_clone(),
            norm: self.norm,
        }
    }

    /// Row `i` from `other` where `take_other[i]`, else from `self` (both right padded to the
    /// longer of the two). `norm` keeps `self`'s ratio of global to local target tokens: with
    /// one micro-batch per step it is exactly the mixed batch's own target count; with
    /// gradient accumulation it estimates the global count from this micro-batch, as the
    /// host does for sampled batches.
    pub fn mix_rows(&self, other: &Batch, take_other: &[bool], pad: i64) -> anyhow::Result<Batch> {
        let (a, b) = (self.input_ids.size(), other.input_ids.size());
        anyhow::ensure!(
            a.len() == 2 && b.len() == 2 && a[0] == b[0] && a[0] == take_other.len() as i64,
            "mixing rows of batches {a:?} and {b:?} with {} choices",
            take_other.len()
        );
        let t = a[1].max(b[1]);
        let (x, y) = (self.pad_to(t, pad)?, other.pad_to(t, pad)?);
        let pick = |u: &Tensor, v: &Tensor| -> Tensor {
            let rows: Vec<Tensor> = take_other
                .iter()
                .enumerate()
                .map(|(i, &o)| {
                    if o {
                        v.narrow(0, i as i64, 1)
                    } else {
                        u.narrow(0, i as i64, 1)
                    }
                })
                .collect();
            Tensor::cat(&rows, 0)
        };
        let loss_mask = pick(&x.loss_mask, &y.loss_mask);
        let local = |m: &Tensor| m.sum(tch::Kind::Double).double_value(&[]);
        let (own, mixed) = (local(&self.loss_mask), local(&loss_mask));
        let scale = if own > 0.0 { self.norm / own } else { 1.0 };
        Ok(Batch {
            input_ids: pick(&x.input_ids, &y.input_ids),
            attention_mask: pick(&x.attention_mask, &y.attention_mask),
            labels: pick(&x.labels, &y.labels),
            loss_mask,
            norm: (mixed * scale).max(1.0),
        })
    }
}

fn owned_batch(b: BatchOwned) -> Batch {
    // SAFETY: owned handles from the host, each taken exactly once.
    unsafe {
        Batch {
            input_ids: b.input_ids.into_tensor(),
            attention_mask: b.attention_mask.into_tensor(),
            labels: b.labels.into_tensor(),
            loss_mask: b.loss_mask.into_tensor(),
            norm: b.norm_tokens,
        }
    }
}

// ---------------------------------------------------------------- exported functions

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// Runs `f`, turning errors and panics into `RErr`.
pub fn guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(format!("{e:#}").into()),
        Err(p) => RErr(format!("panicked: {}", panic_message(p.as_ref())).into()),
    }
}

/// The [`PluginInfo`] of `P`; a declared [`LossForm`] is the description's last line.
pub fn info<P: Plugin>() -> PluginInfo {
    let description = match P::loss_form() {
        Some(f) => format!("{}\n{LOSS_FORM_TAG} {}", P::DESCRIPTION, f.to_line()),
        None => P::DESCRIPTION.to_string(),
    };
    PluginInfo {
        name: P::NAME.into(),
        version: P::VERSION.into(),
        description: description.into(),
        abi_version: ABI_VERSION,
        tch_version: TCH_VERSION.into(),
        libtorch_version: LIBTORCH_VERSION.into(),
        params: P::params().into(),
    }
}

extern "C" fn info_shim<P: Plugin>() -> RResult<PluginInfo, RString> {
    guard(|| Ok(info::<P>()))
}

extern "C" fn create_shim<P: Plugin>(
    params: RVec<Tuple2<RString, RString>>,
) -> RResult<MethodObj, RString> {
    guard(|| {
        let given: Vec<(String, String)> = params
            .into_iter()
            .map(|Tuple2(k, v)| (k.into_string(), v.into_string()))
            .collect();
        let p = Params::parse(P::NAME, &P::params(), &given)?;
        let m = P::new(&p)?;
        Ok(MethodObj {
            state: Box::into_raw(Box::new(m)) as *mut c_void,
            data_request: data_request_shim::<P>,
            loss: loss_shim::<P>,
            drop: drop_shim::<P>,
        })
    })
}

extern "C" fn data_request_shim<P: Plugin>(
    state: *mut c_void,
    step: StepInfo,
) -> RResult<DataRequest, RString> {
    guard(|| {
        // SAFETY: `state` is the `Box<P>` made by `create_shim`, used by one caller at a time.
        let m = unsafe { &mut *(state as *mut P) };
        m.data_request(&step)
    })
}

extern "C" fn loss_shim<P: Plugin>(
    state: *mut c_void,
    ctx: &mut HostCtx,
) -> RResult<TensorOwned, RString> {
    guard(|| {
        // SAFETY: as in `data_request_shim`; the context is live during this call.
        let m = unsafe { &mut *(state as *mut P) };
        let mut ctx = unsafe { Ctx::new(ctx, P::NAME) };
        m.loss(&mut ctx).map(TensorOwned::new)
    })
}

extern "C" fn drop_shim<P: Plugin>(state: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: called exactly once by the host, on the box made by `create_shim`.
        drop(unsafe { Box::from_raw(state as *mut P) });
    }));
}

/// The root module of plugin `P`.
pub fn module<P: Plugin>() -> PluginModRef {
    PluginMod {
        info: info_shim::<P>,
        create: create_shim::<P>,
    }
    .leak_into_prefix()
}

/// Exports `$ty: Plugin` as this cdylib's root module (`kidbench_plugin_root()` stays callable
/// from Rust, e.g. in tests). The crate must depend on `abi_stable`.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        #[::abi_stable::export_root_module]
        pub fn kidbench_plugin_root() -> $crate::sdk::api::PluginModRef {
            $crate::sdk::module::<$ty>()
        }
    };
}

/// Exports `$method: Method` as this cdylib's plugin named `$name`, described by `$description`,
/// with the crate's version (`CARGO_PKG_VERSION`). Like [`export_plugin!`](crate::export_plugin)
/// it defines `kidbench_plugin_root()` (callable from Rust, e.g. in tests), and the crate must
/// depend on `abi_stable`.
///
/// ```ignore
/// kidbench_kd::export_method!(Kid, "kid", "reverse KL on imperfect targets + MLE");
/// kidbench_kd::export_method!(FixedKd<Fkl>, "fkd", "forward KL(T||S) on the ground truth + MLE");
/// ```
#[macro_export]
macro_rules! export_method {
    ($method:ty, $name:expr, $description:expr $(,)?) => {
        /// Name, version and description of this library's method.
        #[doc(hidden)]
        pub struct KidbenchPluginMeta;
        impl $crate::sdk::Meta for KidbenchPluginMeta {
            const NAME: &'static str = $name;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            const DESCRIPTION: &'static str = $description;
        }
        /// This library's plugin: the method under its name and description.
        pub type KidbenchPlugin = $crate::sdk::Exported<KidbenchPluginMeta, $method>;
        $crate::export_plugin!(KidbenchPlugin);
    };
}

/// A seeded random source for `step` (e.g. in `data_request`); `stream` separates uses.
pub fn step_rng(step: &StepInfo, stream: u64) -> rand_chacha::ChaCha8Rng {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(step.seed);
    r.set_stream(stream);
    r
}

/// Training progress in `[0, 1]` (`step / total_steps`).
pub fn progress(step: &StepInfo) -> f64 {
    if step.total_steps == 0 {
        0.0
    } else {
        (step.step as f64 / step.total_steps as f64).clamp(0.0, 1.0)
    }
}

/// The body shared by the fixed-data KD methods (`fkd`, `rkd`): a divergence between student and
/// teacher on the ground truth, plus the MLE loss on the ground truth weighted by `mle_weight`.
/// A plugin wraps it, choosing only the divergence, its name and its description.
pub struct GroundTruthKd {
    divergence: crate::Divergence,
    temperature: f64,
    mle_weight: f64,
}

impl GroundTruthKd {
    /// `temperature` and `mle_weight`, with their ranges.
    pub fn params() -> Vec<ParamSpec> {
        vec![
            float_param(
                "temperature",
                1.0,
                0.01,
                100.0,
                "softmax temperature of both sides",
            ),
            float_param(
                "mle_weight",
                1.0,
                0.0,
                100.0,
                "weight of the MLE loss on the ground truth",
            ),
        ]
    }

    pub fn new(divergence: crate::Divergence, p: &Params) -> anyhow::Result<Self> {
        Ok(GroundTruthKd {
            divergence,
            temperature: p.f64("temperature")?,
            mle_weight: p.f64("mle_weight")?,
        })
    }

    /// `divergence` (a [`crate::Divergence::parse`] name) at `$temperature` + `$mle_weight` x MLE.
    pub fn loss_form(divergence: &str) -> LossForm {
        LossForm::divergence(divergence)
            .temperature(param("temperature"))
            .mle_weight(param("mle_weight"))
    }

    /// Ground truth, with the teacher's logits.
    pub fn data_request(&self) -> DataRequest {
        ground_truth(true)
    }

    pub fn loss(&self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let s = ctx.student_logits()?;
        let t = ctx.teacher_logits()?;
        let div = crate::divergence_loss(
            self.divergence,
            &s,
            &t,
            &b.loss_mask,
            b.norm,
            self.temperature,
        )?;
        if self.mle_weight == 0.0 {
            return Ok(div);
        }
        Ok(div + crate::mle_loss(&s, &b.labels, b.norm, crate::IGNORE)? * self.mle_weight)
    }
}

#[cfg(test)]
mod loss_form_tests {
    use super::*;

    #[test]
    fn loss_forms_travel_as_a_description_line() {
        let f = LossForm::divergence(param("divergence"))
            .beta(param("beta"))
            .temperature(2.0)
            .mle_weight(param("mle_weight"));
        let line = f.to_line();
        assert_eq!(
            line,
            "divergence=$divergence beta=$beta temperature=2 mle_weight=$mle_weight"
        );
        assert_eq!(LossForm::parse_line(&line), Ok(f.clone()));
        let text = format!("a method\n{LOSS_FORM_TAG} {line}");
        assert_eq!(
            split_description(&text),
            ("a method".to_string(), Some(Ok(f)))
        );
        assert_eq!(split_description("plain"), ("plain".to_string(), None));
        assert!(LossForm::parse_line("divergence").is_err());
        assert!(LossForm::parse_line("weight=1")
            .unwrap_err()
            .contains("unknown key 'weight'"));
        assert_eq!(LossForm::mle(1.0).to_line(), "temperature=1 mle_weight=1");
    }
}
