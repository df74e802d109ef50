//! Test-suite accuracy: the EX verdict on the original database and on every suite database.
//!
//! For one (gold, prediction) pair, TS is true when the prediction matches the gold on the
//! original database (exactly EX) and on every database of the schema's suite on which the gold
//! query runs. A suite database on which the gold fails is not used for that question (counted
//! in [`TsVerdict::gold_failed_on_suite`]). The first suite database that tells the prediction
//! apart is reported in [`TsVerdict::ts_first_failing_db`]. A schema without a suite gives
//! TS = EX, counted in [`TsSummary::questions_without_suite`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kidbench_sql::exec::{ExecOptions, SafeConnection};
use kidbench_sql::hardness::{classify, Hardness};
use kidbench_sql::Cause;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::build::Manifest;
use crate::check::{Outcome, Rules};
use crate::error::TestsuiteError;

/// A built test suite on disk: `manifest.json` and one folder of databases per schema.
#[derive(Debug, Clone)]
pub struct Suite {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Suite {
    /// Opens the suite in `dir` (reads `manifest.json`; checks the listed files exist).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, TestsuiteError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::read(&dir)?;
        for (db_id, s) in &manifest.schemas {
            for d in &s.databases {
                let p = dir.join(db_id).join(d);
                if !p.is_file() {
                    return Err(TestsuiteError::Suite {
                        path: dir.clone(),
                        message: format!("manifest lists {} but the file is missing", p.display()),
                    });
                }
            }
        }
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

/// One pair to judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsPair {
    pub db_id: String,
    pub gold: String,
    pub pred: String,
}

/// TS evaluation settings: the same execution limits and rules as EX.
#[derive(Debug, Clone, Default)]
pub struct TsOptions {
    pub exec: ExecOptions,
    pub rules: Rules,
}

/// The verdict for one pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TsVerdict {
    /// Position in the input.
    pub index: usize,
    pub db_id: String,
    /// Spider hardness of the gold query (`None` if it cannot be parsed).
    pub hardness: Option<Hardness>,
    /// EX: match on the original database.
    pub ex: bool,
    /// TS: EX and a match on every suite database where the gold runs.
    pub ts: bool,
    /// File name (`<db_id>/NN.sqlite`) of the first suite database that told the prediction
    /// apart, when EX held and TS did not.
    pub ts_first_failing_db: Option<String>,
    /// Suite databases the pair was judged on.
    pub suite_databases_used: usize,
    /// Suite databases skipped because the gold query failed there.
    pub gold_failed_on_suite: usize,
    /// Why the prediction failed to run (original or suite database), if it did.
    pub pred_error: Option<Cause>,
    /// Why the gold failed on the original database, if it did (EX and TS are then false).
    pub gold_error: Option<Cause>,
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

/// Summary per hardness level (`easy`, `medium`, `hard`, `extra`, `unknown`) and overall.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TsSummary {
    pub all: LevelSummary,
    pub by_hardness: BTreeMap<String, LevelSummary>,
    /// (question, suite database) pairs skipped because the gold failed there.
    pub gold_failed_on_suite: usize,
    /// Questions whose schema has no suite (TS = EX for them).
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

/// Summarises verdicts per hardness level.
pub fn summarize(verdicts: &[TsVerdict], questions_without_suite: usize) -> TsSummary {
    let mut s = TsSummary {
        questions_without_suite,
        ..TsSummary::default()
    };
    for v in verdicts {
        s.all.add(v);
        let level = v.hardness.map_or("unknown", Hardness::as_str);
        s.by_hardness.entry(level.to_string()).or_default().add(v);
        s.gold_failed_on_suite += v.gold_failed_on_suite;
        s.ex_not_ts += usize::from(v.ex && !v.ts);
    }
    s
}

/// Judges every pair: EX on the original database (found by `original(db_id)`), then the suite
/// databases of its schema. Schemas run in parallel; each database is opened once per schema.
pub fn evaluate_ts<F>(
    pairs: &[TsPair],
    original: F,
    suite: Option<&Suite>,
    opts: &TsOptions,
) -> TsReport
where
    F: Fn(&str) -> Option<PathBuf> + Sync,
{
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in pairs.iter().enumerate() {
        groups.entry(p.db_id.as_str()).or_default().push(i);
    }
    let groups: Vec<(&str, Vec<usize>)> = groups.into_iter().collect();
    let judged: Vec<(Vec<TsVerdict>, usize)> = groups
        .par_iter()
        .map(|(db_id, idx)| judge_schema(db_id, idx, pairs, &original, suite, opts))
        .collect();
    let mut verdicts: Vec<TsVerdict> = Vec::with_capacity(pairs.len());
    let mut without = 0;
    for (v, w) in judged {
        verdicts.extend(v);
        without += w;
    }
    verdicts.sort_by_key(|v| v.index);
    let summary = summarize(&verdicts, without);
    TsReport { verdicts, summary }
}

fn judge_schema<F>(
    db_id: &str,
    idx: &[usize],
    pairs: &[TsPair],
    original: &F,
    suite: Option<&Suite>,
    opts: &TsOptions,
) -> (Vec<TsVerdict>, usize)
where
    F: Fn(&str) -> Option<PathBuf> + Sync,
{
    let rules = opts.rules;
    let orig = match original(db_id) {
        Some(p) => SafeConnection::open(&p, &opts.exec),
        None => Err(kidbench_sql::exec::ExecError::new(
            Cause::MissingDatabase,
            format!("no database for {db_id}"),
        )),
    };
    let suite_paths = suite.map(|s| s.databases(db_id)).unwrap_or_default();
    let covered = suite.is_some_and(|s| s.covers(db_id));
    // A suite database that cannot be opened judges nothing (as if the gold failed there).
    let suite_conns: Vec<(String, Option<SafeConnection>)> = suite_paths
        .iter()
        .map(|p| {
            let name = format!(
                "{db_id}/{}",
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            (name, SafeConnection::open(p, &opts.exec).ok())
        })
        .collect();
    let mut out = Vec::with_capacity(idx.len());
    for &i in idx {
        let p = &pairs[i];
        let mut v = TsVerdict {
            index: i,
            db_id: db_id.to_string(),
            hardness: classify(&p.gold).ok(),
            ex: false,
            ts: false,
            ts_first_failing_db: None,
            suite_databases_used: 0,
            gold_failed_on_suite: 0,
            pred_error: None,
            gold_error: None,
        };
        let gold = rules.prepare_gold(&p.gold);
        let pred = rules.prepare_pred(&p.pred);
        match &orig {
            Err(e) => v.gold_error = Some(e.cause),
            Ok(conn) => match rules.run(conn, &gold, &pred) {
                Outcome::Match => v.ex = true,
                Outcome::Mismatch => {}
                Outcome::PredError(c) => v.pred_error = Some(c),
                Outcome::GoldError(c) => v.gold_error = Some(c),
            },
        }
        if v.ex {
            v.ts = true;
            for (name, conn) in &suite_conns {
                let Some(conn) = conn else {
                    v.gold_failed_on_suite += 1;
                    continue;
                };
                let told_apart = match rules.run(conn, &gold, &pred) {
                    Outcome::Match => false,
                    Outcome::Mismatch => true,
                    Outcome::PredError(c) => {
                        v.pred_error = Some(c);
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
                    v.ts_first_failing_db = Some(name.clone());
                    break;
                }
            }
        }
        out.push(v);
    }
    let without = if covered { 0 } else { idx.len() };
    (out, without)
}
