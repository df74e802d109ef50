//! Test-suite accuracy: the EX verdict on the original database and on every suite database.
//!
//! For one (gold, prediction) pair, TS is true when the prediction matches the gold on the
//! original database (exactly EX) and on every database of the schema's suite on which the gold
//! query runs. A suite database on which the gold fails is not used for that question (counted
//! in [`TsVerdict::gold_failed_on_suite`]). The first suite database that tells the prediction
//! apart is reported in [`TsVerdict::ts_first_failing_db`]. A schema without a suite gives
//! TS = EX, counted in [`TsSummary::questions_without_suite`]. Pairs whose original database is
//! missing are skipped, as EX skips them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kidbench_sql::eval::{evaluate, EvalOptions, Pair, Verdict};
use kidbench_sql::exec::SafeConnection;
use kidbench_sql::hardness::{classify, Hardness};
use kidbench_sql::Cause;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::build::{verify_suite, Manifest};
use crate::check::{run, Outcome};
use crate::error::TestsuiteError;

/// A built test suite on disk: `manifest.json` and one folder of databases per schema.
#[derive(Debug, Clone)]
pub struct Suite {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Suite {
    /// Opens the suite in `dir`: reads `manifest.json` and verifies every listed database
    /// ([`verify_suite`]: present, with its recorded size and SHA-256), so a truncated or
    /// changed suite database is an error naming it, never a database silently skipped.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, TestsuiteError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = verify_suite(&dir)?;
        Ok(Self { dir, manifest })
    }

    /// Opens the suite if `dir/manifest.json` exists (`kidbench run` reports TS only then).
    pub fn open_if_built(dir: impl AsRef<Path>) -> Result<Option<Self>, TestsuiteError> {
        if dir.as_ref().join("manifest.json").is_file() {
            Self::open(dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The suite databases of `db_id`, in greedy order (empty if the schema has none).
    pub fn databases(&self, db_id: &str) -> Vec<PathBuf> {
        self.manifest
            .schemas
            .get(db_id)
            .map(|s| {
                s.databases
                    .iter()
                    .map(|d| self.dir.join(db_id).join(d))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the suite covers `db_id`.
    pub fn covers(&self, db_id: &str) -> bool {
        self.manifest.schemas.contains_key(db_id)
    }
}

/// The verdict for one pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TsVerdict {
    /// Position in the input.
    pub index: usize,
    /// The pair's id.
    pub id: String,
    pub db_id: String,
    /// Spider hardness of the gold query (`None` if it cannot be parsed).
    pub hardness: Option<Hardness>,
    /// The original database is missing: not evaluated (excluded from the summary, as in EX).
    pub skipped: bool,
    /// EX: match on the original database ([`kidbench_sql::eval::Verdict::matched`]).
    pub ex: bool,
    /// TS: EX and a match on every suite database where the gold runs.
    pub ts: bool,
    /// `<db_id>/NN.sqlite` of the first suite database that told the prediction apart, when EX
    /// held and TS did not.
    pub ts_first_failing_db: Option<String>,
    /// Suite databases the pair was judged on.
    pub suite_databases_used: usize,
    /// Suite databases skipped because the gold query failed there.
    pub gold_failed_on_suite: usize,
    /// Why the prediction failed on the suite database that told it apart, if it failed.
    pub suite_pred_error: Option<Cause>,
}

/// EX and TS counts for one group of questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelSummary {
    pub count: usize,
    pub ex: usize,
    pub ts: usize,
}

impl LevelSummary {
    fn add(&mut self, v: &TsVerdict) {
        self.count += 1;
        self.ex += usize::from(v.ex);
        self.ts += usize::from(v.ts);
    }

    /// EX accuracy in percent.
    pub fn ex_pct(&self) -> f64 {
        pct(self.ex, self.count)
    }

    /// TS accuracy in percent.
    pub fn ts_pct(&self) -> f64 {
        pct(self.ts, self.count)
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// Summary over evaluated pairs, overall and per hardness level (`easy`, `medium`, `hard`,
/// `extra`, `unknown`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TsSummary {
    pub all: LevelSummary,
    pub by_hardness: BTreeMap<String, LevelSummary>,
    /// Pairs whose original database is missing (not in `all`).
    pub skipped_missing_database: usize,
    /// (question, suite database) pairs skipped because the gold failed there.
    pub gold_failed_on_suite: usize,
    /// Evaluated questions whose schema has no suite (TS = EX for them).
    pub questions_without_suite: usize,
    /// Questions with EX but not TS.
    pub ex_not_ts: usize,
}

/// Verdicts in input order plus their summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TsReport {
    pub verdicts: Vec<TsVerdict>,
    pub summary: TsSummary,
}

/// Summarises verdicts per hardness level. `covered(db_id)` says whether a schema has a suite.
pub fn summarize(verdicts: &[TsVerdict], covered: impl Fn(&str) -> bool) -> TsSummary {
    let mut s = TsSummary::default();
    for v in verdicts {
        if v.skipped {
            s.skipped_missing_database += 1;
            continue;
        }
        s.all.add(v);
        let level = v.hardness.map_or("unknown", Hardness::as_str);
        s.by_hardness.entry(level.to_string()).or_default().add(v);
        s.gold_failed_on_suite += v.gold_failed_on_suite;
        s.ex_not_ts += usize::from(v.ex && !v.ts);
        s.questions_without_suite += usize::from(!covered(&v.db_id));
    }
    s
}

/// EX then TS for every pair: EX is [`kidbench_sql::eval::evaluate`] itself (same `resolve` and
/// options), TS is [`ts_from_ex`] on its verdicts.
pub fn evaluate_ts<R>(
    pairs: &[Pair],
    resolve: R,
    suite: Option<&Suite>,
    opts: &EvalOptions,
) -> TsReport
where
    R: Fn(&str) -> PathBuf + Sync,
{
    let ex = evaluate(pairs, resolve, opts);
    ts_from_ex(pairs, &ex, suite, opts)
}

/// TS from EX verdicts already computed by [`kidbench_sql::eval::evaluate`] (`ex[i]` judges
/// `pairs[i]`): pairs that matched on the original database are run on their schema's suite
/// databases with [`kidbench_sql::eval::exec_match`]. Schemas run in parallel; each suite
/// database is opened once per schema.
pub fn ts_from_ex(
    pairs: &[Pair],
    ex: &[Verdict],
    suite: Option<&Suite>,
    opts: &EvalOptions,
) -> TsReport {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in pairs.iter().enumerate() {
        groups.entry(p.db_id.as_str()).or_default().push(i);
    }
    let groups: Vec<(&str, Vec<usize>)> = groups.into_iter().collect();
    let judged: Vec<Vec<TsVerdict>> = groups
        .par_iter()
        .map(|(db_id, idx)| judge_schema(db_id, idx, pairs, ex, suite, opts))
        .collect();
    let mut verdicts: Vec<TsVerdict> = judged.into_iter().flatten().collect();
    verdicts.sort_by_key(|v| v.index);
    let summary = summarize(&verdicts, |db| suite.is_some_and(|s| s.covers(db)));
    TsReport { verdicts, summary }
}

fn judge_schema(
    db_id: &str,
    idx: &[usize],
    pairs: &[Pair],
    ex: &[Verdict],
    suite: Option<&Suite>,
    opts: &EvalOptions,
) -> Vec<TsVerdict> {
    let suite_paths = suite.map(|s| s.databases(db_id)).unwrap_or_default();
    // Opened on first use; a suite database that cannot be opened judges nothing (counted as
    // if the gold failed there).
    let mut conns: Vec<Option<Option<SafeConnection>>> = suite_paths.iter().map(|_| None).collect();
    let names: Vec<String> = suite_paths
        .iter()
        .map(|p| {
            format!(
                "{db_id}/{}",
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
        })
        .collect();
    let mut out = Vec::with_capacity(idx.len());
    for &i in idx {
        let p = &pairs[i];
        let e = ex.get(i);
        let matched = e.is_some_and(|e| e.matched);
        let mut v = TsVerdict {
            index: i,
            id: p.id.clone(),
            db_id: db_id.to_string(),
            hardness: classify(&p.gold).ok(),
            skipped: e.is_none_or(Verdict::skipped),
            ex: matched,
            ts: matched,
            ts_first_failing_db: None,
            suite_databases_used: 0,
            gold_failed_on_suite: 0,
            suite_pred_error: None,
        };
        if matched {
            for (k, path) in suite_paths.iter().enumerate() {
                let conn =
                    conns[k].get_or_insert_with(|| SafeConnection::open(path, &opts.exec).ok());
                let Some(conn) = conn.as_ref() else {
                    v.gold_failed_on_suite += 1;
                    continue;
                };
                let told_apart = match run(conn, &p.gold, &p.pred, opts) {
                    Outcome::Match => false,
                    Outcome::Mismatch => true,
                    Outcome::PredError(c) => {
                        v.suite_pred_error = Some(c);
                        true
                    }
                    Outcome::GoldError(_) => {
                        v.gold_failed_on_suite += 1;
                        continue;
                    }
                };
                v.suite_databases_used += 1;
                if told_apart {
                    v.ts = false;
                    v.ts_first_failing_db = Some(names[k].clone());
                    break;
                }
            }
        }
        out.push(v);
    }
    out
}
