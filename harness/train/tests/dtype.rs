//! `--dtype bf16` on CPU: the CUDA dtype path where CI can run it. Every method trains a tiny
//! Qwen2 student (GQA, tied embeddings) against a tiny teacher for a few steps in bf16 and in
//! fp32 from the same seed; every loss is finite and close to the fp32 one. The host hands the
//! plugins fp32 logits, AdamW keeps fp32 masters of bf16 parameters, and bf16 generation
//! returns valid ids.

#[path = "../../plugin-host/tests/util/mod.rs"]
mod plugin_util;

use kidbench_model::{generate_from_prompts, Config, GenerationConfig, Qwen2ForCausalLM, Sampling};
use kidbench_plugin_host::{HostServices, Model, Registry};
use kidbench_train::data::Example;
use kidbench_train::host::{TokenIds, TrainHost};
use kidbench_train::optim::{AdamW, AdamWConfig};
use kidbench_train::trainer::{train, TrainConfig, TrainOptions};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const VOCAB: i64 = 48;
fn tokens() -> TokenIds {
    TokenIds {
        pad: 0,
        eos: 2,
        mask: 3,
        stop: vec![2],
    }
}

/// libtorch's RNG is process-global: seeded sections take this.
fn torch_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn config(hidden: i64, layers: i64) -> Config {
    Config {
        vocab_size: VOCAB,
        hidden_size: hidden,
        intermediate_size: 2 * hidden,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 128,
        tie_word_embeddings: true,
        initializer_range: Some(0.1),
        ..Config::default()
    }
}

/// A seeded model in `kind`: drawn in fp32, then converted (as `lm::build_scratch_as` does).
fn model(cfg: &Config, seed: i64, kind: Kind) -> (VarStore, Qwen2ForCausalLM) {
    tch::manual_seed(seed);
    let mut vs = VarStore::new(Device::Cpu);
    let m = Qwen2ForCausalLM::new(&vs.root(), cfg).expect("model");
    if kind != Kind::Float {
        vs.set_kind(kind);
    }
    (vs, m)
}

/// BOS=1, EOS=2, tokens 4..VOCAB; prompts of 3..7 tokens, targets of 2..5.
fn examples(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let p = 3 + i % 5;
            let t = 2 + (i * 7) % 4;
            let mut ids = vec![1];
            ids.extend((0..p).map(|k| 4 + ((i * 5 + k * 3) % 44) as i64));
            ids.extend((0..t).map(|k| 4 + ((i * 3 + k) % 44) as i64));
            ids.push(2);
            Example {
                input_ids: ids,
                prompt_len: 1 + p,
            }
        })
        .collect()
}

fn train_cfg() -> TrainConfig {
    TrainConfig {
        steps: 3,
        batch_size: 4,
        micro_batch_size: 4,
        lr: 5e-3,
        warmup_steps: 1,
        checkpoint_every: 0,
        log_every: 1,
        seed: 11,
        ..TrainConfig::default()
    }
}

/// Per-step losses of `method` training the seeded student in `kind` (teacher in `kind` too).
fn losses(registry: &Registry, method: &str, kind: Kind, dir: &std::path::Path) -> Vec<f64> {
    let plugin = registry
        .create(method)
        .unwrap_or_else(|e| panic!("creating {method}: {e}"));
    let _g = torch_lock();
    let (_tvs, teacher) = model(&config(48, 2), 5, kind);
    let (vs, student) = model(&config(32, 2), 7, kind);
    for (n, t) in vs.variables() {
        assert_eq!(t.kind(), kind, "{n}");
    }
    let metrics = dir.join(format!("{method}-{kind:?}.jsonl"));
    let opts = TrainOptions {
        metrics_path: Some(metrics.clone()),
        ..TrainOptions::default()
    };
    let data = examples(16);
    let report = train(
        &vs,
        &student,
        Some(&teacher),
        &plugin,
        &data,
        &tokens(),
        &train_cfg(),
        &opts,
    )
    .unwrap_or_else(|e| panic!("{method} in {kind:?}: {e:#}"));
    assert_eq!(report.steps_done, 3, "{method}");
    for (n, t) in vs.variables() {
        assert_eq!(t.kind(), kind, "{method}: {n} changed kind while training");
    }
    std::fs::read_to_string(&metrics)
        .expect("metrics")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("metrics line");
            v["loss"].as_f64().expect("loss")
        })
        .collect()
}

/// Largest relative difference allowed between a bf16 loss and the fp32 loss of the same step.
///
/// bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2 % per value). On the
/// ground-truth methods (sft, fkd, rkd, kid) the first loss moved by at most 0.01 % and the
/// third by at most 0.13 % (2-core x86 CPU, 2026-12-02); the bounds leave room for other CPUs'
/// bf16 kernels. Methods that train on generated sequences (fdistill, imitkd, gkd) may sample
/// other tokens in bf16, which changes their batch: up to 7.8 % measured (gkd's second step).
fn tolerance(method: &str, step: usize) -> f64 {
    let sampled = matches!(method, "imitkd" | "gkd" | "fdistill");
    match (step, sampled) {
        (0, false) => 0.01,
        (_, false) => 0.03,
        (_, true) => 0.20,
    }
}

#[test]
fn every_method_trains_in_bf16_close_to_fp32() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = kidbench_train::method::registry(&[plugin_util::built().clone()]);
    let mut report = Vec::new();
    for method in plugin_util::PLUGINS {
        let f32 = losses(&registry, method, Kind::Float, dir.path());
        let b16 = losses(&registry, method, Kind::BFloat16, dir.path());
        // bf16 really ran: its losses are not the fp32 ones
        assert_ne!(f32, b16, "{method}: bf16 and fp32 losses are identical");
        assert_eq!(f32.len(), 3, "{method}: {f32:?}");
        assert_eq!(b16.len(), 3, "{method}: {b16:?}");
        for (step, (a, b)) in f32.iter().zip(&b16).enumerate() {
            assert!(
                a.is_finite() && b.is_finite(),
                "{method} step {step}: {a} / {b}"
            );
            let rel = (a - b).abs() / a.abs().max(1e-3);
            report.push(format!(
                "{method} step {}: fp32 {a:.5} bf16 {b:.5} rel {rel:.4}",
                step + 1
            ));
            assert!(
                rel <= tolerance(method, step),
                "{method} step {}: bf16 loss {b} is {rel:.4} away from fp32 loss {a} (tolerance {})",
                step + 1,
                tolerance(method, step)
            );
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn the_host_hands_plugins_fp32_logits_of_a_bf16_model() {
    let _g = torch_lock();
    let (_vs, m) = model(&config(32, 2), 3, Kind::BFloat16);
    let ids = Tensor::from_slice(&[1i64, 5, 6, 7, 1, 8, 9, 0]).view([2, 4]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 0]).view([2, 4]);
    let toks = tokens();
    let mut host = TrainHost::new(&m, Some(&m), &toks, Device::Cpu);
    for (model, grad) in [
        (Model::Student, true),
        (Model::Student, false),
        (Model::Teacher, false),
    ] {
        let logits = host
            .forward(model, &ids, &mask, None, grad)
            .expect("forward");
        assert_eq!(logits.kind(), Kind::Float, "{model:?}");
        assert_eq!(logits.size(), vec![2, 4, VOCAB]);
        assert_eq!(logits.requires_grad(), grad, "{model:?}");
    }
    // The gradient of an fp32 loss reaches the bf16 weights.
    let logits = host
        .forward(Model::Student, &ids, &mask, None, true)
        .unwrap();
    logits
        .log_softmax(-1, Kind::Float)
        .mean(Kind::Float)
        .backward();
    let (name, w) = &m.named_parameters()[0];
    assert_eq!(w.grad().kind(), Kind::BFloat16, "{name}");
    assert!(
        w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
        "{name}"
    );
}

#[test]
fn adamw_keeps_updates_smaller_than_a_bf16_step() {
    // w = 1 in bf16, gradient 1, lr 1e-4, no weight decay: each AdamW update is lr (m̂/√v̂ = 1),
    // below half the bf16 spacing at 1 (2^-8), so updating the bf16 weight in place would never
    // move it. With an fp32 master: 1 - 100 * 1e-4 = 0.99, and the weight is 0.99 rounded to
    // bf16 (spacing 2^-8 in [0.5, 1)): 253 * 2^-8 = 0.98828125.
    let _g = torch_lock();
    let mut vs = VarStore::new(Device::Cpu);
    let w = vs.root().ones("w", &[1]);
    vs.set_kind(Kind::BFloat16);
    assert_eq!(w.kind(), Kind::BFloat16);
    let cfg = AdamWConfig {
        weight_decay: 0.0,
        eps: 1e-12,
        ..AdamWConfig::default()
    };
    let mut adam = AdamW::new(&vs, cfg);
    assert_eq!(adam.master_count(), 1);
    for _ in 0..100 {
        adam.zero_grad();
        w.sum(Kind::Float).backward();
        adam.step(1e-4);
    }
    assert_eq!(w.kind(), Kind::BFloat16);
    assert_eq!(w.double_value(&[0]), 0.98828125);
    let (name, master) = &adam.param_tensors()[0];
    assert_eq!(name, "param.w");
    assert_eq!(master.kind(), Kind::Float);
    assert!(
        (master.double_value(&[0]) - 0.99).abs() < 1e-5,
        "{master:?}"
    );
    for (n, t) in adam.state_tensors() {
        assert_eq!(t.kind(), Kind::Float, "{n}");
    }
}

#[test]
fn bf16_generation_returns_valid_ids() {
    let _g = torch_lock();
    let (_vs, m) = model(&config(32, 2), 9, Kind::BFloat16);
    let prompts = vec![vec![1i64, 5, 6, 7, 8], vec![1, 9, 10]];
    for sampling in [
        Sampling::Greedy,
        Sampling::Sample {
            temperature: 1.0,
            top_k: Some(10),
            top_p: Some(0.9),
        },
    ] {
        let cfg = GenerationConfig {
            max_new_tokens: 6,
            sampling: sampling.clone(),
            eos_token_ids: vec![2],
            pad_token_id: 0,
            seed: 4,
            return_logprobs: true,
        };
        let out = tch::no_grad(|| generate_from_prompts(&m, &prompts, &cfg)).expect("generate");
        assert_eq!(out.tokens.len(), 2);
        let lp = out.logprobs.as_ref().expect("log-probs asked for");
        for (toks, lp) in out.tokens.iter().zip(lp) {
            assert_eq!(toks.len(), lp.len());
            assert!(lp.iter().all(|p| p.is_finite() && *p <= 0.0), "{lp:?}");
        }
        for (i, toks) in out.tokens.iter().enumerate() {
            assert!(
                !toks.is_empty() && toks.len() <= 6,
                "{sampling:?} row {i}: {toks:?}"
            );
            assert!(toks.iter().all(|&t| (0..VOCAB).contains(&t)), "{toks:?}");
            if let Some(p) = toks.iter().position(|&t| t == 2) {
                assert_eq!(p, toks.len() - 1, "tokens after EOS: {toks:?}");
            }
        }
    }
}
