//! Evaluation driver: (gold, prediction) pairs in, one [`Verdict`] per pair out.
//!
//! Pairs are grouped by database and split into chunks; chunks run in parallel on rayon's pool
//! and each chunk opens its database once ([`SafeConnection`]) and runs all its pairs on it.
//! Verdicts come back in input order. A failing gold query is reported in
//! [`Verdict::gold_cause`] and scores 0, it never aborts the run.
//!
//! For a test-suite metric (one question, many databases) open the databases yourself and call
//! [`exec_match`] on each.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::compare::{results_match, CompareMode};
use crate::exec::{ExecError, ExecOptions, SafeConnection};
use crate::normalize::{normalize, order_matters};
use crate::{Cause, ResultSet};

/// One question to score.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub id: String,
    pub db_id: String,
    pub gold: String,
    pub pred: String,
}

/// How pairs are scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    pub mode: CompareMode,
    /// Test-suite mode only: keep `DISTINCT` instead of removing it from both queries (the
    /// reference's `--keep_distinct`).
    pub keep_distinct: bool,
    pub exec: ExecOptions,
    /// Rows rendered into [`Verdict::gold_preview`] / [`Verdict::pred_preview`].
    pub preview_rows: usize,
    /// Pairs per parallel task (each task opens its database once).
    pub chunk_size: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            mode: CompareMode::TestSuite,
            keep_distinct: false,
            exec: ExecOptions::default(),
            preview_rows: 5,
            chunk_size: 32,
        }
    }
}

/// The outcome of running one gold and one predicted query on one database.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchOutcome {
    pub matched: bool,
    /// Whether row order was significant for this comparison.
    pub order_matters: bool,
    pub gold: Result<ResultSet, ExecError>,
    pub pred: Result<ResultSet, ExecError>,
}

/// The texts that are executed, and whether order matters, for `mode`.
///
/// Test-suite mode applies [`normalize`] to both queries and takes `order_matters` from the
/// normalised gold text; BIRD and strict modes execute the texts unchanged (order never matters
/// for BIRD, always for strict).
pub fn prepare_queries(gold: &str, pred: &str, opts: &EvalOptions) -> (String, String, bool) {
    match opts.mode {
        CompareMode::TestSuite => {
            let g = normalize(gold, opts.keep_distinct);
            let p = normalize(pred, opts.keep_distinct);
            let om = order_matters(&g);
            (g, p, om)
        }
        CompareMode::Bird => (gold.to_string(), pred.to_string(), false),
        CompareMode::Strict => (gold.to_string(), pred.to_string(), true),
    }
}

/// Runs `gold` and `pred` on `conn` and compares them under `opts.mode`. A failure of either
/// query is a non-match.
pub fn exec_match(
    conn: &SafeConnection,
    gold: &str,
    pred: &str,
    opts: &EvalOptions,
) -> MatchOutcome {
    let (g, p, om) = prepare_queries(gold, pred, opts);
    let gold = conn.query(&g);
    let pred = conn.query(&p);
    let matched = match (&gold, &pred) {
        (Ok(g), Ok(p)) => results_match(g, p, opts.mode, om),
        _ => false,
    };
    MatchOutcome {
        matched,
        order_matters: om,
        gold,
        pred,
    }
}

/// The verdict for one [`Pair`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub id: String,
    pub db_id: String,
    pub matched: bool,
    /// Why the prediction produced no result (`None` when it ran).
    pub cause: Option<Cause>,
    pub error: Option<String>,
    /// Why the gold query produced no result; such a pair scores 0.
    pub gold_cause: Option<Cause>,
    pub gold_error: Option<String>,
    pub order_matters: bool,
    /// Wall time of the pair (both queries and the comparison), in milliseconds.
    pub ms: f64,
    pub gold_rows: Option<usize>,
    pub pred_rows: Option<usize>,
    pub gold_preview: Vec<Vec<String>>,
    pub pred_preview: Vec<Vec<String>>,
    /// Spider hardness of the gold query; filled by the caller.
    pub hardness: Option<String>,
}

impl Verdict {
    /// True when the pair was not evaluated because its database file is missing.
    pub fn skipped(&self) -> bool {
        self.gold_cause == Some(Cause::MissingDatabase)
    }

    fn from_outcome(pair: &Pair, out: MatchOutcome, ms: f64, preview: usize) -> Self {
        let split = |r: &Result<ResultSet, ExecError>| match r {
            Ok(rs) => (None, None, Some(rs.rows.len()), rs.preview(preview)),
            Err(e) => (Some(e.cause), Some(e.message.clone()), None, Vec::new()),
        };
        let (gold_cause, gold_error, gold_rows, gold_preview) = split(&out.gold);
        let (cause, error, pred_rows, pred_preview) = split(&out.pred);
        Verdict {
            id: pair.id.clone(),
            db_id: pair.db_id.clone(),
            matched: out.matched,
            cause,
            error,
            gold_cause,
            gold_error,
            order_matters: out.order_matters,
            ms,
            gold_rows,
            pred_rows,
            gold_preview,
            pred_preview,
            hardness: None,
        }
    }

    fn unopenable(pair: &Pair, err: &ExecError) -> Self {
        Verdict {
            id: pair.id.clone(),
            db_id: pair.db_id.clone(),
            matched: false,
            cause: Some(err.cause),
            error: Some(err.message.clone()),
            gold_cause: Some(err.cause),
            gold_error: Some(err.message.clone()),
            order_matters: false,
            ms: 0.0,
            gold_rows: None,
            pred_rows: None,
            gold_preview: Vec::new(),
            pred_preview: Vec::new(),
            hardness: None,
        }
    }
}

/// Spider/BIRD layout: `<root>/<db_id>/<db_id>.sqlite` (pass `.../spider/database`).
pub fn spider_db_path(database_dir: &Path, db_id: &str) -> PathBuf {
    database_dir.join(db_id).join(format!("{db_id}.sqlite"))
}

/// Evaluates all pairs in parallel; verdicts are returned in input order.
///
/// `resolve` maps a `db_id` to its SQLite file. A missing file yields verdicts with
/// `cause == gold_cause == Some(MissingDatabase)` ([`Verdict::skipped`]).
pub fn evaluate<R>(pairs: &[Pair], resolve: R, opts: &EvalOptions) -> Vec<Verdict>
where
    R: Fn(&str) -> PathBuf + Sync,
{
    let mut by_db: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in pairs.iter().enumerate() {
        by_db.entry(p.db_id.as_str()).or_default().push(i);
    }
    let chunk = opts.chunk_size.max(1);
    let tasks: Vec<(&str, &[usize])> = by_db
        .iter()
        .flat_map(|(db, idx)| idx.chunks(chunk).map(move |c| (*db, c)))
        .collect();
    let done: Vec<Vec<(usize, Verdict)>> = tasks
        .par_iter()
        .map(|&(db, idx)| run_chunk(pairs, db, idx, &resolve, opts))
        .collect();
    let mut slots: Vec<Option<Verdict>> = vec![None; pairs.len()];
    for (i, v) in done.into_iter().flatten() {
        slots[i] = Some(v);
    }
    slots.into_iter().flatten().collect()
}

fn run_chunk<R>(
    pairs: &[Pair],
    db: &str,
    idx: &[usize],
    resolve: &R,
    opts: &EvalOptions,
) -> Vec<(usize, Verdict)>
where
    R: Fn(&str) -> PathBuf + Sync,
{
    let conn = match SafeConnection::open(resolve(db), &opts.exec) {
        Ok(c) => c,
        Err(e) => {
            return idx
                .iter()
                .map(|&i| (i, Verdict::unopenable(&pairs[i], &e)))
                .collect()
        }
    };
    idx.iter()
        .map(|&i| {
            let pair = &pairs[i];
            let start = Instant::now();
            let out = exec_match(&conn, &pair.gold, &pair.pred, opts);
            let ms = start.elapsed().as_secs_f64() * 1e3;
            (i, Verdict::from_outcome(pair, out, ms, opts.preview_rows))
        })
        .collect()
}

/// Counts for a report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub total: usize,
    /// Pairs whose database exists.
    pub evaluated: usize,
    /// Pairs skipped because their database file is missing.
    pub skipped_missing_database: usize,
    pub matched: usize,
    /// Execution accuracy over evaluated pairs: `matched / evaluated`.
    pub ex: f64,
    /// `evaluated / total`.
    pub coverage: f64,
    /// Prediction failures per cause (evaluated pairs only).
    pub causes: BTreeMap<Cause, usize>,
    /// Gold failures per cause (evaluated pairs only).
    pub gold_causes: BTreeMap<Cause, usize>,
    /// `(pairs, matched)` per hardness, for verdicts whose hardness was filled in.
    pub by_hardness: BTreeMap<String, (usize, usize)>,
    /// Sum of per-pair wall times in milliseconds.
    pub total_ms: f64,
}

/// Aggregates verdicts into a [`Summary`].
pub fn summarize(verdicts: &[Verdict]) -> Summary {
    let mut s = Summary {
        total: verdicts.len(),
        ..Summary::default()
    };
    let mut hard: HashMap<&str, (usize, usize)> = HashMap::new();
    for v in verdicts {
        if v.skipped() {
            s.skipped_missing_database += 1;
            continue;
        }
        s.evaluated += 1;
        s.matched += usize::from(v.matched);
        s.total_ms += v.ms;
        if let Some(c) = v.cause {
            *s.causes.entry(c).or_insert(0) += 1;
        }
        if let Some(c) = v.gold_cause {
            *s.gold_causes.entry(c).or_insert(0) += 1;
        }
        if let Some(h) = &v.hardness {
            let e = hard.entry(h.as_str()).or_insert((0, 0));
            e.0 += 1;
            e.1 += usize::from(v.matched);
        }
    }
    s.by_hardness = hard.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.ex = ratio(s.matched, s.evaluated);
    s.coverage = ratio(s.evaluated, s.total);
    s
}
