//! `kidbench-testsuite`: distilled test suites and test-suite accuracy (TS).
//!
//! Test-suite accuracy (Zhong, Yu and Klein, EMNLP 2020) judges a predicted query on the
//! original database *and* on a small set of extra databases chosen so that near-miss queries
//! ("neighbours") of the gold query give a different result on at least one of them. A
//! prediction that is right only by accident of the original data (`>` for `>=` where no row
//! sits on the boundary) is caught.
//!
//! The published suites are not available here, so kidbench builds its own:
//!
//! - [`neighbours`]: near-miss variants of every gold query, made on the sqlparser AST;
//! - [`fuzz`]: random databases with the original schema (types, primary keys, `NOT NULL`,
//!   foreign keys), filled from the original values and the gold queries' literals;
//! - [`build`]: greedy distillation of the candidates that tell the most pairs apart, into
//!   `<out>/<db_id>/NN.sqlite` plus `manifest.json`;
//! - [`verdict`]: TS verdicts and summaries, using kidbench-sql's executor and comparison rules
//!   through [`check`];
//! - [`pairs`]: reading a pairs file (`kidbench eval --pairs`), bad lines kept and scored 0.
//!
//! A suite records the size and SHA-256 of each database; [`verify_suite`] (and so
//! [`Suite::open`]) checks them before use, and a build reuses only what verifies.
//!
//! The CLI front ends are [`TestsuiteBuildArgs`] (`kidbench testsuite build`) and
//! [`evaluate_ts`] (`kidbench eval --metric ex,ts`).

pub mod build;
pub mod check;
pub mod error;
pub mod fuzz;
pub mod neighbours;
pub mod pairs;
pub mod score;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kidbench_sql::benchmark::{Benchmark, Registry, Roots, Split};

pub use build::{
    build_suite, ensure_suite, verify_suite, BuildConfig, FileSum, Manifest, SchemaGolds,
    SchemaManifest, SuiteBuild,
};
pub use error::TestsuiteError;
pub use kidbench_sql::eval::{EvalOptions, Pair};
pub use score::{score_pairs, Scoring};
pub use verdict::{evaluate_ts, ts_from_ex, Suite, TsReport, TsSummary, TsVerdict};

/// Where a benchmark's suite lives by default: `<databases>/testsuites/<benchmark>/`.
pub fn default_suite_dir(databases_root: &Path, benchmark: &str) -> PathBuf {
    databases_root.join("testsuites").join(benchmark)
}

/// Groups a benchmark split's gold queries by schema and finds each original database.
pub fn schema_golds(bench: &Benchmark, split: Split) -> Result<Vec<SchemaGolds>, TestsuiteError> {
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ex in bench.examples(split)? {
        by_db.entry(ex.db_id).or_default().push(ex.query);
    }
    Ok(by_db
        .into_iter()
        .map(|(db_id, golds)| SchemaGolds {
            database: bench.database_path(split, &db_id),
            db_id,
            golds,
        })
        .collect())
}

/// Builds (or resumes) the suite of a benchmark's dev split.
pub fn build_benchmark(
    bench: &Benchmark,
    out: &Path,
    cfg: &BuildConfig,
) -> Result<Manifest, TestsuiteError> {
    let schemas = schema_golds(bench, Split::Dev)?;
    build_suite(bench.name(), &schemas, out, cfg)
}

/// `kidbench testsuite build`: distil a test suite for a benchmark's dev split.
#[derive(Debug, Clone, clap::Args)]
pub struct TestsuiteBuildArgs {
    /// Benchmark whose dev questions and databases the suite is built for.
    #[arg(long, default_value = "spider-dev")]
    pub benchmark: String,
    /// At most this many fuzzed databases per schema.
    #[arg(long, default_value_t = 10)]
    pub per_schema: usize,
    /// Seed of every random choice; the same seed gives the same suite.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder [default: <databases>/testsuites/<benchmark>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Candidate databases tried per schema at most.
    #[arg(long, default_value_t = 1200)]
    pub max_candidates: usize,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl TestsuiteBuildArgs {
    /// The build settings these arguments select.
    pub fn config(&self) -> BuildConfig {
        BuildConfig {
            per_schema: self.per_schema,
            seed: self.seed,
            max_candidates: self.max_candidates,
            progress: !self.quiet,
            ..BuildConfig::default()
        }
    }

    /// The output folder: `--out`, or [`default_suite_dir`].
    pub fn out_dir(&self, roots: &Roots) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| default_suite_dir(&roots.databases, &self.benchmark))
    }

    /// Opens the benchmark in `registry` and builds what its suite lacks ([`ensure_suite`]:
    /// schemas whose files do not verify are rebuilt, with a line naming the file); returns
    /// the manifest (also in `<out>/manifest.json`). Says on stderr when the suite was
    /// complete and verified.
    pub fn run(&self, registry: &Registry, roots: &Roots) -> Result<Manifest, TestsuiteError> {
        let bench = registry.open(&self.benchmark, roots)?;
        let out = self.out_dir(roots);
        let b = ensure_suite(
            bench.name(),
            &schema_golds(&bench, Split::Dev)?,
            &out,
            &self.config(),
        )?;
        if b.up_to_date {
            eprintln!(
                "kidbench: the test suite in {} is up to date ({} databases verified)",
                out.display(),
                b.manifest.totals.databases
            );
        } else if !b.built.is_empty() {
            eprintln!(
                "kidbench: built {} of {} schemas ({} rebuilt because a file did not match)",
                b.built.len(),
                b.manifest.schemas.len(),
                b.rebuilt.len()
            );
        }
        Ok(b.manifest)
    }
}

/// A one-paragraph human summary of a manifest (for the CLI).
pub fn describe_manifest(m: &Manifest, dir: &Path) -> String {
    let t = &m.totals;
    let mut s = format!(
        "test suite for {} in {}: {} databases over {} schemas (seed {}, at most {} per schema), built in {:.1}s\n\
         neighbours: {} generated, {} equal by the comparison rules, {} failing on the original, {} testable\n\
         distinguished: {} of {} ({:.1}%): {} by the original database, {} by the suite ({:.1}% of the rest); {} left over (listed in manifest.json)",
        m.benchmark,
        dir.display(),
        t.databases,
        t.schemas,
        m.seed,
        m.per_schema,
        m.build_seconds,
        t.neighbours_generated,
        t.equivalent_by_rule,
        t.neighbours_failed_original,
        t.testable,
        t.distinguished_by_original + t.distinguished_by_suite,
        t.testable,
        t.distinguished_pct,
        t.distinguished_by_original,
        t.distinguished_by_suite,
        t.distinguished_by_suite_pct,
        t.left_over,
    );
    for (db_id, why) in &m.missing {
        s.push_str(&format!("\nnot covered: {db_id} ({why})"));
    }
    s
}
