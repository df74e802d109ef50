//! Verification of a generated folder against its manifest, regeneration of what does not match,
//! and concurrent generations into one folder. Small configurations keep each generation short.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use kidbench_synth::{
    ensure, generate, is_current, read_manifest, status, verify, Regenerated, Status, SynthConfig,
    SynthError,
};
use sha2::{Digest, Sha256};

fn small() -> SynthConfig {
    SynthConfig {
        seed: 3,
        n_train_target: 60,
        n_dev_target: 30,
        reskins: 0,
    }
}

/// A dev database of the generation in `dir` (path relative to `dir`), with its biggest table.
fn a_dev_database(dir: &Path) -> (String, String) {
    let m = read_manifest(dir).expect("manifest");
    let db = m
        .databases
        .iter()
        .filter(|d| d.split == "dev")
        .max_by_key(|d| d.rows)
        .expect("a dev database");
    let rel = format!("database/{0}/{0}.sqlite", db.db_id);
    let conn = rusqlite::Connection::open(dir.join(&rel)).expect("open");
    let table: String = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a table");
    (rel, table)
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read")))
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect();
    let lock = dir.with_file_name(format!(
        ".{}.generate.lock",
        dir.file_name().unwrap().to_string_lossy()
    ));
    if lock.exists() {
        out.push(lock);
    }
    out
}

#[test]
fn rows_deleted_from_a_dev_database_are_found_and_regenerated() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("synth");
    let first = ensure(&dir, &small(), false).expect("generate");
    assert!(matches!(first.generated, Some(Regenerated::Absent)));
    let (rel, table) = a_dev_database(&dir);
    let path = dir.join(&rel);
    let original = std::fs::read(&path).unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let before: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .unwrap();
        let n = conn
            .execute(&format!("DELETE FROM \"{table}\" WHERE rowid % 2 = 0"), [])
            .unwrap();
        assert!(before >= 2 && n as i64 >= before / 2 - 1, "{n} of {before}");
        conn.execute_batch("PRAGMA integrity_check").unwrap();
    }
    assert_ne!(std::fs::read(&path).unwrap(), original);

    // The old check (manifest and file presence) said "current" here.
    assert!(!is_current(&dir, &small()));
    match status(&dir, &small()) {
        Status::Corrupt(SynthError::Corrupt { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.contains("SHA-256"), "{message}");
        }
        other => panic!("expected a corrupt file, got {other:?}"),
    }
    let err = verify(&dir).expect_err("a changed database must not verify");
    assert!(err.to_string().contains(&rel), "{err}");

    let again = ensure(&dir, &small(), false).expect("regenerate");
    match &again.generated {
        Some(Regenerated::Corrupt(e)) => assert!(e.to_string().contains(&rel), "{e}"),
        other => panic!("expected a regeneration for the corrupt file, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "same seed, same bytes"
    );
    verify(&dir).expect("verifies after regeneration");
    let reused = ensure(&dir, &small(), false).expect("reuse");
    assert!(reused.generated.is_none(), "{:?}", reused.generated);
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

#[test]
fn a_truncated_file_is_named_with_both_sizes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("synth");
    generate(&dir, &small()).expect("generate");
    let path = dir.join("train.json");
    let full = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(full / 2).unwrap();
    drop(f);
    let err = verify(&dir).expect_err("a truncated file must not verify");
    let text = err.to_string();
    assert!(text.contains("train.json"), "{text}");
    assert!(
        text.contains(&format!(
            "{} bytes where manifest.json records {full}",
            full / 2
        )),
        "{text}"
    );
    // A missing file is named too.
    std::fs::remove_file(dir.join("dev.json")).unwrap();
    std::fs::write(&path, vec![b' '; full as usize]).unwrap();
    let text = verify(&dir).unwrap_err().to_string();
    assert!(
        text.contains("train.json") || text.contains("dev.json"),
        "{text}"
    );
}

#[test]
fn a_manifest_without_sizes_is_verified_by_hash() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("synth");
    generate(&dir, &small()).expect("generate");
    let mpath = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    assert!(v.as_object_mut().unwrap().remove("sizes").is_some());
    std::fs::write(&mpath, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    assert!(verify(&dir).is_ok());
    assert!(is_current(&dir, &small()));
    let (rel, _) = a_dev_database(&dir);
    let mut bytes = std::fs::read(dir.join(&rel)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(dir.join(&rel), &bytes).unwrap();
    let text = verify(&dir).unwrap_err().to_string();
    assert!(
        text.contains(&rel) && text.contains(&sha(&dir.join(&rel))),
        "{text}"
    );
}

#[test]
fn two_generations_into_one_empty_folder_both_succeed() {
    // What two `kidbench synth` into one folder did before: "table auction already exists".
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("synth");
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (dir, barrier) = (dir.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                generate(&dir, &small())
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().expect("both generations succeed");
    }
    verify(&dir).expect("the result verifies");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

#[test]
fn concurrent_ensures_generate_once_and_the_others_reuse() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("synth");
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (dir, barrier) = (dir.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                ensure(&dir, &small(), false).map(|e| e.generated.is_some())
            })
        })
        .collect();
    let generated: Vec<bool> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect("every ensure succeeds"))
        .collect();
    assert_eq!(
        generated.iter().filter(|g| **g).count(),
        1,
        "exactly one generation: {generated:?}"
    );
    verify(&dir).expect("the result verifies");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

#[test]
fn what_a_killed_generation_left_is_cleared_and_unused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("synth");
    // A generation killed half-way: its temporary folder, no manifest.
    std::fs::create_dir_all(dir.join(".tmp-999999/database/x")).unwrap();
    std::fs::write(dir.join(".tmp-999999/database/x/x.sqlite"), b"junk").unwrap();
    assert!(matches!(status(&dir, &small()), Status::Absent));
    let e = ensure(&dir, &small(), false).expect("generate");
    assert!(matches!(e.generated, Some(Regenerated::Absent)));
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    // Another configuration is outdated, not corrupt.
    let other = SynthConfig { seed: 4, ..small() };
    assert!(matches!(status(&dir, &other), Status::Outdated(_)));
}
