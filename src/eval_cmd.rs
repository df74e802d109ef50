//! `kidbench eval`: score predictions by execution, from a benchmark or from a pairs file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kidbench_sql::benchmark::{find_database, Benchmark, Example, Split};
use kidbench_sql::compare::CompareMode;
use kidbench_sql::eval::{EvalOptions, Pair, Summary, Verdict};
use kidbench_sql::exec::ExecOptions;
use kidbench_sql::hardness::Hardness;

use crate::paths::{shown, DataArgs};

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Benchmark whose questions the predictions answer (see `kidbench benchmarks`).
    #[arg(long, conflicts_with = "pairs")]
    pub benchmark: Option<String>,
    /// Predictions: one SQL per line, in the benchmark's order (text after a tab is ignored).
    #[arg(long, requires = "benchmark")]
    pub pred: Option<PathBuf>,
    /// JSONL pairs: each line has at least {"id", "db_id", "gold", "pred"}. A line that cannot
    /// be read is scored 0 (cause `bad_input`) and reported; the others are scored.
    #[arg(long, requires = "db_dir")]
    pub pairs: Option<PathBuf>,
    /// With --pairs: databases are `DIR/<db_id>/<db_id>.sqlite`.
    #[arg(long)]
    pub db_dir: Option<PathBuf>,
    /// Comparison rule; default: the benchmark's (test-suite for Spider, bird for BIRD).
    #[arg(long)]
    pub mode: Option<CompareMode>,
    /// Keep DISTINCT in both queries (test-suite mode removes it by default, like the reference).
    #[arg(long)]
    pub keep_distinct: bool,
    /// Per-query timeout in seconds; a query still running then is interrupted and scores 0.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Per-example JSONL output (verdict, cause, hardness, result previews, milliseconds).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Metrics: `ex` (execution accuracy) and/or `ts` (test-suite accuracy; needs a suite built
    /// with `kidbench testsuite build --benchmark NAME`; with --pairs, give its --suite-dir).
    #[arg(long, value_delimiter = ',', default_value = "ex", value_parser = ["ex", "ts"])]
    pub metric: Vec<String>,
    /// Test-suite folder (default with --benchmark: `<databases>/testsuites/<benchmark>`; with
    /// --pairs there is no default: a suite laid out by db_id, `DIR/<db_id>/NN.sqlite`).
    #[arg(long)]
    pub suite_dir: Option<PathBuf>,
    /// Which split of the benchmark the predictions answer.
    #[arg(long, default_value = "dev", value_parser = ["dev", "train"])]
    pub split: String,
    #[command(flatten)]
    pub data: DataArgs,
}

/// One output line: what other tools read back.
#[derive(serde::Serialize)]
struct Record<'a> {
    id: serde_json::Value,
    db_id: &'a str,
    #[serde(rename = "match")]
    matched: bool,
    cause: Option<&'static str>,
    hardness: Option<&'a str>,
    ms: f64,
    gold_cause: Option<&'static str>,
    error: Option<&'a str>,
    gold_error: Option<&'a str>,
    pred: &'a str,
    gold: &'a str,
    gold_preview: &'a [Vec<String>],
    pred_preview: &'a [Vec<String>],
    #[serde(skip_serializing_if = "Option::is_none")]
    difficulty: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts_first_failing_db: Option<&'a str>,
    /// With --pairs: the 1-based line of the pairs file.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
}

fn record<'a>(
    id: serde_json::Value,
    pair: &'a Pair,
    v: &'a Verdict,
    difficulty: Option<&'a str>,
) -> Record<'a> {
    Record {
        id,
        db_id: &v.db_id,
        matched: v.matched,
        cause: v.cause.map(|c| c.as_str()),
        hardness: v.hardness.as_deref(),
        ms: (v.ms * 1000.0).round() / 1000.0,
        gold_cause: v.gold_cause.map(|c| c.as_str()),
        error: v.error.as_deref(),
        gold_error: v.gold_error.as_deref(),
        pred: &pair.pred,
        gold: &pair.gold,
        gold_preview: &v.gold_preview,
        pred_preview: &v.pred_preview,
        difficulty,
        ts: None,
        ts_first_failing_db: None,
        line: None,
    }
}

pub fn options(mode: CompareMode, keep_distinct: bool, timeout_s: f64) -> Result<EvalOptions> {
    if !(timeout_s.is_finite() && timeout_s > 0.0) {
        bail!("--timeout must be a positive number of seconds, got {timeout_s}");
    }
    Ok(EvalOptions {
        mode,
        keep_distinct,
        exec: ExecOptions {
            timeout: Duration::from_secs_f64(timeout_s),
            ..ExecOptions::default()
        },
        ..EvalOptions::default()
    })
}

/// A bar over the pairs of a large evaluation (hidden for small ones).
fn pairs_bar(n: usize) -> ProgressBar {
    if n >= 2000 {
        let b = ProgressBar::new(n as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} pairs, {per_sec}, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    }
}

pub fn run(args: &EvalArgs) -> Result<()> {
    if let Some(pairs) = &args.pairs {
        let db_dir = args.db_dir.as_deref().context("--pairs needs --db-dir")?;
        return eval_pairs(args, pairs, db_dir);
    }
    let Some(name) = &args.benchmark else {
        bail!("give --benchmark NAME --pred FILE, or --pairs FILE --db-dir DIR");
    };
    let pred = args
        .pred
        .as_deref()
        .context("--benchmark needs --pred FILE (one SQL per line)")?;
    let split = if args.split == "train" {
        Split::Train
    } else {
        Split::Dev
    };
    let bench = crate::synth_cmd::open_benchmark(&args.data, name)?;
    eval_benchmark(args, &bench, split, pred)
}

fn read_predictions(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open predictions file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {} line {}", path.display(), i + 1))?;
        // Invalid UTF-8 is model output like any other: decode leniently, let SQLite judge it.
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let sql = text.split('\t').next().unwrap_or("").trim();
        out.push(sql.to_string());
    }
    Ok(out)
}

fn eval_benchmark(args: &EvalArgs, bench: &Benchmark, split: Split, pred: &Path) -> Result<()> {
    let examples = bench.examples(split)?;
    let preds = read_predictions(pred)?;
    if preds.len() != examples.len() {
        bail!(
            "{} has {} predictions but benchmark '{}' ({split}) has {} questions: one SQL per line, in order",
            pred.display(),
            preds.len(),
            bench.name(),
            examples.len()
        );
    }
    let mode = args.mode.unwrap_or(bench.spec.compare);
    let opts = options(mode, args.keep_distinct, args.timeout)?;
    let pairs: Vec<Pair> = examples
        .iter()
        .zip(&preds)
        .map(|(e, p)| Pair {
            id: e.index.to_string(),
            db_id: e.db_id.clone(),
            gold: e.query.clone(),
            pred: p.clone(),
        })
        .collect();
    let dirs = bench.database_dirs(split);
    let suite = if args.metric.iter().any(|m| m == "ts") {
        let dir = args.suite_dir.clone().unwrap_or_else(|| {
            kidbench_testsuite::default_suite_dir(&args.data.roots().databases, bench.suite_name())
        });
        Some(kidbench_testsuite::Suite::open_if_built(&dir)?.with_context(|| {
            format!(
                "--metric ts: no test suite in {} (build one with `kidbench testsuite build --benchmark {}`)",
                dir.display(),
                bench.name()
            )
        })?)
    } else {
        None
    };
    let start = Instant::now();
    let bar = pairs_bar(pairs.len());
    let scoring = kidbench_testsuite::score_pairs(
        &pairs,
        |db| {
            find_database(&dirs, db)
                .unwrap_or_else(|| dirs[0].join(db).join(format!("{db}.sqlite")))
        },
        &opts,
        suite.as_ref(),
        Some(&bar),
    );
    bar.finish_and_clear();
    let wall = start.elapsed();
    let verdicts = &scoring.verdicts;
    let ts = &scoring.ts;
    if let Some(out) = &args.out {
        write_records(
            out,
            pairs
                .iter()
                .zip(verdicts)
                .zip(&examples)
                .enumerate()
                .map(|(i, ((p, v), e))| {
                    let mut r = record(
                        serde_json::Value::from(e.index),
                        p,
                        v,
                        e.difficulty.as_deref(),
                    );
                    if let Some(t) = ts.as_ref().and_then(|t| t.verdicts.get(i)) {
                        r.ts = Some(t.ts);
                        r.ts_first_failing_db = t.ts_first_failing_db.as_deref();
                    }
                    r
                }),
        )?;
    }
    print_report(
        &format!("{} ({split}), mode {}", bench.name(), mode.as_str()),
        &scoring.summary,
        verdicts,
        wall,
    );
    print_difficulty(&examples, verdicts);
    if let Some(ts) = ts {
        print_ts(&ts.summary);
    }
    Ok(())
}

/// The cause written for a pairs-file line that cannot be read (scored 0).
const BAD_INPUT: &str = "bad_input";

/// Warnings about a pairs file, at most this many of each kind (then a count of the rest).
const WARNINGS_SHOWN: usize = 20;

fn eval_pairs(args: &EvalArgs, path: &Path, db_dir: &Path) -> Result<()> {
    let file = kidbench_testsuite::pairs::read_pairs(path)?;
    let suite = if args.metric.iter().any(|m| m == "ts") {
        let Some(dir) = &args.suite_dir else {
            bail!(
                "--metric ts with --pairs needs --suite-dir DIR: a test suite laid out by db_id \
                 (DIR/manifest.json, DIR/<db_id>/NN.sqlite), as `kidbench testsuite build \
                 --benchmark NAME --out DIR` writes it; or evaluate with --benchmark NAME --pred FILE"
            );
        };
        Some(
            kidbench_testsuite::Suite::open(dir).with_context(|| {
                format!("--metric ts: opening the test suite {}", dir.display())
            })?,
        )
    } else {
        None
    };
    let bad: Vec<String> = file.bad_lines().filter_map(|l| file.describe(l)).collect();
    for b in bad.iter().take(WARNINGS_SHOWN) {
        eprintln!("warning: {b} (scored 0, cause {BAD_INPUT})");
    }
    if bad.len() > WARNINGS_SHOWN {
        eprintln!(
            "warning: {}: {} more bad lines (in the --out records, cause {BAD_INPUT})",
            path.display(),
            bad.len() - WARNINGS_SHOWN
        );
    }
    for d in file.duplicates.iter().take(WARNINGS_SHOWN) {
        eprintln!(
            "warning: {}: id {:?} on line {} is also on line {} (both scored)",
            path.display(),
            d.id,
            d.line,
            d.first_line
        );
    }
    if file.duplicates.len() > WARNINGS_SHOWN {
        eprintln!(
            "warning: {}: {} more repeated ids",
            path.display(),
            file.duplicates.len() - WARNINGS_SHOWN
        );
    }
    if let Some(first) = file.lenient_lines.first() {
        eprintln!(
            "note: {}: a lone UTF-16 surrogate escape read as U+FFFD on {} line(s) (first: line {first})",
            path.display(),
            file.lenient_lines.len()
        );
    }
    let opts = options(
        args.mode.unwrap_or_default(),
        args.keep_distinct,
        args.timeout,
    )?;
    let start = Instant::now();
    let bar = pairs_bar(file.lines.len());
    let scoring = kidbench_testsuite::pairs::score_pairs_file(
        &file,
        |db| {
            find_database(&[db_dir.to_path_buf()], db)
                .unwrap_or_else(|| db_dir.join(db).join(format!("{db}.sqlite")))
        },
        &opts,
        suite.as_ref(),
        Some(&bar),
    );
    bar.finish_and_clear();
    let wall = start.elapsed();
    let verdicts = &scoring.verdicts;
    let ts = &scoring.ts;
    if let Some(out) = &args.out {
        write_records(
            out,
            file.lines
                .iter()
                .zip(verdicts)
                .enumerate()
                .map(|(i, (l, v))| {
                    let mut r = record(l.id.clone(), &l.pair, v, None);
                    r.line = Some(l.line);
                    if l.is_bad() {
                        r.cause = Some(BAD_INPUT);
                    }
                    if let Some(t) = ts.as_ref().and_then(|t| t.verdicts.get(i)) {
                        r.ts = Some(t.ts);
                        r.ts_first_failing_db = t.ts_first_failing_db.as_deref();
                    }
                    r
                }),
        )?;
    }
    print_report(
        &format!(
            "{} (db dir {}), mode {}",
            path.display(),
            shown(db_dir),
            opts.mode.as_str()
        ),
        &scoring.summary,
        verdicts,
        wall,
    );
    if !bad.is_empty() {
        println!(
            "  {} bad line{} (scored 0, cause {BAD_INPUT}; listed above)",
            bad.len(),
            if bad.len() == 1 { "" } else { "s" }
        );
    }
    if !file.duplicates.is_empty() {
        let n = file.duplicates.len();
        println!(
            "  {n} duplicate id{} (each line scored; listed above)",
            if n == 1 { "" } else { "s" }
        );
    }
    if let Some(ts) = ts {
        print_ts(&ts.summary);
    }
    Ok(())
}

fn write_records<'a>(path: &Path, records: impl Iterator<Item = Record<'a>>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = path.with_extension("jsonl.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut w = BufWriter::new(file);
    for r in records {
        serde_json::to_writer(&mut w, &r)?;
        w.write_all(b"\n")?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(w);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// EX overall and per hardness, coverage and failure causes.
pub fn print_report(title: &str, s: &Summary, verdicts: &[Verdict], wall: Duration) {
    println!("{title}");
    let mut missing: BTreeMap<&str, usize> = BTreeMap::new();
    for v in verdicts.iter().filter(|v| v.skipped()) {
        *missing.entry(v.db_id.as_str()).or_insert(0) += 1;
    }
    if s.skipped_missing_database > 0 {
        let list: Vec<String> = missing.iter().map(|(d, n)| format!("{d}: {n}")).collect();
        println!(
            "  skipped {} of {} questions: database file missing ({})",
            s.skipped_missing_database,
            s.total,
            list.join(", ")
        );
    }
    let mut levels: Vec<String> = Hardness::ALL.iter().map(|h| h.to_string()).collect();
    if s.by_hardness.contains_key("unknown") {
        levels.push("unknown".into());
    }
    print!("  {:<10}", "");
    for l in &levels {
        print!("{l:>9}");
    }
    println!("{:>9}", "all");
    print!("  {:<10}", "count");
    for l in &levels {
        print!("{:>9}", s.by_hardness.get(l).map_or(0, |c| c.0));
    }
    println!("{:>9}", s.evaluated);
    print!("  {:<10}", "EX %");
    for l in &levels {
        match s.by_hardness.get(l) {
            Some(&(n, m)) if n > 0 => print!("{:>9.1}", 100.0 * m as f64 / n as f64),
            _ => print!("{:>9}", "-"),
        }
    }
    println!("{:>9.1}", 100.0 * s.ex);
    println!(
        "  coverage {:.1}% ({} of {} evaluated), wall {:.2} s",
        100.0 * s.coverage,
        s.evaluated,
        s.total,
        wall.as_secs_f64()
    );
    if !s.causes.is_empty() {
        let c: Vec<String> = s.causes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("  prediction failures: {}", c.join(", "));
    }
    if !s.gold_causes.is_empty() {
        let c: Vec<String> = s
            .gold_causes
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("  gold failures (scored 0): {}", c.join(", "));
    }
}

/// BIRD's own levels (simple/moderate/challenging), when the benchmark carries them.
fn print_difficulty(examples: &[Example], verdicts: &[Verdict]) {
    let mut by: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (e, v) in examples.iter().zip(verdicts) {
        if let (Some(d), false) = (e.difficulty.as_deref(), v.skipped()) {
            let c = by.entry(d).or_insert((0, 0));
            c.0 += 1;
            c.1 += usize::from(v.matched);
        }
    }
    if !by.is_empty() {
        let parts: Vec<String> = by
            .iter()
            .map(|(d, (n, m))| format!("{d} {:.1}% of {n}", 100.0 * *m as f64 / *n as f64))
            .collect();
        println!("  by difficulty: {}", parts.join(", "));
    }
}

/// TS beside EX per hardness level.
fn print_ts(s: &kidbench_testsuite::TsSummary) {
    let pct = |a: usize, n: usize| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", 100.0 * a as f64 / n as f64)
        }
    };
    print!("  {:<10}", "TS %");
    for h in Hardness::ALL {
        let l = s.by_hardness.get(h.as_str()).copied().unwrap_or_default();
        print!("{:>9}", pct(l.ts, l.count));
    }
    println!("{:>9}", pct(s.all.ts, s.all.count));
    println!(
        "  test suite: {} questions right on the original database but told apart by the suite; {} (question, suite database) pairs skipped because the gold failed there; {} questions without a suite",
        s.ex_not_ts, s.gold_failed_on_suite, s.questions_without_suite
    );
}
