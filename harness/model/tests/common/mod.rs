//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use kidbench_model::{Config, LoadedModel};
use tch::{nn, Device, Kind, Tensor};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The tiny Qwen2 fixture (GQA, QKV bias, untied), fp32 on CPU.
pub fn qwen() -> LoadedModel {
    kidbench_model::load(fixture("tiny-qwen2"), Device::Cpu, Kind::Float).expect("load tiny-qwen2")
}

/// The tiny LLaMA fixture (no bias, tied embeddings), fp32 on CPU.
pub fn llama() -> LoadedModel {
    kidbench_model::load(fixture("tiny-llama"), Device::Cpu, Kind::Float).expect("load tiny-llama")
}

/// A randomly initialised model (seeded) from `cfg`.
pub fn random_model(cfg: &Config, seed: i64) -> LoadedModel {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = kidbench_model::Qwen2ForCausalLM::new(&vs.root(), cfg).expect("build model");
    LoadedModel { vs, model }
}

pub fn reference(name: &str) -> (Tensor, Tensor, Tensor) {
    let path = fixture(name).join("reference.safetensors");
    let mut ids = None;
    let mut mask = None;
    let mut logits = None;
    for (n, t) in Tensor::read_safetensors(&path).expect("read reference") {
        match n.as_str() {
            "input_ids" => ids = Some(t),
            "attention_mask" => mask = Some(t),
            "logits" => logits = Some(t),
            _ => {}
        }
    }
    (
        ids.expect("input_ids"),
        mask.expect("attention_mask"),
        logits.expect("logits"),
    )
}

/// Max |a - b| over positions where `mask` [B, T] is 1 (a, b: [B, T, V]).
pub fn max_diff_masked(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let m = mask.to_kind(Kind::Float).unsqueeze(-1);
    ((a - b).abs() * m).max().double_value(&[])
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}
