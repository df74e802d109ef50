//! A small run with a LoRA teacher, in bf16, on CPU (tiny presets, synth): the teacher trains
//! only its adapters, the cache holds the PEFT adapter beside the merged model, every model of
//! the run is bf16, and two methods train and are scored.

use std::path::PathBuf;

use kidbench_run::{CommonArgs, RunArgs};

#[test]
fn bf16_lora_teacher_run_trains_and_scores() {
    let home = tempfile::tempdir().unwrap();
    // This test binary has a single test touching the environment.
    std::env::set_var("KIDBENCH_HOME", home.path());
    let out = tempfile::tempdir().unwrap();
    let args = RunArgs {
        methods: vec!["sft,kid".into()],
        teacher: Some("tiny-s".into()),
        student: Some("tiny-s".into()),
        teacher_lora: Some("r=4,targets=q_proj+v_proj+down_proj".into()),
        teacher_steps: Some(3),
        steps: Some(2),
        out: out.path().to_path_buf(),
        max_dev: Some(8),
        gen_batch_size: 8,
        common: CommonArgs {
            databases_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../databases"),
            batch_size: 4,
            max_train: Some(32),
            device: "cpu".into(),
            dtype: Some("bf16".into()),
            vocab_size: 300,
            quiet: true,
            ..CommonArgs::default()
        },
        ..RunArgs::default()
    };
    let s = kidbench_run::run(&args).expect("bf16 run with a LoRA teacher");
    assert_eq!(s.methods.len(), 2);
    for m in &s.methods {
        match &m.result {
            kidbench_run::MethodResult::Ok { steps_done, .. } => assert_eq!(*steps_done, 2),
            kidbench_run::MethodResult::Failed { error } => panic!("{}: {error}", m.label),
        }
    }
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir.join("plan.json")).unwrap()).unwrap();
    let plan = plan.get("plan").unwrap_or(&plan);
    assert_eq!(plan["dtype"], "bf16", "{plan}");
    assert_eq!(plan["teacher"]["lora"]["r"], 4);

    // The teacher's cache: the PEFT adapter (fp32, trained) and the merged model (bf16).
    let teachers = home.path().join("teachers");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&teachers)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let adapter = kidbench_model::checkpoint::read_safetensors_file(
        &dirs[0].join("adapter/adapter_model.safetensors"),
    )
    .unwrap();
    // 2 layers x 3 modules x (A, B)
    assert_eq!(adapter.len(), 12);
    for (n, t) in &adapter {
        assert_eq!(t.kind(), tch::Kind::Float, "{n}");
        if n.ends_with("lora_B.weight") {
            assert!(t.abs().max().double_value(&[]) > 0.0, "{n} did not train");
        }
    }
    let model =
        kidbench_model::checkpoint::read_safetensors_file(&dirs[0].join("model/model.safetensors"))
            .unwrap();
    assert!(!model.is_empty());
    for (n, t) in &model {
        assert_eq!(t.kind(), tch::Kind::BFloat16, "{n}");
        assert!(
            !n.contains("lora"),
            "{n}: adapters are merged, not saved in the model"
        );
    }
    // The same command again reuses that teacher.
    let again = kidbench_run::run(&args).expect("second run");
    assert!(again.teacher_reused);
}
