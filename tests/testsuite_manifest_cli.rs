//! `kidbench testsuite build` on a toy benchmark: a truncated suite database is named and its
//! schema rebuilt (and refused by `eval --metric ts`), a complete suite is reported up to date,
//! and two builds into one folder at once both succeed without leftovers.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::util::{kidbench, run, tempdir};

/// A one-database benchmark `toyshop` under `root`: `--benchmarks-dir` is `root/benchmarks`,
/// `--data-dir` is `root/data`; its database `shop` holds stock 1, 9, 12.
pub struct ToyShop {
    pub root: PathBuf,
}

pub const GOLD: &str = "SELECT count(*) FROM item WHERE stock > 4";

impl ToyShop {
    pub fn new(root: &Path) -> Self {
        let data = root.join("data/toyshop");
        let db_dir = data.join("database/shop");
        std::fs::create_dir_all(&db_dir).unwrap();
        std::fs::create_dir_all(root.join("benchmarks")).unwrap();
        let conn = rusqlite::Connection::open(db_dir.join("shop.sqlite")).unwrap();
        conn.execute_batch(
            "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, stock INT NOT NULL);
             INSERT INTO item VALUES (1, 'pen', 1), (2, 'ink', 9), (3, 'pad', 12);",
        )
        .unwrap();
        let questions = serde_json::json!([
            {"db_id": "shop", "question": "How many items have more than 4 in stock?", "query": GOLD},
            {"db_id": "shop", "question": "Names of items with fewer than 10 in stock.",
             "query": "SELECT name FROM item WHERE stock < 10"},
        ]);
        std::fs::write(data.join("dev.json"), questions.to_string()).unwrap();
        std::fs::write(
            root.join("benchmarks/toyshop.toml"),
            "name = \"toyshop\"\nformat = \"spider\"\nquestions = [\"toyshop/dev.json\"]\n\
             databases = [\"toyshop/database\"]\ncompare = \"test-suite\"\n",
        )
        .unwrap();
        ToyShop {
            root: root.to_path_buf(),
        }
    }

    /// The folder holding `shop/shop.sqlite` (for `eval --db-dir`).
    pub fn db_dir(&self) -> PathBuf {
        self.root.join("data/toyshop/database")
    }

    pub fn suite_dir(&self) -> PathBuf {
        self.root.join("suite")
    }

    /// `kidbench testsuite build --benchmark toyshop --out <suite>` arguments.
    pub fn build_args(&self) -> Vec<String> {
        [
            "testsuite",
            "build",
            "--benchmark",
            "toyshop",
            "--quiet",
            "--out",
            self.suite_dir().to_str().unwrap(),
            "--benchmarks-dir",
            self.root.join("benchmarks").to_str().unwrap(),
            "--data-dir",
            self.root.join("data").to_str().unwrap(),
            "--databases-dir",
            self.root.join("databases").to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    pub fn build(&self) -> (bool, String, String) {
        let args = self.build_args();
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

fn leftovers(suite: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(suite)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    if suite.with_file_name(".suite.build.lock").exists() {
        v.push(".suite.build.lock".into());
    }
    v
}

#[test]
fn testsuite_manifest_truncated_database_is_named_rebuilt_and_refused_meanwhile() {
    let dir = tempdir();
    let toy = ToyShop::new(dir.path());
    let (ok, stdout, stderr) = toy.build();
    assert!(ok, "{stdout}\n{stderr}");
    let file = toy.suite_dir().join("shop/00.sqlite");
    let original = std::fs::read(&file).expect("the suite has a database");
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(original.len() as u64 / 2).unwrap();
    drop(f);

    // A consumer refuses it, naming the file (before: the database was skipped silently).
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        format!(
            "{}\n",
            serde_json::json!({"id": 1, "db_id": "shop", "gold": GOLD, "pred": GOLD})
        ),
    )
    .unwrap();
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
    ]);
    assert!(!ok, "a truncated suite must be refused\n{stdout}");
    assert!(
        stderr.contains(&file.display().to_string())
            && stderr.contains(&format!(
                "{} bytes where the manifest records {}",
                original.len() / 2,
                original.len()
            )),
        "{stderr}"
    );

    // Before: "complete", not rebuilt.
    let (ok, stdout, stderr) = toy.build();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()) && stderr.contains("rebuilding"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        original,
        "rebuilt identically"
    );
    kidbench_testsuite::verify_suite(&toy.suite_dir()).expect("verifies after the rebuild");

    let (ok, stdout, stderr) = toy.build();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("is up to date"), "{stderr}");
    assert!(!stderr.contains("rebuilding"), "{stderr}");
}

#[test]
fn testsuite_manifest_two_builds_into_one_folder_at_once_both_succeed() {
    // Before: both failed (3 of 3 times) and left `.tmp-*` folders.
    let dir = tempdir();
    let toy = ToyShop::new(dir.path());
    let children: Vec<_> = (0..2)
        .map(|_| {
            kidbench()
                .args(toy.build_args())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn kidbench")
        })
        .collect();
    let mut up_to_date = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        up_to_date += usize::from(stderr.contains("is up to date"));
    }
    assert_eq!(up_to_date, 1, "one builds, the other waits and reuses");
    let m = kidbench_testsuite::verify_suite(&toy.suite_dir()).expect("the suite verifies");
    assert!(m.has_checksums());
    assert!(
        leftovers(&toy.suite_dir()).is_empty(),
        "{:?}",
        leftovers(&toy.suite_dir())
    );
}
