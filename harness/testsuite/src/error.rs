//! Errors of test-suite building and evaluation; every variant names the database or file.

use std::path::PathBuf;

/// Why a test suite could not be built, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestsuiteError {
    /// SQLite failed while reading an original database or writing a generated one.
    #[error("database {db_id} ({path}): {source}")]
    Sqlite {
        db_id: String,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A file or folder could not be read, written, renamed or removed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A manifest file is not valid JSON of the expected shape.
    #[error("{path}: invalid manifest: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The benchmark registry or its files failed.
    #[error(transparent)]
    Benchmark(#[from] kidbench_sql::benchmark::BenchmarkError),
    /// A database is unusable for fuzzing (e.g. no tables).
    #[error("database {db_id}: {message}")]
    Invalid { db_id: String, message: String },
    /// A test suite folder is missing or does not belong to this benchmark/version.
    #[error("test suite {path}: {message}")]
    Suite { path: PathBuf, message: String },
    /// A file a manifest lists is missing, or its size or SHA-256 differ from the recorded ones.
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

impl TestsuiteError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TestsuiteError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sqlite(db_id: &str, path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        TestsuiteError::Sqlite {
            db_id: db_id.to_string(),
            path: path.into(),
            source,
        }
    }
}
