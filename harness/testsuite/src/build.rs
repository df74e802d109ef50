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

/// One schema's part of the manifest (also stored as `<db_id>/schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaManifest {
    pub db_id: String,
    /// [`BuildConfig`] fingerprint this schema was built with.
    pub config: String,
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

/// A finished schema folder built with the same settings, if there is one.
fn finished_schema(dir: &Path, cfg: &BuildConfig) -> Option<SchemaManifest> {
    let text = std::fs::read_to_string(dir.join("schema.json")).ok()?;
    let m: SchemaManifest = serde_json::from_str(&text).ok()?;
    (m.config == cfg.fingerprint() && m.databases.iter().all(|d| dir.join(d).is_file()))
        .then_some(m)
}

/// Builds (or resumes) a test suite for `schemas` into `out`. Schemas run in parallel on rayon's
/// pool, biggest first.
pub fn build_suite(
    benchmark: &str,
    schemas: &[SchemaGolds],
    out: &Path,
    cfg: &BuildConfig,
) -> Result<Manifest, TestsuiteError> {
    let start = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| TestsuiteError::io(out, e))?;
    // Half-written schemas from an interrupted run.
    let entries = std::fs::read_dir(out).map_err(|e| TestsuiteError::io(out, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TestsuiteError::io(out, e))?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            remove_dir_if_exists(&entry.path())?;
        }
    }

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
    let done: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let results: Vec<Result<SchemaManifest, TestsuiteError>> = todo
        .par_iter()
        .map(|(s, db)| {
            let dir = out.join(&s.db_id);
            let r = match finished_schema(&dir, cfg) {
                Some(m) => Ok(m),
                None => build_schema(s, db, out, cfg),
            };
            if let Ok(mut d) = done.lock() {
                d.push(s.db_id.clone());
                bar.set_message(s.db_id.clone());
            }
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
    Ok(manifest)
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
    let mut golds: Vec<&str> = Vec::new();
    for g in &s.golds {
        if !golds.contains(&g.as_str()) {
            golds.push(g);
        }
    }
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
    m.build_seconds = start.elapsed().as_secs_f64();
    write_json(&tmp.join("schema.json"), &m)?;
    let dest = out.join(db_id);
    remove_dir_if_exists(&dest)?;
    std::fs::rename(&tmp, &dest).map_err(|e| TestsuiteError::io(&dest, e))?;
    Ok(m)
}
