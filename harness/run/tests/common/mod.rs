//! What the plan tests of kidbench-run share: the workspace's generated databases, a tiny run's
//! arguments and plan resolution as `kidbench run` does it.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

use kidbench_run::plan::{method_plans, RunPlan};
use kidbench_run::{CommonArgs, Context, RunArgs};

pub fn workspace_databases() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../databases")
}

/// tiny-s teacher and student, 40 train and 12 dev questions, vocabulary 300, on the CPU.
pub fn tiny_args(databases: &Path) -> RunArgs {
    RunArgs {
        teacher: Some("tiny-s".into()),
        student: Some("tiny-s".into()),
        max_dev: Some(12),
        common: CommonArgs {
            databases_dir: databases.to_path_buf(),
            max_train: Some(40),
            device: "cpu".into(),
            vocab_size: 300,
            quiet: true,
            ..CommonArgs::default()
        },
        ..RunArgs::default()
    }
}

/// `a` resolved into its plan: plugins, methods, context, then the plan itself.
pub fn resolve(a: &RunArgs) -> anyhow::Result<RunPlan> {
    let reg = kidbench_run::plugins(&a.plugin_dirs)?;
    let methods = method_plans(&reg, &a.methods)?;
    let ctx = Context::for_run(a)?;
    RunPlan::resolve(a, &ctx, methods)
}
