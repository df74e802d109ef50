//! The students: one per method of the plan, each from the same initialization, with the same
//! data order, budget, batch, schedule and seed. A method that fails (plugin error, non-finite
//! loss, panic) is recorded with its error; the others still run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use anyhow::Context as _;
use kidbench_plugin_host::{PluginMethod, Registry};
use kidbench_results::CurvePoint;
use kidbench_tokenizer::SqlTokenizer;
use kidbench_train::bench::Item;
use kidbench_train::data::Example;
use kidbench_train::host::TokenIds;
use kidbench_train::lm::{self, Lm};
use kidbench_train::trainer::{self, TrainOptions, TrainReport};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::caches::SftModel;
use crate::context::Context;
use crate::plan::{MethodPlan, RunPlan};
use crate::score::{self, Scored};

/// Seed of the learning-curve subset: the same questions for every run and cell.
pub const CURVE_SEED: u64 = 0x6375_7276;

/// How one method's student ended.
pub enum MethodOutcome {
    Trained {
        scored: Box<Scored>,
        report: TrainReport,
        curve: Vec<CurvePoint>,
    },
    Failed {
        error: String,
    },
}

/// A method of the plan with its result.
pub struct MethodRun {
    pub plan: MethodPlan,
    pub outcome: MethodOutcome,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// The fixed, seeded dev subset of learning curves (`n` questions, dev order kept).
pub fn curve_subset(items: &[Item], n: usize) -> Vec<Item> {
    let mut idx: Vec<usize> = (0..items.len()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(CURVE_SEED);
    idx.shuffle(&mut rng);
    idx.truncate(n.min(items.len()));
    idx.sort_unstable();
    idx.into_iter().map(|i| items[i].clone()).collect()
}

/// Learning-curve points kept in `path` (JSON lines), so that a resumed run keeps the points of
/// the steps before its checkpoint and recomputes the others.
fn read_curve(path: &Path, up_to: usize) -> Vec<CurvePoint> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<CurvePoint>(l).ok())
        .filter(|p| p.step <= up_to)
        .collect()
}

fn write_curve(path: &Path, points: &[CurvePoint]) -> anyhow::Result<()> {
    let lines = points
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    if lines.is_empty() {
        let _ = std::fs::remove_file(path);
        return Ok(());
    }
    score::write_lines(path, &lines)
}

/// The step a resumed run continues from (0 when it starts fresh).
fn resume_step(ckpt_dir: &Path) -> usize {
    kidbench_train::trainer::latest_checkpoint(ckpt_dir)
        .ok()
        .flatten()
        .and_then(|p| {
            p.file_name()?
                .to_string_lossy()
                .strip_prefix("step-")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Everything the students share.
pub struct Shared<'a> {
    pub ctx: &'a Context,
    pub tok: &'a SqlTokenizer,
    pub teacher: &'a SftModel,
    pub init: Option<&'a SftModel>,
    pub data: &'a [Example],
    pub quiet: bool,
}

/// Trains and scores the student of `method` in `dir` (checkpoints, metrics, curve points).
fn train_one(
    shared: &Shared<'_>,
    plan: &RunPlan,
    method: &MethodPlan,
    plugin: &PluginMethod,
    dir: &Path,
    resume: bool,
) -> anyhow::Result<(Scored, TrainReport, Vec<CurvePoint>)> {
    let ctx = shared.ctx;
    let student = match shared.init {
        Some(init) => lm::load_dir_as(&init.dir.join("model"), ctx.device, ctx.kind())?,
        None => lm::initial_model_as(&ctx.student, shared.tok, ctx.device, ctx.kind(), plan.seed)?,
    };
    // A mask id the model has no embedding row for (added to a HF tokenizer) is no mask token
    // at all: kid then says so instead of indexing out of range.
    let mut tokens = TokenIds::from_tokenizer(shared.tok);
    if tokens.mask >= student.model.config().vocab_size {
        tokens.mask = -1;
    }
    let ckpt_dir = dir.join("checkpoints").join(&method.label);
    let opts = TrainOptions {
        checkpoint_dir: Some(ckpt_dir.clone()),
        resume,
        metrics_path: Some(dir.join("metrics").join(format!("{}.jsonl", method.label))),
        progress: !shared.quiet,
        label: format!("{} {}", method.label, ctx.student.name()),
        stop_after: None,
        end_at: None,
    };
    let curve_path = dir.join("curves").join(format!("{}.jsonl", method.label));
    let start = if resume { resume_step(&ckpt_dir) } else { 0 };
    let mut curve = read_curve(&curve_path, start);
    let subset = match plan.eval.eval_every {
        Some(_) => curve_subset(&ctx.dev.items, plan.eval.curve_questions),
        None => Vec::new(),
    };
    let limits = (
        plan.student.max_prompt_tokens,
        plan.student.max_target_tokens,
    );
    let mut hook = |done: usize| -> anyhow::Result<()> {
        let Some(every) = plan.eval.eval_every else {
            return Ok(());
        };
        if !done.is_multiple_of(every) || curve.iter().any(|p| p.step == done) {
            return Ok(());
        }
        let s = score::score_items(
            ctx,
            shared.tok,
            &student.model,
            &subset,
            limits.0,
            limits.1,
            plan.eval.gen_batch_size,
            false,
            None,
        )?;
        curve.push(CurvePoint {
            step: done,
            ex: s.ex(),
            questions: s.scoring.summary.evaluated,
        });
        write_curve(&curve_path, &curve)
    };
    let teacher_lm: Option<&dyn trainer::CausalLm> = Some(&shared.teacher.lm.model);
    let report = trainer::train_with_hook(
        &student.vs,
        &student.model,
        teacher_lm,
        plugin,
        shared.data,
        &tokens,
        &plan.student.train,
        &opts,
        &mut hook,
    )
    .with_context(|| {
        format!(
            "training student {} with {}",
            ctx.student.name(),
            method.spec()
        )
    })?;
    let scored = score_student(shared, plan, &student, &method.label)?;
    Ok((scored, report, curve))
}

fn score_student(
    shared: &Shared<'_>,
    plan: &RunPlan,
    student: &Lm,
    label: &str,
) -> anyhow::Result<Scored> {
    score::score_dev(
        shared.ctx,
        shared.tok,
        &student.model,
        (
            plan.student.max_prompt_tokens,
            plan.student.max_target_tokens,
        ),
        plan.eval.gen_batch_size,
        label,
        shared.quiet,
    )
}

/// Creates the plugin of `m` from `registry`.
pub fn create(registry: &Registry, m: &MethodPlan) -> anyhow::Result<PluginMethod> {
    let entry = registry.get(&m.name)?;
    if entry.version != m.plugin_version {
        anyhow::bail!(
            "method '{}': the plan names plugin version {}, but {} is version {}",
            m.name,
            m.plugin_version,
            entry.path.display(),
            entry.version
        );
    }
    Ok(entry.create(&m.param_pairs())?)
}

/// Trains every method of `plan` in turn (outputs under `dir`). A method's failure is its
/// outcome; a SIGINT or SIGTERM is not a failure: it stops the run with its error (the method's
/// checkpoint is written, and `--resume` or the sweep cell continues from it).
pub fn train_all(
    shared: &Shared<'_>,
    plan: &RunPlan,
    registry: &Registry,
    dir: &Path,
    resume: bool,
) -> anyhow::Result<Vec<MethodRun>> {
    let mut runs = Vec::new();
    for m in &plan.methods {
        let attempt = catch_unwind(AssertUnwindSafe(|| {
            let plugin = create(registry, m)?;
            train_one(shared, plan, m, &plugin, dir, resume)
        }));
        let outcome = match attempt {
            Ok(Ok((scored, report, curve))) => MethodOutcome::Trained {
                scored: Box::new(scored),
                report,
                curve,
            },
            Ok(Err(e)) if kidbench_train::interrupt::is_interrupt(&e) => {
                return Err(e.context(format!("method {}", m.spec())));
            }
            Ok(Err(e)) => MethodOutcome::Failed {
                error: format!("{e:#}"),
            },
            Err(p) => MethodOutcome::Failed {
                error: format!("panicked: {}", panic_message(p.as_ref())),
            },
        };
        if let MethodOutcome::Failed { error } = &outcome {
            eprintln!("kidbench: method {} failed: {error}", m.spec());
        }
        runs.push(MethodRun {
            plan: m.clone(),
            outcome,
        });
    }
    Ok(runs)
}
