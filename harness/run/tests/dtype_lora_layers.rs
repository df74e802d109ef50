//! `--dtype`, `--teacher-lora` and `--student-layers` in the plan: a non-default dtype and a
//! LoRA teacher change the plan hash and the teacher's cache key, a default run's plan does not
//! mention them (its hash is what it was before these flags), and bad values are errors naming
//! the flag. No training: plans are resolved against the generated synth. A small run with all
//! three trains in `bf16_lora_teacher_run_trains_and_scores` (tiny presets).

mod common;

use common::{resolve as plan, tiny_args as args, workspace_databases};
use kidbench_run::plan::LoraPlan;
use kidbench_run::RunArgs;

#[test]
fn dtype_and_lora_are_part_of_the_plan() {
    let base = args(&workspace_databases());
    let p0 = plan(&base).unwrap();
    let text = serde_json::to_string(&p0).unwrap();
    assert!(!text.contains("\"dtype\""), "a default plan names no dtype");
    assert!(!text.contains("\"lora\""), "a default plan names no LoRA");

    // fp32 on CPU is the default: the same plan.
    let mut a = base.clone();
    a.common.dtype = Some("FP32".into());
    assert_eq!(plan(&a).unwrap().hash(), p0.hash());

    let mut a = base.clone();
    a.common.dtype = Some("bf16".into());
    let p = plan(&a).unwrap();
    assert_eq!(p.dtype.as_deref(), Some("bf16"));
    assert_ne!(p.hash(), p0.hash());
    assert_ne!(
        p.teacher.key, p0.teacher.key,
        "a bf16 teacher is another teacher"
    );
    assert_ne!(p.teacher_score_key(), p0.teacher_score_key());

    let mut a = base.clone();
    a.teacher_lora = Some("4".into());
    let p = plan(&a).unwrap();
    assert_eq!(
        p.teacher.lora,
        Some(LoraPlan {
            r: 4,
            alpha: 8.0,
            targets: kidbench_model::lora::ALL_TARGETS
                .iter()
                .map(|t| t.to_string())
                .collect(),
        })
    );
    assert_ne!(p.teacher.key, p0.teacher.key);
    assert_eq!(p.teacher.train.lr, kidbench_run::plan::LORA_DEFAULT_LR);
    // the same adapter written another way is the same teacher
    let mut b = base.clone();
    b.teacher_lora =
        Some("r=4, alpha=8,targets=up_proj+q_proj+k_proj+v_proj+o_proj+gate_proj+down_proj".into());
    assert_eq!(plan(&b).unwrap().teacher.key, p.teacher.key);
    // an explicit --teacher-lr wins
    a.teacher_lr = Some(1e-3);
    assert_eq!(plan(&a).unwrap().teacher.train.lr, 1e-3);
}

#[test]
fn bad_values_name_their_flag() {
    let base = args(&workspace_databases());
    let err = |a: &RunArgs| format!("{:#}", plan(a).unwrap_err());

    let mut a = base.clone();
    a.common.dtype = Some("fp16".into());
    let e = err(&a);
    assert!(e.contains("--dtype fp16") && e.contains("bf16"), "{e}");

    for (spec, want) in [
        ("0", "positive integer"),
        ("r=8,alpha=-1", "alpha must be positive"),
        ("r=8,targets=qkv", "unknown target module 'qkv'"),
        ("alpha=4", "give the rank"),
        ("r=4,dropout=0.1", "unknown key 'dropout'"),
    ] {
        let mut a = base.clone();
        a.teacher_lora = Some(spec.into());
        let e = err(&a);
        assert!(
            e.contains("--teacher-lora") && e.contains(want),
            "{spec}: {e}"
        );
    }

    // a from-scratch student has no pretrained layers to keep
    let mut a = base.clone();
    a.student_layers = Some("every:2".into());
    let e = err(&a);
    assert!(
        e.contains("--student-layers every:2") && e.contains("from scratch"),
        "{e}"
    );
    // out of range for a real folder (3 layers)
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let cfg = kidbench_model::Config {
        num_hidden_layers: 3,
        ..kidbench_model::Config::default()
    };
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let m = kidbench_model::Qwen2ForCausalLM::new(&vs.root(), &cfg).unwrap();
    kidbench_model::save(&dir, &m).unwrap();
    let local = kidbench_train::presets::Resolved::Local {
        spec: None,
        name: "tiny".into(),
        dir,
    };
    let e = format!(
        "{:#}",
        kidbench_train::subset::apply(local, "0,3").unwrap_err()
    );
    assert!(
        e.contains("--student-layers 0,3") && e.contains("layer 3 is out of range"),
        "{e}"
    );
    assert!(e.contains("3 layers"), "{e}");
    for (spec, want) in [("", "empty"), ("every:0", "K >= 1"), ("1,x", "'x'")] {
        let mut a = base.clone();
        a.student_layers = Some(spec.into());
        let e = err(&a);
        assert!(
            e.contains("--student-layers") && e.contains(want),
            "{spec}: {e}"
        );
    }
}

#[test]
fn a_sweep_file_sets_dtype_lora_and_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.toml");
    std::fs::write(
        &path,
        r#"name = "bf16"
[run]
teacher = "smollm2-135m"
student = "smollm2-135m"
dtype = "bf16"
teacher-lora = "r=8,targets=q_proj+v_proj"
student_layers = "every:3"
[grid]
methods = ["sft", "kid"]
seeds = [1]
"#,
    )
    .unwrap();
    let f = kidbench_run::sweep::SweepFile::read(&path, false).expect("sweep file");
    assert_eq!(f.cells.len(), 2);
    for c in &f.cells {
        assert_eq!(c.args.common.dtype.as_deref(), Some("bf16"));
        assert_eq!(
            c.args.teacher_lora.as_deref(),
            Some("r=8,targets=q_proj+v_proj")
        );
        assert_eq!(c.args.student_layers.as_deref(), Some("every:3"));
    }
}
