//! Typed errors of the training library. Each names the preset, method, folder or file at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    #[error("unknown model preset '{name}'; available presets: {}", available.join(", "))]
    UnknownPreset {
        name: String,
        available: Vec<String>,
    },

    #[error(
        "model '{name}' is not available locally: folder {} {}; provide {} (set KIDBENCH_MODELS or pass --model-dir)",
        dir.display(),
        if *dir_exists { "lacks files" } else { "does not exist" },
        missing.join(", ")
    )]
    MissingModel {
        name: String,
        dir: PathBuf,
        dir_exists: bool,
        missing: Vec<String>,
    },

    /// A model folder named on the command line (`--teacher DIR`, `--teacher-dir DIR`, ...)
    /// that is not there or lacks files.
    #[error(
        "{flag} {}: the model folder {}; it needs {}{}",
        dir.display(),
        if *dir_exists { format!("lacks {}", missing.join(", ")) } else { "does not exist".to_string() },
        missing.join(", "),
        match fetch { Some(cmd) => format!(" (`{cmd}` fetches it)"), None => String::new() }
    )]
    MissingFolder {
        flag: String,
        dir: PathBuf,
        dir_exists: bool,
        missing: Vec<String>,
        /// The command that fetches it, when the folder is a known preset's.
        fetch: Option<String>,
    },

    /// A model folder whose config.json is not of an architecture kidbench implements.
    #[error("{flag} {}: {detail}; kidbench loads Qwen2 and LLaMA checkpoints (config.json model_type qwen2 or llama)", dir.display())]
    UnsupportedModel {
        flag: String,
        dir: PathBuf,
        detail: String,
    },

    /// Two flags that cannot be given together.
    #[error("{0}")]
    Flags(String),

    #[error("unknown method '{name}'; available methods: {}", available.join(", "))]
    UnknownMethod {
        name: String,
        available: Vec<String>,
    },

    #[error("student and teacher tokenizers are incompatible: {0}")]
    TokenizerMismatch(String),

    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    #[error("invalid training configuration: {0}")]
    Config(String),

    #[error("data: {0}")]
    Data(String),
}
