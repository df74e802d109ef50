//! Distillation: from gold queries and random databases to a small test suite per schema.
//!
//! For every schema: the gold queries are run on the original database, their neighbours are
//! generated ([`crate::neighbours`]) and classified (equal to the gold by the comparison rules'
//! construction, failing on the original, already told apart by the original, or still to be
//! distinguished). Candidate databases ([`crate::fuzz`]) are then generated in rounds; each is
//! scored by the (gold, neighbour) pairs it tells apart that no kept database does yet, and the
//! best ones are kept greedily. Building stops when the per-schema cap is reached, every pair is
//! distinguished, `patience` rounds add nothing, or the candidate budget is spent.
//!
//! Output: `<out>/<db_id>/NN.sqlite` plus `<out>/<db_id>/schema.json` (this schema's counts), and
//! `<out>/manifest.json` for the whole suite. A schema is built in `<out>/.tmp-<db_id>` and
//! renamed into place when complete, so an interrupted build is resumed schema by schema.
//!
//! Every kept database's size and SHA-256 are recorded ([`SchemaManifest::files`]); a finished
//! schema is reused only when its files still match them ([`verify_suite`] checks a whole suite
//! before use). A build holds the lock `.<name>.build.lock` beside `<out>`, so two builds into one
//! folder run one after the other: the second finds the suite complete and reuses it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kidbench_sql::eval::EvalOptions;
use kidbench_sql::exec::{ExecOptions, SafeConnection};
use kidbench_sql::Cause;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::check::{prepare_gold, prepare_pred, run_with_gold, Outcome};
use crate::error::TestsuiteError;
use crate::fuzz::{generate, DatabaseSpec};
use crate::neighbours::{gold_literals, neighbours, rule_key, stable_hash, NeighbourKind};

/// Version of the suite format and build algorithm; a suite built by another version is rebuilt.
pub const FORMAT_VERSION: u32 = 1;

/// Build settings. [`BuildConfig::default`] is what `kidbench testsuite build` uses.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// At most this many fuzzed databases per schema.
    pub per_schema: usize,
    /// Seed of every random choice (neighbour sampling and database fuzzing).
    pub seed: u64,
    /// Candidate databases generated per greedy round.
    pub candidates_per_round: usize,
    /// Candidate databases generated per schema at most.
    pub max_candidates: usize,
    /// Stop after this many consecutive rounds that distinguish no new pair.
    pub patience: usize,
    /// Neighbours per gold query at most (sampled deterministically beyond).
    pub max_neighbours: usize,
    /// Comparison rules and execution limits while building: the same [`EvalOptions`] EX and TS
    /// are evaluated with (a shorter per-query timeout by default: fuzzed databases are tiny).
    pub eval: EvalOptions,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            per_schema: 10,
            seed: 0,
            candidates_per_round: 32,
            max_candidates: 1200,
            patience: 3,
            max_neighbours: 60,
            eval: EvalOptions {
                exec: ExecOptions {
                    timeout: Duration::from_secs(2),
                    ..ExecOptions::default()
                },
                ..EvalOptions::default()
            },
            progress: false,
        }
    }
}

impl BuildConfig {
    /// The settings that change a schema's output; a finished schema built with other settings
    /// is rebuilt rather than resumed.
    fn fingerprint(&self) -> String {
        format!(
            "v{FORMAT_VERSION} seed={} per_schema={} round={} max_candidates={} patience={} max_neighbours={} keep_distinct={} compare={}",
            self.seed,
            self.per_schema,
            self.candidates_per_round,
            self.max_candidates,
            self.patience,
            self.max_neighbours,
            self.eval.keep_distinct,
            self.eval.mode.as_str()
        )
    }
}

/// The gold queries of one schema and its original database (`None` when the benchmark has no
/// file for it; the schema is then reported as missing).
#[derive(Debug, Clone)]
pub struct SchemaGolds {
    pub db_id: String,
    pub database: Option<PathBuf>,
    pub golds: Vec<String>,
}

/// A neighbour no kept database tells apart from its gold query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOver {
    pub gold: String,
    pub neighbour: String,
    pub kind: NeighbourKind,
}

/// Counts for one kind of neighbour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub generated: usize,
    pub equivalent_by_rule: usize,
    pub failed_original: usize,
    pub distinguished: usize,
    pub left_over: usize,
}

/// Size and SHA-256 of one file, recorded when it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

impl FileSum {
    /// Reads and hashes `path`.
    pub fn of(path: &Path) -> Result<Self, TestsuiteError> {
        let bytes = std::fs::read(path).map_err(|e| TestsuiteError::io(path, e))?;
        Ok(FileSum {
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        })
    }
}

/// SHA-256 over a schema's distinct gold queries, in order (what a suite was distilled for).
fn golds_digest(golds: &[&str]) -> String {
    let mut h = Sha256::new();
    for g in golds {
        h.update((g.len() as u64).to_le_bytes());
        h.update(g.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The distinct gold queries of a schema, in first-seen order.
fn distinct_golds(s: &SchemaGolds) -> Vec<&str> {
    let mut golds: Vec<&str> = Vec::new();
    for g in &s.golds {
        if !golds.contains(&g.as_str()) {
            golds.push(g);
        }
    }
    golds
}

/// One schema's part of the manifest (also stored as `<db_id>/schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaManifest {
    pub db_id: String,
    /// [`BuildConfig`] fingerprint this schema was built with.
    pub config: String,
    /// SHA-256 of the distinct gold queries the schema was built for (empty in suites built
    /// before it was recorded): a schema whose questions changed is rebuilt.
    #[serde(default)]
    pub golds_sha256: String,
    /// Size and SHA-256 of each kept database (file name inside `<db_id>/`). Empty in suites
    /// built before checksums were recorded: such a schema is rebuilt by the next build, and
    /// [`verify_suite`] can only check that its files exist.
    #[serde(default)]
    pub files: BTreeMap<String, FileSum>,
    /// The kept databases, file names inside `<db_id>/`, in greedy order.
    pub databases: Vec<String>,
    /// Distinct gold queries of the schema.
    pub golds: usize,
    /// Gold queries that fail on the original database (no neighbours made).
    pub golds_failed_original: usize,
    pub neighbours_generated: usize,
    /// Equal to their gold by construction of the comparison rules (e.g. a DISTINCT toggle
    /// while DISTINCT is removed): excluded from the denominator.
    pub equivalent_by_rule: usize,
    /// Failing on the original database: skipped.
    pub neighbours_failed_original: usize,
    /// Told apart by the original database itself.
    pub distinguished_by_original: usize,
    /// Told apart by a kept fuzzed database (and not by the original).
    pub distinguished_by_suite: usize,
    /// Per kind of edit.
    pub by_kind: BTreeMap<String, KindCounts>,
    /// Candidate databases generated.
    pub candidates_tried: usize,
    /// Foreign keys of the original schema that name a missing table or column (not enforced).
    pub skipped_foreign_keys: Vec<String>,
    /// Wall-clock seconds (not part of determinism).
    pub build_seconds: f64,
    /// The neighbours left undistinguished, with their SQL.
    pub left_over: Vec<LeftOver>,
}

impl SchemaManifest {
    /// Neighbours that count: generated minus equivalent-by-rule minus failing on the original.
    pub fn testable(&self) -> usize {
        self.neighbours_generated
            .saturating_sub(self.equivalent_by_rule)
            .saturating_sub(self.neighbours_failed_original)
    }

    /// Whether every kept database has a recorded size and SHA-256.
    pub fn has_checksums(&self) -> bool {
        self.databases.iter().all(|d| self.files.contains_key(d))
    }

    /// Checks the kept databases in `dir` (this schema's folder): each must exist and, where
    /// recorded, have its size and SHA-256. Sizes are checked for all files before any is hashed.
    pub fn verify_files(&self, dir: &Path) -> Result<(), TestsuiteError> {
        let corrupt = |path: PathBuf, message: String| TestsuiteError::Corrupt { path, message };
        for d in &self.databases {
            let path = dir.join(d);
            let meta = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                Ok(_) | Err(_) => {
                    return Err(corrupt(path, "listed in the manifest but missing".into()))
                }
            };
            if let Some(sum) = self.files.get(d) {
                if meta.len() != sum.size {
                    return Err(corrupt(
                        path,
                        format!(
                            "{} bytes where the manifest records {} (truncated or changed since it was built)",
                            meta.len(),
                            sum.size
                        ),
                    ));
                }
            }
        }
        for d in &self.databases {
            if let Some(sum) = self.files.get(d) {
                let path = dir.join(d);
                let got = FileSum::of(&path)?;
                if got.sha256 != sum.sha256 {
                    return Err(corrupt(
                        path,
                        format!(
                            "SHA-256 {} where the manifest records {} (changed since it was built)",
                            got.sha256, sum.sha256
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Totals over all schemas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub schemas: usize,
    pub databases: usize,
    pub golds: usize,
    pub neighbours_generated: usize,
    pub equivalent_by_rule: usize,
    pub neighbours_failed_original: usize,
    pub testable: usize,
    pub distinguished_by_original: usize,
    pub distinguished_by_suite: usize,
    pub left_over: usize,
    /// (by original + by suite) / testable, in percent.
    pub distinguished_pct: f64,
    /// By suite databases alone / (testable - by original), in percent.
    pub distinguished_by_suite_pct: f64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub kidbench_testsuite_version: String,
    pub benchmark: String,
    pub seed: u64,
    pub per_schema: usize,
    pub config: String,
    pub totals: Totals,
    /// Schemas without an original database file, with the reason.
    pub missing: BTreeMap<String, String>,
    pub schemas: BTreeMap<String, SchemaManifest>,
    /// Wall-clock seconds of this invocation (resumed schemas cost nothing).
    pub build_seconds: f64,
}

impl Manifest {
    /// Reads `<dir>/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self, TestsuiteError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TestsuiteError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|source| TestsuiteError::Json { path, source })
    }

    /// Whether every schema records the size and SHA-256 of each of its databases (suites built
    /// before checksums were recorded do not; `kidbench testsuite build` rebuilds them).
    pub fn has_checksums(&self) -> bool {
        self.schemas.values().all(SchemaManifest::has_checksums)
    }
}

/// Checks the suite in `dir` before use and returns its manifest: `manifest.json` is read, and
/// every database it lists must exist with the size and SHA-256 recorded when it was built
/// (sizes first, then hashes, schemas in parallel). An error names the first file that does not
/// match ([`TestsuiteError::Corrupt`]). A schema built before checksums were recorded is
/// checked for presence only ([`Manifest::has_checksums`] tells).
pub fn verify_suite(dir: &Path) -> Result<Manifest, TestsuiteError> {
    let manifest = Manifest::read(dir)?;
    let checked: Vec<Result<(), TestsuiteError>> = manifest
        .schemas
        .par_iter()
        .map(|(db_id, s)| s.verify_files(&dir.join(db_id)))
        .collect();
    checked.into_iter().collect::<Result<(), _>>()?;
    Ok(manifest)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TestsuiteError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TestsuiteError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").map_err(|e| TestsuiteError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TestsuiteError::io(path, e))
}

fn remove_dir_if_exists(path: &Path) -> Result<(), TestsuiteError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(TestsuiteError::io(path, e)),
    }
}

/// What a schema folder holds, for the settings and golds of a build.
enum Finished {
    /// Built with these settings for these golds, every file verified.
    Reusable(Box<SchemaManifest>),
    /// No finished folder, or one built with other settings or for other golds: (re)built
    /// without a word, as asked.
    Absent,
    /// A finished folder that cannot be trusted (the reason, naming the file): rebuilt with a
    /// message.
    Untrusted(String),
}

/// Whether the schema folder `dir` is a finished build of `s` with `cfg`.
fn finished_schema(dir: &Path, s: &SchemaGolds, cfg: &BuildConfig) -> Finished {
    let path = dir.join("schema.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Finished::Absent;
    };
    let m: SchemaManifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => return Finished::Untrusted(format!("{}: unreadable: {e}", path.display())),
    };
    if m.config != cfg.fingerprint() {
        return Finished::Absent;
    }
    if !m.has_checksums() {
        return Finished::Untrusted(format!(
            "{}: built without checksums (by an older kidbench)",
            dir.display()
        ));
    }
    if m.golds_sha256 != golds_digest(&distinct_golds(s)) {
        return Finished::Absent;
    }
    match m.verify_files(dir) {
        Ok(()) => Finished::Reusable(Box::new(m)),
        Err(e) => Finished::Untrusted(e.to_string()),
    }
}

/// The lock file of builds into `out`: `.<name>.build.lock` beside it.
fn lock_path(out: &Path) -> PathBuf {
    match (out.parent(), out.file_name()) {
        (Some(parent), Some(name)) => {
            parent.join(format!(".{}.build.lock", name.to_string_lossy()))
        }
        _ => out.join(".build.lock"),
    }
}

/// What [`ensure_suite`] did.
#[derive(Debug, Clone)]
pub struct SuiteBuild {
    pub manifest: Manifest,
    /// The suite in `out` was complete for these schemas and settings and every file verified:
    /// nothing was built and `manifest.json` was left as it was.
    pub up_to_date: bool,
    /// Schemas (re)built in this call.
    pub built: Vec<String>,
    /// Finished schemas that were rebuilt because they could not be trusted: (db_id, why,
    /// naming the file).
    pub rebuilt: Vec<(String, String)>,
}

/// Builds (or resumes) a test suite for `schemas` into `out`; see [`ensure_suite`].
pub fn build_suite(
    benchmark: &str,
    schemas: &[SchemaGolds],
    out: &Path,
    cfg: &BuildConfig,
) -> Result<Manifest, TestsuiteError> {
    ensure_suite(benchmark, schemas, out, cfg).map(|b| b.manifest)
}

/// Builds what the suite in `out` lacks for `schemas`: a finished schema built with the same
/// settings for the same golds is reused when its files verify; one whose files do not match
/// is rebuilt, with a line on stderr naming the file. When the whole suite is complete and
/// verifies, nothing is written. Schemas run in parallel on rayon's pool, biggest first.
///
/// Holds the lock `.<name>.build.lock` beside `out` throughout: concurrent builds into one
/// folder (threads or processes) run one after the other, and the later ones reuse.
pub fn ensure_suite(
    benchmark: &str,
    schemas: &[SchemaGolds],
    out: &Path,
    cfg: &BuildConfig,
) -> Result<SuiteBuild, TestsuiteError> {
    let lock = lock_path(out);
    let _lock =
        kidbench_results::LockFile::acquire(&lock).map_err(|e| TestsuiteError::io(&lock, e))?;
    build_locked(benchmark, schemas, out, cfg)
}

/// The schemas that can be built (their original database exists) and why the others cannot.
fn plan(schemas: &[SchemaGolds]) -> (Vec<(&SchemaGolds, &Path)>, BTreeMap<String, String>) {
    let mut missing = BTreeMap::new();
    let mut todo: Vec<(&SchemaGolds, &Path)> = Vec::new();
    for s in schemas {
        match &s.database {
            Some(p) if p.is_file() => todo.push((s, p.as_path())),
            Some(p) => {
                missing.insert(
                    s.db_id.clone(),
                    format!("no database file at {}", p.display()),
                );
            }
            None => {
                missing.insert(s.db_id.clone(), "no database file".to_string());
            }
        }
    }
    (todo, missing)
}

/// The manifest in `out` when it describes exactly this build and every file verifies.
fn complete_suite(
    out: &Path,
    benchmark: &str,
    todo: &[(&SchemaGolds, &Path)],
    missing: &BTreeMap<String, String>,
    cfg: &BuildConfig,
) -> Option<Manifest> {
    let m = Manifest::read(out).ok()?;
    let same = m.format_version == FORMAT_VERSION
        && m.benchmark == benchmark
        && m.config == cfg.fingerprint()
        && m.missing == *missing
        && m.schemas.len() == todo.len()
        && todo.iter().all(|(s, _)| {
            m.schemas.get(&s.db_id).is_some_and(|sm| {
                sm.config == m.config
                    && sm.has_checksums()
                    && sm.golds_sha256 == golds_digest(&distinct_golds(s))
            })
        });
    if !same {
        return None;
    }
    let verified: Vec<bool> = m
        .schemas
        .par_iter()
        .map(|(db_id, sm)| sm.verify_files(&out.join(db_id)).is_ok())
        .collect();
    verified.into_iter().all(|ok| ok).then_some(m)
}

/// [`ensure_suite`] with the lock held.
fn build_locked(
    benchmark: &str,
    schemas: &[SchemaGolds],
    out: &Path,
    cfg: &BuildConfig,
) -> Result<SuiteBuild, TestsuiteError> {
    let start = Instant::now();
    let (mut todo, missing) = plan(schemas);
    if let Some(manifest) = complete_suite(out, benchmark, &todo, &missing, cfg) {
        return Ok(SuiteBuild {
            manifest,
            up_to_date: true,
            built: Vec::new(),
            rebuilt: Vec::new(),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| TestsuiteError::io(out, e))?;
    // Half-written schemas from an interrupted run (nobody else builds here: we hold the lock).
    let entries = std::fs::read_dir(out).map_err(|e| TestsuiteError::io(out, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TestsuiteError::io(out, e))?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            remove_dir_if_exists(&entry.path())?;
        }
    }

    todo.sort_by(|a, b| {
        b.0.golds
            .len()
            .cmp(&a.0.golds.len())
            .then(a.0.db_id.cmp(&b.0.db_id))
    });

    let bar = if cfg.progress {
        let b = ProgressBar::new(todo.len() as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
        {
            b.set_style(style);
        }
        b.set_prefix("testsuite");
        b
    } else {
        ProgressBar::hidden()
    };
    let built: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let rebuilt: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let results: Vec<Result<SchemaManifest, TestsuiteError>> = todo
        .par_iter()
        .map(|(s, db)| {
            let dir = out.join(&s.db_id);
            let r = match finished_schema(&dir, s, cfg) {
                Finished::Reusable(m) => Ok(*m),
                other => {
                    if let Finished::Untrusted(why) = other {
                        bar.suspend(|| {
                            eprintln!(
                                "kidbench: test suite schema {}: {why}; rebuilding it",
                                s.db_id
                            )
                        });
                        if let Ok(mut r) = rebuilt.lock() {
                            r.push((s.db_id.clone(), why));
                        }
                    }
                    if let Ok(mut b) = built.lock() {
                        b.push(s.db_id.clone());
                    }
                    build_schema(s, db, out, cfg)
                }
            };
            bar.set_message(s.db_id.clone());
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();

    let mut manifests = BTreeMap::new();
    for r in results {
        let m = r?;
        manifests.insert(m.db_id.clone(), m);
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kidbench_testsuite_version: env!("CARGO_PKG_VERSION").to_string(),
        benchmark: benchmark.to_string(),
        seed: cfg.seed,
        per_schema: cfg.per_schema,
        config: cfg.fingerprint(),
        totals: totals(&manifests),
        missing,
        schemas: manifests,
        build_seconds: start.elapsed().as_secs_f64(),
    };
    write_json(&out.join("manifest.json"), &manifest)?;
    let mut built = built.into_inner().unwrap_or_default();
    built.sort();
    let mut rebuilt = rebuilt.into_inner().unwrap_or_default();
    rebuilt.sort();
    Ok(SuiteBuild {
        manifest,
        up_to_date: false,
        built,
        rebuilt,
    })
}

fn totals(m: &BTreeMap<String, SchemaManifest>) -> Totals {
    let mut t = Totals {
        schemas: m.len(),
        ..Totals::default()
    };
    for s in m.values() {
        t.databases += s.databases.len();
        t.golds += s.golds;
        t.neighbours_generated += s.neighbours_generated;
        t.equivalent_by_rule += s.equivalent_by_rule;
        t.neighbours_failed_original += s.neighbours_failed_original;
        t.testable += s.testable();
        t.distinguished_by_original += s.distinguished_by_original;
        t.distinguished_by_suite += s.distinguished_by_suite;
        t.left_over += s.left_over.len();
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            100.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    t.distinguished_pct = pct(
        t.distinguished_by_original + t.distinguished_by_suite,
        t.testable,
    );
    t.distinguished_by_suite_pct = pct(
        t.distinguished_by_suite,
        t.testable.saturating_sub(t.distinguished_by_original),
    );
    t
}

/// A (gold, neighbour) pair still to be told apart.
struct Pair {
    gold: usize,
    sql: String,
    normalized: String,
    kind: NeighbourKind,
}

/// Whether a neighbour failing on a database tells it apart from a gold that ran. Timeouts and
/// size caps depend on limits rather than on the query's meaning, so they do not count.
fn error_distinguishes(cause: Cause) -> bool {
    !matches!(cause, Cause::Timeout | Cause::TooLarge)
}

/// The number in `candidate-<n>.sqlite`.
fn candidate_number(path: &Path) -> usize {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("candidate-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Builds one schema into `<out>/.tmp-<db_id>` and renames it to `<out>/<db_id>`.
fn build_schema(
    s: &SchemaGolds,
    db: &Path,
    out: &Path,
    cfg: &BuildConfig,
) -> Result<SchemaManifest, TestsuiteError> {
    let start = Instant::now();
    let db_id = s.db_id.as_str();
    let tmp = out.join(format!(".tmp-{db_id}"));
    remove_dir_if_exists(&tmp)?;
    std::fs::create_dir_all(&tmp).map_err(|e| TestsuiteError::io(&tmp, e))?;

    let mut spec = DatabaseSpec::read(db_id, db)?;
    let info = spec.schema_info();
    let golds = distinct_golds(s);
    let literals: Vec<_> = golds.iter().flat_map(|g| gold_literals(g, &info)).collect();
    spec.add_literals(&literals);

    let opts = &cfg.eval;
    let original = SafeConnection::open(db, &opts.exec).map_err(|e| TestsuiteError::Invalid {
        db_id: db_id.to_string(),
        message: format!("cannot open {}: {e}", db.display()),
    })?;
    let schema_seed = cfg.seed ^ stable_hash(&[b"neighbours", db_id.as_bytes()]);
    let mut m = SchemaManifest {
        db_id: db_id.to_string(),
        config: cfg.fingerprint(),
        golds_sha256: golds_digest(&golds),
        files: BTreeMap::new(),
        databases: Vec::new(),
        golds: golds.len(),
        golds_failed_original: 0,
        neighbours_generated: 0,
        equivalent_by_rule: 0,
        neighbours_failed_original: 0,
        distinguished_by_original: 0,
        distinguished_by_suite: 0,
        by_kind: BTreeMap::new(),
        candidates_tried: 0,
        skipped_foreign_keys: spec.skipped_foreign_keys.clone(),
        build_seconds: 0.0,
        left_over: Vec::new(),
    };
    let prepared: Vec<_> = golds.iter().map(|g| prepare_gold(g, opts)).collect();
    let mut pairs: Vec<Pair> = Vec::new();
    for (gi, gold) in golds.iter().enumerate() {
        let Ok(gold_rs) = original.query(&prepared[gi].sql) else {
            m.golds_failed_original += 1;
            continue;
        };
        let key = rule_key(gold, opts);
        for n in neighbours(gold, &info, schema_seed, cfg.max_neighbours) {
            m.neighbours_generated += 1;
            let k = m.by_kind.entry(n.kind.as_str().to_string()).or_default();
            k.generated += 1;
            if rule_key(&n.sql, opts) == key {
                m.equivalent_by_rule += 1;
                k.equivalent_by_rule += 1;
                continue;
            }
            let normalized = prepare_pred(&n.sql, opts);
            match run_with_gold(&original, &prepared[gi], &gold_rs, &normalized, opts) {
                Outcome::Match => pairs.push(Pair {
                    gold: gi,
                    sql: n.sql,
                    normalized,
                    kind: n.kind,
                }),
                Outcome::Mismatch => {
                    m.distinguished_by_original += 1;
                    k.distinguished += 1;
                }
                Outcome::PredError(_) | Outcome::GoldError(_) => {
                    m.neighbours_failed_original += 1;
                    k.failed_original += 1;
                }
            }
        }
    }

    let mut alive = vec![true; pairs.len()];
    let mut alive_count = pairs.len();
    let mut by_gold: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, p) in pairs.iter().enumerate() {
        by_gold.entry(p.gold).or_default().push(i);
    }
    let mut gold_order: Vec<usize> = by_gold.keys().copied().collect();
    gold_order.sort_unstable();

    let mut empty_rounds = 0;
    // Candidates generated and scored but not kept yet: (file, pairs it told apart).
    let mut pool: Vec<(PathBuf, Vec<usize>)> = Vec::new();
    while m.databases.len() < cfg.per_schema
        && alive_count > 0
        && m.candidates_tried < cfg.max_candidates
        && empty_rounds < cfg.patience
    {
        // Generate and score one round of candidates.
        let mut batch: Vec<(PathBuf, Vec<usize>)> = Vec::new();
        for _ in 0..cfg.candidates_per_round.max(1) {
            if m.candidates_tried >= cfg.max_candidates {
                break;
            }
            let n = m.candidates_tried;
            m.candidates_tried += 1;
            let seed = stable_hash(&[
                b"candidate",
                &cfg.seed.to_le_bytes(),
                db_id.as_bytes(),
                &(n as u64).to_le_bytes(),
            ]);
            let path = tmp.join(format!("candidate-{n}.sqlite"));
            generate(&spec, seed, &path)?;
            let Ok(conn) = SafeConnection::open(&path, &opts.exec) else {
                continue;
            };
            let mut told = Vec::new();
            for &gi in &gold_order {
                let live: Vec<usize> = by_gold[&gi].iter().copied().filter(|&i| alive[i]).collect();
                if live.is_empty() {
                    continue;
                }
                let Ok(gold_rs) = conn.query(&prepared[gi].sql) else {
                    continue;
                };
                for i in live {
                    match run_with_gold(&conn, &prepared[gi], &gold_rs, &pairs[i].normalized, opts)
                    {
                        Outcome::Match | Outcome::GoldError(_) => {}
                        Outcome::Mismatch => told.push(i),
                        Outcome::PredError(c) if error_distinguishes(c) => told.push(i),
                        Outcome::PredError(_) => {}
                    }
                }
            }
            batch.push((path, told));
        }
        pool.append(&mut batch);
        // Greedy: keep the candidate (of all generated so far) that tells the most
        // still-undistinguished pairs apart; drop candidates that no longer tell any apart.
        let best = pool
            .iter()
            .enumerate()
            .map(|(i, (_, told))| (i, told.iter().filter(|&&p| alive[p]).count()))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        let gained = match best {
            Some((bi, gain)) if gain > 0 => {
                let (path, told) = pool.swap_remove(bi);
                for p in told {
                    if alive[p] {
                        alive[p] = false;
                        alive_count -= 1;
                        m.distinguished_by_suite += 1;
                        m.by_kind
                            .entry(pairs[p].kind.as_str().to_string())
                            .or_default()
                            .distinguished += 1;
                    }
                }
                let name = format!("{:02}.sqlite", m.databases.len());
                let dest = tmp.join(&name);
                std::fs::rename(&path, &dest).map_err(|e| TestsuiteError::io(&dest, e))?;
                m.databases.push(name);
                true
            }
            _ => false,
        };
        let mut keep = Vec::with_capacity(pool.len());
        for (path, told) in pool.drain(..) {
            if told.iter().any(|&p| alive[p]) {
                keep.push((path, told));
            } else {
                std::fs::remove_file(&path).map_err(|e| TestsuiteError::io(&path, e))?;
            }
        }
        pool = keep;
        // The pool's order must not depend on swap_remove's shuffling: keep generation order.
        pool.sort_by_key(|(path, _)| candidate_number(path));
        empty_rounds = if gained { 0 } else { empty_rounds + 1 };
    }
    for (path, _) in pool.drain(..) {
        std::fs::remove_file(&path).map_err(|e| TestsuiteError::io(&path, e))?;
    }

    for (i, p) in pairs.iter().enumerate() {
        if alive[i] {
            m.by_kind
                .entry(p.kind.as_str().to_string())
                .or_default()
                .left_over += 1;
            m.left_over.push(LeftOver {
                gold: golds[p.gold].to_string(),
                neighbour: p.sql.clone(),
                kind: p.kind,
            });
        }
    }
    for d in &m.databases {
        m.files.insert(d.clone(), FileSum::of(&tmp.join(d))?);
    }
    m.build_seconds = start.elapsed().as_secs_f64();
    write_json(&tmp.join("schema.json"), &m)?;
    let dest = out.join(db_id);
    remove_dir_if_exists(&dest)?;
    std::fs::rename(&tmp, &dest).map_err(|e| TestsuiteError::io(&dest, e))?;
    Ok(m)
}
