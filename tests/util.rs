//! Shared helpers: the binary under test, the Spider data folder, fresh temp dirs.

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn kidbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kidbench"))
}

/// Runs kidbench with `args`; returns (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = kidbench()
        .args(args)
        .output()
        .expect("kidbench binary runs");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The folder holding `spider/`: $KIDBENCH_DATA or `../shared/data` beside the checkout.
/// Fails the test (never skips it) when the data is absent.
pub fn data_dir() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("KIDBENCH_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")])
        .collect();
    candidates
        .iter()
        .find(|p| p.join("spider/dev.json").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("Spider data not found: looked for spider/dev.json under {candidates:?}; set KIDBENCH_DATA")
        })
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
