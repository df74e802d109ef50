//! `kidbench eval --pairs` on lines a careful user meets: lone surrogate escapes, bad fields,
//! raw non-UTF-8 bytes, repeated ids, an empty file, and TS with a suite laid out by db_id.

use crate::testsuite_manifest_cli::{ToyShop, GOLD};
use crate::util::{run, tempdir};

fn shop_db(dir: &std::path::Path) -> std::path::PathBuf {
    let db_dir = dir.join("dbs");
    std::fs::create_dir_all(db_dir.join("shop")).unwrap();
    let conn = rusqlite::Connection::open(db_dir.join("shop/shop.sqlite")).unwrap();
    conn.execute_batch(
        "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, price REAL);
         INSERT INTO item VALUES (1,'pen',1.5),(2,'ink',3.0),(3,'pad',2.0);",
    )
    .unwrap();
    db_dir
}

fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `all` column of the row starting with `label` in the printed table.
fn all_column(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label} row in\n{stdout}"))
        .split_whitespace()
        .last()
        .unwrap()
        .to_string()
}

#[test]
fn eval_pairs_bad_lines_are_scored_zero_and_the_rest_of_the_file_is_scored() {
    let dir = tempdir();
    let db_dir = shop_db(dir.path());
    let pairs = dir.path().join("pairs.jsonl");
    let mut text: Vec<u8> = Vec::new();
    for line in [
        // 1: right (ink and pad).
        r#"{"id": 1, "db_id": "shop", "gold": "SELECT name FROM item WHERE price > 1.8", "pred": "SELECT name FROM item WHERE price >= 2"}"#,
        // 2: a lone surrogate, as Python's json.dumps writes surrogateescape'd bytes: read as
        // U+FFFD; no name equals it, so the count is 3, as the gold's.
        r#"{"id": 2, "db_id": "shop", "gold": "SELECT count(*) FROM item", "pred": "SELECT count(*) FROM item WHERE name != '\udcff'"}"#,
        // 3: pred of the wrong type.
        r#"{"id": 3, "db_id": "shop", "gold": "SELECT name FROM item", "pred": 42}"#,
        // 4: blank.
        "   ",
        // 5: no pred.
        r#"{"id": 4, "db_id": "shop", "gold": "SELECT name FROM item"}"#,
    ] {
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    // 6: raw bytes that are not UTF-8: 0xff right after the 64 bytes of this prefix.
    let prefix = br#"{"id": 5, "db_id": "shop", "gold": "SELECT 1", "pred": "SELECT '"#;
    assert_eq!(prefix.len(), 64);
    text.extend_from_slice(prefix);
    text.extend_from_slice(b"\xff'\"}\n");
    for line in [
        // 7: not JSON.
        r#"{"id": 6, "db_id": "#,
        // 8: id 1 again: right, flagged.
        r#"{"id": 1, "db_id": "shop", "gold": "SELECT name FROM item", "pred": "SELECT name FROM item"}"#,
        // 9: pred null.
        r#"{"id": 7, "db_id": "shop", "gold": "SELECT max(price) FROM item", "pred": null}"#,
        // 10: no id.
        r#"{"db_id": "shop", "gold": "SELECT 1", "pred": "SELECT 1"}"#,
    ] {
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    std::fs::write(&pairs, &text).unwrap();
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
    // Before: exit 1 at line 2 ("lone leading surrogate"), nothing written.
    assert!(ok, "{stdout}\n{stderr}");
    let v = records(&out);
    let lines: Vec<u64> = v.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 2, 3, 5, 6, 7, 8, 9, 10]);
    let matched: Vec<bool> = v.iter().map(|r| r["match"].as_bool().unwrap()).collect();
    assert_eq!(
        matched,
        [true, true, false, false, false, false, true, false, false]
    );
    assert_eq!(
        v[1]["pred"], "SELECT count(*) FROM item WHERE name != '\u{fffd}'",
        "a lone surrogate is read as U+FFFD"
    );
    assert_eq!(v[1]["cause"], serde_json::Value::Null);
    let p = pairs.display().to_string();
    let expect = [
        (
            2,
            format!("{p}: line 3: wrong type: \"pred\" is a number, expected a string"),
        ),
        (3, format!("{p}: line 5: missing field \"pred\"")),
        (4, format!("{p}: line 6: not UTF-8: byte 0xff at column 65")),
        (
            7,
            format!("{p}: line 9: wrong type: \"pred\" is null, expected a string"),
        ),
        (8, format!("{p}: line 10: missing field \"id\"")),
    ];
    for (i, error) in &expect {
        assert_eq!(v[*i]["cause"], "bad_input", "{}", v[*i]);
        assert_eq!(v[*i]["error"], error.as_str(), "{}", v[*i]);
        assert!(
            stderr.contains(error.as_str()),
            "warning for {error}:\n{stderr}"
        );
    }
    assert_eq!(v[5]["cause"], "bad_input");
    assert!(
        v[5]["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{p}: line 7: not JSON: ")),
        "{}",
        v[5]
    );
    // Ids as written; a bad line keeps the id it has; a line without one has none.
    assert_eq!(v[2]["id"], 3);
    assert_eq!(v[4]["id"], 5);
    assert_eq!(v[8]["id"], serde_json::Value::Null);
    // 3 right of 9 scored lines.
    assert_eq!(all_column(&stdout, "EX %"), "33.3", "{stdout}");
    assert!(stdout.contains("(9 of 9 evaluated)"), "{stdout}");
    assert!(stdout.contains("6 bad lines"), "{stdout}");
    assert!(stdout.contains("1 duplicate id"), "{stdout}");
    assert!(
        stderr.contains("id \"1\" on line 8 is also on line 1"),
        "{stderr}"
    );
}

#[test]
fn eval_pairs_empty_file_is_an_error_naming_it() {
    let dir = tempdir();
    let db_dir = shop_db(dir.path());
    for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\r\n")] {
        let pairs = dir.path().join(name);
        std::fs::write(&pairs, text).unwrap();
        let (ok, stdout, stderr) = run(&[
            "eval",
            "--pairs",
            pairs.to_str().unwrap(),
            "--db-dir",
            db_dir.to_str().unwrap(),
        ]);
        // Before: exit 0 with "EX 0.0, 0 of 0".
        assert!(!ok, "{stdout}");
        assert!(
            stderr.contains(&pairs.display().to_string()) && stderr.contains("is empty"),
            "{stderr}"
        );
    }
}

#[test]
fn eval_pairs_ts_without_a_suite_dir_is_refused_with_how_to_get_it() {
    let dir = tempdir();
    let db_dir = shop_db(dir.path());
    let pairs = dir.path().join("p.jsonl");
    std::fs::write(
        &pairs,
        r#"{"id": 1, "db_id": "shop", "gold": "SELECT 1", "pred": "SELECT 1"}"#,
    )
    .unwrap();
    let (ok, stdout, stderr) = run(&[
        "eval",
        "--pairs",
        pairs.to_str().unwrap(),
        "--db-dir",
        db_dir.to_str().unwrap(),
        "--metric",
        "ex,ts",
    ]);
    // Before: EX only, exit 0, no word about TS.
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("--suite-dir") && stderr.contains("kidbench testsuite build"),
        "{stderr}"
    );
}

#[test]
fn eval_pairs_ts_with_a_suite_dir_catches_a_boundary_mistake() {
    let dir = tempdir();
    let toy = ToyShop::new(dir.path());
    let (ok, stdout, stderr) = toy.build();
    assert!(ok, "{stdout}\n{stderr}");
    let pairs = dir.path().join("p.jsonl");
    let lines = [
        serde_json::json!({"id": "same", "db_id": "shop", "gold": GOLD, "pred": GOLD}),
        // Stock 1, 9, 12: `>= 4` counts 2 like `> 4` on the original; a suite database with a
        // stock of exactly 4 tells them apart.
        serde_json::json!({"id": "boundary", "db_id": "shop", "gold": GOLD,
                           "pred": "SELECT count(*) FROM item WHERE stock >= 4"}),
        serde_json::json!({"id": "bad", "db_id": "shop", "gold": GOLD, "pred": 42}),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&pairs, text.join("\n")).unwrap();
    let out = dir.path().join("v.jsonl");
    let (ok, stdout, stderr) = run(&[
        "eval",
        "--pairs",
        pairs.to_str().unwrap(),
        "--db-dir",
        toy.db_dir().to_str().unwrap(),
        "--metric",
        "ex,ts",
        "--suite-dir",
        toy.suite_dir().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let v = records(&out);
    let ex: Vec<bool> = v.iter().map(|r| r["match"].as_bool().unwrap()).collect();
    let ts: Vec<bool> = v.iter().map(|r| r["ts"].as_bool().unwrap()).collect();
    assert_eq!(ex, [true, true, false]);
    assert_eq!(ts, [true, false, false]);
    let failing = v[1]["ts_first_failing_db"].as_str().unwrap();
    assert!(
        failing.starts_with("shop/") && failing.ends_with(".sqlite"),
        "{failing}"
    );
    assert_eq!(all_column(&stdout, "EX %"), "66.7", "{stdout}");
    assert_eq!(all_column(&stdout, "TS %"), "33.3", "{stdout}");
}
