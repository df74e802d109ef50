//! Test-suite accuracy end to end: boundary cases TS catches and EX misses, equivalent rewrites,
//! gold-vs-gold on Spider dev schemas, TS <= EX, database integrity and determinism.
//!
//! Spider is found by `kidbench_sql::testdata::spider`; a test that needs it is skipped, loudly,
//! when it is absent (and fails under `CI=true`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kidbench_sql::benchmark::{Registry, Roots, Split};
use kidbench_sql::eval::{EvalOptions, Pair};
use kidbench_testsuite::build::{build_suite, BuildConfig, SchemaGolds};
use kidbench_testsuite::fuzz::{generate, quote_ident, DatabaseSpec};
use kidbench_testsuite::neighbours::{gold_literals, neighbours};
use kidbench_testsuite::verdict::{evaluate_ts, Suite};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// The folder holding `spider/` (`kidbench_sql::testdata::spider`). Tests that need Spider
/// call [`needs_spider`] first: without the data they return (said loudly; a failure under
/// `CI=true`).
fn data_root() -> PathBuf {
    spider_dir()
        .parent()
        .expect("spider/ has a parent")
        .to_path_buf()
}

fn spider_dir() -> PathBuf {
    kidbench_sql::testdata::spider("testsuite")
        .expect("needs_spider() was called first by every test that reads Spider")
}

/// Whether Spider is here; when not, the calling test returns.
fn needs_spider(test: &str) -> bool {
    kidbench_sql::testdata::spider(test).is_some()
}

fn spider_db(db_id: &str) -> PathBuf {
    spider_dir()
        .join("database")
        .join(db_id)
        .join(format!("{db_id}.sqlite"))
}

/// Spider dev gold queries of the given schemas.
fn spider_golds(db_ids: &[&str]) -> Vec<SchemaGolds> {
    spider_dir();
    let roots = Roots {
        data: data_root(),
        databases: data_root(),
    };
    let bench = Registry::builtin()
        .open("spider-dev", &roots)
        .expect("spider-dev benchmark");
    let mut by_db: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ex in bench.examples(Split::Dev).expect("spider dev questions") {
        if db_ids.contains(&ex.db_id.as_str()) {
            by_db.entry(ex.db_id).or_default().push(ex.query);
        }
    }
    by_db
        .into_iter()
        .map(|(db_id, golds)| SchemaGolds {
            database: Some(spider_db(&db_id)),
            db_id,
            golds,
        })
        .collect()
}

fn small_config() -> BuildConfig {
    BuildConfig {
        per_schema: 3,
        max_candidates: 24,
        candidates_per_round: 6,
        max_neighbours: 30,
        ..BuildConfig::default()
    }
}

/// A tiny hand-made database: `score` values 1, 5, 9 (none on the boundary 4 or 5 +/- 1 aside
/// from 5 itself), a child table with a foreign key.
fn toy_db(dir: &Path) -> PathBuf {
    let path = dir.join("toy.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("create toy db");
    conn.execute_batch(
        "CREATE TABLE player (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INT NOT NULL, team TEXT);
         CREATE TABLE award (award_id INTEGER PRIMARY KEY, player_id INT NOT NULL REFERENCES player(id), year INT);
         INSERT INTO player VALUES (1, 'Ann', 1, 'red'), (2, 'Bob', 9, 'blue'), (3, 'Cid', 12, 'red');
         INSERT INTO award VALUES (1, 1, 2001), (2, 2, 2003), (3, 2, 2005);",
    )
    .expect("fill toy db");
    path
}

const TOY_GOLDS: &[&str] = &[
    "SELECT count(*) FROM player WHERE score > 4",
    "SELECT name FROM player WHERE team = 'red' ORDER BY score DESC",
    "SELECT T1.name, count(*) FROM player AS T1 JOIN award AS T2 ON T1.id = T2.player_id GROUP BY T1.id",
    "SELECT max(score) FROM player",
    "SELECT name FROM player WHERE score BETWEEN 2 AND 10",
];

struct Toy {
    _dir: tempfile::TempDir,
    db: PathBuf,
    suite: Suite,
}

/// The toy database and a suite built from [`TOY_GOLDS`] (built once per test binary).
fn toy() -> &'static Toy {
    static TOY: OnceLock<Toy> = OnceLock::new();
    TOY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = toy_db(dir.path());
        let out = dir.path().join("suite");
        let schemas = vec![SchemaGolds {
            db_id: "toy".into(),
            database: Some(db.clone()),
            golds: TOY_GOLDS.iter().map(|s| s.to_string()).collect(),
        }];
        let cfg = BuildConfig {
            per_schema: 5,
            max_candidates: 40,
            ..BuildConfig::default()
        };
        build_suite("toy", &schemas, &out, &cfg).expect("build toy suite");
        let suite = Suite::open(&out).expect("open toy suite");
        Toy {
            _dir: dir,
            db,
            suite,
        }
    })
}

fn toy_eval(pairs: &[(&str, &str)]) -> kidbench_testsuite::TsReport {
    let t = toy();
    let pairs: Vec<Pair> = pairs
        .iter()
        .map(|(g, p)| Pair {
            id: String::new(),
            db_id: "toy".into(),
            gold: g.to_string(),
            pred: p.to_string(),
        })
        .collect();
    let db = t.db.clone();
    evaluate_ts(
        &pairs,
        move |_: &str| db.clone(),
        Some(&t.suite),
        &EvalOptions::default(),
    )
}

#[test]
fn boundary_mistake_is_caught_by_ts_not_ex() {
    let t = toy();
    assert!(
        !t.suite.databases("toy").is_empty(),
        "toy suite kept no database"
    );
    let r = toy_eval(&[
        (
            "SELECT count(*) FROM player WHERE score > 4",
            "SELECT count(*) FROM player WHERE score >= 4",
        ),
        (
            "SELECT count(*) FROM player WHERE score > 4",
            "SELECT count(*) FROM player WHERE score > 5",
        ),
    ]);
    for v in &r.verdicts {
        assert!(v.ex, "the original database cannot tell these apart: {v:?}");
        assert!(!v.ts, "a suite database should tell these apart: {v:?}");
        let first = v
            .ts_first_failing_db
            .as_deref()
            .expect("first failing database");
        assert!(
            first.starts_with("toy/") && first.ends_with(".sqlite"),
            "{first}"
        );
    }
    assert_eq!(r.summary.ex_not_ts, 2);
    assert_eq!(r.summary.all.ts, 0);
    assert_eq!(r.summary.all.ex, 2);
}

#[test]
fn equivalent_rewrites_stay_matches() {
    let r = toy_eval(&[
        (
            "SELECT T1.name, count(*) FROM player AS T1 JOIN award AS T2 ON T1.id = T2.player_id GROUP BY T1.id",
            "select count(*), p.name from award as a join player as p on p.id = a.player_id group by p.id",
        ),
        (
            "SELECT name FROM player WHERE team = 'red' ORDER BY score DESC",
            "SELECT   NAME\nFROM Player   WHERE TEAM='red'  order by SCORE desc",
        ),
        (
            "SELECT count(*) FROM player WHERE score > 4",
            "SELECT count(*) FROM player WHERE NOT score <= 4",
        ),
        (
            "SELECT name FROM player WHERE score BETWEEN 2 AND 10",
            "SELECT x.name FROM player x WHERE x.score >= 2 AND x.score <= 10",
        ),
        ("SELECT max(score) FROM player", "SELECT MAX(p.score) FROM player AS p"),
    ]);
    for v in &r.verdicts {
        assert!(v.ex && v.ts, "equivalent rewrite judged wrong: {v:?}");
        assert!(
            v.suite_databases_used > 0 || v.gold_failed_on_suite > 0,
            "{v:?}"
        );
    }
    assert_eq!(r.summary.all.ts, 5);
}

#[test]
fn gold_vs_gold_is_perfect_on_spider_dev_schemas() {
    if !needs_spider("gold_vs_gold_is_perfect_on_spider_dev_schemas") {
        return;
    }
    let ids = [
        "concert_singer",
        "pets_1",
        "battle_death",
        "voter_1",
        "real_estate_properties",
    ];
    let schemas = spider_golds(&ids);
    assert_eq!(schemas.len(), ids.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let m = build_suite("spider-dev", &schemas, dir.path(), &small_config()).expect("build");
    assert!(m.missing.is_empty(), "{:?}", m.missing);
    assert!(m.totals.databases > 0);
    assert!(m.totals.testable > 0);
    let suite = Suite::open(dir.path()).expect("open suite");
    let pairs: Vec<Pair> = schemas
        .iter()
        .flat_map(|s| {
            s.golds.iter().map(|g| Pair {
                id: String::new(),
                db_id: s.db_id.clone(),
                gold: g.clone(),
                pred: g.clone(),
            })
        })
        .collect();
    let r = evaluate_ts(
        &pairs,
        |id: &str| spider_db(id),
        Some(&suite),
        &EvalOptions::default(),
    );
    for v in &r.verdicts {
        assert!(
            v.ex && v.ts,
            "gold vs gold not a TS match: {v:?} for {}",
            pairs[v.index].gold
        );
    }
    assert_eq!(r.summary.all.ts, pairs.len());
    // Left-over neighbours are judged EX = TS = true (nothing told them apart); distinguished
    // ones are TS = false.
    let mut checked = 0;
    for s in m.schemas.values() {
        for lo in s.left_over.iter().take(3) {
            let r = evaluate_ts(
                &[Pair {
                    id: String::new(),
                    db_id: s.db_id.clone(),
                    gold: lo.gold.clone(),
                    pred: lo.neighbour.clone(),
                }],
                |id: &str| spider_db(id),
                Some(&suite),
                &EvalOptions::default(),
            );
            assert!(r.verdicts[0].ts, "left-over neighbour judged wrong: {lo:?}");
            checked += 1;
        }
    }
    let _ = checked;
}

#[test]
fn suite_catches_distinguished_neighbours() {
    if !needs_spider("suite_catches_distinguished_neighbours") {
        return;
    }
    // Every neighbour a build counts as distinguished must be TS-wrong when evaluated.
    let schemas = spider_golds(&["singer"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = small_config();
    build_suite("spider-dev", &schemas, dir.path(), &cfg).expect("build");
    let suite = Suite::open(dir.path()).expect("open");
    let db = spider_db("singer");
    let mut spec = DatabaseSpec::read("singer", &db).expect("spec");
    let info = spec.schema_info();
    let lits: Vec<_> = schemas[0]
        .golds
        .iter()
        .flat_map(|g| gold_literals(g, &info))
        .collect();
    spec.add_literals(&lits);
    let mut pairs = Vec::new();
    for g in &schemas[0].golds {
        for n in neighbours(g, &info, 5, 8) {
            pairs.push(Pair {
                id: String::new(),
                db_id: "singer".into(),
                gold: g.clone(),
                pred: n.sql,
            });
        }
    }
    let r = evaluate_ts(
        &pairs,
        |id: &str| spider_db(id),
        Some(&suite),
        &EvalOptions::default(),
    );
    assert!(r.summary.all.ts <= r.summary.all.ex);
    assert!(
        r.summary.ex_not_ts > 0,
        "the suite told no neighbour apart beyond the original"
    );
}

/// A foreign key's parent table and (from, to) column pairs.
type ParentAndColumns = (String, Vec<(String, Option<String>)>);

/// Independent integrity checks, written from SQLite's pragmas (not from the fuzzer's spec).
fn check_integrity(db: &Path) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open fuzzed db");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    for t in &tables {
        let cols: Vec<(String, bool, i64)> = conn
            .prepare("SELECT name, \"notnull\", pk FROM pragma_table_info(?1)")
            .and_then(|mut s| {
                s.query_map([t], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?))
                })?
                .collect()
            })
            .expect("columns");
        let mut pk: Vec<(i64, String)> = cols
            .iter()
            .filter(|c| c.2 > 0)
            .map(|c| (c.2, quote_ident(&c.0)))
            .collect();
        pk.sort();
        if !pk.is_empty() {
            let keys = pk
                .iter()
                .map(|p| p.1.clone())
                .collect::<Vec<_>>()
                .join(", ");
            let dup: i64 = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM {} GROUP BY {keys} HAVING count(*) > 1)",
                        quote_ident(t)
                    ),
                    [],
                    |r| r.get(0),
                )
                .expect("pk check");
            assert_eq!(dup, 0, "{}: duplicate primary key in {t}", db.display());
        }
        for (c, not_null, pkpos) in &cols {
            if *not_null || *pkpos > 0 {
                let n: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM {} WHERE {} IS NULL",
                            quote_ident(t),
                            quote_ident(c)
                        ),
                        [],
                        |r| r.get(0),
                    )
                    .expect("not null check");
                assert_eq!(n, 0, "{}: NULL in {t}.{c}", db.display());
            }
        }
        let fks: Vec<(i64, String, String, Option<String>)> = conn
            .prepare("SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
            .and_then(|mut s| s.query_map([t], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect())
            .expect("fks");
        let mut groups: BTreeMap<i64, ParentAndColumns> = BTreeMap::new();
        for (id, parent, from, to) in fks {
            groups
                .entry(id)
                .or_insert_with(|| (parent, Vec::new()))
                .1
                .push((from, to));
        }
        for (parent, pairs) in groups.values() {
            if !tables.iter().any(|x| x.eq_ignore_ascii_case(parent)) {
                continue;
            }
            // `REFERENCES parent` without columns: the parent's primary key.
            let ppk: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
                .and_then(|mut s| s.query_map([parent], |r| r.get(0))?.collect())
                .expect("parent pk");
            let mut ok = true;
            let mut conds = Vec::new();
            let mut nn = Vec::new();
            for (k, (from, to)) in pairs.iter().enumerate() {
                let Some(to) = to.clone().or_else(|| ppk.get(k).cloned()) else {
                    ok = false;
                    break;
                };
                let has_col = |tbl: &str, col: &str| -> bool {
                    conn.query_row(
                        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE",
                        [tbl, col],
                        |r| r.get::<_, i64>(0),
                    )
                    .map(|n| n > 0)
                    .unwrap_or(false)
                };
                if !has_col(t, from) || !has_col(parent, &to) {
                    ok = false;
                    break;
                }
                conds.push(format!("p.{} = c.{}", quote_ident(&to), quote_ident(from)));
                nn.push(format!("c.{} IS NOT NULL", quote_ident(from)));
            }
            if !ok {
                continue;
            }
            let sql = format!(
                "SELECT count(*) FROM {} AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {})",
                quote_ident(t),
                nn.join(" AND "),
                quote_ident(parent),
                conds.join(" AND ")
            );
            let bad: i64 = conn.query_row(&sql, [], |r| r.get(0)).expect("fk check");
            assert_eq!(
                bad,
                0,
                "{}: {bad} rows of {t} violate a foreign key to {parent}",
                db.display()
            );
        }
    }
    // Where SQLite can check foreign keys itself (parent keys unique), it must agree.
    let violations: Vec<String> = match conn.prepare("PRAGMA foreign_key_check") {
        Ok(mut s) => match s.query_map([], |r| r.get::<_, String>(0)) {
            Ok(rows) => rows.filter_map(Result::ok).collect(),
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    assert!(
        violations.is_empty(),
        "{}: foreign_key_check: {violations:?}",
        db.display()
    );
}

#[test]
fn fuzzed_databases_respect_keys_not_null_and_foreign_keys() {
    if !needs_spider("fuzzed_databases_respect_keys_not_null_and_foreign_keys") {
        return;
    }
    let dev = spider_dir().join("database");
    let mut ids: Vec<String> = std::fs::read_dir(&dev)
        .expect("spider database folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|id| spider_db(id).is_file())
        .collect();
    ids.sort();
    // Every Spider dev schema plus a spread of training ones (cycles, composite keys).
    let wanted: Vec<&String> = ids.iter().step_by(7).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    for id in wanted {
        let spec = DatabaseSpec::read(id, &spider_db(id)).expect("spec");
        for seed in 0..3u64 {
            let p = dir.path().join(format!("{id}-{seed}.sqlite"));
            generate(&spec, seed, &p).expect("generate");
            check_integrity(&p);
            n += 1;
        }
    }
    assert!(n > 20, "only {n} databases checked");
}

#[test]
fn fuzzed_databases_respect_cycles_self_references_and_composite_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = dir.path().join("cyclic.sqlite");
    let conn = rusqlite::Connection::open(&orig).expect("create");
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE dept (id INTEGER PRIMARY KEY, name TEXT NOT NULL, head_id INT NOT NULL REFERENCES emp(id));
         CREATE TABLE emp (id INTEGER PRIMARY KEY, dept_id INT NOT NULL REFERENCES dept(id),
                           boss_id INT REFERENCES emp(id), name TEXT);
         CREATE TABLE link (x INT, y TEXT, PRIMARY KEY (x, y));
         CREATE TABLE pair (a INT NOT NULL, b TEXT NOT NULL, note TEXT, PRIMARY KEY (a, b, note),
                            FOREIGN KEY (a, b) REFERENCES link(x, y));
         INSERT INTO dept VALUES (1, 'R&D', 10), (2, 'Sales', 11), (3, 'Ops', 99);
         INSERT INTO emp VALUES (10, 1, NULL, 'Ann'), (11, 2, 10, 'Bob'), (12, 7, 11, 'Cid');
         INSERT INTO link VALUES (1, 'a'), (1, 'b'), (2, 'a');
         INSERT INTO pair VALUES (1, 'a', 'x'), (2, 'a', 'y'), (3, 'c', 'z');",
    )
    .expect("fill");
    drop(conn);
    let spec = DatabaseSpec::read("cyclic", &orig).expect("spec");
    for seed in 0..40u64 {
        let p = dir.path().join(format!("cyclic-{seed}.sqlite"));
        generate(&spec, seed, &p).expect("generate");
        check_integrity(&p);
    }
}

fn file_digests(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for schema in std::fs::read_dir(dir)
        .expect("suite dir")
        .filter_map(|e| e.ok())
    {
        if !schema.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(schema.path())
            .expect("schema dir")
            .filter_map(|e| e.ok())
        {
            let p = f.path();
            if p.extension().is_some_and(|x| x == "sqlite") {
                let bytes = std::fs::read(&p).expect("read db");
                out.insert(
                    format!(
                        "{}/{}",
                        schema.file_name().to_string_lossy(),
                        f.file_name().to_string_lossy()
                    ),
                    hex::encode(Sha256::digest(&bytes)),
                );
            }
        }
    }
    out
}

#[test]
fn same_seed_same_suite() {
    if !needs_spider("same_seed_same_suite") {
        return;
    }
    let schemas = spider_golds(&["concert_singer", "orchestra"]);
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let c = tempfile::tempdir().expect("tempdir");
    let cfg = small_config();
    let mut ma = build_suite("spider-dev", &schemas, a.path(), &cfg).expect("build a");
    let mut mb = build_suite("spider-dev", &schemas, b.path(), &cfg).expect("build b");
    let da = file_digests(a.path());
    assert!(!da.is_empty());
    assert_eq!(
        da,
        file_digests(b.path()),
        "same seed, different database bytes"
    );
    for m in [&mut ma, &mut mb] {
        m.build_seconds = 0.0;
        for s in m.schemas.values_mut() {
            s.build_seconds = 0.0;
        }
    }
    assert_eq!(ma, mb, "same seed, different manifest");

    let other = BuildConfig {
        seed: 99,
        ..small_config()
    };
    build_suite("spider-dev", &schemas, c.path(), &other).expect("build c");
    assert_ne!(
        da,
        file_digests(c.path()),
        "another seed gave the same suite"
    );
}

#[test]
fn finished_schemas_are_resumed_and_half_written_ones_redone() {
    if !needs_spider("finished_schemas_are_resumed_and_half_written_ones_redone") {
        return;
    }
    let schemas = spider_golds(&["battle_death", "voter_1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = small_config();
    build_suite("spider-dev", &schemas, dir.path(), &cfg).expect("first build");
    let before = file_digests(dir.path());
    // Simulate an interrupted build: a half-written folder and a schema folder removed.
    std::fs::create_dir_all(dir.path().join(".tmp-voter_1")).expect("mkdir");
    std::fs::write(dir.path().join(".tmp-voter_1/candidate-0.sqlite"), b"junk").expect("write");
    std::fs::remove_dir_all(dir.path().join("voter_1")).expect("rm");
    let marker = dir.path().join("battle_death/keep.txt");
    std::fs::write(&marker, b"untouched").expect("marker");
    build_suite("spider-dev", &schemas, dir.path(), &cfg).expect("resumed build");
    assert!(
        marker.is_file(),
        "a finished schema was rebuilt instead of resumed"
    );
    assert!(!dir.path().join(".tmp-voter_1").exists());
    assert_eq!(before, file_digests(dir.path()));
}

/// Mutated gold queries (neighbours picked at random) never score TS above EX.
fn toy_mutants() -> &'static Vec<(String, String)> {
    static M: OnceLock<Vec<(String, String)>> = OnceLock::new();
    M.get_or_init(|| {
        let t = toy();
        let spec = DatabaseSpec::read("toy", &t.db).expect("spec");
        let info = spec.schema_info();
        TOY_GOLDS
            .iter()
            .flat_map(|g| {
                neighbours(g, &info, 11, 100)
                    .into_iter()
                    .map(|n| (g.to_string(), n.sql))
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn ts_never_exceeds_ex(picks in prop::collection::vec(any::<prop::sample::Index>(), 1..12)) {
        let mutants = toy_mutants();
        prop_assume!(!mutants.is_empty());
        let pairs: Vec<(&str, &str)> = picks
            .iter()
            .map(|i| {
                let (g, p) = &mutants[i.index(mutants.len())];
                (g.as_str(), p.as_str())
            })
            .collect();
        let r = toy_eval(&pairs);
        prop_assert!(r.summary.all.ts <= r.summary.all.ex);
        for v in &r.verdicts {
            prop_assert!(!v.ts || v.ex, "TS without EX: {:?}", v);
            prop_assert_eq!(v.ts_first_failing_db.is_some(), v.ex && !v.ts);
        }
    }
}

/// The full Spider-dev suite, at the default settings (run once by the lead:
/// `cargo test -p kidbench-testsuite --release -- --ignored --nocapture full_spider_dev`).
#[test]
#[ignore]
fn full_spider_dev_suite() {
    if !needs_spider("full_spider_dev_suite") {
        return;
    }
    spider_dir();
    let roots = Roots {
        data: data_root(),
        databases: data_root(),
    };
    let bench = Registry::builtin()
        .open("spider-dev", &roots)
        .expect("spider-dev");
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = std::time::Instant::now();
    let m = kidbench_testsuite::build_benchmark(&bench, dir.path(), &BuildConfig::default())
        .expect("build");
    let build = t0.elapsed();
    println!("{}", kidbench_testsuite::describe_manifest(&m, dir.path()));
    println!("build: {:.1}s", build.as_secs_f64());
    let suite = Suite::open(dir.path()).expect("open");
    let pairs: Vec<Pair> = bench
        .examples(Split::Dev)
        .expect("examples")
        .into_iter()
        .map(|e| Pair {
            id: String::new(),
            db_id: e.db_id,
            gold: e.query.clone(),
            pred: e.query,
        })
        .collect();
    let t1 = std::time::Instant::now();
    let r = evaluate_ts(
        &pairs,
        |id: &str| {
            bench
                .database_path(Split::Dev, id)
                .unwrap_or_else(|| data_root().join("missing").join(id))
        },
        Some(&suite),
        &EvalOptions::default(),
    );
    println!(
        "ts eval (gold vs gold, {} pairs): {:.1}s",
        pairs.len(),
        t1.elapsed().as_secs_f64()
    );
    println!("{:#?}", r.summary);
    for v in &r.verdicts {
        if suite.covers(&v.db_id) {
            assert!(v.ts, "gold vs gold not TS: {v:?}");
        } else {
            assert!(v.skipped, "{v:?}");
        }
    }
    assert!(m.totals.distinguished_pct >= 80.0, "{:?}", m.totals);
}
