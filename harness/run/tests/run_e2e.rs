//! End to end on a small slice of synth: teacher + SFT student, predictions, scoring, results
//! folder with every file and the long-form CSV; then the teacher cache is reused; then bad
//! inputs (unknown benchmark/method/preset, missing model folder) fail with clear errors.

mod common;

use common::{tiny_args, workspace_databases};
use kidbench_run::{RunArgs, CSV_HEADER};

/// The shared tiny run (tiny-s, 40 train, 12 dev) at 3 teacher and 3 student steps, in `out`.
fn mini(out: &std::path::Path) -> RunArgs {
    let mut a = tiny_args(&workspace_databases());
    a.steps = Some(3);
    a.teacher_steps = Some(3);
    a.out = out.to_path_buf();
    a.gen_batch_size = 8;
    a.common.batch_size = 4;
    a
}

#[test]
fn mini_run_writes_all_result_files() {
    let home = tempfile::tempdir().unwrap();
    // This test binary has a single test touching the environment.
    std::env::set_var("KIDBENCH_HOME", home.path());
    let out = tempfile::tempdir().unwrap();
    let args = mini(out.path());
    let s = kidbench_run::run(&args).expect("mini run");
    assert!(!s.teacher_reused);
    let dir = &s.dir;
    for f in [
        "plan.json",
        "versions.json",
        "databases.sha256.json",
        "metrics/teacher.jsonl",
        "metrics/sft.jsonl",
        "predictions/teacher.sql",
        "predictions/sft.sql",
        "verdicts/teacher.jsonl",
        "verdicts/sft.jsonl",
        "results.csv",
        "summary.json",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let preds = std::fs::read_to_string(dir.join("predictions/sft.sql")).unwrap();
    assert_eq!(preds.lines().count(), 12);
    let verdicts = std::fs::read_to_string(dir.join("verdicts/sft.jsonl")).unwrap();
    assert_eq!(verdicts.lines().count(), 12);
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 10), "{csv}");
    for (method, hardness) in [
        ("teacher", "all"),
        ("sft", "all"),
        ("sft", "easy"),
        ("sft", "extra"),
    ] {
        assert!(
            rows.iter()
                .any(|r| r[1] == method && r[6] == hardness && r[7] == "ex"),
            "no ex row for {method}/{hardness}\n{csv}"
        );
    }
    assert!(rows
        .iter()
        .any(|r| r[1] == "sft" && r[7] == "latency_vs_sft"));
    assert!(rows
        .iter()
        .any(|r| r[1] == "sft" && r[7] == "train_seconds"));
    let dbs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("databases.sha256.json")).unwrap())
            .unwrap();
    assert!(dbs.as_object().is_some_and(|o| !o.is_empty()
        && o.values()
            .all(|v| v.as_str().is_some_and(|h| h.len() == 64))));

    // The second run reuses the cached teacher.
    let s2 = kidbench_run::run(&args).expect("second mini run");
    assert!(s2.teacher_reused);
    assert_eq!(s2.teacher.ex, s.teacher.ex);
    assert!(s2.student_init.is_none());
    assert_eq!(s2.run_id, s.run_id, "the same settings are the same run");

    // A cached teacher whose weights changed on disk (same size) is rebuilt, never used.
    let teachers = home.path().join("teachers");
    let tdir = std::fs::read_dir(&teachers)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap();
    let weights = tdir.join("model/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(&[0x7f; 8]);
    std::fs::write(&weights, &bytes).unwrap();
    let s3 = kidbench_run::run(&args).expect("run over a damaged teacher cache");
    assert!(!s3.teacher_reused, "a damaged teacher was reused");
    assert_eq!(
        s3.teacher.ex, s.teacher.ex,
        "the rebuilt teacher is the same model"
    );

    // --student-warmup: every student starts from the student preset after that many SFT
    // steps (cached), scored as student_init. With a negligible learning rate the SFT student
    // is that model, so it writes the same SQL; from the random initialization it does not.
    let sql = |s: &kidbench_run::RunSummary, m: &str| {
        std::fs::read_to_string(s.dir.join(format!("predictions/{m}.sql"))).unwrap()
    };
    let mut frozen = mini(out.path());
    frozen.lr = Some(1e-12);
    let cold = kidbench_run::run(&frozen).expect("run without warm-up");
    frozen.student_warmup = Some(30);
    let warm = kidbench_run::run(&frozen).expect("warm-started run");
    assert!(warm.student_init.is_some());
    assert_eq!(sql(&warm, "student_init"), sql(&warm, "sft"));
    assert_ne!(sql(&cold, "sft"), sql(&warm, "sft"));
    let inits = std::fs::read_dir(home.path().join("student-inits")).unwrap();
    assert_eq!(inits.count(), 1, "one cached student init");
    let csv = std::fs::read_to_string(warm.dir.join("results.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.contains(",student_init,") && l.contains(",all,ex,")),
        "{csv}"
    );
    let md = std::fs::read_to_string(warm.dir.join("results.md")).unwrap();
    assert!(md.contains("after 30 SFT steps"), "{md}");

    // Bad inputs.
    let err = |a: &RunArgs| format!("{:#}", kidbench_run::run(a).unwrap_err());
    let mut a = mini(out.path());
    a.common.benchmark = "nope".into();
    let e = err(&a);
    assert!(
        e.contains("unknown benchmark 'nope'") && e.contains("synth"),
        "{e}"
    );
    let mut a = mini(out.path());
    a.methods = vec!["sft".into(), "magic".into()];
    let e = err(&a);
    assert!(
        e.contains("unknown method 'magic'") && e.contains("sft"),
        "{e}"
    );
    let mut a = mini(out.path());
    a.student = Some("tiny-xxl".into());
    let e = err(&a);
    assert!(
        e.contains("unknown model preset 'tiny-xxl'") && e.contains("tiny-m"),
        "{e}"
    );
    let mut a = mini(out.path());
    a.teacher = Some("qwen-7b".into());
    a.teacher_dir = Some(home.path().join("no-such-model"));
    let e = err(&a);
    assert!(
        e.contains("no-such-model") && e.contains("config.json"),
        "{e}"
    );
}

#[test]
fn incompatible_tokenizers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let make = |name: &str, corpus: &[&str]| {
        let dir = tmp.path().join(name);
        let tok = kidbench_tokenizer::SqlTokenizer::train(corpus.iter().copied(), 300).unwrap();
        tok.save(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), b"").unwrap();
        dir
    };
    let a = make("a", &["select name from singer where age > 3"; 20]);
    let b = make("b", &["completely different text about cats and dogs"; 20]);
    let mut args = mini(tmp.path());
    args.teacher = Some("qwen-0.5b".into());
    args.teacher_dir = Some(a);
    args.student = Some("tinyllama-1.1b".into());
    args.student_dir = Some(b);
    let e = format!("{:#}", kidbench_run::run(&args).unwrap_err());
    assert!(e.contains("tokenizers are incompatible"), "{e}");
}
