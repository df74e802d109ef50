//! Typed errors of the model crate.

use std::path::PathBuf;

/// Every fallible operation of `kidbench-model` returns this error.
///
/// Checkpoint errors name the file involved so a user can fix the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// An error raised by libtorch (shape mismatch inside an op, OOM, ...).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// An I/O error on a named file or folder.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The checkpoint folder does not exist (or is not a folder).
    #[error("checkpoint folder {path} does not exist or is not a directory")]
    MissingDir { path: PathBuf },

    /// Required files are missing from a checkpoint folder.
    #[error(
        "checkpoint folder {dir} lacks {missing:?}; a checkpoint needs config.json plus either \
         model.safetensors or model.safetensors.index.json with its shards"
    )]
    MissingFiles { dir: PathBuf, missing: Vec<String> },

    /// A JSON file (config.json, adapter_config.json, an index) could not be parsed.
    #[error("cannot parse {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The configuration is well-formed JSON but describes an unusable model.
    #[error("invalid config: {0}")]
    InvalidConfig(String),

    /// The configuration asks for something this implementation does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A safetensors file is truncated or corrupt.
    #[error("corrupt checkpoint file {path}: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },

    /// A tensor the model needs is absent from the checkpoint.
    #[error("tensor {name} is missing from checkpoint {path}")]
    MissingTensor { path: PathBuf, name: String },

    /// A tensor in the checkpoint has the wrong shape.
    #[error("tensor {name} in {path} has shape {actual:?}, the model expects {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<i64>,
        actual: Vec<i64>,
    },

    /// The embedding table does not match the configured (or the tokenizer's) vocabulary.
    #[error("vocabulary mismatch in {path}: expected {expected} rows, found {actual}")]
    VocabMismatch {
        path: PathBuf,
        expected: i64,
        actual: i64,
    },

    /// A caller passed tensors with wrong shapes or kinds.
    #[error("bad input: {0}")]
    BadInput(String),

    /// LoRA misuse (unknown target, adapter already attached, ...).
    #[error("LoRA: {0}")]
    Lora(String),
}

/// Result alias of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ModelError {
    let path = path.into();
    move |source| ModelError::Io { path, source }
}
