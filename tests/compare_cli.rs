//! `kidbench compare` and `kidbench report` from the command line, on record folders written
//! here (no training): the exit status of each gate rule, and the report's files.

use std::collections::BTreeMap;
use std::path::Path;

use kidbench_results::{
    verdicts_file, write_record, Outcome, QuestionVerdict, Record, RecordKey, Role, Scored,
    Training, RECORD_SCHEMA,
};

use crate::util::{run, tempdir};

const QUESTIONS: usize = 200;

/// Writes a method's record for `seed`: the first `right` questions right, `secs` per step.
fn put(dir: &Path, method: &str, seed: u64, right: usize, secs: f64) {
    let label = format!("{method}-s{seed}");
    let verdicts: Vec<QuestionVerdict> = (0..QUESTIONS)
        .map(|i| QuestionVerdict {
            id: i.to_string(),
            db_id: "db".into(),
            hardness: Some(["easy", "medium", "hard", "extra"][i % 4].into()),
            ex: i < right,
            ts: None,
        })
        .collect();
    let record = Record {
        schema: RECORD_SCHEMA,
        plan_hash: format!("{method}-{seed}"),
        label: label.clone(),
        key: RecordKey {
            role: Role::Method,
            method: method.into(),
            params: BTreeMap::new(),
            seed,
            benchmark: "synth".into(),
            teacher: "tiny-m".into(),
            student: "tiny-s".into(),
            student_warmup: None,
            budget: "steps=10".into(),
        },
        outcome: Outcome::Scored(Box::new(Scored {
            ex: right as f64 / QUESTIONS as f64,
            ts: None,
            questions: QUESTIONS,
            training: Some(Training {
                steps: 10,
                train_seconds: 10.0 * secs,
                seconds_per_step: secs,
                ..Training::default()
            }),
            generate_seconds: 1.0,
            tokens_per_second: 100.0,
            curve: Vec::new(),
            verdicts_file: verdicts_file(&label),
        })),
    };
    write_record(
        &dir.join(format!("cells/{method}-{seed}")),
        &record,
        &verdicts,
    )
    .unwrap();
}

/// sft and rkd, seeds 1 and 2; `rkd_right` questions right for rkd, `rkd_secs` per step.
fn folder(dir: &Path, rkd_right: usize, rkd_secs: f64, rkd_seeds: &[u64]) {
    for seed in [1, 2] {
        put(dir, "sft", seed, 100, 1.0);
    }
    for &seed in rkd_seeds {
        put(dir, "rkd", seed, rkd_right, rkd_secs);
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn compare_exits_nonzero_on_each_rule_and_zero_on_the_same_results() {
    let tmp = tempdir();
    let base = tmp.path().join("base");
    folder(&base, 110, 1.5, &[1, 2]);
    // (name, rkd's right answers, rkd's seconds per step, rkd's seeds, the rule that must fail)
    type Case<'a> = (&'a str, usize, f64, &'a [u64], Option<&'a str>);
    let cases: [Case; 5] = [
        ("same", 110, 1.5, &[1, 2], None),
        ("worse", 70, 1.5, &[1, 2], Some("EX drop")),
        ("slower", 110, 2.0, &[1, 2], Some("latency growth")),
        ("missing", 110, 1.5, &[1], Some("missing")),
        // 2 questions fewer: not significant, and within the 1-point tolerance
        ("noise", 108, 1.55, &[1, 2], None),
    ];
    for (name, right, secs, seeds, fails) in cases {
        let new = tmp.path().join(name);
        folder(&new, right, secs, seeds);
        let (ok, stdout, stderr) = run(&["compare", &s(&base), &s(&new)]);
        match fails {
            None => {
                assert!(ok, "{name}: refused\n{stdout}\n{stderr}");
                assert!(stdout.contains("compare: passed"), "{name}: {stdout}");
            }
            Some(rule) => {
                assert!(!ok, "{name}: passed\n{stdout}");
                assert!(
                    stderr.contains("FAILED") && stderr.contains("rkd") && stderr.contains(rule),
                    "{name}: no '{rule}' in\n{stderr}"
                );
            }
        }
    }
    // a tolerance can be widened on the command line
    let (ok, stdout, _) = run(&[
        "compare",
        &s(&base),
        &s(&tmp.path().join("slower")),
        "--max-latency-growth",
        "0.5",
    ]);
    assert!(ok, "{stdout}");
    // a folder without records is an error naming it
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, stderr) = run(&["compare", &s(&base), &s(&empty)]);
    assert!(!ok);
    assert!(
        stderr.contains("no records") && stderr.contains(&s(&empty)),
        "{stderr}"
    );
}

#[test]
fn report_writes_tables_and_charts_from_record_folders() {
    let tmp = tempdir();
    let dir = tmp.path().join("runs");
    folder(&dir, 130, 1.5, &[1, 2]);
    let out = tmp.path().join("rep");
    let (ok, stdout, stderr) = run(&["report", &s(&dir), "--out", &s(&out), "--no-png"]);
    assert!(ok, "{stdout}\n{stderr}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    // rkd: 130 of 200 = 65.0 %, sft 50.0 %: +15.0 points, latency 1.5x
    assert!(md.contains("| rkd |") && md.contains("65.0"), "{md}");
    assert!(md.contains("+15.0"), "{md}");
    assert!(md.contains("1.50×"), "{md}");
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("metric"), "{csv}");
    let svg = std::fs::read_to_string(out.join("charts/pareto.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.contains("<svg"),
        "{svg:.200}"
    );
}
