//! The training host: data order, micro-batching, the method (a plugin behind the
//! `kidbench-plugin-host` boundary), backward, clipping, AdamW, timing, metrics JSONL, a progress
//! bar, and atomic checkpoints that `resume` continues from to the same final weights as an
//! uninterrupted run.
//!
//! A step, per micro-batch: `data_request(StepInfo { step, total_steps, micro_batch, seed })`
//! (`seed` a pure function of the run seed, the step and the micro-batch) → the batch it names
//! (the ground truth, or the micro-batch's prompts completed by the student or the teacher) →
//! the student forward with grad when requested → the teacher forward without grad when
//! requested → `loss` (the method may run more forwards and sampling through
//! [`crate::host::TrainHost`]) → backward. Then clipping and AdamW on the whole global batch.
//!
//! The length of a run is a number of steps, or a wall-clock budget
//! ([`TrainConfig::time_budget_seconds`]): training continues until the budget is spent and the
//! learning-rate schedule follows the fraction of the budget used.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tch::nn::VarStore;
use tch::Tensor;

use kidbench_plugin_host::{
    BatchTensors, DataSource, HostServices, LossInput, Model, PluginMethod, SampledBatch, StepInfo,
};

pub use crate::parts::{CausalLm, Timings, TokenCounts};

use crate::data::{collate, DataOrder, Example};
use crate::host::{step_seed, TokenIds, TrainHost};
use crate::optim::{lr_at, lr_at_fraction, AdamW, AdamWConfig};
use crate::TrainError;

/// Warmup share of a time budget (the step schedule warms up over 5 % of the steps too).
pub const TIME_WARMUP_FRACTION: f64 = 0.05;

/// What a training run does; part of the checkpoint, so a resume must use the same values.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Optimizer steps; with a time budget, the most steps to run.
    pub steps: usize,
    /// Examples per optimizer step (the global batch).
    pub batch_size: usize,
    /// Examples per forward/backward; `batch_size` is split into micro-batches of this size.
    pub micro_batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    /// Final learning rate as a fraction of `lr` (cosine decay).
    pub min_lr_ratio: f64,
    pub adamw: AdamWConfig,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    pub seed: u64,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: usize,
    /// Write a metrics line every this many steps (and at the last).
    pub log_every: usize,
    /// Batch examples of similar length together (less padding; see `DataOrder::grouped`).
    #[serde(default)]
    pub group_by_length: bool,
    /// Train until this many wall-clock seconds are spent (at most `steps` steps); the learning
    /// rate follows the fraction of the budget used. None: exactly `steps` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_budget_seconds: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 100,
            batch_size: 32,
            micro_batch_size: 32,
            lr: 1e-3,
            warmup_steps: 30,
            min_lr_ratio: 0.1,
            adamw: AdamWConfig::default(),
            grad_clip: 1.0,
            seed: 42,
            checkpoint_every: 200,
            log_every: 10,
            group_by_length: true,
            time_budget_seconds: None,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.steps == 0 {
            return bad("steps must be at least 1");
        }
        if self.batch_size == 0 || self.micro_batch_size == 0 {
            return bad("batch size and micro-batch size must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("learning rate must be a positive number");
        }
        if let Some(b) = self.time_budget_seconds {
            if !(b > 0.0 && b.is_finite()) {
                return bad("the time budget must be a positive number of seconds");
            }
        }
        Ok(())
    }
}

/// Where and how a run reports and checkpoints.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Folder for checkpoints (`step-<N>/` + `latest`); none: no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the latest checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
    /// Metrics JSONL file (appended on resume, lines past the checkpoint dropped).
    pub metrics_path: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Prefix of the progress bar (e.g. `teacher tiny-m`).
    pub label: String,
    /// Stop (as if killed) once this many steps are done; used by tests of `resume`.
    pub stop_after: Option<usize>,
    /// End the run of the configuration after this many of its steps, checkpointing that last
    /// step: an earlier checkpoint of the same schedule (which a full run can resume from).
    pub end_at: Option<usize>,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainReport {
    /// The method's name.
    pub method: String,
    pub steps_done: usize,
    pub resumed_from: Option<usize>,
    pub final_loss: f64,
    /// Wall-clock training seconds, including those before a resume.
    pub train_seconds: f64,
    pub tokens: i64,
    pub target_tokens: i64,
    pub tokens_per_second: f64,
    pub timings: Timings,
    /// Tokens per kind of model call over the whole run (before a resume too).
    pub token_counts: TokenCounts,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CheckpointMeta {
    format: u32,
    step: usize,
    adam_t: u64,
    train_seconds: f64,
    last_loss: f64,
    config: TrainConfig,
    state_sha256: String,
    /// The ledger up to this step (absent in checkpoints of older kidbench: zeros).
    #[serde(default)]
    token_counts: TokenCounts,
}

const STATE_FILE: &str = "state.safetensors";
const META_FILE: &str = "meta.json";
const LATEST_FILE: &str = "latest";

fn ckpt_err(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename; the
/// temporary file is removed when the write fails, e.g. on a full disk).
pub use kidbench_results::write_atomic;

/// Where a run stands when it is checkpointed.
struct Progress<'a> {
    step: usize,
    train_seconds: f64,
    last_loss: f64,
    token_counts: TokenCounts,
    cfg: &'a TrainConfig,
}

fn save_checkpoint(dir: &Path, adam: &AdamW, at: &Progress<'_>) -> Result<(), TrainError> {
    let step = at.step;
    let io = |p: &Path, e: std::io::Error| ckpt_err(p, format!("cannot write: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let tmp = dir.join(format!(".tmp-step-{step}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    let res = write_checkpoint(dir, &tmp, adam, at);
    if res.is_err() {
        // A failed write (a full disk) leaves nothing half-written behind.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res
}

/// [`save_checkpoint`] through the temporary folder `tmp`.
fn write_checkpoint(
    dir: &Path,
    tmp: &Path,
    adam: &AdamW,
    at: &Progress<'_>,
) -> Result<(), TrainError> {
    let (step, cfg) = (at.step, at.cfg);
    let io = |p: &Path, e: std::io::Error| ckpt_err(p, format!("cannot write: {e}"));
    let final_dir = dir.join(format!("step-{step}"));
    std::fs::create_dir_all(tmp).map_err(|e| io(tmp, e))?;
    let state = tmp.join(STATE_FILE);
    let mut named = adam.param_tensors();
    named.extend(adam.state_tensors());
    let named: Vec<(String, Tensor)> = named
        .into_iter()
        .map(|(n, t)| (n, t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    Tensor::write_safetensors(&named, &state)
        .map_err(|e| ckpt_err(&state, format!("cannot write: {e}")))?;
    std::fs::File::open(&state)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&state, e))?;
    let meta = CheckpointMeta {
        format: 1,
        step,
        adam_t: adam.t,
        train_seconds: at.train_seconds,
        last_loss: at.last_loss,
        config: cfg.clone(),
        state_sha256: sha256_file(&state).map_err(|e| io(&state, e))?,
        token_counts: at.token_counts,
    };
    let meta_path = tmp.join(META_FILE);
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| ckpt_err(&meta_path, e.to_string()))?;
    write_atomic(&meta_path, &json).map_err(|e| io(&meta_path, e))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| io(&final_dir, e))?;
    }
    std::fs::rename(tmp, &final_dir).map_err(|e| io(&final_dir, e))?;
    let latest = dir.join(LATEST_FILE);
    write_atomic(&latest, format!("step-{step}\n").as_bytes()).map_err(|e| io(&latest, e))?;
    // Older checkpoints are no longer needed once `latest` points past them.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Also what a write that failed before this one left (a process killed mid-write).
            if (name.starts_with("step-") && name != format!("step-{step}"))
                || name.starts_with(".tmp-step-")
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Removes every checkpoint in `dir` (`step-*` folders and `latest`); other files stay.
fn remove_checkpoints(dir: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == LATEST_FILE {
            std::fs::remove_file(&path)
        } else if name.starts_with("step-") && path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            continue;
        }
        .with_context(|| format!("removing the earlier run's checkpoint {}", path.display()))?;
    }
    Ok(())
}

/// The latest checkpoint in `dir`, if any: its folder.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    let latest = dir.join(LATEST_FILE);
    if !latest.is_file() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&latest)
        .map_err(|e| ckpt_err(&latest, format!("cannot read: {e}")))?;
    let name = name.trim();
    if !name.starts_with("step-") || name.contains(['/', '\\']) {
        return Err(ckpt_err(
            &latest,
            format!("does not name a checkpoint: '{name}'"),
        ));
    }
    Ok(Some(dir.join(name)))
}

/// Loads a checkpoint folder into `adam` (parameters + moments); returns its metadata.
fn load_checkpoint(ckpt: &Path, adam: &mut AdamW) -> Result<CheckpointMeta, TrainError> {
    let meta_path = ckpt.join(META_FILE);
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|e| ckpt_err(&meta_path, format!("cannot read: {e}")))?;
    let meta: CheckpointMeta = serde_json::from_str(&text)
        .map_err(|e| ckpt_err(&meta_path, format!("corrupt or truncated: {e}")))?;
    let state = ckpt.join(STATE_FILE);
    let sha = sha256_file(&state).map_err(|e| ckpt_err(&state, format!("cannot read: {e}")))?;
    if sha != meta.state_sha256 {
        return Err(ckpt_err(
            &state,
            "corrupt or truncated (SHA-256 differs from the one recorded in meta.json)",
        ));
    }
    let named: BTreeMap<String, Tensor> = Tensor::read_safetensors(&state)
        .map_err(|e| ckpt_err(&state, format!("corrupt or truncated: {e}")))?
        .into_iter()
        .collect();
    adam.load(&named, meta.adam_t)
        .map_err(|m| ckpt_err(&state, m))?;
    Ok(meta)
}

/// Keeps the metrics lines of steps `<= step` (a resumed run rewrites what came after).
fn truncate_metrics(path: &Path, step: usize) -> anyhow::Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading metrics {}", path.display()))?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
        .with_context(|| format!("rewriting metrics {}", path.display()))
}

/// Trains the variables of `vs` (through `student`) on `data` with `method` (a plugin; the
/// teacher is needed when the method asks for it).
#[allow(clippy::too_many_arguments)]
pub fn train(
    vs: &VarStore,
    student: &dyn CausalLm,
    teacher: Option<&dyn CausalLm>,
    method: &PluginMethod,
    data: &[Example],
    tokens: &TokenIds,
    cfg: &TrainConfig,
    opts: &TrainOptions,
) -> anyhow::Result<TrainReport> {
    train_with_hook(
        vs,
        student,
        teacher,
        method,
        data,
        tokens,
        cfg,
        opts,
        &mut |_| Ok(()),
    )
}

/// [`train`], calling `after_step(steps_done)` after every optimizer step, before that step's
/// checkpoint (e.g. to score a learning-curve point). The hook's time is not training time: it
/// counts neither in `train_seconds` nor against a time budget.
#[allow(clippy::too_many_arguments)]
pub fn train_with_hook(
    vs: &VarStore,
    student: &dyn CausalLm,
    teacher: Option<&dyn CausalLm>,
    method: &PluginMethod,
    data: &[Example],
    tokens: &TokenIds,
    cfg: &TrainConfig,
    opts: &TrainOptions,
    after_step: &mut dyn FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<TrainReport> {
    cfg.validate()?;
    let device = vs.device();
    let mut order = if cfg.group_by_length {
        let lengths: Vec<usize> = data.iter().map(|e| e.input_ids.len()).collect();
        DataOrder::grouped(&lengths, cfg.seed, cfg.batch_size)?
    } else {
        DataOrder::new(data.len(), cfg.seed)?
    };
    let mut adam = AdamW::new(vs, cfg.adamw);

    let mut start = 0usize;
    let mut prior_seconds = 0.0;
    let mut resumed_from = None;
    let mut last_loss = f64::NAN;
    let mut prior_counts = TokenCounts::default();
    if let (true, Some(dir)) = (opts.resume, opts.checkpoint_dir.as_deref()) {
        if let Some(ckpt) = latest_checkpoint(dir)? {
            let meta = load_checkpoint(&ckpt, &mut adam)?;
            if meta.config != *cfg {
                return Err(ckpt_err(
                    &ckpt.join(META_FILE),
                    "was written with a different training configuration; \
                     resume with the same settings or start a fresh run",
                )
                .into());
            }
            start = meta.step;
            prior_seconds = meta.train_seconds;
            last_loss = meta.last_loss;
            prior_counts = meta.token_counts;
            resumed_from = Some(meta.step);
            eprintln!(
                "kidbench: {}: resuming from the checkpoint of step {} of {}",
                opts.label, meta.step, cfg.steps
            );
        }
    }
    if let (None, Some(dir)) = (resumed_from, opts.checkpoint_dir.as_deref()) {
        // A fresh run: checkpoints of an earlier run in this folder are not this run's, and a
        // later `resume` must not mix them with it.
        remove_checkpoints(dir)?;
    }
    let mut metrics = match &opts.metrics_path {
        Some(p) => {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            if resumed_from.is_some() {
                truncate_metrics(p, start)?;
            } else if p.exists() {
                std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
            }
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening metrics {}", p.display()))?,
            )
        }
        None => None,
    };

    let budget = cfg.time_budget_seconds;
    // with a time budget the bar counts seconds; a run ended early counts to where it ends
    let len = budget.map_or(
        opts.end_at.map_or(cfg.steps, |e| e.min(cfg.steps)) as u64,
        |b| b.ceil() as u64,
    );
    let bar = crate::progress::bar(len, &opts.label, !opts.progress);
    crate::progress::start_at(
        &bar,
        match budget {
            Some(_) => prior_seconds as u64,
            None => start as u64,
        },
    );

    let mut host = TrainHost::new(student, teacher, tokens, device);
    host.counts = prior_counts;
    let mut tokens_seen = 0i64;
    let mut target_tokens = 0i64;
    let t0 = Instant::now();
    let end = [opts.stop_after, opts.end_at]
        .into_iter()
        .flatten()
        .fold(cfg.steps, usize::min);
    // Seconds spent in `after_step`, which are not training time.
    let mut paused = 0.0f64;
    let spent = |t0: &Instant, paused: f64| prior_seconds + t0.elapsed().as_secs_f64() - paused;
    let mut done = start;
    // From here a SIGINT or SIGTERM lets the current step finish and checkpoint it.
    let _training = crate::interrupt::TrainingGuard::enter();

    for step in start..end {
        // Progress through the run: of the steps, or of the time budget.
        let (lr, total_steps) = match budget {
            None => (
                lr_at(step, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_ratio),
                cfg.steps as u64,
            ),
            Some(b) => {
                let frac = spent(&t0, paused) / b;
                if frac >= 1.0 {
                    // The budget ran out after the previous step's own check: that step is
                    // the last one, and a last step is always checkpointed.
                    if let (true, Some(dir)) = (done > start, opts.checkpoint_dir.as_deref()) {
                        let at = Progress {
                            step: done,
                            train_seconds: spent(&t0, paused),
                            last_loss,
                            token_counts: host.counts,
                            cfg,
                        };
                        save_checkpoint(dir, &adam, &at)?;
                    }
                    break;
                }
                let lr = lr_at_fraction(frac, TIME_WARMUP_FRACTION, cfg.lr, cfg.min_lr_ratio);
                // the step count at which the budget would end at the current pace
                let est = if frac > 0.0 {
                    (step as f64 / frac).round() as u64
                } else {
                    0
                };
                (lr, est.max(step as u64 + 1))
            }
        };
        let ts = Instant::now();
        let idx = order.batch(step, cfg.batch_size);
        let examples: Vec<&Example> = idx.iter().filter_map(|&i| data.get(i)).collect();
        let norm: usize = examples.iter().map(|e| e.target_tokens()).sum();
        let norm = norm.max(1) as f64;
        let chunks: Vec<&[&Example]> = examples.chunks(cfg.micro_batch_size).collect();
        let micro: Vec<_> = chunks
            .iter()
            .map(|c| collate(c, tokens.pad, device))
            .collect::<Result<_, _>>()?;
        host.timings.batch += ts.elapsed().as_secs_f64();

        adam.zero_grad();
        let mut step_loss = 0.0;
        for (mi, (mb, chunk)) in micro.iter().zip(&chunks).enumerate() {
            let info = StepInfo {
                step: step as u64,
                total_steps,
                micro_batch: mi as u32,
                seed: step_seed(cfg.seed, step as u64, mi as u32),
            };
            let tr = Instant::now();
            let req = method.data_request(&info)?;
            host.set_micro_batch(chunk, examples.len(), info.seed);
            host.timings.other += tr.elapsed().as_secs_f64();
            let sampled: SampledBatch;
            let batch = match req.source {
                DataSource::GroundTruth => BatchTensors {
                    input_ids: &mb.input_ids,
                    attention_mask: &mb.attention_mask,
                    labels: &mb.labels,
                    loss_mask: &mb.loss_mask,
                    norm_tokens: norm,
                },
                DataSource::FixedTeacherSamples => {
                    if !host.fixed_teacher_ready() {
                        let tp = Instant::now();
                        let visits: Vec<&Example> = match budget {
                            // a time budget may visit every example
                            Some(_) => data.iter().collect(),
                            None => (0..cfg.steps)
                                .flat_map(|s| order.batch(s, cfg.batch_size))
                                .filter_map(|i| data.get(i))
                                .collect(),
                        };
                        host.precompute_teacher(
                            &visits,
                            cfg.micro_batch_size,
                            &req.sampling,
                            cfg.seed,
                        )
                        .with_context(|| format!("method '{}'", method.name()))?;
                        // generated once, before training in effect: not training time
                        paused += tp.elapsed().as_secs_f64();
                    }
                    sampled = host.fixed_teacher_batch(&req.sampling)?;
                    sampled.view()
                }
                DataSource::StudentSamples | DataSource::TeacherSamples => {
                    let model = if req.source == DataSource::StudentSamples {
                        Model::Student
                    } else {
                        Model::Teacher
                    };
                    sampled = host.sample(model, &req.sampling).with_context(|| {
                        format!("method '{}': {model:?} samples", method.name())
                    })?;
                    sampled.view()
                }
            };
            let student_logits = if req.student_logits {
                Some(host.batch_forward(Model::Student, &batch, true)?)
            } else {
                None
            };
            let teacher_logits = if req.teacher_logits {
                Some(
                    host.batch_forward(Model::Teacher, &batch, false)
                        .with_context(|| {
                            format!("method '{}' asked for teacher logits", method.name())
                        })?,
                )
            } else {
                None
            };
            let before = host.model_seconds();
            let tl = Instant::now();
            let loss = method.loss(
                &LossInput {
                    batch,
                    student_logits: student_logits.as_ref(),
                    teacher_logits: teacher_logits.as_ref(),
                    step: info,
                    tokens: tokens.special(),
                },
                &mut host,
            )?;
            // the method's own computation (its forwards and sampling are timed by the host)
            let own = tl.elapsed().as_secs_f64() - (host.model_seconds() - before);
            host.timings.student_forward_backward += own.max(0.0);
            let tb = Instant::now();
            loss.backward();
            step_loss += loss.double_value(&[]);
            host.timings.student_forward_backward += tb.elapsed().as_secs_f64();
            if req.source == DataSource::GroundTruth {
                tokens_seen += mb.tokens;
                target_tokens += mb.target_tokens;
            } else {
                tokens_seen += batch.attention_mask.sum(tch::Kind::Int64).int64_value(&[]);
                target_tokens += batch.loss_mask.sum(tch::Kind::Float).double_value(&[]) as i64;
            }
        }
        if !step_loss.is_finite() {
            anyhow::bail!("loss is not finite at step {} ({step_loss})", step + 1);
        }

        let to = Instant::now();
        let grad_norm = adam.clip_grad_norm(cfg.grad_clip);
        adam.step(lr);
        host.timings.optimizer += to.elapsed().as_secs_f64();

        let tm = Instant::now();
        last_loss = step_loss;
        done = step + 1;
        let elapsed = t0.elapsed().as_secs_f64() - paused;
        let out_of_time = budget.is_some_and(|b| spent(&t0, paused) >= b);
        let last = done == cfg.steps || Some(done) == opts.end_at || out_of_time;
        let tps = tokens_seen as f64 / elapsed.max(1e-9);
        bar.set_position(match budget {
            Some(_) => spent(&t0, paused) as u64,
            None => done as u64,
        });
        bar.set_message(format!("step {done} loss {step_loss:.4} {tps:.0} tok/s"));
        if let Some(f) = metrics.as_mut() {
            if done.is_multiple_of(cfg.log_every.max(1)) || last {
                let line = serde_json::json!({
                    "step": done,
                    "loss": step_loss,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "tokens_per_second": tps,
                    "elapsed": prior_seconds + elapsed,
                });
                writeln!(f, "{line}").context("writing metrics")?;
            }
        }
        host.timings.other += tm.elapsed().as_secs_f64();
        let th = Instant::now();
        after_step(done)?;
        paused += th.elapsed().as_secs_f64();
        let tc = Instant::now();
        let is_ckpt =
            (cfg.checkpoint_every > 0 && done.is_multiple_of(cfg.checkpoint_every)) || last;
        let signal = crate::interrupt::requested().filter(|_| !last);
        if let (true, Some(dir)) = (is_ckpt || signal.is_some(), opts.checkpoint_dir.as_deref()) {
            let at = Progress {
                step: done,
                train_seconds: spent(&t0, paused),
                last_loss,
                token_counts: host.counts,
                cfg,
            };
            save_checkpoint(dir, &adam, &at)?;
        }
        host.timings.other += tc.elapsed().as_secs_f64();
        if let Some(signal) = signal {
            bar.finish_and_clear();
            return Err(crate::interrupt::Interrupted {
                signal,
                step: done,
                steps: cfg.steps,
                checkpointed: opts.checkpoint_dir.is_some(),
            }
            .into());
        }
        if last {
            break;
        }
    }
    bar.finish_and_clear();
    let elapsed = t0.elapsed().as_secs_f64() - paused;
    Ok(TrainReport {
        method: method.name().to_string(),
        steps_done: done,
        resumed_from,
        final_loss: last_loss,
        train_seconds: prior_seconds + elapsed,
        tokens: tokens_seen,
        target_tokens,
        tokens_per_second: tokens_seen as f64 / elapsed.max(1e-9),
        timings: host.timings,
        token_counts: host.counts,
    })
}
