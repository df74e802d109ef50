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

/// The folder holding `spider/`, or `None`: the test then returns (`kidbench_sql::testdata`
/// says loudly that it skipped, and fails instead under `CI=true` or with a wrong
/// `KIDBENCH_DATA`).
pub fn data_dir(test: &str) -> Option<PathBuf> {
    let spider = kidbench_sql::testdata::spider(test)?;
    Some(spider.parent().expect("spider/ has a parent").to_path_buf())
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
