//! The markdown form of a [`Comparison`].

use std::collections::BTreeSet;
use std::fmt::Write;

use kidbench_results::RecordKey;

use crate::{cell_name, format_p, key_fields, test_name, Comparison, Latency, MetricDiff, Row};

pub(crate) fn render(c: &Comparison) -> String {
    let o = &c.options;
    let mut s = String::new();
    let verdict = if c.passed() {
        "PASSED".to_string()
    } else {
        format!(
            "FAILED ({} failure{})",
            c.failing.len(),
            if c.failing.len() == 1 { "" } else { "s" }
        )
    };
    let _ = writeln!(s, "# kidbench compare: {verdict}\n");
    let _ = writeln!(
        s,
        "Gate: fail on an EX drop larger than {} points with p < {}, or on a latency (seconds \
         per step relative to sft, same side) growing by more than {:.1} %. Intervals at {} %, \
         {} resamples, seed {}. Δ = new − baseline, in points.\n",
        o.max_ex_drop,
        o.alpha,
        100.0 * o.max_latency_growth,
        100.0 * o.level,
        o.resamples,
        o.seed
    );

    // The table: rows on both sides, then whole cells on one side only (dashes but a verdict).
    let mut lines: Vec<(&RecordKey, Option<&Row>, &str)> =
        c.rows.iter().map(|r| (&r.cell, Some(r), "")).collect();
    lines.extend(
        c.missing
            .iter()
            .filter(|m| m.whole)
            .map(|m| (&m.cell, None, "**FAIL**: missing in new")),
    );
    lines.extend(
        c.extra
            .iter()
            .filter(|m| m.whole)
            .map(|m| (&m.cell, None, "only in new (not gated)")),
    );

    // Key fields shared by every line go above the table, the others into the cell column.
    let fields: Vec<Vec<(&str, String)>> = lines.iter().map(|l| key_fields(l.0)).collect();
    let names = ["benchmark", "teacher", "student", "warmup", "budget"];
    let value = |i: usize, name: &str| {
        fields[i]
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    // A field is shared when every line that has it (a teacher has no student) has one value.
    let shared: Vec<(&str, String)> = names
        .iter()
        .filter_map(|&n| {
            let values: BTreeSet<String> = (0..lines.len()).filter_map(|i| value(i, n)).collect();
            (values.len() == 1).then(|| (n, values.into_iter().next().unwrap_or_default()))
        })
        .collect();
    if !shared.is_empty() {
        let list: Vec<String> = shared.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "Every row (where it applies): {}.\n", list.join(", "));
    }

    if lines.is_empty() {
        let _ = writeln!(s, "No cells.\n");
    } else {
        let _ = writeln!(
            s,
            "| cell | seeds | questions | EX baseline | EX new | ΔEX [CI] | p | p (Holm) | ΔTS [CI] | latency vs sft | verdict |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
        for (i, (key, r, verdict)) in lines.iter().enumerate() {
            let mut cell = key.method_label();
            let own: Vec<String> = fields[i]
                .iter()
                .filter(|(k, _)| !shared.iter().any(|(n, _)| n == k))
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            if !own.is_empty() {
                let _ = write!(cell, " ({})", own.join(", "));
            }
            let Some(r) = r else {
                let _ = writeln!(
                    s,
                    "| {} | — | — | — | — | — | — | — | — | — | {verdict} |",
                    escape(&cell)
                );
                continue;
            };
            let seeds = if r.seeds.is_empty() {
                "—".to_string()
            } else {
                r.seeds
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut questions = r.questions.to_string();
            if r.baseline_only_questions + r.new_only_questions > 0 {
                let _ = write!(
                    questions,
                    " (left out: {} baseline-only, {} new-only)",
                    r.baseline_only_questions, r.new_only_questions
                );
            }
            let (eb, en, dex, p) = match &r.ex {
                Some(e) => (
                    format!("{:.1}", 100.0 * e.baseline),
                    format!("{:.1}", 100.0 * e.new),
                    diff(e),
                    format!("{} ({})", format_p(e.paired.p_value), test_name(&e.paired)),
                ),
                None => dash4(),
            };
            let holm = r.ex_p_holm.map_or("—".to_string(), format_p);
            let dts = r.ts.as_ref().map_or("—".to_string(), |t| {
                format!("{} (p {})", diff(t), format_p(t.paired.p_value))
            });
            let _ = writeln!(
                s,
                "| {} | {seeds} | {questions} | {eb} | {en} | {dex} | {p} | {holm} | {dts} | {} | {} |",
                escape(&cell),
                latency(r),
                row_verdict(c, r)
            );
        }
        s.push('\n');
    }

    if !c.failing.is_empty() {
        let _ = writeln!(s, "## Failures\n");
        for f in c.failures() {
            let _ = writeln!(s, "- {}", escape(&f));
        }
        s.push('\n');
    }
    if !c.missing.is_empty() {
        let _ = writeln!(s, "## Missing in new (failures)\n");
        for m in &c.missing {
            let what = if m.whole {
                "the whole cell"
            } else {
                "some seeds"
            };
            let _ = writeln!(
                s,
                "- {}: {what} ({})",
                escape(&cell_name(&m.cell)),
                seeds_text(&m.seeds)
            );
        }
        s.push('\n');
    }
    if !c.extra.is_empty() {
        let _ = writeln!(s, "## Only in new (not gated)\n");
        for m in &c.extra {
            let what = if m.whole { "new cell" } else { "new seeds" };
            let _ = writeln!(
                s,
                "- {}: {what} ({})",
                escape(&cell_name(&m.cell)),
                seeds_text(&m.seeds)
            );
        }
        s.push('\n');
    }
    if !c.notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &c.notes {
            let _ = writeln!(s, "- {}", escape(n));
        }
        s.push('\n');
    }
    s
}

fn dash4() -> (String, String, String, String) {
    let d = || "—".to_string();
    (d(), d(), d(), d())
}

/// `-7.0 [-10.5, -3.5]`, points.
fn diff(m: &MetricDiff) -> String {
    let d = &m.paired.diff;
    format!(
        "{:+.1} [{:+.1}, {:+.1}]",
        100.0 * d.estimate,
        100.0 * d.lo,
        100.0 * d.hi
    )
}

fn latency(r: &Row) -> String {
    match &r.latency {
        Latency::NotApplicable => "—".into(),
        Latency::NotComparable { reason } => format!("latency not comparable ({reason})"),
        Latency::Compared { baseline, new, .. } => format!(
            "{baseline:.2}× → {new:.2}× ({:+.1} %)",
            100.0 * (new / baseline - 1.0)
        ),
    }
}

fn row_verdict(c: &Comparison, r: &Row) -> String {
    let rules: Vec<String> = c
        .failing
        .iter()
        .filter(|f| f.cell == r.cell)
        .map(|f| match f.seed {
            Some(s) => format!("{} (seed {s})", f.rule),
            None => f.rule.to_string(),
        })
        .collect();
    if rules.is_empty() {
        "ok".into()
    } else {
        format!("**FAIL**: {}", rules.join("; "))
    }
}

fn seeds_text(seeds: &[u64]) -> String {
    let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
    if seeds.len() == 1 {
        format!("seed {}", list[0])
    } else {
        format!("seeds {}", list.join(", "))
    }
}

/// Keeps a `|` in a label from splitting a table cell.
fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}
