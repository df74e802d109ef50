//! `kidbench sweep FILE.toml`: a grid of runs, one method per cell.
//!
//! ```toml
//! name = "table3"                 # results go to <out>/<name>/
//! [run]                           # fixed settings: `kidbench run` flags without the dashes
//! teacher = "tiny-m"
//! student-warmup = 1200
//! max-dev = 256
//! [grid]                          # every combination is a cell
//! methods = ["sft", "rkd", { name = "kid", alpha = [0.1, 0.2] }]
//! seeds = [1, 2, 3]               # also: benchmarks, teachers, students, student-warmups, budgets
//! [quick]                         # `--quick`: overrides of [run] and [grid], results in <name>-quick/
//! run = { max-dev = 64 }
//! grid = { seeds = [1] }
//! ```
//!
//! A cell's plan is exactly the plan of `kidbench run` with the cell's settings, and its folder
//! is `<out>/<name>/cells/<plan-hash>/`. A cell is done when its `DONE` marker exists (written
//! last, atomically); a method that failed leaves `FAILED` instead. Running the sweep again skips
//! done cells, resumes an interrupted cell from its last checkpoint, re-runs failed cells only
//! with `--retry-failed`, and refuses a sweep folder written for other cells, or a cell folder
//! whose plan is not its name. A pending cell that another sweep folder under `--out` holds
//! done with the same plan hash is copied from there instead of trained (`--no-reuse` trains
//! it). Shared artifacts (synth, test suite, tokenizer, teacher, student
//! warm-up and their scores) are built once under locks and reused by every cell.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use kidbench_plugin_host::Registry;
use kidbench_train::bench::LockFile;

use crate::args::RunArgs;
use crate::context::Context;
use crate::plan::{self, RunPlan};
use crate::{files, students, Prepared};

/// `kidbench sweep`.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// The sweep file (TOML; see `sweeps/`).
    pub file: PathBuf,
    /// Print the cells and their state, run nothing.
    #[arg(long, alias = "status")]
    pub list: bool,
    /// Run exactly this cell (its index in `--list`), e.g. from a job-array task.
    #[arg(long)]
    pub cell: Option<usize>,
    /// Run again the cells whose method failed.
    #[arg(long)]
    pub retry_failed: bool,
    /// Use the file's `[quick]` overrides (results in `<name>-quick/`).
    #[arg(long)]
    pub quick: bool,
    /// Build the shared artifacts of every cell (tokenizer, teacher, student warm-up and their
    /// scores) and train no cell: what a cluster's prepare job runs before the array.
    #[arg(long)]
    pub prepare: bool,
    /// Results root.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Extra folder to search for method plugins (searched first; repeatable).
    #[arg(long = "plugin-dir")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Print the indices of the cells that still need a run (pending, interrupted; failed ones
    /// too with --retry-failed) as a Slurm `--array` list (`0-3,7`), and run nothing.
    #[arg(long, conflicts_with_all = ["list", "cell", "prepare"])]
    pub unfinished: bool,
    /// Train every pending cell here, instead of copying a done cell with the same plan hash
    /// from another sweep folder under `--out`.
    #[arg(long)]
    pub no_reuse: bool,
    /// Hand the sweep to a scheduler instead of running it here (docs/SCALING.md).
    #[command(flatten)]
    pub emit: crate::emit::EmitArgs,
}

/// A sweep file, parsed.
#[derive(Debug, Clone)]
pub struct SweepFile {
    pub path: PathBuf,
    pub name: String,
    pub cells: Vec<CellSpec>,
}

/// One cell: the `kidbench run` arguments of one method run.
#[derive(Debug, Clone)]
pub struct CellSpec {
    pub index: usize,
    pub args: RunArgs,
}

impl CellSpec {
    /// The method spec of the cell.
    pub fn method(&self) -> &str {
        &self.args.methods[0]
    }
}

/// Keys of `[grid]`, each a list, and the `kidbench run` flag each one sets.
const GRID_KEYS: [&str; 7] = [
    "methods",
    "seeds",
    "benchmarks",
    "teachers",
    "students",
    "student-warmups",
    "budgets",
];

/// `[run]` keys a sweep sets itself.
const RESERVED_RUN_KEYS: [&str; 5] = ["methods", "seed", "out", "resume", "plugin-dir"];

#[derive(clap::Parser)]
#[command(name = "[run]", no_binary_name = true)]
struct RunTable {
    #[command(flatten)]
    run: RunArgs,
}

fn toml_scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `[run]` → `kidbench run` arguments (keys are flag names; `_` may stand for `-`).
fn run_args(file: &Path, table: &toml::Table) -> anyhow::Result<RunArgs> {
    let mut argv: Vec<String> = Vec::new();
    for (k, v) in table {
        let key = k.replace('_', "-");
        if RESERVED_RUN_KEYS.contains(&key.as_str()) {
            anyhow::bail!(
                "{}: [run] key '{k}': a sweep sets it (methods and seeds go in [grid])",
                file.display()
            );
        }
        let flag = format!("--{key}");
        match v {
            toml::Value::Boolean(true) => argv.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for it in items {
                    let s = toml_scalar(it).with_context(|| {
                        format!(
                            "{}: [run] key '{k}': a list of plain values",
                            file.display()
                        )
                    })?;
                    argv.push(flag.clone());
                    argv.push(s);
                }
            }
            other => {
                let s = toml_scalar(other).with_context(|| {
                    format!("{}: [run] key '{k}': not a plain value", file.display())
                })?;
                argv.push(flag);
                argv.push(s);
            }
        }
    }
    let parsed = RunTable::try_parse_from(&argv).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        anyhow::anyhow!("{}: [run]: {first}", file.display())
    })?;
    Ok(parsed.run)
}

/// A `[grid]` list of `key`; an empty list is an error naming it.
fn grid_list<'a>(
    file: &Path,
    grid: &'a toml::Table,
    key: &str,
) -> anyhow::Result<Option<&'a Vec<toml::Value>>> {
    match grid.get(key) {
        None => Ok(None),
        Some(toml::Value::Array(a)) if a.is_empty() => {
            anyhow::bail!(
                "{}: [grid] {key} is empty: the grid has no cell",
                file.display()
            )
        }
        Some(toml::Value::Array(a)) => Ok(Some(a)),
        Some(_) => anyhow::bail!("{}: [grid] {key} must be a list", file.display()),
    }
}

fn strings(file: &Path, key: &str, items: &[toml::Value]) -> anyhow::Result<Vec<String>> {
    items
        .iter()
        .map(|v| {
            toml_scalar(v).with_context(|| {
                format!(
                    "{}: [grid] {key}: every item must be a plain value",
                    file.display()
                )
            })
        })
        .collect()
}

/// The method specs of `[grid] methods`: strings as they are, tables `{name = ..., key = value
/// or [values]}` expanded over every combination of their lists.
fn method_specs(file: &Path, items: &[toml::Value]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for it in items {
        match it {
            toml::Value::String(s) => out.push(s.clone()),
            toml::Value::Table(t) => {
                let name = t.get("name").and_then(|n| n.as_str()).with_context(|| {
                    format!(
                        "{}: [grid] methods: a method table needs name = \"...\"",
                        file.display()
                    )
                })?;
                let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
                for (k, v) in t.iter().filter(|(k, _)| k.as_str() != "name") {
                    let values: Vec<String> = match v {
                        toml::Value::Array(a) if a.is_empty() => anyhow::bail!(
                            "{}: [grid] methods: {name}.{k} is empty: the grid has no cell",
                            file.display()
                        ),
                        toml::Value::Array(a) => strings(file, &format!("methods {name}.{k}"), a)?,
                        other => vec![toml_scalar(other).with_context(|| {
                            format!(
                                "{}: [grid] methods: {name}.{k}: not a plain value",
                                file.display()
                            )
                        })?],
                    };
                    combos = combos
                        .into_iter()
                        .flat_map(|c| {
                            values.iter().map(move |v| {
                                let mut c = c.clone();
                                c.push((k.clone(), v.clone()));
                                c
                            })
                        })
                        .collect();
                }
                for c in combos {
                    if c.is_empty() {
                        out.push(name.to_string());
                    } else {
                        let p: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        out.push(format!("{name}:{}", p.join(",")));
                    }
                }
            }
            _ => anyhow::bail!(
                "{}: [grid] methods: each item is a spec string or a table with a name",
                file.display()
            ),
        }
    }
    Ok(out)
}

/// Merges `over` into `base` (tables recursively; other values replaced).
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl SweepFile {
    /// Reads and expands a sweep file (`quick`: with its `[quick]` overrides).
    pub fn read(path: &Path, quick: bool) -> anyhow::Result<SweepFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the sweep file {}", path.display()))?;
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: not valid TOML: {e}", path.display()))?;
        for k in doc.keys() {
            if !["name", "description", "run", "grid", "quick"].contains(&k.as_str()) {
                anyhow::bail!(
                    "{}: unknown key '{k}' (a sweep file has name, description, [run], [grid], [quick])",
                    path.display()
                );
            }
        }
        let mut name = doc
            .get("name")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .context("a sweep needs a name")?;
        if quick {
            let over = match doc.get("quick") {
                Some(toml::Value::Table(t)) => t.clone(),
                _ => anyhow::bail!(
                    "{}: --quick, but the file has no [quick] table",
                    path.display()
                ),
            };
            for k in over.keys() {
                if !["run", "grid"].contains(&k.as_str()) {
                    anyhow::bail!("{}: [quick] key '{k}': only run and grid", path.display());
                }
            }
            merge(&mut doc, &over);
            name.push_str("-quick");
        }
        if plan::file_safe(&name) != name {
            anyhow::bail!(
                "{}: name '{name}': use letters, digits, '.' and '-' only (it names a folder)",
                path.display()
            );
        }
        let empty = toml::Table::new();
        let table = |k: &str| -> anyhow::Result<&toml::Table> {
            match doc.get(k) {
                None => Ok(&empty),
                Some(toml::Value::Table(t)) => Ok(t),
                Some(_) => anyhow::bail!("{}: {k} must be a table ([{k}])", path.display()),
            }
        };
        let base = run_args(path, table("run")?)?;
        let grid = table("grid")?;
        for k in grid.keys() {
            if !GRID_KEYS.contains(&k.as_str()) {
                anyhow::bail!(
                    "{}: unknown [grid] key '{k}'; the grid keys are: {}",
                    path.display(),
                    GRID_KEYS.join(", ")
                );
            }
        }
        let methods = method_specs(
            path,
            grid_list(path, grid, "methods")?
                .with_context(|| format!("{}: [grid] needs methods = [...]", path.display()))?,
        )?;
        let list = |k: &str| -> anyhow::Result<Option<Vec<String>>> {
            grid_list(path, grid, k)?
                .map(|a| strings(path, k, a))
                .transpose()
        };
        let parse_all = |k: &str, v: &[String]| -> anyhow::Result<Vec<u64>> {
            v.iter()
                .map(|s| {
                    s.parse::<u64>().map_err(|_| {
                        anyhow::anyhow!(
                            "{}: [grid] {k}: '{s}' is not a whole number",
                            path.display()
                        )
                    })
                })
                .collect()
        };
        let seeds = match list("seeds")? {
            Some(v) => parse_all("seeds", &v)?,
            None => vec![base.common.seed],
        };
        let benchmarks = list("benchmarks")?.unwrap_or_else(|| vec![base.common.benchmark.clone()]);
        let some = |v: Vec<String>| v.into_iter().map(Some).collect::<Vec<_>>();
        let teachers = list("teachers")?
            .map(some)
            .unwrap_or_else(|| vec![base.teacher.clone()]);
        let students = list("students")?
            .map(some)
            .unwrap_or_else(|| vec![base.student.clone()]);
        let warmups: Vec<Option<usize>> = match list("student-warmups")? {
            Some(v) => parse_all("student-warmups", &v)?
                .into_iter()
                .map(|n| (n > 0).then_some(n as usize))
                .collect(),
            None => vec![base.student_warmup],
        };
        let budgets: Vec<Option<crate::args::Budget>> = match list("budgets")? {
            Some(v) => v
                .iter()
                .map(|b| {
                    b.parse()
                        .map(Some)
                        .map_err(|e| anyhow::anyhow!("{}: [grid] budgets: {e}", path.display()))
                })
                .collect::<anyhow::Result<_>>()?,
            None => vec![base.budget],
        };
        let mut cells = Vec::new();
        for b in &benchmarks {
            for t in &teachers {
                for s in &students {
                    for w in &warmups {
                        for budget in &budgets {
                            for seed in &seeds {
                                for m in &methods {
                                    let mut args = base.clone();
                                    args.common.benchmark = b.clone();
                                    args.teacher = t.clone();
                                    args.student = s.clone();
                                    args.student_warmup = *w;
                                    args.budget = *budget;
                                    args.common.seed = *seed;
                                    args.methods = vec![m.clone()];
                                    cells.push(CellSpec {
                                        index: cells.len(),
                                        args,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(SweepFile {
            path: path.to_path_buf(),
            name,
            cells,
        })
    }
}

/// Where a cell stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellState {
    Pending,
    /// Started, not finished (resumable from its checkpoint).
    Interrupted,
    /// Another process holds its lock now.
    Running,
    Done,
    Failed(String),
}

impl std::fmt::Display for CellState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CellState::Pending => f.write_str("pending"),
            CellState::Interrupted => f.write_str("interrupted"),
            CellState::Running => f.write_str("running"),
            CellState::Done => f.write_str("done"),
            CellState::Failed(e) => write!(f, "failed: {}", e.lines().next().unwrap_or("")),
        }
    }
}

const DONE: &str = "DONE";
const FAILED: &str = "FAILED";

/// A cell with its resolved plan.
pub struct Cell {
    pub spec: CellSpec,
    pub plan: RunPlan,
}

impl Cell {
    /// The cell's id: the first 16 hex digits of its plan hash.
    pub fn id(&self) -> String {
        self.plan.hash()[..16].to_string()
    }
}

/// State of the cell folder `dir` (whose plan hash must be `hash`).
pub fn cell_state(dir: &Path, hash: &str) -> anyhow::Result<CellState> {
    if dir.exists() {
        if let Some(h) = files::recorded_plan_hash(dir)? {
            if h != hash {
                anyhow::bail!(
                    "{}: the cell folder holds another plan (hash {h}, expected {hash}); remove it",
                    dir.display()
                );
            }
        }
    }
    folder_state(dir)
}

/// The state of a cell folder from its markers and its lock alone (no plan check).
fn folder_state(dir: &Path) -> anyhow::Result<CellState> {
    if !dir.exists() {
        return Ok(CellState::Pending);
    }
    if dir.join(DONE).is_file() {
        return Ok(CellState::Done);
    }
    if dir.join(FAILED).is_file() {
        let e = std::fs::read_to_string(dir.join(FAILED)).unwrap_or_default();
        return Ok(CellState::Failed(e.trim().to_string()));
    }
    if kidbench_results::lock::is_held(&lock_path(dir))? {
        return Ok(CellState::Running);
    }
    Ok(CellState::Interrupted)
}

fn lock_path(cell_dir: &Path) -> PathBuf {
    let name = cell_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    cell_dir.with_file_name(format!("{name}.lock"))
}

/// Contexts by what opens them (a sweep over seeds opens its benchmark once).
#[derive(Default)]
pub struct Contexts {
    open: Vec<(String, Context)>,
}

fn context_key(a: &RunArgs) -> String {
    format!(
        "{:?}",
        (
            &a.common.benchmark,
            &a.common.data_dir,
            &a.common.databases_dir,
            &a.common.device,
            &a.common.dtype,
            a.common.max_train,
            a.max_dev,
            &a.teacher,
            &a.teacher_dir,
            &a.student,
            &a.student_dir,
            &a.student_layers,
        )
    )
}

impl Contexts {
    fn get(&mut self, a: &RunArgs) -> anyhow::Result<&Context> {
        let key = context_key(a);
        if let Some(i) = self.open.iter().position(|(k, _)| *k == key) {
            return Ok(&self.open[i].1);
        }
        let ctx = Context::for_run(a)?;
        self.open.push((key, ctx));
        Ok(&self.open.last().expect("just pushed").1)
    }
}

/// The cells of `file` with their plans (every method checked against the plugins).
pub fn resolve_cells(
    file: &SweepFile,
    registry: &Registry,
    quiet: bool,
) -> anyhow::Result<(Vec<Cell>, Contexts)> {
    let mut contexts = Contexts::default();
    let mut cells = Vec::new();
    for spec in &file.cells {
        let mut args = spec.args.clone();
        args.common.quiet = quiet;
        let where_ = || {
            format!(
                "{}: cell {} ({})",
                file.path.display(),
                spec.index,
                spec.method()
            )
        };
        let methods = plan::method_plans(registry, &args.methods).with_context(where_)?;
        let ctx = contexts.get(&args)?;
        let plan = RunPlan::resolve(&args, ctx, methods).with_context(where_)?;
        let cell = Cell {
            spec: CellSpec {
                index: spec.index,
                args,
            },
            plan,
        };
        if let Some(twin) = cells.iter().find(|c: &&Cell| c.id() == cell.id()) {
            anyhow::bail!(
                "{}: cells {} ({}) and {} ({}) are the same run listed twice (after defaults \
                 and canonical values); list it once",
                file.path.display(),
                twin.spec.index,
                twin.spec.method(),
                cell.spec.index,
                cell.spec.method()
            );
        }
        cells.push(cell);
    }
    Ok((cells, contexts))
}

/// What a sweep folder records of its cells (`sweep.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct SweepRecord {
    name: String,
    cells: Vec<CellEntry>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct CellEntry {
    index: usize,
    id: String,
    method: String,
    seed: u64,
    benchmark: String,
    teacher: String,
    student: String,
    student_warmup: Option<usize>,
    budget: String,
}

fn entries(cells: &[Cell]) -> Vec<CellEntry> {
    cells
        .iter()
        .map(|c| CellEntry {
            index: c.spec.index,
            id: c.id(),
            method: c.plan.methods[0].spec(),
            seed: c.plan.seed,
            benchmark: c.plan.data.benchmark.clone(),
            teacher: c.plan.teacher.preset.clone(),
            student: c.plan.student.preset.clone(),
            student_warmup: c.spec.args.student_warmup,
            budget: c.plan.budget.clone(),
        })
        .collect()
}

/// Writes `sweep.json`, or checks that the folder was written for these very cells.
fn claim_folder(dir: &Path, file: &SweepFile, cells: &[Cell]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("cells"))
        .with_context(|| format!("creating {}", dir.join("cells").display()))?;
    let _lock = LockFile::acquire(&dir.join(".sweep.lock"))?;
    let want = SweepRecord {
        name: file.name.clone(),
        cells: entries(cells),
    };
    let path = dir.join("sweep.json");
    if path.is_file() {
        let have: SweepRecord = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: not a sweep record", path.display()))?;
        if have != want {
            let ids: std::collections::BTreeSet<&str> =
                have.cells.iter().map(|c| c.id.as_str()).collect();
            let new = want
                .cells
                .iter()
                .filter(|c| !ids.contains(c.id.as_str()))
                .count();
            anyhow::bail!(
                "{} was written for other cells than {} now gives ({} of its {} cells differ: \
                 the sweep file, a plugin or kidbench changed); use another --out, or move the folder away",
                dir.display(),
                file.path.display(),
                new.max(usize::from(have.cells.len() != want.cells.len())),
                want.cells.len()
            );
        }
        return Ok(());
    }
    files::write_json(&path, &want)
}

/// The cells of the sweep folder `dir` (as its `sweep.json` lists them) that have no result:
/// `None` when `dir` is not a sweep folder. A report lists
/// them, so that a cell that failed, was cancelled or never ran is not silently missing.
pub fn unfinished_in_folder(dir: &Path) -> anyhow::Result<Option<Vec<UnfinishedCell>>> {
    let path = dir.join("sweep.json");
    if !path.is_file() {
        return Ok(None);
    }
    let record: SweepRecord = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{}: not a sweep record", path.display()))?;
    let mut out = Vec::new();
    for c in record.cells {
        let state = folder_state(&dir.join("cells").join(&c.id))?;
        if state == CellState::Done {
            continue;
        }
        out.push(UnfinishedCell {
            index: c.index,
            method: c.method,
            seed: c.seed,
            state,
        });
    }
    Ok(Some(out))
}

/// A cell of a sweep folder without a result, as [`unfinished_in_folder`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedCell {
    pub index: usize,
    pub method: String,
    pub seed: u64,
    pub state: CellState,
}

/// Prints the cells and their state.
fn list(dir: &Path, cells: &[Cell]) -> anyhow::Result<()> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    println!(
        "{:>4}  {:<16}  {:<12}  {:<28}  {:>5}  state",
        "cell", "id", "benchmark", "method", "seed"
    );
    for c in cells {
        let state = cell_state(&dir.join("cells").join(c.id()), &c.plan.hash())?;
        let kind = match &state {
            CellState::Failed(_) => "failed".to_string(),
            s => s.to_string(),
        };
        *counts.entry(kind).or_default() += 1;
        println!(
            "{:>4}  {:<16}  {:<12}  {:<28}  {:>5}  {state}",
            c.spec.index,
            c.id(),
            c.plan.data.benchmark,
            c.plan.methods[0].spec(),
            c.plan.seed,
        );
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("{} cells: {}", cells.len(), summary.join(", "));
    Ok(())
}

/// A key of what [`Prepared`] builds for a plan (cells with equal keys share it).
fn prepared_key(p: &RunPlan) -> String {
    plan::hash_of(&serde_json::json!({
        "tokenizer": p.tokenizer,
        "teacher": p.teacher.key,
        "teacher_score": p.teacher_score_key(),
        "init": p.student.init,
        "init_score": p.init_score_key(),
        "student": [&p.student.preset, p.student.max_prompt_tokens, p.student.max_target_tokens],
        "data": p.data,
    }))
}

/// The file a copied cell names its source in.
pub const REUSED_FROM: &str = "reused-from";

/// Copies into `dir` each pending cell that another sweep folder under `out` holds done with
/// the same plan hash (a plan's hash is its identity: the same plan trains the same student and
/// writes the same verdicts). Files are hard-linked where the file system allows, copied
/// otherwise; the copy names its source in [`REUSED_FROM`] and its own folder in `summary.json`.
/// Its timings are those of the run that made it. Returns the copied cells and their sources.
pub fn reuse_done_cells<'a>(
    out: &Path,
    dir: &Path,
    cells: &'a [Cell],
) -> anyhow::Result<Vec<(&'a Cell, PathBuf)>> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(Vec::new());
    };
    let mut others: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("cells").is_dir() && !same_folder(p, dir))
        .collect();
    others.sort();
    let mut copied = Vec::new();
    for cell in cells {
        let target = dir.join("cells").join(cell.id());
        if target.exists() {
            continue;
        }
        let hash = cell.plan.hash();
        let Some(src) = others
            .iter()
            .map(|o| o.join("cells").join(cell.id()))
            .find(|s| {
                files::recorded_plan_hash(s).ok().flatten().as_deref() == Some(hash.as_str())
                    && folder_state(s).is_ok_and(|st| st == CellState::Done)
            })
        else {
            continue;
        };
        let _lock = LockFile::acquire(&lock_path(&target))?;
        if target.exists() {
            continue; // another process got here first
        }
        let tmp = target.with_file_name(format!("{}.reusing", cell.id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        }
        files::link_tree(&src, &tmp)?;
        let summary = tmp.join("summary.json");
        if summary.is_file() {
            let text = std::fs::read_to_string(&summary)
                .with_context(|| format!("reading {}", summary.display()))?;
            let mut v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", summary.display()))?;
            if let Some(d) = v.get_mut("dir") {
                *d = serde_json::Value::String(target.display().to_string());
            }
            files::write_json(&summary, &v)?; // a new file: the source's link is left as it was
        }
        std::fs::write(tmp.join(REUSED_FROM), format!("{}\n", src.display()))
            .with_context(|| format!("writing {}", tmp.join(REUSED_FROM).display()))?;
        std::fs::rename(&tmp, &target)
            .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
        copied.push((cell, src));
    }
    Ok(copied)
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What running one cell did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellRun {
    Trained,
    MethodFailed(String),
    Skipped(CellState),
}

/// Runs one cell in `dir` (resuming it when it was interrupted).
fn run_cell(
    cell: &Cell,
    ctx: &Context,
    prep: &Prepared,
    registry: &Registry,
    dir: &Path,
    retry_failed: bool,
    quiet: bool,
) -> anyhow::Result<CellRun> {
    let hash = cell.plan.hash();
    let _lock = LockFile::acquire(&lock_path(dir))?;
    match cell_state(dir, &hash)? {
        CellState::Done => return Ok(CellRun::Skipped(CellState::Done)),
        CellState::Failed(e) if !retry_failed => {
            return Ok(CellRun::Skipped(CellState::Failed(e)));
        }
        CellState::Failed(_) => {
            std::fs::remove_file(dir.join(FAILED))
                .with_context(|| format!("removing {}", dir.join(FAILED).display()))?;
        }
        _ => {}
    }
    let started = Instant::now();
    files::write_identity(dir, &cell.plan, ctx)?;
    let runs = students::train_all(&prep.shared(ctx, quiet), &cell.plan, registry, dir, true)?;
    crate::write_results(dir, &cell.plan, ctx, prep, &runs, started)?;
    let failed = runs.iter().find_map(|r| match &r.outcome {
        students::MethodOutcome::Failed { error } => Some(error.clone()),
        students::MethodOutcome::Trained { .. } => None,
    });
    let marker = if failed.is_some() { FAILED } else { DONE };
    let text = match &failed {
        Some(e) => format!("{e}\n"),
        None => format!("{hash}\n"),
    };
    kidbench_train::trainer::write_atomic(&dir.join(marker), text.as_bytes())
        .with_context(|| format!("writing {}", dir.join(marker).display()))?;
    Ok(match failed {
        Some(e) => CellRun::MethodFailed(e),
        None => CellRun::Trained,
    })
}

/// What `kidbench sweep` did.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    pub dir: PathBuf,
    pub cells: usize,
    pub trained: usize,
    pub skipped_done: usize,
    /// Of those, the cells copied from other sweep folders now.
    pub reused: usize,
    /// (cell index, error) of cells whose method failed (this time or before).
    pub failed: Vec<(usize, String)>,
}

impl SweepSummary {
    /// The summary of a call that ran no cell (`--list`, `--unfinished`, `--emit slurm`).
    fn nothing_run(dir: PathBuf, cells: usize) -> SweepSummary {
        SweepSummary {
            dir,
            cells,
            trained: 0,
            skipped_done: 0,
            reused: 0,
            failed: Vec::new(),
        }
    }
}

/// The sweep folder of a file.
pub fn sweep_dir(out: &Path, file: &SweepFile) -> PathBuf {
    out.join(&file.name)
}

/// `kidbench sweep`.
pub fn sweep(args: &SweepArgs) -> anyhow::Result<SweepSummary> {
    let file = SweepFile::read(&args.file, args.quick)?;
    let registry = crate::plugins(&args.plugin_dirs)?;
    let (cells, mut contexts) = resolve_cells(&file, &registry, args.quiet)?;
    let dir = sweep_dir(&args.out, &file);
    if args.list {
        if dir.join("sweep.json").is_file() {
            claim_folder(&dir, &file, &cells)?;
        }
        list(&dir, &cells)?;
        return Ok(SweepSummary::nothing_run(dir, cells.len()));
    }
    if args.unfinished {
        if dir.join("sweep.json").is_file() {
            claim_folder(&dir, &file, &cells)?;
        }
        let todo = crate::emit::unfinished(&dir, &cells, args.retry_failed)?;
        println!("{}", crate::emit::array_list(&todo));
        return Ok(SweepSummary::nothing_run(dir, cells.len()));
    }
    claim_folder(&dir, &file, &cells)?;
    let mut reused = 0;
    if !args.no_reuse && !args.prepare {
        for (cell, from) in reuse_done_cells(&args.out, &dir, &cells)? {
            reused += 1;
            eprintln!(
                "kidbench: cell {} ({} seed {}): copied from {} (same plan hash; --no-reuse trains it)",
                cell.spec.index,
                cell.plan.methods[0].spec(),
                cell.plan.seed,
                from.display()
            );
        }
    }
    match args.emit.emit {
        Some(crate::emit::Emit::Slurm) => {
            let e = crate::emit::emit_slurm(args, &file, &cells, &dir)?;
            println!("wrote {}", e.sbatch.display());
            println!("wrote {}", e.submit.display());
            println!(
                "{} of {} cells to run ({}); submit with: {}",
                e.unfinished.len(),
                cells.len(),
                crate::emit::array_list(&e.unfinished),
                e.submit.display()
            );
            return Ok(SweepSummary::nothing_run(dir, cells.len()));
        }
        Some(crate::emit::Emit::Local) => {
            let prepare = SweepArgs {
                prepare: true,
                emit: crate::emit::EmitArgs::default(),
                ..args.clone()
            };
            sweep(&prepare)?;
            let done_before = cells
                .iter()
                .filter(|c| {
                    matches!(
                        cell_state(&dir.join("cells").join(c.id()), &c.plan.hash()),
                        Ok(CellState::Done)
                    )
                })
                .count();
            let runs = crate::emit::run_local(args, &cells, &dir)?;
            let mut failed = Vec::new();
            for c in &cells {
                match cell_state(&dir.join("cells").join(c.id()), &c.plan.hash())? {
                    CellState::Failed(e) => failed.push((c.spec.index, e)),
                    CellState::Done => {}
                    other => {
                        let log = runs.iter().find(|r| r.index == c.spec.index);
                        failed.push((
                            c.spec.index,
                            format!(
                                "{other}{}",
                                log.map(|r| format!(" (log: {})", r.log.display()))
                                    .unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
            return Ok(SweepSummary {
                dir,
                cells: cells.len(),
                trained: runs.iter().filter(|r| r.ok).count(),
                skipped_done: done_before,
                reused,
                failed,
            });
        }
        None => {}
    }
    let chosen: Vec<&Cell> = match args.cell {
        Some(i) => vec![cells.iter().find(|c| c.spec.index == i).with_context(|| {
            format!(
                "--cell {i}: {} has cells 0 to {}",
                file.path.display(),
                cells.len().saturating_sub(1)
            )
        })?],
        None => cells.iter().collect(),
    };
    let mut summary = SweepSummary {
        dir: dir.clone(),
        cells: cells.len(),
        trained: 0,
        skipped_done: 0,
        reused,
        failed: Vec::new(),
    };
    let mut prepared: Option<(String, Prepared)> = None;
    for (n, cell) in chosen.iter().enumerate() {
        let cdir = dir.join("cells").join(cell.id());
        let state = cell_state(&cdir, &cell.plan.hash())?;
        if !args.prepare {
            match &state {
                CellState::Done => {
                    summary.skipped_done += 1;
                    continue;
                }
                CellState::Failed(e) if !args.retry_failed => {
                    eprintln!(
                        "kidbench: cell {} ({}) failed before: {} (--retry-failed runs it again)",
                        cell.spec.index,
                        cell.plan.methods[0].spec(),
                        e.lines().next().unwrap_or("")
                    );
                    summary.failed.push((cell.spec.index, e.clone()));
                    continue;
                }
                _ => {}
            }
        }
        let ctx = contexts.get(&cell.spec.args)?;
        let key = prepared_key(&cell.plan);
        if prepared.as_ref().is_none_or(|(k, _)| *k != key) {
            drop(prepared.take()); // free the previous models first
            prepared = Some((key, Prepared::build(ctx, &cell.plan, args.quiet)?));
        }
        if args.prepare {
            continue;
        }
        let (_, prep) = prepared.as_ref().expect("built above");
        eprintln!(
            "kidbench: sweep {}: cell {} ({} of {}): {} seed {}",
            file.name,
            cell.spec.index,
            n + 1,
            chosen.len(),
            cell.plan.methods[0].spec(),
            cell.plan.seed
        );
        match run_cell(
            cell,
            ctx,
            prep,
            &registry,
            &cdir,
            args.retry_failed,
            args.quiet,
        )? {
            CellRun::Trained => summary.trained += 1,
            CellRun::MethodFailed(e) => summary.failed.push((cell.spec.index, e)),
            CellRun::Skipped(CellState::Done) => summary.skipped_done += 1,
            CellRun::Skipped(CellState::Failed(e)) => summary.failed.push((cell.spec.index, e)),
            CellRun::Skipped(_) => {}
        }
    }
    Ok(summary)
}
