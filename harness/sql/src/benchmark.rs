//! The benchmark registry: one small TOML file per benchmark under `benchmarks/`.
//!
//! A benchmark names its question files (Spider or BIRD format), the folders that hold its
//! databases (`<folder>/<db_id>/<db_id>.sqlite`, searched in order), its schema file and its
//! comparison mode. Users add a benchmark by dropping a TOML file into a folder given with
//! `--benchmarks-dir` or `KIDBENCH_BENCHMARKS`; the shipped files are compiled in.
//!
//! Paths are relative to the data directory (`--data-dir`, `KIDBENCH_DATA`), or to kidbench's own
//! `databases/` folder for benchmarks it generates (`location = "databases"`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::compare::CompareMode;

/// Errors of the registry and the loaders; each names the file or benchmark at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchmarkError {
    #[error("unknown benchmark '{name}'; available: {}", available.join(", "))]
    Unknown {
        name: String,
        available: Vec<String>,
    },
    #[error("benchmark file {path}: {message}")]
    Spec { path: String, message: String },
    #[error("benchmark '{benchmark}': cannot read {path}: {source}")]
    Io {
        benchmark: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("benchmark '{benchmark}': {path}: {message}")]
    Format {
        benchmark: String,
        path: PathBuf,
        message: String,
    },
    #[error("benchmark '{benchmark}' has no {split} split")]
    NoSplit { benchmark: String, split: Split },
}

/// Question-file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Spider: `db_id`, `question`, `query` (also Spider-DK, -Syn, -Realistic).
    Spider,
    /// BIRD: `db_id`, `question`, `evidence`, `SQL`, `difficulty`.
    Bird,
}

/// Where a benchmark's relative paths start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// The user's data directory (`--data-dir`, `KIDBENCH_DATA`).
    #[default]
    Data,
    /// kidbench's own `databases/` folder (generated benchmarks).
    Databases,
}

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Dev,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Dev => "dev",
        })
    }
}

/// One benchmark file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub format: Format,
    #[serde(default)]
    pub location: Location,
    /// Evaluation question files (concatenated in order).
    pub questions: Vec<String>,
    /// Training question files, if the benchmark has a training split.
    #[serde(default)]
    pub train: Vec<String>,
    /// Schema file (Spider `tables.json` format) for the evaluation split.
    #[serde(default)]
    pub tables: Option<String>,
    /// Schema file for the training split (defaults to `tables`).
    #[serde(default)]
    pub train_tables: Option<String>,
    /// Database folders for the evaluation split, searched in order.
    pub databases: Vec<String>,
    /// Database folders for the training split (defaults to `databases`).
    #[serde(default)]
    pub train_databases: Vec<String>,
    #[serde(default)]
    pub compare: CompareMode,
    /// Field holding the question, when not `question` (Spider-Syn: `SpiderSynQuestion`).
    #[serde(default)]
    pub question_field: Option<String>,
    /// BIRD: give the model the external-knowledge evidence ("w/ EK").
    #[serde(default)]
    pub evidence: bool,
    /// The benchmark whose test suite this one uses (same dev databases and gold queries, other
    /// questions: `synth-syn` uses `synth`'s); default: its own.
    #[serde(default)]
    pub suite: Option<String>,
}

/// One question of a benchmark.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Example {
    /// Position in the split (0-based), the order of prediction files.
    pub index: usize,
    pub db_id: String,
    pub question: String,
    pub query: String,
    /// BIRD's external knowledge, when the file has it.
    pub evidence: Option<String>,
    /// BIRD's difficulty label (simple/moderate/challenging), when the file has it.
    pub difficulty: Option<String>,
}

impl Example {
    /// The text given to a model: with the evidence prepended when `use_evidence`.
    pub fn model_question(&self, use_evidence: bool) -> String {
        match (&self.evidence, use_evidence) {
            (Some(e), true) if !e.trim().is_empty() => format!("{} {}", e.trim(), self.question),
            _ => self.question.clone(),
        }
    }
}

/// Where relative paths are resolved.
#[derive(Debug, Clone)]
pub struct Roots {
    pub data: PathBuf,
    pub databases: PathBuf,
}

/// A benchmark spec bound to concrete directories.
#[derive(Debug, Clone)]
pub struct Benchmark {
    pub spec: BenchmarkSpec,
    pub base: PathBuf,
}

const BUILTIN: &[(&str, &str)] = &[
    (
        "spider-dev.toml",
        include_str!("../../../benchmarks/spider-dev.toml"),
    ),
    (
        "spider-train.toml",
        include_str!("../../../benchmarks/spider-train.toml"),
    ),
    (
        "spider-dk.toml",
        include_str!("../../../benchmarks/spider-dk.toml"),
    ),
    (
        "spider-syn.toml",
        include_str!("../../../benchmarks/spider-syn.toml"),
    ),
    (
        "spider-realistic.toml",
        include_str!("../../../benchmarks/spider-realistic.toml"),
    ),
    (
        "bird-dev.toml",
        include_str!("../../../benchmarks/bird-dev.toml"),
    ),
    (
        "bird-dev-noek.toml",
        include_str!("../../../benchmarks/bird-dev-noek.toml"),
    ),
    ("synth.toml", include_str!("../../../benchmarks/synth.toml")),
    (
        "synth-fit.toml",
        include_str!("../../../benchmarks/synth-fit.toml"),
    ),
    (
        "synth-val.toml",
        include_str!("../../../benchmarks/synth-val.toml"),
    ),
    (
        "synth-tv.toml",
        include_str!("../../../benchmarks/synth-tv.toml"),
    ),
    (
        "synth-syn.toml",
        include_str!("../../../benchmarks/synth-syn.toml"),
    ),
    (
        "synth-realistic.toml",
        include_str!("../../../benchmarks/synth-realistic.toml"),
    ),
    (
        "synth-syn-tv.toml",
        include_str!("../../../benchmarks/synth-syn-tv.toml"),
    ),
    (
        "synth-realistic-tv.toml",
        include_str!("../../../benchmarks/synth-realistic-tv.toml"),
    ),
];

/// All known benchmarks: the shipped ones, overridden or extended by user folders.
#[derive(Debug, Clone)]
pub struct Registry {
    specs: BTreeMap<String, (BenchmarkSpec, String)>,
}

impl Registry {
    /// The benchmarks shipped with kidbench (compiled in).
    pub fn builtin() -> Self {
        let mut r = Registry {
            specs: BTreeMap::new(),
        };
        for (file, text) in BUILTIN {
            // The shipped files are tested (`builtin_specs_parse`); a failure here is a build bug.
            let spec = parse_spec(text, &format!("benchmarks/{file}"))
                .unwrap_or_else(|e| panic!("shipped benchmark file is invalid: {e}"));
            r.specs
                .insert(spec.name.clone(), (spec, format!("builtin:{file}")));
        }
        r
    }

    /// Adds every `*.toml` in `dir` (a user file replaces a shipped one of the same name).
    pub fn add_dir(&mut self, dir: &Path) -> Result<usize, BenchmarkError> {
        let io = |source| BenchmarkError::Io {
            benchmark: "<registry>".into(),
            path: dir.to_path_buf(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in &paths {
            let text = std::fs::read_to_string(p).map_err(|source| BenchmarkError::Io {
                benchmark: "<registry>".into(),
                path: p.clone(),
                source,
            })?;
            let spec = parse_spec(&text, &p.display().to_string())?;
            self.specs
                .insert(spec.name.clone(), (spec, p.display().to_string()));
        }
        Ok(paths.len())
    }

    pub fn names(&self) -> Vec<String> {
        self.specs.keys().cloned().collect()
    }

    /// The spec and where it came from (`builtin:<file>` or a path).
    pub fn get(&self, name: &str) -> Result<(&BenchmarkSpec, &str), BenchmarkError> {
        self.specs
            .get(name)
            .map(|(s, src)| (s, src.as_str()))
            .ok_or_else(|| BenchmarkError::Unknown {
                name: name.to_string(),
                available: self.names(),
            })
    }

    /// Binds a benchmark to the directories its paths are relative to.
    pub fn open(&self, name: &str, roots: &Roots) -> Result<Benchmark, BenchmarkError> {
        let (spec, _) = self.get(name)?;
        let base = match spec.location {
            Location::Data => roots.data.clone(),
            Location::Databases => roots.databases.clone(),
        };
        Ok(Benchmark {
            spec: spec.clone(),
            base,
        })
    }
}

fn parse_spec(text: &str, origin: &str) -> Result<BenchmarkSpec, BenchmarkError> {
    let spec: BenchmarkSpec = toml::from_str(text).map_err(|e| BenchmarkError::Spec {
        path: origin.to_string(),
        message: e.to_string(),
    })?;
    let bad = |m: &str| BenchmarkError::Spec {
        path: origin.to_string(),
        message: m.to_string(),
    };
    if spec.name.trim().is_empty() {
        return Err(bad("`name` is empty"));
    }
    if spec.questions.is_empty() {
        return Err(bad("`questions` lists no file"));
    }
    if spec.databases.is_empty() {
        return Err(bad("`databases` lists no folder"));
    }
    Ok(spec)
}

impl Benchmark {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The name its test suite is filed under (`databases/testsuites/<name>`).
    pub fn suite_name(&self) -> &str {
        self.spec.suite.as_deref().unwrap_or(&self.spec.name)
    }

    fn files(&self, split: Split) -> Result<&[String], BenchmarkError> {
        let files = match split {
            Split::Dev => &self.spec.questions,
            Split::Train => &self.spec.train,
        };
        if files.is_empty() {
            return Err(BenchmarkError::NoSplit {
                benchmark: self.spec.name.clone(),
                split,
            });
        }
        Ok(files)
    }

    /// The question files of a split, resolved.
    pub fn question_paths(&self, split: Split) -> Result<Vec<PathBuf>, BenchmarkError> {
        Ok(self
            .files(split)?
            .iter()
            .map(|f| self.base.join(f))
            .collect())
    }

    /// The database folders of a split, resolved, in search order.
    pub fn database_dirs(&self, split: Split) -> Vec<PathBuf> {
        let dirs = match split {
            Split::Train if !self.spec.train_databases.is_empty() => &self.spec.train_databases,
            _ => &self.spec.databases,
        };
        dirs.iter().map(|d| self.base.join(d)).collect()
    }

    /// The schema file of a split, resolved, if the benchmark names one.
    pub fn tables_path(&self, split: Split) -> Option<PathBuf> {
        let t = match split {
            Split::Train => self
                .spec
                .train_tables
                .as_ref()
                .or(self.spec.tables.as_ref()),
            Split::Dev => self.spec.tables.as_ref(),
        };
        t.map(|t| self.base.join(t))
    }

    /// `<dir>/<db_id>/<db_id>.sqlite` in the first database folder that has it.
    pub fn database_path(&self, split: Split, db_id: &str) -> Option<PathBuf> {
        find_database(&self.database_dirs(split), db_id)
    }

    /// Loads the questions of a split, in file order.
    pub fn examples(&self, split: Split) -> Result<Vec<Example>, BenchmarkError> {
        let mut out = Vec::new();
        for path in self.question_paths(split)? {
            let text = std::fs::read_to_string(&path).map_err(|source| BenchmarkError::Io {
                benchmark: self.spec.name.clone(),
                path: path.clone(),
                source,
            })?;
            parse_examples(
                &text,
                self.spec.format,
                self.spec.question_field.as_deref(),
                &mut out,
            )
            .map_err(|message| BenchmarkError::Format {
                benchmark: self.spec.name.clone(),
                path: path.clone(),
                message,
            })?;
        }
        Ok(out)
    }
}

/// `<dir>/<db_id>/<db_id>.sqlite` in the first of `dirs` that has it.
pub fn find_database(dirs: &[PathBuf], db_id: &str) -> Option<PathBuf> {
    // A db_id is a folder name: never let one climb out of the database folders.
    if db_id.is_empty() || db_id.contains(['/', '\\']) || db_id == "." || db_id == ".." {
        return None;
    }
    dirs.iter()
        .map(|d| d.join(db_id).join(format!("{db_id}.sqlite")))
        .find(|p| p.is_file())
}

/// Parses a Spider- or BIRD-format question file, appending to `out` (indices continue).
pub fn parse_examples(
    text: &str,
    format: Format,
    question_field: Option<&str>,
    out: &mut Vec<Example>,
) -> Result<(), String> {
    let items: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON list of questions: {e}"))?;
    let (query_key, default_question) = match format {
        Format::Spider => ("query", "question"),
        Format::Bird => ("SQL", "question"),
    };
    let question_key = question_field.unwrap_or(default_question);
    for (i, item) in items.iter().enumerate() {
        let field = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let need = |k: &str| field(k).ok_or_else(|| format!("entry {i} has no string field `{k}`"));
        out.push(Example {
            index: out.len(),
            db_id: need("db_id")?,
            question: need(question_key)?,
            query: need(query_key)?,
            evidence: field("evidence"),
            difficulty: field("difficulty"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_specs_parse() {
        let r = Registry::builtin();
        for name in [
            "spider-dev",
            "spider-train",
            "spider-dk",
            "spider-syn",
            "spider-realistic",
            "bird-dev",
            "bird-dev-noek",
            "synth",
        ] {
            assert!(r.get(name).is_ok(), "{name} missing from the registry");
        }
        assert_eq!(r.names().len(), BUILTIN.len());
    }

    #[test]
    fn unknown_benchmark_lists_what_exists() {
        let err = Registry::builtin()
            .get("spidr-dev")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown benchmark 'spidr-dev'"), "{err}");
        assert!(err.contains("spider-dev") && err.contains("synth"), "{err}");
    }

    #[test]
    fn bad_spec_names_the_file() {
        let err = parse_spec("name = \"x\"\nformat = \"spider\"\n", "my.toml").unwrap_err();
        assert!(err.to_string().contains("my.toml"), "{err}");
        let err = parse_spec(
            "name='x'\nformat='spider'\nquestions=['a']\ndatabases=['b']\nbogus=1",
            "b.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn bird_fields_and_evidence() {
        let mut out = Vec::new();
        let text = r#"[{"db_id":"d","question":"How many?","evidence":"x refers to y","SQL":"SELECT 1","difficulty":"simple"}]"#;
        parse_examples(text, Format::Bird, None, &mut out).unwrap();
        assert_eq!(out[0].query, "SELECT 1");
        assert_eq!(out[0].difficulty.as_deref(), Some("simple"));
        assert_eq!(out[0].model_question(true), "x refers to y How many?");
        assert_eq!(out[0].model_question(false), "How many?");
    }

    #[test]
    fn missing_field_names_entry() {
        let mut out = Vec::new();
        let err = parse_examples(
            r#"[{"db_id":"d","query":"q"}]"#,
            Format::Spider,
            None,
            &mut out,
        )
        .unwrap_err();
        assert!(err.contains("entry 0") && err.contains("question"), "{err}");
    }

    #[test]
    fn user_dir_adds_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            "name='mine'\nformat='spider'\nquestions=['q.json']\ndatabases=['db']\ncompare='strict'\n",
        )
        .unwrap();
        let mut r = Registry::builtin();
        assert_eq!(r.add_dir(dir.path()).unwrap(), 1);
        let (spec, src) = r.get("mine").unwrap();
        assert_eq!(spec.compare, CompareMode::Strict);
        assert!(src.ends_with("mine.toml"));
    }

    #[test]
    fn db_id_cannot_escape_database_dirs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find_database(&[dir.path().to_path_buf()], "../etc").is_none());
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/a.sqlite"), b"").unwrap();
        assert!(find_database(&[dir.path().join("nope"), dir.path().to_path_buf()], "a").is_some());
    }
}
