//! `kidbench run` with several KD plugins on a tiny setup (tiny-s teacher and student, a few
//! steps on a slice of synth): result files for every method, latency from training time, a
//! broken plugin recorded while the others complete, errors before any training, budgets.
//! Needs the plugin cdylibs beside the binary (`cargo build --workspace`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::{kidbench, tempdir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kidbench run` on the tiny setup with `extra` arguments, its cache in `home`.
fn run_tiny(home: &Path, out: &Path, extra: &[&str]) -> (bool, String, String) {
    let databases = repo().join("databases");
    let mut args: Vec<String> = [
        "run",
        "--teacher",
        "tiny-s",
        "--student",
        "tiny-s",
        "--teacher-steps",
        "2",
        "--max-train",
        "48",
        "--max-dev",
        "8",
        "--batch-size",
        "4",
        "--gen-batch-size",
        "8",
        "--vocab-size",
        "300",
        "--device",
        "cpu",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--out".into(), out.display().to_string()]);
    args.extend(["--databases-dir".into(), databases.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let Output {
        status,
        stdout,
        stderr,
    } = kidbench()
        .args(&args)
        .env("KIDBENCH_HOME", home)
        .env_remove("KIDBENCH_PLUGIN_PATH")
        .output()
        .expect("kidbench runs");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The single run folder under `out`.
fn run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("results folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// Splits one CSV line (fields may be quoted).
fn csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// (method, params, hardness, metric) → value, from results.csv.
type Rows = BTreeMap<(String, String, String, String), f64>;

fn read_csv(dir: &Path) -> Rows {
    let text = std::fs::read_to_string(dir.join("results.csv")).expect("results.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("run_id,method,params,teacher,student,benchmark,hardness,metric,value,n")
    );
    lines
        .map(|l| {
            let f = csv_line(l);
            assert_eq!(f.len(), 10, "{l}");
            (
                (f[1].clone(), f[2].clone(), f[6].clone(), f[7].clone()),
                f[8].parse::<f64>()
                    .unwrap_or_else(|_| panic!("value in {l}")),
            )
        })
        .collect()
}

fn get(rows: &Rows, method: &str, params: &str, hardness: &str, metric: &str) -> f64 {
    *rows
        .get(&(method.into(), params.into(), hardness.into(), metric.into()))
        .unwrap_or_else(|| panic!("no {metric}/{hardness} row for {method} [{params}]"))
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn plugins_run_all_seven_methods_and_write_their_results() {
    let home = tempdir();
    let out = tempdir();
    let kid = "kid:alpha=0.3,strategy=hard";
    let (ok, stdout, stderr) = run_tiny(
        home.path(),
        out.path(),
        &[
            "--steps",
            "2",
            "--methods",
            &format!(
                "sft,fkd,rkd,fdistill:max_new_tokens=24,imitkd:max_new_tokens=24,\
                 gkd:max_new_tokens=24,{kid}"
            ),
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    let dir = run_dir(out.path());
    let rows = read_csv(&dir);
    let methods: [(&str, &str); 7] = [
        ("sft", ""),
        ("fkd", ""),
        ("rkd", ""),
        ("fdistill", "max_new_tokens=24"),
        ("imitkd", "max_new_tokens=24"),
        ("gkd", "max_new_tokens=24"),
        ("kid", "alpha=0.3,strategy=hard"),
    ];
    let per_step = |m: &str, p: &str| {
        get(&rows, m, p, "all", "train_seconds") / get(&rows, m, p, "all", "train_steps")
    };
    let sft_step = per_step("sft", "");
    // One paired comparison with SFT per other method; its estimate is the difference of the
    // two EX figures in results.csv (same questions), to the printed decimal.
    let paired: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" vs sft: EX "))
        .collect();
    assert_eq!(paired.len(), 6, "{stdout}");
    let fkd_line = paired
        .iter()
        .find(|l| l.starts_with("fkd vs sft: EX "))
        .unwrap_or_else(|| panic!("no fkd line in {stdout}"));
    let printed: f64 = fkd_line["fkd vs sft: EX ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let want = 100.0 * (get(&rows, "fkd", "", "all", "ex") - get(&rows, "sft", "", "all", "ex"));
    assert!((printed - want).abs() < 0.051, "{fkd_line} vs {want}");
    assert!(
        fkd_line.contains("95% CI [") && fkd_line.contains("McNemar p = "),
        "{fkd_line}"
    );
    for (m, p) in methods {
        assert!(stdout.contains(&format!("\n{m}")), "{m} in\n{stdout}");
        for h in ["all", "easy", "medium", "hard", "extra"] {
            let ex = get(&rows, m, p, h, "ex");
            assert!((0.0..=1.0).contains(&ex));
        }
        // the synth test suite exists (built with synth): TS beside EX, never above it
        assert!(get(&rows, m, p, "all", "ts") <= get(&rows, m, p, "all", "ex"));
        assert_eq!(get(&rows, m, p, "all", "train_steps"), 2.0);
        // the split adds up to no more than the training time
        let split: f64 = [
            "seconds_student",
            "seconds_teacher",
            "seconds_sampling",
            "seconds_other",
        ]
        .iter()
        .map(|k| get(&rows, m, p, "all", k))
        .sum();
        let train = get(&rows, m, p, "all", "train_seconds");
        assert!(
            split > 0.0 && split <= train * 1.001 + 1e-3,
            "{m}: {split} vs {train}"
        );
        // latency = training seconds per step relative to SFT's (not generation time)
        let lat = get(&rows, m, p, "all", "latency_vs_sft");
        let want = per_step(m, p) / sft_step;
        assert!(
            (lat - want).abs() <= 1e-9 * want.max(1.0),
            "{m}: {lat} vs {want}"
        );
        assert!(dir
            .join(format!("predictions/{}.sql", label(m, p)))
            .is_file());
        assert!(dir.join(format!("metrics/{}.jsonl", label(m, p))).is_file());
    }
    assert_eq!(get(&rows, "sft", "", "all", "latency_vs_sft"), 1.0);
    // who paid for what: sft never runs the teacher nor samples; the KD methods run the teacher;
    // fdistill samples (teacher and student), kid does not
    assert_eq!(get(&rows, "sft", "", "all", "seconds_teacher"), 0.0);
    assert_eq!(get(&rows, "sft", "", "all", "seconds_sampling"), 0.0);
    for (m, p) in &methods[1..] {
        assert!(get(&rows, m, p, "all", "seconds_teacher") > 0.0, "{m}");
    }
    assert!(
        get(
            &rows,
            "fdistill",
            "max_new_tokens=24",
            "all",
            "seconds_sampling"
        ) > 0.0
    );
    assert_eq!(
        get(
            &rows,
            "kid",
            "alpha=0.3,strategy=hard",
            "all",
            "seconds_sampling"
        ),
        0.0
    );
    assert!(rows.keys().any(|k| k.0 == "teacher" && k.3 == "ts"));
    // the compute ledger: which model saw which tokens
    let tok = |m: &str, p: &str, k: &str| get(&rows, m, p, "all", k);
    assert!(tok("sft", "", "student_backward_tokens") > 0.0);
    for k in [
        "student_forward_tokens",
        "teacher_forward_tokens",
        "sampled_tokens",
    ] {
        assert_eq!(tok("sft", "", k), 0.0, "sft {k}");
    }
    for m in ["fkd", "rkd"] {
        // the teacher reads exactly the batches the student trains on
        assert_eq!(
            tok(m, "", "teacher_forward_tokens"),
            tok(m, "", "student_backward_tokens"),
            "{m}"
        );
        assert_eq!(tok(m, "", "sampled_tokens"), 0.0);
    }
    let kid_p = "alpha=0.3,strategy=hard";
    // kid: the masked pass (and the entropy pass of `hard`) has no gradient; the teacher reads
    // the imperfect sequences, the same tokens as the student's one trained pass
    assert!(tok("kid", kid_p, "student_forward_tokens") > 0.0);
    assert_eq!(
        tok("kid", kid_p, "teacher_forward_tokens"),
        tok("kid", kid_p, "student_backward_tokens")
    );
    assert!(tok("fdistill", "max_new_tokens=24", "sampled_tokens") > 0.0);
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("records/sft.json")).unwrap())
            .unwrap();
    let params = rec["outcome"]["training"]["ledger"]["student_params"]
        .as_f64()
        .unwrap();
    assert!(params > 0.0);
    // 2 x params x tokens per forward, 3x that with backward
    assert_eq!(
        tok("sft", "", "estimated_flops"),
        6.0 * params * tok("sft", "", "student_backward_tokens")
    );

    let s = summary(&dir);
    let ms = s["methods"].as_array().unwrap();
    assert_eq!(ms.len(), 7);
    assert!(ms.iter().all(|m| m["status"] == "ok"), "{s:#}");
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert!(
        table[0].contains("Latency (x SFT)") && table[0].contains("TS all"),
        "{md}"
    );
    assert!(
        table[0].contains("EX easy") && table[0].contains("EX extra"),
        "{md}"
    );
    assert!(table[2].starts_with("| teacher (tiny-s) | – |"), "{md}");
    assert!(table[3].starts_with("| sft | 1.00 |"), "{md}");
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("| kid (alpha=0.3, strategy=hard) |")),
        "{md}"
    );
    assert_eq!(table.len(), 2 + 1 + 7, "{md}");
}

fn label(m: &str, p: &str) -> String {
    if p.is_empty() {
        m.to_string()
    } else {
        format!("{m}_{}", p.replace('=', "-").replace(',', "_"))
    }
}

fn so(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

#[test]
fn plugins_run_records_a_broken_plugin_and_completes_the_others() {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_kidbench"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let plugins = tempdir();
    for b in ["nan", "panics"] {
        let from = so(&built, &format!("kidbench_broken_{b}"));
        assert!(
            from.is_file(),
            "{} missing: run `cargo build --workspace` first",
            from.display()
        );
        std::fs::copy(&from, so(plugins.path(), &format!("kidbench_plugin_{b}"))).unwrap();
    }
    let home = tempdir();
    let out = tempdir();
    let (ok, stdout, stderr) = run_tiny(
        home.path(),
        out.path(),
        &[
            "--steps",
            "2",
            "--methods",
            "nan,sft,panics",
            "--plugin-dir",
            &plugins.path().display().to_string(),
        ],
    );
    assert!(ok, "the run completes: {stdout}\n{stderr}");
    assert!(stdout.contains("nan FAILED"), "{stdout}");
    let dir = run_dir(out.path());
    let s = summary(&dir);
    let by: BTreeMap<&str, &serde_json::Value> = s["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m))
        .collect();
    assert_eq!(by["sft"]["status"], "ok");
    assert_eq!(by["nan"]["status"], "failed");
    let e = by["nan"]["error"].as_str().unwrap();
    assert!(
        e.contains("plugin 'nan'") && e.contains("not finite"),
        "{e}"
    );
    assert_eq!(by["panics"]["status"], "failed");
    let e = by["panics"]["error"].as_str().unwrap();
    assert!(e.contains("panicked: fixture panic in loss"), "{e}");
    let rows = read_csv(&dir);
    assert!(get(&rows, "sft", "", "all", "ex") >= 0.0);
    assert_eq!(get(&rows, "nan", "", "all", "failed"), 1.0);
    assert_eq!(get(&rows, "panics", "", "all", "failed"), 1.0);
    assert!(!rows.contains_key(&("nan".into(), "".into(), "all".into(), "ex".into())));
    assert!(dir.join("predictions/sft.sql").is_file());
    assert!(!dir.join("predictions/nan.sql").exists());
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("| nan | failed |"), "{md}");
    assert!(
        md.contains("## Failed methods") && md.contains("- **nan**:"),
        "{md}"
    );
}

#[test]
fn plugins_run_refuses_unknown_methods_and_bad_budgets_before_training() {
    let home = tempdir();
    let out = tempdir();
    let refused = |extra: &[&str], want: &[&str]| {
        let (ok, stdout, stderr) = run_tiny(home.path(), out.path(), extra);
        assert!(!ok, "{stdout}");
        for w in want {
            assert!(stderr.contains(w), "{w} not in: {stderr}");
        }
    };
    refused(
        &["--methods", "sft,kdi"],
        &["unknown method 'kdi'", "available:", "kid", "gkd", "sft"],
    );
    refused(
        &["--methods", "sft,kid:alpah=0.3"],
        &["plugin 'kid'", "valid parameters: alpha"],
    );
    refused(&["--methods", "gkd:lambda=2"], &["[0, 1]"]);
    refused(&["--methods", "sft,sft"], &["listed twice"]);
    refused(&["--budget", "time=abc"], &["--budget", "duration"]);
    refused(&["--budget", "epochs=2"], &["steps=N or time="]);
    refused(&["--budget", "steps=2", "--steps", "3"], &["disagree"]);
    // nothing was trained, generated or written
    assert!(!home.path().join("teachers").exists());
    assert!(!home.path().join("tokenizers").exists());
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn plugins_run_with_budgets_and_without_sft() {
    let home = tempdir();
    let out = tempdir();
    let (ok, stdout, stderr) = run_tiny(
        home.path(),
        out.path(),
        &["--methods", "rkd", "--budget", "time=2s"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    let dir = run_dir(out.path());
    let rows = read_csv(&dir);
    assert!(get(&rows, "rkd", "", "all", "train_seconds") >= 2.0);
    assert!(get(&rows, "rkd", "", "all", "train_steps") >= 1.0);
    // no sft in the run: no latency relative to it
    assert!(!rows.keys().any(|k| k.3 == "latency_vs_sft"), "{rows:?}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!(cfg["plan"]["student"]["train"]["time_budget_seconds"], 2.0);
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("a 2 s training budget"), "{md}");
    assert!(md.contains("| rkd | – |"), "{md}");

    let out2 = tempdir();
    let (ok, stdout, stderr) = run_tiny(
        home.path(),
        out2.path(),
        &["--methods", "rkd", "--budget", "steps=3"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("reusing the cached teacher"), "{stderr}");
    let rows = read_csv(&run_dir(out2.path()));
    assert_eq!(get(&rows, "rkd", "", "all", "train_steps"), 3.0);
}
