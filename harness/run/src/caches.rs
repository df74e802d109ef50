//! Shared artifacts, built once and reused by every run and sweep cell whose plan names them:
//! the trained tokenizer, the teacher, the student warm-up (both SFT models), and their dev
//! scores. Each lives in `$KIDBENCH_HOME/<kind>/<key>/` where `key` comes from the plan
//! ([`crate::plan`]), so it holds exactly what changes the artifact.
//!
//! Building happens under a lock (`<kind>/<key>.lock`): a second process waits and then reuses
//! what the first built, with no duplicate work. A finished artifact carries `manifest.json`
//! (size and SHA-256 of each of its files), written last; reuse verifies it, and an artifact
//! whose files changed is rebuilt with a message, never used silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kidbench_tokenizer::SqlTokenizer;
use kidbench_train::bench::LockFile;
use kidbench_train::cache::kidbench_home;
use kidbench_train::data::Example;
use kidbench_train::host::TokenIds;
use kidbench_train::lm::{self, Lm};
use kidbench_train::presets::Resolved;
use kidbench_train::trainer::{self, write_atomic, TrainOptions};

use crate::context::Context;
use crate::plan::{RunPlan, SftModelPlan, TokenizerPlan};

const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FileSum {
    size: u64,
    sha256: String,
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == MANIFEST || name.ends_with(".lock") {
            continue;
        }
        if e.file_type()?.is_dir() {
            files_under(&p, base, out)?;
        } else {
            out.push(p.strip_prefix(base).unwrap_or(&p).to_path_buf());
        }
    }
    Ok(())
}

/// Records the size and SHA-256 of the files of `dir` (under `parts`) in `dir/manifest.json`.
pub fn write_manifest(dir: &Path, parts: &[&str]) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for p in parts {
        let path = dir.join(p);
        if path.is_dir() {
            files_under(&path, dir, &mut files)?;
        } else {
            files.push(PathBuf::from(p));
        }
    }
    let mut sums = BTreeMap::new();
    for f in files {
        let path = dir.join(&f);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        sums.insert(
            f.to_string_lossy().into_owned(),
            FileSum {
                size,
                sha256: kidbench_train::bench::sha256_file(&path)?,
            },
        );
    }
    let path = dir.join(MANIFEST);
    write_atomic(&path, serde_json::to_string_pretty(&sums)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Whether `dir` is a finished artifact whose files are as recorded: `Ok(true)`; none there:
/// `Ok(false)`; changed: an error naming the first file that differs.
pub fn verify_manifest(dir: &Path) -> anyhow::Result<bool> {
    let path = dir.join(MANIFEST);
    if !path.is_file() {
        return Ok(false);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let sums: BTreeMap<String, FileSum> = serde_json::from_str(&text)
        .with_context(|| format!("{}: corrupt manifest", path.display()))?;
    for (f, want) in &sums {
        let p = dir.join(f);
        let size = std::fs::metadata(&p).map(|m| m.len()).map_err(|e| {
            anyhow::anyhow!(
                "{}: recorded in {} but cannot be read: {e}",
                p.display(),
                path.display()
            )
        })?;
        if size != want.size {
            anyhow::bail!(
                "{}: {size} bytes, but {} recorded {} bytes when it was written",
                p.display(),
                path.display(),
                want.size
            );
        }
        if kidbench_train::bench::sha256_file(&p)? != want.sha256 {
            anyhow::bail!(
                "{}: its SHA-256 differs from the one {} recorded when it was written",
                p.display(),
                path.display()
            );
        }
    }
    Ok(true)
}

/// Holds `<root>/<kind>/<key>.lock` while an artifact is looked up or built.
fn lock(dir: &Path) -> anyhow::Result<LockFile> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "artifact".into());
    Ok(LockFile::acquire(
        &dir.with_file_name(format!("{name}.lock")),
    )?)
}

/// A finished artifact is reused; a changed one is removed (with a message) so that it is
/// rebuilt. Returns whether it can be reused.
fn reusable(dir: &Path, what: &str) -> anyhow::Result<bool> {
    match verify_manifest(dir) {
        Ok(ok) => Ok(ok),
        Err(e) => {
            eprintln!(
                "kidbench: the cached {what} in {} is damaged ({e:#}); rebuilding it",
                dir.display()
            );
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("removing the damaged {}", dir.display()))?;
            Ok(false)
        }
    }
}

/// The run's tokenizer: a local model's own, else the BPE of the plan (trained once, cached).
pub fn tokenizer(ctx: &Context, plan: &TokenizerPlan) -> anyhow::Result<SqlTokenizer> {
    let mut hf: Option<SqlTokenizer> = None;
    for m in [&ctx.teacher, &ctx.student] {
        if let Resolved::Local { dir, name, .. } = m {
            let t = SqlTokenizer::load(dir).with_context(|| {
                format!("loading the tokenizer of {name} from {}", dir.display())
            })?;
            if let Some(first) = &hf {
                kidbench_tokenizer::check_compatible(&t, first)
                    .map_err(|e| kidbench_train::TrainError::TokenizerMismatch(e.to_string()))?;
            } else {
                hf = Some(t);
            }
        }
    }
    if let Some(t) = hf {
        return Ok(t);
    }
    let dir = kidbench_home().join("tokenizers").join(&plan.key[..16]);
    let _lock = lock(&dir)?;
    if reusable(&dir, "tokenizer")? {
        return SqlTokenizer::load(&dir)
            .with_context(|| format!("loading the cached tokenizer {}", dir.display()));
    }
    let targets: Vec<String> = ctx
        .train
        .items
        .iter()
        .map(|it| ctx.target_text(&it.gold))
        .collect();
    let mut texts: Vec<&str> = Vec::new();
    for (it, target) in ctx.train.items.iter().zip(&targets) {
        texts.push(&it.prompt);
        texts.push(target);
    }
    let tok = SqlTokenizer::train(texts, plan.vocab_size).context("training the BPE tokenizer")?;
    tok.save(&dir)
        .with_context(|| format!("saving the tokenizer to {}", dir.display()))?;
    write_manifest(&dir, &["tokenizer.json"])?;
    Ok(tok)
}

/// Encodes the train split for a model with `max_prompt`/`max_target` token limits.
pub fn encode_train(
    ctx: &Context,
    tok: &SqlTokenizer,
    max_prompt: usize,
    max_target: usize,
) -> anyhow::Result<Vec<Example>> {
    ctx.train
        .items
        .iter()
        .map(|it| {
            let e = tok
                .encode_pair(
                    &it.prompt,
                    &ctx.target_text(&it.gold),
                    max_prompt,
                    max_target,
                )
                .with_context(|| format!("encoding train question {}", it.index))?;
            Ok(Example {
                input_ids: e.input_ids,
                prompt_len: e.prompt_len,
            })
        })
        .collect()
}

/// What a cached SFT model is for: its cache folder and the words of its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Teacher,
    /// The students' common starting point (`--student-warmup`).
    StudentInit,
}

impl Role {
    fn cache_dir(self) -> &'static str {
        match self {
            Role::Teacher => "teachers",
            Role::StudentInit => "student-inits",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::StudentInit => "student_init",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::StudentInit => "student init",
        }
    }
}

/// A trained SFT model, from the cache or freshly trained into it.
pub struct SftModel {
    pub lm: Lm,
    pub dir: PathBuf,
    pub reused: bool,
    pub report: serde_json::Value,
    pub role: Role,
}

impl SftModel {
    pub fn train_seconds(&self) -> f64 {
        self.report["train_seconds"].as_f64().unwrap_or(0.0)
    }

    /// The folder its dev scores for `score_key` live in.
    pub fn scores_dir(&self, score_key: &str) -> PathBuf {
        self.dir.join("scores").join(&score_key[..16])
    }
}

/// The model of `plan` (teacher or student warm-up), fine-tuned with SFT on the train split.
pub fn sft_model(
    ctx: &Context,
    tok: &SqlTokenizer,
    resolved: &Resolved,
    plan: &SftModelPlan,
    role: Role,
    quiet: bool,
) -> anyhow::Result<SftModel> {
    // The key says what the model is, whatever it is for: a student warm-up equal to the
    // teacher (same preset, data, steps and seed) is the cached teacher.
    let other = match role {
        Role::Teacher => Role::StudentInit,
        Role::StudentInit => Role::Teacher,
    };
    let twin = kidbench_home()
        .join(other.cache_dir())
        .join(&plan.key[..16]);
    if twin.join("teacher.json").is_file() && verify_manifest(&twin).unwrap_or(false) {
        if let Ok(m) = load_cached(&twin, ctx, role) {
            return Ok(m);
        }
    }
    let dir = kidbench_home().join(role.cache_dir()).join(&plan.key[..16]);
    let _lock = lock(&dir)?;
    let done = dir.join("teacher.json");
    if reusable(&dir, role.words())? && done.is_file() {
        return load_cached(&dir, ctx, role);
    }
    build_sft_model(ctx, tok, resolved, plan, role, quiet, dir)
}

/// Loads a finished SFT model from its cache folder.
fn load_cached(dir: &Path, ctx: &Context, role: Role) -> anyhow::Result<SftModel> {
    let done = dir.join("teacher.json");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&done).with_context(|| format!("reading {}", done.display()))?,
    )
    .with_context(|| format!("parsing {}", done.display()))?;
    let lm = lm::load_dir_as(&dir.join("model"), ctx.device, ctx.kind())?;
    eprintln!(
        "kidbench: reusing the cached {} {}",
        role.words(),
        dir.display()
    );
    Ok(SftModel {
        lm,
        dir: dir.to_path_buf(),
        reused: true,
        report,
        role,
    })
}

/// Trains the SFT model of `plan` into `dir` (resuming a killed training).
fn build_sft_model(
    ctx: &Context,
    tok: &SqlTokenizer,
    resolved: &Resolved,
    plan: &SftModelPlan,
    role: Role,
    quiet: bool,
    dir: PathBuf,
) -> anyhow::Result<SftModel> {
    let done = dir.join("teacher.json");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(
        &dir.join("key.json"),
        serde_json::to_string_pretty(plan)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", dir.join("key.json").display()))?;
    let data = encode_train(ctx, tok, plan.max_prompt_tokens, plan.max_target_tokens)?;
    let mut lm = lm::initial_model_as(resolved, tok, ctx.device, ctx.kind(), plan.train.seed)?;
    // --teacher-lora: only the adapters train (fp32, in their own store), seeded like the rest
    let lora_vs = match &plan.lora {
        None => None,
        Some(l) => {
            tch::manual_seed(plan.train.seed as i64);
            let vs = tch::nn::VarStore::new(ctx.device);
            kidbench_model::attach_lora(&mut lm.model, &vs.root(), &l.config()).with_context(
                || format!("--teacher-lora: attaching adapters to {}", resolved.name()),
            )?;
            Some(vs)
        }
    };
    let opts = TrainOptions {
        checkpoint_dir: Some(dir.join("checkpoints")),
        resume: true, // a killed teacher training continues where it stopped
        metrics_path: Some(dir.join("metrics.jsonl")),
        progress: !quiet,
        label: format!("{} {}", role.words(), resolved.name()),
        stop_after: None,
        end_at: plan.end_at,
    };
    let sft = kidbench_train::method::builtin_sft()?;
    let report = trainer::train(
        lora_vs.as_ref().unwrap_or(&lm.vs),
        &lm.model,
        None,
        &sft,
        &data,
        &TokenIds::from_tokenizer(tok),
        &plan.train,
        &opts,
    )
    .with_context(|| format!("training the {} {}", role.words(), resolved.name()))?;
    let lm = match (&plan.lora, lora_vs) {
        (Some(l), Some(_vs)) => {
            // the adapters as PEFT writes them, then folded into the weights of the cached model
            kidbench_model::save_adapter(dir.join("adapter"), &lm.model, &l.config())
                .context("saving the teacher's LoRA adapter")?;
            kidbench_model::merge_lora(&mut lm.model).context("merging the LoRA adapter")?;
            lm::save(&dir.join("model"), &lm)?;
            // reloaded as every later run loads it (trainable again, adapters gone)
            lm::load_dir_as(&dir.join("model"), ctx.device, ctx.kind())?
        }
        _ => {
            lm::save(&dir.join("model"), &lm)?;
            lm
        }
    };
    let report = serde_json::to_value(&report)?;
    write_atomic(&done, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("writing {}", done.display()))?;
    if plan.end_at.is_none() {
        let _ = std::fs::remove_dir_all(dir.join("checkpoints"));
    } // else its last checkpoint is where the full run resumes (`seed_full_run`)
    let mut parts = vec!["model", "teacher.json", "key.json"];
    if plan.lora.is_some() {
        parts.push("adapter");
    }
    write_manifest(&dir, &parts)?;
    Ok(SftModel {
        lm,
        dir,
        reused: false,
        report,
        role,
    })
}

/// Lets the full run of an SFT model start from `early`, the same run stopped early
/// (`--student-from-teacher-step`): copies `early`'s last checkpoint and metrics into the full
/// run's folder, unless that run is cached or has a checkpoint of its own. Training is
/// deterministic, so the resumed run is the run trained straight through. True when it seeded.
pub fn seed_full_run(early: &SftModel, full: &SftModelPlan, role: Role) -> anyhow::Result<bool> {
    let dir = kidbench_home().join(role.cache_dir()).join(&full.key[..16]);
    let _lock = lock(&dir)?;
    let ckpts = dir.join("checkpoints");
    if dir.join("teacher.json").is_file() || trainer::latest_checkpoint(&ckpts)?.is_some() {
        return Ok(false);
    }
    let Some(src) = trainer::latest_checkpoint(&early.dir.join("checkpoints"))? else {
        return Ok(false); // an early run cached before it kept its checkpoint
    };
    let name = src.file_name().context("a checkpoint folder has a name")?;
    // linked: the full run never writes into a checkpoint it loads, it writes new ones
    crate::files::link_tree(&src, &ckpts.join(name))?;
    let metrics = early.dir.join("metrics.jsonl");
    if metrics.is_file() {
        std::fs::copy(&metrics, dir.join("metrics.jsonl"))
            .with_context(|| format!("copying {}", metrics.display()))?;
    }
    // `latest` last: until it exists the folder holds no checkpoint
    write_atomic(
        &ckpts.join("latest"),
        format!("{}\n", name.to_string_lossy()).as_bytes(),
    )
    .with_context(|| format!("writing {}", ckpts.join("latest").display()))?;
    Ok(true)
}

/// The teacher of `plan`.
pub fn teacher(
    ctx: &Context,
    tok: &SqlTokenizer,
    plan: &RunPlan,
    quiet: bool,
) -> anyhow::Result<SftModel> {
    sft_model(ctx, tok, &ctx.teacher, &plan.teacher, Role::Teacher, quiet)
}

/// The students' warmed-up init of `plan`, when it has one.
pub fn student_init(
    ctx: &Context,
    tok: &SqlTokenizer,
    plan: &RunPlan,
    quiet: bool,
) -> anyhow::Result<Option<SftModel>> {
    match &plan.student.init {
        crate::plan::StudentInit::Preset => Ok(None),
        crate::plan::StudentInit::Warmup { model, .. } => Ok(Some(sft_model(
            ctx,
            tok,
            &ctx.student,
            model,
            Role::StudentInit,
            quiet,
        )?)),
    }
}
