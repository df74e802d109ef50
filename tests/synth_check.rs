//! The generated synth benchmark, checked with the evaluator's own tools: every label its
//! generator assigns agrees with the text classifier, and gold-vs-gold scores 100 %.

use crate::util::{run, tempdir};

#[test]
fn synth_hardness_labels_agree_with_the_classifier_and_gold_matches_itself() {
    let dir = tempdir();
    let out = dir.path().join("synth");
    let (ok, stdout, stderr) = run(&["synth", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stdout}\n{stderr}");
    for split in ["train", "dev"] {
        let text = std::fs::read_to_string(out.join(format!("{split}.json"))).unwrap();
        let pairs: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert!(pairs.len() >= if split == "train" { 8000 } else { 1000 });
        let mut disagree = Vec::new();
        for p in &pairs {
            let sql = p["query"].as_str().unwrap();
            let label = p["hardness"].as_str().unwrap();
            match kidbench_sql::hardness::classify(sql) {
                Ok(h) if h.as_str() == label => {}
                other => disagree.push(format!("{label} vs {other:?}: {sql}")),
            }
        }
        assert!(
            disagree.is_empty(),
            "{} of {} {split} labels disagree, e.g. {:?}",
            disagree.len(),
            pairs.len(),
            &disagree[..disagree.len().min(5)]
        );
    }
    // Gold vs gold through the CLI on the generated dev split.
    let gold: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("dev.json")).unwrap()).unwrap();
    let pred = dir.path().join("gold.sql");
    let lines: Vec<&str> = gold.iter().map(|p| p["query"].as_str().unwrap()).collect();
    std::fs::write(&pred, lines.join("\n")).unwrap();
    let (ok, stdout, stderr) = run(&[
        "eval",
        "--benchmark",
        "synth",
        "--pred",
        pred.to_str().unwrap(),
        "--databases-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let all_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("EX %"))
        .unwrap();
    assert!(all_line.trim_end().ends_with("100.0"), "{stdout}");
    assert!(
        stdout.contains(&format!("({} of {} evaluated)", gold.len(), gold.len())),
        "{stdout}"
    );
}
