//! The plan is the identity: what does not change results does not change the hash, what does
//! changes it, equal settings written differently are equal, and each cache key holds exactly
//! what makes its artifact. No training: plans are resolved against the generated synth.

mod common;

use std::path::Path;

use common::{resolve, tiny_args as args, workspace_databases};
use kidbench_run::plan::{method_plans, RunPlan};
use kidbench_run::{Context, RunArgs};

fn plan(a: &RunArgs) -> RunPlan {
    resolve(a).unwrap()
}

#[test]
fn the_plan_hash_is_the_identity_of_a_run_and_its_caches() {
    let base = args(&workspace_databases());
    let p0 = plan(&base);
    assert_eq!(p0.hash().len(), 64);
    assert!(p0.run_id().ends_with(&p0.hash()[..12]), "{}", p0.run_id());

    // Where output goes, quietness, resuming and extra plugin folders are not results.
    let tmp = tempfile::tempdir().unwrap();
    let mut a = base.clone();
    a.out = "elsewhere".into();
    a.resume = true;
    a.common.quiet = false;
    a.plugin_dirs = vec![tmp.path().to_path_buf()];
    assert_eq!(plan(&a).hash(), p0.hash());

    // A parameter at its default, or written another way, is the same method.
    let kid = |spec: &str| {
        let mut a = base.clone();
        a.methods = vec![spec.into()];
        plan(&a)
    };
    let k = kid("kid");
    assert_eq!(kid("kid:alpha=0.2").hash(), k.hash());
    assert_eq!(kid("kid:alpha=0.20,strategy=random").hash(), k.hash());
    assert_eq!(kid("kid:alpha=0.30").hash(), kid("kid:alpha=0.3").hash());
    assert_ne!(kid("kid:alpha=0.3").hash(), k.hash());
    assert!(k.methods[0].changed.is_empty());
    assert_eq!(k.methods[0].params["alpha"], "0.2");
    assert_eq!(kid("kid:mask_only").methods[0].changed["mask_only"], "true");

    // A students' setting changes the run, not the teacher, not the tokenizer.
    let mut a = base.clone();
    a.common.micro_batch_size = Some(2);
    let p = plan(&a);
    assert_ne!(p.hash(), p0.hash());
    assert_eq!(p.teacher.key, p0.teacher.key);
    assert_eq!(p.tokenizer.key, p0.tokenizer.key);
    // ... and the students' seed neither: the teacher has its own.
    let mut a = base.clone();
    a.common.seed = 7;
    let p = plan(&a);
    assert_ne!(p.hash(), p0.hash());
    assert_eq!(p.teacher.key, p0.teacher.key);
    // The students' warm-up: a twentieth of the steps by default, else as given; the
    // teacher's schedule is its own.
    assert_eq!(
        p0.student.train.warmup_steps,
        (p0.student.train.steps / 20).max(1)
    );
    let mut a = base.clone();
    a.warmup_steps = Some(0);
    let p = plan(&a);
    assert_eq!(p.student.train.warmup_steps, 0);
    assert_ne!(p.hash(), p0.hash());
    assert_eq!(p.teacher.key, p0.teacher.key);
    // A teacher's setting changes the teacher.
    let mut a = base.clone();
    a.teacher_steps = Some(5);
    assert_ne!(plan(&a).teacher.key, p0.teacher.key);
    // Another benchmark with the same train split (synth-syn: synth's train, other dev
    // questions) trains the same teacher and tokenizer, and scores other questions.
    let mut a = base.clone();
    a.common.benchmark = "synth-syn".into();
    let p = plan(&a);
    assert_ne!(p.hash(), p0.hash());
    assert_ne!(p.data.dev, p0.data.dev);
    assert_eq!(p.data.train, p0.data.train);
    assert_eq!(p.teacher.key, p0.teacher.key);
    assert_eq!(p.tokenizer.key, p0.tokenizer.key);
    assert_ne!(p.teacher_score_key(), p0.teacher_score_key());
    // synth-tv reports on synth dev after training on synth-val's train split: synth-val's
    // teacher and tokenizer, synth's dev questions.
    let mut a = base.clone();
    a.common.benchmark = "synth-val".into();
    let val = plan(&a);
    a.common.benchmark = "synth-tv".into();
    let tv = plan(&a);
    assert_ne!(
        val.data.train, p0.data.train,
        "train without the validation domains"
    );
    assert_eq!(tv.data.train, val.data.train);
    assert_eq!(tv.teacher.key, val.teacher.key);
    assert_eq!(tv.tokenizer.key, val.tokenizer.key);
    assert_eq!(tv.data.dev, p0.data.dev, "synth's dev questions");
    assert_ne!(tv.data.dev, val.data.dev);
    // The dev limit changes what is scored, not what is trained.
    let mut a = base.clone();
    a.max_dev = Some(6);
    let p = plan(&a);
    assert_ne!(p.hash(), p0.hash());
    assert_eq!(p.teacher.key, p0.teacher.key);
    assert_ne!(p.teacher_score_key(), p0.teacher_score_key());

    // The plan survives its own file.
    let text = serde_json::to_string(&p0).unwrap();
    let back: RunPlan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p0);
    assert_eq!(back.hash(), p0.hash());
}

#[test]
fn the_same_benchmark_in_another_folder_is_the_same_data() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("databases");
    copy_dir(&workspace_databases().join("synth"), &copy.join("synth"));
    let a = plan(&args(&workspace_databases()));
    let b = plan(&args(&copy));
    assert_eq!(a.data, b.data);
    assert_eq!(a.teacher.key, b.teacher.key);
    assert_eq!(a.tokenizer.key, b.tokenizer.key);
}

#[test]
fn settings_that_cannot_train_are_refused_before_any_work() {
    let base = args(&workspace_databases());
    let reg = kidbench_run::plugins(&[]).unwrap();
    let ctx = Context::for_run(&base).unwrap();
    let refused = |a: &RunArgs, want: &str| {
        let methods = method_plans(&reg, &a.methods).unwrap();
        let e = format!("{:#}", RunPlan::resolve(a, &ctx, methods).unwrap_err());
        assert!(e.contains(want), "{want} not in: {e}");
    };
    let mut a = base.clone();
    a.steps = Some(0);
    refused(&a, "--steps 0");
    let mut a = base.clone();
    a.lr = Some(f64::NAN);
    refused(&a, "--lr");
    let mut a = base.clone();
    a.lr = Some(-1.0);
    refused(&a, "--lr -1");
    let mut a = base.clone();
    a.common.batch_size = 32;
    a.common.micro_batch_size = Some(64);
    refused(&a, "--micro-batch-size 64 is larger than --batch-size 32");
    let mut a = base.clone();
    a.common.batch_size = 0;
    refused(&a, "--batch-size 0");
    let mut a = base.clone();
    a.teacher_steps = Some(0);
    refused(&a, "untrained teacher");
    let mut a = base.clone();
    a.steps = Some(10);
    a.warmup_steps = Some(11);
    refused(&a, "--warmup-steps 11 is more than the 10 training steps");
    let mut a = base.clone();
    a.warmup_steps = Some(5);
    a.budget = Some(kidbench_run::args::Budget::Time(60.0));
    refused(&a, "--warmup-steps with --budget time=");
    // a parameter twice, a method twice after canonical values
    let e = method_plans(&reg, &["kid:alpha=0.3,alpha=0.4".into()]).unwrap_err();
    assert!(e.to_string().contains("given twice"), "{e}");
    let e = method_plans(&reg, &["kid:alpha=0.30".into(), "kid:alpha=0.3".into()]).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    let e = kidbench_run::plugins(&["/nonexistent-plugins".into()]).unwrap_err();
    assert!(e.to_string().contains("/nonexistent-plugins"), "{e}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
