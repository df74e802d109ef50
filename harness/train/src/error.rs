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
