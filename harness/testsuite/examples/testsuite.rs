//! Stand-alone front end until `kidbench testsuite build` / `kidbench eval --metric ts` are wired:
//!
//! ```text
//! cargo run -p kidbench-testsuite --example testsuite -- build --benchmark spider-dev
//! cargo run -p kidbench-testsuite --example testsuite -- gold-vs-gold --benchmark spider-dev
//! ```
//!
//! `--data-dir` (or `KIDBENCH_DATA`) is the folder holding `spider/`; `--databases-dir` is
//! kidbench's `databases/` folder (default `databases`).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};
use kidbench_sql::benchmark::{Registry, Roots, Split};
use kidbench_testsuite::{
    default_suite_dir, describe_manifest, evaluate_ts, EvalOptions, Pair, Suite, TestsuiteBuildArgs,
};

#[derive(Parser)]
struct Cli {
    #[arg(long, env = "KIDBENCH_DATA", default_value = "data")]
    data_dir: PathBuf,
    #[arg(long, default_value = "databases")]
    databases_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or resume) a test suite.
    Build(TestsuiteBuildArgs),
    /// TS of the gold queries against themselves (must be 100 % on covered schemas), timed.
    GoldVsGold {
        #[arg(long, default_value = "spider-dev")]
        benchmark: String,
        #[arg(long)]
        suite: Option<PathBuf>,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let roots = Roots {
        data: cli.data_dir.clone(),
        databases: cli.databases_dir.clone(),
    };
    let registry = Registry::builtin();
    match cli.cmd {
        Cmd::Build(args) => {
            let m = args.run(&registry, &roots)?;
            println!("{}", describe_manifest(&m, &args.out_dir(&roots)));
        }
        Cmd::GoldVsGold { benchmark, suite } => {
            let bench = registry.open(&benchmark, &roots)?;
            let dir = suite.unwrap_or_else(|| default_suite_dir(&roots.databases, &benchmark));
            let suite = Suite::open(&dir)?;
            let pairs: Vec<Pair> = bench
                .examples(Split::Dev)?
                .into_iter()
                .map(|e| Pair {
                    id: e.index.to_string(),
                    db_id: e.db_id,
                    pred: e.query.clone(),
                    gold: e.query,
                })
                .collect();
            let t = Instant::now();
            let r = evaluate_ts(
                &pairs,
                |id: &str| {
                    bench
                        .database_path(Split::Dev, id)
                        .unwrap_or_else(|| roots.data.join("missing").join(id))
                },
                Some(&suite),
                &EvalOptions::default(),
            );
            let secs = t.elapsed().as_secs_f64();
            let s = &r.summary;
            println!(
                "{} pairs in {secs:.2}s: EX {}/{} ({:.1}%), TS {}/{} ({:.1}%), {} skipped (no database), {} without suite, {} gold failures on suite databases",
                pairs.len(),
                s.all.ex,
                s.all.count,
                s.all.ex_pct(),
                s.all.ts,
                s.all.count,
                s.all.ts_pct(),
                s.skipped_missing_database,
                s.questions_without_suite,
                s.gold_failed_on_suite
            );
            for (level, l) in &s.by_hardness {
                println!(
                    "  {level:<8} {:>4}  EX {:5.1}%  TS {:5.1}%",
                    l.count,
                    l.ex_pct(),
                    l.ts_pct()
                );
            }
        }
    }
    Ok(())
}
