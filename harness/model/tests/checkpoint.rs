//! Checkpoint save/load: bit-identical round trips and typed errors naming the bad file.
mod common;

use std::path::Path;

use common::*;
use kidbench_model::{checkpoint, ModelError};
use tch::{Device, Kind, Tensor};

fn copy_fixture(name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(f), to.join(f)).unwrap();
    }
}

fn assert_same_params(a: &kidbench_model::Qwen2ForCausalLM, b: &kidbench_model::Qwen2ForCausalLM) {
    let pa = a.named_parameters();
    let pb = b.named_parameters();
    assert_eq!(pa.len(), pb.len());
    for ((na, ta), (nb, tb)) in pa.iter().zip(pb) {
        assert_eq!(na, nb);
        assert_eq!(ta.kind(), tb.kind(), "{na}");
        assert!(ta.equal(tb), "{na} differs after round trip");
    }
}

#[test]
fn save_then_load_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, m) in [("qwen", qwen()), ("llama", llama())] {
        let dir = tmp.path().join(name);
        checkpoint::save(&dir, &m.model).unwrap();
        let back = kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap();
        assert_same_params(&m.model, &back.model);
        assert_eq!(back.model.config().vocab_size, m.model.config().vocab_size);
        let (ids, mask, _) = reference("tiny-qwen2");
        let la = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
        let lb = tch::no_grad(|| back.model.forward(&ids, &mask)).unwrap();
        assert!(la.equal(&lb), "{name}: logits differ after round trip");
        // Tied models save no lm_head.
        let names: Vec<String> = checkpoint::read_safetensors_file(&dir.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names.contains(&"lm_head.weight".to_string()),
            !m.model.config().tie_word_embeddings
        );
        // Saving again over an existing folder replaces it and leaves no temporary folders.
        checkpoint::save(&dir, &back.model).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary folders left: {leftovers:?}"
        );
    }
}

#[test]
fn config_round_trips_and_keeps_unknown_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let m = qwen();
    checkpoint::save(tmp.path().join("c"), &m.model).unwrap();
    let back = checkpoint::load_config(tmp.path().join("c")).unwrap();
    assert_eq!(&back, m.model.config());
    assert!(back.extra.contains_key("architectures"));
    assert_eq!(back.rope_theta(), 10000.0);
}

#[test]
fn truncated_safetensors_is_a_corrupt_checkpoint_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    copy_fixture("tiny-qwen2", &dir);
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap_err();
    match &err {
        ModelError::CorruptCheckpoint { path, .. } => assert_eq!(path, &file),
        other => panic!("expected CorruptCheckpoint, got {other:?}"),
    }
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    // Garbage header too.
    std::fs::write(&file, b"not a safetensors file at all").unwrap();
    assert!(matches!(
        kidbench_model::load(&dir, Device::Cpu, Kind::Float),
        Err(ModelError::CorruptCheckpoint { .. })
    ));
}

#[test]
fn missing_folder_and_missing_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let err = kidbench_model::load(tmp.path().join("nope"), Device::Cpu, Kind::Float).unwrap_err();
    assert!(matches!(err, ModelError::MissingDir { .. }), "{err:?}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    match kidbench_model::load(&empty, Device::Cpu, Kind::Float).unwrap_err() {
        ModelError::MissingFiles { missing, .. } => {
            assert_eq!(missing.len(), 2, "{missing:?}");
            assert!(missing[0].contains("config.json"));
            assert!(missing[1].contains("model.safetensors"));
        }
        other => panic!("expected MissingFiles, got {other:?}"),
    }

    let only_cfg = tmp.path().join("only_cfg");
    copy_fixture("tiny-qwen2", &only_cfg);
    std::fs::remove_file(only_cfg.join("model.safetensors")).unwrap();
    let err = kidbench_model::load(&only_cfg, Device::Cpu, Kind::Float).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingFiles { missing, .. } if missing.len() == 1),
        "{err:?}"
    );
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn unparsable_config_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    copy_fixture("tiny-qwen2", &dir);
    std::fs::write(dir.join("config.json"), "{\"vocab_size\": 256,").unwrap();
    match kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap_err() {
        ModelError::Json { path, .. } => assert_eq!(path, dir.join("config.json")),
        other => panic!("expected Json, got {other:?}"),
    }
    // Well-formed but inconsistent.
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny-qwen2").join("config.json")).unwrap(),
    )
    .unwrap();
    cfg["num_key_value_heads"] = 3.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    assert!(matches!(
        kidbench_model::load(&dir, Device::Cpu, Kind::Float),
        Err(ModelError::InvalidConfig(_))
    ));
}

fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let file = dir.join("model.safetensors");
    let mut tensors = checkpoint::read_safetensors_file(&file).unwrap();
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, &file).unwrap();
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("missing");
    copy_fixture("tiny-qwen2", &dir);
    rewrite_weights(&dir, |t| {
        t.retain(|(n, _)| n != "model.layers.1.mlp.up_proj.weight")
    });
    match kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap_err() {
        ModelError::MissingTensor { name, path } => {
            assert_eq!(name, "model.layers.1.mlp.up_proj.weight");
            assert_eq!(path, dir.join("model.safetensors"));
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }

    let dir = tmp.path().join("shape");
    copy_fixture("tiny-qwen2", &dir);
    rewrite_weights(&dir, |t| {
        for (n, x) in t.iter_mut() {
            if n == "model.layers.0.self_attn.k_proj.bias" {
                *x = Tensor::zeros([7], (Kind::Float, Device::Cpu));
            }
        }
    });
    match kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap_err() {
        ModelError::ShapeMismatch {
            name,
            expected,
            actual,
            ..
        } => {
            assert_eq!(name, "model.layers.0.self_attn.k_proj.bias");
            assert_eq!(expected, vec![32]);
            assert_eq!(actual, vec![7]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn vocab_mismatch_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vocab");
    copy_fixture("tiny-qwen2", &dir);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["vocab_size"] = 300.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    match kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap_err() {
        ModelError::VocabMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, 300);
            assert_eq!(actual, 256);
        }
        other => panic!("expected VocabMismatch, got {other:?}"),
    }
}

#[test]
fn sharded_checkpoints_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sharded");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture("tiny-qwen2").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let tensors =
        checkpoint::read_safetensors_file(&fixture("tiny-qwen2").join("model.safetensors"))
            .unwrap();
    let (a, b): (Vec<_>, Vec<_>) = tensors
        .into_iter()
        .partition(|(n, _)| n.contains("layers.0"));
    let mut map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", &a),
        ("model-00002-of-00002.safetensors", &b),
    ] {
        Tensor::write_safetensors(part, dir.join(shard)).unwrap();
        for (n, _) in part {
            map.insert(n.clone(), shard.into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let sharded = kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap();
    assert_same_params(&qwen().model, &sharded.model);

    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    match kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap_err() {
        ModelError::MissingFiles { missing, .. } => {
            assert_eq!(missing, vec!["model-00002-of-00002.safetensors"])
        }
        other => panic!("expected MissingFiles, got {other:?}"),
    }
}

#[test]
fn bf16_files_convert_to_the_target_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bf16");
    copy_fixture("tiny-qwen2", &dir);
    rewrite_weights(&dir, |t| {
        for (_, x) in t.iter_mut() {
            *x = x.to_kind(Kind::BFloat16);
        }
    });
    let m = kidbench_model::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let orig = qwen();
    for ((n, a), (_, b)) in m
        .model
        .named_parameters()
        .iter()
        .zip(orig.model.named_parameters())
    {
        assert_eq!(a.kind(), Kind::Float, "{n}");
        assert!(
            a.equal(&b.to_kind(Kind::BFloat16).to_kind(Kind::Float)),
            "{n}"
        );
    }
    // And loading as bf16 gives bf16 parameters and still fp32 logits.
    let m16 = kidbench_model::load(&dir, Device::Cpu, Kind::BFloat16).unwrap();
    assert_eq!(m16.model.kind(), Kind::BFloat16);
    let (ids, mask, want) = reference("tiny-qwen2");
    let got = tch::no_grad(|| m16.model.forward(&ids, &mask)).unwrap();
    assert_eq!(got.kind(), Kind::Float);
    let d = max_diff_masked(&got, &want, &mask);
    assert!(d < 0.5, "bf16 logits too far from fp32 reference: {d}");
}
