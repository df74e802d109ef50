//! `kidbench sweep --emit slurm` against a real Slurm on this machine (scripts/slurm-local.sh
//! installs and starts it): the smoke sweep submitted as a job array gives, cell for cell, the
//! per-question verdicts and the report of the same sweep run in one process; an array task
//! cancelled mid-training (`scancel`, so SIGTERM) leaves its cell unfinished and listed by the
//! report, and submitting again runs only that cell, to the same report.
//!
//! Training on CPU is deterministic for a seed and a thread count, so every process here runs
//! libtorch with one thread (`--cpus-per-task 1`, `OMP_NUM_THREADS=1`). The shared cache is the
//! user's (`~/.cache/kidbench`), as for the regression gate that runs the same sweep, so the
//! teacher is trained at most once. When Slurm cannot be installed or started the tests fail
//! with the script's reason: they are never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::{kidbench, tempdir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How long a whole sweep may take here before a test gives up (the smoke sweep takes about
/// three minutes on 2 idle cores; other tests run beside these).
const SWEEP_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Starts the local Slurm once; returns its SLURM_CONF.
fn slurm_conf() -> &'static str {
    static CONF: OnceLock<String> = OnceLock::new();
    CONF.get_or_init(|| {
        let script = repo().join("scripts/slurm-local.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "the Slurm tests need a local Slurm, and `scripts/slurm-local.sh start` could not \
             provide one:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .expect("bash runs");
        let line = String::from_utf8_lossy(&env.stdout).trim().to_string();
        line.strip_prefix("export SLURM_CONF=")
            .unwrap_or_else(|| panic!("slurm-local.sh env printed '{line}'"))
            .to_string()
    })
}

/// A Slurm command (`squeue`, `scancel`, a submit script) with the local configuration.
fn slurm(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .env("SLURM_CONF", slurm_conf())
        .current_dir(repo())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kidbench <args>` run from the repository, one libtorch thread.
fn kb(args: &[&str]) -> (bool, String, String) {
    let out = kidbench()
        .args(args)
        .current_dir(repo())
        .env("OMP_NUM_THREADS", "1")
        .env("SLURM_CONF", slurm_conf())
        .env_remove("KIDBENCH_PLUGIN_PATH")
        .stdin(Stdio::null())
        .output()
        .expect("kidbench runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn smoke() -> String {
    s(&repo().join("sweeps/smoke.toml"))
}

/// The smoke sweep run in one process (once for both tests): its sweep folder.
fn reference() -> &'static Path {
    static REF: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_keep, dir) = REF.get_or_init(|| {
        let out = tempdir();
        let (ok, so, se) = kb(&["sweep", &smoke(), "--out", &s(out.path()), "--quiet"]);
        assert!(ok, "the in-process smoke sweep failed:\n{so}\n{se}");
        let dir = out.path().join("smoke");
        (out, dir)
    });
    dir
}

/// `key=value` lines of the `submitted` file that submit.sh writes.
fn submitted(sweep_dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(sweep_dir.join("slurm/submitted"))
        .expect("submit.sh writes slurm/submitted");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs the sweep folder's submit.sh; returns what it submitted.
fn submit(sweep_dir: &Path) -> BTreeMap<String, String> {
    let script = sweep_dir.join("slurm/submit.sh");
    let (ok, so, se) = slurm("bash", &[&s(&script)]);
    assert!(ok, "submit.sh failed:\n{so}\n{se}");
    submitted(sweep_dir)
}

/// The jobs of `jobs` still queued or running.
fn queued(jobs: &[&str]) -> String {
    let (ok, so, se) = slurm("squeue", &["-h", "-j", &jobs.join(","), "-o", "%i %T"]);
    // squeue -j answers with an error for ids it no longer knows: none of them is queued then.
    if !ok && se.contains("Invalid job id") {
        return String::new();
    }
    assert!(ok, "squeue failed: {se}");
    so.trim().to_string()
}

/// Logs of a sweep folder, for failure messages.
fn logs(sweep_dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(sweep_dir.join("logs")) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let body = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = body.lines().rev().take(15).collect();
            text.push_str(&format!("== {}\n", p.display()));
            for l in tail.into_iter().rev() {
                text.push_str(l);
                text.push('\n');
            }
        }
    }
    text
}

/// Waits until every job of what submit.sh submitted has left the queue.
fn wait_for(sweep_dir: &Path, jobs: &BTreeMap<String, String>) {
    let ids: Vec<&str> = ["prepare", "array", "report"]
        .iter()
        .filter_map(|k| jobs.get(*k).map(String::as_str))
        .collect();
    let start = Instant::now();
    loop {
        let q = queued(&ids);
        if q.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < SWEEP_TIMEOUT,
            "the sweep's jobs are still queued after {:?}:\n{q}\n{}",
            SWEEP_TIMEOUT,
            logs(sweep_dir)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Emits the smoke sweep for Slurm into `out`; returns its sweep folder.
fn emit(out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "sweep",
        "--emit",
        "slurm",
        "--cpus-per-task",
        "1",
        "--time",
        "1:00:00",
        "--out",
    ];
    let out_s = s(out);
    let file = smoke();
    args.push(&out_s);
    args.extend_from_slice(extra);
    args.insert(1, &file);
    let (ok, so, se) = kb(&args);
    assert!(ok, "--emit slurm failed:\n{so}\n{se}");
    assert!(
        so.contains("6 of 6 cells to run (0-5)"),
        "emit output: {so}"
    );
    let dir = out.join("smoke");
    let sbatch = std::fs::read_to_string(dir.join("slurm/sweep.sbatch")).unwrap();
    for want in [
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --time=1:00:00",
    ] {
        assert!(
            sbatch.contains(want),
            "sweep.sbatch lacks {want}:\n{sbatch}"
        );
    }
    dir
}

/// The per-question verdicts of every cell, by cell id and file name.
fn verdicts(sweep_dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let cells = sweep_dir.join("cells");
    for cell in std::fs::read_dir(&cells).expect("cells folder").flatten() {
        if !cell.path().is_dir() {
            continue;
        }
        let v = cell.path().join("verdicts");
        for f in std::fs::read_dir(&v).expect("verdicts folder").flatten() {
            let key = format!(
                "{}/{}",
                cell.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            // Each verdict without its execution time (`ms`), which is a measurement.
            let lines: Vec<String> = std::fs::read_to_string(f.path())
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().expect("a verdict object").remove("ms");
                    v.to_string()
                })
                .collect();
            out.insert(key, lines.join("\n"));
        }
    }
    out
}

/// `report.md` and `report.csv` of a sweep folder, without timings (the same bytes wherever
/// the cells ran, when their results are the same).
fn report(sweep_dir: &Path, out: &Path) -> (String, String) {
    let (ok, so, se) = kb(&[
        "report",
        &s(sweep_dir),
        "--out",
        &s(out),
        "--no-timings",
        "--no-png",
    ]);
    assert!(ok, "kidbench report failed:\n{so}\n{se}");
    (
        std::fs::read_to_string(out.join("report.md")).unwrap(),
        std::fs::read_to_string(out.join("report.csv")).unwrap(),
    )
}

fn assert_same_as_reference(sweep_dir: &Path, scratch: &Path) {
    let reference = reference();
    let (want_v, got_v) = (verdicts(reference), verdicts(sweep_dir));
    assert_eq!(
        want_v.keys().collect::<Vec<_>>(),
        got_v.keys().collect::<Vec<_>>(),
        "the Slurm sweep has other cells than the in-process one"
    );
    for (k, v) in &want_v {
        assert!(
            got_v[k] == *v,
            "{k}: per-question verdicts differ between the in-process and the Slurm sweep"
        );
    }
    let (want_md, want_csv) = report(reference, &scratch.join("report-ref"));
    let (got_md, got_csv) = report(sweep_dir, &scratch.join("report-slurm"));
    assert_eq!(got_md, want_md, "report.md differs");
    assert_eq!(got_csv, want_csv, "report.csv differs");
}

#[test]
fn slurm_job_array_gives_the_report_of_one_process() {
    let out = tempdir();
    let dir = emit(out.path(), &["--max-parallel", "2"]);
    let jobs = submit(&dir);
    assert_eq!(
        jobs.get("cells").map(String::as_str),
        Some("0-5"),
        "{jobs:?}"
    );
    reference();
    wait_for(&dir, &jobs);
    let (ok, so, se) = kb(&["sweep", &smoke(), "--out", &s(out.path()), "--status"]);
    assert!(ok, "{se}");
    assert!(
        so.contains("6 cells: 6 done"),
        "after the array:\n{so}\n{}",
        logs(&dir)
    );
    // The report job ran after the array and wrote the merged report.
    let md = std::fs::read_to_string(dir.join("report/report.md"))
        .unwrap_or_else(|e| panic!("the report job wrote no report.md ({e}):\n{}", logs(&dir)));
    assert!(!md.contains("Cells without a result"), "{md}");
    // Every cell's log is its own and says which task ran it.
    for i in 0..6 {
        let log = std::fs::read_to_string(dir.join(format!("logs/cell-{i}.log"))).unwrap();
        assert!(
            log.contains(&format!("task {i} on")),
            "cell-{i}.log:\n{log}"
        );
    }
    assert_same_as_reference(&dir, out.path());
    // Submitting a finished sweep again submits no cell, only the report.
    let again = submit(&dir);
    assert!(
        !again.contains_key("cells") && again.contains_key("report"),
        "{again:?}"
    );
    wait_for(&dir, &again);
}

#[test]
fn a_cancelled_array_task_resumes_on_resubmission_to_the_same_report() {
    let out = tempdir();
    // One task at a time, so the cancelled one is mid-training while the others wait.
    let dir = emit(out.path(), &["--max-parallel", "1"]);
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let victim = 1usize;
    let cell = &sweep["cells"][victim];
    let (id, method) = (
        cell["id"].as_str().unwrap().to_string(),
        cell["method"].as_str().unwrap().to_string(),
    );
    let jobs = submit(&dir);
    let array = jobs["array"].clone();
    // Cancel the task once its training has logged step 10 of 20 (metrics every 10 steps).
    let metrics = dir
        .join("cells")
        .join(&id)
        .join(format!("metrics/{method}.jsonl"));
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&metrics)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 1 {
            assert_eq!(
                lines, 1,
                "cell {victim} trained past step 10 before the test saw it"
            );
            break;
        }
        assert!(
            start.elapsed() < SWEEP_TIMEOUT,
            "cell {victim} never started training:\n{}",
            logs(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let task = format!("{array}_{victim}");
    let (ok, _, se) = slurm("scancel", &[&task]);
    assert!(ok, "scancel {task}: {se}");
    wait_for(&dir, &jobs);
    let log = std::fs::read_to_string(dir.join(format!("logs/cell-{victim}.log"))).unwrap();
    assert!(
        log.contains("interrupted by SIGTERM at step") && log.contains("checkpoint written"),
        "the cancelled task did not checkpoint on SIGTERM:\n{log}"
    );
    let ckpt = dir
        .join("cells")
        .join(&id)
        .join(format!("checkpoints/{method}/latest"));
    assert!(ckpt.is_file(), "no checkpoint at {}", ckpt.display());
    // The report job ran after the array and lists the cell that did not finish.
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(
        md.contains("## Cells without a result")
            && md.contains(&format!("| {victim} | {method} | 1 | interrupted |")),
        "the report does not list the cancelled cell:\n{md}"
    );
    let (_, so, _) = kb(&["sweep", &smoke(), "--out", &s(out.path()), "--status"]);
    assert!(so.contains("6 cells: 5 done, 1 interrupted"), "{so}");
    // Submitting again runs only the unfinished cell, which resumes from its checkpoint.
    let again = submit(&dir);
    assert_eq!(
        again.get("cells").map(String::as_str),
        Some(victim.to_string().as_str()),
        "{again:?}"
    );
    wait_for(&dir, &again);
    let log = std::fs::read_to_string(dir.join(format!("logs/cell-{victim}.log"))).unwrap();
    assert!(
        log.matches(&format!("task {victim} on")).count() == 2,
        "the cell's log holds both of its tasks, appended:\n{log}"
    );
    assert!(
        log.contains("resuming from the checkpoint of step"),
        "the resubmitted task did not resume from the checkpoint:\n{log}"
    );
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(!md.contains("Cells without a result"), "{md}");
    assert_same_as_reference(&dir, out.path());
}
