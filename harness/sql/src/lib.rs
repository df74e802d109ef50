//! `kidbench-sql`: everything needed to decide whether a predicted SQL query is right, without torch.
//!
//! - [`exec`]: safe execution of untrusted SQL against read-only SQLite databases.
//! - [`normalize`] and [`compare`]: the comparison rules of the reference evaluators (Spider
//!   test-suite, BIRD, strict).
//! - [`eval`]: parallel evaluation of (gold, prediction) pairs with per-cause and per-hardness reports.
//! - [`hardness`]: Spider's easy/medium/hard/extra levels computed from SQL text.
//! - [`schema`] and [`prompt`]: Spider `tables.json` schemas and the CodeS database prompt.
//! - [`benchmark`]: the benchmark registry (`benchmarks/*.toml`) and Spider/BIRD file loaders.

pub mod benchmark;
pub mod compare;
pub mod eval;
pub mod exec;
pub mod hardness;
pub mod normalize;
pub mod prompt;
pub mod schema;
pub mod spaced;
pub mod testdata;
pub mod value;

pub use value::{ResultSet, Value};

/// The evaluator's version: part of every run plan, since its comparison rules decide EX.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a query did not produce a comparable result. Counted per cause in every report.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// The text is not valid SQL (as SQLite parses it).
    Syntax,
    /// Unknown table, column or function for this database.
    Schema,
    /// Interrupted after the configured timeout.
    Timeout,
    /// Refused by the authorizer: writes, schema changes, ATTACH, PRAGMA, extensions.
    Denied,
    /// More rows, bytes or memory than the configured caps.
    TooLarge,
    /// More than one statement in one prediction (`SELECT 1; DELETE FROM t`).
    MultipleStatements,
    /// An empty (or whitespace/comment-only) query.
    Empty,
    /// The database file for this question does not exist.
    MissingDatabase,
    /// Any other SQLite error at run time (e.g. a type error inside a function).
    Runtime,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Syntax => "syntax",
            Cause::Schema => "schema",
            Cause::Timeout => "timeout",
            Cause::Denied => "denied",
            Cause::TooLarge => "too_large",
            Cause::MultipleStatements => "multiple_statements",
            Cause::Empty => "empty",
            Cause::MissingDatabase => "missing_database",
            Cause::Runtime => "runtime",
        }
    }

    pub const ALL: [Cause; 9] = [
        Cause::Syntax,
        Cause::Schema,
        Cause::Timeout,
        Cause::Denied,
        Cause::TooLarge,
        Cause::MultipleStatements,
        Cause::Empty,
        Cause::MissingDatabase,
        Cause::Runtime,
    ];
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
