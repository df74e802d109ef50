//! The one statistics module the output formats (markdown, CSV, charts) read: records grouped
//! into settings and rows, each row's runs paired by seed and question id, and every figure the
//! report prints computed once here.
//!
//! - A *setting* is (teacher, student, student warmup, budget): one table.
//! - A *row* is one method configuration of a setting: the record key without seed and
//!   benchmark (role, method, parameters with known defaults dropped).
//! - A row's *runs* on a benchmark are its scored records, one per seed.

use std::collections::{BTreeMap, BTreeSet};

use kidbench_results::{
    CurvePoint, Loaded, Outcome, QuestionVerdict, RecordKey, Role, Scored, Training,
};
use kidbench_stats::{
    accuracy, holm, paired_comparison, t_interval, Accuracy, CiMethod, Interval, Paired, PairedTest,
};

use crate::{ReportError, ReportOptions};

/// Spider hardness levels, in table order.
pub(crate) const HARDNESS: [&str; 4] = ["easy", "medium", "hard", "extra"];

/// Method order of the paper's tables; other methods follow alphabetically.
const METHOD_ORDER: [&str; 7] = ["sft", "fkd", "rkd", "fdistill", "imitkd", "gkd", "kid"];

/// Defaults of the parameters the report reads (`kid`'s, from its plugin). A parameter equal to
/// its default is dropped, so a record that stores defaults and one that leaves them out are the
/// same row.
const KNOWN_DEFAULTS: [(&str, &str, &str); 8] = [
    ("kid", "alpha", "0.2"),
    ("kid", "strategy", "random"),
    ("kid", "fill", "argmax"),
    ("kid", "mask_only", "false"),
    ("kid", "vanilla", "false"),
    ("kid", "temperature", "1"),
    ("kid", "mle_weight", "1"),
    ("kid", "mle", "imperfect"),
];

/// The default value of `method`'s parameter `name`, when the report knows it.
pub(crate) fn known_default(method: &str, name: &str) -> Option<&'static str> {
    KNOWN_DEFAULTS
        .iter()
        .find(|(m, n, _)| *m == method && *n == name)
        .map(|(_, _, v)| *v)
}

/// Two parameter values are equal as numbers when both parse, else as text.
fn same_value(a: &str, b: &str) -> bool {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim() == b.trim(),
    }
}

/// `params` without the entries equal to their known default.
pub(crate) fn normalize_params(
    method: &str,
    params: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    params
        .iter()
        .filter(|(k, v)| !known_default(method, k).is_some_and(|d| same_value(d, v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One table of the report: the students' setting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Setting {
    pub teacher: String,
    pub student: String,
    pub student_warmup: Option<usize>,
    pub budget: String,
}

impl Setting {
    fn of(key: &RecordKey) -> Setting {
        Setting {
            teacher: key.teacher.clone(),
            student: key.student.clone(),
            student_warmup: key.student_warmup,
            budget: key.budget.clone(),
        }
    }

    /// Whether a teacher or student-init record belongs in this setting's table: its empty
    /// fields (a teacher has no student or budget) match any value.
    fn admits(&self, key: &RecordKey) -> bool {
        let student = key.student.is_empty() || key.student == self.student;
        let budget = key.budget.is_empty() || key.budget == self.budget;
        let warmup = match key.role {
            Role::Teacher => true,
            _ => key.student_warmup.is_none() || key.student_warmup == self.student_warmup,
        };
        key.teacher == self.teacher && student && budget && warmup
    }

    /// `teacher tiny-m → student tiny-s (warmup 10 steps), budget steps=150`.
    pub fn title(&self) -> String {
        let mut s = format!("teacher {}", or_dash(&self.teacher));
        if !self.student.is_empty() {
            s.push_str(&format!(" → student {}", self.student));
        }
        if let Some(w) = self.student_warmup {
            s.push_str(&format!(" (warmup {w} steps)"));
        }
        if !self.budget.is_empty() {
            s.push_str(&format!(", budget {}", self.budget));
        }
        s
    }

    /// A file-name-safe form of the title.
    pub fn slug(&self) -> String {
        let mut parts = vec![self.teacher.clone(), self.student.clone()];
        if let Some(w) = self.student_warmup {
            parts.push(format!("w{w}"));
        }
        parts.push(self.budget.clone());
        let raw = parts
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("_");
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "–"
    } else {
        s
    }
}

/// One method configuration: the record key without seed, benchmark and setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowId {
    pub role: Role,
    pub method: String,
    /// Parameters with known defaults dropped.
    pub params: BTreeMap<String, String>,
}

impl RowId {
    fn of(key: &RecordKey) -> RowId {
        RowId {
            role: key.role,
            method: key.method.clone(),
            params: normalize_params(&key.method, &key.params),
        }
    }

    fn sort_key(&self) -> (Role, usize, &str, &BTreeMap<String, String>) {
        let rank = METHOD_ORDER
            .iter()
            .position(|m| *m == self.method)
            .unwrap_or(METHOD_ORDER.len());
        (self.role, rank, &self.method, &self.params)
    }

    /// `kid (alpha=0.3, strategy=hard)`, `sft`, `teacher`, `student init`.
    pub fn label(&self) -> String {
        let name = match self.role {
            Role::Teacher => "teacher".to_string(),
            Role::StudentInit => "student init".to_string(),
            Role::Method => self.method.clone(),
        };
        if self.params.is_empty() {
            name
        } else {
            format!("{name} ({})", params_text(&self.params, ", "))
        }
    }

    /// The value of a parameter, its known default when absent.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params
            .get(name)
            .cloned()
            .or_else(|| known_default(&self.method, name).map(str::to_string))
    }

    pub fn is_method(&self) -> bool {
        self.role == Role::Method
    }
}

/// `k=v` pairs joined by `sep`.
pub(crate) fn params_text(params: &BTreeMap<String, String>, sep: &str) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// A scored record as one run of a row.
#[derive(Debug, Clone, Copy)]
struct Run<'a> {
    scored: &'a Scored,
    verdicts: &'a [QuestionVerdict],
}

type Runs<'a> = BTreeMap<u64, Run<'a>>;

/// A comparison of a row against a reference row on one benchmark.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    /// `acc(row) - acc(reference)`, fractions.
    pub paired: Paired,
    /// Holm-corrected p-value across the comparisons of one table and benchmark.
    pub p_holm: f64,
}

/// A mean of ratios (latency), with a t interval when there are ≥ 2 of them.
#[derive(Debug, Clone)]
pub(crate) struct Ratio {
    pub mean: f64,
    pub ci: Option<Interval>,
    pub n: usize,
}

impl Ratio {
    fn of(values: &[f64], level: f64) -> Option<Ratio> {
        if values.is_empty() {
            return None;
        }
        Some(Ratio {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            ci: t_interval(values, level),
            n: values.len(),
        })
    }
}

/// A learning-curve point averaged over seeds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CurveMean {
    pub step: usize,
    /// Mean EX over the seeds that scored this step, in [0, 1].
    pub ex: f64,
    pub seeds: usize,
    pub questions: usize,
}

/// One row's figures on one benchmark.
#[derive(Debug, Clone)]
pub(crate) struct BenchStats {
    pub seeds: Vec<u64>,
    pub ex: Accuracy,
    pub ts: Option<Accuracy>,
    /// Per hardness level present in the verdicts, in [`HARDNESS`] order.
    pub hardness: Vec<(&'static str, Accuracy)>,
    /// Against the baseline (method rows other than the baseline).
    pub delta: Option<Delta>,
    /// Seconds per step over the baseline's, same seeds (when timings are reported).
    pub latency: Option<Ratio>,
    /// Mean estimated training FLOPs over the runs that recorded them.
    pub flops: Option<f64>,
    pub curve: Vec<CurveMean>,
}

/// One row of a setting's table.
#[derive(Debug, Clone)]
pub(crate) struct RowSummary {
    pub id: RowId,
    pub label: String,
    pub bench: BTreeMap<String, BenchStats>,
    /// Failed records of this row (any seed, any benchmark).
    pub failed: usize,
    /// Seconds per step over the baseline's, over every benchmark and seed both ran.
    pub latency: Option<Ratio>,
    /// EX averaged over the setting's benchmarks (present only when the row has every one),
    /// with a combined interval (benchmarks treated as independent: half-width
    /// `sqrt(Σ hw²) / B`); with one benchmark, that benchmark's EX interval.
    pub avg_ex: Option<Interval>,
    /// Mean estimated training FLOPs over all its runs.
    pub flops: Option<f64>,
    /// Mean seconds of work made once before training, outside the latency (fixed teacher
    /// samples), over the runs that had any.
    pub precompute: Option<f64>,
    /// Mean training seconds over the runs with training figures.
    pub train_seconds: Option<f64>,
}

impl RowSummary {
    /// Seeds of the row's EX figures, over its benchmarks.
    pub fn seeds(&self) -> BTreeSet<u64> {
        self.bench
            .values()
            .flat_map(|b| b.seeds.iter().copied())
            .collect()
    }
}

/// Table 5: KID's imperfect-data variants that differ only in `mask_only` / `vanilla`.
#[derive(Debug, Clone)]
pub(crate) struct Ablation {
    /// The family's other parameters (`alpha=0.3`), empty for the defaults.
    pub others: BTreeMap<String, String>,
    /// `(variant name, row index)`, rewrite first.
    pub variants: Vec<(&'static str, usize)>,
    /// Per benchmark, per variant (same order): Δ EX vs the rewrite variant (none for rewrite).
    pub deltas: BTreeMap<String, Vec<Option<Delta>>>,
}

pub(crate) const REWRITE: &str = "rewrite (KID)";
pub(crate) const MASK_ONLY: &str = "mask-only";
pub(crate) const VANILLA: &str = "vanilla";

/// Everything about one setting.
#[derive(Debug, Clone)]
pub(crate) struct SettingSummary {
    pub setting: Setting,
    pub benchmarks: Vec<String>,
    pub rows: Vec<RowSummary>,
    /// Index of the baseline row, when the setting has one.
    pub baseline: Option<usize>,
    pub ablations: Vec<Ablation>,
}

impl SettingSummary {
    /// Questions per benchmark, over the rows (`min..=max`, equal when every row has the same).
    pub fn questions(&self, bench: &str) -> (usize, usize) {
        let q: Vec<usize> = self
            .rows
            .iter()
            .filter_map(|r| r.bench.get(bench).map(|b| b.ex.questions))
            .collect();
        (
            q.iter().copied().min().unwrap_or(0),
            q.iter().copied().max().unwrap_or(0),
        )
    }

    pub fn baseline_row(&self) -> Option<&RowSummary> {
        self.baseline.map(|i| &self.rows[i])
    }
}

/// A failed record, listed and left out of the statistics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FailedRun {
    pub setting: Setting,
    pub row: String,
    pub benchmark: String,
    pub seed: u64,
    pub label: String,
    pub error: String,
}

/// The statistics of a whole report.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub records: usize,
    pub scored: usize,
    pub plans: usize,
    pub settings: Vec<SettingSummary>,
    pub failed: Vec<FailedRun>,
    /// What the data made the report leave out or choose (duplicates, runs without verdicts).
    pub notes: Vec<String>,
    /// The machines that made the scored records ([`kidbench_results::Machine::summary`]),
    /// with how many records each made.
    pub machines: BTreeMap<String, usize>,
    /// Scored records that do not say their machine (written before records said).
    pub machine_unknown: usize,
}

/// Question ids sort as numbers when they are numbers.
fn id_order(id: &str) -> (bool, u64, &str) {
    match id.parse::<u64>() {
        Ok(n) => (false, n, id),
        Err(_) => (true, 0, id),
    }
}

/// The question ids every run holds, in id order.
fn common_ids<'a>(runs: impl IntoIterator<Item = &'a Run<'a>>) -> Vec<&'a str> {
    let mut common: Option<BTreeSet<&'a str>> = None;
    for r in runs {
        let ids: BTreeSet<&str> = r.verdicts.iter().map(|v| v.id.as_str()).collect();
        common = Some(match common {
            None => ids,
            Some(c) => c.intersection(&ids).copied().collect(),
        });
    }
    let mut v: Vec<&str> = common.unwrap_or_default().into_iter().collect();
    v.sort_by(|a, b| id_order(a).cmp(&id_order(b)));
    v
}

/// `runs[s][q]` of `pick(verdict)` over `ids`; `None` when a verdict lacks the figure.
fn matrix(
    runs: &[&Run],
    ids: &[&str],
    pick: impl Fn(&QuestionVerdict) -> Option<bool>,
) -> Option<Vec<Vec<bool>>> {
    runs.iter()
        .map(|r| {
            let by_id: BTreeMap<&str, &QuestionVerdict> =
                r.verdicts.iter().map(|v| (v.id.as_str(), v)).collect();
            ids.iter()
                .map(|id| by_id.get(id).and_then(|v| pick(v)))
                .collect()
        })
        .collect()
}

fn stats_err(what: String) -> impl FnOnce(kidbench_stats::StatsError) -> ReportError {
    move |source| ReportError::Stats { what, source }
}

/// Accuracy of `runs` over the ids they share.
fn row_bench_stats(
    what: &str,
    runs: &Runs,
    opts: &ReportOptions,
) -> Result<Option<BenchStats>, ReportError> {
    let list: Vec<&Run> = runs.values().collect();
    let ids = common_ids(list.iter().copied());
    if ids.is_empty() {
        return Ok(None);
    }
    let acc = |m: &[Vec<bool>], part: &str| {
        accuracy(m, opts.level, opts.resamples, opts.seed)
            .map_err(stats_err(format!("{what}: {part}")))
    };
    let ex_m = matrix(&list, &ids, |v| Some(v.ex)).unwrap_or_default();
    let ex = acc(&ex_m, "EX")?;
    let ts = match matrix(&list, &ids, |v| v.ts) {
        Some(m) => Some(acc(&m, "TS")?),
        None => None,
    };
    // Hardness from the first run (the gold query's, the same in every run).
    let hardness_of: BTreeMap<&str, &str> = list[0]
        .verdicts
        .iter()
        .filter_map(|v| v.hardness.as_deref().map(|h| (v.id.as_str(), h)))
        .collect();
    let mut hardness = Vec::new();
    for level in HARDNESS {
        let sub: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| hardness_of.get(id) == Some(&level))
            .collect();
        if sub.is_empty() {
            continue;
        }
        let m = matrix(&list, &sub, |v| Some(v.ex)).unwrap_or_default();
        hardness.push((level, acc(&m, level)?));
    }
    let flops: Vec<f64> = list
        .iter()
        .filter_map(|r| r.scored.training.as_ref().map(|t| t.ledger.flops))
        .filter(|f| *f > 0.0)
        .collect();
    let flops = (!flops.is_empty()).then(|| flops.iter().sum::<f64>() / flops.len() as f64);
    Ok(Some(BenchStats {
        seeds: runs.keys().copied().collect(),
        ex,
        ts,
        hardness,
        delta: None,
        latency: None,
        flops,
        curve: curve_mean(list.iter().map(|r| r.scored.curve.as_slice())),
    }))
}

/// Learning curves averaged per step over the runs that scored that step.
fn curve_mean<'a>(curves: impl Iterator<Item = &'a [CurvePoint]>) -> Vec<CurveMean> {
    let mut by_step: BTreeMap<usize, (Vec<f64>, usize)> = BTreeMap::new();
    for c in curves {
        for p in c {
            let e = by_step.entry(p.step).or_default();
            e.0.push(p.ex);
            e.1 = e.1.max(p.questions);
        }
    }
    by_step
        .into_iter()
        .map(|(step, (ex, questions))| CurveMean {
            step,
            ex: ex.iter().sum::<f64>() / ex.len() as f64,
            seeds: ex.len(),
            questions,
        })
        .collect()
}

/// `b` against `a` (`acc(b) - acc(a)`), paired by the seeds both ran and the ids all runs hold.
fn compare(
    what: &str,
    a: &Runs,
    b: &Runs,
    opts: &ReportOptions,
) -> Result<Option<Delta>, ReportError> {
    let seeds: Vec<u64> = a.keys().filter(|s| b.contains_key(s)).copied().collect();
    if seeds.is_empty() {
        return Ok(None);
    }
    let ra: Vec<&Run> = seeds.iter().map(|s| &a[s]).collect();
    let rb: Vec<&Run> = seeds.iter().map(|s| &b[s]).collect();
    let ids = common_ids(ra.iter().chain(rb.iter()).copied());
    if ids.is_empty() {
        return Ok(None);
    }
    let ma = matrix(&ra, &ids, |v| Some(v.ex)).unwrap_or_default();
    let mb = matrix(&rb, &ids, |v| Some(v.ex)).unwrap_or_default();
    let paired = paired_comparison(&ma, &mb, opts.level, opts.resamples, opts.seed)
        .map_err(stats_err(what.to_string()))?;
    Ok(Some(Delta {
        p_holm: paired.p_value,
        paired,
    }))
}

/// The mean of `v`, `None` when it is empty.
fn mean_of(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Seconds per step of `b` over `a`'s, per seed both ran with training figures.
fn latency_ratios(a: &Runs, b: &Runs) -> Vec<f64> {
    let sps = |r: &Run| {
        r.scored
            .training
            .as_ref()
            .map(|t| t.seconds_per_step)
            .filter(|s| *s > 0.0 && s.is_finite())
    };
    a.iter()
        .filter_map(|(seed, ra)| {
            let rb = b.get(seed)?;
            Some(sps(rb)? / sps(ra)?)
        })
        .collect()
}

/// Holm-corrects the p-values of `deltas` (those present) in place.
fn holm_in_place<'a>(deltas: impl Iterator<Item = &'a mut Delta>) {
    let mut ds: Vec<&mut Delta> = deltas.collect();
    let p: Vec<f64> = ds.iter().map(|d| d.paired.p_value).collect();
    for (d, q) in ds.iter_mut().zip(holm(&p)) {
        d.p_holm = q;
    }
}

/// Collected runs: setting -> row -> benchmark -> seed -> run.
type Cells<'a> = BTreeMap<Setting, Vec<(RowId, BTreeMap<String, Runs<'a>>)>>;

fn row_slot<'c, 'a>(
    rows: &'c mut Vec<(RowId, BTreeMap<String, Runs<'a>>)>,
    id: &RowId,
) -> &'c mut BTreeMap<String, Runs<'a>> {
    let i = match rows.iter().position(|(r, _)| r == id) {
        Some(i) => i,
        None => {
            rows.push((id.clone(), BTreeMap::new()));
            rows.len() - 1
        }
    };
    &mut rows[i].1
}

/// Groups `records` and computes every figure of the report.
pub(crate) fn summarize(records: &[Loaded], opts: &ReportOptions) -> Result<Summary, ReportError> {
    // A fixed order, whatever order the folders were walked in.
    let mut order: Vec<&Loaded> = records.iter().collect();
    order.sort_by(|a, b| {
        (&a.record.key, &a.record.plan_hash, &a.record.label).cmp(&(
            &b.record.key,
            &b.record.plan_hash,
            &b.record.label,
        ))
    });
    let mut notes = Vec::new();
    let mut machines: BTreeMap<String, usize> = BTreeMap::new();
    let mut machine_unknown = 0;
    let mut failed = Vec::new();
    let mut failed_rows: BTreeMap<(Setting, String), usize> = BTreeMap::new();
    let mut cells: Cells = BTreeMap::new();
    for l in &order {
        let k = &l.record.key;
        if k.role == Role::Method {
            cells.entry(Setting::of(k)).or_default();
        }
    }
    let mut plans = BTreeSet::new();
    let mut scored = 0;
    for l in &order {
        let k = &l.record.key;
        plans.insert(l.record.plan_hash.as_str());
        let id = RowId::of(k);
        let s = match &l.record.outcome {
            Outcome::Failed { error } => {
                failed.push(FailedRun {
                    setting: Setting::of(k),
                    row: id.label(),
                    benchmark: k.benchmark.clone(),
                    seed: k.seed,
                    label: l.record.label.clone(),
                    error: error.clone(),
                });
                *failed_rows.entry((Setting::of(k), id.label())).or_default() += 1;
                continue;
            }
            Outcome::Scored(s) => s,
        };
        scored += 1;
        match s.training.as_ref().and_then(|t| t.machine.as_ref()) {
            Some(m) => *machines.entry(m.summary()).or_default() += 1,
            None => machine_unknown += 1,
        }
        if l.verdicts.is_empty() {
            notes.push(format!(
                "{} (seed {}, {}, record {}) has no per-question verdicts: left out of the statistics",
                id.label(),
                k.seed,
                k.benchmark,
                l.record.label
            ));
            continue;
        }
        let targets: Vec<Setting> = if k.role == Role::Method {
            vec![Setting::of(k)]
        } else {
            let t: Vec<Setting> = cells.keys().filter(|s| s.admits(k)).cloned().collect();
            if t.is_empty() {
                vec![Setting::of(k)]
            } else {
                t
            }
        };
        let run = Run {
            scored: s,
            verdicts: &l.verdicts,
        };
        for setting in targets {
            let rows = cells.entry(setting).or_default();
            let slot = row_slot(rows, &id).entry(k.benchmark.clone()).or_default();
            match slot.get(&k.seed) {
                None => {
                    slot.insert(k.seed, run);
                }
                Some(prev) if prev.verdicts == run.verdicts => {}
                Some(_) => {
                    let note = format!(
                        "{} (seed {}, {}): more than one record with different verdicts; \
                         the report uses the first in key order, not record {} of plan {}",
                        id.label(),
                        k.seed,
                        k.benchmark,
                        l.record.label,
                        l.record.plan_hash
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
            }
        }
    }
    failed.sort();

    let mut settings = Vec::new();
    for (setting, mut rows) in cells {
        rows.sort_by(|a, b| a.0.sort_key().cmp(&b.0.sort_key()));
        let benchmarks: Vec<String> = rows
            .iter()
            .flat_map(|(_, b)| b.keys().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let baseline = {
            let cands: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].0.is_method() && rows[i].0.method == opts.baseline)
                .collect();
            cands
                .iter()
                .copied()
                .find(|&i| rows[i].0.params.is_empty())
                .or(cands.first().copied())
        };
        if let Some(b) = baseline {
            let n = rows
                .iter()
                .filter(|(r, _)| r.is_method() && r.method == opts.baseline)
                .count();
            if n > 1 {
                notes.push(format!(
                    "{}: {n} rows of the baseline method {}; Δ and latency are against {}",
                    setting.title(),
                    opts.baseline,
                    rows[b].0.label()
                ));
            }
        }
        let mut out_rows = Vec::new();
        for (id, benches) in &rows {
            let label = id.label();
            let mut bench = BTreeMap::new();
            for (name, runs) in benches {
                let what = format!("{} / {label} / {name}", setting.title());
                if let Some(mut st) = row_bench_stats(&what, runs, opts)? {
                    if let Some(b) = baseline.filter(|_| id.is_method()) {
                        if let Some(base_runs) = rows[b].1.get(name) {
                            if &rows[b].0 != id {
                                st.delta = compare(
                                    &format!("{what}: Δ vs {}", opts.baseline),
                                    base_runs,
                                    runs,
                                    opts,
                                )?;
                            }
                            if opts.timings {
                                st.latency =
                                    Ratio::of(&latency_ratios(base_runs, runs), opts.level);
                            }
                        }
                    }
                    bench.insert(name.clone(), st);
                }
            }
            let latency = if opts.timings && id.is_method() {
                baseline.and_then(|b| {
                    let all: Vec<f64> = benches
                        .iter()
                        .filter_map(|(name, runs)| {
                            rows[b].1.get(name).map(|br| latency_ratios(br, runs))
                        })
                        .flatten()
                        .collect();
                    Ratio::of(&all, opts.level)
                })
            } else {
                None
            };
            let avg_ex = average_ex(&bench, &benchmarks, opts.level);
            let trainings: Vec<&Training> = benches
                .values()
                .flat_map(|r| r.values())
                .filter_map(|r| r.scored.training.as_ref())
                .collect();
            let flops: Vec<f64> = trainings
                .iter()
                .map(|t| t.ledger.flops)
                .filter(|f| *f > 0.0)
                .collect();
            let flops = mean_of(&flops);
            let precompute: Vec<f64> = trainings
                .iter()
                .map(|t| t.time_split.precompute)
                .filter(|s| *s > 0.0)
                .collect();
            let train_seconds: Vec<f64> = trainings.iter().map(|t| t.train_seconds).collect();
            out_rows.push(RowSummary {
                precompute: mean_of(&precompute),
                train_seconds: mean_of(&train_seconds),
                failed: failed_rows
                    .get(&(setting.clone(), label.clone()))
                    .copied()
                    .unwrap_or(0),
                id: id.clone(),
                label,
                bench,
                latency,
                avg_ex,
                flops,
            });
        }
        for name in &benchmarks {
            holm_in_place(
                out_rows
                    .iter_mut()
                    .filter_map(|r| r.bench.get_mut(name).and_then(|b| b.delta.as_mut())),
            );
        }
        let ablations = ablations(&setting, &rows, &benchmarks, opts)?;
        settings.push(SettingSummary {
            setting,
            benchmarks,
            rows: out_rows,
            baseline,
            ablations,
        });
    }
    // Failed rows of a setting no scored record reached still show under "Failed runs".
    Ok(Summary {
        records: records.len(),
        scored,
        plans: plans.len(),
        settings,
        failed,
        notes,
        machines,
        machine_unknown,
    })
}

/// EX averaged over all `benchmarks` when the row has every one.
fn average_ex(
    bench: &BTreeMap<String, BenchStats>,
    benchmarks: &[String],
    level: f64,
) -> Option<Interval> {
    let per: Vec<&BenchStats> = benchmarks
        .iter()
        .map(|b| bench.get(b))
        .collect::<Option<_>>()?;
    match per.as_slice() {
        [] => None,
        [one] => Some(one.ex.ci),
        many => {
            let n = many.len() as f64;
            let est = many.iter().map(|b| b.ex.mean).sum::<f64>() / n;
            let hw = many
                .iter()
                .map(|b| b.ex.ci.half_width().powi(2))
                .sum::<f64>()
                .sqrt()
                / n;
            Some(Interval {
                estimate: est,
                lo: est - hw,
                hi: est + hw,
                level,
            })
        }
    }
}

/// Which ablation variant a kid row is.
fn variant(id: &RowId) -> &'static str {
    if id.param("vanilla").is_some_and(|v| v == "true") {
        VANILLA
    } else if id.param("mask_only").is_some_and(|v| v == "true") {
        MASK_ONLY
    } else {
        REWRITE
    }
}

/// Table 5 families: kid rows equal but for `mask_only` / `vanilla`, with the rewrite variant
/// and at least one other.
fn ablations(
    setting: &Setting,
    rows: &[(RowId, BTreeMap<String, Runs>)],
    benchmarks: &[String],
    opts: &ReportOptions,
) -> Result<Vec<Ablation>, ReportError> {
    let mut families: BTreeMap<BTreeMap<String, String>, Vec<(&'static str, usize)>> =
        BTreeMap::new();
    for (i, (id, _)) in rows.iter().enumerate() {
        if !id.is_method() || id.method != "kid" {
            continue;
        }
        let mut others = id.params.clone();
        others.remove("mask_only");
        others.remove("vanilla");
        let fam = families.entry(others).or_default();
        let v = variant(id);
        if !fam.iter().any(|(n, _)| *n == v) {
            fam.push((v, i));
        }
    }
    let mut out = Vec::new();
    for (others, mut variants) in families {
        let rank = |v: &str| [REWRITE, MASK_ONLY, VANILLA].iter().position(|x| *x == v);
        variants.sort_by_key(|(v, _)| rank(v));
        if variants.len() < 2 || variants[0].0 != REWRITE {
            continue;
        }
        let base = variants[0].1;
        let mut deltas = BTreeMap::new();
        for name in benchmarks {
            let mut per = Vec::new();
            for &(v, i) in &variants {
                let d = match (rows[base].1.get(name), rows[i].1.get(name)) {
                    (Some(a), Some(b)) if i != base => compare(
                        &format!("{} / kid {v} vs rewrite / {name}", setting.title()),
                        a,
                        b,
                        opts,
                    )?,
                    _ => None,
                };
                per.push(d);
            }
            holm_in_place(per.iter_mut().flatten());
            deltas.insert(name.clone(), per);
        }
        out.push(Ablation {
            others,
            variants,
            deltas,
        });
    }
    Ok(out)
}

/// A family of kid rows: the parameters they share, and `(value, row index)` per member.
pub(crate) type Family = (BTreeMap<String, String>, Vec<(String, usize)>);

/// Kid rows that differ only in `param`: `(the other parameters, [(value, row index)])`, each
/// family with at least two values, values in `order` (then as text).
pub(crate) fn families(s: &SettingSummary, param: &str) -> Vec<Family> {
    let mut fams: BTreeMap<BTreeMap<String, String>, Vec<(String, usize)>> = BTreeMap::new();
    for (i, r) in s.rows.iter().enumerate() {
        if !r.id.is_method() || r.id.method != "kid" || r.avg_ex.is_none() {
            continue;
        }
        let Some(value) = r.id.param(param) else {
            continue;
        };
        let mut others = r.id.params.clone();
        others.remove(param);
        fams.entry(others).or_default().push((value, i));
    }
    fams.into_iter()
        .filter(|(_, m)| m.iter().map(|(v, _)| v).collect::<BTreeSet<_>>().len() >= 2)
        .collect()
}

/// Which interval methods and paired tests a set of figures used (for the notes under tables).
#[derive(Debug, Default)]
pub(crate) struct MethodsUsed {
    pub t_over_seeds: bool,
    pub bootstrap: bool,
    pub mcnemar: bool,
    pub paired_bootstrap: bool,
}

impl MethodsUsed {
    pub fn acc(&mut self, a: &Accuracy) {
        match a.method {
            CiMethod::TOverSeeds => self.t_over_seeds = true,
            CiMethod::BootstrapOverQuestions => self.bootstrap = true,
        }
    }

    pub fn delta(&mut self, d: &Delta) {
        match d.paired.test {
            PairedTest::McNemarExact => self.mcnemar = true,
            PairedTest::PairedBootstrap => self.paired_bootstrap = true,
        }
    }
}
