//! The resolved plan of a run: everything that decides what a run computes, with every default
//! filled in, resolved once from the arguments (or a sweep cell). Its hash is the identity of the
//! run (the results folder), of a sweep cell (its folder), and, through the sub-keys below, of
//! every cached artifact (tokenizer, teacher, student init, teacher scores).
//!
//! What is NOT in the plan, because it does not change results: where output goes (`--out`),
//! `--quiet`, `--resume`, where plugins and data are looked for (their contents are: plugin
//! versions, file and database checksums).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use kidbench_plugin_host::{ParamInfo, ParamKind, PluginEntry, Registry};
use kidbench_train::method::MethodSpec;
use kidbench_train::presets::Resolved;
use kidbench_train::trainer::TrainConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::args::{Budget, RunArgs, TIME_BUDGET_STEP_CAP};
use crate::context::Context;

/// Version of the plan layout; part of every hash, bumped when a field changes meaning.
pub const PLAN_FORMAT: u32 = 1;

/// SHA-256 (hex) of a value's JSON text. Struct fields serialize in declaration order and maps
/// are `BTreeMap`s, so the text, and the hash, is a function of the value alone.
pub fn hash_of<T: Serialize>(v: &T) -> String {
    let text = serde_json::to_string(v).expect("plan values serialize");
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    hex::encode(h.finalize())
}

/// Versions that change what a run computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub kidbench: String,
    /// The evaluator (`kidbench-sql`): its comparison rules decide EX.
    pub evaluator: String,
    pub plugin_abi: String,
    pub libtorch: String,
    pub tch: String,
}

impl Versions {
    pub fn current() -> Versions {
        Versions {
            kidbench: env!("CARGO_PKG_VERSION").into(),
            evaluator: kidbench_sql::VERSION.into(),
            plugin_abi: kidbench_plugin_host::ABI_VERSION.to_string(),
            libtorch: env!("KIDBENCH_LIBTORCH").into(),
            tch: "0.24.0".into(),
        }
    }
}

/// One split's data, by content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitPlan {
    /// Question and schema files: file name → SHA-256 (names, not paths: the same files in
    /// another folder are the same data).
    pub files: BTreeMap<String, String>,
    /// SHA-256 over the sorted `db_id → SHA-256` list of the databases the split uses.
    pub databases: String,
    /// Usable questions (after the limit; those whose database is present).
    pub questions: usize,
    /// Questions left out because their database file is missing.
    pub skipped_missing_database: usize,
    /// `--max-train` / `--max-dev`.
    pub limit: Option<usize>,
}

/// The benchmark, by content, and how prompts are built from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataPlan {
    pub benchmark: String,
    pub train: SplitPlan,
    pub dev: SplitPlan,
    pub prompt_sample_values: usize,
    pub prompt_style: serde_json::Value,
}

/// The tokenizer: trained (BPE on the train split, cached by `key`) or a model's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerPlan {
    /// `bpe` or `hf:<preset>`.
    pub source: String,
    pub vocab_size: usize,
    /// Cache key of a trained tokenizer; the local model's files digest otherwise.
    pub key: String,
}

/// Where a model's architecture and initial weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSource {
    /// A from-scratch preset: its specification.
    Scratch { spec: serde_json::Value },
    /// A local HF folder, by content ([`folder_digest`]).
    Local { files: BTreeMap<String, String> },
}

/// A model trained with SFT and cached (the teacher, the student warm-up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftModelPlan {
    pub preset: String,
    pub source: ModelSource,
    pub max_prompt_tokens: usize,
    pub max_target_tokens: usize,
    pub train: TrainConfig,
    /// `--teacher-lora`: only LoRA adapters train (then merged into the cached model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraPlan>,
    /// The run of `train` ended after this many steps (`--student-from-teacher-step`: the
    /// teacher's run at an earlier step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<usize>,
    /// Cache key: a hash of the fields above with the train data and the tokenizer.
    pub key: String,
}

/// LoRA fine-tuning of a cached SFT model (`--teacher-lora`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraPlan {
    pub r: i64,
    pub alpha: f64,
    /// Linear modules with adapters (`q_proj`, ..., `down_proj`), in canonical order.
    pub targets: Vec<String>,
}

/// Peak learning rate of a LoRA teacher when `--teacher-lr` is not given.
pub const LORA_DEFAULT_LR: f64 = 2e-4;

impl LoraPlan {
    /// `R`, or `r=R[,alpha=A][,targets=q_proj+v_proj]` (alpha defaults to 2R, targets to every
    /// linear layer); errors name `--teacher-lora`.
    pub fn parse(spec: &str) -> anyhow::Result<LoraPlan> {
        let all = kidbench_model::lora::ALL_TARGETS;
        let bad = |m: String| anyhow::anyhow!("--teacher-lora {spec}: {m}");
        let rank = |v: &str| -> anyhow::Result<i64> {
            match v.trim().parse::<i64>() {
                Ok(r) if r > 0 => Ok(r),
                _ => Err(bad(format!(
                    "the rank must be a positive integer, got '{}'",
                    v.trim()
                ))),
            }
        };
        let (mut r, mut alpha, mut targets) = (None, None, None);
        if !spec.contains('=') {
            r = Some(rank(spec)?);
        } else {
            for part in spec.split(',') {
                let (k, v) = part.split_once('=').ok_or_else(|| {
                    bad(format!(
                        "'{part}' is not key=value (keys r, alpha, targets)"
                    ))
                })?;
                match k.trim() {
                    "r" | "rank" => r = Some(rank(v)?),
                    "alpha" => {
                        let a: f64 = v
                            .trim()
                            .parse()
                            .map_err(|_| bad(format!("alpha '{v}' is not a number")))?;
                        if !(a > 0.0 && a.is_finite()) {
                            return Err(bad(format!("alpha must be positive, got {a}")));
                        }
                        alpha = Some(a);
                    }
                    "targets" => {
                        let mut t: Vec<String> = Vec::new();
                        for m in v.split('+').map(str::trim) {
                            if !all.contains(&m) {
                                return Err(bad(format!(
                                    "unknown target module '{m}'; known: {}",
                                    all.join(", ")
                                )));
                            }
                            t.push(m.to_string());
                        }
                        targets = Some(t);
                    }
                    other => {
                        return Err(bad(format!(
                            "unknown key '{other}'; keys: r, alpha, targets"
                        )))
                    }
                }
            }
        }
        let r = r.ok_or_else(|| bad("give the rank: R or r=R".into()))?;
        let targets = targets.unwrap_or_else(|| all.iter().map(|t| t.to_string()).collect());
        // canonical: the order of ALL_TARGETS, each once
        let targets = all
            .iter()
            .filter(|a| targets.iter().any(|t| t == *a))
            .map(|a| a.to_string())
            .collect();
        Ok(LoraPlan {
            r,
            alpha: alpha.unwrap_or(2.0 * r as f64),
            targets,
        })
    }

    /// The adapter configuration.
    pub fn config(&self) -> kidbench_model::LoraConfig {
        let t: Vec<&str> = self.targets.iter().map(String::as_str).collect();
        kidbench_model::LoraConfig::new(self.r, self.alpha, &t)
    }
}

/// Where every student starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StudentInit {
    /// The preset's own initialization (seeded by the run seed for from-scratch presets).
    Preset,
    /// The preset after `steps` SFT steps (`--student-warmup`), trained once and cached.
    Warmup {
        steps: usize,
        model: Box<SftModelPlan>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentPlan {
    pub preset: String,
    pub source: ModelSource,
    pub max_prompt_tokens: usize,
    pub max_target_tokens: usize,
    pub init: StudentInit,
    /// The students' training configuration (every method's).
    pub train: TrainConfig,
}

/// One method of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodPlan {
    pub name: String,
    /// Names the method's files; unique within a run.
    pub label: String,
    /// Every declared parameter, defaults filled in, values in canonical form.
    pub params: BTreeMap<String, String>,
    /// The parameters that differ from their defaults (what tables show).
    pub changed: BTreeMap<String, String>,
    pub plugin_version: String,
}

impl MethodPlan {
    /// `name:key=value,...` with the changed parameters.
    pub fn spec(&self) -> String {
        if self.changed.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, crate::files::params_text(&self.changed))
        }
    }

    /// The parameters to create the plugin with (all of them).
    pub fn param_pairs(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// How models are scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPlan {
    pub compare_mode: String,
    pub gen_batch_size: usize,
    /// SHA-256 of the test suite's manifest, when the benchmark has one built (TS).
    pub test_suite: Option<String>,
    /// `--eval-every`: learning-curve points.
    pub eval_every: Option<usize>,
    pub curve_questions: usize,
}

/// Everything that decides what a run computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub format: u32,
    pub versions: Versions,
    pub data: DataPlan,
    pub tokenizer: TokenizerPlan,
    pub teacher: SftModelPlan,
    pub student: StudentPlan,
    pub methods: Vec<MethodPlan>,
    /// The students' budget (`steps=N` or `time=Ts`).
    pub budget: String,
    /// Seed of the students (initialization, data order, masking, sampling).
    pub seed: u64,
    /// Seed of the teacher and the student warm-up.
    pub teacher_seed: u64,
    /// `cpu` or `cuda`.
    pub device: String,
    /// `--dtype` when it is not the device's default (fp32 on CPU, bf16 on CUDA), which the
    /// device implies; absent otherwise, so the plans of default runs keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    pub eval: EvalPlan,
}

impl RunPlan {
    /// The identity of the run.
    pub fn hash(&self) -> String {
        hash_of(self)
    }

    /// `<benchmark>-<teacher>-<student>-s<seed>-<hash>`: the results folder's name.
    pub fn run_id(&self) -> String {
        format!(
            "{}-{}-{}-s{}-{}",
            file_safe(&self.data.benchmark),
            file_safe(&self.teacher.preset),
            file_safe(&self.student.preset),
            self.seed,
            &self.hash()[..12]
        )
    }

    /// The key of the teacher's dev scores: the teacher, the dev data and how it is scored.
    pub fn teacher_score_key(&self) -> String {
        hash_of(&with_dtype(
            serde_json::json!({
                "format": PLAN_FORMAT,
                "versions": self.versions,
                "teacher": self.teacher.key,
                "dev": self.data.dev,
                "prompt": [self.data.prompt_sample_values, &self.data.prompt_style],
                "eval": self.eval,
                "device": self.device,
            }),
            self.dtype.as_deref(),
        ))
    }

    /// The key of the student init's dev scores (with `--student-warmup`).
    pub fn init_score_key(&self) -> Option<String> {
        match &self.student.init {
            StudentInit::Preset => None,
            StudentInit::Warmup { model, .. } => Some(hash_of(&with_dtype(
                serde_json::json!({
                    "format": PLAN_FORMAT,
                    "versions": self.versions,
                    "init": model.key,
                    "dev": self.data.dev,
                    "prompt": [self.data.prompt_sample_values, &self.data.prompt_style],
                    "eval": self.eval,
                    "device": self.device,
                }),
                self.dtype.as_deref(),
            ))),
        }
    }

    /// The same plan with one method: a sweep cell's plan.
    pub fn with_methods(&self, methods: Vec<MethodPlan>) -> RunPlan {
        RunPlan {
            methods,
            ..self.clone()
        }
    }

    /// `steps=N` or `time=Ts`, and whether it is a time budget.
    pub fn time_budget(&self) -> Option<f64> {
        self.student.train.time_budget_seconds
    }
}

pub use kidbench_train::method::file_safe;

/// `key` with `"dtype"` added when the run's dtype is not the device's default (a default run's
/// keys stay what they were before `--dtype` existed).
fn with_dtype(mut key: serde_json::Value, dtype: Option<&str>) -> serde_json::Value {
    if let (Some(d), Some(obj)) = (dtype, key.as_object_mut()) {
        obj.insert("dtype".into(), d.into());
    }
    key
}

/// Files of a local model folder by content: name → SHA-256, or `size:<bytes>` for files over
/// 2 GiB (hashing those would cost more than the run's start-up; their size and name stand in).
pub fn folder_digest(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    const HASH_LIMIT: u64 = 2 << 30;
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let p = e.path();
        if !p.is_file() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        let v = if len > HASH_LIMIT {
            format!("size:{len}")
        } else {
            kidbench_train::bench::sha256_file(&p)?
        };
        out.insert(name, v);
    }
    Ok(out)
}

fn model_source(r: &Resolved) -> anyhow::Result<ModelSource> {
    Ok(match r {
        Resolved::Scratch(s) => ModelSource::Scratch {
            spec: serde_json::to_value(s)?,
        },
        Resolved::Local { dir, .. } => ModelSource::Local {
            files: folder_digest(dir)?,
        },
    })
}

/// The canonical text of a parameter value of `kind` (so `0.30` and `0.3`, or a bare boolean
/// flag and `true`, are the same value), or an error naming what is allowed.
pub fn canonical_value(method: &str, p: &ParamInfo, v: &str) -> anyhow::Result<String> {
    let v = v.trim();
    let bad = |what: &str| anyhow::anyhow!("method '{method}': parameter {}={v:?} {what}", p.name);
    Ok(match p.kind {
        ParamKind::Float => {
            let x: f64 = v.parse().map_err(|_| bad("is not a number"))?;
            if !x.is_finite() {
                return Err(bad("is not a finite number"));
            }
            if let Some((lo, hi)) = p.range {
                if x < lo || x > hi {
                    return Err(bad(&format!("is outside [{lo}, {hi}]")));
                }
            }
            format!("{x}")
        }
        ParamKind::Int => {
            let x: i64 = v.parse().map_err(|_| bad("is not an integer"))?;
            if let Some((lo, hi)) = p.range {
                if (x as f64) < lo || (x as f64) > hi {
                    return Err(bad(&format!("is outside [{lo}, {hi}]")));
                }
            }
            x.to_string()
        }
        ParamKind::Bool => match v.to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "yes" | "on" => "true".into(),
            "false" | "0" | "no" | "off" => "false".into(),
            _ => return Err(bad("is not a boolean (true or false)")),
        },
        ParamKind::Choice => {
            if !p.choices.iter().any(|c| c == v) {
                return Err(bad(&format!("is not one of: {}", p.choices.join(", "))));
            }
            v.to_string()
        }
        ParamKind::Text => v.to_string(),
    })
}

/// A method spec resolved against its plugin: parameters checked, canonical, defaults filled.
pub fn method_plan(entry: &PluginEntry, spec: &MethodSpec) -> anyhow::Result<MethodPlan> {
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &spec.params {
        let Some(p) = entry.params.iter().find(|p| &p.name == k) else {
            let names: Vec<&str> = entry.params.iter().map(|p| p.name.as_str()).collect();
            anyhow::bail!(
                "plugin '{}' ({}): unknown parameter '{k}'; valid parameters: {}",
                entry.name,
                entry.path.display(),
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            );
        };
        let c = canonical_value(&entry.name, p, v)?;
        if let Some(prev) = given.insert(k.clone(), c) {
            anyhow::bail!(
                "method '{}': parameter '{k}' is given twice ({k}={prev} and {k}={v}); give it once",
                spec.spec()
            );
        }
    }
    let mut params = BTreeMap::new();
    let mut changed = BTreeMap::new();
    for p in &entry.params {
        let default = canonical_value(&entry.name, p, &p.default)
            .with_context(|| format!("the plugin's default of '{}'", p.name))?;
        let v = given
            .get(&p.name)
            .cloned()
            .unwrap_or_else(|| default.clone());
        if v != default {
            changed.insert(p.name.clone(), v.clone());
        }
        params.insert(p.name.clone(), v);
    }
    let label = if changed.is_empty() {
        file_safe(&entry.name)
    } else {
        let p: Vec<String> = changed.iter().map(|(k, v)| format!("{k}-{v}")).collect();
        file_safe(&format!("{}_{}", entry.name, p.join("_")))
    };
    Ok(MethodPlan {
        name: entry.name.clone(),
        label,
        params,
        changed,
        plugin_version: entry.version.clone(),
    })
}

/// `--methods` resolved against the plugins: each exists, its parameters are valid, and no
/// method is listed twice (after canonicalization: `kid:alpha=0.30` is `kid:alpha=0.3`).
pub fn method_plans(registry: &Registry, methods: &[String]) -> anyhow::Result<Vec<MethodPlan>> {
    let specs = kidbench_train::method::parse_specs(methods)?;
    let mut out: Vec<MethodPlan> = Vec::new();
    for s in &specs {
        let entry = registry.get(&s.name)?;
        let m = method_plan(entry, s)?;
        if let Some(o) = out.iter().find(|o| o.label == m.label) {
            anyhow::bail!(
                "--methods lists the same method twice: '{}' and '{}' are both {}",
                o.spec(),
                s.spec(),
                m.spec()
            );
        }
        out.push(m);
    }
    Ok(out)
}

/// The students' (steps, time budget) from `--steps` and `--budget`.
fn student_budget(args: &RunArgs) -> anyhow::Result<(Option<usize>, Option<f64>)> {
    if args.steps == Some(0) {
        anyhow::bail!("--steps 0: a student must train at least 1 step");
    }
    match args.budget {
        None => Ok((args.steps, None)),
        Some(Budget::Steps(n)) => {
            if let Some(s) = args.steps.filter(|&s| s != n) {
                anyhow::bail!("--steps {s} and --budget steps={n} disagree; give one of them");
            }
            Ok((Some(n), None))
        }
        Some(Budget::Time(t)) => Ok((Some(args.steps.unwrap_or(TIME_BUDGET_STEP_CAP)), Some(t))),
    }
}

/// A training configuration with the preset's defaults where a value is not given.
pub fn train_config(
    preset: &Resolved,
    steps: Option<usize>,
    lr: Option<f64>,
    batch_size: usize,
    micro_batch_size: Option<usize>,
    seed: u64,
) -> TrainConfig {
    let (def_steps, def_lr) = match preset {
        Resolved::Scratch(s) => (s.default_steps, s.default_lr),
        Resolved::Local { .. } => (1000, 2e-5),
    };
    let steps = steps.unwrap_or(def_steps);
    TrainConfig {
        steps,
        batch_size,
        micro_batch_size: micro_batch_size.unwrap_or(batch_size),
        lr: lr.unwrap_or(def_lr),
        warmup_steps: (steps / 20).max(1),
        seed,
        checkpoint_every: 100,
        log_every: 10,
        ..TrainConfig::default()
    }
}

fn sft_model_plan(
    ctx: &Context,
    tokenizer: &TokenizerPlan,
    resolved: &Resolved,
    train: TrainConfig,
    device: &str,
    dtype: Option<&str>,
    lora: Option<LoraPlan>,
) -> anyhow::Result<SftModelPlan> {
    let source = model_source(resolved)?;
    let mut key = with_dtype(
        serde_json::json!({
            "format": PLAN_FORMAT,
            "preset": resolved.name(),
            "source": source,
            // The train split by content, not the benchmark's name: synth-syn trains on synth's
            // train split, so it distils synth's teacher.
            "train_data": ctx.data_plan.train,
            "prompt": [ctx.data_plan.prompt_sample_values, &ctx.data_plan.prompt_style],
            "tokenizer": tokenizer,
            "train": train,
            "max_prompt": resolved.max_prompt_tokens(),
            "max_target": resolved.max_target_tokens(),
            "device": device,
            "libtorch": env!("KIDBENCH_LIBTORCH"),
        }),
        dtype,
    );
    if let (Some(l), Some(obj)) = (&lora, key.as_object_mut()) {
        obj.insert("lora".into(), serde_json::to_value(l)?);
    }
    let key = hash_of(&key);
    Ok(SftModelPlan {
        preset: resolved.name().to_string(),
        source,
        max_prompt_tokens: resolved.max_prompt_tokens(),
        max_target_tokens: resolved.max_target_tokens(),
        train,
        lora,
        end_at: None,
        key,
    })
}

/// The tokenizer plan: a local model's own (teacher and student must agree), else a BPE trained
/// on the train split with `vocab_size` tokens.
fn tokenizer_plan(ctx: &Context, vocab_size: usize) -> anyhow::Result<TokenizerPlan> {
    for m in [&ctx.teacher, &ctx.student] {
        if let Resolved::Local { dir, name, .. } = m {
            let files: BTreeMap<String, String> = ["tokenizer.json", "tokenizer_config.json"]
                .iter()
                .filter(|f| dir.join(f).is_file())
                .map(|f| {
                    Ok((
                        f.to_string(),
                        kidbench_train::bench::sha256_file(&dir.join(f))?,
                    ))
                })
                .collect::<anyhow::Result<_>>()?;
            return Ok(TokenizerPlan {
                source: format!("hf:{name}"),
                vocab_size: 0,
                key: hash_of(&files),
            });
        }
    }
    if vocab_size < 260 {
        anyhow::bail!("--vocab-size {vocab_size}: a byte-level BPE needs at least 260 tokens");
    }
    Ok(TokenizerPlan {
        source: "bpe".into(),
        vocab_size,
        key: hash_of(&serde_json::json!({
            "v": 2,
            "vocab_size": vocab_size,
            "words": kidbench_tokenizer::WORD_PATTERN,
            "train_data": ctx.data_plan.train,
            "prompt": [ctx.data_plan.prompt_sample_values, &ctx.data_plan.prompt_style],
        })),
    })
}

fn check_lr(flag: &str, lr: Option<f64>) -> anyhow::Result<()> {
    match lr {
        Some(x) if !(x > 0.0 && x.is_finite()) => {
            anyhow::bail!("{flag} {x}: the learning rate must be a positive number")
        }
        _ => Ok(()),
    }
}

impl RunPlan {
    /// Resolves `args` against the opened benchmark and models (`ctx`) and the methods'
    /// plugins. Every setting is checked here, before anything is trained.
    pub fn resolve(
        args: &RunArgs,
        ctx: &Context,
        methods: Vec<MethodPlan>,
    ) -> anyhow::Result<RunPlan> {
        let c = &args.common;
        check_lr("--lr", args.lr)?;
        check_lr("--teacher-lr", args.teacher_lr)?;
        if c.batch_size == 0 {
            anyhow::bail!("--batch-size 0: a step needs at least one example");
        }
        for (flag, m) in [
            ("--micro-batch-size", c.micro_batch_size),
            ("--teacher-micro-batch-size", args.teacher_micro_batch_size),
        ] {
            match m {
                Some(0) => anyhow::bail!("{flag} 0: a micro-batch needs at least one example"),
                Some(m) if m > c.batch_size => anyhow::bail!(
                    "{flag} {m} is larger than --batch-size {}: a micro-batch is a part of a step's batch",
                    c.batch_size
                ),
                _ => {}
            }
        }
        if args.teacher_steps == Some(0) && matches!(ctx.teacher, Resolved::Scratch(_)) {
            anyhow::bail!(
                "--teacher-steps 0 with the from-scratch preset '{}' would distil an untrained teacher",
                ctx.teacher.name()
            );
        }
        if args.eval_every == Some(0) {
            anyhow::bail!("--eval-every 0: give a number of steps, or leave it out");
        }
        if args.gen_batch_size == 0 {
            anyhow::bail!("--gen-batch-size 0: a generation batch needs at least one prompt");
        }
        let device = match ctx.device {
            tch::Device::Cpu => "cpu".to_string(),
            _ => "cuda".to_string(),
        };
        let tokenizer = tokenizer_plan(ctx, c.vocab_size)?;
        let teacher_train = train_config(
            &ctx.teacher,
            args.teacher_steps,
            args.teacher_lr,
            c.batch_size,
            args.teacher_micro_batch_size,
            args.teacher_seed,
        );
        let lora = args
            .teacher_lora
            .as_deref()
            .map(LoraPlan::parse)
            .transpose()?;
        let mut teacher_train = teacher_train;
        if lora.is_some() && args.teacher_lr.is_none() {
            teacher_train.lr = LORA_DEFAULT_LR;
        }
        let dtype = (ctx.dtype != kidbench_model::Dtype::default_for(ctx.device))
            .then(|| ctx.dtype.to_string());
        let teacher = sft_model_plan(
            ctx,
            &tokenizer,
            &ctx.teacher,
            teacher_train,
            &device,
            dtype.as_deref(),
            lora,
        )?;
        let (steps, time_budget) = student_budget(args)?;
        let mut student_train = train_config(
            &ctx.student,
            steps,
            args.lr,
            c.batch_size,
            c.micro_batch_size,
            c.seed,
        );
        student_train.checkpoint_every = args.checkpoint_every;
        if let Some(w) = args.warmup_steps {
            if time_budget.is_some() {
                anyhow::bail!(
                    "--warmup-steps with --budget time=...: a time budget warms up over a fixed share \
                     of its time"
                );
            }
            if w > student_train.steps {
                anyhow::bail!(
                    "--warmup-steps {w} is more than the {} training steps",
                    student_train.steps
                );
            }
            student_train.warmup_steps = w;
        }
        if time_budget.is_some() {
            // the warmup is a share of the budget (trainer::TIME_WARMUP_FRACTION)
            student_train.warmup_steps = 0;
        }
        student_train.time_budget_seconds = time_budget;
        student_train
            .validate()
            .context("the students' training configuration")?;
        let init = match (args.student_warmup, args.student_from_teacher_step) {
            (_, Some(step)) => {
                let flag = format!("--student-from-teacher-step {step}");
                if step == 0 || step >= teacher.train.steps {
                    anyhow::bail!(
                        "{flag}: give a step between 1 and the teacher's {} steps (--teacher-steps)",
                        teacher.train.steps
                    );
                }
                if teacher.lora.is_some() {
                    anyhow::bail!(
                        "{flag}: a LoRA teacher's run trains adapters only; use --student-warmup"
                    );
                }
                if ctx.student.name() != ctx.teacher.name()
                    || model_source(&ctx.student)? != teacher.source
                    || args.student_layers.is_some()
                {
                    anyhow::bail!(
                        "{flag}: the student ({}) must be the teacher's model ({}), a checkpoint of its run",
                        ctx.student.name(),
                        ctx.teacher.name()
                    );
                }
                // the teacher's run, ended at `step`: its key is the run's and the step
                let mut model = teacher.clone();
                model.end_at = Some(step);
                model.key = hash_of(&serde_json::json!({"run": teacher.key, "end_at": step}));
                StudentInit::Warmup {
                    steps: step,
                    model: Box::new(model),
                }
            }
            (None, None) => StudentInit::Preset,
            (Some(0), None) => {
                anyhow::bail!("--student-warmup 0: give a number of SFT steps, or leave it out")
            }
            (Some(steps), None) => {
                let cfg = train_config(
                    &ctx.student,
                    Some(steps),
                    None,
                    c.batch_size,
                    args.teacher_micro_batch_size,
                    args.teacher_seed,
                );
                StudentInit::Warmup {
                    steps,
                    model: Box::new(sft_model_plan(
                        ctx,
                        &tokenizer,
                        &ctx.student,
                        cfg,
                        &device,
                        dtype.as_deref(),
                        None,
                    )?),
                }
            }
        };
        let budget = match time_budget {
            Some(t) => Budget::Time(t).to_string(),
            None => Budget::Steps(student_train.steps).to_string(),
        };
        Ok(RunPlan {
            format: PLAN_FORMAT,
            versions: Versions::current(),
            data: ctx.data_plan.clone(),
            tokenizer,
            teacher,
            student: StudentPlan {
                preset: ctx.student.name().to_string(),
                source: model_source(&ctx.student)?,
                max_prompt_tokens: ctx.student.max_prompt_tokens(),
                max_target_tokens: ctx.student.max_target_tokens(),
                init,
                train: student_train,
            },
            methods,
            budget,
            seed: c.seed,
            teacher_seed: args.teacher_seed,
            device,
            dtype,
            eval: EvalPlan {
                compare_mode: ctx.compare_mode.as_str().to_string(),
                gen_batch_size: args.gen_batch_size,
                test_suite: ctx.suite_manifest_sha.clone(),
                eval_every: args.eval_every,
                curve_questions: args.curve_questions,
            },
        })
    }
}
