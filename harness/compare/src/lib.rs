//! `kidbench-compare`: the regression gate behind `kidbench compare BASELINE NEW`. It matches
//! the records of two result folders (runs or sweeps, read with
//! [`kidbench_results::load_records`]) and fails only on changes a reader should act on.
//!
//! # Rules
//!
//! **Cells and rows.** Records are matched by their [`RecordKey`] with the seed left out
//! ([`RecordKey::without_seed`]): one table row per configuration (role, method, params,
//! benchmark, teacher, student, student warmup, budget). Within a row, runs are paired by seed
//! value. One side holding two *different* records of the same key and seed is an error naming
//! both files; the same record found twice (e.g. a cached teacher copied into every sweep cell)
//! counts once.
//!
//! **Questions.** Within a row, questions are matched by [`QuestionVerdict::id`] over every run
//! that is compared. Questions that are not in all of them (e.g. one side only) are counted and
//! shown, and left out of the test; the EX and TS figures of the table are computed over the
//! common questions, so they can differ from a record's own `ex`. A row whose runs share no
//! question at all fails ("no common questions"): nothing could be checked.
//!
//! **Missing and extra cells.** A run in the baseline but not in new (a whole row, or some of
//! its seeds) fails the gate ("missing in new"). A run only in new is listed, not gated.
//!
//! **Failed runs.** A run scored in the baseline and `Failed` in new fails the gate ("failed in
//! new"). Failed in the baseline and scored in new, or failed on both sides, is a note.
//!
//! **Accuracy (EX).** Per row, [`kidbench_stats::paired_comparison`] of the baseline runs
//! against the new runs over the seeds scored on both sides: one seed gives McNemar's exact test
//! (and a paired bootstrap interval of the difference), several seeds a paired bootstrap over
//! seeds and questions. The row fails when the drop `baseline EX − new EX`, in points
//! (100 × fraction), is larger than [`CompareOptions::max_ex_drop`] **and** its p-value is below
//! [`CompareOptions::alpha`]: both, so that noise does not flap the gate (a big drop on few
//! questions is not significant) and a tiny significant drop is tolerated. The TS difference is
//! shown too when every compared run of both sides has TS verdicts, but never gated on. Holm's
//! adjustment of the EX p-values over all rows is shown for reading; the gate uses the raw p
//! (each row is a check of its own, and the tolerance already guards against flapping).
//!
//! **Latency.** For a method's student other than `sft`, latency is its `seconds_per_step`
//! divided by that of the `sft` student of the **same side** with the same key except
//! `method = "sft"` and no params, and the same seed; the row's latency is the mean of these
//! ratios over the seeds where both sides have one. The row fails when new latency >
//! baseline latency × (1 + [`CompareOptions::max_latency_growth`]). Only ratios measured in one
//! run are compared, never absolute seconds: CI machines differ. When a side has no usable sft
//! record, the table says `latency not comparable (no sft on <side>)` and a note says so; it is
//! not a failure.
//!
//! # Errors
//!
//! Bad input is a [`CompareError`] naming what is wrong: no records on a side, a scored record
//! with an empty verdicts file or repeated question ids (naming the record file), two different
//! records for one run, options out of range.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use kidbench_results::{Loaded, Outcome, QuestionVerdict, RecordKey, Role, Scored};
use kidbench_stats::{holm, paired_comparison, Paired, StatsError};

mod markdown;

/// The gate's thresholds and the statistics' settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompareOptions {
    /// Significance level of the EX test (default 0.05).
    pub alpha: f64,
    /// Largest tolerated EX drop, in points (default 1.0).
    pub max_ex_drop: f64,
    /// Largest tolerated growth of a method's latency relative to sft, as a fraction (default
    /// 0.10, i.e. 10 %).
    pub max_latency_growth: f64,
    /// Confidence level of the intervals shown (default 0.95).
    pub level: f64,
    /// Bootstrap resamples (default 2000).
    pub resamples: usize,
    /// Bootstrap seed (default 0).
    pub seed: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            alpha: 0.05,
            max_ex_drop: 1.0,
            max_latency_growth: 0.10,
            level: 0.95,
            resamples: 2000,
            seed: 0,
        }
    }
}

/// Which folder a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Baseline,
    New,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Baseline => "baseline",
            Side::New => "new",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    #[error("{side}: no records to compare")]
    NoRecords { side: Side },
    #[error("{}: scored, but its verdicts file has no question", path.display())]
    NoVerdicts { path: PathBuf },
    #[error("{}: question id {id:?} appears more than once in its verdicts", path.display())]
    RepeatedQuestion { path: PathBuf, id: String },
    #[error(
        "{side}: two different records of one run ({cell}, seed {seed}): {} and {}",
        first.display(),
        second.display()
    )]
    DuplicateRun {
        side: Side,
        cell: String,
        seed: u64,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("compare option {name} = {value}: {expected}")]
    InvalidOption {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{cell}: {source}")]
    Stats {
        cell: String,
        #[source]
        source: StatsError,
    },
}

/// The rule a [`Failure`] broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A run of the baseline is not in new.
    MissingInNew,
    /// A run scored in the baseline failed in new.
    FailedInNew,
    /// EX dropped by more than the tolerance, significantly.
    ExDrop,
    /// Latency relative to sft grew by more than the tolerance.
    LatencyGrowth,
    /// The compared runs share no question.
    NoCommonQuestions,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::MissingInNew => "missing in new",
            Rule::FailedInNew => "failed in new",
            Rule::ExDrop => "EX drop",
            Rule::LatencyGrowth => "latency growth",
            Rule::NoCommonQuestions => "no common questions",
        })
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// The row (key without seed).
    pub cell: RecordKey,
    /// The seed, when the failure is about one run.
    pub seed: Option<u64>,
    pub rule: Rule,
    /// What was measured against what was allowed.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", cell_name(&self.cell))?;
        if let Some(s) = self.seed {
            write!(f, ", seed {s}")?;
        }
        write!(f, ": {}: {}", self.rule, self.detail)
    }
}

/// A metric of both sides over a row's compared runs and common questions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MetricDiff {
    /// Mean over seeds of the baseline's accuracy, as a fraction.
    pub baseline: f64,
    /// Mean over seeds of new's accuracy, as a fraction.
    pub new: f64,
    /// `new − baseline` (fractions) with its interval and p-value.
    pub paired: Paired,
}

impl MetricDiff {
    /// `baseline − new` in points (positive: new is worse).
    pub fn drop_points(&self) -> f64 {
        -100.0 * self.paired.diff.estimate
    }
}

/// Latency of a method relative to sft on each side.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Latency {
    /// Teacher, student init and sft itself: no latency rule.
    NotApplicable,
    /// The rule applies but a ratio is missing (e.g. no sft on one side).
    NotComparable { reason: String },
    /// Mean over `seeds` of `seconds_per_step / sft seconds_per_step`, per side.
    Compared {
        baseline: f64,
        new: f64,
        seeds: usize,
    },
}

impl Latency {
    /// `new / baseline − 1` when compared.
    pub fn growth(&self) -> Option<f64> {
        match self {
            Latency::Compared { baseline, new, .. } => Some(new / baseline - 1.0),
            _ => None,
        }
    }
}

/// One configuration (a key without its seed) present on both sides.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub cell: RecordKey,
    /// Seeds scored on both sides: the runs the statistics use.
    pub seeds: Vec<u64>,
    /// Questions common to every compared run.
    pub questions: usize,
    /// Questions in some compared baseline run but not common to all (left out).
    pub baseline_only_questions: usize,
    /// Questions in some compared new run but not common to all (left out).
    pub new_only_questions: usize,
    /// EX, when some seed was scored on both sides and questions are shared.
    pub ex: Option<MetricDiff>,
    /// Holm-adjusted EX p-value over all rows with EX (shown, not gated on).
    pub ex_p_holm: Option<f64>,
    /// TS, when every compared run of both sides has TS verdicts.
    pub ts: Option<MetricDiff>,
    pub latency: Latency,
}

/// Runs of the baseline missing in new, or runs only in new.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CellRuns {
    pub cell: RecordKey,
    pub seeds: Vec<u64>,
    /// The whole row is absent on the other side (not only some seeds).
    pub whole: bool,
}

/// What [`compare`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub options: CompareOptions,
    /// Rows present on both sides, in key order.
    pub rows: Vec<Row>,
    /// Baseline runs not in new (each also a failure).
    pub missing: Vec<CellRuns>,
    /// Runs only in new (reported, not gated).
    pub extra: Vec<CellRuns>,
    /// Every broken rule, in row order.
    pub failing: Vec<Failure>,
    /// Remarks that are not failures (latency not comparable, failed on both sides, ...).
    pub notes: Vec<String>,
}

impl Comparison {
    /// Whether no rule is broken.
    pub fn passed(&self) -> bool {
        self.failing.is_empty()
    }

    /// One line per broken rule, naming the method, params, benchmark, seed and rule.
    pub fn failures(&self) -> Vec<String> {
        self.failing.iter().map(Failure::to_string).collect()
    }

    /// A markdown report: the rule settings, one table row per configuration, then the
    /// failures, the missing and extra runs and the notes.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }
}

/// `kid (alpha=0.3), benchmark synth, teacher tiny-m, student tiny-s, warmup 10, budget
/// steps=5`: every field of a row's key, empty ones left out.
pub fn cell_name(key: &RecordKey) -> String {
    let mut parts = vec![key.method_label()];
    parts.extend(key_fields(key).into_iter().map(|(k, v)| format!("{k} {v}")));
    parts.join(", ")
}

/// The key's fields other than role, method and params, as `(name, value)`, empty ones left
/// out.
pub(crate) fn key_fields(key: &RecordKey) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !key.benchmark.is_empty() {
        out.push(("benchmark", key.benchmark.clone()));
    }
    if !key.teacher.is_empty() {
        out.push(("teacher", key.teacher.clone()));
    }
    if !key.student.is_empty() {
        out.push(("student", key.student.clone()));
    }
    if let Some(w) = key.student_warmup {
        out.push(("warmup", w.to_string()));
    }
    if !key.budget.is_empty() {
        out.push(("budget", key.budget.clone()));
    }
    out
}

/// The distinct machines (their [`kidbench_results::Machine::summary`]) of a side's scored
/// records; `None` when a scored record does not say (written before records said).
fn machines(side: &[Loaded]) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for l in side {
        if let Outcome::Scored(s) = &l.record.outcome {
            out.insert(s.training.as_ref()?.machine.as_ref()?.summary());
        }
    }
    Some(out)
}

/// A note when the two sides' models were not all made on one kind of machine: the seed fixes
/// data order, masking and sampling, not another CPU's arithmetic, so EX can move with no change
/// of code. Not a failure: the gate's tolerance and test still decide.
fn machine_note(baseline: &[Loaded], new: &[Loaded]) -> Option<String> {
    let show = |m: &BTreeSet<String>| m.iter().cloned().collect::<Vec<_>>().join("; ");
    match (machines(baseline), machines(new)) {
        (Some(b), Some(n)) if b == n => None,
        (Some(b), Some(n)) => Some(format!(
            "machines differ: baseline made on {}, new on {}; the same plan on another CPU, thread count or kernel setting does other arithmetic, so EX can move with no change of code",
            show(&b),
            show(&n)
        )),
        (None, Some(n)) => Some(format!(
            "the baseline's records do not say which machine made them (new: {}): a difference may be the machine's arithmetic, not the code",
            show(&n)
        )),
        (Some(b), None) => Some(format!(
            "new's records do not say which machine made them (baseline: {})",
            show(&b)
        )),
        (None, None) => None,
    }
}

/// A side's records: row key -> seed -> record.
type Cells<'a> = BTreeMap<RecordKey, BTreeMap<u64, &'a Loaded>>;

/// Compares `new` against `baseline` by the rules in the crate docs.
pub fn compare(
    baseline: &[Loaded],
    new: &[Loaded],
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    check_options(opts)?;
    let base = cells(baseline, Side::Baseline)?;
    let newc = cells(new, Side::New)?;
    let mut out = Comparison {
        options: opts.clone(),
        rows: Vec::new(),
        missing: Vec::new(),
        extra: Vec::new(),
        failing: Vec::new(),
        notes: Vec::new(),
    };
    for (cell, b_runs) in &base {
        let Some(n_runs) = newc.get(cell) else {
            let seeds: Vec<u64> = b_runs.keys().copied().collect();
            out.failing.push(Failure {
                cell: cell.clone(),
                seed: None,
                rule: Rule::MissingInNew,
                detail: format!("in baseline ({}), not in new", seed_list(&seeds)),
            });
            out.missing.push(CellRuns {
                cell: cell.clone(),
                seeds,
                whole: true,
            });
            continue;
        };
        let row = compare_row(cell, b_runs, n_runs, &base, &newc, opts, &mut out)?;
        out.rows.push(row);
    }
    out.notes.extend(machine_note(baseline, new));
    for (cell, n_runs) in &newc {
        if !base.contains_key(cell) {
            out.extra.push(CellRuns {
                cell: cell.clone(),
                seeds: n_runs.keys().copied().collect(),
                whole: true,
            });
        }
    }
    let with_ex: Vec<usize> = (0..out.rows.len())
        .filter(|&i| out.rows[i].ex.is_some())
        .collect();
    let raw: Vec<f64> = with_ex
        .iter()
        .filter_map(|&i| out.rows[i].ex.map(|e| e.paired.p_value))
        .collect();
    for (&i, p) in with_ex.iter().zip(holm(&raw)) {
        out.rows[i].ex_p_holm = Some(p);
    }
    Ok(out)
}

fn check_options(o: &CompareOptions) -> Result<(), CompareError> {
    let bad = |name, value: String, expected| {
        Err(CompareError::InvalidOption {
            name,
            value,
            expected,
        })
    };
    if !(o.alpha > 0.0 && o.alpha <= 1.0) {
        return bad("alpha", o.alpha.to_string(), "expected a value in (0, 1]");
    }
    if !(o.level > 0.0 && o.level < 1.0) {
        return bad("level", o.level.to_string(), "expected a value in (0, 1)");
    }
    if !(o.max_ex_drop >= 0.0 && o.max_ex_drop.is_finite()) {
        return bad(
            "max_ex_drop",
            o.max_ex_drop.to_string(),
            "expected a finite number of points ≥ 0",
        );
    }
    if !(o.max_latency_growth >= 0.0 && o.max_latency_growth.is_finite()) {
        return bad(
            "max_latency_growth",
            o.max_latency_growth.to_string(),
            "expected a finite fraction ≥ 0 (0.10 = 10 %)",
        );
    }
    if o.resamples == 0 {
        return bad("resamples", "0".into(), "expected at least 1");
    }
    Ok(())
}

/// Groups one side's records by row and seed, checking each scored record's verdicts.
fn cells(records: &[Loaded], side: Side) -> Result<Cells<'_>, CompareError> {
    if records.is_empty() {
        return Err(CompareError::NoRecords { side });
    }
    let mut out: Cells<'_> = BTreeMap::new();
    for l in records {
        if matches!(l.record.outcome, Outcome::Scored(_)) {
            if l.verdicts.is_empty() {
                return Err(CompareError::NoVerdicts {
                    path: l.path.clone(),
                });
            }
            let mut seen = BTreeSet::new();
            if let Some(v) = l.verdicts.iter().find(|v| !seen.insert(v.id.as_str())) {
                return Err(CompareError::RepeatedQuestion {
                    path: l.path.clone(),
                    id: v.id.clone(),
                });
            }
        }
        let cell = l.record.key.without_seed();
        let seed = l.record.key.seed;
        let runs = out.entry(cell.clone()).or_default();
        match runs.get(&seed) {
            None => {
                runs.insert(seed, l);
            }
            Some(first)
                if first.record.outcome == l.record.outcome && first.verdicts == l.verdicts => {}
            Some(first) => {
                return Err(CompareError::DuplicateRun {
                    side,
                    cell: cell_name(&cell),
                    seed,
                    first: first.path.clone(),
                    second: l.path.clone(),
                })
            }
        }
    }
    Ok(out)
}

fn scored(l: &Loaded) -> Option<&Scored> {
    match &l.record.outcome {
        Outcome::Scored(s) => Some(s),
        Outcome::Failed { .. } => None,
    }
}

fn seed_list(seeds: &[u64]) -> String {
    let s: Vec<String> = seeds.iter().map(u64::to_string).collect();
    match seeds.len() {
        1 => format!("seed {}", s[0]),
        _ => format!("seeds {}", s.join(", ")),
    }
}

#[allow(clippy::too_many_arguments)]
fn compare_row(
    cell: &RecordKey,
    b_runs: &BTreeMap<u64, &Loaded>,
    n_runs: &BTreeMap<u64, &Loaded>,
    base: &Cells<'_>,
    newc: &Cells<'_>,
    opts: &CompareOptions,
    out: &mut Comparison,
) -> Result<Row, CompareError> {
    let name = cell_name(cell);
    let fail = |out: &mut Comparison, seed, rule, detail| {
        out.failing.push(Failure {
            cell: cell.clone(),
            seed,
            rule,
            detail,
        })
    };

    let missing: Vec<u64> = b_runs
        .keys()
        .filter(|s| !n_runs.contains_key(s))
        .copied()
        .collect();
    for &s in &missing {
        fail(
            out,
            Some(s),
            Rule::MissingInNew,
            "in baseline, not in new".into(),
        );
    }
    if !missing.is_empty() {
        out.missing.push(CellRuns {
            cell: cell.clone(),
            seeds: missing,
            whole: false,
        });
    }
    let extra: Vec<u64> = n_runs
        .keys()
        .filter(|s| !b_runs.contains_key(s))
        .copied()
        .collect();
    if !extra.is_empty() {
        out.extra.push(CellRuns {
            cell: cell.clone(),
            seeds: extra,
            whole: false,
        });
    }

    // Seeds on both sides, by outcome.
    let mut pairs: Vec<(u64, &Loaded, &Loaded)> = Vec::new();
    for (&s, b) in b_runs {
        let Some(n) = n_runs.get(&s) else { continue };
        match (&b.record.outcome, &n.record.outcome) {
            (Outcome::Scored(_), Outcome::Scored(_)) => pairs.push((s, b, n)),
            (Outcome::Scored(_), Outcome::Failed { error }) => fail(
                out,
                Some(s),
                Rule::FailedInNew,
                format!(
                    "scored in baseline, failed in new ({}): {error}",
                    n.path.display()
                ),
            ),
            (Outcome::Failed { .. }, Outcome::Scored(_)) => out.notes.push(format!(
                "{name}, seed {s}: failed in baseline, scored in new"
            )),
            (Outcome::Failed { .. }, Outcome::Failed { error }) => out.notes.push(format!(
                "{name}, seed {s}: failed on both sides (new: {error})"
            )),
        }
    }

    let mut row = Row {
        cell: cell.clone(),
        seeds: pairs.iter().map(|p| p.0).collect(),
        questions: 0,
        baseline_only_questions: 0,
        new_only_questions: 0,
        ex: None,
        ex_p_holm: None,
        ts: None,
        latency: Latency::NotApplicable,
    };
    let latency_applies = cell.role == Role::Method && cell.method != "sft";
    if pairs.is_empty() {
        if latency_applies {
            row.latency = Latency::NotComparable {
                reason: "no seed scored on both sides".into(),
            };
        }
        return Ok(row);
    }

    // Questions common to every compared run.
    let index = |l: &Loaded| -> BTreeMap<String, usize> {
        l.verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.clone(), i))
            .collect()
    };
    let b_idx: Vec<BTreeMap<String, usize>> = pairs.iter().map(|p| index(p.1)).collect();
    let n_idx: Vec<BTreeMap<String, usize>> = pairs.iter().map(|p| index(p.2)).collect();
    let mut all = b_idx.iter().chain(&n_idx);
    let first: BTreeSet<&str> = all
        .next()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let common: BTreeSet<&str> = all.fold(first, |acc, m| {
        acc.into_iter().filter(|id| m.contains_key(*id)).collect()
    });
    let outside = |idx: &[BTreeMap<String, usize>]| -> usize {
        idx.iter()
            .flat_map(|m| m.keys().map(String::as_str))
            .filter(|id| !common.contains(id))
            .collect::<BTreeSet<&str>>()
            .len()
    };
    row.questions = common.len();
    row.baseline_only_questions = outside(&b_idx);
    row.new_only_questions = outside(&n_idx);

    if common.is_empty() {
        fail(
            out,
            None,
            Rule::NoCommonQuestions,
            format!(
                "the compared runs ({}) share no question id",
                seed_list(&row.seeds)
            ),
        );
    } else {
        // verdicts[side][seed][question] over the common questions, in id order.
        let pick = |idx: &[BTreeMap<String, usize>],
                    runs: &[&Loaded],
                    f: &dyn Fn(&QuestionVerdict) -> Option<bool>|
         -> Option<Vec<Vec<bool>>> {
            idx.iter()
                .zip(runs)
                .map(|(m, l)| common.iter().map(|id| f(&l.verdicts[m[*id]])).collect())
                .collect()
        };
        let b_loaded: Vec<&Loaded> = pairs.iter().map(|p| p.1).collect();
        let n_loaded: Vec<&Loaded> = pairs.iter().map(|p| p.2).collect();
        let metric = |f: &dyn Fn(&QuestionVerdict) -> Option<bool>| {
            let (Some(a), Some(b)) = (pick(&b_idx, &b_loaded, f), pick(&n_idx, &n_loaded, f))
            else {
                return Ok(None);
            };
            let paired = paired_comparison(&a, &b, opts.level, opts.resamples, opts.seed).map_err(
                |source| CompareError::Stats {
                    cell: name.clone(),
                    source,
                },
            )?;
            Ok(Some(MetricDiff {
                baseline: mean_accuracy(&a),
                new: mean_accuracy(&b),
                paired,
            }))
        };
        row.ex = metric(&|v| Some(v.ex))?;
        row.ts = metric(&|v| v.ts)?;
        if let Some(ex) = row.ex {
            let drop = ex.drop_points();
            if drop > opts.max_ex_drop && ex.paired.p_value < opts.alpha {
                fail(
                    out,
                    None,
                    Rule::ExDrop,
                    format!(
                        "EX {:.1} % → {:.1} %: drop of {drop:.2} points > {} allowed, p = {} < {} \
                         ({}, {}, {} questions)",
                        100.0 * ex.baseline,
                        100.0 * ex.new,
                        opts.max_ex_drop,
                        format_p(ex.paired.p_value),
                        opts.alpha,
                        test_name(&ex.paired),
                        seed_list(&row.seeds),
                        row.questions
                    ),
                );
            }
        }
    }

    if latency_applies {
        row.latency = latency(cell, &row.seeds, b_runs, n_runs, base, newc);
        match &row.latency {
            Latency::NotComparable { reason } => out
                .notes
                .push(format!("{name}: latency not comparable ({reason})")),
            Latency::Compared { baseline, new, .. } => {
                if *new > baseline * (1.0 + opts.max_latency_growth) {
                    fail(
                        out,
                        None,
                        Rule::LatencyGrowth,
                        format!(
                            "seconds per step relative to sft {baseline:.3}× → {new:.3}×: \
                             growth of {:.1} % > {:.1} % allowed",
                            100.0 * (new / baseline - 1.0),
                            100.0 * opts.max_latency_growth
                        ),
                    );
                }
            }
            Latency::NotApplicable => {}
        }
    }
    Ok(row)
}

/// Mean over seeds of each seed's fraction right.
fn mean_accuracy(runs: &[Vec<bool>]) -> f64 {
    runs.iter()
        .map(|r| r.iter().filter(|&&x| x).count() as f64 / r.len() as f64)
        .sum::<f64>()
        / runs.len() as f64
}

pub(crate) fn format_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

pub(crate) fn test_name(p: &Paired) -> &'static str {
    match p.test {
        kidbench_stats::PairedTest::McNemarExact => "McNemar exact",
        kidbench_stats::PairedTest::PairedBootstrap => "paired bootstrap",
    }
}

/// The sft run a method's latency is measured against: same side, same key but
/// `method = "sft"` and no params.
fn sft_cell(cell: &RecordKey) -> RecordKey {
    RecordKey {
        method: "sft".into(),
        params: BTreeMap::new(),
        ..cell.clone()
    }
}

/// Per seed, `seconds_per_step / sft seconds_per_step` on one side, or why there is none.
fn ratios(
    seeds: &[u64],
    runs: &BTreeMap<u64, &Loaded>,
    side_cells: &Cells<'_>,
    sft: &RecordKey,
    side: Side,
) -> Result<BTreeMap<u64, f64>, String> {
    let Some(sft_runs) = side_cells.get(sft) else {
        return Err(format!("no sft on {side}"));
    };
    let mut out = BTreeMap::new();
    let mut why = format!("no sft on {side} for {}", seed_list(seeds));
    for &s in seeds {
        let step = |l: &Loaded| {
            scored(l)
                .and_then(|x| x.training.as_ref())
                .map(|t| t.seconds_per_step)
                .filter(|x| x.is_finite() && *x > 0.0)
        };
        let Some(m) = runs.get(&s).and_then(|l| step(l)) else {
            why = format!("no seconds per step for the method on {side}");
            continue;
        };
        match sft_runs.get(&s) {
            Some(l) if scored(l).is_none() => why = format!("sft failed on {side}"),
            Some(l) => match step(l) {
                Some(base) => {
                    out.insert(s, m / base);
                }
                None => why = format!("no seconds per step for sft on {side}"),
            },
            None => {}
        }
    }
    if out.is_empty() {
        Err(why)
    } else {
        Ok(out)
    }
}

fn latency(
    cell: &RecordKey,
    seeds: &[u64],
    b_runs: &BTreeMap<u64, &Loaded>,
    n_runs: &BTreeMap<u64, &Loaded>,
    base: &Cells<'_>,
    newc: &Cells<'_>,
) -> Latency {
    let sft = sft_cell(cell);
    let b = ratios(seeds, b_runs, base, &sft, Side::Baseline);
    let n = ratios(seeds, n_runs, newc, &sft, Side::New);
    let (b, n) = match (b, n) {
        (Err(reason), _) | (_, Err(reason)) => return Latency::NotComparable { reason },
        (Ok(b), Ok(n)) => (b, n),
    };
    let both: Vec<u64> = b.keys().filter(|s| n.contains_key(s)).copied().collect();
    if both.is_empty() {
        return Latency::NotComparable {
            reason: "no seed with an sft ratio on both sides".into(),
        };
    }
    let mean = |m: &BTreeMap<u64, f64>| both.iter().map(|s| m[s]).sum::<f64>() / both.len() as f64;
    Latency::Compared {
        baseline: mean(&b),
        new: mean(&n),
        seeds: both.len(),
    }
}

#[cfg(test)]
mod tests;
