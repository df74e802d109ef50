//! The plugin cdylibs for the integration tests, built on first use.
//!
//! `cargo test` builds workspace members as rlibs only (their cdylibs are not produced), so the
//! first test to need them runs `cargo build -p <plugins> -p <fixtures>` into the same target dir
//! (cheap when they are fresh). Set `KIDBENCH_SKIP_PLUGIN_BUILD=1` to use what is already built.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const PLUGINS: [&str; 7] = ["sft", "fkd", "rkd", "fdistill", "imitkd", "gkd", "kid"];
/// Every crate under plugins/broken/ (`kidbench-broken-<name>`, library `kidbench_broken_<name>`).
pub const FIXTURES: [&str; 14] = [
    "wrong_abi",
    "wrong_torch",
    "panics",
    "nan",
    "no_entry",
    "worse_rkd",
    "slow_rkd",
    "micro_mean",
    "reads_padding",
    "swapped_kl",
    "unstable_kl",
    "undeclared_teacher",
    "lenient_params",
    "detached",
];

/// `target/<profile>` of this test binary (`target/<profile>/deps/<test>-*`).
pub fn out_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The folder holding the plugin and fixture cdylibs, built once per test binary.
pub fn built() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = out_dir();
        if std::env::var_os("KIDBENCH_SKIP_PLUGIN_BUILD").is_none() {
            let target = dir.parent().expect("target dir");
            let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.arg("build").arg("--target-dir").arg(target);
            if profile != "debug" {
                cmd.args(["--profile", profile]);
            }
            for p in PLUGINS {
                cmd.args(["-p", &format!("kidbench-plugin-{p}")]);
            }
            for b in FIXTURES {
                cmd.args(["-p", &format!("kidbench-broken-{}", b.replace('_', "-"))]);
            }
            let status = cmd
                .status()
                .expect("running cargo build for the plugin cdylibs");
            assert!(status.success(), "cargo build of the plugin cdylibs failed");
        }
        dir
    })
}

/// `dir/lib<stem>.so` (the platform's names).
pub fn so(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}
