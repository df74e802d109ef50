//! Students by layer subset: the subset folder's tensors are the parent's kept layers
//! (renumbered, bytes equal), its config is the parent's with fewer layers, its other files are
//! copied, and its forward is the parent's forward with the dropped layers skipped. A layer
//! whose `o_proj` and `down_proj` are zero adds nothing to the residual stream, so the parent
//! with those two weights zeroed in the dropped layers IS the parent with them skipped: the
//! reference is computed by the parent model itself, independently of the subset code.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use kidbench_model::checkpoint::read_safetensors_file;
use kidbench_model::subset::{write_layer_subset, SUBSET_FILE};
use kidbench_model::{Config, ModelError};
use tch::{Device, Kind, Tensor};

fn qwen_cfg() -> Config {
    Config {
        vocab_size: 40,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 5,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        initializer_range: Some(0.2),
        ..Config::default()
    }
}

fn llama_cfg() -> Config {
    Config {
        model_type: Some("llama".into()),
        tie_word_embeddings: true,
        num_key_value_heads: Some(1),
        rope_theta: Some(100000.0),
        ..qwen_cfg()
    }
}

/// A parent checkpoint folder with a tokenizer and a generation config beside the weights.
fn parent(dir: &Path, cfg: &Config, seed: i64) {
    let m = random_model(cfg, seed);
    kidbench_model::save(dir, &m.model).expect("save parent");
    std::fs::write(dir.join("tokenizer.json"), b"{\"model\": \"a tokenizer\"}").unwrap();
    std::fs::write(dir.join("generation_config.json"), b"{\"eos_token_id\": 2}").unwrap();
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    read_safetensors_file(path)
        .expect("read")
        .into_iter()
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check_subset(cfg: &Config, keep: &[i64]) {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("parent"), tmp.path().join("subset"));
    parent(&p, cfg, 3);
    write_layer_subset(&p, keep, &s).expect("subset");

    // Tensors: every non-layer tensor, and layer k of the subset is layer keep[k] of the parent.
    let pt = tensors(&p.join("model.safetensors"));
    let st = tensors(&s.join("model.safetensors"));
    let per_layer = pt
        .keys()
        .filter(|n| n.starts_with("model.layers.0."))
        .count();
    let other = pt
        .keys()
        .filter(|n| !n.starts_with("model.layers."))
        .count();
    assert_eq!(st.len(), other + keep.len() * per_layer);
    for (name, t) in &st {
        let source = match name.strip_prefix("model.layers.") {
            Some(rest) => {
                let (k, tail) = rest.split_once('.').unwrap();
                let k: usize = k.parse().unwrap();
                assert!(k < keep.len(), "{name}");
                format!("model.layers.{}.{tail}", keep[k])
            }
            None => name.clone(),
        };
        let want = &pt[&source];
        assert_eq!(t.kind(), want.kind(), "{name}");
        assert!(t.equal(want), "{name} differs from the parent's {source}");
    }

    // Config: the parent's, with num_hidden_layers = the kept count.
    let mut pc = json(&p.join("config.json"));
    let sc = json(&s.join("config.json"));
    assert_eq!(sc["num_hidden_layers"], keep.len());
    pc["num_hidden_layers"] = keep.len().into();
    assert_eq!(sc, pc);
    let loaded = kidbench_model::load_config(&s).expect("valid config");
    assert_eq!(loaded.num_hidden_layers, keep.len() as i64);

    // Other files copied; provenance recorded.
    for f in ["tokenizer.json", "generation_config.json"] {
        assert_eq!(
            std::fs::read(s.join(f)).unwrap(),
            std::fs::read(p.join(f)).unwrap(),
            "{f}"
        );
    }
    let prov = json(&s.join(SUBSET_FILE));
    assert_eq!(prov["layers"], serde_json::json!(keep));
    assert_eq!(prov["parent_layers"], cfg.num_hidden_layers);

    // Forward: the parent with the dropped layers made identities.
    let sub = kidbench_model::load(&s, Device::Cpu, Kind::Float).expect("load subset");
    let par = kidbench_model::load(&p, Device::Cpu, Kind::Float).expect("load parent");
    tch::no_grad(|| {
        for (name, t) in par.model.named_parameters() {
            let layer: Option<i64> = name
                .strip_prefix("model.layers.")
                .and_then(|r| r.split_once('.'))
                .and_then(|(k, _)| k.parse().ok());
            let dropped = layer.is_some_and(|k| !keep.contains(&k));
            if dropped
                && (name.ends_with("self_attn.o_proj.weight")
                    || name.ends_with("mlp.down_proj.weight"))
            {
                let _ = t.shallow_clone().zero_();
            }
        }
    });
    let ids = Tensor::from_slice(&[1i64, 7, 9, 30, 4, 0, 0, 5, 6, 39, 2, 3]).view([2, 6]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1]).view([2, 6]);
    let a = tch::no_grad(|| sub.model.forward(&ids, &mask)).unwrap();
    let b = tch::no_grad(|| par.model.forward(&ids, &mask)).unwrap();
    let d = max_diff_masked(&a, &b, &mask);
    assert!(
        d < 1e-5,
        "subset forward differs from the parent's with layers skipped: {d}"
    );
    // ... and the dropped layers did matter before they were skipped.
    let full = kidbench_model::load(&p, Device::Cpu, Kind::Float).unwrap();
    let c = tch::no_grad(|| full.model.forward(&ids, &mask)).unwrap();
    assert!(max_diff_masked(&a, &c, &mask) > 1e-3);
}

#[test]
fn qwen2_subset_keeps_the_parents_layers() {
    check_subset(&qwen_cfg(), &[0, 2, 4]);
}

#[test]
fn llama_subset_keeps_the_parents_layers() {
    // tied embeddings, GQA 4/1, no biases; an irregular subset
    check_subset(&llama_cfg(), &[0, 1, 4]);
}

#[test]
fn bad_subsets_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("parent"), tmp.path().join("subset"));
    parent(&p, &qwen_cfg(), 1);
    for keep in [vec![], vec![0, 5], vec![3, 1]] {
        let e = write_layer_subset(&p, &keep, &s).unwrap_err();
        assert!(matches!(e, ModelError::BadInput(_)), "{keep:?}: {e}");
        assert!(!s.exists(), "{keep:?} left a folder");
    }
    let e = write_layer_subset(&tmp.path().join("nope"), &[0], &s).unwrap_err();
    assert!(matches!(e, ModelError::MissingDir { .. }), "{e}");
}
