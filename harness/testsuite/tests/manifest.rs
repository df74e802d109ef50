//! A suite's recorded checksums: verified before use and before reuse, what does not match is
//! rebuilt; and two builds into one folder at once. Toy databases only (no Spider).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use kidbench_testsuite::build::{ensure_suite, verify_suite, BuildConfig, SchemaGolds};
use kidbench_testsuite::{Suite, TestsuiteError};

fn toy_db(dir: &Path) -> PathBuf {
    let path = dir.join("toy.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("create toy db");
    conn.execute_batch(
        "CREATE TABLE player (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INT NOT NULL, team TEXT);
         INSERT INTO player VALUES (1, 'Ann', 1, 'red'), (2, 'Bob', 9, 'blue'), (3, 'Cid', 12, 'red');",
    )
    .expect("fill toy db");
    path
}

fn schemas(db: &Path) -> Vec<SchemaGolds> {
    vec![
        SchemaGolds {
            db_id: "toy_a".into(),
            database: Some(db.to_path_buf()),
            golds: vec![
                "SELECT count(*) FROM player WHERE score > 4".into(),
                "SELECT name FROM player WHERE score BETWEEN 2 AND 10".into(),
            ],
        },
        SchemaGolds {
            db_id: "toy_b".into(),
            database: Some(db.to_path_buf()),
            golds: vec!["SELECT name FROM player WHERE score < 9".into()],
        },
    ]
}

fn cfg() -> BuildConfig {
    BuildConfig {
        per_schema: 3,
        max_candidates: 24,
        candidates_per_round: 6,
        max_neighbours: 30,
        ..BuildConfig::default()
    }
}

struct Built {
    _dir: tempfile::TempDir,
    db: PathBuf,
    out: PathBuf,
}

fn built() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let db = toy_db(dir.path());
    let out = dir.path().join("suite");
    let b = ensure_suite("toy", &schemas(&db), &out, &cfg()).expect("build");
    assert!(!b.up_to_date);
    assert_eq!(b.built, ["toy_a", "toy_b"]);
    for s in ["toy_a", "toy_b"] {
        assert!(
            !b.manifest.schemas[s].databases.is_empty(),
            "{s}: a boundary gold needs at least one suite database"
        );
    }
    Built { _dir: dir, db, out }
}

fn leftovers(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    if out.with_file_name(".suite.build.lock").exists() {
        v.push(".suite.build.lock".into());
    }
    v
}

#[test]
fn a_truncated_suite_database_is_named_and_only_its_schema_rebuilt() {
    let t = built();
    let file = t.out.join("toy_a/00.sqlite");
    let original = std::fs::read(&file).unwrap();
    let full = original.len() as u64;
    let untouched = std::fs::read(t.out.join("toy_b/00.sqlite")).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(full / 2).unwrap();
    drop(f);

    // Before: opened, and the database skipped silently when scoring.
    let err = Suite::open(&t.out).expect_err("a truncated suite must not open");
    match &err {
        TestsuiteError::Corrupt { path, message } => {
            assert_eq!(path, &file);
            assert_eq!(
                message,
                &format!(
                    "{} bytes where the manifest records {full} (truncated or changed since it was built)",
                    full / 2
                )
            );
        }
        other => panic!("expected a corrupt file, got {other}"),
    }
    assert!(verify_suite(&t.out).is_err());

    // Before: "complete", nothing rebuilt.
    let b = ensure_suite("toy", &schemas(&t.db), &t.out, &cfg()).expect("rebuild");
    assert!(!b.up_to_date);
    assert_eq!(b.built, ["toy_a"], "the intact schema is reused");
    assert_eq!(b.rebuilt.len(), 1);
    assert_eq!(b.rebuilt[0].0, "toy_a");
    assert!(
        b.rebuilt[0].1.contains(&file.display().to_string()),
        "{:?}",
        b.rebuilt
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        original,
        "same seed, same bytes"
    );
    assert_eq!(
        std::fs::read(t.out.join("toy_b/00.sqlite")).unwrap(),
        untouched
    );
    Suite::open(&t.out).expect("opens after the rebuild");

    // Complete and verified: nothing written, the manifest left as it was.
    let manifest = std::fs::read(t.out.join("manifest.json")).unwrap();
    let b = ensure_suite("toy", &schemas(&t.db), &t.out, &cfg()).expect("reuse");
    assert!(b.up_to_date && b.built.is_empty() && b.rebuilt.is_empty());
    assert_eq!(
        std::fs::read(t.out.join("manifest.json")).unwrap(),
        manifest
    );
    assert!(leftovers(&t.out).is_empty(), "{:?}", leftovers(&t.out));
}

#[test]
fn a_changed_byte_of_the_same_size_is_caught_by_the_hash() {
    let t = built();
    let file = t.out.join("toy_b/00.sqlite");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&file, &bytes).unwrap();
    let text = Suite::open(&t.out).unwrap_err().to_string();
    assert!(
        text.starts_with(&format!("{}: SHA-256 ", file.display())),
        "{text}"
    );
    let b = ensure_suite("toy", &schemas(&t.db), &t.out, &cfg()).expect("rebuild");
    assert_eq!(b.built, ["toy_b"]);
    Suite::open(&t.out).expect("opens after the rebuild");
}

#[test]
fn a_suite_without_checksums_opens_on_presence_and_is_rebuilt_by_the_next_build() {
    let t = built();
    // What a suite built before checksums were recorded looks like.
    for p in [
        t.out.join("manifest.json"),
        t.out.join("toy_a/schema.json"),
        t.out.join("toy_b/schema.json"),
    ] {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let strip = |s: &mut serde_json::Value| {
            let o = s.as_object_mut().unwrap();
            o.remove("files");
            o.remove("golds_sha256");
        };
        if let Some(schemas) = v.get_mut("schemas") {
            for s in schemas.as_object_mut().unwrap().values_mut() {
                strip(s);
            }
        } else {
            strip(&mut v);
        }
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
    let suite = Suite::open(&t.out).expect("a legacy suite still opens");
    assert!(!suite.manifest.has_checksums());
    std::fs::remove_file(t.out.join("toy_a/00.sqlite")).unwrap();
    let text = Suite::open(&t.out).unwrap_err().to_string();
    assert!(
        text.contains("toy_a/00.sqlite") && text.contains("missing"),
        "{text}"
    );

    let b = ensure_suite("toy", &schemas(&t.db), &t.out, &cfg()).expect("rebuild");
    assert_eq!(b.built, ["toy_a", "toy_b"]);
    let why: Vec<&str> = b.rebuilt.iter().map(|(_, w)| w.as_str()).collect();
    assert!(
        why.iter().all(|w| w.contains("without checksums")),
        "{why:?}"
    );
    assert!(Suite::open(&t.out).unwrap().manifest.has_checksums());
}

#[test]
fn a_schema_whose_questions_changed_is_rebuilt() {
    let t = built();
    let mut s = schemas(&t.db);
    s[1].golds.push("SELECT max(score) FROM player".into());
    let b = ensure_suite("toy", &s, &t.out, &cfg()).expect("rebuild");
    assert_eq!(b.built, ["toy_b"]);
    assert!(b.rebuilt.is_empty(), "not a corruption: {:?}", b.rebuilt);
    assert_eq!(b.manifest.schemas["toy_b"].golds, 2);
}

#[test]
fn two_builds_into_one_folder_at_once_both_succeed_and_one_reuses() {
    // Before: both failed and left `.tmp-*` folders.
    let dir = tempfile::tempdir().unwrap();
    let db = toy_db(dir.path());
    let out = dir.path().join("suite");
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (db, out, barrier) = (db.clone(), out.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                ensure_suite("toy", &schemas(&db), &out, &cfg())
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect("both builds succeed"))
        .collect();
    let fresh: Vec<bool> = results.iter().map(|b| !b.up_to_date).collect();
    assert_eq!(
        fresh.iter().filter(|f| **f).count(),
        1,
        "one builds, the other reuses: {fresh:?}"
    );
    for s in ["toy_a", "toy_b"] {
        assert_eq!(
            results[0].manifest.schemas[s].files, results[1].manifest.schemas[s].files,
            "the reused suite is the built one"
        );
    }
    verify_suite(&out).expect("the suite verifies");
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}
