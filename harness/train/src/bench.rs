//! Benchmark data for training and evaluation: registry lookup (generating `synth` and its test
//! suite when they are missing), examples → CodeS prompts (one prompter per database) and database checksums.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use kidbench_sql::benchmark::{Benchmark, Registry, Roots, Split};
use kidbench_sql::prompt::{DatabasePrompter, PromptOptions};
use kidbench_sql::schema::{load_tables_json_map, schema_from_sqlite, Schema};

/// One question with its prompt.
#[derive(Debug, Clone)]
pub struct Item {
    /// Position in the split file.
    pub index: usize,
    pub db_id: String,
    pub question: String,
    pub gold: String,
    pub prompt: String,
}

/// The usable questions of a split.
#[derive(Debug, Clone)]
pub struct SplitData {
    pub items: Vec<Item>,
    /// Questions skipped because their database file is missing.
    pub skipped_missing_db: usize,
    /// Databases used: db_id → SQLite file.
    pub databases: BTreeMap<String, PathBuf>,
}

/// Opens a benchmark. `synth` is generated into `<databases_dir>/synth` when missing, stale or
/// damaged (its files are checked against its manifest), and its test suite (for TS) is built
/// into `<databases_dir>/testsuites/synth` right after (or whenever it is missing or does not
/// verify); both under a lock file, so concurrent runs do not collide.
pub fn open(
    name: &str,
    data_dir: &Path,
    databases_dir: &Path,
    progress: bool,
) -> anyhow::Result<Benchmark> {
    let registry = Registry::builtin();
    let roots = Roots {
        data: data_dir.to_path_buf(),
        databases: databases_dir.to_path_buf(),
    };
    let bench = registry.open(name, &roots)?;
    // synth's derived benchmarks read synth's files: generated the same way.
    if is_synth(bench.name()) {
        let out = databases_dir.join("synth");
        let suite_dir = kidbench_testsuite::default_suite_dir(databases_dir, "synth");
        let synth = registry.open("synth", &roots)?;
        let cfg = kidbench_synth::SynthConfig::default();
        let _lock = LockFile::acquire(&databases_dir.join(".synth.lock"))?;
        // Every file is checked against synth's manifest (size and SHA-256); a mismatch is
        // named and the folder regenerated.
        let ensured = kidbench_synth::ensure(&out, &cfg, false)
            .with_context(|| format!("generating synth into {}", out.display()))?;
        // The suite is checked the same way; one of an older synth, one without checksums
        // (built by an older kidbench) and one whose files do not match are rebuilt.
        let suite = match kidbench_testsuite::verify_suite(&suite_dir) {
            _ if ensured.generated.is_some() => Err("synth was regenerated".to_string()),
            Ok(m) if !m.has_checksums() => Err("it has no checksums (an older kidbench)".into()),
            Ok(_) => Ok(()),
            Err(_) if !suite_dir.join("manifest.json").is_file() => Err("it is missing".into()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = suite {
            eprintln!(
                "kidbench: rebuilding the synth test suite in {}: {why}",
                suite_dir.display()
            );
            build_synth_suite(&synth, &suite_dir, progress)?;
        }
    }
    Ok(bench)
}

/// Whether a benchmark reads the generated synth folder.
pub fn is_synth(name: &str) -> bool {
    matches!(
        name,
        "synth"
            | "synth-fit"
            | "synth-val"
            | "synth-tv"
            | "synth-syn"
            | "synth-realistic"
            | "synth-syn-tv"
            | "synth-realistic-tv"
    )
}

/// The settings of the synth suite (`kidbench testsuite build --benchmark synth` defaults).
pub fn synth_suite_config(progress: bool) -> kidbench_testsuite::BuildConfig {
    kidbench_testsuite::BuildConfig {
        progress,
        ..kidbench_testsuite::BuildConfig::default()
    }
}

/// Builds the synth test suite from scratch into `dir` (a suite of an older synth is removed
/// first: its schemas would otherwise be reused).
fn build_synth_suite(bench: &Benchmark, dir: &Path, progress: bool) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    eprintln!(
        "kidbench: building the synth test suite (for TS) in {}",
        dir.display()
    );
    let m = kidbench_testsuite::build_benchmark(bench, dir, &synth_suite_config(progress))
        .with_context(|| format!("building the synth test suite in {}", dir.display()))?;
    eprintln!(
        "kidbench: synth test suite: {} databases over {} schemas in {:.1}s",
        m.totals.databases, m.totals.schemas, m.build_seconds
    );
    Ok(())
}

/// The cross-process lock (flock; released by the OS when its holder dies).
pub use kidbench_results::LockFile;

/// Loads a split's questions and builds their prompts; keeps at most `limit` questions.
pub fn load_split(
    bench: &Benchmark,
    split: Split,
    limit: Option<usize>,
    options: &PromptOptions,
) -> anyhow::Result<SplitData> {
    let examples = bench
        .examples(split)
        .with_context(|| format!("loading the {split} split of {}", bench.name()))?;
    let schemas: BTreeMap<String, Schema> = match bench.tables_path(split) {
        Some(p) if p.is_file() => {
            load_tables_json_map(&p).with_context(|| format!("reading schemas {}", p.display()))?
        }
        _ => BTreeMap::new(),
    };
    let use_evidence = bench.spec.evidence;
    let mut prompters: BTreeMap<String, Option<DatabasePrompter>> = BTreeMap::new();
    let mut databases = BTreeMap::new();
    let mut items = Vec::new();
    let mut skipped = 0usize;
    for ex in examples.iter().take(limit.unwrap_or(usize::MAX)) {
        let prompter = match prompters.get(&ex.db_id) {
            Some(p) => p.as_ref(),
            None => {
                let p = match bench.database_path(split, &ex.db_id) {
                    Some(path) => {
                        let schema = match schemas.get(&ex.db_id) {
                            Some(s) => s.clone(),
                            None => schema_from_sqlite(&path, &ex.db_id).with_context(|| {
                                format!("reading the schema of {}", path.display())
                            })?,
                        };
                        let p = DatabasePrompter::new(&path, &schema, options.clone())
                            .with_context(|| {
                                format!("building the prompt of {}", path.display())
                            })?;
                        databases.insert(ex.db_id.clone(), path);
                        Some(p)
                    }
                    None => None,
                };
                prompters.entry(ex.db_id.clone()).or_insert(p).as_ref()
            }
        };
        let Some(prompter) = prompter else {
            skipped += 1;
            continue;
        };
        let question = ex.model_question(use_evidence);
        items.push(Item {
            index: ex.index,
            db_id: ex.db_id.clone(),
            prompt: prompter.prompt(&question),
            question,
            gold: ex.query.clone(),
        });
    }
    if skipped > 0 {
        let missing: Vec<&String> = prompters
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(k, _)| k)
            .collect();
        eprintln!(
            "kidbench: {}: skipped {skipped} {split} question(s) whose database is missing ({} database(s): {})",
            bench.name(),
            missing.len(),
            missing.iter().take(5).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(SplitData {
        items,
        skipped_missing_db: skipped,
        databases,
    })
}

/// SHA-256 (hex) of a file.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// Checksums of the benchmark's question and schema files of a split (for cache keys).
pub fn file_checksums(bench: &Benchmark, split: Split) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut paths = bench.question_paths(split)?;
    paths.extend(bench.tables_path(split));
    for p in paths {
        if p.is_file() {
            out.insert(p.display().to_string(), sha256_file(&p)?);
        }
    }
    Ok(out)
}
