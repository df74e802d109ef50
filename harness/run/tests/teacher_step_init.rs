//! `--student-from-teacher-step N`: the student init is the teacher's own run stopped at step N
//! (its training log is the teacher's up to N), and the teacher, continued from it instead of
//! trained again from step 0, is bit for bit the teacher trained straight through.

mod common;

use std::path::{Path, PathBuf};

use common::{tiny_args, workspace_databases};
use kidbench_run::RunArgs;

fn only_dir(parent: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// (step, loss, lr, grad_norm) of each line of a training log: what does not depend on timing.
fn log(dir: &Path) -> Vec<(u64, String, String, String)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].to_string(),
                v["lr"].to_string(),
                v["grad_norm"].to_string(),
            )
        })
        .collect()
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("teacher.json")).unwrap()).unwrap()
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model/model.safetensors")).unwrap()
}

#[test]
fn the_init_is_the_teachers_run_at_that_step_and_the_teacher_continues_from_it() {
    let out = tempfile::tempdir().unwrap();
    let mut a: RunArgs = tiny_args(&workspace_databases());
    a.teacher_steps = Some(24);
    a.steps = Some(2);
    a.out = out.path().to_path_buf();
    a.gen_batch_size = 8;
    a.common.batch_size = 4;

    // the teacher trained straight through, in a cache of its own
    // (this test binary has a single test touching the environment)
    let straight = tempfile::tempdir().unwrap();
    std::env::set_var("KIDBENCH_HOME", straight.path());
    kidbench_run::run(&a).expect("the plain run");
    let t0 = only_dir(&straight.path().join("teachers"));
    assert!(report(&t0)["resumed_from"].is_null());

    // the init at step 10 first, then the teacher continued from it, in a fresh cache
    let seeded = tempfile::tempdir().unwrap();
    std::env::set_var("KIDBENCH_HOME", seeded.path());
    let mut b = a.clone();
    b.student_from_teacher_step = Some(10);
    let s = kidbench_run::run(&b).expect("the run with the init from the teacher's step 10");
    let t1 = only_dir(&seeded.path().join("teachers"));
    let init = only_dir(&seeded.path().join("student-inits"));
    assert_eq!(t0.file_name(), t1.file_name(), "the same teacher key");
    assert_eq!(
        report(&t1)["resumed_from"],
        10,
        "the teacher skipped the init's steps"
    );
    assert_eq!(report(&init)["steps_done"], 10);
    assert!(
        weights(&t0) == weights(&t1),
        "the continued teacher is the straight one"
    );
    assert!(weights(&init) != weights(&t1));
    let (full, early) = (log(&t0), log(&init));
    assert_eq!(full.last().unwrap().0, 24);
    assert_eq!(early.last().unwrap().0, 10);
    let head: Vec<_> = full.iter().filter(|l| l.0 <= 10).cloned().collect();
    assert_eq!(early, head, "the init's log is the teacher's up to step 10");
    assert_eq!(
        log(&t1),
        full,
        "the continued teacher's log is the whole run's"
    );
    let md = std::fs::read_to_string(s.dir.join("results.md")).unwrap();
    assert!(
        md.contains("the teacher's own run at step 10 of 24"),
        "{md}"
    );

    // a second run reuses both
    let again = kidbench_run::run(&b).expect("the cached run");
    assert!(again.teacher_reused);

    // the student must be the teacher's model, at a step inside its run
    let mut c = b.clone();
    c.student = Some("tiny-m".into());
    let e = format!("{:#}", kidbench_run::run(&c).unwrap_err());
    assert!(
        e.contains("--student-from-teacher-step 10") && e.contains("tiny-m"),
        "{e}"
    );
    for step in [0, 24, 30] {
        let mut c = b.clone();
        c.student_from_teacher_step = Some(step);
        let e = format!("{:#}", kidbench_run::run(&c).unwrap_err());
        assert!(
            e.contains(&format!("--student-from-teacher-step {step}")) && e.contains("24"),
            "{e}"
        );
    }
}
