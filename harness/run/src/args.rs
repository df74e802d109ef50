//! The command-line arguments of `kidbench run` and `kidbench teacher`. They are read once, by
//! [`crate::plan::RunPlan::resolve`]; nothing downstream of the plan looks at them again
//! (except where output goes: `--out`, `--quiet`, `--resume`).

use std::path::PathBuf;
use std::str::FromStr;

use kidbench_train::presets::ModelFlags;

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
    /// Precision of every model of the run: fp32 | bf16 (default fp32 on CPU, bf16 on CUDA).
    /// KD losses are computed in fp32 either way; bf16 parameters train through fp32 master
    /// weights (docs/TRAINING.md).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
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
    /// Teacher: a preset (see docs/TRAINING.md; default tiny-m) or the path of a local
    /// Hugging Face folder (Qwen2 or LLaMA).
    #[arg(long = "model")]
    pub model: Option<String>,
    /// Local folder of the model: of a named HF preset (default $KIDBENCH_MODELS/<name>), or,
    /// alone, any HF folder.
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
    /// Teacher: a preset (default tiny-m) or the path of a local Hugging Face folder (Qwen2
    /// or LLaMA config.json), e.g. `--teacher ./models/my-qwen`.
    #[arg(long)]
    pub teacher: Option<String>,
    /// Student: a preset (default tiny-s) or the path of a local Hugging Face folder.
    #[arg(long)]
    pub student: Option<String>,
    /// The teacher's folder: of a named HF preset (default $KIDBENCH_MODELS/<name>), or, without
    /// --teacher, any HF folder.
    #[arg(long)]
    pub teacher_dir: Option<PathBuf>,
    /// The student's folder, like --teacher-dir.
    #[arg(long)]
    pub student_dir: Option<PathBuf>,
    /// Make the student from its pretrained checkpoint by keeping some of its layers:
    /// `every:K` (layers 0, K, 2K, ... and the last) or a list `0,3,6,29`. Written once as a
    /// new HF folder under $KIDBENCH_HOME/student-subsets/.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_layers: Option<String>,
    /// Fine-tune the teacher with LoRA instead of all its weights: `R` (rank R, alpha 2R, every
    /// linear layer) or `r=R,alpha=A,targets=q_proj+v_proj`. The adapters are merged into the
    /// cached teacher.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher_lora: Option<String>,
    /// Student training steps (default: the preset's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Teacher training steps (default: the preset's).
    #[arg(long)]
    pub teacher_steps: Option<usize>,
    /// Teacher peak learning rate (default: the preset's).
    #[arg(long)]
    pub teacher_lr: Option<f64>,
    /// Student peak learning rate (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Steps of the students' linear learning-rate warm-up from 0 to --lr, before the cosine
    /// decay (default: a twentieth of --steps, at least 1; 0 starts at the peak). A student
    /// warmed up with --student-warmup is already trained: the warm-up of a fresh schedule may
    /// not suit it.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
    /// Start every student from the student preset fine-tuned with SFT for this many steps
    /// (trained once and cached like a teacher) instead of its random initialization: the
    /// from-scratch stand-in for the paper's pretrained students. It is scored as
    /// `student_init`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_warmup: Option<usize>,
    /// Start every student from the teacher's own training run at this step (its checkpoint
    /// there: same schedule, stopped early), instead of a separate warm-up. The student and
    /// teacher presets must be the same; a student with a training gap, not a capacity gap.
    /// Trained in the teacher's run: the teacher resumes from it, so the init costs no steps of
    /// its own. Scored as `student_init`.
    #[arg(long, conflicts_with = "student_warmup")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_from_teacher_step: Option<usize>,
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
    /// Students write a checkpoint every N steps (and at the end); an interrupted run or sweep
    /// cell resumes from the last one.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Learning curves: every N steps, score each student on a fixed dev subset
    /// (--curve-questions, drawn with a fixed seed) and record (step, EX). Not training time.
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Questions of the learning-curve subset.
    #[arg(long, default_value_t = 256)]
    pub curve_questions: usize,
    /// Seed of the teacher and of the student warm-up (the pretrained stand-ins): fixed while
    /// --seed varies, so the students of every seed distil the same teacher.
    #[arg(long, default_value_t = 42)]
    pub teacher_seed: u64,
    /// Examples per teacher (and student warm-up) forward/backward; default --batch-size
    /// (--micro-batch-size is the students' only).
    #[arg(long)]
    pub teacher_micro_batch_size: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The teacher flags of `kidbench run` (`--teacher`, `--teacher-dir`, default tiny-m).
pub const TEACHER_FLAGS: ModelFlags = ModelFlags {
    name: "--teacher",
    dir: "--teacher-dir",
    default: "tiny-m",
};

/// The student flags of `kidbench run` (`--student`, `--student-dir`, default tiny-s).
pub const STUDENT_FLAGS: ModelFlags = ModelFlags {
    name: "--student",
    dir: "--student-dir",
    default: "tiny-s",
};

/// The model flags of `kidbench teacher` (`--model`, `--model-dir`, default tiny-m).
pub const TEACHER_MODEL_FLAGS: ModelFlags = ModelFlags {
    name: "--model",
    dir: "--model-dir",
    default: "tiny-m",
};

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
            dtype: None,
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
            teacher: None,
            student: None,
            teacher_dir: None,
            student_dir: None,
            student_layers: None,
            teacher_lora: None,
            steps: None,
            teacher_steps: None,
            teacher_lr: None,
            lr: None,
            warmup_steps: None,
            student_warmup: None,
            student_from_teacher_step: None,
            out: "results".into(),
            resume: false,
            max_dev: None,
            gen_batch_size: 64,
            checkpoint_every: 100,
            eval_every: None,
            curve_questions: 256,
            teacher_seed: 42,
            teacher_micro_batch_size: None,
            common: CommonArgs::default(),
        }
    }
}
