//! Logits against HF transformers, left padding, and the cached forward.
mod common;

use common::*;
use kidbench_model::Qwen2ForCausalLM;
use tch::{Kind, Tensor};

fn check_against_hf(name: &str, model: &Qwen2ForCausalLM) {
    let (ids, mask, want) = reference(name);
    let got = tch::no_grad(|| model.forward(&ids, &mask)).expect("forward");
    assert_eq!(got.kind(), Kind::Float);
    assert_eq!(got.size(), want.size());
    let d = max_diff_masked(&got, &want, &mask);
    eprintln!("{name}: max abs diff vs HF = {d:e}");
    assert!(d < 1e-4, "{name}: max |rust - hf| on real positions = {d}");
    // The fixture is not trivial: logits vary a lot across the vocabulary.
    let spread = (want.max() - want.min()).double_value(&[]);
    assert!(spread > 1.0, "{name}: reference logits too flat ({spread})");
}

#[test]
fn qwen2_logits_match_hf_transformers() {
    let m = qwen();
    assert!(m.model.config().qkv_bias());
    assert_eq!(m.model.config().num_kv_heads(), 2);
    check_against_hf("tiny-qwen2", &m.model);
}

#[test]
fn llama_logits_match_hf_transformers() {
    let m = llama();
    assert!(!m.model.config().qkv_bias());
    assert!(m.model.config().tie_word_embeddings);
    assert_eq!(m.model.config().rope_theta(), 500000.0);
    check_against_hf("tiny-llama", &m.model);
}

#[test]
fn left_padded_rows_equal_unpadded_rows() {
    let m = qwen();
    let (ids, mask, _) = reference("tiny-qwen2");
    let batch = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
    let (b, t) = ids.size2().unwrap();
    for r in 0..b {
        let n = mask.get(r).sum(Kind::Int64).int64_value(&[]);
        let alone_ids = ids.get(r).narrow(0, t - n, n).unsqueeze(0);
        let alone_mask = Tensor::ones([1, n], (Kind::Int64, tch::Device::Cpu));
        let alone = tch::no_grad(|| m.model.forward(&alone_ids, &alone_mask)).unwrap();
        let padded = batch.get(r).narrow(0, t - n, n).unsqueeze(0);
        let d = max_diff(&alone, &padded);
        assert!(d < 1e-5, "row {r}: padded vs alone differ by {d}");
    }
}

/// `forward_rows` equals `forward` on the chosen rows, is 0 on the others, and the gradient
/// reaches the parameters through the chosen rows.
#[test]
fn forward_rows_equals_forward_on_chosen_rows() {
    let m = qwen();
    let (ids, mask, _) = reference("tiny-qwen2");
    let full = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
    let (b, t) = ids.size2().unwrap();
    let rows = Tensor::rand([b, t], (Kind::Float, tch::Device::Cpu)).gt(0.5);
    let part = m.model.forward_rows(&ids, &mask, &rows).unwrap();
    assert_eq!(part.size(), full.size());
    let keep = rows.unsqueeze(-1).to_kind(Kind::Float);
    let d = max_diff(&(&full * &keep), &part.detach());
    assert!(d < 1e-5, "chosen rows differ by {d}");
    let outside = (part.detach() * (keep.ones_like() - &keep))
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(outside, 0.0);
    // rows of another shape would pick the wrong positions: an error, not a silent mix-up
    let e = m
        .model
        .forward_rows(&ids, &mask, &rows.narrow(1, 0, t - 1))
        .unwrap_err();
    assert!(e.to_string().contains("forward rows"), "{e}");
    part.sum(Kind::Float).backward();
    let grads: f64 = m
        .model
        .named_parameters()
        .iter()
        .map(|(_, p)| p.grad().abs().sum(Kind::Float).double_value(&[]))
        .sum();
    assert!(grads > 0.0 && grads.is_finite(), "{grads}");
}

#[test]
fn cached_forward_equals_full_forward() {
    let m = qwen();
    let (ids, mask, _) = reference("tiny-qwen2");
    let full = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
    let t = ids.size()[1];
    // Feed the sequence in chunks of 5, 1, 1, then the rest.
    let mut cache = m.model.new_kv_cache(4); // too small on purpose: must grow
    let mut outs = Vec::new();
    let mut start = 0;
    for len in [5, 1, 1, t - 7] {
        let o = tch::no_grad(|| {
            m.model.forward_with_cache(
                &ids.narrow(1, start, len),
                &mask.narrow(1, start, len),
                &mut cache,
            )
        })
        .unwrap();
        outs.push(o);
        start += len;
    }
    assert_eq!(cache.len(), t);
    let inc = Tensor::cat(&outs, 1);
    let d = max_diff_masked(&inc, &full, &mask);
    assert!(d < 1e-5, "cached vs full forward differ by {d}");
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn padded_positions_stay_finite_and_gradients_are_finite() {
    let m = qwen();
    let (ids, mask, _) = reference("tiny-qwen2");
    let logits = m.model.forward(&ids, &mask).unwrap();
    assert!(bool::try_from(logits.isfinite().all()).unwrap());
    let loss = (logits * mask.to_kind(Kind::Float).unsqueeze(-1)).sum(Kind::Float);
    loss.backward();
    for (name, p) in m.model.named_parameters() {
        let g = p.grad();
        assert!(g.defined(), "{name} has no gradient");
        assert!(
            bool::try_from(g.isfinite().all()).unwrap(),
            "{name} gradient not finite"
        );
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let m = qwen();
    let ids = Tensor::zeros([2, 3], (Kind::Int64, tch::Device::Cpu));
    let bad_mask = Tensor::ones([2, 4], (Kind::Int64, tch::Device::Cpu));
    assert!(matches!(
        m.model.forward(&ids, &bad_mask),
        Err(kidbench_model::ModelError::BadInput(_))
    ));
    let float_ids = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
    let mask = Tensor::ones([2, 3], (Kind::Int64, tch::Device::Cpu));
    assert!(matches!(
        m.model.forward(&float_ids, &mask),
        Err(kidbench_model::ModelError::BadInput(_))
    ));
}
