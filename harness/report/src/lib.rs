//! `kidbench-report`: the library behind `kidbench report DIR...`. From run and sweep records
//! (see `kidbench-results`) it writes, under one folder:
//!
//! ```text
//! report.md        the paper's Table 3 per setting (teacher, student, warmup, budget), with
//!                  confidence intervals, Δ EX vs the baseline and Holm-corrected p-values;
//!                  Table 5 (KID ablation) when the records hold its variants; failed runs
//! report.csv       every figure in long format (one row per setting, row, benchmark,
//!                  hardness, metric; see [`CSV_COLUMNS`])
//! charts/*.svg     pareto (EX vs latency), strategies, alpha, curves, flops; each only when
//!                  the records hold what it needs (a note says why one is left out)
//! charts/*.png     the same, when `png` is set and `rsvg-convert` is on PATH
//! ```
//!
//! Layout: [`summary`] is the one statistics module (grouping, pairing, intervals, tests);
//! [`markdown`], [`csv`] and [`charts`] each render one output format from it.
//!
//! The output is a function of the records and the options alone (fixed orders, seeded
//! bootstraps, no paths or clocks), so the same records give byte-identical files; with
//! `timings: false` every timing-derived figure is left out, so two runs of one sweep give
//! byte-identical reports.

use std::path::{Path, PathBuf};

use kidbench_results::Loaded;

mod charts;
mod csv;
mod markdown;
mod summary;

pub use csv::CSV_COLUMNS;

/// How the report computes and what it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Confidence level of every interval (0.95).
    pub level: f64,
    /// Bootstrap resamples (2000).
    pub resamples: usize,
    /// Seed of every bootstrap (0).
    pub seed: u64,
    /// The method the Δ EX and latency columns compare against (`sft`).
    pub baseline: String,
    /// Latency columns and the Pareto chart; `false` leaves out every timing-derived figure.
    pub timings: bool,
    /// Also convert each SVG to PNG with `rsvg-convert`, when it is on PATH.
    pub png: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            level: 0.95,
            resamples: 2000,
            seed: 0,
            baseline: "sft".into(),
            timings: true,
            png: false,
        }
    }
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub csv: PathBuf,
    /// The SVG charts, then the PNGs, in the order the report lists them.
    pub charts: Vec<PathBuf>,
    /// Charts left out and why, data the statistics left out, missing PNG converter.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("no records to report on")]
    NoRecords,
    #[error("report options: {0}")]
    Options(String),
    #[error("{what}: {source}")]
    Stats {
        what: String,
        #[source]
        source: kidbench_stats::StatsError,
    },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("chart {}: {message}", path.display())]
    Chart { path: PathBuf, message: String },
}

fn check(records: &[Loaded], opts: &ReportOptions) -> Result<(), ReportError> {
    if records.is_empty() {
        return Err(ReportError::NoRecords);
    }
    if !(opts.level > 0.0 && opts.level < 1.0) {
        return Err(ReportError::Options(format!(
            "confidence level {} is not in (0, 1)",
            opts.level
        )));
    }
    if opts.resamples == 0 {
        return Err(ReportError::Options(
            "bootstrap resamples must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The text of `report.md`.
pub fn render_markdown(records: &[Loaded], opts: &ReportOptions) -> Result<String, ReportError> {
    check(records, opts)?;
    let s = summary::summarize(records, opts)?;
    let plan = charts::plan(&s, opts);
    Ok(markdown::render(&s, &plan, opts))
}

/// The text of `report.csv`.
pub fn render_csv(records: &[Loaded], opts: &ReportOptions) -> Result<String, ReportError> {
    check(records, opts)?;
    let s = summary::summarize(records, opts)?;
    Ok(csv::render(&s, opts))
}

fn write(path: &Path, text: &[u8]) -> Result<(), ReportError> {
    kidbench_results::write_atomic(path, text).map_err(|e| ReportError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `report.md`, `report.csv` and `charts/*.svg` (and `.png` with `png`) under `out_dir`.
pub fn write_report(
    records: &[Loaded],
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<ReportFiles, ReportError> {
    check(records, opts)?;
    let s = summary::summarize(records, opts)?;
    let plan = charts::plan(&s, opts);
    let markdown = out_dir.join("report.md");
    let csv = out_dir.join("report.csv");
    write(&markdown, markdown::render(&s, &plan, opts).as_bytes())?;
    write(&csv, csv::render(&s, opts).as_bytes())?;
    let mut notes = s.notes.clone();
    notes.extend(plan.skipped.iter().cloned());
    let mut files = Vec::new();
    for c in &plan.charts {
        let path = out_dir.join("charts").join(&c.file);
        let svg = charts::draw(c, &s, opts).map_err(|message| ReportError::Chart {
            path: path.clone(),
            message,
        })?;
        write(&path, svg.as_bytes())?;
        files.push(path);
    }
    if opts.png && !files.is_empty() {
        match charts::find_on_path("rsvg-convert") {
            None => notes.push("rsvg-convert not found on PATH: no PNGs".into()),
            Some(exe) => {
                let mut pngs = Vec::new();
                for svg in &files {
                    let png = svg.with_extension("png");
                    match charts::to_png(&exe, svg, &png) {
                        Ok(()) => pngs.push(png),
                        Err(e) => notes.push(format!("{}: no PNG: {e}", svg.display())),
                    }
                }
                files.extend(pngs);
            }
        }
    }
    Ok(ReportFiles {
        markdown,
        csv,
        charts: files,
        notes,
    })
}
