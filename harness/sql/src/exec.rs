//! Safe execution of untrusted SQL against SQLite databases.
//!
//! Predictions come from models and must be treated as hostile: they may try to write, attach
//! other files, load extensions, loop forever or allocate without bound. [`SafeConnection`] is the
//! only way this crate runs SQL, and it layers several independent defences:
//!
//! 1. the file is opened through a URI with `mode=ro&immutable=1` and without `SQLITE_OPEN_CREATE`,
//!    so SQLite neither writes, locks, journals nor creates anything (a missing file is
//!    [`Cause::MissingDatabase`]);
//! 2. an authorizer allows only `SELECT`, column reads, recursive CTEs and non-dangerous functions;
//!    everything else (DML, DDL, `ATTACH`, `PRAGMA`, transactions, `VACUUM`, `load_extension`, ...)
//!    fails at prepare time with [`Cause::Denied`]; prepared statements must also be read-only
//!    according to `sqlite3_stmt_readonly`;
//! 3. exactly one statement is accepted ([`Cause::MultipleStatements`] otherwise);
//! 4. a progress handler interrupts the virtual machine once the per-query deadline has passed
//!    ([`Cause::Timeout`]); row and byte caps are enforced while stepping, `SQLITE_LIMIT_LENGTH`
//!    caps single values and a process-wide hard heap limit turns runaway sorts into
//!    [`Cause::TooLarge`] instead of an out-of-memory abort.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::ffi;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::{Cause, ResultSet, Value};

/// Limits applied to every query run through a [`SafeConnection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// Wall-clock budget of one query; it restarts for every query.
    pub timeout: Duration,
    /// Maximum number of result rows.
    pub max_rows: usize,
    /// Maximum approximate size of a result ([`Value::size_bytes`] summed); also caps single
    /// strings and blobs through `SQLITE_LIMIT_LENGTH` (clamped to `i32::MAX`).
    pub max_result_bytes: usize,
    /// Maximum length of the SQL text in bytes.
    pub max_sql_bytes: usize,
    /// Process-wide hard heap limit for SQLite (`sqlite3_hard_heap_limit64`), set when the first
    /// connection is opened. `0` leaves SQLite's setting untouched.
    pub heap_limit_bytes: i64,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            max_result_bytes: 256 << 20,
            max_sql_bytes: 1 << 20,
            heap_limit_bytes: 2 << 30,
        }
    }
}

/// Why a query (or opening a database) failed, with SQLite's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{cause}: {message}")]
pub struct ExecError {
    pub cause: Cause,
    pub message: String,
}

impl ExecError {
    pub fn new(cause: Cause, message: impl Into<String>) -> Self {
        Self {
            cause,
            message: message.into(),
        }
    }
}

/// SQL functions that predictions may never call, even though SQLite knows them.
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "fts3_tokenizer",
    "readfile",
    "writefile",
    "edit",
];

/// The authorizer: reading only. Anything not listed as allowed is denied.
fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        _ => Authorization::Deny,
    }
}

/// Percent-encodes a filesystem path for an SQLite `file:` URI. Only unreserved characters and
/// `/` pass through, so `?`, `#` and `%` in a directory name cannot inject URI parameters.
fn uri_path(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut out = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

static HEAP_LIMIT: Once = Once::new();

fn sqlite_err(e: rusqlite::Error) -> ExecError {
    ExecError::new(Cause::Runtime, e.to_string())
}

/// A read-only, immutable connection that runs untrusted single `SELECT` statements.
///
/// Open it once per database and worker thread and reuse it; every [`query`](Self::query)
/// gets a fresh timeout. Not `Sync` (one query at a time).
pub struct SafeConnection {
    conn: Connection,
    opts: ExecOptions,
    path: PathBuf,
    base: Instant,
    /// Deadline of the running query, in nanoseconds since `base`.
    deadline: Arc<AtomicU64>,
    timed_out: Arc<AtomicBool>,
}

impl std::fmt::Debug for SafeConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeConnection")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .finish()
    }
}

/// How many virtual-machine instructions run between two deadline checks.
const PROGRESS_OPS: i32 = 1000;

impl SafeConnection {
    /// Opens `path` read-only and immutable. A missing file is [`Cause::MissingDatabase`]; nothing
    /// is ever created.
    pub fn open(path: impl AsRef<Path>, opts: &ExecOptions) -> Result<Self, ExecError> {
        let path = path.as_ref();
        let missing = || {
            ExecError::new(
                Cause::MissingDatabase,
                format!("database file not found: {}", path.display()),
            )
        };
        let canonical = std::fs::canonicalize(path).map_err(|_| missing())?;
        if !canonical.is_file() {
            return Err(missing());
        }
        if opts.heap_limit_bytes > 0 {
            let limit = opts.heap_limit_bytes;
            HEAP_LIMIT.call_once(|| {
                // SAFETY: sqlite3_hard_heap_limit64 is thread-safe and takes a plain integer.
                unsafe {
                    ffi::sqlite3_hard_heap_limit64(limit);
                }
            });
        }
        let uri = format!("file:{}?mode=ro&immutable=1", uri_path(&canonical));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&uri, flags).map_err(|e| {
            ExecError::new(
                Cause::MissingDatabase,
                format!("cannot open {}: {e}", path.display()),
            )
        })?;

        // Defensive configuration: no schema tampering, no untrusted functions in views.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(sqlite_err)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
            .map_err(sqlite_err)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)
            .map_err(sqlite_err)?;
        // SAFETY: valid open handle; disables the C-level extension loader and load_extension().
        unsafe {
            let db = conn.handle();
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
                0 as std::ffi::c_int,
                std::ptr::null_mut::<std::ffi::c_int>(),
            );
        }
        let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX).max(1);
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(sqlite_err)?;
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, clamp(opts.max_result_bytes))
            .map_err(sqlite_err)?;
        conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, clamp(opts.max_sql_bytes))
            .map_err(sqlite_err)?;

        conn.authorizer(Some(authorize)).map_err(sqlite_err)?;

        let base = Instant::now();
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let timed_out = Arc::new(AtomicBool::new(false));
        {
            let deadline = Arc::clone(&deadline);
            let timed_out = Arc::clone(&timed_out);
            conn.progress_handler(
                PROGRESS_OPS,
                Some(move || {
                    let now = base.elapsed().as_nanos() as u64;
                    if now >= deadline.load(Ordering::Relaxed) {
                        timed_out.store(true, Ordering::Relaxed);
                        true
                    } else {
                        false
                    }
                }),
            )
            .map_err(sqlite_err)?;
        }
        Ok(Self {
            conn,
            opts: opts.clone(),
            path: path.to_path_buf(),
            base,
            deadline,
            timed_out,
        })
    }

    /// The path this connection was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options this connection enforces.
    pub fn options(&self) -> &ExecOptions {
        &self.opts
    }

    /// Runs one read-only statement and returns all its rows.
    pub fn query(&self, sql: &str) -> Result<ResultSet, ExecError> {
        if sql.len() > self.opts.max_sql_bytes {
            return Err(ExecError::new(
                Cause::TooLarge,
                format!(
                    "SQL text of {} bytes exceeds the limit of {} bytes",
                    sql.len(),
                    self.opts.max_sql_bytes
                ),
            ));
        }
        if sql.contains('\0') {
            return Err(ExecError::new(
                Cause::Syntax,
                "SQL text contains a NUL byte",
            ));
        }
        let stmt_text = single_statement(sql)?;

        let start = self.base.elapsed();
        let deadline = start.saturating_add(self.opts.timeout).as_nanos();
        self.timed_out.store(false, Ordering::Relaxed);
        self.deadline.store(
            u64::try_from(deadline).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let result = self.run(stmt_text);
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        result
    }

    fn run(&self, sql: &str) -> Result<ResultSet, ExecError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.classify(e))?;
        if !stmt.readonly() {
            return Err(ExecError::new(
                Cause::Denied,
                "statement is not read-only".to_string(),
            ));
        }
        let columns: Vec<String> = stmt.column_names().map(String::from).collect();
        let width = columns.len();
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut raw = stmt.raw_query();
        loop {
            let row = match raw.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.classify(e)),
            };
            if rows.len() >= self.opts.max_rows {
                return Err(ExecError::new(
                    Cause::TooLarge,
                    format!("more than {} rows", self.opts.max_rows),
                ));
            }
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                let v = row.get_ref(i).map_err(|e| self.classify(e))?;
                let v = Value::from(v);
                bytes += v.size_bytes();
                values.push(v);
            }
            if bytes > self.opts.max_result_bytes {
                return Err(ExecError::new(
                    Cause::TooLarge,
                    format!("result larger than {} bytes", self.opts.max_result_bytes),
                ));
            }
            rows.push(values);
        }
        Ok(ResultSet { columns, rows })
    }

    /// Maps an SQLite error to a [`Cause`].
    fn classify(&self, e: rusqlite::Error) -> ExecError {
        let (code, msg) = match &e {
            rusqlite::Error::SqliteFailure(err, msg) => (
                Some(err.code),
                msg.clone().unwrap_or_else(|| err.to_string()),
            ),
            rusqlite::Error::SqlInputError { error, msg, .. } => (Some(error.code), msg.clone()),
            rusqlite::Error::NulError(_) => return ExecError::new(Cause::Syntax, e.to_string()),
            rusqlite::Error::Empty => return ExecError::new(Cause::Empty, "empty query"),
            rusqlite::Error::MultipleStatement => {
                return ExecError::new(Cause::MultipleStatements, e.to_string())
            }
            _ => (None, e.to_string()),
        };
        let cause = match code {
            Some(ErrorCode::OperationInterrupted) => Cause::Timeout,
            _ if self.timed_out.load(Ordering::Relaxed) => Cause::Timeout,
            Some(ErrorCode::AuthorizationForStatementDenied)
            | Some(ErrorCode::ReadOnly)
            | Some(ErrorCode::PermissionDenied) => Cause::Denied,
            Some(ErrorCode::OutOfMemory) | Some(ErrorCode::TooBig) => Cause::TooLarge,
            _ => classify_message(&msg),
        };
        ExecError::new(cause, msg)
    }
}

/// Classifies an `SQLITE_ERROR` by its message.
fn classify_message(msg: &str) -> Cause {
    let m = msg.to_ascii_lowercase();
    if m.contains("syntax error")
        || m.contains("incomplete input")
        || m.contains("unrecognized token")
        || m.contains("unterminated")
    {
        Cause::Syntax
    } else if m.contains("no such table")
        || m.contains("no such column")
        || m.contains("no such function")
        || m.contains("ambiguous column")
        || m.contains("no such collation")
        || m.contains("no such module")
    {
        Cause::Schema
    } else if m.contains("not authorized") || m.contains("prohibited") {
        Cause::Denied
    } else if m.contains("too big") || m.contains("too large") || m.contains("out of memory") {
        Cause::TooLarge
    } else if m.contains("interrupted") {
        Cause::Timeout
    } else {
        Cause::Runtime
    }
}

/// Splits `sql` into statements the way SQLite's tokenizer would (string literals, quoted
/// identifiers and comments are respected) and returns the only non-empty one.
///
/// Empty statements (`;`), whitespace and comments are ignored, so `SELECT 1;  -- done` is one
/// statement. No statement at all is [`Cause::Empty`]; two or more are
/// [`Cause::MultipleStatements`]. Checked before SQLite sees the text, so the second statement is
/// never even prepared.
pub fn single_statement(sql: &str) -> Result<&str, ExecError> {
    let b = sql.as_bytes();
    let mut found: Option<&str> = None;
    let mut start = 0usize;
    let mut nonblank = false;
    let mut i = 0usize;
    let mut finish = |start: usize, end: usize, nonblank: bool| -> Result<(), ExecError> {
        if nonblank {
            if found.is_some() {
                return Err(ExecError::new(
                    Cause::MultipleStatements,
                    "more than one SQL statement",
                ));
            }
            found = Some(&sql[start..end]);
        }
        Ok(())
    };
    while i < b.len() {
        match b[i] {
            b';' => {
                finish(start, i, nonblank)?;
                nonblank = false;
                i += 1;
                start = i;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(b.len());
            }
            q @ (b'\'' | b'"' | b'`' | b'[') => {
                nonblank = true;
                let close = if q == b'[' { b']' } else { q };
                i += 1;
                loop {
                    if i >= b.len() {
                        break;
                    }
                    if b[i] == close {
                        // A doubled quote is an escaped quote (not for `[...]`).
                        if close != b']' && b.get(i + 1) == Some(&close) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
            }
            _ => {
                nonblank = true;
                i += 1;
            }
        }
    }
    finish(start, b.len(), nonblank)?;
    found.ok_or_else(|| ExecError::new(Cause::Empty, "empty query"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_respecting_quotes_and_comments() {
        assert_eq!(single_statement("SELECT 1;").unwrap(), "SELECT 1");
        assert_eq!(
            single_statement("SELECT ';' -- x; y\n ; /* ; */ ;").unwrap(),
            "SELECT ';' -- x; y\n "
        );
        assert_eq!(
            single_statement("SELECT \"a;b\" FROM [c;d]").unwrap(),
            "SELECT \"a;b\" FROM [c;d]"
        );
        assert_eq!(
            single_statement("SELECT 1; DELETE FROM t")
                .unwrap_err()
                .cause,
            Cause::MultipleStatements
        );
        assert_eq!(single_statement("  ").unwrap_err().cause, Cause::Empty);
        assert_eq!(
            single_statement("-- c\n/* d */ ;").unwrap_err().cause,
            Cause::Empty
        );
        assert_eq!(
            single_statement("SELECT 'it''s; ok'").unwrap(),
            "SELECT 'it''s; ok'"
        );
    }

    #[test]
    fn uri_escapes_special_characters() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%f")), "/a%20b/c%3Fd%23e%25f");
    }
}
