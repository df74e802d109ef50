//! `kidbench eval` end to end: Spider gold-vs-gold, the pairs format, and bad input.

use crate::util::{data_dir, run, tempdir};

#[test]
fn spider_dev_gold_vs_gold_scores_100_on_covered_questions() {
    let Some(data) = data_dir("spider_dev_gold_vs_gold_scores_100_on_covered_questions") else {
        return;
    };
    let dir = tempdir();
    let out = dir.path().join("verdicts.jsonl");
    let gold = data.join("spider/dev_gold.sql");
    let (ok, stdout, stderr) = run(&[
        "eval",
        "--benchmark",
        "spider-dev",
        "--pred",
        gold.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("skipped 62 of 1034 questions: database file missing (wta_1: 62)"),
        "{stdout}"
    );
    assert!(stdout.contains("972 of 1034 evaluated"), "{stdout}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1034);
    let covered: Vec<_> = lines.iter().filter(|v| v["db_id"] != "wta_1").collect();
    assert_eq!(covered.len(), 972);
    assert!(
        covered.iter().all(|v| v["match"] == true),
        "a gold query did not match itself"
    );
    // Official Spider dev levels over the covered questions (wta_1 removed from 248/446/174/166).
    let count = |h: &str| covered.iter().filter(|v| v["hardness"] == h).count();
    assert_eq!(
        count("easy") + count("medium") + count("hard") + count("extra"),
        972
    );
}

#[test]
fn pairs_file_reports_each_cause_in_input_order() {
    let dir = tempdir();
    let db_dir = dir.path().join("dbs");
    std::fs::create_dir_all(db_dir.join("shop")).unwrap();
    let db = db_dir.join("shop/shop.sqlite");
    {
        let c = rusqlite_conn(&db);
        c.execute_batch(
            "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, price REAL);
             INSERT INTO item VALUES (1,'pen',1.5),(2,'ink',3.0),(3,'pad',2.0);",
        )
        .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    let lines = [
        r#"{"id": 7, "db_id": "shop", "gold": "SELECT name FROM item WHERE price > 1.8", "pred": "SELECT name FROM item WHERE price >= 2"}"#,
        r#"{"id": "b", "db_id": "shop", "gold": "SELECT count(*) FROM item", "pred": "SELEC count(*) FROM item"}"#,
        r#"{"id": "c", "db_id": "shop", "gold": "SELECT name FROM item", "pred": "SELECT nme FROM item"}"#,
        r#"{"id": "d", "db_id": "shop", "gold": "SELECT name FROM item", "pred": "DELETE FROM item"}"#,
        r#"{"id": "e", "db_id": "shop", "gold": "SELECT name FROM item", "pred": "SELECT 1; DELETE FROM item"}"#,
        r#"{"id": "f", "db_id": "nowhere", "gold": "SELECT 1", "pred": "SELECT 1"}"#,
        r#"{"id": "g", "db_id": "shop", "gold": "SELECT nosuch FROM item", "pred": "SELECT name FROM item"}"#,
        r#"{"id": "h", "db_id": "shop", "gold": "SELECT name FROM item", "pred": ""}"#,
    ];
    std::fs::write(&pairs, lines.join("\n")).unwrap();
    let out = dir.path().join("v.jsonl");
    let (ok, stdout, stderr) = run(&[
        "eval",
        "--pairs",
        pairs.to_str().unwrap(),
        "--db-dir",
        db_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let v: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), lines.len());
    assert_eq!(v[0]["id"], 7, "ids are echoed as given");
    assert_eq!(v[0]["match"], true);
    assert_eq!(v[1]["cause"], "syntax");
    assert_eq!(v[2]["cause"], "schema");
    assert_eq!(v[3]["cause"], "denied");
    assert_eq!(v[4]["cause"], "multiple_statements");
    assert_eq!(v[5]["cause"], "missing_database");
    assert_eq!(v[6]["gold_cause"], "schema");
    assert_eq!(v[6]["match"], false);
    assert_eq!(v[7]["cause"], "empty");
    for r in &v {
        for key in ["id", "match", "cause", "hardness", "ms"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    assert_eq!(std::fs::read(&db).unwrap(), before, "the database changed");
    assert!(
        !db_dir.join("nowhere").exists(),
        "a missing database was created"
    );
}

#[test]
fn unknown_benchmark_lists_the_available_ones() {
    let (ok, _, stderr) = run(&["eval", "--benchmark", "spidr-dev", "--pred", "x.sql"]);
    assert!(!ok);
    assert!(stderr.contains("unknown benchmark 'spidr-dev'"), "{stderr}");
    assert!(
        stderr.contains("spider-dev") && stderr.contains("synth"),
        "{stderr}"
    );
}

#[test]
fn prediction_count_mismatch_names_the_file() {
    let Some(data) = data_dir("prediction_count_mismatch_names_the_file") else {
        return;
    };
    let dir = tempdir();
    let pred = dir.path().join("short.sql");
    std::fs::write(&pred, "SELECT 1\nSELECT 2\n").unwrap();
    let (ok, _, stderr) = run(&[
        "eval",
        "--benchmark",
        "spider-dev",
        "--pred",
        pred.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("short.sql") && stderr.contains("2 predictions"),
        "{stderr}"
    );
    assert!(stderr.contains("1034 questions"), "{stderr}");
}

#[test]
fn missing_predictions_file_is_named() {
    let Some(data) = data_dir("missing_predictions_file_is_named") else {
        return;
    };
    let (ok, _, stderr) = run(&[
        "eval",
        "--benchmark",
        "spider-dev",
        "--pred",
        "/nonexistent/preds.sql",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/preds.sql"), "{stderr}");
}

fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn ts_metric_needs_a_suite_and_then_catches_what_ex_misses() {
    let Some(data) = data_dir("ts_metric_needs_a_suite_and_then_catches_what_ex_misses") else {
        return;
    };
    let dir = tempdir();
    let dbs = dir.path().to_str().unwrap();
    let gold_file = data.join("spider/dev_gold.sql");
    let gold: Vec<String> = std::fs::read_to_string(&gold_file)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    // `>` turned into `>=`: right on many original databases, wrong on a boundary row.
    let mutated: Vec<String> = gold.iter().map(|g| g.replacen(" > ", " >= ", 1)).collect();
    let pred = dir.path().join("mutated.sql");
    std::fs::write(&pred, mutated.join("\n")).unwrap();
    let base = [
        "eval",
        "--benchmark",
        "spider-dev",
        "--pred",
        pred.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--databases-dir",
        dbs,
        "--metric",
        "ex,ts",
    ];
    let (ok, _, stderr) = run(&base);
    assert!(!ok, "TS without a suite must fail");
    assert!(
        stderr.contains("kidbench testsuite build --benchmark spider-dev"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = run(&[
        "testsuite",
        "build",
        "--benchmark",
        "spider-dev",
        "--quiet",
        "--data-dir",
        data.to_str().unwrap(),
        "--databases-dir",
        dbs,
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let out = dir.path().join("v.jsonl");
    let mut args = base.to_vec();
    args.extend(["--out", out.to_str().unwrap()]);
    let (ok, stdout, stderr) = run(&args);
    assert!(ok, "{stdout}\n{stderr}");
    let v: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ex = v.iter().filter(|r| r["match"] == true).count();
    let ts = v.iter().filter(|r| r["ts"] == true).count();
    assert!(ts < ex, "TS {ts} should be below EX {ex} for >= mutations");
    assert!(
        v.iter().all(|r| r["ts"] != true || r["match"] == true),
        "TS must imply EX"
    );
    let caught = v
        .iter()
        .find(|r| r["match"] == true && r["ts"] == false)
        .expect("some prediction is told apart only by the suite");
    assert!(caught["ts_first_failing_db"].as_str().is_some(), "{caught}");
}
