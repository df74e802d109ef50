//! Errors of the tokenizer crate. Every error that comes from a file names it.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while training, loading, saving or using a tokenizer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file that must exist does not (e.g. `tokenizer.json` in a model directory).
    #[error("missing tokenizer file {path}: {hint}")]
    MissingFile {
        /// The path that was looked up.
        path: PathBuf,
        /// What the file is for and where it was expected.
        hint: String,
    },
    /// Reading or writing a file failed for another reason than its absence.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be parsed (or does not have the expected shape).
    #[error("unparsable JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// `tokenizer.json` is valid JSON but the `tokenizers` crate rejected it.
    #[error("invalid tokenizer in {path}: {message}")]
    InvalidTokenizer {
        /// The file.
        path: PathBuf,
        /// The message of the `tokenizers` crate.
        message: String,
    },
    /// A special token role (pad, eos, ...) could not be resolved to an id.
    #[error("missing special token `{role}` for {path}: {detail}")]
    MissingSpecialToken {
        /// The role: `pad`, `bos`, `eos` or `mask`.
        role: &'static str,
        /// The tokenizer file or directory being loaded.
        path: PathBuf,
        /// What was searched.
        detail: String,
    },
    /// Special ids are not pairwise distinct, or a recorded id does not match the vocabulary.
    #[error("special token ids are inconsistent{}: {detail}", path_suffix(.path))]
    SpecialIds {
        /// The file the ids came from, when there is one.
        path: Option<PathBuf>,
        /// Which ids collide or mismatch.
        detail: String,
    },
    /// The tokenizer has ids at or beyond the checkpoint's embedding rows (`vocab_size` of its
    /// config.json): they would index past the embedding.
    #[error(
        "{} does not match the checkpoint: its ids go up to {} ({tokens} ids) but {} says \
         vocab_size {rows} (embedding rows); ids from {rows} on would index past the embedding \
         (a tokenizer.json of another model?)",
        tokenizer.display(),
        tokens - 1,
        config.display()
    )]
    VocabMismatch {
        /// The tokenizer.json.
        tokenizer: PathBuf,
        /// The config.json.
        config: PathBuf,
        /// Highest id + 1.
        tokens: usize,
        /// The config's vocab_size.
        rows: usize,
    },
    /// Student and teacher tokenizers differ; every difference is listed.
    #[error("incompatible tokenizers: {}", .differences.join("; "))]
    Incompatible {
        /// One line per difference, e.g. `vocab size 151936 (student) vs 152064 (teacher)`.
        differences: Vec<String>,
    },
    /// A caller-supplied argument cannot be honoured (e.g. a zero token budget).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An id handed to `decode` is negative or does not fit in `u32`.
    #[error("invalid token id {0}")]
    InvalidId(i64),
    /// The `tokenizers` crate failed while training, encoding or decoding.
    #[error("tokenizers failed while {context}: {message}")]
    Tokenizers {
        /// What we were doing.
        context: &'static str,
        /// The message of the `tokenizers` crate.
        message: String,
    },
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" in {}", p.display()),
        None => String::new(),
    }
}

impl Error {
    /// Wraps an error of the `tokenizers` crate (a boxed `dyn Error`).
    pub(crate) fn tk(context: &'static str, err: impl std::fmt::Display) -> Self {
        Error::Tokenizers {
            context,
            message: err.to_string(),
        }
    }
}
