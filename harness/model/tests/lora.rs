//! LoRA: identity at init, only adapters train, PEFT-format save/load round trip.
mod common;

use common::*;
use kidbench_model::lora::{self, ALL_TARGETS};
use kidbench_model::{LoraConfig, ModelError};
use tch::{nn, nn::OptimizerConfig, Device};

#[test]
fn fresh_adapter_leaves_the_model_unchanged() {
    let mut m = qwen();
    let (ids, mask, _) = reference("tiny-qwen2");
    let before = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
    let lvs = nn::VarStore::new(Device::Cpu);
    lora::attach_lora(
        &mut m.model,
        &lvs.root(),
        &LoraConfig::new(8, 16.0, &ALL_TARGETS),
    )
    .unwrap();
    let after = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
    assert!(
        before.equal(&after),
        "B = 0 must give the base output exactly"
    );
    // 2 layers x 7 modules x (A, B)
    assert_eq!(lora::lora_parameters(&m.model).len(), 28);
    assert_eq!(lvs.trainable_variables().len(), 28);
    let names = lvs.variables();
    let a = &names["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"];
    let b = &names["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"];
    assert_eq!(a.size(), vec![8, 64]);
    assert_eq!(b.size(), vec![64, 8]);
    assert!(a.abs().max().double_value(&[]) > 0.0);
    assert_eq!(b.abs().max().double_value(&[]), 0.0);
    // Attaching twice is refused.
    let err = lora::attach_lora(
        &mut m.model,
        &lvs.root(),
        &LoraConfig::new(8, 16.0, &["q_proj"]),
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::Lora(_)));
}

#[test]
fn only_lora_parameters_train() {
    let mut m = qwen();
    let lvs = nn::VarStore::new(Device::Cpu);
    lora::attach_lora(
        &mut m.model,
        &lvs.root(),
        &LoraConfig::new(4, 8.0, &["q_proj", "v_proj", "down_proj"]),
    )
    .unwrap();
    let base_before: Vec<_> = m
        .model
        .named_parameters()
        .iter()
        .map(|(_, t)| t.copy())
        .collect();
    let (ids, mask, _) = reference("tiny-qwen2");
    let (before, after) = {
        let mut opt = nn::Adam::default().build(&lvs, 1e-2).unwrap();
        let targets = ids.shallow_clone();
        let loss_of = |m: &kidbench_model::Qwen2ForCausalLM| {
            let logits = m.forward(&ids, &mask).unwrap();
            logits
                .view([-1, 256])
                .cross_entropy_for_logits(&targets.view([-1]))
        };
        let before = loss_of(&m.model).double_value(&[]);
        for _ in 0..5 {
            let loss = loss_of(&m.model);
            opt.zero_grad();
            loss.backward();
            for (name, t) in m.model.named_parameters() {
                assert!(!t.requires_grad(), "{name} must be frozen");
                assert!(!t.grad().defined(), "{name} got a gradient");
            }
            opt.step();
        }
        (before, loss_of(&m.model).double_value(&[]))
    };
    assert!(
        after < before,
        "LoRA training did not reduce the loss ({before} -> {after})"
    );
    for ((name, t), b) in m.model.named_parameters().iter().zip(&base_before) {
        assert!(t.equal(b), "{name} changed");
    }
    let lp = lora::lora_parameters(&m.model);
    assert_eq!(lp.len(), 2 * 2 * 3);
    assert!(lp
        .iter()
        .all(|(n, _)| n.contains("q_proj") || n.contains("v_proj") || n.contains("down_proj")));
    assert!(lp
        .iter()
        .any(|(n, t)| n.ends_with("lora_B.weight") && t.abs().max().double_value(&[]) > 0.0));
}

#[test]
fn saved_adapter_reloads_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("adapter");
    let mut m = qwen();
    let lvs = nn::VarStore::new(Device::Cpu);
    let mut cfg = LoraConfig::new(8, 4.0, &["q_proj", "k_proj", "o_proj", "up_proj"]);
    cfg.base_model_name_or_path = Some("tiny-qwen2".into());
    lora::attach_lora(&mut m.model, &lvs.root(), &cfg).unwrap();
    // Give B non-zero values so the adapter changes the output.
    tch::no_grad(|| {
        for (n, mut t) in lora::lora_parameters(&m.model) {
            if n.ends_with("lora_B.weight") {
                t.copy_(&(t.randn_like() * 0.1));
            }
        }
    });
    let (ids, mask, _) = reference("tiny-qwen2");
    let want = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
    let base = tch::no_grad(|| qwen().model.forward(&ids, &mask)).unwrap();
    assert!(max_diff(&want, &base) > 1e-3, "adapter has no effect");
    lora::save_adapter(&dir, &m.model, &cfg).unwrap();

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["task_type"], "CAUSAL_LM");
    assert_eq!(json["r"], 8);
    assert_eq!(json["lora_alpha"], 4.0);
    assert_eq!(json["base_model_name_or_path"], "tiny-qwen2");
    let names: Vec<String> =
        kidbench_model::checkpoint::read_safetensors_file(&dir.join("adapter_model.safetensors"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
    assert!(
        names.contains(&"base_model.model.model.layers.1.mlp.up_proj.lora_B.weight".to_string())
    );
    assert_eq!(names.len(), 2 * 2 * 4);

    let mut fresh = qwen();
    let lvs2 = nn::VarStore::new(Device::Cpu);
    let back_cfg = lora::load_adapter(&dir, &mut fresh.model, &lvs2.root()).unwrap();
    assert_eq!(back_cfg, cfg);
    let got = tch::no_grad(|| fresh.model.forward(&ids, &mask)).unwrap();
    assert!(got.equal(&want), "reloaded adapter output differs");
    for ((na, a), (nb, b)) in lora::lora_parameters(&m.model)
        .iter()
        .zip(lora::lora_parameters(&fresh.model))
    {
        assert_eq!(na, &nb);
        assert!(a.equal(&b), "{na}");
    }
    // Detaching restores the base model.
    lora::detach_lora(&mut fresh.model);
    let plain = tch::no_grad(|| fresh.model.forward(&ids, &mask)).unwrap();
    assert!(plain.equal(&base));
}

#[test]
fn bad_lora_configs_are_rejected() {
    let mut m = qwen();
    let lvs = nn::VarStore::new(Device::Cpu);
    for cfg in [
        LoraConfig::new(0, 1.0, &["q_proj"]),
        LoraConfig::new(4, 1.0, &["qkv_proj"]),
        {
            let mut c = LoraConfig::new(4, 1.0, &["q_proj"]);
            c.lora_dropout = 0.1;
            c
        },
    ] {
        assert!(matches!(
            lora::attach_lora(&mut m.model, &lvs.root(), &cfg),
            Err(ModelError::Lora(_))
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        lora::load_adapter(tmp.path(), &mut m.model, &lvs.root()),
        Err(ModelError::MissingFiles { .. })
    ));
}
