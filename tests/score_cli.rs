//! `kidbench score` on a tiny random model folder and a seeded slice of synth dev: the result
//! files, the chat template in the prompt, the seeded sample; then replies whose answers are
//! known (gold SQL in a code fence, after "SQL:", inside prose, and one wrong query) scored
//! through the same path: EX 3/4, per question as expected. Also `kidbench run --teacher DIR
//! --student DIR` with that folder, and the errors for a from-scratch preset and a missing
//! folder.

use std::path::{Path, PathBuf};

use crate::util::{kidbench, tempdir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_in(home: &Path, args: &[String]) -> (bool, String, String) {
    let out = kidbench()
        .args(args)
        .env("KIDBENCH_HOME", home)
        .env_remove("KIDBENCH_PLUGIN_PATH")
        .output()
        .expect("kidbench runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn score_args(model: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "score",
        "--benchmark",
        "synth",
        "--limit",
        "4",
        "--seed",
        "3",
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["--model".into(), model.display().to_string()]);
    a.extend(["--out".into(), out.display().to_string()]);
    a.extend([
        "--databases-dir".into(),
        repo().join("databases").display().to_string(),
    ]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn score_writes_the_run_files_and_scores_known_replies() {
    let tmp = tempdir();
    let home = tmp.path().join("home");
    let model = tmp.path().join("tiny-chat");
    crate::tiny_hf::write(&model);

    // 1. The model generates (noise): every file is there, for the seeded sample.
    let out = tmp.path().join("gen");
    let (ok, stdout, stderr) = run_in(&home, &score_args(&model, &out, &[]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("tiny-chat on synth (4 of "), "{stdout}");
    for f in [
        "predictions/score.sql",
        "predictions/gold.sql",
        "verdicts/score.jsonl",
        "questions/score.jsonl",
        "replies/score.jsonl",
        "records/score.json",
        "score.json",
        "prompt-example.txt",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let summary = json(&out.join("score.json"));
    assert_eq!(summary["questions"], 4);
    assert_eq!(summary["chat"], true);
    assert_eq!(summary["shots"], 0);
    let sample: Vec<u64> = summary["sample"]
        .as_array()
        .expect("sample")
        .iter()
        .map(|v| v.as_u64().expect("index"))
        .collect();
    assert_eq!(sample.len(), 4);
    assert!(sample.windows(2).all(|w| w[0] < w[1]), "{sample:?}");
    assert_ne!(
        sample,
        vec![0, 1, 2, 3],
        "a seeded shuffle, not the first four"
    );
    assert_eq!(lines(&out.join("predictions/score.sql")).len(), 4);
    let gold = lines(&out.join("predictions/gold.sql"));
    assert_eq!(gold.len(), 4);
    // The chat template wraps the system message and the CodeS prompt.
    let prompt = std::fs::read_to_string(out.join("prompt-example.txt")).unwrap();
    assert!(
        prompt.starts_with("<s>system\nYou translate questions into SQLite queries."),
        "{prompt}"
    );
    assert!(prompt.contains("</s>\n<s>user\n"), "{prompt}");
    assert!(prompt.ends_with("</s>\n<s>assistant\n"), "{prompt}");
    let record = json(&out.join("records/score.json"));
    assert_eq!(record["key"]["method"], "score");
    assert_eq!(record["key"]["teacher"], "tiny-chat");
    assert_eq!(record["outcome"]["questions"], 4);
    // The same seed draws the same sample.
    let again = tmp.path().join("again");
    let (ok, _, stderr) = run_in(&home, &score_args(&model, &again, &[]));
    assert!(ok, "{stderr}");
    assert_eq!(json(&again.join("score.json"))["sample"], summary["sample"]);

    // 2. Known replies, one shot, raw prompt: EX 3/4 with the wrong one last.
    let replies = tmp.path().join("replies.jsonl");
    let texts = [
        format!("```sql\n{}\n```\nThis query answers it.", gold[0]),
        format!("SQL: {}", gold[1]),
        format!("The answer is: {}; it returns the rows.", gold[2]),
        "SELECT 1 FROM no_such_table".to_string(),
    ];
    let text: Vec<String> = texts
        .iter()
        .map(|t| serde_json::to_string(t).unwrap())
        .collect();
    std::fs::write(&replies, text.join("\n")).unwrap();
    let known = tmp.path().join("known");
    let r = replies.display().to_string();
    let (ok, stdout, stderr) = run_in(
        &home,
        &score_args(
            &model,
            &known,
            &["--replies", &r, "--shots", "1", "--no-chat"],
        ),
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("EX 75.0 %"), "{stdout}");
    let s = json(&known.join("score.json"));
    assert_eq!(s["ex"], 0.75);
    assert_eq!(s["chat"], false);
    assert_eq!(
        s["sample"], summary["sample"],
        "the same seed, the same sample"
    );
    if !s["ts"].is_null() {
        assert_eq!(s["ts"], 0.75, "gold queries pass their test suite");
    }
    let pool = s["shot_pool"].as_array().expect("shot pool");
    assert_eq!(
        pool.len(),
        2,
        "one shot, and one spare from another database"
    );
    assert_ne!(pool[0]["db_id"], pool[1]["db_id"]);
    let preds = lines(&known.join("predictions/score.sql"));
    assert_eq!(
        &preds[..3],
        &gold[..3],
        "the SQL is taken out of each reply"
    );
    assert_eq!(preds[3], "SELECT 1 FROM no_such_table");
    let verdicts: Vec<bool> = lines(&known.join("questions/score.jsonl"))
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ex"] == true)
        .collect();
    assert_eq!(verdicts, vec![true, true, true, false]);
    // The raw one-shot prompt: a train question with its SQL, a blank line, the question.
    let prompt = std::fs::read_to_string(known.join("prompt-example.txt")).unwrap();
    assert!(
        prompt.starts_with("database schema :") && !prompt.contains("<s>"),
        "{prompt}"
    );
    assert_eq!(prompt.matches("database schema :").count(), 2, "{prompt}");
    assert!(prompt.contains("\n\ndatabase schema :"), "{prompt}");

    // 3. Bad input.
    std::fs::write(&replies, "\"SELECT 1\"\n").unwrap();
    let (ok, _, stderr) = run_in(
        &home,
        &score_args(&model, &tmp.path().join("x"), &["--replies", &r]),
    );
    assert!(!ok);
    assert!(
        stderr.contains("1 replies for 4 sampled questions") && stderr.contains("replies.jsonl"),
        "{stderr}"
    );
    let (ok, _, stderr) = run_in(
        &home,
        &score_args(Path::new("tiny-m"), &tmp.path().join("x"), &[]),
    );
    assert!(!ok);
    assert!(
        stderr.contains("--model tiny-m") && stderr.contains("from-scratch"),
        "{stderr}"
    );
    let missing = tmp.path().join("models").join("smollm2-135m");
    let (ok, _, stderr) = run_in(&home, &score_args(&missing, &tmp.path().join("x"), &[]));
    assert!(!ok);
    assert!(
        stderr.contains(&missing.display().to_string())
            && stderr.contains("tokenizer.json")
            && stderr.contains("scripts/models.sh smollm2-135m"),
        "{stderr}"
    );
}

/// `kidbench run` with a model folder as teacher and student (no preset named): it trains,
/// scores and names the folder in its plan.
#[test]
fn run_takes_a_model_folder_as_teacher_and_student() {
    let tmp = tempdir();
    let home = tmp.path().join("home");
    let model = tmp.path().join("tiny-chat");
    crate::tiny_hf::write(&model);
    let out = tmp.path().join("results");
    let m = model.display().to_string();
    let mut args: Vec<String> = [
        "run",
        "--teacher",
        &m,
        "--student",
        &m,
        "--teacher-steps",
        "1",
        "--steps",
        "1",
        "--max-train",
        "8",
        "--max-dev",
        "4",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--out".into(), out.display().to_string()]);
    args.extend([
        "--databases-dir".into(),
        repo().join("databases").display().to_string(),
    ]);
    let (ok, _, stderr) = run_in(&home, &args);
    assert!(ok, "{stderr}");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let plan = json(&dirs[0].join("plan.json"))["plan"].clone();
    assert_eq!(plan["teacher"]["preset"], "tiny-chat");
    assert_eq!(plan["student"]["preset"], "tiny-chat");
    assert_eq!(plan["teacher"]["source"]["kind"], "local");
    assert_eq!(plan["tokenizer"]["source"], "hf:tiny-chat");
    assert_eq!(lines(&dirs[0].join("predictions/sft.sql")).len(), 4);

    // The same folder with a from-scratch preset named beside it is refused, naming both flags.
    let (ok, _, stderr) = run_in(
        &home,
        &[
            "run".into(),
            "--teacher".into(),
            "tiny-m".into(),
            "--teacher-dir".into(),
            m.clone(),
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("--teacher tiny-m") && stderr.contains("--teacher-dir"),
        "{stderr}"
    );
}
