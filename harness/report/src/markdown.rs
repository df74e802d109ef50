//! `report.md`: Table 3 per setting, Table 5 (KID ablation), failed runs, notes, charts.

use std::fmt::Write as _;

use crate::charts::Plan;
use crate::summary::{
    params_text, BenchStats, Delta, MethodsUsed, RowSummary, SettingSummary, Summary, HARDNESS,
};
use crate::ReportOptions;

/// `32.5` (a fraction as a percentage, one decimal).
pub(crate) fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0 + 0.0)
}

/// `+3.2` (points, sign always shown, no `-0.0`).
fn signed(x: f64) -> String {
    let r = (x * 1000.0).round() / 10.0 + 0.0;
    format!("{r:+.1}")
}

/// `32.5 ± 2.1`.
fn pm(mean: f64, hw: f64) -> String {
    format!("{} ± {}", pct(mean), pct(hw))
}

/// `0.012` / `<0.001`, with `*` (< 0.05) or `**` (< 0.01).
pub(crate) fn p_text(p: f64) -> String {
    let mark = if p < 0.01 {
        " **"
    } else if p < 0.05 {
        " *"
    } else {
        ""
    };
    if p.is_nan() {
        "–".into()
    } else if p < 0.001 {
        format!("<0.001{mark}")
    } else {
        format!("{p:.3}{mark}")
    }
}

fn delta_text(d: &Delta) -> String {
    let i = &d.paired.diff;
    format!(
        "{} [{}, {}]",
        signed(i.estimate),
        signed(i.lo),
        signed(i.hi)
    )
}

/// Escapes a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn level_pct(level: f64) -> String {
    let p = level * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0} %")
    } else {
        format!("{p} %")
    }
}

/// A table whose first `left` columns are left-aligned, the rest (figures) right-aligned.
fn table(out: &mut String, header: &[String], rows: &[Vec<String>], left: usize) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i < left { ":---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
}

/// Which columns a benchmark gets in a setting's table.
struct BenchCols {
    name: String,
    levels: Vec<&'static str>,
    ts: bool,
    delta: bool,
}

fn bench_cols(s: &SettingSummary) -> Vec<BenchCols> {
    s.benchmarks
        .iter()
        .map(|b| {
            let stats: Vec<&BenchStats> = s.rows.iter().filter_map(|r| r.bench.get(b)).collect();
            BenchCols {
                name: b.clone(),
                levels: HARDNESS
                    .iter()
                    .copied()
                    .filter(|l| stats.iter().any(|st| st.hardness.iter().any(|h| h.0 == *l)))
                    .collect(),
                ts: stats.iter().any(|st| st.ts.is_some()),
                delta: stats.iter().any(|st| st.delta.is_some()),
            }
        })
        .collect()
}

fn seeds_cell(r: &RowSummary) -> String {
    let n = r.seeds().len();
    if r.failed > 0 {
        format!("{n} ({} failed)", r.failed)
    } else {
        n.to_string()
    }
}

fn setting_table(out: &mut String, s: &SettingSummary, opts: &ReportOptions) {
    let cols = bench_cols(s);
    let multi = cols.len() > 1;
    let prefix = |b: &BenchCols, what: &str| {
        if multi {
            format!("{} {what}", b.name)
        } else {
            what.to_string()
        }
    };
    let mut header = vec!["Method".to_string(), "Seeds".to_string()];
    if opts.timings {
        header.push(format!("Latency (× {})", opts.baseline));
    }
    for b in &cols {
        for l in &b.levels {
            header.push(prefix(b, &format!("EX {l}")));
        }
        header.push(prefix(b, "EX all"));
        if b.ts {
            header.push(prefix(b, "TS all"));
        }
        if b.delta {
            header.push(prefix(b, &format!("Δ EX vs {}", opts.baseline)));
            header.push(prefix(b, "p (Holm)"));
        }
    }
    if multi {
        header.push("Avg EX".into());
    }
    let mut used = MethodsUsed::default();
    let mut comparisons = 0usize;
    let mut rows = Vec::new();
    for (i, r) in s.rows.iter().enumerate() {
        let mut row = vec![cell(&r.label), seeds_cell(r)];
        if opts.timings {
            row.push(match (&r.latency, s.baseline) {
                (_, Some(b)) if b == i => "1.00×".into(),
                (Some(l), _) => format!("{:.2}×", l.mean),
                _ => "–".into(),
            });
        }
        let mut counted = false;
        for b in &cols {
            let st = r.bench.get(&b.name);
            for l in &b.levels {
                row.push(
                    st.and_then(|st| st.hardness.iter().find(|h| h.0 == *l))
                        .map(|h| pct(h.1.mean))
                        .unwrap_or_else(|| "–".into()),
                );
            }
            row.push(
                st.map(|st| {
                    used.acc(&st.ex);
                    pm(st.ex.mean, st.ex.ci.half_width())
                })
                .unwrap_or_else(|| "–".into()),
            );
            if b.ts {
                row.push(
                    st.and_then(|st| st.ts.as_ref())
                        .map(|ts| {
                            used.acc(ts);
                            pm(ts.mean, ts.ci.half_width())
                        })
                        .unwrap_or_else(|| "–".into()),
                );
            }
            if b.delta {
                match st.and_then(|st| st.delta.as_ref()) {
                    Some(d) => {
                        used.delta(d);
                        counted = true;
                        row.push(delta_text(d));
                        row.push(p_text(d.p_holm));
                    }
                    None => {
                        row.push("–".into());
                        row.push("–".into());
                    }
                }
            }
        }
        if counted {
            comparisons += 1;
        }
        if multi {
            row.push(
                r.avg_ex
                    .map(|a| pm(a.estimate, a.half_width()))
                    .unwrap_or_else(|| "–".into()),
            );
        }
        rows.push(row);
    }
    table(out, &header, &rows, 1);
    explain(out, s, &cols, &used, comparisons, opts);
}

/// The paragraph under a table: what the numbers are.
fn explain(
    out: &mut String,
    s: &SettingSummary,
    cols: &[BenchCols],
    used: &MethodsUsed,
    comparisons: usize,
    opts: &ReportOptions,
) {
    let level = level_pct(opts.level);
    let seeds: std::collections::BTreeSet<usize> = s.rows.iter().map(|r| r.seeds().len()).collect();
    let seeds = match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if a == b => format!("{a}"),
        (Some(a), Some(b)) => format!("{a} to {b}"),
        _ => "0".into(),
    };
    let questions = cols
        .iter()
        .map(|b| match s.questions(&b.name) {
            (a, z) if a == z => format!("{} {a}", b.name),
            (a, z) => format!("{} {a} to {z}", b.name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "EX and TS: % of questions right, mean over seeds (the Seeds column: {seeds} per row; \
         failed runs are left out). Questions: {questions}. ± is the half-width of the {level} \
         confidence interval"
    );
    let mut how = Vec::new();
    if used.t_over_seeds {
        how.push("Student's t over the per-seed accuracies (rows with ≥ 2 seeds)".to_string());
    }
    if used.bootstrap {
        how.push(format!(
            "a percentile bootstrap over questions, {} resamples (single-seed rows: it leaves \
             out the training-seed variance)",
            opts.resamples
        ));
    }
    if !how.is_empty() {
        text.push_str(&format!(": {}", how.join("; ")));
    }
    text.push_str(". Hardness columns (Spider levels) are means only.");
    if cols.len() > 1 {
        text.push_str(
            " Avg EX: mean over the benchmarks; its ± combines theirs as if independent \
             (√Σhw² / B).",
        );
    }
    if let Some(base) = s.baseline_row() {
        if cols.iter().any(|b| b.delta) {
            text.push_str(&format!(
                " Δ EX vs {}: points, method − {}, paired by seed and question id, with its {level} \
                 interval",
                base.label, base.label
            ));
            let mut tests = Vec::new();
            if used.paired_bootstrap {
                tests.push(format!(
                    "a paired bootstrap over questions and seeds ({} resamples) for rows sharing \
                     ≥ 2 seeds with {}, p from the same resamples",
                    opts.resamples, base.label
                ));
            }
            if used.mcnemar {
                tests.push(format!(
                    "a bootstrap over questions and McNemar's exact test on the discordant \
                     questions for rows sharing one seed with {}",
                    base.label
                ));
            }
            if !tests.is_empty() {
                text.push_str(&format!(": {}", tests.join("; ")));
            }
            text.push_str(&format!(
                ". p (Holm): Holm-corrected across the {comparisons} method row(s) compared per \
                 benchmark; * p < 0.05, ** p < 0.01 after correction."
            ));
        }
        if opts.timings {
            text.push_str(&format!(
                " Latency: seconds per training step over {}'s in the same seed, mean over seeds.",
                base.label
            ));
            text.push_str(&one_off_text(s, base));
        }
    } else {
        text.push_str(&format!(
            " No {} row in this setting: no Δ EX and no latency ratios.",
            opts.baseline
        ));
    }
    let _ = writeln!(out, "{text}\n");
}

/// The work some rows did once before training and that their latency leaves out (fixed teacher
/// samples), in seconds per run and against the baseline's training time: empty when no row had any.
fn one_off_text(s: &SettingSummary, base: &RowSummary) -> String {
    let parts: Vec<String> = s
        .rows
        .iter()
        .filter_map(|r| {
            let p = r.precompute?;
            let vs = base
                .train_seconds
                .filter(|b| *b > 0.0)
                .map(|b| format!(", {:.2}× {}'s training time", p / b, base.label))
                .unwrap_or_default();
            Some(format!("{} {p:.0} s per run{vs}", r.label))
        })
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    format!(
        " Not in the latency: teacher samples made once before training (teacher_samples=fixed): {}.",
        parts.join("; ")
    )
}

fn ablation_tables(out: &mut String, s: &SettingSummary, opts: &ReportOptions) {
    for a in &s.ablations {
        let others = if a.others.is_empty() {
            "default parameters".to_string()
        } else {
            params_text(&a.others, ", ")
        };
        let _ = writeln!(
            out,
            "### Ablation (Table 5): kid's imperfect data, {}\n",
            cell(&others)
        );
        let multi = s.benchmarks.len() > 1;
        let mut header = vec!["Variant".to_string(), "Seeds".to_string()];
        for b in &s.benchmarks {
            let p = |w: &str| {
                if multi {
                    format!("{b} {w}")
                } else {
                    w.to_string()
                }
            };
            header.push(p("EX all"));
            header.push(p("Δ EX vs rewrite"));
            header.push(p("p (Holm)"));
        }
        if multi {
            header.push("Avg EX".into());
        }
        let mut rows = Vec::new();
        for (k, &(name, i)) in a.variants.iter().enumerate() {
            let r = &s.rows[i];
            let mut row = vec![name.to_string(), seeds_cell(r)];
            for b in &s.benchmarks {
                row.push(
                    r.bench
                        .get(b)
                        .map(|st| pm(st.ex.mean, st.ex.ci.half_width()))
                        .unwrap_or_else(|| "–".into()),
                );
                match a.deltas.get(b).and_then(|d| d[k].as_ref()) {
                    Some(d) => {
                        row.push(delta_text(d));
                        row.push(p_text(d.p_holm));
                    }
                    None => {
                        row.push("–".into());
                        row.push("–".into());
                    }
                }
            }
            if multi {
                row.push(
                    r.avg_ex
                        .map(|x| pm(x.estimate, x.half_width()))
                        .unwrap_or_else(|| "–".into()),
                );
            }
            rows.push(row);
        }
        table(out, &header, &rows, 1);
        let _ = writeln!(
            out,
            "rewrite (KID): masked target tokens refilled by the student; mask-only: the masked \
             sequence itself; vanilla: the ground truth (reverse KL only). Δ EX: points, variant \
             − rewrite, paired by seed and question id, {} interval; p Holm-corrected across \
             the variants per benchmark.\n",
            level_pct(opts.level)
        );
    }
}

/// Which machines made the records: one is the normal case; several mean that EX and latency
/// differences can be the machines' arithmetic and speed, not the methods.
fn machines_line(out: &mut String, s: &Summary) {
    if s.machines.is_empty() {
        return;
    }
    let list: Vec<String> = s
        .machines
        .iter()
        .map(|(m, n)| format!("{} ({n} record{})", cell(m), if *n == 1 { "" } else { "s" }))
        .collect();
    let _ = write!(out, "Made on: {}", list.join("; "));
    if s.machine_unknown > 0 {
        let _ = write!(out, "; {} record(s) do not say", s.machine_unknown);
    }
    out.push('.');
    if s.machines.len() > 1 {
        out.push_str(
            " **More than one machine**: the same seed on another CPU, thread count or kernel \
             setting does other arithmetic, so a difference between rows can be the machine's.",
        );
    }
    out.push_str("\n\n");
}

/// The whole of `report.md`.
pub(crate) fn render(s: &Summary, plan: &Plan, opts: &ReportOptions) -> String {
    let mut out = String::from("# kidbench report\n\n");
    let _ = writeln!(
        out,
        "{} record(s) from {} plan(s): {} scored, {} failed. Intervals at {}; bootstrap: {} \
         resamples, seed {}; baseline: {}.\n",
        s.records,
        s.plans,
        s.scored,
        s.failed.len(),
        level_pct(opts.level),
        opts.resamples,
        opts.seed,
        opts.baseline
    );
    machines_line(&mut out, s);
    if !opts.timings {
        out.push_str("Timings left out (no latency columns, no Pareto chart).\n\n");
    }
    for st in &s.settings {
        let _ = writeln!(out, "## {}\n", cell(&st.setting.title()));
        if st.rows.is_empty() {
            out.push_str("No scored runs.\n\n");
            continue;
        }
        setting_table(&mut out, st, opts);
        ablation_tables(&mut out, st, opts);
    }
    if !s.failed.is_empty() {
        out.push_str("## Failed runs\n\n");
        let header: Vec<String> = ["Setting", "Method", "Seed", "Benchmark", "Record", "Error"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let rows: Vec<Vec<String>> = s
            .failed
            .iter()
            .map(|f| {
                vec![
                    cell(&f.setting.title()),
                    cell(&f.row),
                    f.seed.to_string(),
                    cell(&f.benchmark),
                    cell(&f.label),
                    cell(&f.error),
                ]
            })
            .collect();
        table(&mut out, &header, &rows, header.len());
    }
    if !plan.charts.is_empty() || !plan.skipped.is_empty() {
        out.push_str("## Charts\n\n");
        for c in &plan.charts {
            let alt = match &c.subtitle {
                Some(sub) => format!("{}: {sub}", c.title),
                None => c.title.clone(),
            };
            let _ = writeln!(out, "![{}](charts/{})\n", cell(&alt), c.file);
        }
        for n in &plan.skipped {
            let _ = writeln!(out, "- {n}");
        }
        if !plan.skipped.is_empty() {
            out.push('\n');
        }
    }
    if !s.notes.is_empty() {
        out.push_str("## Notes\n\n");
        for n in &s.notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push('\n');
    }
    out
}
