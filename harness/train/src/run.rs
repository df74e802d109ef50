//! `kidbench run` and `kidbench teacher`: tokenizer, teacher (trained once and cached), students
//! per method (each a KD plugin), dev predictions, execution scoring (EX, and TS when the
//! benchmark has a test suite) and the results folder (`results.csv`, `results.md`, ...).
//!
//! Every method of a run shares the student initialization (same seed), the teacher, the data
//! order, the budget, the batch, the learning-rate schedule and the seed. A method that fails
//! (plugin error, non-finite loss, panic) is recorded with its error; the others still run.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::Context;
use kidbench_sql::benchmark::{Benchmark, Split};
use kidbench_sql::eval::{evaluate, summarize, EvalOptions, Pair, Summary, Verdict};
use kidbench_sql::prompt::PromptOptions;
use kidbench_tokenizer::SqlTokenizer;
use sha2::{Digest, Sha256};
use tch::Device;

use crate::bench::{self, SplitData};
use crate::cache::kidbench_home;
use crate::data::Example;
use crate::host::TokenIds;
use crate::lm::{self, Lm};
use crate::method::{self, MethodSpec};
use crate::presets::{self, Resolved};
use crate::trainer::{self, write_atomic, Timings, TrainConfig, TrainOptions, TrainReport};
use crate::TrainError;
use kidbench_plugin_host::PluginMethod;
use kidbench_testsuite::{Suite, TsSummary};

/// How long each student trains: `steps=N` or `time=<seconds>` (`--budget`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// Exactly this many optimizer steps (the same as `--steps N`).
    Steps(usize),
    /// Train until this many wall-clock seconds are spent; the learning-rate schedule follows
    /// the fraction of the budget used.
    Time(f64),
}

/// Most steps a time budget runs when `--steps` does not cap it.
pub const TIME_BUDGET_STEP_CAP: usize = 10_000_000;

/// `300`, `300s`, `5m`, `1.5h` → seconds.
fn parse_seconds(v: &str) -> Result<f64, String> {
    let v = v.trim();
    let (num, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 's'),
    };
    let not_a_duration = || format!("'{v}' is not a duration (e.g. 90, 90s, 5m, 1.5h)");
    let mult = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        _ => return Err(not_a_duration()),
    };
    let x: f64 = num.trim().parse().map_err(|_| not_a_duration())?;
    if !(x > 0.0 && x.is_finite()) {
        return Err(format!("the time budget must be positive, got '{v}'"));
    }
    Ok(x * mult)
}

impl FromStr for Budget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad budget '{s}': expected steps=N or time=<seconds|5m|1h>");
        let (k, v) = s.split_once('=').ok_or_else(bad)?;
        match k.trim().to_ascii_lowercase().as_str() {
            "steps" => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Budget::Steps(n)),
                _ => Err(format!(
                    "bad budget '{s}': steps must be a positive integer"
                )),
            },
            "time" => parse_seconds(v).map(Budget::Time),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Steps(n) => write!(f, "steps={n}"),
            Budget::Time(t) => write!(f, "time={t}s"),
        }
    }
}

impl serde::Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Options shared by `run` and `teacher`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct CommonArgs {
    /// Benchmark to train on (train split) and score on (dev split).
    #[arg(long, default_value = "synth")]
    pub benchmark: String,
    /// Data directory for benchmarks that live there (Spider, BIRD).
    #[arg(long, env = "KIDBENCH_DATA", default_value = "data")]
    pub data_dir: PathBuf,
    /// kidbench's databases folder (generated benchmarks such as synth).
    #[arg(long, env = "KIDBENCH_DATABASES", default_value = "databases")]
    pub databases_dir: PathBuf,
    /// Examples per optimizer step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Examples per forward/backward (gradient accumulation when below --batch-size).
    #[arg(long)]
    pub micro_batch_size: Option<usize>,
    /// Seed of initialization and data order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// auto | cpu | cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Vocabulary size of the BPE tokenizer trained for from-scratch presets.
    #[arg(long, default_value_t = 2048)]
    pub vocab_size: usize,
    /// Use at most this many training questions (quick runs, tests).
    #[arg(long)]
    pub max_train: Option<usize>,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `kidbench teacher`: fine-tune a teacher with SFT and cache it.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct TeacherArgs {
    /// Teacher preset (see docs/TRAINING.md).
    #[arg(long = "model", default_value = "tiny-m")]
    pub model: String,
    /// Local folder of a named HF model (default $KIDBENCH_MODELS/<name>).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Training steps (default: the preset's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Peak learning rate (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `kidbench run`: teacher + students per method, scored on the dev split.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct RunArgs {
    /// Methods to train students with, comma-separated specs `name[:key=value,...]`, e.g.
    /// `sft,fkd,kid:alpha=0.3,strategy=hard` (a `key=value` piece belongs to the method before
    /// it; repeatable). `kidbench plugins` lists the methods and their parameters.
    #[arg(long, default_value = "sft")]
    pub methods: Vec<String>,
    /// Extra folder to search for method plugins (searched first; repeatable).
    #[arg(long = "plugin-dir")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Training budget of every student: `steps=N` (the same as --steps N) or
    /// `time=<seconds|90s|5m|1h>` (train until the wall-clock budget is spent; --steps then caps
    /// the steps).
    #[arg(long)]
    pub budget: Option<Budget>,
    /// Teacher preset.
    #[arg(long, default_value = "tiny-m")]
    pub teacher: String,
    /// Student preset.
    #[arg(long, default_value = "tiny-s")]
    pub student: String,
    #[arg(long)]
    pub teacher_dir: Option<PathBuf>,
    #[arg(long)]
    pub student_dir: Option<PathBuf>,
    /// Student training steps (default: the preset's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Teacher training steps (default: the preset's).
    #[arg(long)]
    pub teacher_steps: Option<usize>,
    /// Student peak learning rate (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Start every student from the student preset fine-tuned with SFT for this many steps
    /// (trained once and cached like a teacher) instead of its random initialization: the
    /// from-scratch stand-in for the paper's pretrained students. It is scored as
    /// `student_init`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_warmup: Option<usize>,
    /// Results root; the run writes `<out>/<run-id>/`.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Continue an interrupted run (same arguments) from its checkpoints.
    #[arg(long)]
    pub resume: bool,
    /// Score at most this many dev questions.
    #[arg(long)]
    pub max_dev: Option<usize>,
    /// Prompts per generation batch.
    #[arg(long, default_value_t = 64)]
    pub gen_batch_size: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl Default for CommonArgs {
    fn default() -> Self {
        CommonArgs {
            benchmark: "synth".into(),
            data_dir: "data".into(),
            databases_dir: "databases".into(),
            batch_size: 32,
            micro_batch_size: None,
            seed: 42,
            device: "auto".into(),
            vocab_size: 2048,
            max_train: None,
            quiet: false,
        }
    }
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            methods: vec!["sft".into()],
            plugin_dirs: Vec::new(),
            budget: None,
            teacher: "tiny-m".into(),
            student: "tiny-s".into(),
            teacher_dir: None,
            student_dir: None,
            steps: None,
            teacher_steps: None,
            lr: None,
            student_warmup: None,
            out: "results".into(),
            resume: false,
            max_dev: None,
            gen_batch_size: 64,
            common: CommonArgs::default(),
        }
    }
}

/// EX (and TS) of one model on the dev split.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelScore {
    pub name: String,
    pub ex: f64,
    /// (questions, matched) per hardness.
    pub by_hardness: BTreeMap<String, (usize, usize)>,
    pub evaluated: usize,
    /// Test-suite accuracy, when the benchmark has a suite.
    pub ts: Option<f64>,
    /// (questions, TS-correct) per hardness, when the benchmark has a suite.
    pub ts_by_hardness: Option<BTreeMap<String, (usize, usize)>>,
    pub train_seconds: f64,
    pub generate_seconds: f64,
}

/// One method of a run: its spec, whether it completed, and its scores.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MethodSummary {
    pub name: String,
    /// The parameters as given (`key=value,...`).
    pub params: String,
    /// File-name label (`metrics/<label>.jsonl`, `predictions/<label>.sql`, ...).
    pub label: String,
    /// `ok` or `failed`.
    pub status: String,
    pub error: Option<String>,
    /// None when the method failed.
    pub score: Option<ModelScore>,
    pub steps_done: usize,
    pub train_seconds: f64,
    /// Training seconds per step / SFT's (when `sft` is among the methods and completed).
    pub latency_vs_sft: Option<f64>,
    pub timings: Option<Timings>,
}

impl MethodSummary {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// What `run` returns (also written as `summary.json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub dir: PathBuf,
    pub teacher: ModelScore,
    pub teacher_reused: bool,
    /// The students' common starting point when `--student-warmup` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_init: Option<ModelScore>,
    pub methods: Vec<MethodSummary>,
    /// Whether TS was computed (the benchmark has a built test suite).
    pub ts_suite: Option<PathBuf>,
    pub total_seconds: f64,
}

/// What `teacher` returns.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeacherSummary {
    pub dir: PathBuf,
    pub reused: bool,
    pub train_seconds: f64,
    pub final_loss: f64,
}

fn hash_json(v: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(v.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Everything needed to train on a benchmark with given models.
struct Setup {
    bench: Benchmark,
    prompt_options: PromptOptions,
    train: SplitData,
    tok: SqlTokenizer,
    device: Device,
    train_checksums: BTreeMap<String, String>,
}

fn progress_bar(len: usize, label: &str, quiet: bool) -> indicatif::ProgressBar {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(len as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// The tokenizer: a named model's own, else a BPE trained on the train split (cached).
fn tokenizer(
    models: &[&Resolved],
    train: &SplitData,
    prompt_options: &PromptOptions,
    checksums: &BTreeMap<String, String>,
    vocab_size: usize,
) -> anyhow::Result<SqlTokenizer> {
    let mut hf: Option<SqlTokenizer> = None;
    for m in models {
        if let Resolved::Local { dir, spec } = m {
            let t = SqlTokenizer::load(dir).with_context(|| {
                format!(
                    "loading the tokenizer of {} from {}",
                    spec.name,
                    dir.display()
                )
            })?;
            if let Some(first) = &hf {
                kidbench_tokenizer::check_compatible(&t, first)
                    .map_err(|e| TrainError::TokenizerMismatch(e.to_string()))?;
            } else {
                hf = Some(t);
            }
        }
    }
    if let Some(t) = hf {
        return Ok(t);
    }
    let key = hash_json(
        &serde_json::json!({"v": 2, "vocab_size": vocab_size, "words": kidbench_tokenizer::WORD_PATTERN, "data": checksums}),
    );
    let dir = kidbench_home().join("tokenizers").join(&key[..16]);
    if dir.join("tokenizer.json").is_file() {
        return SqlTokenizer::load(&dir)
            .with_context(|| format!("loading the cached tokenizer {}", dir.display()));
    }
    let targets: Vec<String> = train
        .items
        .iter()
        .map(|it| target_text(prompt_options, &it.gold))
        .collect();
    let mut texts: Vec<&str> = Vec::new();
    for (it, target) in train.items.iter().zip(&targets) {
        texts.push(&it.prompt);
        texts.push(target);
    }
    let tok = SqlTokenizer::train(texts, vocab_size).context("training the BPE tokenizer")?;
    tok.save(&dir)
        .with_context(|| format!("saving the tokenizer to {}", dir.display()))?;
    Ok(tok)
}

/// The text a model learns to emit for a gold query: the query itself, or its spaced layout
/// when the prompt style asks for it ([`kidbench_sql::spaced`]).
pub fn target_text(opts: &PromptOptions, gold: &str) -> String {
    if opts.style.spaced_sql() {
        kidbench_sql::spaced::space_sql(gold)
    } else {
        gold.to_string()
    }
}

/// The SQL to execute for a model's output (the inverse of [`target_text`]).
pub fn prediction_sql(opts: &PromptOptions, output: &str) -> String {
    if opts.style.spaced_sql() {
        kidbench_sql::spaced::unspace_sql(output)
    } else {
        output.to_string()
    }
}

/// The CodeS prompt for named models; for from-scratch models the compact layout without sample
/// values (about a third of the tokens: what lets a 0.5M-parameter model learn the task within
/// the default run's CPU budget, see docs/TRAINING.md).
fn prompt_options(models: &[&Resolved]) -> PromptOptions {
    if models.iter().all(|m| matches!(m, Resolved::Scratch(_))) {
        PromptOptions {
            sample_values: 0,
            style: kidbench_sql::prompt::PromptStyle::Spaced,
            ..PromptOptions::default()
        }
    } else {
        PromptOptions::default()
    }
}

fn setup(common: &CommonArgs, models: &[&Resolved]) -> anyhow::Result<Setup> {
    let device = lm::parse_device(&common.device)?;
    let bench = bench::open(
        &common.benchmark,
        &common.data_dir,
        &common.databases_dir,
        !common.quiet,
    )?;
    let prompt_options = prompt_options(models);
    let train = bench::load_split(&bench, Split::Train, common.max_train, &prompt_options)?;
    if train.items.is_empty() {
        anyhow::bail!(
            "benchmark '{}' has no usable training question (databases missing?)",
            bench.name()
        );
    }
    let mut train_checksums = bench::file_checksums(&bench, Split::Train)?;
    train_checksums.insert(
        "prompt_sample_values".into(),
        prompt_options.sample_values.to_string(),
    );
    train_checksums.insert(
        "prompt_style".into(),
        serde_json::to_string(&prompt_options.style)?,
    );
    if let Some(n) = common.max_train {
        train_checksums.insert("max_train".into(), n.to_string());
    }
    let tok = tokenizer(
        models,
        &train,
        &prompt_options,
        &train_checksums,
        common.vocab_size,
    )?;
    Ok(Setup {
        bench,
        prompt_options,
        train,
        tok,
        device,
        train_checksums,
    })
}

fn encode_train(setup: &Setup, preset: &Resolved) -> anyhow::Result<Vec<Example>> {
    let p = presets::lookup(preset.name())?;
    setup
        .train
        .items
        .iter()
        .map(|it| {
            let e = setup
                .tok
                .encode_pair(
                    &it.prompt,
                    &target_text(&setup.prompt_options, &it.gold),
                    p.max_prompt_tokens(),
                    p.max_target_tokens(),
                )
                .with_context(|| format!("encoding train question {}", it.index))?;
            Ok(Example {
                input_ids: e.input_ids,
                prompt_len: e.prompt_len,
            })
        })
        .collect()
}

fn train_config(
    preset: &Resolved,
    common: &CommonArgs,
    steps: Option<usize>,
    lr: Option<f64>,
) -> TrainConfig {
    let (def_steps, def_lr) = match preset {
        Resolved::Scratch(s) => (s.default_steps, s.default_lr),
        Resolved::Local { .. } => (1000, 2e-5),
    };
    let steps = steps.unwrap_or(def_steps).max(1);
    TrainConfig {
        steps,
        batch_size: common.batch_size,
        micro_batch_size: common.micro_batch_size.unwrap_or(common.batch_size),
        lr: lr.unwrap_or(def_lr),
        warmup_steps: (steps / 20).max(1),
        seed: common.seed,
        checkpoint_every: 100,
        log_every: 10,
        ..TrainConfig::default()
    }
}

/// A trained teacher, from the cache or freshly trained into it.
struct Teacher {
    lm: Lm,
    dir: PathBuf,
    reused: bool,
    report: serde_json::Value,
}

/// What a cached SFT model is for: the cache folder and the words of its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Teacher,
    /// The common starting point of the students (`--student-warmup`).
    StudentInit,
}

impl Role {
    fn cache_dir(self) -> &'static str {
        match self {
            Role::Teacher => "teachers",
            Role::StudentInit => "student-inits",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::StudentInit => "student init",
        }
    }
}

/// A model fine-tuned with SFT and cached by a hash of model, data and training config.
fn teacher_model(
    setup: &Setup,
    resolved: &Resolved,
    common: &CommonArgs,
    steps: Option<usize>,
    lr: Option<f64>,
    role: Role,
) -> anyhow::Result<Teacher> {
    let cfg = train_config(resolved, common, steps, lr);
    let p = presets::lookup(resolved.name())?;
    let key = serde_json::json!({
        "v": 1,
        "preset": resolved.name(),
        "model": match resolved {
            Resolved::Scratch(s) => serde_json::to_value(s)?,
            Resolved::Local { dir, .. } => serde_json::json!(bench::sha256_file(&dir.join("config.json"))?),
        },
        "benchmark": setup.bench.name(),
        "data": setup.train_checksums,
        "tokenizer": setup.tok.vocab_sha256(),
        "train": cfg,
        "max_prompt": p.max_prompt_tokens(),
        "max_target": p.max_target_tokens(),
    });
    let hash = hash_json(&key);
    let dir = kidbench_home().join(role.cache_dir()).join(&hash[..16]);
    let done = dir.join("teacher.json");
    if done.is_file() {
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&done)
                .with_context(|| format!("reading {}", done.display()))?,
        )
        .with_context(|| format!("parsing {}", done.display()))?;
        let lm = lm::load_dir(&dir.join("model"), setup.device)?;
        eprintln!(
            "kidbench: reusing the cached {} {}",
            role.label(),
            dir.display()
        );
        return Ok(Teacher {
            lm,
            dir,
            reused: true,
            report,
        });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(
        &dir.join("key.json"),
        serde_json::to_string_pretty(&key)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", dir.join("key.json").display()))?;
    let data = encode_train(setup, resolved)?;
    let lm = lm::initial_model(resolved, &setup.tok, setup.device, common.seed)?;
    let opts = TrainOptions {
        checkpoint_dir: Some(dir.join("checkpoints")),
        resume: true, // a killed teacher training continues where it stopped
        metrics_path: Some(dir.join("metrics.jsonl")),
        progress: !common.quiet,
        label: format!("{} {}", role.label(), resolved.name()),
        stop_after: None,
    };
    let sft = method::builtin_sft()?;
    let report = trainer::train(
        &lm.vs,
        &lm.model,
        None,
        &sft,
        &data,
        &TokenIds::from_tokenizer(&setup.tok),
        &cfg,
        &opts,
    )
    .with_context(|| format!("training {} {}", role.label(), resolved.name()))?;
    lm::save(&dir.join("model"), &lm)?;
    let report = serde_json::to_value(&report)?;
    write_atomic(&done, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("writing {}", done.display()))?;
    let _ = std::fs::remove_dir_all(dir.join("checkpoints"));
    Ok(Teacher {
        lm,
        dir,
        reused: false,
        report,
    })
}

/// `kidbench teacher`.
pub fn teacher(args: &TeacherArgs) -> anyhow::Result<TeacherSummary> {
    let resolved = presets::resolve(&args.model, args.model_dir.as_deref())?;
    let setup = setup(&args.common, &[&resolved])?;
    let t = teacher_model(
        &setup,
        &resolved,
        &args.common,
        args.steps,
        args.lr,
        Role::Teacher,
    )?;
    Ok(TeacherSummary {
        dir: t.dir,
        reused: t.reused,
        train_seconds: t.report["train_seconds"].as_f64().unwrap_or(0.0),
        final_loss: t.report["final_loss"].as_f64().unwrap_or(f64::NAN),
    })
}

struct Scored {
    score: ModelScore,
    predictions: Vec<String>,
    verdicts: Vec<Verdict>,
    summary: Summary,
    ts: Option<TsSummary>,
    new_tokens: usize,
}

impl Scored {
    /// `predictions/<label>.sql` (one query a line) and `verdicts/<label>.jsonl` in `dir`.
    fn write_files(&self, dir: &Path, label: &str) -> anyhow::Result<()> {
        write_lines(
            &dir.join(format!("predictions/{label}.sql")),
            &self.predictions,
        )?;
        write_jsonl(&dir.join(format!("verdicts/{label}.jsonl")), &self.verdicts)
    }
}

#[allow(clippy::too_many_arguments)]
fn score(
    name: &str,
    lm: &Lm,
    setup: &Setup,
    preset: &Resolved,
    dev: &SplitData,
    hardness: &[Option<String>],
    suite: Option<&Suite>,
    args: &RunArgs,
    train_seconds: f64,
) -> anyhow::Result<Scored> {
    let p = presets::lookup(preset.name())?;
    let prompts: Vec<Vec<i64>> = dev
        .items
        .iter()
        .map(|it| {
            setup
                .tok
                .encode_prompt(&it.prompt, p.max_prompt_tokens())
                .map(|e| e.input_ids)
                .with_context(|| format!("encoding dev question {}", it.index))
        })
        .collect::<anyhow::Result<_>>()?;
    let bar = progress_bar(
        prompts.len(),
        &format!("generate {name}"),
        args.common.quiet,
    );
    let g = lm::generate_sql(
        &lm.model,
        &setup.tok,
        &prompts,
        args.gen_batch_size,
        p.max_target_tokens() as i64,
        Some(&bar),
    )?;
    bar.finish_and_clear();
    let sql: Vec<String> = g
        .sql
        .iter()
        .map(|out| prediction_sql(&setup.prompt_options, out))
        .collect();
    let pairs: Vec<Pair> = dev
        .items
        .iter()
        .zip(&sql)
        .map(|(it, pred)| Pair {
            id: it.index.to_string(),
            db_id: it.db_id.clone(),
            gold: it.gold.clone(),
            pred: pred.clone(),
        })
        .collect();
    let opts = EvalOptions {
        mode: match setup.bench.spec.compare {
            kidbench_sql::benchmark::CompareMode::TestSuite => {
                kidbench_sql::compare::CompareMode::TestSuite
            }
            kidbench_sql::benchmark::CompareMode::Bird => kidbench_sql::compare::CompareMode::Bird,
            kidbench_sql::benchmark::CompareMode::Strict => {
                kidbench_sql::compare::CompareMode::Strict
            }
        },
        ..EvalOptions::default()
    };
    let mut verdicts = evaluate(
        &pairs,
        |db| {
            dev.databases
                .get(db)
                .cloned()
                .unwrap_or_else(|| PathBuf::from(format!("<missing database {db}>")))
        },
        &opts,
    );
    for (v, h) in verdicts.iter_mut().zip(hardness) {
        v.hardness = h.clone();
    }
    let summary = summarize(&verdicts);
    // TS: the EX matches re-run on the schema's suite databases.
    let ts =
        suite.map(|s| kidbench_testsuite::ts_from_ex(&pairs, &verdicts, Some(s), &opts).summary);
    Ok(Scored {
        score: ModelScore {
            name: name.to_string(),
            ex: summary.ex,
            by_hardness: summary.by_hardness.clone(),
            evaluated: summary.evaluated,
            ts: ts.as_ref().map(|t| ratio(t.all.ts, t.all.count)),
            ts_by_hardness: ts.as_ref().map(|t| {
                t.by_hardness
                    .iter()
                    .map(|(h, l)| (h.clone(), (l.count, l.ts)))
                    .collect()
            }),
            train_seconds,
            generate_seconds: g.seconds,
        },
        predictions: sql,
        verdicts,
        summary,
        ts,
        new_tokens: g.new_tokens,
    })
}

fn ratio(a: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        a as f64 / n as f64
    }
}

/// A deterministic id for a run's settings, so `--resume` finds the same folder.
fn run_id(args: &RunArgs) -> anyhow::Result<String> {
    let mut v = serde_json::to_value(args)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("resume");
        o.remove("out");
        o.remove("plugin_dirs");
        if let Some(c) = o.get_mut("common").and_then(|c| c.as_object_mut()) {
            c.remove("quiet");
        }
    }
    let h = hash_json(&v);
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    Ok(format!(
        "{}-{}-{}-s{}-{}",
        safe(&args.common.benchmark),
        safe(&args.teacher),
        safe(&args.student),
        args.common.seed,
        &h[..8]
    ))
}

/// The columns of `results.csv`.
pub const CSV_HEADER: &str =
    "run_id,method,params,teacher,student,benchmark,hardness,metric,value,n";

/// Hardness levels, in table order.
const LEVELS: [&str; 4] = ["easy", "medium", "hard", "extra"];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

struct Csv<'a> {
    rows: Vec<String>,
    run_id: &'a str,
    teacher: &'a str,
    student: &'a str,
    benchmark: &'a str,
}

impl Csv<'_> {
    fn push(
        &mut self,
        method: &str,
        params: &str,
        hardness: &str,
        metric: &str,
        value: f64,
        n: usize,
    ) {
        let student = if method == "teacher" {
            ""
        } else {
            self.student
        };
        self.rows.push(
            [
                self.run_id,
                method,
                params,
                self.teacher,
                student,
                self.benchmark,
                hardness,
                metric,
                &format!("{value}"),
                &n.to_string(),
            ]
            .iter()
            .map(|s| csv_field(s))
            .collect::<Vec<_>>()
            .join(","),
        );
    }

    /// EX and TS (overall and per hardness) and generation figures.
    fn scores(&mut self, method: &str, params: &str, s: &Scored) {
        self.push(
            method,
            params,
            "all",
            "ex",
            s.summary.ex,
            s.summary.evaluated,
        );
        for h in LEVELS {
            let (n, m) = s.summary.by_hardness.get(h).copied().unwrap_or((0, 0));
            self.push(method, params, h, "ex", ratio(m, n), n);
        }
        if let Some(ts) = &s.ts {
            self.push(
                method,
                params,
                "all",
                "ts",
                ratio(ts.all.ts, ts.all.count),
                ts.all.count,
            );
            for h in LEVELS {
                let l = ts.by_hardness.get(h).copied().unwrap_or_default();
                self.push(method, params, h, "ts", ratio(l.ts, l.count), l.count);
            }
        }
        let n = s.summary.total;
        self.push(
            method,
            params,
            "all",
            "generate_seconds",
            s.score.generate_seconds,
            n,
        );
        self.push(
            method,
            params,
            "all",
            "generate_seconds_per_question",
            s.score.generate_seconds / n.max(1) as f64,
            n,
        );
        self.push(
            method,
            params,
            "all",
            "tokens_per_second",
            s.new_tokens as f64 / s.score.generate_seconds.max(1e-9),
            n,
        );
        self.push(method, params, "all", "coverage", s.summary.coverage, n);
    }

    /// Training time, its split, latency against SFT, throughput and the last loss.
    fn training(&mut self, method: &str, params: &str, m: &MethodSummary, r: &TrainReport) {
        let n = r.steps_done;
        self.push(method, params, "all", "train_seconds", r.train_seconds, n);
        self.push(method, params, "all", "train_steps", n as f64, n);
        self.push(
            method,
            params,
            "all",
            "train_seconds_per_step",
            r.train_seconds / n.max(1) as f64,
            n,
        );
        let t = &r.timings;
        for (metric, v) in [
            ("seconds_student", t.student_forward_backward),
            ("seconds_teacher", t.teacher_forward),
            ("seconds_sampling", t.sampling),
            ("seconds_other", t.other_total()),
        ] {
            self.push(method, params, "all", metric, v, n);
        }
        if let Some(l) = m.latency_vs_sft {
            self.push(method, params, "all", "latency_vs_sft", l, n);
        }
        self.push(
            method,
            params,
            "all",
            "train_tokens_per_second",
            r.tokens_per_second,
            n,
        );
        self.push(method, params, "all", "final_loss", r.final_loss, n);
    }
}

fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut text = lines.join("\n");
    text.push('\n');
    write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

fn write_jsonl<T: serde::Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    let lines = items
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    write_lines(path, &lines)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// A method's training and scoring, or why it failed.
struct MethodRun {
    spec: MethodSpec,
    outcome: Result<(Scored, TrainReport), String>,
}

/// The student's step budget and time budget from `--steps` and `--budget`.
fn student_budget(args: &RunArgs) -> anyhow::Result<(Option<usize>, Option<f64>)> {
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

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// `results.md`: the paper's Table 3 layout (teacher, then the methods; latency as a multiple of
/// SFT's training time per step; EX per hardness and overall; TS; EX against SFT).
#[allow(clippy::too_many_arguments)]
fn results_markdown(
    run_id: &str,
    bench: &str,
    teacher: &str,
    student: &str,
    budget: &str,
    dev_questions: usize,
    t_scored: &Scored,
    methods: &[MethodSummary],
    suite: Option<&Path>,
) -> String {
    let has_ts = suite.is_some();
    let sft_ex = methods
        .iter()
        .find(|m| m.name == "sft" && m.params.is_empty() && m.ok())
        .and_then(|m| m.score.as_ref().map(|s| s.ex));
    let mut out = format!(
        "# kidbench run `{run_id}`\n\n\
         Benchmark **{bench}** (dev, {dev_questions} questions), teacher **{teacher}**, \
         student **{student}**, {budget}.\n\n\
         Latency: training seconds per step relative to SFT's. EX/TS in %.\n\n"
    );
    let mut header = vec!["Method", "Latency (x SFT)"];
    let ex_cols: Vec<String> = LEVELS
        .iter()
        .map(|h| format!("EX {h}"))
        .chain(["EX all".to_string()])
        .collect();
    header.extend(ex_cols.iter().map(String::as_str));
    if has_ts {
        header.push("TS all");
    }
    header.push("Δ EX vs SFT");
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!(
        "|{}|\n",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    ));
    let ex_cells = |by: &BTreeMap<String, (usize, usize)>, all: f64| -> Vec<String> {
        LEVELS
            .iter()
            .map(|h| {
                let (n, m) = by.get(*h).copied().unwrap_or((0, 0));
                if n == 0 {
                    "–".to_string()
                } else {
                    pct(ratio(m, n))
                }
            })
            .chain([pct(all)])
            .collect()
    };
    // teacher
    let mut row = vec![format!("teacher ({teacher})"), "–".to_string()];
    row.extend(ex_cells(&t_scored.score.by_hardness, t_scored.score.ex));
    if has_ts {
        row.push(t_scored.score.ts.map(pct).unwrap_or_else(|| "–".into()));
    }
    row.push(match sft_ex {
        Some(b) => format!("{:+.1}", 100.0 * (t_scored.score.ex - b)),
        None => "–".into(),
    });
    out.push_str(&format!("| {} |\n", row.join(" | ")));
    for m in methods {
        let name = if m.params.is_empty() {
            m.name.clone()
        } else {
            format!("{} ({})", m.name, m.params.replace(',', ", "))
        };
        let mut row = vec![name];
        match &m.score {
            Some(s) => {
                row.push(
                    m.latency_vs_sft
                        .map(|l| format!("{l:.2}"))
                        .unwrap_or_else(|| "–".into()),
                );
                row.extend(ex_cells(&s.by_hardness, s.ex));
                if has_ts {
                    row.push(s.ts.map(pct).unwrap_or_else(|| "–".into()));
                }
                row.push(match sft_ex {
                    Some(b) => format!("{:+.1}", 100.0 * (s.ex - b)),
                    None => "–".into(),
                });
            }
            None => {
                row.push("failed".into());
                let cols = LEVELS.len() + 1 + usize::from(has_ts) + 1;
                row.extend(std::iter::repeat_n("–".to_string(), cols));
            }
        }
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    if let Some(dir) = suite {
        out.push_str(&format!("\nTS: test suite {}.\n", dir.display()));
    } else {
        out.push_str(
            "\nTS: no test suite built for this benchmark (`kidbench testsuite build`).\n",
        );
    }
    let failed: Vec<&MethodSummary> = methods.iter().filter(|m| !m.ok()).collect();
    if !failed.is_empty() {
        out.push_str("\n## Failed methods\n\n");
        for m in failed {
            let name = if m.params.is_empty() {
                m.name.clone()
            } else {
                format!("{}:{}", m.name, m.params)
            };
            let err = m
                .error
                .as_deref()
                .unwrap_or("unknown error")
                .replace('\n', " ");
            out.push_str(&format!("- **{name}**: {err}\n"));
        }
    }
    out
}

/// `kidbench run`.
pub fn run(args: &RunArgs) -> anyhow::Result<RunSummary> {
    let t_start = Instant::now();
    // Every method exists and its parameters are valid before anything is trained.
    let specs = method::parse_specs(&args.methods)?;
    let registry = method::registry(&args.plugin_dirs);
    for f in registry.failures() {
        eprintln!("kidbench: warning: {f}");
    }
    let methods: Vec<(MethodSpec, PluginMethod)> = method::resolve(&registry, &specs)?;
    let (student_steps, time_budget) = student_budget(args)?;
    let teacher_res = presets::resolve(&args.teacher, args.teacher_dir.as_deref())?;
    let student_res = presets::resolve(&args.student, args.student_dir.as_deref())?;
    let setup = setup(&args.common, &[&teacher_res, &student_res])?;
    let run_id = run_id(args)?;
    let dir = args.out.join(&run_id);
    if dir.join("summary.json").is_file() && !args.resume {
        eprintln!("kidbench: {} exists; rewriting it", dir.display());
    }
    for sub in ["metrics", "predictions", "verdicts"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }

    let dev = bench::load_split(
        &setup.bench,
        Split::Dev,
        args.max_dev,
        &setup.prompt_options,
    )?;
    if dev.items.is_empty() {
        anyhow::bail!(
            "benchmark '{}' has no usable dev question",
            setup.bench.name()
        );
    }
    let hardness: Vec<Option<String>> = dev
        .items
        .iter()
        .map(|it| {
            kidbench_sql::hardness::classify(&it.gold)
                .ok()
                .map(|h| h.as_str().to_string())
        })
        .collect();
    let suite_dir =
        kidbench_testsuite::default_suite_dir(&args.common.databases_dir, setup.bench.name());
    let suite = Suite::open_if_built(&suite_dir)
        .with_context(|| format!("opening the test suite {}", suite_dir.display()))?;

    // Resolved configuration.
    let teacher_cfg = train_config(&teacher_res, &args.common, args.teacher_steps, None);
    let mut student_cfg = train_config(&student_res, &args.common, student_steps, args.lr);
    if time_budget.is_some() {
        // the warmup is a share of the budget (trainer::TIME_WARMUP_FRACTION), not of the steps
        student_cfg.warmup_steps = 0;
    }
    student_cfg.time_budget_seconds = time_budget;
    let budget_text = match time_budget {
        Some(t) => format!("a {t:.0} s training budget per student"),
        None => format!("{} steps per student", student_cfg.steps),
    };
    let config = serde_json::json!({
        "run_id": run_id,
        "args": args,
        "methods": specs.iter().map(|s| serde_json::json!({
            "name": s.name, "params": s.params_string(), "label": s.label,
        })).collect::<Vec<_>>(),
        "plugins": methods.iter().map(|(s, m)| serde_json::json!({
            "name": s.name, "path": m.path().display().to_string(),
        })).collect::<Vec<_>>(),
        "teacher": {"preset": teacher_res.name(), "train": teacher_cfg},
        "student": {"preset": student_res.name(), "train": student_cfg},
        "prompt_sample_values": setup.prompt_options.sample_values,
        "prompt_style": setup.prompt_options.style,
        "device": format!("{:?}", setup.device),
        "tokenizer": {"vocab_size": setup.tok.vocab_size(), "vocab_sha256": setup.tok.vocab_sha256()},
        "train_questions": setup.train.items.len(),
        "train_skipped_missing_database": setup.train.skipped_missing_db,
        "dev_questions": dev.items.len(),
        "dev_skipped_missing_database": dev.skipped_missing_db,
        "test_suite": suite.as_ref().map(|s| s.dir.display().to_string()),
        "benchmark_files": setup.train_checksums,
    });
    write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )
    .context("writing config.json")?;
    let versions = serde_json::json!({
        "kidbench": env!("CARGO_PKG_VERSION"),
        "tch": "0.24.0",
        "libtorch": env!("KIDBENCH_LIBTORCH"),
        "rustc": env!("KIDBENCH_RUSTC"),
        "plugin_abi": kidbench_plugin_host::ABI_VERSION,
    });
    write_atomic(
        &dir.join("versions.json"),
        serde_json::to_string_pretty(&versions)?.as_bytes(),
    )
    .context("writing versions.json")?;
    let mut dbs: BTreeMap<String, String> = BTreeMap::new();
    for (split, data) in [("train", &setup.train), ("dev", &dev)] {
        for (db, path) in &data.databases {
            dbs.insert(format!("{split}/{db}"), bench::sha256_file(path)?);
        }
    }
    write_atomic(
        &dir.join("databases.sha256.json"),
        serde_json::to_string_pretty(&dbs)?.as_bytes(),
    )
    .context("writing databases.sha256.json")?;

    // Teacher.
    let teacher = teacher_model(
        &setup,
        &teacher_res,
        &args.common,
        args.teacher_steps,
        None,
        Role::Teacher,
    )?;
    let tm = teacher.dir.join("metrics.jsonl");
    if tm.is_file() {
        std::fs::copy(&tm, dir.join("metrics/teacher.jsonl"))
            .with_context(|| format!("copying {}", tm.display()))?;
    }
    let t_train = teacher.report["train_seconds"].as_f64().unwrap_or(0.0);
    let t_scored = score(
        "teacher",
        &teacher.lm,
        &setup,
        &teacher_res,
        &dev,
        &hardness,
        suite.as_ref(),
        args,
        t_train,
    )?;

    let score_student = |label: &str, lm: &Lm, train_seconds: f64| {
        score(
            label,
            lm,
            &setup,
            &student_res,
            &dev,
            &hardness,
            suite.as_ref(),
            args,
            train_seconds,
        )
    };
    // The students' common starting point: the seeded initialization, or the student preset
    // after `--student-warmup` SFT steps (cached), scored as `student_init`.
    let init = match args.student_warmup {
        None => None,
        Some(steps) => {
            let init = teacher_model(
                &setup,
                &student_res,
                &args.common,
                Some(steps),
                None,
                Role::StudentInit,
            )?;
            let secs = init.report["train_seconds"].as_f64().unwrap_or(0.0);
            let scored = score_student("student_init", &init.lm, secs)?;
            Some((init, scored))
        }
    };

    // Students: one per method, each from the same initialization.
    let data = encode_train(&setup, &student_res)?;
    let tokens = TokenIds::from_tokenizer(&setup.tok);
    let mut runs: Vec<MethodRun> = Vec::new();
    for (spec, m) in &methods {
        let attempt = catch_unwind(AssertUnwindSafe(
            || -> anyhow::Result<(Scored, TrainReport)> {
                let student = match &init {
                    Some((init, _)) => lm::load_dir(&init.dir.join("model"), setup.device)?,
                    None => {
                        lm::initial_model(&student_res, &setup.tok, setup.device, args.common.seed)?
                    }
                };
                // A mask id the model has no embedding row for (added to a HF tokenizer) is no
                // mask token at all: kid then says so instead of indexing out of range.
                let mut tokens = tokens.clone();
                if tokens.mask >= student.model.config().vocab_size {
                    tokens.mask = -1;
                }
                let opts = TrainOptions {
                    checkpoint_dir: Some(dir.join("checkpoints").join(&spec.label)),
                    resume: args.resume,
                    metrics_path: Some(dir.join("metrics").join(format!("{}.jsonl", spec.label))),
                    progress: !args.common.quiet,
                    label: format!("{} {}", spec.label, student_res.name()),
                    stop_after: None,
                };
                let teacher_lm: Option<&dyn trainer::CausalLm> = Some(&teacher.lm.model);
                let report = trainer::train(
                    &student.vs,
                    &student.model,
                    teacher_lm,
                    m,
                    &data,
                    &tokens,
                    &student_cfg,
                    &opts,
                )
                .with_context(|| {
                    format!(
                        "training student {} with {}",
                        student_res.name(),
                        spec.spec()
                    )
                })?;
                let s = score_student(&spec.label, &student, report.train_seconds)?;
                Ok((s, report))
            },
        ));
        let outcome = match attempt {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(p) => Err(format!("panicked: {}", panic_message(p.as_ref()))),
        };
        if let Err(e) = &outcome {
            eprintln!("kidbench: method {} failed: {e}", spec.spec());
        }
        runs.push(MethodRun {
            spec: spec.clone(),
            outcome,
        });
    }

    // Latency: training seconds per step, relative to SFT's (plain `sft` of this run).
    let per_step = |r: &TrainReport| r.train_seconds / r.steps_done.max(1) as f64;
    let sft_per_step = runs
        .iter()
        .find(|r| r.spec.name == "sft" && r.spec.params.is_empty())
        .and_then(|r| r.outcome.as_ref().ok())
        .map(|(_, rep)| per_step(rep));
    let summaries: Vec<MethodSummary> = runs
        .iter()
        .map(|r| match &r.outcome {
            Ok((s, rep)) => MethodSummary {
                name: r.spec.name.clone(),
                params: r.spec.params_string(),
                label: r.spec.label.clone(),
                status: "ok".into(),
                error: None,
                score: Some(s.score.clone()),
                steps_done: rep.steps_done,
                train_seconds: rep.train_seconds,
                latency_vs_sft: sft_per_step.map(|b| per_step(rep) / b.max(1e-12)),
                timings: Some(rep.timings),
            },
            Err(e) => MethodSummary {
                name: r.spec.name.clone(),
                params: r.spec.params_string(),
                label: r.spec.label.clone(),
                status: "failed".into(),
                error: Some(e.clone()),
                score: None,
                steps_done: 0,
                train_seconds: 0.0,
                latency_vs_sft: None,
                timings: None,
            },
        })
        .collect();

    // Files.
    let mut csv = Csv {
        rows: vec![CSV_HEADER.to_string()],
        run_id: &run_id,
        teacher: teacher_res.name(),
        student: student_res.name(),
        benchmark: setup.bench.name(),
    };
    // The models scored without a method: the teacher and the students' starting point.
    let fixed = std::iter::once(("teacher", &t_scored))
        .chain(init.as_ref().map(|(_, scored)| ("student_init", scored)));
    for (name, scored) in fixed {
        csv.scores(name, "", scored);
        let secs = scored.score.train_seconds;
        csv.push(name, "", "all", "train_seconds", secs, 0);
        scored.write_files(&dir, name)?;
    }
    for (r, m) in runs.iter().zip(&summaries) {
        let params = r.spec.params_string();
        match &r.outcome {
            Ok((s, rep)) => {
                csv.scores(&r.spec.name, &params, s);
                csv.training(&r.spec.name, &params, m, rep);
            }
            Err(_) => csv.push(&r.spec.name, &params, "all", "failed", 1.0, 0),
        }
    }
    write_lines(&dir.join("results.csv"), &csv.rows)?;
    for r in &runs {
        let label = &r.spec.label;
        if let Ok((s, rep)) = &r.outcome {
            s.write_files(&dir, label)?;
            let p = dir.join(format!("metrics/{label}.timings.json"));
            write_atomic(&p, serde_json::to_string_pretty(rep)?.as_bytes())
                .with_context(|| format!("writing {}", p.display()))?;
        }
    }
    let gold: Vec<String> = dev.items.iter().map(|it| lm::one_line(&it.gold)).collect();
    write_lines(&dir.join("predictions/gold.sql"), &gold)?;
    let md = results_markdown(
        &run_id,
        setup.bench.name(),
        teacher_res.name(),
        student_res.name(),
        &match (&init, args.student_warmup) {
            (Some((_, scored)), Some(steps)) => format!(
                "{budget_text}, each starting from {} after {steps} SFT steps (student_init: EX {} %)",
                student_res.name(),
                pct(scored.score.ex)
            ),
            _ => budget_text.clone(),
        },
        dev.items.len(),
        &t_scored,
        &summaries,
        suite.as_ref().map(|s| s.dir.as_path()),
    );
    write_atomic(&dir.join("results.md"), md.as_bytes()).context("writing results.md")?;
    let summary = RunSummary {
        run_id,
        dir: dir.clone(),
        teacher: t_scored.score.clone(),
        teacher_reused: teacher.reused,
        student_init: init.as_ref().map(|(_, s)| s.score.clone()),
        methods: summaries,
        ts_suite: suite.as_ref().map(|s| s.dir.clone()),
        total_seconds: t_start.elapsed().as_secs_f64(),
    };
    let mut f = std::fs::File::create(dir.join("summary.json"))
        .with_context(|| format!("writing {}", dir.join("summary.json").display()))?;
    f.write_all(serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}
