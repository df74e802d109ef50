//! Benchmark data for training and evaluation: registry lookup (generating `synth` when it is
//! missing), examples → CodeS prompts (one prompter per database) and database checksums.

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

/// Opens a benchmark; `synth` is generated into `<databases_dir>/synth` when missing or stale.
pub fn open(name: &str, data_dir: &Path, databases_dir: &Path) -> anyhow::Result<Benchmark> {
    let registry = Registry::builtin();
    let roots = Roots {
        data: data_dir.to_path_buf(),
        databases: databases_dir.to_path_buf(),
    };
    let bench = registry.open(name, &roots)?;
    if bench.name() == "synth" {
        let out = databases_dir.join("synth");
        let cfg = kidbench_synth::SynthConfig::default();
        if !kidbench_synth::is_current(&out, &cfg) {
            eprintln!(
                "kidbench: generating the synth benchmark in {}",
                out.display()
            );
            kidbench_synth::generate(&out, &cfg)
                .with_context(|| format!("generating synth into {}", out.display()))?;
        }
    }
    Ok(bench)
}

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
