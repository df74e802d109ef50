//! Where tests find Spider, and what they do when it is absent. For the test code of every
//! crate (the library itself never reads Spider from a fixed place).
//!
//! Spider cannot be downloaded by the project: a fresh clone on another machine has no
//! `../shared/data`. A test that needs it calls [`spider`]: with the data, the folder; without
//! it, `None` after saying loudly (once per test binary, on the terminal, past the test
//! harness's output capture) that Spider tests are skipped and how to enable them. Under
//! `CI=true` (CI has the data) a missing Spider is a failure, never a skip. `KIDBENCH_DATA` set
//! to a folder without Spider is a failure too: the user asked for that folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Whether this runs under CI (`CI=true` or `CI=1`, as CI services set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn is_spider(dir: &Path) -> bool {
    dir.join("dev.json").is_file() && dir.join("database").is_dir()
}

/// The Spider folder (holding `dev.json`, `train_spider.json`, `tables.json`, `database/`):
/// `$KIDBENCH_DATA/spider` (or `$KIDBENCH_DATA` itself), else `shared/data/spider` in the
/// first ancestor of the checkout that has it. `None` when absent (see the module).
/// `test` names the caller in the skip line.
pub fn spider(test: &str) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KIDBENCH_DATA") {
        let d = PathBuf::from(d);
        for c in [d.join("spider"), d.clone()] {
            if is_spider(&c) {
                return Some(c);
            }
        }
        panic!(
            "KIDBENCH_DATA={} holds no Spider (expected spider/dev.json and spider/database/ in it)",
            d.display()
        );
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(found) = here
        .ancestors()
        .map(|a| a.join("shared/data/spider"))
        .find(|c| is_spider(c))
    {
        return Some(found);
    }
    let looked = here
        .ancestors()
        .nth(2)
        .unwrap_or(here)
        .join("../shared/data/spider");
    if in_ci() {
        panic!(
            "Spider data not found (looked in shared/data/spider above {}); under CI=true a \
             test that needs Spider fails instead of skipping: provide the data or set KIDBENCH_DATA",
            here.display()
        );
    }
    static BANNER: Once = Once::new();
    let mut err = std::io::stderr().lock();
    BANNER.call_once(|| {
        let _ = writeln!(
            err,
            "\n==== SKIPPING the tests that need Spider: no spider/ in $KIDBENCH_DATA or {} ====\n\
             ==== Put Spider 1.0 there or set KIDBENCH_DATA to the folder holding spider/ to run them. ====",
            looked.display()
        );
    });
    let _ = writeln!(err, "==== skipped (no Spider): {test}");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spider_folder_needs_dev_json_and_databases() {
        let dir = std::env::temp_dir().join(format!("kidbench-testdata-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_spider(&dir));
        std::fs::write(dir.join("dev.json"), "[]").unwrap();
        assert!(!is_spider(&dir), "dev.json alone is not Spider");
        std::fs::create_dir_all(dir.join("database")).unwrap();
        assert!(is_spider(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
