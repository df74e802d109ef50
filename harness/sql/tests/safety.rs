//! Hostile predictions must never change a database, crash the process or run past the timeout.
//!
//! Every case runs on a fresh database file in its own temporary directory; the test checks the
//! SHA-256 of the file before and after, that no `-wal`/`-journal`/`-shm` file (or anything else)
//! appeared beside it, the reported cause, and that the query returned within the timeout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kidbench_sql::exec::{ExecOptions, SafeConnection};
use kidbench_sql::{Cause, Value};
use sha2::{Digest, Sha256};

const TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for returning from the interrupt and dropping partial state in a debug build.
const SLACK: Duration = Duration::from_secs(1);

fn opts() -> ExecOptions {
    ExecOptions {
        timeout: TIMEOUT,
        max_rows: 10_000,
        max_result_bytes: 16 << 20,
        max_sql_bytes: 1 << 20,
        ..ExecOptions::default()
    }
}

/// A small database shaped like a Spider one: two related tables, an index, a view, and a row
/// whose text is invalid UTF-8.
fn fresh_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("concert_singer.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("create db");
    conn.execute_batch(
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INT);
         CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, singer_id INT REFERENCES singer(singer_id), year TEXT);
         CREATE INDEX concert_year ON concert(year);
         CREATE VIEW old_singers AS SELECT name FROM singer WHERE age > 40;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO singer SELECT i, 'singer ' || i, CASE i % 3 WHEN 0 THEN 'France' ELSE 'Japan' END, 20 + i % 50 FROM n;
         INSERT INTO concert SELECT singer_id, singer_id, 2000 + singer_id % 20 FROM singer;
         CREATE TABLE weird (t TEXT);
         INSERT INTO weird VALUES (CAST(x'ff41c3' AS TEXT));",
    )
    .expect("populate db");
    drop(conn);
    (dir, path)
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read db")))
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `sql` on a fresh database and returns its outcome after checking the invariants.
fn run_hostile(sql: &str, opts: &ExecOptions) -> Result<kidbench_sql::ResultSet, Cause> {
    let (dir, path) = fresh_db();
    let before = sha256(&path);
    let listing = dir_listing(dir.path());
    let conn = SafeConnection::open(&path, opts).expect("open");
    let start = Instant::now();
    let out = conn.query(sql);
    let elapsed = start.elapsed();
    // The connection must still be usable afterwards.
    let again = conn
        .query("SELECT count(*) FROM singer")
        .expect("connection still usable");
    assert_eq!(again.rows, vec![vec![Value::Integer(1000)]]);
    drop(conn);
    assert!(
        elapsed < opts.timeout + SLACK,
        "{sql:.80}: took {elapsed:?}, timeout {:?}",
        opts.timeout
    );
    assert_eq!(sha256(&path), before, "{sql:.80}: database file changed");
    assert_eq!(
        dir_listing(dir.path()),
        listing,
        "{sql:.80}: files appeared beside the database"
    );
    out.map_err(|e| e.cause)
}

fn expect_cause(sql: &str, cause: Cause) {
    match run_hostile(sql, &opts()) {
        Ok(rs) => panic!("{sql:.80}: expected {cause}, got {} rows", rs.rows.len()),
        Err(c) => assert_eq!(c, cause, "{sql:.80}"),
    }
}

#[test]
fn writes_are_denied() {
    expect_cause("DROP TABLE singer", Cause::Denied);
    expect_cause("DELETE FROM singer", Cause::Denied);
    expect_cause("UPDATE singer SET age = 0", Cause::Denied);
    expect_cause("INSERT INTO singer(name) VALUES ('x')", Cause::Denied);
    expect_cause("CREATE TABLE t(x)", Cause::Denied);
    expect_cause("CREATE TEMP TABLE t(x)", Cause::Denied);
    expect_cause("CREATE INDEX i ON singer(age)", Cause::Denied);
    expect_cause("DROP VIEW old_singers", Cause::Denied);
    expect_cause("ALTER TABLE singer RENAME TO s", Cause::Denied);
    expect_cause(
        "REPLACE INTO singer(singer_id, name) VALUES (1, 'x')",
        Cause::Denied,
    );
}

#[test]
fn attach_pragma_transactions_maintenance_are_denied() {
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("x");
    let t = target.display();
    expect_cause(&format!("ATTACH DATABASE '{t}' AS y"), Cause::Denied);
    expect_cause(&format!("VACUUM INTO '{t}'"), Cause::Denied);
    assert!(!target.exists(), "ATTACH/VACUUM INTO created a file");
    expect_cause("DETACH DATABASE main", Cause::Denied);
    expect_cause("PRAGMA writable_schema=1", Cause::Denied);
    expect_cause("PRAGMA journal_mode=WAL", Cause::Denied);
    expect_cause("PRAGMA journal_mode", Cause::Denied);
    expect_cause("PRAGMA table_info(singer)", Cause::Denied);
    expect_cause("BEGIN", Cause::Denied);
    expect_cause("COMMIT", Cause::Denied);
    expect_cause("SAVEPOINT a", Cause::Denied);
    expect_cause("VACUUM", Cause::Denied);
    expect_cause("ANALYZE", Cause::Denied);
    expect_cause("REINDEX", Cause::Denied);
}

#[test]
fn extension_loading_is_denied() {
    expect_cause("SELECT load_extension('x')", Cause::Denied);
    expect_cause("SELECT LOAD_EXTENSION('/tmp/x', 'init')", Cause::Denied);
}

#[test]
fn endless_recursion_times_out() {
    expect_cause(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
        Cause::Timeout,
    );
}

#[test]
fn five_way_cross_join_times_out() {
    expect_cause(
        "SELECT count(*) FROM singer a, singer b, singer c, singer d, singer e",
        Cause::Timeout,
    );
}

#[test]
fn too_many_rows_is_too_large() {
    expect_cause("SELECT * FROM singer a, singer b", Cause::TooLarge);
}

#[test]
fn too_many_bytes_is_too_large() {
    let o = ExecOptions {
        max_result_bytes: 1 << 20,
        ..opts()
    };
    // 1,000 rows of 4 KiB each: under the row cap, over the byte cap.
    let r = run_hostile("SELECT zeroblob(4096) FROM singer", &o);
    assert_eq!(r.err(), Some(Cause::TooLarge));
}

#[test]
fn giant_blobs_are_too_large() {
    expect_cause("SELECT randomblob(2000000000)", Cause::TooLarge);
    expect_cause("SELECT zeroblob(2000000000)", Cause::TooLarge);
    expect_cause("SELECT length(zeroblob(2000000000))", Cause::TooLarge);
    expect_cause("SELECT printf('%.*c', 2000000000, 'x')", Cause::TooLarge);
}

#[test]
fn second_statement_is_rejected_before_it_runs() {
    expect_cause("SELECT 1; DELETE FROM singer", Cause::MultipleStatements);
    expect_cause("SELECT 1; SELECT 2", Cause::MultipleStatements);
    // Trailing semicolons, whitespace and comments are one statement.
    let ok = run_hostile("SELECT 1 ; ;  -- bye\n /* x */", &opts()).expect("single statement");
    assert_eq!(ok.rows, vec![vec![Value::Integer(1)]]);
}

#[test]
fn large_query_text() {
    let list = vec!["'singer 7'"; 10_000].join(", ");
    let sql = format!("SELECT count(*) FROM singer WHERE name IN ({list})");
    assert!(sql.len() > 100_000);
    let rs = run_hostile(&sql, &opts()).expect("100 KB query runs");
    assert_eq!(rs.rows, vec![vec![Value::Integer(1)]]);
    let small = ExecOptions {
        max_sql_bytes: 64 << 10,
        ..opts()
    };
    assert_eq!(run_hostile(&sql, &small).err(), Some(Cause::TooLarge));
}

#[test]
fn nul_bytes_are_syntax_errors() {
    expect_cause("SELECT 1\0; DROP TABLE singer", Cause::Syntax);
    expect_cause("\0", Cause::Syntax);
}

#[test]
fn empty_inputs() {
    expect_cause("", Cause::Empty);
    expect_cause("   \n\t ", Cause::Empty);
    expect_cause("-- just a comment", Cause::Empty);
    expect_cause("/* block */ ;", Cause::Empty);
}

#[test]
fn errors_are_classified() {
    expect_cause("SELEC name FROM singer", Cause::Syntax);
    expect_cause("SELECT name FROM singer WHERE", Cause::Syntax);
    expect_cause("SELECT 'unterminated", Cause::Syntax);
    expect_cause("SELECT nme FROM singer", Cause::Schema);
    expect_cause("SELECT name FROM singers", Cause::Schema);
    expect_cause("SELECT no_such_fn(name) FROM singer", Cause::Schema);
    expect_cause(
        "SELECT singer_id FROM singer JOIN concert ON singer.singer_id = concert.singer_id",
        Cause::Schema,
    );
    expect_cause("SELECT abs(-9223372036854775808)", Cause::Runtime);
}

#[test]
fn invalid_utf8_text_is_decoded_leniently() {
    let rs = run_hostile("SELECT t FROM weird", &opts()).expect("decoded");
    match &rs.rows[0][0] {
        Value::Text(s) => assert!(s.contains('A'), "{s:?}"),
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn views_and_recursive_ctes_are_allowed() {
    let rs = run_hostile("SELECT count(*) FROM old_singers", &opts()).expect("view");
    assert_eq!(rs.columns, vec!["count(*)".to_string()]);
    let rs = run_hostile(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 10) SELECT sum(x) FROM c",
        &opts(),
    )
    .expect("bounded recursion");
    assert_eq!(rs.rows, vec![vec![Value::Integer(55)]]);
}

#[test]
fn missing_database_is_reported_and_never_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope").join("nope.sqlite");
    let err = SafeConnection::open(&path, &opts()).expect_err("missing");
    assert_eq!(err.cause, Cause::MissingDatabase);
    assert!(err.message.contains("nope.sqlite"), "{}", err.message);
    let flat = dir.path().join("flat.sqlite");
    assert_eq!(
        SafeConnection::open(&flat, &opts())
            .expect_err("missing")
            .cause,
        Cause::MissingDatabase
    );
    assert!(!flat.exists() && !path.exists());
    assert!(dir_listing(dir.path()).is_empty());
}

#[test]
fn paths_with_uri_characters_open_the_right_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let weird = dir.path().join("a?mode=rwc#%20b");
    std::fs::create_dir(&weird).expect("mkdir");
    let (_src_dir, src) = fresh_db();
    let path = weird.join("db.sqlite");
    std::fs::copy(&src, &path).expect("copy");
    let before = sha256(&path);
    let conn = SafeConnection::open(&path, &opts()).expect("open");
    let rs = conn.query("SELECT count(*) FROM concert").expect("query");
    assert_eq!(rs.rows, vec![vec![Value::Integer(1000)]]);
    assert_eq!(
        conn.query("DELETE FROM concert").unwrap_err().cause,
        Cause::Denied
    );
    drop(conn);
    assert_eq!(sha256(&path), before);
    assert_eq!(dir_listing(&weird), vec!["db.sqlite".to_string()]);
}

#[test]
fn timeout_restarts_for_each_query_on_a_reused_connection() {
    let (_dir, path) = fresh_db();
    let o = ExecOptions {
        timeout: Duration::from_millis(300),
        ..opts()
    };
    let conn = SafeConnection::open(&path, &o).expect("open");
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c";
    for _ in 0..3 {
        assert_eq!(conn.query(endless).unwrap_err().cause, Cause::Timeout);
        assert!(conn.query("SELECT count(*) FROM singer").is_ok());
    }
}
