//! `report.csv`: every figure of the report in long format, one line per (setting, row,
//! benchmark, hardness, metric[, step]), in the report's order.

use kidbench_results::Role;
use kidbench_stats::{Accuracy, CiMethod, Interval, PairedTest};

use crate::summary::{params_text, Delta, RowSummary, SettingSummary, Summary};
use crate::ReportOptions;

/// The columns of `report.csv`:
///
/// - `teacher, student, student_warmup, budget`: the setting (warmup empty when none);
/// - `role` (`teacher`, `student_init`, `method`), `method`, `params` (`k=v;k=v`, known
///   defaults left out);
/// - `benchmark` (`avg` for figures over the setting's benchmarks), `hardness` (`all`, `easy`,
///   `medium`, `hard`, `extra`);
/// - `metric`: `ex`, `ts`, `delta_ex_vs_<baseline>`, `delta_ex_vs_rewrite` (Table 5),
///   `latency_vs_<baseline>` (only with timings), `flops`, `curve_ex` (one line per `step`);
/// - `step`: the training step of a `curve_ex` line, else empty;
/// - `mean, lo, hi`: the figure and its interval: fractions in [0, 1] for `ex`, `ts`,
///   `curve_ex`, differences of fractions for `delta_*`, a ratio for `latency_*`, FLOPs for
///   `flops` (`lo`, `hi` empty where there is no interval);
/// - `level`: the interval's confidence level; `ci`: `t_over_seeds`,
///   `bootstrap_over_questions`, `paired_bootstrap`, `bootstrap_mcnemar`, or empty;
/// - `seeds, questions`: what the figure rests on (`questions` empty for latency and FLOPs;
///   `seeds` counts the ratios behind a latency);
/// - `p, p_holm`: the paired test's p-value and its Holm correction (`delta_*` only).
pub const CSV_COLUMNS: [&str; 20] = [
    "teacher",
    "student",
    "student_warmup",
    "budget",
    "role",
    "method",
    "params",
    "benchmark",
    "hardness",
    "metric",
    "step",
    "mean",
    "lo",
    "hi",
    "level",
    "ci",
    "seeds",
    "questions",
    "p",
    "p_holm",
];

/// Quotes a field when it needs it (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{:.6}", x + 0.0)
    } else {
        String::new()
    }
}

fn sci(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6e}")
    } else {
        String::new()
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Teacher => "teacher",
        Role::StudentInit => "student_init",
        Role::Method => "method",
    }
}

fn ci_name(m: CiMethod) -> &'static str {
    match m {
        CiMethod::TOverSeeds => "t_over_seeds",
        CiMethod::BootstrapOverQuestions => "bootstrap_over_questions",
    }
}

/// The figure part of one line: `metric .. p_holm`.
struct Figure {
    metric: String,
    step: String,
    mean: String,
    interval: Option<Interval>,
    ci: &'static str,
    seeds: usize,
    /// Empty for figures that are not over questions (latency, FLOPs).
    questions: Option<usize>,
    p: Option<(f64, f64)>,
}

impl Figure {
    fn acc(metric: &str, a: &Accuracy) -> Figure {
        Figure {
            metric: metric.into(),
            step: String::new(),
            mean: num(a.mean),
            interval: Some(a.ci),
            ci: ci_name(a.method),
            seeds: a.seeds,
            questions: Some(a.questions),
            p: None,
        }
    }

    fn delta(metric: String, d: &Delta) -> Figure {
        Figure {
            metric,
            step: String::new(),
            mean: num(d.paired.diff.estimate),
            interval: Some(d.paired.diff),
            ci: match d.paired.test {
                PairedTest::PairedBootstrap => "paired_bootstrap",
                PairedTest::McNemarExact => "bootstrap_mcnemar",
            },
            seeds: d.paired.seeds,
            questions: Some(d.paired.questions),
            p: Some((d.paired.p_value, d.p_holm)),
        }
    }
}

struct Writer<'a> {
    out: String,
    setting: &'a SettingSummary,
}

impl Writer<'_> {
    fn line(&mut self, row: &RowSummary, bench: &str, hardness: &str, f: Figure) {
        let s = &self.setting.setting;
        let (lo, hi, level) = match f.interval {
            Some(i) => (num(i.lo), num(i.hi), num(i.level)),
            None => (String::new(), String::new(), String::new()),
        };
        let (p, ph) = match f.p {
            Some((p, ph)) => (num(p), num(ph)),
            None => (String::new(), String::new()),
        };
        let fields = [
            field(&s.teacher),
            field(&s.student),
            s.student_warmup.map(|w| w.to_string()).unwrap_or_default(),
            field(&s.budget),
            role(row.id.role).to_string(),
            field(&row.id.method),
            field(&params_text(&row.id.params, ";")),
            field(bench),
            hardness.to_string(),
            field(&f.metric),
            f.step,
            f.mean,
            lo,
            hi,
            level,
            f.ci.to_string(),
            f.seeds.to_string(),
            f.questions.map(|q| q.to_string()).unwrap_or_default(),
            p,
            ph,
        ];
        self.out.push_str(&fields.join(","));
        self.out.push('\n');
    }
}

/// The whole of `report.csv`.
pub(crate) fn render(s: &Summary, opts: &ReportOptions) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for st in &s.settings {
        let mut w = Writer {
            out: String::new(),
            setting: st,
        };
        for (i, row) in st.rows.iter().enumerate() {
            for (bench, b) in &row.bench {
                w.line(row, bench, "all", Figure::acc("ex", &b.ex));
                for (level, a) in &b.hardness {
                    w.line(row, bench, level, Figure::acc("ex", a));
                }
                if let Some(ts) = &b.ts {
                    w.line(row, bench, "all", Figure::acc("ts", ts));
                }
                if let Some(d) = &b.delta {
                    let m = format!("delta_ex_vs_{}", opts.baseline);
                    w.line(row, bench, "all", Figure::delta(m, d));
                }
                for a in &st.ablations {
                    if let (Some(k), Some(ds)) = (
                        a.variants.iter().position(|(_, r)| *r == i),
                        a.deltas.get(bench),
                    ) {
                        if let Some(d) = &ds[k] {
                            w.line(
                                row,
                                bench,
                                "all",
                                Figure::delta("delta_ex_vs_rewrite".into(), d),
                            );
                        }
                    }
                }
                if opts.timings {
                    if let Some(l) = &b.latency {
                        w.line(
                            row,
                            bench,
                            "all",
                            Figure {
                                metric: format!("latency_vs_{}", opts.baseline),
                                step: String::new(),
                                mean: num(l.mean),
                                interval: l.ci,
                                ci: if l.ci.is_some() { "t_over_seeds" } else { "" },
                                seeds: l.n,
                                questions: None,
                                p: None,
                            },
                        );
                    }
                }
                if let Some(f) = b.flops {
                    w.line(
                        row,
                        bench,
                        "all",
                        Figure {
                            metric: "flops".into(),
                            step: String::new(),
                            mean: sci(f),
                            interval: None,
                            ci: "",
                            seeds: b.seeds.len(),
                            questions: None,
                            p: None,
                        },
                    );
                }
                for c in &b.curve {
                    w.line(
                        row,
                        bench,
                        "all",
                        Figure {
                            metric: "curve_ex".into(),
                            step: c.step.to_string(),
                            mean: num(c.ex),
                            interval: None,
                            ci: "",
                            seeds: c.seeds,
                            questions: Some(c.questions),
                            p: None,
                        },
                    );
                }
            }
            if st.benchmarks.len() > 1 {
                if let Some(a) = row.avg_ex {
                    w.line(
                        row,
                        "avg",
                        "all",
                        Figure {
                            metric: "ex".into(),
                            step: String::new(),
                            mean: num(a.estimate),
                            interval: Some(a),
                            ci: "",
                            seeds: row.seeds().len(),
                            questions: Some(row.bench.values().map(|b| b.ex.questions).sum()),
                            p: None,
                        },
                    );
                }
            }
        }
        out.push_str(&w.out);
    }
    out
}
