//! `kidbench sweep FILE --emit slurm|local`: a sweep handed to a scheduler, one cell per task.
//!
//! `--emit slurm` writes, under `<sweep folder>/slurm/`:
//!
//! ```text
//! sweep.sbatch   one batch script with three roles: `prepare` (every shared artifact, once),
//!                `cell` (the array task: `kidbench sweep FILE --cell $SLURM_ARRAY_TASK_ID`),
//!                `report` (the merged report, listing the cells that did not finish)
//! submit.sh      submits prepare, then the array of the unfinished cells (`afterok`), then
//!                the report (`afterany`); run again, it submits only what is not done
//! ```
//!
//! Array tasks are requeue-safe: a cell resumes from its checkpoint (a SIGTERM from a cancel or
//! a preemption writes one of the current step first), its log is appended to, and a cell that
//! is done is skipped. `--emit local` runs the same cells here as separate processes, at most
//! `--max-parallel` at a time, each with its own log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::sweep::{cell_state, Cell, CellState, SweepArgs, SweepFile};

/// Where a sweep goes instead of running in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// Write a Slurm batch script (prepare job, job array, report job) and its submit script.
    Slurm,
    /// Run the cells here as separate processes, `--max-parallel` at a time.
    Local,
}

/// Scheduler options of `kidbench sweep --emit`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EmitArgs {
    /// Hand the cells to Slurm (`slurm`: write sweep.sbatch and submit.sh) or run them as
    /// processes on this machine (`local`).
    #[arg(long, value_enum, conflicts_with_all = ["list", "cell", "prepare"])]
    pub emit: Option<Emit>,
    /// Slurm partition (`#SBATCH --partition`).
    #[arg(long, requires = "emit")]
    pub partition: Option<String>,
    /// GPUs per array task (`#SBATCH --gpus-per-task`).
    #[arg(long, requires = "emit")]
    pub gpus_per_task: Option<u32>,
    /// CPUs per task; libtorch then uses as many threads (OMP_NUM_THREADS).
    #[arg(long, requires = "emit")]
    pub cpus_per_task: Option<u32>,
    /// Memory per task, in Slurm's notation (`16G`).
    #[arg(long, requires = "emit")]
    pub mem: Option<String>,
    /// Time limit per job, in Slurm's notation (`4:00:00`, `1-00:00:00`).
    #[arg(long = "time", requires = "emit")]
    pub time_limit: Option<String>,
    /// At most this many cells at once (the array's `%K`; with `local`, processes).
    #[arg(long, requires = "emit")]
    pub max_parallel: Option<usize>,
    /// Slurm account to charge (`#SBATCH --account`).
    #[arg(long, requires = "emit")]
    pub account: Option<String>,
}

/// Indices as a Slurm array list: runs of consecutive indices as ranges (`0-3,7,9-10`).
pub fn array_list(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The cells that still need a run: pending and interrupted ones, and failed ones when
/// `retry_failed`; never a done cell, nor one that a process runs now.
pub fn unfinished(dir: &Path, cells: &[Cell], retry_failed: bool) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for c in cells {
        let state = cell_state(&dir.join("cells").join(c.id()), &c.plan.hash())?;
        let todo = match state {
            CellState::Pending | CellState::Interrupted => true,
            CellState::Failed(_) => retry_failed,
            CellState::Running | CellState::Done => false,
        };
        if todo {
            out.push(c.spec.index);
        }
    }
    Ok(out)
}

/// A value for a shell script, single-quoted.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn abs(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

/// A Slurm option value must be one plain word (it lands in `#SBATCH` lines).
fn slurm_word(flag: &str, v: &str) -> anyhow::Result<()> {
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:,=+-@/".contains(c));
    if !ok {
        anyhow::bail!(
            "{flag} '{v}': use letters, digits and _ . : , = + - @ / only (it becomes an #SBATCH line)"
        );
    }
    Ok(())
}

/// The `kidbench sweep ...` arguments that name this sweep from anywhere (absolute paths).
fn sweep_argv(args: &SweepArgs) -> anyhow::Result<Vec<String>> {
    let mut v = vec![
        "sweep".to_string(),
        abs(&args.file)?.display().to_string(),
        "--out".to_string(),
        abs(&args.out)?.display().to_string(),
    ];
    if args.quick {
        v.push("--quick".into());
    }
    for d in &args.plugin_dirs {
        v.push("--plugin-dir".into());
        v.push(abs(d)?.display().to_string());
    }
    Ok(v)
}

/// The job name shared by a sweep's jobs: its name and a short hash of its folder, so that two
/// sweeps of one name in different folders are told apart in `squeue`.
fn job_name(file: &SweepFile, dir: &Path) -> String {
    let h = crate::plan::hash_of(&serde_json::json!(dir.display().to_string()));
    format!("kidbench-{}-{}", file.name, &h[..8])
}

/// What `--emit slurm` wrote.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub sbatch: PathBuf,
    pub submit: PathBuf,
    pub unfinished: Vec<usize>,
}

/// Writes `<dir>/slurm/sweep.sbatch` and `<dir>/slurm/submit.sh`.
pub fn emit_slurm(
    args: &SweepArgs,
    file: &SweepFile,
    cells: &[Cell],
    dir: &Path,
) -> anyhow::Result<Emitted> {
    let e = &args.emit;
    let mut directives: Vec<String> = Vec::new();
    let dir = abs(dir)?;
    let logs = dir.join("logs");
    let sdir = dir.join("slurm");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    std::fs::create_dir_all(&sdir).with_context(|| format!("creating {}", sdir.display()))?;
    let name = job_name(file, &dir);
    directives.push(format!("--job-name={name}"));
    directives.push(format!("--output={}/cell-%a.log", logs.display()));
    directives.push("--open-mode=append".into());
    directives.push("--requeue".into());
    for (flag, v) in [
        ("--partition", &e.partition),
        ("--account", &e.account),
        ("--mem", &e.mem),
        ("--time", &e.time_limit),
    ] {
        if let Some(v) = v {
            slurm_word(flag, v)?;
            directives.push(format!("{flag}={v}"));
        }
    }
    if let Some(n) = e.cpus_per_task {
        directives.push(format!("--cpus-per-task={n}"));
    }
    if let Some(n) = e.gpus_per_task {
        directives.push(format!("--gpus-per-task={n}"));
    }
    for (flag, bad) in [
        ("--cpus-per-task", e.cpus_per_task == Some(0)),
        ("--max-parallel", e.max_parallel == Some(0)),
    ] {
        if bad {
            anyhow::bail!("{flag} 0: give at least 1");
        }
    }
    if dir.display().to_string().contains(char::is_whitespace) {
        anyhow::bail!(
            "{}: Slurm's #SBATCH --output cannot hold a path with spaces; use another --out",
            dir.display()
        );
    }
    let exe = std::env::current_exe().context("finding the kidbench executable")?;
    let workdir = std::env::current_dir().context("reading the current folder")?;
    let argv = sweep_argv(args)?;
    let quoted: Vec<String> = argv.iter().map(|a| sh(a)).collect();
    let header: String = directives
        .iter()
        .map(|d| format!("#SBATCH {d}\n"))
        .collect();
    let sbatch = format!(
        r#"#!/usr/bin/env bash
# kidbench sweep '{sweep_name}' ({n} cells), written by `kidbench sweep --emit slurm` (kidbench {version}).
# One script, three roles; submit.sh submits each of them:
#   sbatch sweep.sbatch prepare              every shared artifact, once (synth, test suites,
#                                            tokenizer, teacher, student warm-up, their scores)
#   sbatch --array=LIST sweep.sbatch cell    one cell per array task: $SLURM_ARRAY_TASK_ID
#   sbatch sweep.sbatch report               the merged report, listing unfinished cells
# A requeued or resubmitted task resumes its cell from its checkpoint; a done cell is skipped.
{header}set -euo pipefail
KIDBENCH={exe}
SWEEP=({sweep})
DIR={dir}
cd {workdir}
# One libtorch thread per CPU that Slurm gave the task.
export OMP_NUM_THREADS="${{SLURM_CPUS_PER_TASK:-1}}"
role="${{1:-cell}}"
shift || true
echo "kidbench: $role: job ${{SLURM_JOB_ID:-none}} task ${{SLURM_ARRAY_TASK_ID:-none}} on $(hostname -s), restart ${{SLURM_RESTART_COUNT:-0}}, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
case "$role" in
prepare) exec "$KIDBENCH" "${{SWEEP[@]}}" --prepare "$@" ;;
cell) exec "$KIDBENCH" "${{SWEEP[@]}}" --cell "${{SLURM_ARRAY_TASK_ID:?the cell role runs as an array task}}" "$@" ;;
report)
    "$KIDBENCH" "${{SWEEP[@]}}" --status
    exec "$KIDBENCH" report "$DIR" --out "$DIR/report" "$@"
    ;;
*)
    echo "sweep.sbatch: unknown role '$role' (prepare, cell or report)" >&2
    exit 2
    ;;
esac
"#,
        sweep_name = file.name,
        n = cells.len(),
        version = env!("CARGO_PKG_VERSION"),
        exe = sh(&exe.display().to_string()),
        sweep = quoted.join(" "),
        dir = sh(&dir.display().to_string()),
        workdir = sh(&workdir.display().to_string()),
    );
    let throttle = e.max_parallel.map(|k| format!("%{k}")).unwrap_or_default();
    let submit = format!(
        r#"#!/usr/bin/env bash
# Submits kidbench sweep '{sweep_name}' to Slurm: a prepare job, the unfinished cells as a job array
# after it (afterok), and a report job after the array (afterany). Run it again after a failure,
# a cancel or a timeout: it submits only the cells that are not done.
#   submit.sh [--retry-failed]     --retry-failed: also the cells whose method failed
set -euo pipefail
KIDBENCH={exe}
SWEEP=({sweep})
HERE={here}
LOGS={logs}
JOB={job}
retry=()
for a in "$@"; do
    case "$a" in
    --retry-failed) retry=(--retry-failed) ;;
    *)
        echo "usage: $0 [--retry-failed]" >&2
        exit 2
        ;;
    esac
done
queued="$(squeue -h -n "$JOB" -o %i 2>/dev/null | sort -u | tr '\n' ' ')"
if [[ -n "${{queued// /}}" ]]; then
    echo "submit: jobs of this sweep are queued or running ($queued); wait for them, or scancel them, then submit again" >&2
    exit 1
fi
cells="$("$KIDBENCH" "${{SWEEP[@]}}" --unfinished "${{retry[@]}}")"
jid() {{ local out; out="$(sbatch --parsable "$@")" && echo "${{out%%;*}}"; }}
if [[ -z "$cells" ]]; then
    report="$(jid --job-name="$JOB" --output="$LOGS/report.log" "$HERE/sweep.sbatch" report)"
    echo "submit: every cell is done or failed; report job $report"
    echo "report=$report" >"$HERE/submitted"
    exit 0
fi
prepare="$(jid --job-name="$JOB" --output="$LOGS/prepare.log" "$HERE/sweep.sbatch" prepare)"
array="$(jid --dependency="afterok:$prepare" --kill-on-invalid-dep=yes --array="$cells{throttle}" "$HERE/sweep.sbatch" cell "${{retry[@]}}")"
report="$(jid --job-name="$JOB" --dependency="afterany:$array" --output="$LOGS/report.log" "$HERE/sweep.sbatch" report)"
echo "submit: prepare job $prepare; cells $cells as array job $array; report job $report"
echo "submit: logs in $LOGS; state: $KIDBENCH ${{SWEEP[*]}} --status"
printf 'prepare=%s\narray=%s\nreport=%s\ncells=%s\n' "$prepare" "$array" "$report" "$cells" >"$HERE/submitted"
"#,
        sweep_name = file.name,
        exe = sh(&exe.display().to_string()),
        sweep = quoted.join(" "),
        here = sh(&sdir.display().to_string()),
        logs = sh(&logs.display().to_string()),
        job = sh(&name),
    );
    let sbatch_path = sdir.join("sweep.sbatch");
    let submit_path = sdir.join("submit.sh");
    for (p, text) in [(&sbatch_path, &sbatch), (&submit_path, &submit)] {
        kidbench_results::write_atomic(p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", p.display()))?;
    }
    Ok(Emitted {
        sbatch: sbatch_path,
        submit: submit_path,
        unfinished: unfinished(&dir, cells, false)?,
    })
}

/// What `--emit local` did with each cell it started.
#[derive(Debug, Clone)]
pub struct LocalRun {
    pub index: usize,
    pub ok: bool,
    pub seconds: f64,
    pub log: PathBuf,
}

/// Runs the unfinished cells as `kidbench sweep FILE --cell i` processes, at most
/// `--max-parallel` at once (default 1), each with `--cpus-per-task` libtorch threads (default:
/// this machine's CPUs shared evenly) and its log in `<dir>/logs/cell-<i>.log`.
pub fn run_local(args: &SweepArgs, cells: &[Cell], dir: &Path) -> anyhow::Result<Vec<LocalRun>> {
    let e = &args.emit;
    for (flag, set) in [
        ("--partition", e.partition.is_some()),
        ("--account", e.account.is_some()),
        ("--mem", e.mem.is_some()),
        ("--time", e.time_limit.is_some()),
        ("--gpus-per-task", e.gpus_per_task.is_some()),
    ] {
        if set {
            anyhow::bail!("{flag} is a Slurm option: it needs --emit slurm, not --emit local");
        }
    }
    let parallel = e.max_parallel.unwrap_or(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = e
        .cpus_per_task
        .map_or((cpus / parallel).max(1), |n| n as usize);
    if parallel == 0 || threads == 0 {
        anyhow::bail!("--max-parallel and --cpus-per-task must be at least 1");
    }
    let todo = unfinished(dir, cells, args.retry_failed)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let exe = std::env::current_exe().context("finding the kidbench executable")?;
    let mut argv = sweep_argv(args)?;
    if args.retry_failed {
        argv.push("--retry-failed".into());
    }
    eprintln!(
        "kidbench: {} of {} cells to run, {parallel} at a time with {threads} thread(s) each; logs in {}",
        todo.len(),
        cells.len(),
        logs.display()
    );
    let mut queue: std::collections::VecDeque<usize> = todo.into_iter().collect();
    let mut running: Vec<(usize, Child, Instant, PathBuf)> = Vec::new();
    let mut finished = Vec::new();
    let total = queue.len();
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < parallel {
            let Some(i) = queue.pop_front() else { break };
            let log = logs.join(format!("cell-{i}.log"));
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .with_context(|| format!("opening {}", log.display()))?;
            let err = out
                .try_clone()
                .with_context(|| format!("opening {}", log.display()))?;
            let child = Command::new(&exe)
                .args(&argv)
                .arg("--cell")
                .arg(i.to_string())
                .env("OMP_NUM_THREADS", threads.to_string())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .with_context(|| format!("starting {} for cell {i}", exe.display()))?;
            let cell = &cells[i];
            eprintln!(
                "kidbench: cell {i} ({} seed {}) started: {}",
                cell.plan.methods[0].spec(),
                cell.plan.seed,
                log.display()
            );
            running.push((i, child, Instant::now(), log));
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut k = 0;
        while k < running.len() {
            let status = running[k]
                .1
                .try_wait()
                .with_context(|| format!("waiting for cell {}", running[k].0))?;
            let Some(status) = status else {
                k += 1;
                continue;
            };
            let (i, _, t, log) = running.swap_remove(k);
            let seconds = t.elapsed().as_secs_f64();
            let cell = &cells[i];
            let state = cell_state(&dir.join("cells").join(cell.id()), &cell.plan.hash())?;
            eprintln!(
                "kidbench: cell {i} ({} seed {}) {} after {seconds:.0}s [{} of {total}]{}",
                cell.plan.methods[0].spec(),
                cell.plan.seed,
                state,
                finished.len() + 1,
                if status.success() {
                    String::new()
                } else {
                    format!(": exit {status}, see {}", log.display())
                }
            );
            finished.push(LocalRun {
                index: i,
                ok: status.success() && state == CellState::Done,
                seconds,
                log,
            });
        }
    }
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_lists_compress_runs_of_indices() {
        assert_eq!(array_list(&[]), "");
        assert_eq!(array_list(&[4]), "4");
        assert_eq!(array_list(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_list(&[9, 0, 1, 2, 7, 10, 2]), "0-2,7,9-10");
    }

    #[test]
    fn shell_values_are_single_quoted() {
        assert_eq!(sh("/a b/c"), "'/a b/c'");
        assert_eq!(sh("it's"), r"'it'\''s'");
    }

    #[test]
    fn slurm_values_are_one_plain_word() {
        assert!(slurm_word("--time", "1-00:00:00").is_ok());
        assert!(slurm_word("--mem", "16G").is_ok());
        let e = slurm_word("--partition", "gpu\n#SBATCH --x").unwrap_err();
        assert!(e.to_string().contains("--partition"), "{e}");
        assert!(slurm_word("--account", "").is_err());
    }
}
