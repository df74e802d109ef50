//! `results.md`: one run's table, the layout of the KID paper's Table 3 (for several seeds and
//! confidence intervals, `kidbench report` reads the records instead).

use std::collections::BTreeMap;
use std::path::Path;

use crate::files::{MethodResult, MethodSummary, ModelScore, LEVELS};
use crate::score::ratio;

pub fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// `results.md`: the paper's Table 3 layout (teacher, then the methods; latency as a multiple of
/// SFT's training time per step; EX per hardness and overall; TS; EX against SFT).
#[allow(clippy::too_many_arguments)]
pub fn results_markdown(
    run_id: &str,
    bench: &str,
    teacher: &str,
    student: &str,
    budget: &str,
    dev_questions: usize,
    teacher_score: &ModelScore,
    methods: &[MethodSummary],
    suite: Option<&Path>,
) -> String {
    let has_ts = suite.is_some();
    let sft_ex = methods
        .iter()
        .find(|m| m.name == "sft" && m.params.is_empty())
        .and_then(|m| match &m.result {
            MethodResult::Ok { score, .. } => Some(score.ex),
            MethodResult::Failed { .. } => None,
        });
    let mut out = format!(
        "# kidbench run `{run_id}`\n\n\
         Benchmark **{bench}** (dev, {dev_questions} questions), teacher **{teacher}**, \
         student **{student}**, {budget}.\n\n\
         Latency: training seconds per step relative to SFT's. EX/TS in %.\n\n"
    );
    let mut header = vec!["Method", "Latency (x SFT)"];
    let ex_cols: Vec<String> = LEVELS
        .iter()
        .map(|h| format!("EX {h}"))
        .chain(["EX all".to_string()])
        .collect();
    header.extend(ex_cols.iter().map(String::as_str));
    if has_ts {
        header.push("TS all");
    }
    header.push("Δ EX vs SFT");
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!(
        "|{}|\n",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    ));
    let ex_cells = |by: &BTreeMap<String, (usize, usize)>, all: f64| -> Vec<String> {
        LEVELS
            .iter()
            .map(|h| {
                let (n, m) = by.get(*h).copied().unwrap_or((0, 0));
                if n == 0 {
                    "–".to_string()
                } else {
                    pct(ratio(m, n))
                }
            })
            .chain([pct(all)])
            .collect()
    };
    // teacher
    let mut row = vec![format!("teacher ({teacher})"), "–".to_string()];
    row.extend(ex_cells(&teacher_score.by_hardness, teacher_score.ex));
    if has_ts {
        row.push(teacher_score.ts.map(pct).unwrap_or_else(|| "–".into()));
    }
    row.push(match sft_ex {
        Some(b) => format!("{:+.1}", 100.0 * (teacher_score.ex - b)),
        None => "–".into(),
    });
    out.push_str(&format!("| {} |\n", row.join(" | ")));
    for m in methods {
        let name = if m.params.is_empty() {
            m.name.clone()
        } else {
            format!("{} ({})", m.name, m.params.replace(',', ", "))
        };
        let mut row = vec![name];
        match &m.result {
            MethodResult::Ok {
                score: s,
                latency_vs_sft,
                ..
            } => {
                row.push(
                    latency_vs_sft
                        .map(|l| format!("{l:.2}"))
                        .unwrap_or_else(|| "–".into()),
                );
                row.extend(ex_cells(&s.by_hardness, s.ex));
                if has_ts {
                    row.push(s.ts.map(pct).unwrap_or_else(|| "–".into()));
                }
                row.push(match sft_ex {
                    Some(b) => format!("{:+.1}", 100.0 * (s.ex - b)),
                    None => "–".into(),
                });
            }
            MethodResult::Failed { .. } => {
                row.push("failed".into());
                let cols = LEVELS.len() + 1 + usize::from(has_ts) + 1;
                row.extend(std::iter::repeat_n("–".to_string(), cols));
            }
        }
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    if let Some(dir) = suite {
        out.push_str(&format!("\nTS: test suite {}.\n", dir.display()));
    } else {
        out.push_str(
            "\nTS: no test suite built for this benchmark (`kidbench testsuite build`).\n",
        );
    }
    let failed: Vec<(&MethodSummary, &str)> = methods
        .iter()
        .filter_map(|m| match &m.result {
            MethodResult::Failed { error } => Some((m, error.as_str())),
            MethodResult::Ok { .. } => None,
        })
        .collect();
    if !failed.is_empty() {
        out.push_str("\n## Failed methods\n\n");
        for (m, err) in failed {
            out.push_str(&format!("- **{}**: {}\n", m.spec(), err.replace('\n', " ")));
        }
    }
    out
}
