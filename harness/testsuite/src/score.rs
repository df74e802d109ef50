//! One scoring path for `kidbench eval` and `kidbench run`: execution verdicts for every pair
//! (in slices, so a progress bar can move), the gold query's hardness on each verdict
//! ([`kidbench_sql::hardness::label`], `unknown` when the gold does not parse, the same label
//! in both commands), the EX summary, and TS when a suite is given.

use std::path::PathBuf;

use kidbench_sql::eval::{evaluate, summarize, EvalOptions, Pair, Summary, Verdict};

use crate::verdict::{ts_from_ex, Suite, TsReport};

/// The verdicts of a set of pairs and their summaries.
#[derive(Debug, Clone)]
pub struct Scoring {
    /// One per pair, in input order, each with its gold query's hardness.
    pub verdicts: Vec<Verdict>,
    pub summary: Summary,
    /// Test-suite verdicts, when a suite was given.
    pub ts: Option<TsReport>,
}

/// Pairs per slice of [`score_pairs`]; each slice is evaluated in parallel.
const SLICE: usize = 1024;

/// Scores `pairs` (databases found by `resolve`) under `opts`, and TS on `suite` when given.
/// `progress`, when given, advances by one per pair.
pub fn score_pairs<R>(
    pairs: &[Pair],
    resolve: R,
    opts: &EvalOptions,
    suite: Option<&Suite>,
    progress: Option<&indicatif::ProgressBar>,
) -> Scoring
where
    R: Fn(&str) -> PathBuf + Sync,
{
    let mut verdicts = Vec::with_capacity(pairs.len());
    for slice in pairs.chunks(SLICE) {
        verdicts.extend(evaluate(slice, &resolve, opts));
        if let Some(p) = progress {
            p.inc(slice.len() as u64);
        }
    }
    for (v, p) in verdicts.iter_mut().zip(pairs) {
        v.hardness = Some(kidbench_sql::hardness::label(&p.gold));
    }
    let summary = summarize(&verdicts);
    let ts = suite.map(|s| ts_from_ex(pairs, &verdicts, Some(s), opts));
    Scoring {
        verdicts,
        summary,
        ts,
    }
}
