//! `kidbench sweep`, `kidbench report` and `kidbench compare`, and what `kidbench run` prints.

use std::path::PathBuf;

use anyhow::Context;
use kidbench_run::{MethodResult, ModelScore, RunSummary};

/// `kidbench report`.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run folders or sweep folders (they hold records/<label>.json).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where report.md, report.csv and charts/ go (default: the first folder's report/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The method every other is compared with.
    #[arg(long, default_value = "sft")]
    pub baseline: String,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub level: f64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
    /// Leave out every timing-derived figure (latency, Pareto chart): the report of a sweep is
    /// then the same bytes however often, and wherever, it ran.
    #[arg(long)]
    pub no_timings: bool,
    /// Do not convert the SVG charts to PNG (with rsvg-convert, when it is installed).
    #[arg(long)]
    pub no_png: bool,
}

/// `kidbench compare`.
#[derive(clap::Args)]
pub struct CompareArgs {
    /// The baseline: a run folder or a sweep folder.
    pub baseline: PathBuf,
    /// The new results to check against it.
    pub new: PathBuf,
    /// Significance level of the paired test on per-question verdicts.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Largest EX drop, in points, tolerated even when significant.
    #[arg(long, default_value_t = 1.0)]
    pub max_ex_drop: f64,
    /// Largest growth of a method's latency relative to SFT (measured in the same run), as a
    /// fraction (0.10 = 10 %).
    #[arg(long, default_value_t = 0.10)]
    pub max_latency_growth: f64,
    /// Also write the comparison table (markdown) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn report_options(a: &ReportArgs) -> kidbench_report::ReportOptions {
    kidbench_report::ReportOptions {
        level: a.level,
        resamples: a.resamples,
        baseline: a.baseline.clone(),
        timings: !a.no_timings,
        png: !a.no_png,
        ..kidbench_report::ReportOptions::default()
    }
}

/// Writes the report of `dirs` into `out`; returns the markdown path.
fn write_report(
    dirs: &[PathBuf],
    out: &std::path::Path,
    opts: &kidbench_report::ReportOptions,
) -> anyhow::Result<PathBuf> {
    let records = kidbench_results::load_records(dirs)?;
    let files = kidbench_report::write_report(&records, out, opts)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    for n in &files.notes {
        eprintln!("kidbench: report: {n}");
    }
    let missing = unfinished_section(dirs)?;
    if !missing.is_empty() {
        let mut md = std::fs::read_to_string(&files.markdown)
            .with_context(|| format!("reading {}", files.markdown.display()))?;
        md.push_str(&missing);
        std::fs::write(&files.markdown, md)
            .with_context(|| format!("writing {}", files.markdown.display()))?;
    }
    Ok(files.markdown)
}

/// A markdown section listing the cells of sweep folders in `dirs` that have no result (empty
/// when every cell is done); each is also said on stderr.
fn unfinished_section(dirs: &[PathBuf]) -> anyhow::Result<String> {
    let mut rows = String::new();
    let mut n = 0;
    for d in dirs {
        let Some(cells) = kidbench_run::sweep::unfinished_in_folder(d)? else {
            continue;
        };
        for kidbench_run::sweep::UnfinishedCell {
            index,
            method,
            seed,
            state,
        } in cells
        {
            let state = state.to_string().replace('|', "/");
            eprintln!(
                "kidbench: report: {}: cell {index} ({method} seed {seed}) has no result: {state}",
                d.display()
            );
            rows.push_str(&format!(
                "| {} | {index} | {method} | {seed} | {state} |\n",
                d.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            ));
            n += 1;
        }
    }
    if n == 0 {
        return Ok(String::new());
    }
    Ok(format!(
        "\n## Cells without a result\n\n{n} cell(s) of the sweep did not finish: the tables above \
         leave them out. Run the sweep again (or its submit.sh) to finish them; add \
         `--retry-failed` for failed ones.\n\n| sweep | cell | method | seed | state |\n\
         | --- | ---: | --- | ---: | --- |\n{rows}"
    ))
}

pub fn report(a: &ReportArgs) -> anyhow::Result<()> {
    let out = a.out.clone().unwrap_or_else(|| a.dirs[0].join("report"));
    let md = write_report(&a.dirs, &out, &report_options(a))?;
    println!("report: {}", md.display());
    Ok(())
}

pub fn compare(a: &CompareArgs) -> anyhow::Result<()> {
    let base = kidbench_results::load_records(std::slice::from_ref(&a.baseline))
        .with_context(|| format!("reading the baseline {}", a.baseline.display()))?;
    let new = kidbench_results::load_records(std::slice::from_ref(&a.new))
        .with_context(|| format!("reading the new results {}", a.new.display()))?;
    let opts = kidbench_compare::CompareOptions {
        alpha: a.alpha,
        max_ex_drop: a.max_ex_drop,
        max_latency_growth: a.max_latency_growth,
        ..kidbench_compare::CompareOptions::default()
    };
    let c = kidbench_compare::compare(&base, &new, &opts)?;
    let md = c.to_markdown();
    print!("{md}");
    if let Some(p) = &a.out {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
    }
    if c.passed() {
        println!("compare: passed");
        Ok(())
    } else {
        for f in c.failures() {
            eprintln!("compare: FAILED: {f}");
        }
        std::process::exit(1);
    }
}

pub fn sweep(a: &kidbench_run::sweep::SweepArgs) -> anyhow::Result<()> {
    let s = kidbench_run::sweep::sweep(a)?;
    if a.list || a.prepare || a.unfinished || a.emit.emit == Some(kidbench_run::emit::Emit::Slurm) {
        return Ok(());
    }
    let copied = if s.reused > 0 {
        format!(" ({} copied from other sweep folders)", s.reused)
    } else {
        String::new()
    };
    println!(
        "sweep {}: {} cells, {} trained now, {} done before{copied}, {} failed",
        s.dir.display(),
        s.cells,
        s.trained,
        s.skipped_done,
        s.failed.len()
    );
    for (i, e) in &s.failed {
        println!("  cell {i} failed: {}", e.lines().next().unwrap_or(""));
    }
    if a.cell.is_none() {
        let opts = kidbench_report::ReportOptions {
            png: true,
            ..kidbench_report::ReportOptions::default()
        };
        let md = write_report(std::slice::from_ref(&s.dir), &s.dir.join("report"), &opts)?;
        println!("report: {}", md.display());
    }
    Ok(())
}

fn score_line(label: &str, sc: &ModelScore) -> String {
    let ts = sc.ts.map(|t| format!(", TS {:.1}%", 100.0 * t));
    format!("{label} EX {:.1}%{}", 100.0 * sc.ex, ts.unwrap_or_default())
}

/// What `kidbench run` prints: one line per model, then where the tables are.
pub fn print_run(s: &RunSummary) {
    println!("results: {}", s.dir.display());
    let teacher = if s.teacher_reused {
        "cached"
    } else {
        "trained"
    };
    println!(
        "{}",
        score_line(&format!("teacher ({teacher})"), &s.teacher)
    );
    if let Some(i) = &s.student_init {
        println!("{}", score_line("student_init", i));
    }
    for m in &s.methods {
        match &m.result {
            MethodResult::Ok {
                score,
                latency_vs_sft,
                ..
            } => println!(
                "{}{}",
                score_line(&m.spec(), score),
                latency_vs_sft
                    .map(|l| format!(", latency {l:.2}x SFT"))
                    .unwrap_or_default()
            ),
            MethodResult::Failed { error } => println!("{} FAILED: {error}", m.spec()),
        }
    }
    match paired_lines(s) {
        Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
        Err(e) => eprintln!("kidbench: no paired comparison: {e:#}"),
    }
    println!("table: {}", s.dir.join("results.md").display());
}

/// Confidence level and bootstrap settings of the comparison `kidbench run` prints (the
/// report's defaults).
const RUN_LEVEL: f64 = 0.95;
const RUN_RESAMPLES: usize = 2000;

/// One line per method other than plain `sft`: its EX difference from SFT on the same dev
/// questions, with the paired bootstrap interval and McNemar's exact p-value (one seed).
fn paired_lines(s: &RunSummary) -> anyhow::Result<Vec<String>> {
    use kidbench_results::Role;
    let records = kidbench_results::load_records(std::slice::from_ref(&s.dir))?;
    let methods: Vec<&kidbench_results::Loaded> = records
        .iter()
        .filter(|l| l.record.key.role == Role::Method && !l.verdicts.is_empty())
        .collect();
    let Some(sft) = methods
        .iter()
        .find(|l| l.record.key.method == "sft" && l.record.key.params.is_empty())
    else {
        return Ok(Vec::new());
    };
    let by_id = |l: &kidbench_results::Loaded| -> std::collections::BTreeMap<String, bool> {
        l.verdicts.iter().map(|v| (v.id.clone(), v.ex)).collect()
    };
    let base = by_id(sft);
    let mut lines = Vec::new();
    for m in &methods {
        if std::ptr::eq(*m, *sft) {
            continue;
        }
        let other = by_id(m);
        let (a, b): (Vec<bool>, Vec<bool>) = base
            .iter()
            .filter_map(|(id, &x)| other.get(id).map(|&y| (x, y)))
            .unzip();
        let p = kidbench_stats::paired_comparison(&[a], &[b], RUN_LEVEL, RUN_RESAMPLES, 0)?;
        let d = p.diff;
        lines.push(format!(
            "{} vs sft: EX {:+.1} points, {:.0}% CI [{:+.1}, {:+.1}] on {} paired questions, \
             McNemar p = {:.3}{}",
            m.record.label,
            100.0 * d.estimate,
            100.0 * RUN_LEVEL,
            100.0 * d.lo,
            100.0 * d.hi,
            p.questions,
            p.p_value,
            if d.lo > 0.0 || d.hi < 0.0 {
                ""
            } else {
                " (the interval holds 0: no difference shown)"
            }
        ));
    }
    Ok(lines)
}
