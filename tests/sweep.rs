//! `kidbench sweep` and `kidbench report` on a tiny grid (tiny-s teacher and students, a slice of
//! synth): a sweep killed with SIGKILL in the middle of a cell resumes to the same report as an
//! uninterrupted one; done cells are skipped; failed cells are kept failed until
//! `--retry-failed`; bad sweep files and a cell folder of another plan get errors naming the
//! file, the key or the folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{kidbench, tempdir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sweep file for the tiny setup, with `grid` as its [grid] body.
fn tiny_sweep(dir: &Path, name: &str, grid: &str) -> PathBuf {
    let text = format!(
        r#"name = "{name}"
[run]
teacher = "tiny-s"
student = "tiny-s"
teacher-steps = 2
max-train = 48
max-dev = 8
batch-size = 4
gen-batch-size = 8
vocab-size = 300
device = "cpu"
steps = 120
checkpoint-every = 20
eval-every = 40
curve-questions = 6
databases-dir = "{}"
[grid]
{grid}
"#,
        repo().join("databases").display()
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// `kidbench <args>` with its cache in `home`; (success, stdout, stderr).
fn kb(home: &Path, args: &[&str]) -> (bool, String, String) {
    kb_threads(home, args, None)
}

/// `kb` with `threads` libtorch threads when given (results are bitwise reproducible for a
/// thread count).
fn kb_threads(home: &Path, args: &[&str], threads: Option<&str>) -> (bool, String, String) {
    let mut cmd = kidbench();
    cmd.args(args)
        .env("KIDBENCH_HOME", home)
        .env_remove("KIDBENCH_PLUGIN_PATH");
    if let Some(n) = threads {
        cmd.env("OMP_NUM_THREADS", n);
    }
    let out = cmd.output().expect("kidbench runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The cell folders of a sweep folder.
fn cells(sweep: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(sweep.join("cells"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The report of a sweep folder without timing figures: (report.md, report.csv).
fn report(home: &Path, sweep: &Path, out: &Path) -> (String, String) {
    let (ok, stdout, stderr) = kb(
        home,
        &[
            "report",
            &s(sweep),
            "--out",
            &s(out),
            "--no-timings",
            "--no-png",
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    (
        std::fs::read_to_string(out.join("report.md")).unwrap(),
        std::fs::read_to_string(out.join("report.csv")).unwrap(),
    )
}

#[test]
fn sweep_killed_mid_cell_resumes_to_the_report_of_an_uninterrupted_sweep() {
    let home = tempdir();
    let tmp = tempdir();
    let file = tiny_sweep(
        tmp.path(),
        "kill",
        "methods = [\"sft\", \"rkd\"]\nseeds = [1, 2]",
    );

    // Uninterrupted.
    let out_a = tmp.path().join("a");
    let (ok, stdout, stderr) = kb(
        home.path(),
        &["sweep", &s(&file), "--out", &s(&out_a), "--quiet"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("4 cells, 4 trained now"), "{stdout}");
    let sweep_a = out_a.join("kill");
    assert_eq!(cells(&sweep_a).len(), 4);
    for c in cells(&sweep_a) {
        assert!(c.join("DONE").is_file(), "{}", c.display());
        assert!(c.join("plan.json").is_file());
        assert!(c.join("records").is_dir());
    }
    let (md_a, csv_a) = report(home.path(), &sweep_a, &tmp.path().join("rep-a"));
    assert!(md_a.contains("rkd") && md_a.contains("sft"), "{md_a}");
    // learning curves: a point every 40 of the 120 steps, on the 6-question subset
    for c in cells(&sweep_a) {
        let rec = std::fs::read_dir(c.join("records"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n == "sft.json" || n == "rkd.json"
            })
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&rec).unwrap()).unwrap();
        let steps: Vec<u64> = v["outcome"]["curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, vec![40, 80, 120], "{}", rec.display());
        assert!(v["outcome"]["curve"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["questions"] == 6));
    }
    assert!(csv_a.contains("curve_ex"), "{csv_a}");

    // Again: every cell is skipped.
    let (ok, stdout, stderr) = kb(
        home.path(),
        &["sweep", &s(&file), "--out", &s(&out_a), "--quiet"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("0 trained now, 4 done before"), "{stdout}");

    // Killed with SIGKILL once a cell has a checkpoint but no DONE marker, then run again.
    let out_b = tmp.path().join("b");
    let mut child = kidbench()
        .args(["sweep", &s(&file), "--out", &s(&out_b), "--quiet"])
        .env("KIDBENCH_HOME", home.path())
        .env_remove("KIDBENCH_PLUGIN_PATH")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sweep_b = out_b.join("kill");
    let start = Instant::now();
    let killed_in = loop {
        let mid = cells(&sweep_b).into_iter().find(|c| {
            !c.join("DONE").exists()
                && std::fs::read_dir(c.join("checkpoints"))
                    .map(|rd| rd.flatten().any(|m| m.path().join("latest").is_file()))
                    .unwrap_or(false)
        });
        if let Some(c) = mid {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            break c;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before a cell was caught mid-way"
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(!killed_in.join("DONE").exists());
    let (ok, stdout, _) = kb(
        home.path(),
        &["sweep", &s(&file), "--out", &s(&out_b), "--list"],
    );
    assert!(ok);
    assert!(stdout.contains("interrupted"), "{stdout}");
    let (ok, stdout, stderr) = kb(
        home.path(),
        &["sweep", &s(&file), "--out", &s(&out_b), "--quiet"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(killed_in.join("DONE").is_file());
    let (md_b, csv_b) = report(home.path(), &sweep_b, &tmp.path().join("rep-b"));
    assert_eq!(md_a, md_b, "the resumed sweep's report differs");
    assert_eq!(csv_a, csv_b);

    // The same cell ids in both folders: the plan hash is the identity.
    let ids = |d: &Path| -> Vec<String> {
        cells(d)
            .iter()
            .map(|c| c.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(ids(&sweep_a), ids(&sweep_b));

    // A cell folder whose plan is not its name is refused, naming it.
    let victim = &cells(&sweep_a)[0];
    let plan = victim.join("plan.json");
    let text = std::fs::read_to_string(&plan).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let hash = v["hash"].as_str().unwrap().to_string();
    std::fs::write(&plan, text.replace(&hash, &"0".repeat(64))).unwrap();
    let (ok, _, stderr) = kb(
        home.path(),
        &["sweep", &s(&file), "--out", &s(&out_a), "--quiet"],
    );
    assert!(!ok);
    assert!(
        stderr.contains("holds another plan") && stderr.contains(&s(victim)),
        "{stderr}"
    );
}

#[test]
fn sweep_keeps_failed_cells_failed_until_retry_failed() {
    let home = tempdir();
    let tmp = tempdir();
    // the broken `nan` fixture beside a working method
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_kidbench"));
    let lib = exe.parent().unwrap().join("libkidbench_broken_nan.so");
    std::fs::copy(&lib, plugins.join("libkidbench_plugin_nan.so")).unwrap();
    let file = tiny_sweep(
        tmp.path(),
        "fails",
        "methods = [\"sft\", \"nan\"]\nseeds = [1]",
    );
    let out = tmp.path().join("out");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["sweep", &s(&file), "--out", &s(&out), "--quiet"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        a.extend(["--plugin-dir".to_string(), s(&plugins)]);
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        kb(home.path(), &refs)
    };
    let (ok, stdout, stderr) = run(&[]);
    assert!(
        ok,
        "a failed method is recorded, the sweep goes on: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 trained now") && stdout.contains("1 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("not finite"), "{stdout}");
    let failed: Vec<PathBuf> = cells(&out.join("fails"))
        .into_iter()
        .filter(|c| c.join("FAILED").is_file())
        .collect();
    assert_eq!(failed.len(), 1);
    // the report lists it
    let md = std::fs::read_to_string(out.join("fails/report/report.md")).unwrap();
    assert!(md.contains("nan"), "{md}");
    let (ok, stdout, stderr) = run(&[]);
    assert!(ok);
    assert!(
        stdout.contains("0 trained now, 1 done before, 1 failed"),
        "{stdout}"
    );
    assert!(stderr.contains("--retry-failed"), "{stderr}");
    let (ok, stdout, _) = run(&["--retry-failed"]);
    assert!(ok);
    assert!(
        stdout.contains("1 failed") && stdout.contains("not finite"),
        "{stdout}"
    );
}

#[test]
fn bad_sweep_files_name_the_file_and_the_key() {
    let home = tempdir();
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let check = |name: &str, grid: &str, want: &[&str]| {
        let file = tiny_sweep(tmp.path(), name, grid);
        let (ok, stdout, stderr) = kb(
            home.path(),
            &["sweep", &s(&file), "--out", &s(&out), "--list"],
        );
        assert!(!ok, "{name}: accepted\n{stdout}");
        assert!(
            stderr.contains(&s(&file)),
            "{name}: the error does not name the file: {stderr}"
        );
        for w in want {
            assert!(stderr.contains(w), "{name}: no '{w}' in: {stderr}");
        }
    };
    check(
        "unknown-method",
        "methods = [\"sft\", \"magic\"]",
        &["unknown method 'magic'", "kid"],
    );
    check(
        "unknown-param",
        "methods = [{ name = \"kid\", alpah = [0.1] }]",
        &["unknown parameter 'alpah'", "valid parameters: alpha"],
    );
    check(
        "bad-value",
        "methods = [\"kid:alpha=7\"]",
        &["alpha", "[0, 1]"],
    );
    check(
        "empty-seeds",
        "methods = [\"sft\"]\nseeds = []",
        &["seeds is empty"],
    );
    check(
        "empty-values",
        "methods = [{ name = \"kid\", alpha = [] }]",
        &["kid.alpha is empty"],
    );
    check("no-methods", "seeds = [1]", &["needs methods"]);
    check(
        "bad-grid-key",
        "methods = [\"sft\"]\nseed = [1]",
        &["unknown [grid] key 'seed'", "seeds"],
    );
    check(
        "twice",
        "methods = [\"kid:alpha=0.30\", \"kid:alpha=0.3\"]",
        &["twice"],
    );
    // a [run] key that is no `kidbench run` flag
    let file = tmp.path().join("bad-run.toml");
    std::fs::write(
        &file,
        "[run]\nteachr = \"tiny-s\"\n[grid]\nmethods = [\"sft\"]\n",
    )
    .unwrap();
    let (ok, _, stderr) = kb(home.path(), &["sweep", &s(&file), "--list"]);
    assert!(!ok);
    assert!(
        stderr.contains(&s(&file)) && stderr.contains("teachr"),
        "{stderr}"
    );
    // not TOML at all
    std::fs::write(&file, "name = \n").unwrap();
    let (ok, _, stderr) = kb(home.path(), &["sweep", &s(&file), "--list"]);
    assert!(!ok);
    assert!(stderr.contains("not valid TOML"), "{stderr}");
}

/// `kb` with one libtorch thread.
fn kb1(home: &Path, args: &[&str]) -> (bool, String, String) {
    kb_threads(home, args, Some("1"))
}

#[test]
fn emit_local_and_a_sigint_mid_training_give_the_report_of_one_process() {
    let home = tempdir();
    let tmp = tempdir();
    let file = tiny_sweep(
        tmp.path(),
        "procs",
        "methods = [\"sft\", \"rkd\"]\nseeds = [1]",
    );
    let reference = tmp.path().join("ref");
    let (ok, stdout, stderr) = kb1(
        home.path(),
        &["sweep", &s(&file), "--out", &s(&reference), "--quiet"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    let (md_ref, csv_ref) = report(
        home.path(),
        &reference.join("procs"),
        &tmp.path().join("r0"),
    );

    // --emit local: the cells as two processes at once, one thread each, a log per cell.
    let local = tmp.path().join("local");
    let (ok, stdout, stderr) = kb1(
        home.path(),
        &[
            "sweep",
            &s(&file),
            "--out",
            &s(&local),
            "--emit",
            "local",
            "--max-parallel",
            "2",
            "--cpus-per-task",
            "1",
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("2 cells, 2 trained now"), "{stdout}");
    assert!(
        stderr.contains("2 of 2 cells to run, 2 at a time with 1 thread(s) each"),
        "{stderr}"
    );
    for i in 0..2 {
        let log = local.join(format!("procs/logs/cell-{i}.log"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains(&format!("cell {i} (1 of 1)")),
            "{}:\n{text}",
            log.display()
        );
    }
    assert!(local.join("procs/report/report.md").is_file());
    let (md, csv) = report(home.path(), &local.join("procs"), &tmp.path().join("r1"));
    assert_eq!(md, md_ref, "--emit local gives another report.md");
    assert_eq!(csv, csv_ref);
    // Slurm-only options are refused with --emit local, naming the flag.
    let (ok, _, stderr) = kb1(
        home.path(),
        &[
            "sweep",
            &s(&file),
            "--out",
            &s(&local),
            "--emit",
            "local",
            "--partition",
            "gpu",
        ],
    );
    assert!(
        !ok && stderr.contains("--partition is a Slurm option"),
        "{stderr}"
    );

    // SIGINT mid-training: the step finishes, a checkpoint of it is written, exit 130.
    let int = tmp.path().join("int");
    let child = kidbench()
        .args(["sweep", &s(&file), "--out", &s(&int), "--quiet"])
        .env("KIDBENCH_HOME", home.path())
        .env("OMP_NUM_THREADS", "1")
        .env_remove("KIDBENCH_PLUGIN_PATH")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sweep = int.join("procs");
    let start = Instant::now();
    let victim = loop {
        // metrics lines every 10 of the 120 steps: training is under way, far from its end
        let mid = cells(&sweep).into_iter().find(|c| {
            !c.join("DONE").exists()
                && std::fs::read_dir(c.join("metrics"))
                    .map(|rd| {
                        rd.flatten().any(|m| {
                            let n = m.file_name().to_string_lossy().into_owned();
                            n != "teacher.jsonl"
                                && n.ends_with(".jsonl")
                                && std::fs::read_to_string(m.path())
                                    .is_ok_and(|t| t.lines().count() >= 1)
                        })
                    })
                    .unwrap_or(false)
        });
        if let Some(c) = mid {
            let st = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(st.success());
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no cell started training"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted by SIGINT at step") && stderr.contains("checkpoint written"),
        "{stderr}"
    );
    assert!(!victim.join("DONE").exists() && !victim.join("FAILED").exists());
    let (ok, stdout, _) = kb1(
        home.path(),
        &["sweep", &s(&file), "--out", &s(&int), "--list"],
    );
    assert!(ok && stdout.contains("interrupted"), "{stdout}");
    let (ok, stdout, stderr) = kb1(
        home.path(),
        &["sweep", &s(&file), "--out", &s(&int), "--quiet"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("resuming from the checkpoint of step"),
        "{stderr}"
    );
    let (md, csv) = report(home.path(), &sweep, &tmp.path().join("r2"));
    assert_eq!(
        md, md_ref,
        "the run resumed after SIGINT gives another report.md"
    );
    assert_eq!(csv, csv_ref);
}

#[test]
fn a_cell_done_in_another_sweep_folder_is_copied_not_trained() {
    let home = tempdir();
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let first = tiny_sweep(tmp.path(), "first", "methods = [\"sft\"]\nseeds = [1]");
    let second = tiny_sweep(
        tmp.path(),
        "second",
        "methods = [\"sft\", \"rkd\"]\nseeds = [1]",
    );
    // `kidbench sweep FILE --out OUT --quiet EXTRA...`, which must succeed: (stdout, stderr)
    let sweep = |file: &Path, extra: &[&str]| -> (String, String) {
        let mut a = vec![
            "sweep".to_string(),
            s(file),
            "--out".into(),
            s(&out),
            "--quiet".into(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = kb(home.path(), &refs);
        assert!(ok, "{stdout}\n{stderr}");
        (stdout, stderr)
    };
    sweep(&first, &[]);
    let (stdout, stderr) = sweep(&second, &[]);
    assert!(
        stdout.contains("1 trained now, 1 done before (1 copied from other sweep folders)"),
        "{stdout}"
    );
    let src = cells(&out.join("first")).pop().unwrap();
    let id = src.file_name().unwrap();
    let copy = out.join("second/cells").join(id);
    assert!(copy.join("DONE").is_file(), "{stderr}");
    assert!(stderr.contains("copied from"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(copy.join("reused-from"))
            .unwrap()
            .trim(),
        s(&src)
    );
    // the copy's verdicts are the source's, its summary names its own folder
    let names = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d.join("verdicts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let (a, b) = (names(&src), names(&copy));
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(copy.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["dir"].as_str().unwrap(), s(&copy));
    let source_summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        source_summary["dir"].as_str().unwrap(),
        s(&src),
        "source untouched"
    );
    // --no-reuse in a third folder trains both; a cell not done in the source is never copied
    std::fs::remove_file(src.join("DONE")).unwrap();
    let third = tiny_sweep(tmp.path(), "third", "methods = [\"sft\"]\nseeds = [1]");
    let (stdout, _) = sweep(&third, &[]);
    assert!(
        stdout.contains("0 trained now, 1 done before (1 copied"),
        "the done copy in `second` serves: {stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("third/cells").join(id).join("reused-from"))
            .unwrap()
            .trim(),
        s(&copy),
        "copied from the done cell, not from the one without DONE"
    );
    let fourth = tiny_sweep(tmp.path(), "fourth", "methods = [\"sft\"]\nseeds = [1]");
    let (stdout, _) = sweep(&fourth, &["--no-reuse"]);
    assert!(
        stdout.contains("1 trained now, 0 done before, 0 failed"),
        "{stdout}"
    );
    assert!(!out
        .join("fourth/cells")
        .join(id)
        .join("reused-from")
        .exists());
}
