//! `kidbench-synth`: **synth**, kidbench's embedded text-to-SQL benchmark, generated
//! deterministically from a seed and written in the Spider file format.
//!
//! [`generate`] writes into an output directory (by default the repository's
//! `databases/synth/`, see [`DEFAULT_DIR`]):
//!
//! - `database/<db_id>/<db_id>.sqlite`: one SQLite file per schema (34 domains, 3-5 tables each,
//!   typed columns, primary keys, declared foreign keys, seeded realistic rows);
//! - `tables.json`: Spider schema entries ([`SpiderSchema`]);
//! - `train.json`, `dev.json`: [`Pair`]s, split **by database** (dev schemas never appear in
//!   train);
//! - `manifest.json`: seed, generator version, counts, SHA-256 of every file ([`Manifest`]).
//!
//! The same seed gives byte-identical output. [`ensure`] generates only when the folder does not
//! hold this seed's output or a file no longer matches the manifest; [`verify`] checks a folder
//! before use (every listed file's size and SHA-256, as recorded at generation); [`status`] says
//! which of the two a folder needs. Generation runs under a lock file beside the output folder
//! (`.<name>.generate.lock`), in a temporary folder inside it (`.tmp-*`), and is moved into place
//! at the end, so two generations into one folder never mix and a killed one leaves nothing used.
//! Questions come from [`templates`]: each template picks its literals from the generated rows,
//! every gold query is executed during generation (non-empty results, no ties under
//! `ORDER BY ... LIMIT`), and its Spider hardness is computed from the query structure.

mod data;
mod reskin;
mod spec;
mod sql;
mod templates;
pub mod variants;
mod words;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::Db;
use crate::spec::Split;
use crate::sql::Query;
use crate::templates::{Template, TEMPLATES};

pub use crate::templates::FAMILIES;

/// Version of the generator. Bump it whenever output for a given seed changes.
pub const GENERATOR_VERSION: &str = "synth-4";

/// Default output directory, relative to the repository root (gitignored).
pub const DEFAULT_DIR: &str = "databases/synth";

/// Errors, each naming the file or database involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// The embedded schema spec is malformed.
    #[error("schema spec (domains.txt) line {line}: {msg}")]
    Spec { line: usize, msg: String },
    /// The embedded synonym list (synonyms.txt) is malformed.
    #[error("synonym list (synonyms.txt) line {line}: {msg}")]
    Synonyms { line: usize, msg: String },
    /// A database cannot be generated as specified.
    #[error("database {db_id}: {msg}")]
    Data { db_id: String, msg: String },
    /// A template produced a query that is invalid or mislabeled (a generator bug).
    #[error("database {db_id}, template {template}: {msg} (query: {query})")]
    Template {
        db_id: String,
        template: String,
        query: String,
        msg: String,
    },
    /// SQLite failed on a file.
    #[error("sqlite error on {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// JSON (de)serialization of a file failed.
    #[error("json error on {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A file listed in `manifest.json` is missing, or its size or SHA-256 differ from the
    /// recorded ones (changed, truncated or replaced since generation).
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// Spider's hardness levels: the sql crate's type (its `as_str` names are the JSON names).
pub use kidbench_sql::hardness::Hardness;

/// Target share of each level in generated splits (Spider dev: 24/43/17/16 %).
pub fn target_share(level: Hardness) -> f64 {
    match level {
        Hardness::Easy => 0.24,
        Hardness::Medium => 0.43,
        Hardness::Hard => 0.17,
        Hardness::Extra => 0.16,
    }
}

/// Generation settings. Output depends on every field (and on [`GENERATOR_VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Seed of all randomness (data, literals, paraphrases).
    pub seed: u64,
    /// Wanted number of train pairs (spread evenly over the train databases).
    pub n_train_target: usize,
    /// Wanted number of dev pairs (spread evenly over the dev databases).
    pub n_dev_target: usize,
    /// Re-skinned copies of each train database (tables and columns renamed, see `reskin.rs`);
    /// they share the train pairs with the originals. Dev databases are never re-skinned.
    #[serde(default)]
    pub reskins: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            n_train_target: 24000,
            n_dev_target: 1100,
            reskins: 40,
        }
    }
}

/// One (question, SQL) pair, as stored in `train.json` / `dev.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub db_id: String,
    pub question: String,
    pub query: String,
    pub hardness: Hardness,
    pub template: String,
}

/// A Spider `tables.json` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpiderSchema {
    pub db_id: String,
    pub table_names: Vec<String>,
    pub table_names_original: Vec<String>,
    pub column_names: Vec<(i64, String)>,
    pub column_names_original: Vec<(i64, String)>,
    pub column_types: Vec<String>,
    pub primary_keys: Vec<usize>,
    pub foreign_keys: Vec<[usize; 2]>,
}

/// Per-database line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSummary {
    pub db_id: String,
    pub split: String,
    pub tables: usize,
    pub rows: usize,
    pub pairs: usize,
}

/// Counts of one split.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCounts {
    pub pairs: usize,
    pub databases: usize,
    pub by_hardness: BTreeMap<String, usize>,
    pub by_family: BTreeMap<String, usize>,
    pub by_template: BTreeMap<String, usize>,
}

/// `manifest.json`: what was generated, from what, and the SHA-256 of every file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub benchmark: String,
    pub generator_version: String,
    pub config: SynthConfig,
    pub databases: Vec<DbSummary>,
    /// `"train"` and `"dev"`.
    pub splits: BTreeMap<String, SplitCounts>,
    /// Path relative to the output directory -> lower-case hex SHA-256.
    pub files: BTreeMap<String, String>,
    /// Path relative to the output directory -> size in bytes. Absent from manifests written
    /// before sizes were recorded; [`verify`] then checks the SHA-256 alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sizes: BTreeMap<String, u64>,
}

/// Description of one template (for docs and reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    pub name: &'static str,
    pub family: &'static str,
    pub level: Hardness,
}

/// Every template with its family and declared Spider level.
pub fn templates() -> Vec<TemplateInfo> {
    TEMPLATES
        .iter()
        .map(|t| TemplateInfo {
            name: t.name,
            family: t.family,
            level: t.level,
        })
        .collect()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), SynthError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| SynthError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).map_err(io_err(path))
}

fn sha256_file(path: &Path) -> Result<String, SynthError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Per-database RNG: independent of thread scheduling and of the other databases.
fn db_rng(seed: u64, db_id: &str) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(b"kidbench-synth\0");
    h.update(seed.to_le_bytes());
    h.update(db_id.as_bytes());
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// Number of pairs wanted at each level for `n` pairs (largest-remainder rounding).
fn level_quotas(n: usize) -> [(Hardness, usize); 4] {
    let mut q = Hardness::ALL.map(|h| (h, (n as f64 * target_share(h)).floor() as usize));
    let mut rest = n - q.iter().map(|(_, c)| c).sum::<usize>();
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by(|a, b| {
        let fa = n as f64 * target_share(Hardness::ALL[*a]);
        let fb = n as f64 * target_share(Hardness::ALL[*b]);
        (fb - fb.floor()).total_cmp(&(fa - fa.floor()))
    });
    for i in order {
        if rest == 0 {
            break;
        }
        q[i].1 += 1;
        rest -= 1;
    }
    q
}

fn run_rows(
    conn: &Connection,
    sql: &str,
) -> Result<Vec<Vec<rusqlite::types::Value>>, rusqlite::Error> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(r.get::<_, rusqlite::types::Value>(i)?);
        }
        out.push(row);
    }
    Ok(out)
}

/// Executes a candidate: `Ok(true)` when its result is non-empty, not all NULL, and (for
/// `ORDER BY ... LIMIT k`) not cut in the middle of a tie.
fn acceptable(conn: &Connection, q: &Query, sql: &str) -> Result<bool, rusqlite::Error> {
    let rows = run_rows(conn, sql)?;
    let Some(first) = rows.first() else {
        return Ok(false);
    };
    if first
        .iter()
        .all(|v| matches!(v, rusqlite::types::Value::Null))
    {
        return Ok(false);
    }
    if let (Some(k), false) = (q.limit, q.order_by.is_empty()) {
        let mut check = q.clone();
        check.distinct = false;
        check.select = q.order_by.iter().map(|(e, _)| e.clone()).collect();
        check.limit = Some(k + 1);
        let keys = run_rows(conn, &check.render())?;
        let k = k as usize;
        if keys.len() > k && keys[k - 1] == keys[k] {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Draw `n` validated pairs for one database, with the Spider level mix.
fn sample_pairs(
    db: &Db,
    conn: &Connection,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Pair>, SynthError> {
    let db_id = &db.spec.db_id;
    let mut seen: HashSet<String> = HashSet::new();
    let mut out: Vec<Pair> = Vec::with_capacity(n);
    for (level, quota) in level_quotas(n) {
        let pool: Vec<&Template> = TEMPLATES.iter().filter(|t| t.level == level).collect();
        let (mut got, mut tries) = (0usize, 0usize);
        while got < quota && tries < quota * 80 + 500 {
            tries += 1;
            let t = pool[rng.random_range(0..pool.len())];
            let Some(c) = (t.build)(db, rng) else {
                continue;
            };
            if seen.contains(&c.question) {
                continue;
            }
            let sql = c.query.render();
            let bug = |msg: String| SynthError::Template {
                db_id: db_id.clone(),
                template: t.name.to_owned(),
                query: sql.clone(),
                msg,
            };
            let h = c.query.hardness();
            if h != t.level {
                return Err(bug(format!(
                    "computed hardness {} but template declares {}",
                    h.as_str(),
                    t.level.as_str()
                )));
            }
            let mut lits = Vec::new();
            c.query.collect_literals(&mut lits);
            if let Some(l) = lits.iter().find(|l| !c.question.contains(&l.text())) {
                return Err(bug(format!(
                    "literal {} missing from question: {}",
                    l.text(),
                    c.question
                )));
            }
            if !acceptable(conn, &c.query, &sql).map_err(|e| bug(format!("sqlite: {e}")))? {
                continue;
            }
            seen.insert(c.question.clone());
            out.push(Pair {
                db_id: db_id.clone(),
                question: c.question,
                query: sql,
                hardness: h,
                template: t.name.to_owned(),
            });
            got += 1;
        }
    }
    out.shuffle(rng);
    Ok(out)
}

struct DbOut {
    schema: SpiderSchema,
    split: Split,
    tables: usize,
    rows: usize,
    pairs: Vec<Pair>,
}

fn build_db(
    spec: &spec::DbSpec,
    out_dir: &Path,
    seed: u64,
    target: usize,
) -> Result<DbOut, SynthError> {
    let mut rng = db_rng(seed, &spec.db_id);
    let db = data::generate_rows(spec, &mut rng)?;
    let dir = out_dir.join("database").join(&spec.db_id);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join(format!("{}.sqlite", spec.db_id));
    data::write_sqlite(&db, &path)?;
    let conn =
        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            SynthError::Sqlite {
                path: path.clone(),
                source,
            }
        })?;
    let pairs = sample_pairs(&db, &conn, target, &mut rng)?;
    Ok(DbOut {
        schema: data::spider_schema(spec),
        split: spec.split,
        tables: spec.tables.len(),
        rows: db.rows.iter().map(Vec::len).sum(),
        pairs,
    })
}

fn counts(pairs: &[Pair], databases: usize) -> SplitCounts {
    let mut c = SplitCounts {
        pairs: pairs.len(),
        databases,
        ..SplitCounts::default()
    };
    for h in Hardness::ALL {
        c.by_hardness.insert(h.as_str().to_owned(), 0);
    }
    for p in pairs {
        *c.by_hardness
            .entry(p.hardness.as_str().to_owned())
            .or_default() += 1;
        *c.by_template.entry(p.template.clone()).or_default() += 1;
        if let Some(t) = TEMPLATES.iter().find(|t| t.name == p.template) {
            *c.by_family.entry(t.family.to_owned()).or_default() += 1;
        }
    }
    c
}

/// Generate synth into `out_dir` (created if needed): SQLite files, `tables.json`,
/// `train.json`, `dev.json`, then `manifest.json` (moved in last, so its presence means the
/// generation completed). Always generates; [`ensure`] reuses a folder that verifies.
///
/// Runs under the folder's lock (a concurrent generation into the same folder waits), builds in
/// `<out_dir>/.tmp-<pid>` and moves the result into place: `database/` is replaced as a whole.
pub fn generate(out_dir: &Path, cfg: &SynthConfig) -> Result<Manifest, SynthError> {
    let _lock = lock(out_dir)?;
    generate_locked(out_dir, cfg)
}

/// The lock file of generations into `out_dir`: `.<name>.generate.lock` beside it.
fn lock_path(out_dir: &Path) -> PathBuf {
    match (out_dir.parent(), out_dir.file_name()) {
        (Some(parent), Some(name)) => {
            parent.join(format!(".{}.generate.lock", name.to_string_lossy()))
        }
        _ => out_dir.join(".generate.lock"),
    }
}

fn lock(out_dir: &Path) -> Result<kidbench_results::LockFile, SynthError> {
    let path = lock_path(out_dir);
    kidbench_results::LockFile::acquire(&path).map_err(|source| SynthError::Io { path, source })
}

fn remove_path(path: &Path) -> Result<(), SynthError> {
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The files a generation writes besides `database/`, `manifest.json` last.
const TOP_FILES: [&str; 8] = [
    "tables.json",
    "train.json",
    "dev.json",
    "val.json",
    "train-val.json",
    "dev-syn.json",
    "dev-realistic.json",
    "manifest.json",
];

/// [`generate`] with the lock held.
fn generate_locked(out_dir: &Path, cfg: &SynthConfig) -> Result<Manifest, SynthError> {
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    // What a killed generation left: nobody else builds here while we hold the lock.
    for entry in std::fs::read_dir(out_dir).map_err(io_err(out_dir))? {
        let entry = entry.map_err(io_err(out_dir))?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            remove_path(&entry.path())?;
        }
    }
    let tmp = out_dir.join(format!(".tmp-{}", std::process::id()));
    let manifest = match generate_into(&tmp, cfg) {
        Ok(m) => m,
        Err(e) => {
            let _ = remove_path(&tmp);
            return Err(e);
        }
    };
    // Install: the old manifest goes first (an interrupted install is then seen as incomplete),
    // then `database/` as a whole, the JSON files, and the new manifest last.
    remove_path(&out_dir.join("manifest.json"))?;
    let dest = out_dir.join("database");
    let old = out_dir.join(format!(".tmp-old-{}", std::process::id()));
    if dest.exists() {
        std::fs::rename(&dest, &old).map_err(io_err(&dest))?;
    }
    std::fs::rename(tmp.join("database"), &dest).map_err(io_err(&dest))?;
    for f in TOP_FILES {
        let to = out_dir.join(f);
        std::fs::rename(tmp.join(f), &to).map_err(io_err(&to))?;
    }
    remove_path(&old)?;
    remove_path(&tmp)?;
    Ok(manifest)
}

/// Writes a whole generation into `out_dir`, which nobody else uses.
fn generate_into(out_dir: &Path, cfg: &SynthConfig) -> Result<Manifest, SynthError> {
    let mut specs = spec::parse()?;
    let originals: Vec<spec::DbSpec> = specs
        .iter()
        .filter(|s| s.split == Split::Train)
        .cloned()
        .collect();
    let shared = reskin::SharedWords::of_dev(&specs);
    for k in 1..=cfg.reskins {
        for s in &originals {
            let mut rng = db_rng(cfg.seed, &format!("{}#reskin{k}", s.db_id));
            // A re-skin that runs out of fresh words is retried with the next stream.
            let skin = (0..8u64).find_map(|_| reskin::reskin(s, k, &shared, &mut rng));
            specs.extend(skin);
        }
    }
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let manifest_path = out_dir.join("manifest.json");
    if manifest_path.exists() {
        // Stale until rewritten at the end.
        std::fs::remove_file(&manifest_path).map_err(io_err(&manifest_path))?;
    }
    let n_train = specs
        .iter()
        .filter(|s| s.split == Split::Train)
        .count()
        .max(1);
    let n_dev = specs
        .iter()
        .filter(|s| s.split == Split::Dev)
        .count()
        .max(1);
    let per_train = cfg.n_train_target.div_ceil(n_train);
    let per_dev = cfg.n_dev_target.div_ceil(n_dev);

    let mut outs: Vec<DbOut> = specs
        .par_iter()
        .map(|s| {
            let target = match s.split {
                Split::Train => per_train,
                Split::Dev => per_dev,
            };
            build_db(s, out_dir, cfg.seed, target)
        })
        .collect::<Result<Vec<_>, _>>()?;

    // A re-skin may name a table like a dev table (`painter`), and then a generic template asks
    // a dev question word for word ("How many painters are there?"); such train pairs are
    // dropped so that no dev question is seen in training.
    let dev_questions: HashSet<String> = outs
        .iter()
        .filter(|o| o.split == Split::Dev)
        .flat_map(|o| o.pairs.iter().map(|p| p.question.to_lowercase()))
        .collect();
    for o in outs.iter_mut().filter(|o| o.split == Split::Train) {
        o.pairs
            .retain(|p| !dev_questions.contains(&p.question.to_lowercase()));
    }

    let schemas: Vec<&SpiderSchema> = outs.iter().map(|o| &o.schema).collect();
    write_json(&out_dir.join("tables.json"), &schemas)?;
    let mut splits = BTreeMap::new();
    let mut by_split: BTreeMap<&str, Vec<Pair>> = BTreeMap::new();
    for split in [Split::Train, Split::Dev] {
        let pairs: Vec<Pair> = outs
            .iter()
            .filter(|o| o.split == split)
            .flat_map(|o| o.pairs.iter().cloned())
            .collect();
        let ndb = outs.iter().filter(|o| o.split == split).count();
        write_json(&out_dir.join(format!("{}.json", split.name())), &pairs)?;
        splits.insert(split.name().to_owned(), counts(&pairs, ndb));
        by_split.insert(split.name(), pairs);
    }
    // The validation split and the robustness variants (variants.rs).
    let v = variants::derive(&by_split["train"], &by_split["dev"], &schemas)?;
    for (name, pairs) in [
        ("val", &v.val),
        ("train-val", &v.train_val),
        ("dev-syn", &v.syn),
        ("dev-realistic", &v.realistic),
    ] {
        write_json(&out_dir.join(format!("{name}.json")), pairs)?;
        let ndb = pairs
            .iter()
            .map(|p| p.db_id.as_str())
            .collect::<HashSet<_>>()
            .len();
        splits.insert(name.to_owned(), counts(pairs, ndb));
    }

    let mut files = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    let rels = outs
        .iter()
        .map(|o| format!("database/{0}/{0}.sqlite", o.schema.db_id))
        .chain(
            TOP_FILES[..TOP_FILES.len() - 1]
                .iter()
                .map(|f| f.to_string()),
        );
    for rel in rels {
        let path = out_dir.join(&rel);
        let size = std::fs::metadata(&path).map_err(io_err(&path))?.len();
        sizes.insert(rel.clone(), size);
        files.insert(rel, sha256_file(&path)?);
    }
    let manifest = Manifest {
        benchmark: "synth".to_owned(),
        generator_version: GENERATOR_VERSION.to_owned(),
        config: cfg.clone(),
        databases: outs
            .iter()
            .map(|o| DbSummary {
                db_id: o.schema.db_id.clone(),
                split: o.split.name().to_owned(),
                tables: o.tables,
                rows: o.rows,
                pairs: o.pairs.len(),
            })
            .collect(),
        splits,
        files,
        sizes,
    };
    write_json(&manifest_path, &manifest)?;
    Ok(manifest)
}

/// Read `manifest.json` from an output directory.
pub fn read_manifest(out_dir: &Path) -> Result<Manifest, SynthError> {
    let path = out_dir.join("manifest.json");
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    serde_json::from_slice(&bytes).map_err(|source| SynthError::Json { path, source })
}

/// Checks that every file `out_dir/manifest.json` lists is there with the size and SHA-256
/// recorded at generation, and returns the manifest. Sizes are compared first (one `stat` per
/// file: a truncated file is caught before anything is read), then the files are hashed in
/// parallel (the default synth, 47 MB, in a fraction of a second).
///
/// This is what a consumer calls before using a synth folder: an error names the first file
/// that does not match ([`SynthError::Corrupt`]), or the unreadable manifest.
pub fn verify(out_dir: &Path) -> Result<Manifest, SynthError> {
    let m = read_manifest(out_dir)?;
    verify_files(out_dir, &m)?;
    Ok(m)
}

fn verify_files(out_dir: &Path, m: &Manifest) -> Result<(), SynthError> {
    let corrupt = |path: PathBuf, message: String| SynthError::Corrupt { path, message };
    for rel in m.files.keys() {
        let path = out_dir.join(rel);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(path, "listed in manifest.json but missing".into()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        if let Some(&want) = m.sizes.get(rel) {
            if meta.len() != want {
                return Err(corrupt(
                    path,
                    format!(
                        "{} bytes where manifest.json records {want} (truncated or changed since generation)",
                        meta.len()
                    ),
                ));
            }
        }
    }
    let checked: Vec<Result<(), SynthError>> = m
        .files
        .par_iter()
        .map(|(rel, want)| {
            let path = out_dir.join(rel);
            let got = sha256_file(&path)?;
            if got == *want {
                Ok(())
            } else {
                Err(corrupt(
                    path,
                    format!(
                        "SHA-256 {got} where manifest.json records {want} (changed since generation)"
                    ),
                ))
            }
        })
        .collect();
    checked.into_iter().collect()
}

/// What a synth folder holds, for a given configuration ([`status`]).
#[derive(Debug)]
pub enum Status {
    /// A complete generation of this configuration by this generator version; every file
    /// verified.
    Current(Manifest),
    /// No `manifest.json`: never generated, or a generation did not finish.
    Absent,
    /// Another generator version or configuration, or an unreadable manifest (the reason).
    Outdated(String),
    /// A listed file is missing or does not match its recorded size or SHA-256.
    Corrupt(SynthError),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Current(_) => f.write_str("up to date"),
            Status::Absent => f.write_str("no manifest.json (not generated, or interrupted)"),
            Status::Outdated(why) => f.write_str(why),
            Status::Corrupt(e) => write!(f, "{e}"),
        }
    }
}

/// Whether `out_dir` holds `cfg`'s output, verified against its manifest ([`verify`]).
pub fn status(out_dir: &Path, cfg: &SynthConfig) -> Status {
    let m = match read_manifest(out_dir) {
        Ok(m) => m,
        Err(SynthError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Status::Absent;
        }
        Err(e) => return Status::Outdated(format!("unreadable manifest: {e}")),
    };
    if m.generator_version != GENERATOR_VERSION {
        return Status::Outdated(format!(
            "generated by {} (this kidbench generates {GENERATOR_VERSION})",
            m.generator_version
        ));
    }
    if m.config != *cfg {
        return Status::Outdated(format!(
            "generated with another configuration ({:?}, wanted {cfg:?})",
            m.config
        ));
    }
    match verify_files(out_dir, &m) {
        Ok(()) => Status::Current(m),
        Err(e) => Status::Corrupt(e),
    }
}

/// Whether `out_dir` holds a complete, verified generation for `cfg` with this generator
/// version ([`status`] is [`Status::Current`]): every listed file's size and SHA-256 match.
pub fn is_current(out_dir: &Path, cfg: &SynthConfig) -> bool {
    matches!(status(out_dir, cfg), Status::Current(_))
}

/// What [`ensure`] did.
#[derive(Debug)]
pub struct Ensured {
    pub manifest: Manifest,
    /// Why the folder was (re)generated (`None`: it was up to date and reused).
    pub generated: Option<Regenerated>,
}

/// Why [`ensure`] generated.
#[derive(Debug)]
pub enum Regenerated {
    /// Asked to (`kidbench synth --force`).
    Forced,
    /// [`Status::Absent`].
    Absent,
    /// [`Status::Outdated`].
    Outdated(String),
    /// [`Status::Corrupt`]: the file that did not match.
    Corrupt(SynthError),
}

/// Generates synth into `out_dir` unless it already holds `cfg`'s output and every file
/// verifies; `force` regenerates regardless. A folder found missing, outdated or corrupt is
/// regenerated with a line on stderr saying why (naming the file that did not match).
///
/// Concurrent calls on one folder (threads or processes) serialise on its lock: the first
/// generates, the others wait and then reuse its output.
pub fn ensure(out_dir: &Path, cfg: &SynthConfig, force: bool) -> Result<Ensured, SynthError> {
    if !force {
        if let Status::Current(manifest) = status(out_dir, cfg) {
            return Ok(Ensured {
                manifest,
                generated: None,
            });
        }
    }
    let _lock = lock(out_dir)?;
    // Checked again under the lock: another process may have generated meanwhile.
    let why = match (force, status(out_dir, cfg)) {
        (false, Status::Current(manifest)) => {
            return Ok(Ensured {
                manifest,
                generated: None,
            })
        }
        (true, _) => Regenerated::Forced,
        (false, Status::Absent) => Regenerated::Absent,
        (false, Status::Outdated(why)) => Regenerated::Outdated(why),
        (false, Status::Corrupt(e)) => Regenerated::Corrupt(e),
    };
    match &why {
        Regenerated::Forced | Regenerated::Absent => eprintln!(
            "kidbench: generating the synth benchmark into {} (seed {})",
            out_dir.display(),
            cfg.seed
        ),
        Regenerated::Outdated(s) => eprintln!(
            "kidbench: regenerating the synth benchmark in {} (seed {}): {s}",
            out_dir.display(),
            cfg.seed
        ),
        Regenerated::Corrupt(e) => eprintln!(
            "kidbench: regenerating the synth benchmark in {} (seed {}): {e}",
            out_dir.display(),
            cfg.seed
        ),
    }
    let manifest = generate_locked(out_dir, cfg)?;
    Ok(Ensured {
        manifest,
        generated: Some(why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_sum_and_mix() {
        for n in [1, 7, 100, 138, 347] {
            let q = level_quotas(n);
            assert_eq!(q.iter().map(|x| x.1).sum::<usize>(), n);
        }
        let q = level_quotas(100);
        assert_eq!(q.map(|x| x.1), [24, 43, 17, 16]);
    }

    #[test]
    fn spec_parses() {
        let dbs = spec::parse().expect("embedded spec parses");
        assert!(dbs.len() >= 25);
    }
}
