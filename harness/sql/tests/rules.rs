//! The comparison rules of the reference evaluators, on small hand-built databases, plus the
//! Spider dev gold-vs-gold check.

use std::path::PathBuf;

use kidbench_sql::compare::{test_suite_eq, CompareMode};
use kidbench_sql::eval::{evaluate, exec_match, spider_db_path, summarize, EvalOptions, Pair};
use kidbench_sql::exec::{ExecOptions, SafeConnection};
use kidbench_sql::{Cause, Value};

fn db() -> (tempfile::TempDir, SafeConnection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.sqlite");
    let c = rusqlite::Connection::open(&path).expect("create");
    c.execute_batch(
        "CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INT, year INT);
         INSERT INTO singer VALUES
           (1, 'Ann', 'France', 30, 2020), (2, 'Bob', 'France', 41, 2019),
           (3, 'Cid', 'Japan', 25, 2020), (4, 'Dee', 'Peru', 52, 2018);
         CREATE TABLE bag (x TEXT);
         INSERT INTO bag VALUES ('a'), ('a'), ('b');
         CREATE TABLE wide (a INT, b INT, c INT);
         INSERT INTO wide VALUES (1, 1, 2), (1, 2, 2), (3, 1, 1);",
    )
    .expect("populate");
    drop(c);
    let conn = SafeConnection::open(&path, &ExecOptions::default()).expect("open");
    (dir, conn)
}

fn opts(mode: CompareMode) -> EvalOptions {
    EvalOptions {
        mode,
        ..EvalOptions::default()
    }
}

fn ts(conn: &SafeConnection, gold: &str, pred: &str) -> bool {
    let out = exec_match(conn, gold, pred, &opts(CompareMode::TestSuite));
    assert!(out.gold.is_ok(), "gold failed: {:?}", out.gold);
    out.matched
}

fn mode(conn: &SafeConnection, m: CompareMode, gold: &str, pred: &str) -> bool {
    exec_match(conn, gold, pred, &opts(m)).matched
}

#[test]
fn spaced_comparison_operators_are_joined() {
    let (_d, c) = db();
    assert!(ts(
        &c,
        "SELECT name FROM singer WHERE age >= 41",
        "SELECT name FROM singer WHERE age > = 41"
    ));
    assert!(ts(
        &c,
        "SELECT name FROM singer WHERE age <= 30",
        "SELECT name FROM singer WHERE age < = 30"
    ));
    assert!(ts(
        &c,
        "SELECT name FROM singer WHERE age != 30",
        "SELECT name FROM singer WHERE age ! = 30"
    ));
    // Only the test-suite mode normalises: elsewhere the spaced form is SQLite's syntax error.
    let out = exec_match(
        &c,
        "SELECT name FROM singer WHERE age >= 41",
        "SELECT name FROM singer WHERE age > = 41",
        &opts(CompareMode::Bird),
    );
    assert_eq!(out.pred.unwrap_err().cause, Cause::Syntax);
}

#[test]
fn year_of_curdate_is_2020() {
    let (_d, c) = db();
    assert!(ts(
        &c,
        "SELECT name FROM singer WHERE year = 2020",
        "SELECT name FROM singer WHERE year = YEAR ( curdate( ) )"
    ));
    assert!(ts(
        &c,
        "SELECT name FROM singer WHERE year = 2020 - 1",
        "SELECT name FROM singer WHERE year = year(CURDATE()) - 1"
    ));
}

#[test]
fn distinct_is_removed_unless_kept() {
    let (_d, c) = db();
    let gold = "SELECT DISTINCT country FROM singer";
    let pred = "SELECT country FROM singer";
    assert!(ts(&c, gold, pred));
    let keep = EvalOptions {
        keep_distinct: true,
        ..EvalOptions::default()
    };
    assert!(!exec_match(&c, gold, pred, &keep).matched);
    assert!(
        exec_match(
            &c,
            gold,
            "SELECT country FROM singer GROUP BY country",
            &keep
        )
        .matched
    );
    // count(DISTINCT x) becomes count( x) on both sides.
    assert!(ts(
        &c,
        "SELECT count(DISTINCT country) FROM singer",
        "SELECT count(*) FROM singer"
    ));
    assert!(
        !exec_match(
            &c,
            "SELECT count(DISTINCT country) FROM singer",
            "SELECT count(*) FROM singer",
            &keep
        )
        .matched
    );
}

#[test]
fn order_matters_iff_gold_has_order_by() {
    let (_d, c) = db();
    let asc = "SELECT name FROM singer ORDER BY age";
    let desc = "SELECT name FROM singer ORDER BY age DESC";
    assert!(!ts(&c, asc, desc));
    assert!(ts(&c, asc, asc));
    // No ORDER BY in gold: any order of the same rows matches.
    assert!(ts(&c, "SELECT name FROM singer", desc));
    // "order by" is a substring test on the lower-cased gold text.
    let out = exec_match(
        &c,
        "SELECT name FROM singer order by name",
        desc,
        &EvalOptions::default(),
    );
    assert!(out.order_matters && !out.matched);
}

#[test]
fn empty_results_match_regardless_of_width() {
    let (_d, c) = db();
    assert!(ts(
        &c,
        "SELECT name FROM singer WHERE age > 100",
        "SELECT id, age FROM singer WHERE 0"
    ));
    assert!(!ts(
        &c,
        "SELECT name FROM singer WHERE age > 100",
        "SELECT name FROM singer"
    ));
}

#[test]
fn row_and_column_counts_must_agree() {
    let (_d, c) = db();
    assert!(!ts(
        &c,
        "SELECT name FROM singer",
        "SELECT name FROM singer WHERE age > 30"
    ));
    assert!(!ts(
        &c,
        "SELECT name FROM singer",
        "SELECT name, name FROM singer"
    ));
    assert!(!ts(
        &c,
        "SELECT name, age FROM singer",
        "SELECT name FROM singer"
    ));
}

#[test]
fn columns_may_be_permuted_in_test_suite_mode_only() {
    let (_d, c) = db();
    let gold = "SELECT name, age, country FROM singer";
    let pred = "SELECT country, name, age FROM singer";
    assert!(ts(&c, gold, pred));
    assert!(ts(
        &c,
        "SELECT name, age FROM singer ORDER BY age",
        "SELECT age, name FROM singer ORDER BY age"
    ));
    assert!(!mode(&c, CompareMode::Bird, gold, pred));
    assert!(!mode(&c, CompareMode::Strict, gold, pred));
    assert!(mode(&c, CompareMode::Bird, gold, gold));
    // A permutation must map the whole columns, not just the value sets.
    // (same value multiset in every column, but the rows do not correspond)
    assert!(!ts(
        &c,
        "SELECT a, b FROM wide",
        "SELECT 1, 1 UNION ALL SELECT 1, 1 UNION ALL SELECT 3, 2"
    ));
}

#[test]
fn duplicates_matter_in_test_suite_not_in_bird() {
    let (_d, c) = db();
    let gold = "SELECT x FROM bag"; // a, a, b
    let pred = "SELECT 'a' UNION ALL SELECT 'b' UNION ALL SELECT 'b'"; // a, b, b
    assert!(!ts(&c, gold, pred));
    assert!(mode(&c, CompareMode::Bird, gold, pred));
    let grouped = "SELECT x FROM bag GROUP BY x";
    assert!(!ts(&c, gold, grouped));
    assert!(mode(&c, CompareMode::Bird, gold, grouped));
}

#[test]
fn python_value_equality() {
    let (_d, c) = db();
    assert!(ts(&c, "SELECT 1", "SELECT 1.0"));
    assert!(ts(
        &c,
        "SELECT avg(age) FROM singer WHERE id < 3",
        "SELECT 35.5"
    ));
    assert!(!ts(&c, "SELECT '1'", "SELECT 1"));
    assert!(!ts(&c, "SELECT 1.5", "SELECT 1"));
    assert!(ts(&c, "SELECT NULL", "SELECT NULL"));
    assert!(!ts(&c, "SELECT NULL", "SELECT 0"));
    assert!(mode(&c, CompareMode::Bird, "SELECT 2", "SELECT 2.0"));
    assert!(mode(&c, CompareMode::Strict, "SELECT 2", "SELECT 2.0"));
}

#[test]
fn quick_rejection_uses_pythons_sort_key() {
    use Value::*;
    // Sorted by str(v) + str(type(v)): "1.5<class 'float'>" < "1<class 'int'>", but
    // "1.0<class 'float'>" < "1.5<class 'float'>", so the reference rejects this pair even
    // though a column permutation would make the rows equal. We reproduce that verdict.
    assert!(!test_suite_eq(
        &[vec![Integer(1), Real(1.5)]],
        &[vec![Real(1.0), Real(1.5)]],
        false
    ));
    assert!(test_suite_eq(
        &[vec![Integer(1), Real(2.0)]],
        &[vec![Real(1.0), Integer(2)]],
        false
    ));
}

#[test]
fn bird_and_strict_keep_column_order() {
    let (_d, c) = db();
    let gold = "SELECT name, age FROM singer";
    assert!(!mode(
        &c,
        CompareMode::Bird,
        gold,
        "SELECT age, name FROM singer"
    ));
    assert!(mode(
        &c,
        CompareMode::Bird,
        gold,
        "SELECT name, age FROM singer ORDER BY age DESC"
    ));
    assert!(!mode(
        &c,
        CompareMode::Strict,
        gold,
        "SELECT name, age FROM singer ORDER BY age DESC"
    ));
    assert!(mode(
        &c,
        CompareMode::Strict,
        gold,
        "SELECT name, age FROM singer ORDER BY id"
    ));
    assert!(!mode(
        &c,
        CompareMode::Strict,
        "SELECT x FROM bag",
        "SELECT x FROM bag GROUP BY x"
    ));
}

#[test]
fn gold_failure_scores_zero_and_is_reported() {
    let (_d, c) = db();
    let out = exec_match(
        &c,
        "SELECT nope FROM singer",
        "SELECT nope FROM singer",
        &EvalOptions::default(),
    );
    assert!(!out.matched);
    assert_eq!(out.gold.unwrap_err().cause, Cause::Schema);
}

#[test]
fn wide_results_with_repeated_values() {
    let (_d, c) = db();
    // 14 columns drawn from 3 distinct columns, permuted differently.
    let gold_cols = [
        "a", "b", "c", "a", "b", "c", "a", "a", "b", "c", "c", "a", "b", "a",
    ];
    let mut pred_cols = gold_cols;
    pred_cols.reverse();
    let gold = format!("SELECT {} FROM wide", gold_cols.join(", "));
    let pred = format!("SELECT {} FROM wide", pred_cols.join(", "));
    assert!(ts(&c, &gold, &pred));
    let mut wrong = pred_cols;
    wrong[0] = "b";
    let wrong = format!("SELECT {} FROM wide", wrong.join(", "));
    assert!(!ts(&c, &gold, &wrong));

    // 20 identical-valued columns (20! permutations if enumerated blindly).
    let twenty = format!("SELECT {} FROM singer", vec!["age"; 20].join(", "));
    assert!(ts(&c, &twenty, &twenty));
    let mut cols = vec!["age"; 20];
    cols[7] = "id";
    let almost = format!("SELECT {} FROM singer", cols.join(", "));
    assert!(!ts(&c, &twenty, &almost));
    // Same multiset per column but rows broken apart: must be rejected after the search.
    let g: Vec<Vec<Value>> = (0..6)
        .map(|r| {
            (0..16)
                .map(|k| Value::Integer(((r + k) % 2) as i64))
                .collect()
        })
        .collect();
    let mut p = g.clone();
    for row in p.iter_mut() {
        row.swap(0, 1);
    }
    assert!(test_suite_eq(&g, &p, false));
    p[0][15] = Value::Integer(
        1 - match p[0][15] {
            Value::Integer(i) => i,
            _ => 0,
        },
    );
    assert!(!test_suite_eq(&g, &p, false));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            (0i64..3).prop_map(Value::Integer),
            prop_oneof![Just(0.0), Just(1.0), Just(1.5)].prop_map(Value::Real),
            prop_oneof![Just("a"), Just("1")].prop_map(|s| Value::Text(s.to_string())),
        ]
    }

    fn table() -> impl Strategy<Value = Vec<Vec<Value>>> {
        (1usize..5, 0usize..6).prop_flat_map(|(w, n)| {
            proptest::collection::vec(proptest::collection::vec(value(), w), n)
        })
    }

    fn permuted(t: &[Vec<Value>], cols: &[usize], rows: &[usize]) -> Vec<Vec<Value>> {
        rows.iter()
            .map(|&r| cols.iter().map(|&c| t[r][c].clone()).collect())
            .collect()
    }

    fn all_perms(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in all_perms(n - 1) {
            for k in 0..=p.len() {
                let mut q = p.clone();
                q.insert(k, n - 1);
                out.push(q);
            }
        }
        out
    }

    /// The reference algorithm, brute force over all column permutations.
    fn brute(g: &[Vec<Value>], p: &[Vec<Value>], order: bool) -> bool {
        use std::collections::HashMap;
        if g.is_empty() && p.is_empty() {
            return true;
        }
        if g.len() != p.len() || g[0].len() != p[0].len() {
            return false;
        }
        let key = |r: &Vec<Value>| {
            let mut v: Vec<(String, Value)> = r
                .iter()
                .map(|x| (kidbench_sql::compare::python_sort_key(x), x.clone()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.into_iter().map(|x| x.1).collect::<Vec<_>>()
        };
        let (kg, kp): (Vec<_>, Vec<_>) = (g.iter().map(key).collect(), p.iter().map(key).collect());
        let quick = if order {
            kg == kp
        } else {
            kg.iter().all(|r| kp.contains(r)) && kp.iter().all(|r| kg.contains(r))
        };
        if !quick {
            return false;
        }
        all_perms(g[0].len()).into_iter().any(|perm| {
            let pp: Vec<Vec<Value>> = p
                .iter()
                .map(|r| perm.iter().map(|&i| r[i].clone()).collect())
                .collect();
            if order {
                g == pp.as_slice()
            } else {
                let mut m: HashMap<&Vec<Value>, isize> = HashMap::new();
                for r in g {
                    *m.entry(r).or_insert(0) += 1;
                }
                for r in &pp {
                    *m.entry(r).or_insert(0) -= 1;
                }
                m.values().all(|&c| c == 0)
            }
        })
    }

    proptest! {
        #[test]
        fn permuting_prediction_never_changes_unordered_verdict(
            g in table(), seed in any::<u64>(), mutate in any::<bool>(),
        ) {
            let w = g.first().map_or(1, Vec::len);
            let mut p = g.clone();
            if mutate && !p.is_empty() {
                let r = (seed as usize) % p.len();
                p[r][0] = Value::Integer(7);
            }
            let mut cols: Vec<usize> = (0..w).collect();
            let mut rows: Vec<usize> = (0..p.len()).collect();
            // Deterministic shuffles from the seed.
            let mut s = seed;
            for i in (1..cols.len()).rev() { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); cols.swap(i, (s >> 33) as usize % (i + 1)); }
            for i in (1..rows.len()).rev() { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); rows.swap(i, (s >> 33) as usize % (i + 1)); }
            let pp = permuted(&p, &cols, &rows);
            prop_assert_eq!(test_suite_eq(&g, &p, false), test_suite_eq(&g, &pp, false));
            prop_assert!(test_suite_eq(&g, &permuted(&g, &cols, &rows), false));
        }

        #[test]
        fn search_agrees_with_brute_force(g in table(), p in table(), order in any::<bool>()) {
            prop_assert_eq!(test_suite_eq(&g, &p, order), brute(&g, &p, order));
        }

        #[test]
        fn search_agrees_with_brute_force_on_near_copies(
            g in table(), seed in any::<u64>(), order in any::<bool>(), v in value(),
        ) {
            let w = g.first().map_or(1, Vec::len);
            let mut cols: Vec<usize> = (0..w).collect();
            cols.rotate_left((seed as usize) % w);
            let mut p = permuted(&g, &cols, &(0..g.len()).collect::<Vec<_>>());
            if !p.is_empty() && seed % 3 == 0 {
                let r = (seed as usize / 7) % p.len();
                p[r][(seed as usize / 3) % w] = v;
            }
            prop_assert_eq!(test_suite_eq(&g, &p, order), brute(&g, &p, order));
        }
    }
}

/// The Spider folder, or `None`: the test then returns (`kidbench_sql::testdata` says loudly
/// that it skipped, and fails instead under `CI=true`).
pub fn spider_dir(test: &str) -> Option<PathBuf> {
    kidbench_sql::testdata::spider(test)
}

/// Spider dev gold SQL paired with itself: every question whose database exists must match.
#[test]
fn spider_dev_gold_vs_gold_is_perfect() {
    let Some(dir) = spider_dir("spider_dev_gold_vs_gold_is_perfect") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("dev_gold.sql")).expect("read dev_gold.sql");
    let pairs: Vec<Pair> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let (q, db) = l.rsplit_once('\t').expect("query<TAB>db_id");
            Pair {
                id: format!("dev_{i}"),
                db_id: db.trim().to_string(),
                gold: q.to_string(),
                pred: q.to_string(),
            }
        })
        .collect();
    assert_eq!(pairs.len(), 1034);
    let database = dir.join("database");
    let verdicts = evaluate(
        &pairs,
        |db| spider_db_path(&database, db),
        &EvalOptions::default(),
    );
    let s = summarize(&verdicts);
    let failures: Vec<_> = verdicts
        .iter()
        .filter(|v| !v.matched && !v.skipped())
        .take(5)
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(s.skipped_missing_database, 62);
    assert!(verdicts
        .iter()
        .filter(|v| v.skipped())
        .all(|v| v.db_id == "wta_1"));
    assert_eq!((s.evaluated, s.matched), (972, 972));
    assert_eq!(s.ex, 1.0);
    assert_eq!(
        verdicts.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        pairs.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()
    );
}
