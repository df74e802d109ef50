//! The plugin authors' conformance suite behind `kidbench plugin check`: a plugin, loaded through
//! the normal host, runs training steps against tiny lookup-table models ([`toy`]) and each
//! property the trainer relies on is measured. docs/PLUGINS.md says why each one matters.
//!
//! | property | what is measured |
//! | --- | --- |
//! | `load` | the host's load checks (ABI, libtorch and tch versions) |
//! | `parameters` | defaults inside their ranges; out-of-range, malformed and unknown values refused, naming what is allowed |
//! | `loss` | a finite loss; a gradient on every student parameter the batch touches; none asked for the teacher |
//! | `masking` | prompt and padding tokens and logits change neither loss nor gradient; a target's logits change the loss |
//! | `normalization` | the loss scales as 1 / `norm_tokens`; the micro-batches of a split batch sum to the whole (within 1e-5) |
//! | `determinism` | the same step (seed) gives the same loss and the same data, also from a fresh instance |
//! | `data` | teacher/student logits given only when requested; reading undeclared ones fails; requested ones are used |
//! | `stability` | logits of ±1e4, `-inf` entries and `-inf` rows give a finite loss and gradient, or a clear error |
//! | `divergence` | a declared [`LossForm`] equals the shared closed form of `kidbench-kd` on the check's batch |
//!
//! A property that cannot be measured (no loss could be computed, nothing declared) is skipped,
//! never failed, so a broken plugin fails exactly the properties it breaks.

pub mod toy;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kidbench_kd::sdk::{FormArg, LossForm};
use kidbench_kd::{divergence_loss, mle_loss, Divergence, IGNORE};
use tch::Tensor;

use crate::testing::on_rows;
use crate::{
    load_plugin, DataSource, ParamInfo, ParamKind, PluginEntry, PluginMethod, PluginModRef,
};
use toy::{run_step, Perturb, StepCfg, StepError, StepOut};

/// Tolerance of "equal" for losses and gradients: `1e-5 · max(1, |value|)`.
pub const TOLERANCE: f64 = 1e-5;
/// Tolerance of "unchanged" under a perturbation that must not matter.
pub const EXACT: f64 = 1e-6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Property {
    Load,
    Parameters,
    Loss,
    Masking,
    Normalization,
    Determinism,
    Data,
    Stability,
    Divergence,
}

impl Property {
    pub const ALL: [Property; 9] = [
        Property::Load,
        Property::Parameters,
        Property::Loss,
        Property::Masking,
        Property::Normalization,
        Property::Determinism,
        Property::Data,
        Property::Stability,
        Property::Divergence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Property::Load => "load",
            Property::Parameters => "parameters",
            Property::Loss => "loss",
            Property::Masking => "masking",
            Property::Normalization => "normalization",
            Property::Determinism => "determinism",
            Property::Data => "data",
            Property::Stability => "stability",
            Property::Divergence => "divergence",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// Not measurable for this plugin (the reason is in `measured`).
    Skip,
}

/// One property's result: what was measured, and what a conforming plugin gives.
#[derive(Debug, Clone)]
pub struct Finding {
    pub property: Property,
    pub outcome: Outcome,
    pub measured: String,
    pub expected: String,
    /// The numbers behind `measured`, by name (for tests and tools).
    pub values: Vec<(String, f64)>,
}

impl Finding {
    fn new(property: Property, ok: bool, measured: String, expected: &str) -> Finding {
        Finding {
            property,
            outcome: if ok { Outcome::Pass } else { Outcome::Fail },
            measured,
            expected: expected.to_string(),
            values: Vec::new(),
        }
    }

    fn skip(property: Property, why: String) -> Finding {
        Finding {
            property,
            outcome: Outcome::Skip,
            measured: why,
            expected: String::new(),
            values: Vec::new(),
        }
    }

    fn value(mut self, name: &str, v: f64) -> Finding {
        self.values.push((name.to_string(), v));
        self
    }

    /// The value named `name`, if measured.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        };
        write!(f, "{tag} {:<13} {}", self.property.name(), self.measured)?;
        if !self.expected.is_empty() {
            write!(f, " (expected: {})", self.expected)?;
        }
        Ok(())
    }
}

/// Every property of one plugin.
#[derive(Debug, Clone)]
pub struct Report {
    pub plugin: String,
    pub path: PathBuf,
    pub params: Vec<(String, String)>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// No property failed.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    pub fn failures(&self) -> Vec<Property> {
        self.findings
            .iter()
            .filter(|f| f.outcome == Outcome::Fail)
            .map(|f| f.property)
            .collect()
    }

    pub fn finding(&self, p: Property) -> Option<&Finding> {
        self.findings.iter().find(|f| f.property == p)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let with = if params.is_empty() {
            String::new()
        } else {
            format!(" with {}", params.join(","))
        };
        writeln!(
            f,
            "plugin check: {}{with} ({})",
            self.plugin,
            self.path.display()
        )?;
        for x in &self.findings {
            writeln!(f, "{x}")?;
        }
        let count = |o| self.findings.iter().filter(|x| x.outcome == o).count();
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            count(Outcome::Pass),
            count(Outcome::Fail),
            count(Outcome::Skip)
        )
    }
}

/// torch's global generator is process-wide and the check seeds it: one check at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Loads the library at `path` through the host and checks it; a load failure is the `load`
/// property's failure (the others are skipped).
pub fn check_file(path: &Path, params: &[(String, String)]) -> Report {
    match load_plugin(path) {
        Ok(entry) => check(&entry, params),
        Err(e) => {
            let mut findings = vec![Finding::new(
                Property::Load,
                false,
                e.to_string(),
                "a kidbench plugin of this ABI version, libtorch and tch",
            )];
            skip_rest(&mut findings, "the plugin did not load");
            Report {
                plugin: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: path.to_path_buf(),
                params: params.to_vec(),
                findings,
            }
        }
    }
}

/// Checks a plugin linked into this binary (its `kidbench_plugin_root()`), e.g. in its own tests.
pub fn check_module(module: PluginModRef, params: &[(&str, &str)]) -> Report {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match PluginEntry::from_module(module, "<linked>".as_ref()) {
        Ok(entry) => check(&entry, &params),
        Err(e) => {
            let mut findings = vec![Finding::new(
                Property::Load,
                false,
                e.to_string(),
                "a kidbench plugin of this ABI version, libtorch and tch",
            )];
            skip_rest(&mut findings, "the plugin did not load");
            Report {
                plugin: "<linked>".into(),
                path: "<linked>".into(),
                params,
                findings,
            }
        }
    }
}

/// [`check_module`], panicking with the report when a property fails (for a plugin's tests).
pub fn assert_conforms(module: PluginModRef, params: &[(&str, &str)]) -> Report {
    let r = check_module(module, params);
    assert!(r.passed(), "{r}");
    r
}

fn skip_rest(findings: &mut Vec<Finding>, why: &str) {
    for p in Property::ALL {
        if !findings.iter().any(|f| f.property == p) {
            findings.push(Finding::skip(p, why.to_string()));
        }
    }
}

/// Runs every property on `entry` created with `params`.
pub fn check(entry: &PluginEntry, params: &[(String, String)]) -> Report {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut findings = vec![Finding::new(
        Property::Load,
        true,
        format!(
            "{} {} from {}",
            entry.name,
            entry.version,
            entry.path.display()
        ),
        "",
    )];
    findings.push(parameters(entry, params));
    let ctx = Probe { entry, params };
    if let Err(e) = ctx.create(params) {
        skip_rest(
            &mut findings,
            &format!("the method could not be created: {e}"),
        );
        return ctx.report(findings);
    }
    let base_cfg = StepCfg::base();
    // The base step exactly as the host provisions it; when it fails, the same step with every
    // logit handed over tells a method that reads undeclared data from one that cannot run.
    let exact = ctx.run(&base_cfg);
    let (cfg, base, undeclared) = match exact {
        Ok(o) => (base_cfg, Ok(o), None),
        Err(e) => {
            let all = StepCfg {
                provide_all: true,
                ..base_cfg.clone()
            };
            match ctx.run(&all) {
                Ok(o) => (all, Ok(o), Some(e)),
                Err(_) => (base_cfg, Err(e), None),
            }
        }
    };
    let base = match base {
        Ok(b) => b,
        Err(e) => {
            findings.push(Finding::new(
                Property::Loss,
                false,
                format!("no loss: {}", e.message()),
                "a finite scalar loss",
            ));
            skip_rest(&mut findings, "no loss to measure (see loss)");
            return ctx.report(findings);
        }
    };
    findings.push(loss(&base));
    findings.push(masking(&ctx, &cfg, &base));
    findings.push(normalization(&ctx, &cfg, &base));
    findings.push(determinism(&ctx, &cfg));
    findings.push(data(&ctx, &cfg, undeclared.as_ref()));
    findings.push(stability(&ctx, &cfg));
    findings.push(divergence(&ctx, &cfg));
    ctx.report(findings)
}

/// The plugin and the parameters every step creates it with.
struct Probe<'a> {
    entry: &'a PluginEntry,
    params: &'a [(String, String)],
}

impl Probe<'_> {
    fn create(&self, params: &[(String, String)]) -> Result<PluginMethod, String> {
        self.entry.create(params).map_err(|e| e.to_string())
    }

    /// One step on a fresh instance.
    fn run(&self, cfg: &StepCfg) -> Result<StepOut, StepError> {
        let m = self.create(self.params).map_err(StepError::Failed)?;
        run_step(&m, cfg)
    }

    fn report(&self, findings: Vec<Finding>) -> Report {
        Report {
            plugin: self.entry.name.clone(),
            path: self.entry.path.clone(),
            params: self.params.to_vec(),
            findings,
        }
    }
}

fn max_abs(t: &Tensor) -> f64 {
    if t.numel() == 0 {
        0.0
    } else {
        t.abs().max().double_value(&[])
    }
}

fn all_finite(t: &Tensor) -> bool {
    bool::try_from(t.isfinite().all()).unwrap_or(false)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

fn list(xs: &[String]) -> String {
    if xs.is_empty() {
        "(none)".to_string()
    } else {
        xs.join(", ")
    }
}

fn shown(xs: &[String], n: usize) -> String {
    let mut s = xs.iter().take(n).cloned().collect::<Vec<_>>().join("; ");
    if xs.len() > n {
        s += &format!("; and {} more", xs.len() - n);
    }
    s
}

// ---------------------------------------------------------------- parameters

fn default_problem(p: &ParamInfo) -> Option<String> {
    let (name, d) = (&p.name, p.default.as_str());
    let range = |x: f64| match p.range {
        Some((lo, hi)) if !(x >= lo && x <= hi) => Some(format!(
            "the default {name}={d} is outside its range [{lo}, {hi}]"
        )),
        _ => None,
    };
    match p.kind {
        ParamKind::Float => match d.parse::<f64>() {
            Ok(x) => range(x),
            Err(_) => Some(format!("the default {name}='{d}' is not a number")),
        },
        ParamKind::Int => match d.parse::<i64>() {
            Ok(x) => range(x as f64),
            Err(_) => Some(format!("the default {name}='{d}' is not an integer")),
        },
        ParamKind::Bool => (!["true", "false", "1", "0", "yes", "no", "on", "off", ""]
            .contains(&d.to_ascii_lowercase().as_str()))
        .then(|| format!("the default {name}='{d}' is not true or false")),
        ParamKind::Choice => (!p.choices.iter().any(|c| c == d)).then(|| {
            format!(
                "the default {name}='{d}' is not one of {}",
                p.choices.join("|")
            )
        }),
        ParamKind::Text => None,
    }
}

/// Values `p` must refuse, each with the words its error must contain.
fn bad_values(p: &ParamInfo) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let int = p.kind == ParamKind::Int;
    let num = |x: f64| {
        if int {
            format!("{}", x as i64)
        } else {
            format!("{x}")
        }
    };
    match p.kind {
        ParamKind::Float | ParamKind::Int => {
            if let Some((lo, hi)) = p.range {
                let bounds: Vec<String> = [lo, hi]
                    .iter()
                    .filter(|x| x.is_finite())
                    .map(|x| format!("{x}"))
                    .collect();
                if lo.is_finite() {
                    out.push((num(lo - 1.0), bounds.clone()));
                }
                if hi.is_finite() {
                    out.push((num(hi + 1.0), bounds.clone()));
                }
            }
            let malformed = if int { "1.5" } else { "abc" };
            out.push((malformed.to_string(), vec![p.name.clone()]));
        }
        ParamKind::Bool => out.push(("maybe".to_string(), vec![p.name.clone()])),
        ParamKind::Choice => out.push(("no_such_choice".to_string(), p.choices.clone())),
        ParamKind::Text => {}
    }
    out
}

fn allowed(p: &ParamInfo) -> String {
    match (p.kind, p.range) {
        (ParamKind::Choice, _) => p.choices.join("|"),
        (_, Some((lo, hi))) => format!("[{lo}, {hi}]"),
        (k, _) => format!("{k:?}"),
    }
}

fn parameters(entry: &PluginEntry, given: &[(String, String)]) -> Finding {
    let mut problems = Vec::new();
    let mut refused = 0usize;
    let kv = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    for p in &entry.params {
        if let Some(e) = default_problem(p) {
            problems.push(e);
        }
        if let Err(e) = entry.create(&kv(&p.name, &p.default)) {
            problems.push(format!(
                "{}={} (its default) is refused: {e}",
                p.name, p.default
            ));
        }
        for (value, words) in bad_values(p) {
            match entry.create(&kv(&p.name, &value)) {
                Ok(_) => problems.push(format!(
                    "{}={value} is accepted (allowed: {})",
                    p.name,
                    allowed(p)
                )),
                Err(e) => {
                    let m = e.to_string();
                    let missing: Vec<String> = words
                        .into_iter()
                        .filter(|w| !m.contains(w.as_str()))
                        .collect();
                    if missing.is_empty() {
                        refused += 1;
                    } else {
                        problems.push(format!(
                            "{}={value} is refused without naming {}: {m}",
                            p.name,
                            missing.join(", ")
                        ));
                    }
                }
            }
        }
    }
    let names: Vec<String> = entry.params.iter().map(|p| p.name.clone()).collect();
    let unknown = "no_such_parameter";
    match entry.create(&kv(unknown, "1")) {
        Ok(_) => problems.push(format!(
            "the unknown parameter {unknown}=1 is accepted (valid: {})",
            list(&names)
        )),
        Err(e) => {
            let m = e.to_string();
            let missing: Vec<&String> = names.iter().filter(|n| !m.contains(n.as_str())).collect();
            if missing.is_empty() {
                refused += 1;
            } else {
                problems.push(format!(
                    "the unknown parameter {unknown} is refused without listing {}: {m}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    if let Err(e) = entry.create(&[]) {
        problems.push(format!("creating it with the defaults fails: {e}"));
    }
    if !given.is_empty() {
        if let Err(e) = entry.create(given) {
            problems.push(format!("creating it with the given parameters fails: {e}"));
        }
    }
    let expected = "every default inside its range; out-of-range, malformed and unknown values \
                    refused, naming the range, the choices or the valid parameters";
    let n = entry.params.len();
    if problems.is_empty() {
        Finding::new(
            Property::Parameters,
            true,
            format!(
                "{n} parameter(s) ({}), defaults valid; {refused} bad values refused naming what is allowed",
                list(&names)
            ),
            expected,
        )
        .value("refused", refused as f64)
    } else {
        Finding::new(Property::Parameters, false, shown(&problems, 3), expected)
            .value("problems", problems.len() as f64)
    }
}

// ---------------------------------------------------------------- loss

fn loss(base: &StepOut) -> Finding {
    let expected = "a finite loss with a gradient on every student parameter the batch touches, \
                    none asked for the teacher";
    let mut problems = Vec::new();
    let g = &base.grad;
    if !base.requires_grad {
        problems.push(
            "the loss has no gradient: it does not reach the student's parameters \
             (computed from detached logits?)"
                .to_string(),
        );
    } else if !all_finite(g) {
        problems.push("the gradient is not finite".to_string());
    }
    let per_row: Vec<f64> =
        Vec::<f64>::try_from(g.abs().sum_dim_intlist(1, false, tch::Kind::Double))
            .unwrap_or_default();
    let missing: Vec<String> = base
        .touched
        .iter()
        .filter(|&&t| per_row.get(t as usize).is_none_or(|x| *x == 0.0))
        .map(|t| t.to_string())
        .collect();
    if base.requires_grad && !missing.is_empty() {
        problems.push(format!(
            "no gradient for the student rows of tokens {} that the batch's targets touch",
            missing.join(", ")
        ));
    }
    if base.teacher_grad_asked > 0 {
        problems.push(format!(
            "asked for {} teacher forward(s) with grad (the teacher is frozen)",
            base.teacher_grad_asked
        ));
    }
    let touched = base.touched.len();
    let reached = touched - missing.len().min(touched);
    let measured = format!(
        "loss {:.6} (finite), gradient on {reached} of {touched} touched student parameters \
         (table rows), {} teacher forwards asked with grad",
        base.loss, base.teacher_grad_asked
    );
    let f = if problems.is_empty() {
        Finding::new(Property::Loss, true, measured, expected)
    } else {
        Finding::new(
            Property::Loss,
            false,
            format!("{}; {measured}", shown(&problems, 3)),
            expected,
        )
    };
    f.value("loss", base.loss)
        .value("touched", touched as f64)
        .value("reached", reached as f64)
}

// ---------------------------------------------------------------- masking

fn masking(ctx: &Probe<'_>, cfg: &StepCfg, base: &StepOut) -> Finding {
    let expected = "no change from prompt or padding positions (Δ ≤ 1e-6), a change from a \
                    target position";
    let gmax = max_abs(&base.grad);
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    let mut f = Finding::new(Property::Masking, true, String::new(), expected);
    for (zone, perturb) in [("prompt", Perturb::Prompt), ("padding", Perturb::Padding)] {
        match ctx.run(&cfg.with(perturb)) {
            Ok(o) => {
                let dl = (o.loss - base.loss).abs();
                let dg = max_abs(&(&o.grad - &base.grad));
                parts.push(format!("{zone}: Δloss {dl:.1e}, Δgrad {dg:.1e}"));
                if dl > EXACT * base.loss.abs().max(1.0) || dg > EXACT * gmax.max(1.0) {
                    problems.push(format!(
                        "changing the tokens and logits at {zone} positions changes the loss by \
                         {dl:.3e} and the gradient by {dg:.3e}: the loss reads {zone} positions"
                    ));
                }
                f = f
                    .value(&format!("{zone}.dloss"), dl)
                    .value(&format!("{zone}.dgrad"), dg);
            }
            Err(e) => problems.push(format!(
                "with changed {zone} positions the step fails: {}",
                e.message()
            )),
        }
    }
    match ctx.run(&cfg.with(Perturb::Target)) {
        Ok(o) => {
            let dl = (o.loss - base.loss).abs();
            parts.push(format!("target: Δloss {dl:.3e}"));
            if dl <= EXACT * base.loss.abs().max(1.0) {
                problems.push(
                    "changing the logits at target positions does not change the loss: it does \
                     not read the targets"
                        .to_string(),
                );
            }
            f = f.value("target.dloss", dl);
        }
        Err(e) => problems.push(format!(
            "with changed target logits the step fails: {}",
            e.message()
        )),
    }
    f.measured = parts.join("; ");
    if !problems.is_empty() {
        f.outcome = Outcome::Fail;
        f.measured = format!("{}; {}", shown(&problems, 3), f.measured);
    }
    f
}

// ---------------------------------------------------------------- normalization

fn normalization(ctx: &Probe<'_>, cfg: &StepCfg, base: &StepOut) -> Finding {
    let expected = "loss and gradient × 0.5 when norm_tokens doubles; the micro-batches of a \
                    split batch sum to the whole batch within 1e-5";
    let mut f = Finding::new(Property::Normalization, true, String::new(), expected);
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    let gmax = max_abs(&base.grad);
    // 1. A sum over target tokens divided by norm_tokens scales as 1 / norm_tokens.
    let doubled = StepCfg {
        norm_factor: 2.0,
        ..cfg.clone()
    };
    match ctx.run(&doubled) {
        Ok(o) => {
            let ratio = o.loss / base.loss;
            let dg = max_abs(&(&o.grad * 2.0 - &base.grad));
            parts.push(format!(
                "norm_tokens ×2: loss {:.6} → {:.6} (ratio {ratio:.6})",
                base.loss, o.loss
            ));
            if !close(o.loss, base.loss * 0.5, TOLERANCE) || dg > TOLERANCE * gmax.max(1.0) {
                problems.push(format!(
                    "with norm_tokens doubled the loss goes {:.6} → {:.6} (ratio {ratio:.4}, \
                     expected 0.5): the loss is not divided by norm_tokens, e.g. averaged per \
                     micro-batch, so it depends on how a batch is split (TRL #4719)",
                    base.loss, o.loss
                ));
            }
            f = f.value("scale.ratio", ratio);
        }
        Err(e) => problems.push(format!(
            "with norm_tokens doubled the step fails: {}",
            e.message()
        )),
    }
    // 2. Gradient accumulation: the loss is a function of the data alone (not of the step seed
    //    or torch's generator), so the micro-batches reproduce the whole batch exactly.
    match seed_dependence(ctx, cfg, base) {
        Err(why) => parts.push(format!("split not compared exactly: {why}")),
        Ok(()) => {
            let mut sum = 0.0;
            let mut grad = Tensor::zeros_like(&base.grad);
            let mut sizes = Vec::new();
            let mut failed = None;
            for rows in toy::SPLIT {
                let micro = StepCfg {
                    rows: rows.to_vec(),
                    ..cfg.clone()
                };
                match ctx.run(&micro) {
                    Ok(o) => {
                        sum += o.loss;
                        grad += &o.grad;
                        sizes.push(format!("{} row(s)", rows.len()));
                    }
                    Err(e) => failed = Some(e.message().to_string()),
                }
            }
            if let Some(e) = failed {
                problems.push(format!("a micro-batch step fails: {e}"));
            } else {
                let dg = max_abs(&(&grad - &base.grad));
                parts.push(format!(
                    "micro-batches [{}] sum to {sum:.6}, the whole batch {:.6} (Δ {:.1e}, Δgrad {dg:.1e})",
                    sizes.join(" + "),
                    base.loss,
                    (sum - base.loss).abs()
                ));
                if !close(sum, base.loss, TOLERANCE) || dg > TOLERANCE * gmax.max(1.0) {
                    problems.push(format!(
                        "the micro-batches [{}] of the batch sum to {sum:.6}, the whole batch \
                         gives {:.6}: gradient accumulation changes the loss",
                        sizes.join(" + "),
                        base.loss
                    ));
                }
                f = f.value("split.sum", sum).value("split.whole", base.loss);
            }
        }
    }
    f.measured = parts.join("; ");
    if !problems.is_empty() {
        // the problems carry their numbers
        f.outcome = Outcome::Fail;
        f.measured = shown(&problems, 2);
    }
    f
}

/// `Ok` when the loss of the base step is a function of its data alone: another step seed with
/// the same data request (the host's samples kept) and another torch seed give the same loss.
fn seed_dependence(ctx: &Probe<'_>, cfg: &StepCfg, base: &StepOut) -> Result<(), String> {
    let m = ctx.create(ctx.params)?;
    let other = (1..=32u64)
        .map(|i| toy::BASE_STEP.seed.wrapping_add(i * 0x1000_0001))
        .find(|&s| {
            let st = crate::StepInfo {
                seed: s,
                ..cfg.step
            };
            m.data_request(&st).ok() == Some(base.request)
        })
        .ok_or("no other seed gives the same data request")?;
    let probe = StepCfg {
        step: crate::StepInfo {
            seed: other,
            ..cfg.step
        },
        sample_seed: Some(cfg.sample_seed.unwrap_or(cfg.step.seed)),
        torch_seed: cfg.torch_seed + 1000,
        ..cfg.clone()
    };
    let o = ctx.run(&probe).map_err(|e| e.message().to_string())?;
    if o.loss == base.loss && o.events == base.events {
        Ok(())
    } else {
        Err(format!(
            "the loss draws on randomness (another seed: {:.6} vs {:.6}), and the \
             micro-batches of a split batch draw differently; the 1/norm_tokens scaling is \
             its exact part",
            o.loss, base.loss
        ))
    }
}

// ---------------------------------------------------------------- determinism

fn determinism(ctx: &Probe<'_>, cfg: &StepCfg) -> Finding {
    let expected = "the same step and seed give the same loss and the same data, from a fresh \
                    instance too (randomness only from StepInfo::seed)";
    let s0 = StepCfg {
        step: crate::StepInfo {
            step: cfg.step.step - 1,
            seed: cfg.step.seed ^ 0xabcd,
            ..cfg.step
        },
        torch_seed: 101,
        ..cfg.clone()
    };
    let s1a = StepCfg {
        torch_seed: 202,
        ..cfg.clone()
    };
    let s1b = StepCfg {
        torch_seed: 303,
        ..cfg.clone()
    };
    let run = || -> Result<(StepOut, StepOut, StepOut), StepError> {
        // instance A runs the step before, then the step; a fresh instance B runs the step alone
        let a = ctx.create(ctx.params).map_err(StepError::Failed)?;
        let _ = run_step(&a, &s0)?;
        let a1 = run_step(&a, &s1a)?;
        let b1 = ctx.run(&s1b)?;
        let other = StepCfg {
            step: crate::StepInfo {
                seed: cfg.step.seed.wrapping_add(0x77),
                ..cfg.step
            },
            ..s1b.clone()
        };
        let c1 = ctx.run(&other)?;
        Ok((a1, b1, c1))
    };
    match run() {
        Err(e) => Finding::new(
            Property::Determinism,
            false,
            format!("a repeated step fails: {}", e.message()),
            expected,
        ),
        Ok((a, b, c)) => {
            let data_same = a.events == b.events;
            let loss_same = a.loss == b.loss;
            let other = if c.loss != a.loss || c.events != a.events {
                "another seed differs"
            } else {
                "another seed gives the same"
            };
            let ok = data_same && loss_same && a.grad.equal(&b.grad);
            let measured = if ok {
                format!(
                    "same seed: loss {:.6} twice, the same data ({} logged requests, forwards and samples); {other}",
                    a.loss,
                    a.events.len()
                )
            } else {
                let what = match (loss_same, data_same) {
                    (false, false) => "loss and data differ",
                    (false, true) => "the loss differs",
                    (true, false) => "the data differ",
                    (true, true) => "the gradient differs",
                };
                format!(
                    "same step and seed, {what}: loss {:.6} after an earlier step vs {:.6} on a \
                     fresh instance (randomness from torch's global generator, the clock or the \
                     method's own state?)",
                    a.loss, b.loss
                )
            };
            Finding::new(Property::Determinism, ok, measured, expected)
                .value("loss.a", a.loss)
                .value("loss.b", b.loss)
        }
    }
}

// ---------------------------------------------------------------- data

fn describe(r: &crate::DataRequest) -> String {
    let src = match r.source {
        DataSource::GroundTruth => "ground truth",
        DataSource::StudentSamples => "student samples",
        DataSource::TeacherSamples => "teacher samples",
        DataSource::FixedTeacherSamples => "fixed teacher samples",
    };
    let mut logits = Vec::new();
    if r.student_logits {
        logits.push("student");
    }
    if r.teacher_logits {
        logits.push("teacher");
    }
    if logits.is_empty() {
        format!("{src}, no host logits")
    } else {
        format!("{src} + {} logits", logits.join(" and "))
    }
}

fn data(ctx: &Probe<'_>, cfg: &StepCfg, undeclared: Option<&StepError>) -> Finding {
    let expected = "logits given only when requested; reading undeclared ones is a clear error; \
                    every requested logit changes the loss";
    if let Some(e) = undeclared {
        return Finding::new(
            Property::Data,
            false,
            format!(
                "reads data it did not request: with exactly what it asked for the step fails \
                 ({}); with every logit handed over it runs",
                e.message()
            ),
            expected,
        );
    }
    // Probes over training (imitkd's share grows with progress) and seeds (gkd's coin).
    let mut seen: Vec<(crate::DataRequest, usize, StepCfg, f64)> = Vec::new();
    let mut problems = Vec::new();
    for step in [0, cfg.step.total_steps / 2, cfg.step.total_steps] {
        for k in 0..3u64 {
            let probe = StepCfg {
                step: crate::StepInfo {
                    step,
                    seed: cfg.step.seed.wrapping_add(k * 0x9e37 + step),
                    ..cfg.step
                },
                ..cfg.clone()
            };
            match ctx.run(&probe) {
                Ok(o) => match seen.iter_mut().find(|s| s.0 == o.request) {
                    Some(s) => s.1 += 1,
                    None => seen.push((o.request, 1, probe, o.loss)),
                },
                Err(e) => {
                    let all = StepCfg {
                        provide_all: true,
                        ..probe.clone()
                    };
                    if ctx.run(&all).is_ok() {
                        problems.push(format!(
                            "at step {step} it reads data it did not request: {}",
                            e.message()
                        ));
                    } else {
                        problems.push(format!("at step {step} the step fails: {}", e.message()));
                    }
                }
            }
        }
    }
    for (req, _, probe, loss) in &seen {
        for (asked, perturb, who) in [
            (req.teacher_logits, Perturb::TeacherNoise, "teacher"),
            (req.student_logits, Perturb::StudentNoise, "student"),
        ] {
            if !asked {
                continue;
            }
            match ctx.run(&probe.with(perturb)) {
                Ok(o) if o.loss == *loss => problems.push(format!(
                    "requests the {who} logits of the batch ({}) but its loss does not depend on \
                     them: a wasted {who} forward every step",
                    describe(req)
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!(
                    "with other {who} logits the step fails: {}",
                    e.message()
                )),
            }
        }
    }
    let kinds: Vec<String> = seen
        .iter()
        .map(|(r, n, _, _)| format!("{} ×{n}", describe(r)))
        .collect();
    let measured = format!(
        "{} over steps 0..{} and 3 seeds; logits handed over only when requested, each \
         requested one used",
        kinds.join(", "),
        cfg.step.total_steps
    );
    if problems.is_empty() {
        Finding::new(Property::Data, true, measured, expected)
    } else {
        Finding::new(
            Property::Data,
            false,
            format!("{}; {}", shown(&problems, 2), kinds.join(", ")),
            expected,
        )
    }
}

// ---------------------------------------------------------------- stability

fn stability(ctx: &Probe<'_>, cfg: &StepCfg) -> Finding {
    let expected = "a finite loss and gradient, or a clear error; never NaN";
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    for (case, perturb) in [
        ("logits ±1e4", Perturb::Extreme),
        ("-inf entries at targets", Perturb::NegInf),
        ("-inf rows at prompt and padding", Perturb::NegInfRows),
    ] {
        match ctx.run(&cfg.with(perturb)) {
            Ok(o) if o.requires_grad && !all_finite(&o.grad) => {
                problems.push(format!("{case}: loss {:.4} but a NaN/inf gradient", o.loss));
            }
            Ok(o) => parts.push(format!("{case}: {:.4}", o.loss)),
            Err(StepError::Failed(m)) => parts.push(format!("{case}: refused ({m})")),
            Err(StepError::NotFinite(m)) => problems.push(format!("{case}: {m}")),
            Err(StepError::Panic(m)) => problems.push(format!("{case}: {m}")),
        }
    }
    if problems.is_empty() {
        Finding::new(Property::Stability, true, parts.join("; "), expected)
    } else {
        let mut m = shown(&problems, 3);
        if !parts.is_empty() {
            m += &format!("; {}", parts.join("; "));
        }
        Finding::new(Property::Stability, false, m, expected)
    }
}

// ---------------------------------------------------------------- divergence

fn resolve(
    arg: &FormArg,
    entry: &PluginEntry,
    params: &[(String, String)],
) -> Result<String, String> {
    match arg {
        FormArg::Fixed(v) => Ok(v.clone()),
        FormArg::Param(p) => params
            .iter()
            .rev()
            .find(|(k, _)| k == p)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                entry
                    .params
                    .iter()
                    .find(|x| &x.name == p)
                    .map(|x| x.default.clone())
            })
            .ok_or_else(|| format!("the loss form refers to ${p}, which is not a parameter")),
    }
}

fn number(s: &str, what: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .map_err(|_| format!("the loss form's {what} '{s}' is not a number"))
}

/// The resolved closed form.
struct Form {
    divergence: Option<(String, Divergence)>,
    beta: Option<f64>,
    temperature: f64,
    mle_weight: f64,
}

impl Form {
    fn resolve(
        f: &LossForm,
        entry: &PluginEntry,
        params: &[(String, String)],
    ) -> Result<Form, String> {
        let beta = match &f.beta {
            Some(b) => Some(number(&resolve(b, entry, params)?, "beta")?),
            None => None,
        };
        let divergence = match &f.divergence {
            Some(d) => {
                let name = resolve(d, entry, params)?;
                let d = Divergence::parse(&name, beta.unwrap_or(f64::NAN))
                    .map_err(|e| format!("the declared divergence '{name}': {e}"))?;
                Some((name, d))
            }
            None => None,
        };
        Ok(Form {
            divergence,
            beta,
            temperature: number(&resolve(&f.temperature, entry, params)?, "temperature")?,
            mle_weight: number(&resolve(&f.mle_weight, entry, params)?, "mle_weight")?,
        })
    }

    fn describe(&self) -> String {
        let d = match &self.divergence {
            Some((
                name,
                Divergence::Jsd(b) | Divergence::SkewKl(b) | Divergence::SkewReverseKl(b),
            )) => {
                format!("{name}(β={b})")
            }
            Some((name, _)) => name.clone(),
            None => "MLE only".to_string(),
        };
        format!(
            "{d}, temperature {}, mle_weight {}",
            self.temperature, self.mle_weight
        )
    }
}

/// `divergence_loss(d) + w · mle_loss` on the batch of `o`, with the toy models' exact logits.
fn closed_form(
    o: &StepOut,
    d: Option<Divergence>,
    temperature: f64,
    mle_weight: f64,
) -> Result<f64, String> {
    let (st, tt) = toy::tables();
    let u = &o.used;
    let s = on_rows(toy::lookup(&st, &u.input_ids), &u.loss_mask);
    let t = on_rows(toy::lookup(&tt, &u.input_ids), &u.loss_mask);
    let mut v = 0.0;
    if let Some(d) = d {
        v += divergence_loss(d, &s, &t, &u.loss_mask, u.norm, temperature)
            .map_err(|e| e.to_string())?
            .double_value(&[]);
    }
    if mle_weight != 0.0 {
        v += mle_weight
            * mle_loss(&s, &u.labels, u.norm, IGNORE)
                .map_err(|e| e.to_string())?
                .double_value(&[]);
    }
    Ok(v)
}

/// Which other closed form the measured value matches, if any (a diagnosis of a mismatch).
fn diagnose(o: &StepOut, form: &Form) -> Option<String> {
    let beta = form.beta.unwrap_or(0.5);
    let divs = [
        ("fkl", Divergence::ForwardKl),
        ("rkl", Divergence::ReverseKl),
        ("jsd", Divergence::Jsd(beta)),
        ("tv", Divergence::TotalVariation),
        ("skl", Divergence::SkewKl(beta)),
        ("srkl", Divergence::SkewReverseKl(beta)),
    ];
    for (name, d) in divs {
        for t in [form.temperature, 1.0] {
            for w in [form.mle_weight, 0.0, 1.0, 0.5] {
                if let Ok(v) = closed_form(o, Some(d), t, w) {
                    if close(o.loss, v, TOLERANCE) {
                        return Some(format!(
                            "it equals {name} at temperature {t} with mle_weight {w}"
                        ));
                    }
                }
            }
        }
    }
    None
}

fn divergence(ctx: &Probe<'_>, cfg: &StepCfg) -> Finding {
    let expected = "the loss equals its declared closed form (kidbench-kd) within 1e-5";
    let form = match &ctx.entry.loss_form {
        None => {
            return Finding::skip(
                Property::Divergence,
                "declares no closed form (Method::loss_form): nothing to compare".to_string(),
            )
        }
        Some(Err(e)) => {
            return Finding::new(
                Property::Divergence,
                false,
                format!("its loss-form declaration cannot be read: {e}"),
                expected,
            )
        }
        Some(Ok(f)) => f,
    };
    // A divergence chosen by a choice parameter is checked at every choice.
    let variants: Vec<Vec<(String, String)>> = match &form.divergence {
        Some(FormArg::Param(p)) => match ctx.entry.params.iter().find(|x| &x.name == p) {
            Some(x) if x.kind == ParamKind::Choice => x
                .choices
                .iter()
                .map(|c| {
                    let mut v = ctx.params.to_vec();
                    v.retain(|(k, _)| k != p);
                    v.push((p.clone(), c.clone()));
                    v
                })
                .collect(),
            _ => vec![ctx.params.to_vec()],
        },
        _ => vec![ctx.params.to_vec()],
    };
    let mut f = Finding::new(Property::Divergence, true, String::new(), expected);
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    for params in &variants {
        let resolved = match Form::resolve(form, ctx.entry, params) {
            Ok(r) => r,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let o = ctx
            .entry
            .create(params)
            .map_err(|e| e.to_string())
            .and_then(|m| run_step(&m, cfg).map_err(|e| e.message().to_string()));
        let o = match o {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{}: the step fails: {e}", resolved.describe()));
                continue;
            }
        };
        let want = closed_form(
            &o,
            resolved.divergence.as_ref().map(|d| d.1),
            resolved.temperature,
            resolved.mle_weight,
        );
        let want = match want {
            Ok(w) => w,
            Err(e) => {
                problems.push(format!("{}: {e}", resolved.describe()));
                continue;
            }
        };
        let label = resolved.describe();
        let delta = (o.loss - want).abs();
        let key = resolved
            .divergence
            .as_ref()
            .map_or("mle".to_string(), |d| d.0.clone());
        f = f
            .value(&format!("{key}.measured"), o.loss)
            .value(&format!("{key}.expected"), want);
        if close(o.loss, want, TOLERANCE) {
            parts.push(format!(
                "{label}: loss {:.6} = closed form {want:.6} (Δ {delta:.1e})",
                o.loss
            ));
        } else {
            let why = diagnose(&o, &resolved)
                .map(|d| format!("; {d}: a swapped direction, a temperature or a weight that differs from the declaration (TRL PR #4935, #5731)"))
                .unwrap_or_default();
            problems.push(format!(
                "{label}: loss {:.6} ≠ closed form {want:.6} (Δ {delta:.3e}){why}",
                o.loss
            ));
        }
    }
    f.measured = parts.join("; ");
    if !problems.is_empty() {
        f.outcome = Outcome::Fail;
        f.measured = if parts.is_empty() {
            shown(&problems, 3)
        } else {
            format!("{}; {}", shown(&problems, 3), f.measured)
        };
    }
    f
}

#[cfg(test)]
mod tests;
