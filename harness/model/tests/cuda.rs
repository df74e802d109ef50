//! GPU tests (`cargo test -p kidbench-model --features cuda-tests --test cuda`). They FAIL when
//! CUDA is unavailable (never silently skip). Need `libtorch_cuda.so` on LD_LIBRARY_PATH.
#![cfg(feature = "cuda-tests")]

mod common;

use common::*;
use kidbench_model::{generate_from_prompts, GenerationConfig, Sampling};
use tch::{Device, Kind};

fn cuda() -> Device {
    let loaded = kidbench_model::load_cuda_runtime();
    assert!(
        loaded,
        "libtorch_cuda.so could not be loaded (is it on LD_LIBRARY_PATH?)"
    );
    assert!(tch::Cuda::is_available(), "CUDA is not available");
    let d = kidbench_model::best_device();
    assert_eq!(d, Device::Cuda(0));
    d
}

#[test]
fn cuda_logits_match_hf_fp32_and_bf16() {
    let dev = cuda();
    let (ids, mask, want) = reference("tiny-qwen2");
    let want = want.to_device(dev);
    let m32 = kidbench_model::load(fixture("tiny-qwen2"), dev, Kind::Float).unwrap();
    let got =
        tch::no_grad(|| m32.model.forward(&ids.to_device(dev), &mask.to_device(dev))).unwrap();
    let d = max_diff_masked(&got, &want, &mask.to_device(dev));
    assert!(d < 1e-3, "fp32 CUDA vs HF: {d}");
    assert_eq!(kidbench_model::default_kind(dev), Kind::BFloat16);
    let m16 = kidbench_model::load(fixture("tiny-qwen2"), dev, Kind::BFloat16).unwrap();
    assert_eq!(m16.model.kind(), Kind::BFloat16);
    let got =
        tch::no_grad(|| m16.model.forward(&ids.to_device(dev), &mask.to_device(dev))).unwrap();
    assert_eq!(got.kind(), Kind::Float);
    let d = max_diff_masked(&got, &want, &mask.to_device(dev));
    assert!(d < 0.5, "bf16 CUDA vs HF: {d}");
}

#[test]
fn cuda_generation_is_deterministic_and_greedy_matches_cpu_prefix() {
    let dev = cuda();
    let prompts = vec![
        vec![5, 17, 99, 3, 42],
        vec![200, 1],
        vec![31, 41, 59, 26, 53, 58, 97],
    ];
    let gpu = kidbench_model::load(fixture("tiny-qwen2"), dev, Kind::Float).unwrap();
    let cpu = qwen();
    let g = GenerationConfig {
        max_new_tokens: 4,
        ..Default::default()
    };
    let a = generate_from_prompts(&gpu.model, &prompts, &g).unwrap();
    let b = generate_from_prompts(&cpu.model, &prompts, &g).unwrap();
    assert_eq!(
        a.tokens, b.tokens,
        "fp32 greedy CUDA vs CPU (first 4 tokens)"
    );
    let s = GenerationConfig {
        max_new_tokens: 16,
        sampling: Sampling::Sample {
            temperature: 1.0,
            top_k: Some(20),
            top_p: Some(0.9),
        },
        seed: 5,
        ..Default::default()
    };
    let bf = kidbench_model::load(fixture("tiny-qwen2"), dev, Kind::BFloat16).unwrap();
    let x = generate_from_prompts(&bf.model, &prompts, &s).unwrap();
    let y = generate_from_prompts(&bf.model, &prompts, &s).unwrap();
    assert_eq!(x, y);
}

#[test]
fn cuda_checkpoint_round_trip_in_bf16() {
    let dev = cuda();
    let m = kidbench_model::load(fixture("tiny-qwen2"), dev, Kind::BFloat16).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    kidbench_model::save(tmp.path().join("m"), &m.model).unwrap();
    let back = kidbench_model::load(tmp.path().join("m"), dev, Kind::BFloat16).unwrap();
    for ((n, a), (_, b)) in m
        .model
        .named_parameters()
        .iter()
        .zip(back.model.named_parameters())
    {
        assert!(a.equal(b), "{n}");
    }
    assert_eq!(
        back.model.config().torch_dtype.as_deref().or(back
            .model
            .config()
            .extra
            .get("dtype")
            .and_then(|v| v.as_str())),
        Some("bfloat16")
    );
}
