//! A run's folder: what it was (plan.json, versions.json, databases.sha256.json, written before
//! any training), and what it gave (per model: records/, questions/, predictions/, verdicts/,
//! metrics/; then results.csv, results.md and summary.json). Records ([`kidbench_results`]) are
//! what `kidbench report` and `kidbench compare` read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kidbench_results::{Ledger, Outcome, Record, RecordKey, Role, TimeSplit, Training};
use kidbench_train::trainer::{write_atomic, Timings, TrainReport};

use crate::context::Context;
use crate::plan::{MethodPlan, RunPlan, StudentInit};
use crate::score::{ratio, FixedScore, Scored};
use crate::students::{MethodOutcome, MethodRun};

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates `dir` with what the run is: `plan.json` (with its hash), `versions.json` and
/// `databases.sha256.json`.
pub fn write_identity(dir: &Path, plan: &RunPlan, ctx: &Context) -> anyhow::Result<()> {
    for sub in ["metrics", "predictions", "verdicts"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    write_json(
        &dir.join("plan.json"),
        &serde_json::json!({"hash": plan.hash(), "plan": plan}),
    )?;
    write_json(
        &dir.join("versions.json"),
        &serde_json::json!({
            "kidbench": env!("CARGO_PKG_VERSION"),
            "evaluator": kidbench_sql::VERSION,
            "tch": "0.24.0",
            "libtorch": env!("KIDBENCH_LIBTORCH"),
            "rustc": env!("KIDBENCH_RUSTC"),
            "plugin_abi": kidbench_plugin_host::ABI_VERSION,
            "machine": machine(&plan.device),
        }),
    )?;
    write_json(&dir.join("databases.sha256.json"), &ctx.database_checksums)
}

/// This process's machine fingerprint (CPU, kernel flags, libtorch's threads, kernel settings in
/// the environment): the seed does not fix the arithmetic of another machine.
pub fn machine(device: &str) -> kidbench_results::Machine {
    kidbench_results::Machine::this(tch::get_num_threads().max(1) as usize, device)
}

/// Reads the plan hash recorded in `dir/plan.json`, if there is one.
pub fn recorded_plan_hash(dir: &Path) -> anyhow::Result<Option<String>> {
    let p = dir.join("plan.json");
    if !p.is_file() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?,
    )
    .with_context(|| format!("{}: not JSON", p.display()))?;
    Ok(v["hash"].as_str().map(str::to_string))
}

/// The record key of a method's student.
pub fn method_key(plan: &RunPlan, m: &MethodPlan) -> RecordKey {
    RecordKey {
        role: Role::Method,
        method: m.name.clone(),
        params: m.changed.clone(),
        seed: plan.seed,
        benchmark: plan.data.benchmark.clone(),
        teacher: plan.teacher.preset.clone(),
        student: plan.student.preset.clone(),
        student_warmup: warmup_steps(plan),
        budget: plan.budget.clone(),
    }
}

fn warmup_steps(plan: &RunPlan) -> Option<usize> {
    match &plan.student.init {
        StudentInit::Preset => None,
        StudentInit::Warmup { steps, .. } => Some(*steps),
    }
}

/// The record key of the teacher.
pub fn teacher_key(plan: &RunPlan) -> RecordKey {
    RecordKey {
        role: Role::Teacher,
        method: "teacher".into(),
        params: BTreeMap::new(),
        seed: plan.teacher_seed,
        benchmark: plan.data.benchmark.clone(),
        teacher: plan.teacher.preset.clone(),
        student: String::new(),
        student_warmup: None,
        budget: String::new(),
    }
}

/// The record key of the students' warmed-up init.
pub fn init_key(plan: &RunPlan) -> RecordKey {
    RecordKey {
        role: Role::StudentInit,
        method: "student_init".into(),
        params: BTreeMap::new(),
        seed: plan.teacher_seed,
        benchmark: plan.data.benchmark.clone(),
        teacher: plan.teacher.preset.clone(),
        student: plan.student.preset.clone(),
        student_warmup: warmup_steps(plan),
        budget: String::new(),
    }
}

/// Parameter counts of the models, for the FLOPs estimate.
#[derive(Debug, Clone, Copy)]
pub struct ParamCounts {
    pub student: u64,
    pub teacher: u64,
}

/// The compute ledger of a training run: tokens per kind of call, and FLOPs estimated as
/// 2·params·tokens per forward (3x that with backward).
pub fn ledger(r: &TrainReport, p: ParamCounts) -> Ledger {
    let c = r.token_counts;
    let (s, t) = (p.student as f64, p.teacher as f64);
    let flops = 2.0 * s * c.student_forward as f64
        + 6.0 * s * c.student_backward as f64
        + 2.0 * t * c.teacher_forward as f64
        + 2.0 * s * c.student_sampled as f64
        + 2.0 * t * (c.teacher_sampled + c.teacher_precomputed) as f64;
    Ledger {
        student_forward_tokens: c.student_forward,
        student_backward_tokens: c.student_backward,
        teacher_forward_tokens: c.teacher_forward,
        sampled_tokens: c.student_sampled + c.teacher_sampled + c.teacher_precomputed,
        student_params: p.student,
        teacher_params: p.teacher,
        flops,
    }
}

fn time_split(t: &Timings) -> TimeSplit {
    TimeSplit {
        student: t.student_forward_backward,
        teacher: t.teacher_forward,
        sampling: t.sampling,
        other: t.other_total(),
        precompute: t.precompute,
    }
}

/// The record of a method's student.
pub fn method_record(plan: &RunPlan, run: &MethodRun, params: ParamCounts) -> Record {
    let outcome = match &run.outcome {
        MethodOutcome::Trained {
            scored,
            report,
            curve,
        } => {
            let mut s = scored.record_scores(&run.plan.label);
            s.training = Some(Training {
                steps: report.steps_done,
                train_seconds: report.train_seconds,
                seconds_per_step: report.train_seconds / report.steps_done.max(1) as f64,
                time_split: time_split(&report.timings),
                ledger: ledger(report, params),
                final_loss: report.final_loss,
                machine: Some(machine(&plan.device)),
            });
            s.curve = curve.clone();
            Outcome::Scored(Box::new(s))
        }
        MethodOutcome::Failed { error } => Outcome::Failed {
            error: error.clone(),
        },
    };
    Record {
        schema: kidbench_results::RECORD_SCHEMA,
        plan_hash: plan.hash(),
        label: run.plan.label.clone(),
        key: method_key(plan, &run.plan),
        outcome,
    }
}

/// Writes a method's record, predictions, verdicts and timings into `dir`.
pub fn write_method(
    dir: &Path,
    plan: &RunPlan,
    run: &MethodRun,
    params: ParamCounts,
) -> anyhow::Result<()> {
    let record = method_record(plan, run, params);
    match &run.outcome {
        MethodOutcome::Trained { scored, report, .. } => {
            scored.write_files(dir, &run.plan.label)?;
            write_json(
                &dir.join(format!("metrics/{}.timings.json", run.plan.label)),
                report,
            )?;
            kidbench_results::write_record(dir, &record, &scored.question_verdicts())?;
        }
        MethodOutcome::Failed { .. } => {
            kidbench_results::write_record(dir, &record, &[])?;
        }
    }
    Ok(())
}

/// Copies a fixed model's cached record and files into `dir`.
pub fn write_fixed(dir: &Path, f: &FixedScore) -> anyhow::Result<()> {
    let label = &f.record.label;
    f.scored.write_files(dir, label)?;
    kidbench_results::write_record(dir, &f.record, &f.scored.question_verdicts())?;
    Ok(())
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
    pub train_seconds: f64,
    pub generate_seconds: f64,
}

impl ModelScore {
    pub fn of(name: &str, s: &Scored, train_seconds: f64) -> ModelScore {
        ModelScore {
            name: name.to_string(),
            ex: s.ex(),
            by_hardness: s.scoring.summary.by_hardness.clone(),
            evaluated: s.scoring.summary.evaluated,
            ts: s.ts(),
            train_seconds,
            generate_seconds: s.generate_seconds,
        }
    }
}

/// How a method of a run ended.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MethodResult {
    Ok {
        score: ModelScore,
        steps_done: usize,
        train_seconds: f64,
        /// Training seconds per step / SFT's (when plain `sft` is in the run and trained).
        latency_vs_sft: Option<f64>,
        timings: Timings,
    },
    Failed {
        error: String,
    },
}

/// One method of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MethodSummary {
    pub name: String,
    /// The parameters that differ from the defaults (`key=value,...`).
    pub params: String,
    pub label: String,
    #[serde(flatten)]
    pub result: MethodResult,
}

impl MethodSummary {
    /// `name` or `name:key=value,...`.
    pub fn spec(&self) -> String {
        if self.params.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, self.params)
        }
    }
}

/// What `run` returns (also written as `summary.json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub plan_hash: String,
    pub dir: PathBuf,
    pub teacher: ModelScore,
    pub teacher_reused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_init: Option<ModelScore>,
    pub methods: Vec<MethodSummary>,
    pub ts_suite: Option<PathBuf>,
    pub total_seconds: f64,
}

fn per_step(r: &TrainReport) -> f64 {
    r.train_seconds / r.steps_done.max(1) as f64
}

/// The summaries of the methods, latency relative to this run's plain `sft`.
pub fn method_summaries(runs: &[MethodRun]) -> Vec<MethodSummary> {
    let sft = runs
        .iter()
        .find(|r| r.plan.name == "sft" && r.plan.changed.is_empty())
        .and_then(|r| match &r.outcome {
            MethodOutcome::Trained { report, .. } => Some(per_step(report)),
            MethodOutcome::Failed { .. } => None,
        });
    runs.iter()
        .map(|r| MethodSummary {
            name: r.plan.name.clone(),
            params: params_text(&r.plan.changed),
            label: r.plan.label.clone(),
            result: match &r.outcome {
                MethodOutcome::Trained { scored, report, .. } => MethodResult::Ok {
                    score: ModelScore::of(&r.plan.label, scored, report.train_seconds),
                    steps_done: report.steps_done,
                    train_seconds: report.train_seconds,
                    latency_vs_sft: sft.map(|b| per_step(report) / b.max(1e-12)),
                    timings: report.timings,
                },
                MethodOutcome::Failed { error } => MethodResult::Failed {
                    error: error.clone(),
                },
            },
        })
        .collect()
}

/// `key=value,...` of a parameter map.
pub fn params_text(p: &BTreeMap<String, String>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The columns of `results.csv`.
pub const CSV_HEADER: &str =
    "run_id,method,params,teacher,student,benchmark,hardness,metric,value,n";

/// Hardness levels, in table order.
pub const LEVELS: [&str; 4] = ["easy", "medium", "hard", "extra"];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv`: one row per (model, hardness, metric).
pub struct Csv<'a> {
    pub rows: Vec<String>,
    pub run_id: &'a str,
    pub teacher: &'a str,
    pub student: &'a str,
    pub benchmark: &'a str,
}

impl<'a> Csv<'a> {
    pub fn new(run_id: &'a str, plan: &'a RunPlan) -> Csv<'a> {
        Csv {
            rows: vec![CSV_HEADER.to_string()],
            run_id,
            teacher: &plan.teacher.preset,
            student: &plan.student.preset,
            benchmark: &plan.data.benchmark,
        }
    }

    pub fn push(
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
    pub fn scores(&mut self, method: &str, params: &str, s: &Scored) {
        let sum = &s.scoring.summary;
        self.push(method, params, "all", "ex", sum.ex, sum.evaluated);
        for h in LEVELS {
            let (n, m) = sum.by_hardness.get(h).copied().unwrap_or((0, 0));
            self.push(method, params, h, "ex", ratio(m, n), n);
        }
        if let Some(ts) = &s.scoring.ts {
            let ts = &ts.summary;
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
        let n = sum.total;
        self.push(
            method,
            params,
            "all",
            "generate_seconds",
            s.generate_seconds,
            n,
        );
        self.push(
            method,
            params,
            "all",
            "generate_seconds_per_question",
            s.generate_seconds / n.max(1) as f64,
            n,
        );
        self.push(
            method,
            params,
            "all",
            "tokens_per_second",
            s.tokens_per_second(),
            n,
        );
        self.push(method, params, "all", "coverage", sum.coverage, n);
    }

    /// Training time, its split, latency against SFT, throughput, the compute ledger and the
    /// last loss.
    pub fn training(
        &mut self,
        method: &str,
        params: &str,
        latency: Option<f64>,
        r: &TrainReport,
        l: &Ledger,
    ) {
        let n = r.steps_done;
        self.push(method, params, "all", "train_seconds", r.train_seconds, n);
        self.push(method, params, "all", "train_steps", n as f64, n);
        self.push(
            method,
            params,
            "all",
            "train_seconds_per_step",
            per_step(r),
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
        if t.precompute > 0.0 {
            // fixed teacher samples: made once, not in train_seconds
            self.push(method, params, "all", "seconds_precompute", t.precompute, n);
        }
        if let Some(l) = latency {
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
        for (metric, v) in [
            ("student_forward_tokens", l.student_forward_tokens as f64),
            ("student_backward_tokens", l.student_backward_tokens as f64),
            ("teacher_forward_tokens", l.teacher_forward_tokens as f64),
            ("sampled_tokens", l.sampled_tokens as f64),
            ("estimated_flops", l.flops),
        ] {
            self.push(method, params, "all", metric, v, n);
        }
        if t.precompute > 0.0 {
            // fixed teacher samples: made once, not in train_seconds
            self.push(method, params, "all", "seconds_precompute", t.precompute, n);
        }
        self.push(method, params, "all", "final_loss", r.final_loss, n);
    }
}

/// Recreates the tree `src` at `dst`, hard-linking files (copying them where linking fails).
pub fn link_tree(src: &Path, dst: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    for e in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let e = e.with_context(|| format!("reading {}", src.display()))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        if e.file_type()?.is_dir() {
            link_tree(&from, &to)?;
        } else if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}
