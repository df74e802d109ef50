//! `kidbench-run`: the `kidbench run`, `kidbench teacher` and `kidbench sweep` pipelines.
//!
//! A run is a short sequence of stages over one resolved plan ([`plan::RunPlan`]), whose hash
//! is its identity: read the benchmark ([`context`]), resolve the plan, write what the run is
//! ([`files::write_identity`]), build or reuse the shared artifacts ([`Prepared`]: tokenizer,
//! teacher, student warm-up and their scores, from [`caches`]), train one student per method
//! ([`students`]), and write what it gave ([`files`], [`table`]). A sweep ([`sweep`]) runs the
//! same stages per cell, one method each, sharing the prepared artifacts between cells.

pub mod args;
pub mod caches;
pub mod context;
pub mod emit;
pub mod files;
pub mod plan;
pub mod score;
pub mod students;
pub mod sweep;
pub mod table;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use kidbench_plugin_host::Registry;
use kidbench_train::data::Example;

pub use args::{Budget, CommonArgs, RunArgs, TeacherArgs};
pub use context::Context;
pub use files::{MethodResult, MethodSummary, ModelScore, RunSummary, CSV_HEADER};
pub use plan::RunPlan;

use caches::SftModel;
use files::{Csv, ParamCounts};
use score::FixedScore;
use students::{MethodOutcome, MethodRun};

/// The method plugins: `--plugin-dir` folders (each must exist), `KIDBENCH_PLUGIN_PATH`, the
/// build folder, and the linked-in `sft`. Plugins that fail to load are warned about.
pub fn plugins(plugin_dirs: &[PathBuf]) -> anyhow::Result<Registry> {
    for d in plugin_dirs {
        if !d.is_dir() {
            anyhow::bail!("--plugin-dir {}: no such folder", d.display());
        }
    }
    let registry = kidbench_train::method::registry(plugin_dirs);
    for f in registry.failures() {
        eprintln!("kidbench: warning: {f}");
    }
    Ok(registry)
}

/// The artifacts every student of a plan shares, built once (cached across runs).
pub struct Prepared {
    pub tok: kidbench_tokenizer::SqlTokenizer,
    pub teacher: SftModel,
    pub teacher_score: FixedScore,
    pub init: Option<(SftModel, FixedScore)>,
    /// The train split encoded for the students.
    pub data: Vec<Example>,
    pub params: ParamCounts,
}

fn param_count(vs: &tch::nn::VarStore) -> u64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as u64)
        .sum()
}

impl Prepared {
    /// Tokenizer, teacher (and its dev scores), student warm-up (and its scores), encoded data.
    pub fn build(ctx: &Context, plan: &RunPlan, quiet: bool) -> anyhow::Result<Prepared> {
        let tok = caches::tokenizer(ctx, &plan.tokenizer)?;
        // A fixed model's dev scores, computed once per model and dev setting.
        let fixed = |m: &SftModel, key: &str, rkey, limits| {
            score::fixed_score(
                &m.scores_dir(key),
                rkey,
                key,
                m.train_seconds(),
                &plan.device,
                || {
                    let label = m.role.label();
                    let batch = plan.eval.gen_batch_size;
                    score::score_dev(ctx, &tok, &m.lm.model, limits, batch, label, quiet)
                },
            )
        };
        // A student init that is the teacher's run at an earlier step is trained first; the
        // teacher's run then continues from its checkpoint instead of repeating those steps.
        let early = match &plan.student.init {
            plan::StudentInit::Warmup { model, .. } if model.end_at.is_some() => {
                let m = caches::student_init(ctx, &tok, plan, quiet)?;
                if let Some(m) = &m {
                    if caches::seed_full_run(m, &plan.teacher, caches::Role::Teacher)? {
                        eprintln!(
                            "kidbench: the teacher's run continues from the student init (its step {} of {})",
                            model.end_at.unwrap_or_default(),
                            plan.teacher.train.steps
                        );
                    }
                }
                Some(m)
            }
            _ => None,
        };
        let teacher = caches::teacher(ctx, &tok, plan, quiet)?;
        let teacher_score = fixed(
            &teacher,
            &plan.teacher_score_key(),
            files::teacher_key(plan),
            (
                plan.teacher.max_prompt_tokens,
                plan.teacher.max_target_tokens,
            ),
        )?;
        let init = match early.map_or_else(|| caches::student_init(ctx, &tok, plan, quiet), Ok)? {
            None => None,
            Some(init) => {
                let key = plan.init_score_key().context("a warm-up has a score key")?;
                let limits = (
                    plan.student.max_prompt_tokens,
                    plan.student.max_target_tokens,
                );
                let s = fixed(&init, &key, files::init_key(plan), limits)?;
                Some((init, s))
            }
        };
        let data = caches::encode_train(
            ctx,
            &tok,
            plan.student.max_prompt_tokens,
            plan.student.max_target_tokens,
        )?;
        // The students' size: the init's, or a fresh one's (built once, then dropped).
        let student = match &init {
            Some((m, _)) => param_count(&m.lm.vs),
            None => param_count(
                &kidbench_train::lm::initial_model_as(
                    &ctx.student,
                    &tok,
                    ctx.device,
                    ctx.kind(),
                    plan.seed,
                )?
                .vs,
            ),
        };
        let params = ParamCounts {
            student,
            teacher: param_count(&teacher.lm.vs),
        };
        Ok(Prepared {
            tok,
            teacher,
            teacher_score,
            init,
            data,
            params,
        })
    }

    pub fn shared<'a>(&'a self, ctx: &'a Context, quiet: bool) -> students::Shared<'a> {
        students::Shared {
            ctx,
            tok: &self.tok,
            teacher: &self.teacher,
            init: self.init.as_ref().map(|(m, _)| m),
            data: &self.data,
            quiet,
        }
    }

    /// The fixed models' scores: the teacher, then the init when there is one.
    pub fn fixed(&self) -> impl Iterator<Item = &FixedScore> {
        std::iter::once(&self.teacher_score).chain(self.init.as_ref().map(|(_, s)| s))
    }
}

/// Writes what the students gave: records, predictions, verdicts, results.csv, results.md and
/// summary.json.
fn write_results(
    dir: &Path,
    plan: &RunPlan,
    ctx: &Context,
    prep: &Prepared,
    runs: &[MethodRun],
    started: Instant,
) -> anyhow::Result<RunSummary> {
    let run_id = plan.run_id();
    let summaries = files::method_summaries(runs);
    let mut csv = Csv::new(&run_id, plan);
    let tm = prep.teacher.dir.join("metrics.jsonl");
    if tm.is_file() {
        std::fs::copy(&tm, dir.join("metrics/teacher.jsonl"))
            .with_context(|| format!("copying {}", tm.display()))?;
    }
    for f in prep.fixed() {
        let name = f.record.label.as_str();
        csv.scores(name, "", &f.scored);
        let secs = match &f.record.outcome {
            kidbench_results::Outcome::Scored(s) => {
                s.training.as_ref().map_or(0.0, |t| t.train_seconds)
            }
            kidbench_results::Outcome::Failed { .. } => 0.0,
        };
        csv.push(name, "", "all", "train_seconds", secs, 0);
        files::write_fixed(dir, f)?;
    }
    for (r, m) in runs.iter().zip(&summaries) {
        files::write_method(dir, plan, r, prep.params)?;
        match (&r.outcome, &m.result) {
            (
                MethodOutcome::Trained { scored, report, .. },
                MethodResult::Ok { latency_vs_sft, .. },
            ) => {
                csv.scores(&m.name, &m.params, scored);
                let l = files::ledger(report, prep.params);
                csv.training(&m.name, &m.params, *latency_vs_sft, report, &l);
            }
            _ => csv.push(&m.name, &m.params, "all", "failed", 1.0, 0),
        }
    }
    score::write_lines(&dir.join("results.csv"), &csv.rows)?;
    let gold: Vec<String> = ctx
        .dev
        .items
        .iter()
        .map(|it| kidbench_train::lm::one_line(&it.gold))
        .collect();
    score::write_lines(&dir.join("predictions/gold.sql"), &gold)?;
    let teacher = ModelScore::of(
        "teacher",
        &prep.teacher_score.scored,
        prep.teacher.train_seconds(),
    );
    let init = prep
        .init
        .as_ref()
        .map(|(m, s)| ModelScore::of("student_init", &s.scored, m.train_seconds()));
    let budget_text = match plan.time_budget() {
        Some(t) => format!("a {t:.0} s training budget per student"),
        None => format!("{} steps per student", plan.student.train.steps),
    };
    let budget_text = match (&init, &plan.student.init) {
        (Some(s), plan::StudentInit::Warmup { steps, model }) if model.end_at.is_some() => {
            format!(
                "{budget_text}, each starting from the teacher's own run at step {steps} of {} (student_init: EX {} %)",
                model.train.steps,
                table::pct(s.ex)
            )
        }
        (Some(s), plan::StudentInit::Warmup { steps, .. }) => format!(
            "{budget_text}, each starting from {} after {steps} SFT steps (student_init: EX {} %)",
            plan.student.preset,
            table::pct(s.ex)
        ),
        _ => budget_text,
    };
    let md = table::results_markdown(
        &run_id,
        &plan.data.benchmark,
        &plan.teacher.preset,
        &plan.student.preset,
        &budget_text,
        ctx.dev.items.len(),
        &teacher,
        &summaries,
        ctx.suite.as_ref().map(|s| s.dir.as_path()),
    );
    kidbench_train::trainer::write_atomic(&dir.join("results.md"), md.as_bytes())
        .context("writing results.md")?;
    let summary = RunSummary {
        run_id,
        plan_hash: plan.hash(),
        dir: dir.to_path_buf(),
        teacher,
        teacher_reused: prep.teacher.reused,
        student_init: init,
        methods: summaries,
        ts_suite: ctx.suite.as_ref().map(|s| s.dir.clone()),
        total_seconds: started.elapsed().as_secs_f64(),
    };
    files::write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
}

/// `kidbench run`: resolve the plan, prepare the shared artifacts, train a student per method,
/// write the results folder `<out>/<run-id>/`.
pub fn run(args: &RunArgs) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let registry = plugins(&args.plugin_dirs)?;
    let methods = plan::method_plans(&registry, &args.methods)?;
    let ctx = Context::for_run(args)?;
    let plan = RunPlan::resolve(args, &ctx, methods)?;
    let dir = args.out.join(plan.run_id());
    if dir.join("summary.json").is_file() && !args.resume {
        eprintln!("kidbench: {} exists; rewriting it", dir.display());
    }
    files::write_identity(&dir, &plan, &ctx)?;
    let prep = Prepared::build(&ctx, &plan, args.common.quiet)?;
    let runs = students::train_all(
        &prep.shared(&ctx, args.common.quiet),
        &plan,
        &registry,
        &dir,
        args.resume,
    )?;
    write_results(&dir, &plan, &ctx, &prep, &runs, started)
}

/// What `teacher` returns.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeacherSummary {
    pub dir: PathBuf,
    pub reused: bool,
    pub train_seconds: f64,
    pub final_loss: f64,
}

/// `kidbench teacher`: the teacher of the default run with these settings, trained or reused.
pub fn teacher(args: &TeacherArgs) -> anyhow::Result<TeacherSummary> {
    let run_args = RunArgs {
        teacher: args.model.clone(),
        teacher_dir: args.model_dir.clone(),
        teacher_steps: args.steps,
        teacher_lr: args.lr,
        teacher_seed: args.common.seed,
        teacher_micro_batch_size: args.common.micro_batch_size,
        common: args.common.clone(),
        ..RunArgs::default()
    };
    let ctx = Context::for_run_flags(&run_args, args::TEACHER_MODEL_FLAGS)?;
    let plan = RunPlan::resolve(&run_args, &ctx, Vec::new())?;
    let tok = caches::tokenizer(&ctx, &plan.tokenizer)?;
    let t = caches::teacher(&ctx, &tok, &plan, args.common.quiet)?;
    Ok(TeacherSummary {
        train_seconds: t.train_seconds(),
        final_loss: t.report["final_loss"].as_f64().unwrap_or(f64::NAN),
        dir: t.dir,
        reused: t.reused,
    })
}
