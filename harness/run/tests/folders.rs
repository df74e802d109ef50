//! Model folders as teacher and student: `--teacher DIR` (a path), `--teacher-dir DIR` alone,
//! and the errors: a from-scratch preset with a folder flag, a folder given twice, a missing
//! folder or files (with the command that fetches a known preset), an unsupported
//! architecture. A folder is identified in the plan by its files' SHA-256, not by its path.
//! No training: plans are resolved against the generated synth, with a tiny random LLaMA
//! folder written here.

mod common;

use std::path::Path;

use common::{resolve as plan, workspace_databases};
use kidbench_model::Config;
use kidbench_run::plan::ModelSource;
use kidbench_run::{CommonArgs, RunArgs};
use kidbench_tokenizer::SqlTokenizer;
use sha2::{Digest, Sha256};

/// A tiny random LLaMA checkpoint with a trained BPE tokenizer, in `dir` (HF layout).
fn tiny_folder(dir: &Path) {
    let texts = [
        "select name from singer where age > 3",
        "how many singers are there ?",
        "select count ( * ) from concert",
    ];
    let corpus: Vec<&str> = texts.iter().cycle().take(60).copied().collect();
    let tok = SqlTokenizer::train(corpus, 300).expect("train a tokenizer");
    let cfg = Config {
        vocab_size: tok.vocab_size() as i64,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        num_key_value_heads: Some(1),
        max_position_embeddings: 8192,
        tie_word_embeddings: true,
        attention_bias: Some(false),
        model_type: Some("llama".into()),
        eos_token_id: Some(kidbench_model::TokenIds::One(tok.eos_id())),
        ..Config::default()
    };
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let model = kidbench_model::Qwen2ForCausalLM::new(&vs.root(), &cfg).expect("model");
    kidbench_model::save(dir, &model).expect("save the model");
    tok.save(dir).expect("save the tokenizer");
}

fn args(databases: &Path) -> RunArgs {
    RunArgs {
        max_dev: Some(4),
        common: CommonArgs {
            databases_dir: databases.to_path_buf(),
            max_train: Some(8),
            device: "cpu".into(),
            quiet: true,
            ..CommonArgs::default()
        },
        ..RunArgs::default()
    }
}

fn err(a: &RunArgs) -> String {
    format!("{:#}", plan(a).expect_err("refused"))
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read")))
}

fn local_files(s: &ModelSource) -> &std::collections::BTreeMap<String, String> {
    match s {
        ModelSource::Local { files } => files,
        other => panic!("not a local folder: {other:?}"),
    }
}

#[test]
fn a_folder_path_is_a_teacher_and_a_student_identified_by_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my-llama");
    tiny_folder(&dir);
    let mut a = args(&workspace_databases());
    a.teacher = Some(dir.display().to_string());
    a.student = Some(dir.display().to_string());
    let p = plan(&a).expect("plan");
    assert_eq!(p.teacher.preset, "my-llama");
    assert_eq!(p.student.preset, "my-llama");
    let files = local_files(&p.teacher.source);
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert_eq!(files.get(f), Some(&sha256(&dir.join(f))), "{f}: {files:?}");
    }
    assert_eq!(p.tokenizer.source, "hf:my-llama");
    assert!(
        p.run_id().starts_with("synth-my-llama-my-llama-"),
        "{}",
        p.run_id()
    );

    // --teacher-dir alone names the teacher folder too (the student stays tiny-s).
    let mut b = args(&workspace_databases());
    b.teacher_dir = Some(dir.clone());
    let pb = plan(&b).expect("plan");
    assert_eq!(pb.teacher.preset, "my-llama");
    assert_eq!(local_files(&pb.teacher.source), files);
    assert_eq!(pb.student.preset, "tiny-s");

    // The same files in another folder of the same name are the same model ...
    let copy = tmp.path().join("elsewhere").join("my-llama");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let mut c = a.clone();
    c.teacher = Some(copy.display().to_string());
    c.student = Some(copy.display().to_string());
    assert_eq!(plan(&c).expect("plan").hash(), p.hash());
    // ... and a changed file is another one.
    let cfg_path = copy.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["rms_norm_eps"] = serde_json::json!(1e-5);
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let pc = plan(&c).expect("plan");
    assert_ne!(pc.teacher.key, p.teacher.key);
    assert_ne!(pc.hash(), p.hash());
}

#[test]
fn folder_flags_that_cannot_be_honoured_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my-llama");
    tiny_folder(&dir);
    let base = args(&workspace_databases());

    // A from-scratch preset has no folder: the folder is never silently ignored.
    let mut a = base.clone();
    a.teacher = Some("tiny-m".into());
    a.teacher_dir = Some(dir.clone());
    let e = err(&a);
    assert!(
        e.contains("--teacher tiny-m") && e.contains("--teacher-dir") && e.contains("from-scratch"),
        "{e}"
    );
    let mut a = base.clone();
    a.student = Some("tiny-s".into());
    a.student_dir = Some(dir.clone());
    let e = err(&a);
    assert!(
        e.contains("--student tiny-s") && e.contains("--student-dir"),
        "{e}"
    );

    // A folder given twice.
    let mut a = base.clone();
    a.teacher = Some(dir.display().to_string());
    a.teacher_dir = Some(tmp.path().join("other"));
    let e = err(&a);
    assert!(e.contains("give the folder once"), "{e}");

    // A missing folder named like a known preset: the folder, its files, the fetch command.
    let mut a = base.clone();
    let missing = tmp.path().join("models").join("smollm2-135m");
    a.teacher = Some(missing.display().to_string());
    let e = err(&a);
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(e.contains(f), "{e} lacks {f}");
    }
    assert!(e.contains("scripts/models.sh smollm2-135m"), "{e}");

    // A folder lacking its tokenizer: only that file is named; no fetch command for an
    // unknown name.
    let partial = tmp.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(dir.join(f), partial.join(f)).unwrap();
    }
    let mut a = base.clone();
    a.student_dir = Some(partial.clone());
    let e = err(&a);
    assert!(
        e.contains("--student-dir") && e.contains("lacks tokenizer.json"),
        "{e}"
    );
    assert!(
        !e.contains("config.json,") && !e.contains("models.sh"),
        "{e}"
    );

    // An architecture kidbench does not implement.
    let gpt2 = tmp.path().join("gpt2");
    std::fs::create_dir_all(&gpt2).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), gpt2.join(e.file_name())).unwrap();
    }
    std::fs::write(
        gpt2.join("config.json"),
        r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 300}"#,
    )
    .unwrap();
    let mut a = base.clone();
    a.teacher = Some(gpt2.display().to_string());
    let e = err(&a);
    assert!(
        e.contains("'gpt2'") && e.contains("GPT2LMHeadModel") && e.contains("Qwen2 and LLaMA"),
        "{e}"
    );

    // A name that is neither a preset nor a folder lists both kinds.
    let mut a = base.clone();
    a.teacher = Some("no-such-model".into());
    let e = err(&a);
    assert!(
        e.contains("unknown model preset 'no-such-model'")
            && e.contains("local Hugging Face model folder"),
        "{e}"
    );
}
