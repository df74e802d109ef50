//! LoRA adapters on the model's linear layers, saved and loaded in PEFT's format.
//!
//! `W x + b` becomes `W x + b + (alpha / r) * B (A x)` with `A` `[r, in]` (uniform in
//! `±1/sqrt(in)`, PEFT's kaiming-uniform default) and `B` `[out, r]` zeros, so a fresh adapter
//! leaves the model unchanged. Adapters live in their OWN `VarStore` (so an optimizer built on it
//! trains only them); attaching freezes every base parameter (`requires_grad = false`).
//!
//! On disk (PEFT): `adapter_model.safetensors` with
//! `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` `[r, in]` and
//! `...lora_B.weight` `[out, r]`, plus `adapter_config.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use crate::error::{io_err, ModelError, Result};
use crate::layers::LoraLayer;
use crate::qwen2::Qwen2ForCausalLM;
use crate::safetensors_io::{read_safetensors_file, write_dir_atomically, write_safetensors};

/// File names of a PEFT adapter folder.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// Names of the linear modules LoRA can target.
pub const ALL_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

fn default_peft_type() -> String {
    "LORA".into()
}
fn default_task_type() -> String {
    "CAUSAL_LM".into()
}
fn default_bias() -> String {
    "none".into()
}

/// LoRA hyper-parameters; serialized as PEFT's `adapter_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub r: i64,
    pub lora_alpha: f64,
    pub target_modules: Vec<String>,
    /// Must be 0 (dropout is not implemented).
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(default = "default_peft_type")]
    pub peft_type: String,
    #[serde(default = "default_task_type")]
    pub task_type: String,
    #[serde(default = "default_bias")]
    pub bias: String,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Other adapter_config.json keys, preserved.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl LoraConfig {
    /// A config with PEFT defaults for the other keys.
    pub fn new(r: i64, lora_alpha: f64, target_modules: &[&str]) -> Self {
        LoraConfig {
            r,
            lora_alpha,
            target_modules: target_modules.iter().map(|s| s.to_string()).collect(),
            lora_dropout: 0.0,
            peft_type: default_peft_type(),
            task_type: default_task_type(),
            bias: default_bias(),
            base_model_name_or_path: None,
            extra: BTreeMap::new(),
        }
    }

    /// `alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }

    fn validate(&self) -> Result<()> {
        if self.r <= 0 {
            return Err(ModelError::Lora(format!(
                "rank r must be positive, got {}",
                self.r
            )));
        }
        if self.lora_dropout != 0.0 {
            return Err(ModelError::Lora(format!(
                "lora_dropout {} unsupported (only 0)",
                self.lora_dropout
            )));
        }
        if self.peft_type != "LORA" {
            return Err(ModelError::Lora(format!(
                "peft_type {:?} is not LORA",
                self.peft_type
            )));
        }
        if self.bias != "none" {
            return Err(ModelError::Lora(format!(
                "bias {:?} unsupported (only \"none\")",
                self.bias
            )));
        }
        if self.target_modules.is_empty() {
            return Err(ModelError::Lora("target_modules is empty".into()));
        }
        for t in &self.target_modules {
            if !ALL_TARGETS.contains(&t.as_str()) {
                return Err(ModelError::Lora(format!(
                    "unknown target module {t:?}; known: {ALL_TARGETS:?}"
                )));
            }
        }
        Ok(())
    }
}

fn peft_prefix(module: &str) -> String {
    format!("base_model.model.{module}")
}

fn module_leaf(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Attaches fresh adapters to `model`'s target modules, with variables created under `vs`
/// (use the root of a dedicated `VarStore`: names then are PEFT's). Freezes the base model.
pub fn attach_lora(model: &mut Qwen2ForCausalLM, vs: &nn::Path, cfg: &LoraConfig) -> Result<()> {
    cfg.validate()?;
    if model.linears().any(|l| l.lora.is_some()) {
        return Err(ModelError::Lora(
            "the model already has LoRA adapters".into(),
        ));
    }
    let scaling = cfg.scaling();
    for lin in model.linears_mut() {
        if !cfg
            .target_modules
            .iter()
            .any(|t| t == module_leaf(&lin.name))
        {
            continue;
        }
        let (inp, out) = lin.in_out();
        let mut p = vs.clone();
        for part in peft_prefix(&lin.name).split('.') {
            p = p / part;
        }
        let bound = 1.0 / (inp as f64).sqrt();
        let a = (&p / "lora_A").f_var(
            "weight",
            &[cfg.r, inp],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let b = (&p / "lora_B").f_zeros("weight", &[out, cfg.r])?;
        lin.lora = Some(LoraLayer { a, b, scaling });
    }
    freeze_base(model);
    Ok(())
}

/// Sets `requires_grad = false` on every base parameter.
pub fn freeze_base(model: &Qwen2ForCausalLM) {
    for (_, t) in model.named_parameters() {
        let _ = t.set_requires_grad(false);
    }
}

/// Removes every adapter (base parameters stay frozen; unfreeze through their VarStore).
pub fn detach_lora(model: &mut Qwen2ForCausalLM) {
    for lin in model.linears_mut() {
        lin.lora = None;
    }
}

/// Folds every adapter into its base weight (`W += (alpha / r) * B A`, computed in fp32 and
/// rounded once to `W`'s kind) and removes the adapters: the model then computes what it
/// computed with them, as a plain checkpoint that [`crate::checkpoint::save`] writes and any HF
/// loader reads. Returns how many layers were merged. Base parameters stay frozen.
pub fn merge_lora(model: &mut Qwen2ForCausalLM) -> Result<usize> {
    let _guard = tch::no_grad_guard();
    let mut merged = 0;
    for lin in model.linears_mut() {
        let Some(l) = lin.lora.take() else {
            continue;
        };
        let w = &lin.weight;
        let delta =
            l.b.f_to_kind(tch::Kind::Float)?
                .f_matmul(&l.a.f_to_kind(tch::Kind::Float)?)?
                .f_mul_scalar(l.scaling)?;
        let sum = w
            .f_to_kind(tch::Kind::Float)?
            .f_add(&delta.f_to_device(w.device())?)?;
        lin.weight.shallow_clone().f_copy_(&sum)?; // converts to W's kind
        merged += 1;
    }
    Ok(merged)
}

/// The adapter tensors under their PEFT names, sorted.
pub fn lora_parameters(model: &Qwen2ForCausalLM) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for lin in model.linears() {
        if let Some(l) = &lin.lora {
            let p = peft_prefix(&lin.name);
            out.push((format!("{p}.lora_A.weight"), l.a.shallow_clone()));
            out.push((format!("{p}.lora_B.weight"), l.b.shallow_clone()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Saves the adapters as a PEFT folder (`adapter_model.safetensors` + `adapter_config.json`),
/// atomically (the folder is replaced as a whole).
pub fn save_adapter(
    dir: impl AsRef<Path>,
    model: &Qwen2ForCausalLM,
    cfg: &LoraConfig,
) -> Result<()> {
    let params = lora_parameters(model);
    if params.is_empty() {
        return Err(ModelError::Lora(
            "the model has no LoRA adapters to save".into(),
        ));
    }
    let json = serde_json::to_string_pretty(cfg)
        .map_err(|e| ModelError::Lora(format!("serialize config: {e}")))?;
    write_dir_atomically(dir.as_ref(), |tmp| {
        let cfg_path = tmp.join(ADAPTER_CONFIG);
        std::fs::write(&cfg_path, json.as_bytes()).map_err(io_err(&cfg_path))?;
        write_safetensors(&tmp.join(ADAPTER_WEIGHTS), &params)
    })
}

/// Reads a PEFT `adapter_config.json`.
pub fn load_adapter_config(dir: impl AsRef<Path>) -> Result<LoraConfig> {
    let path = dir.as_ref().join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json { path, source })
}

/// Loads a PEFT adapter folder: attaches adapters (variables under `vs`) and fills them.
/// Returns the adapter config.
pub fn load_adapter(
    dir: impl AsRef<Path>,
    model: &mut Qwen2ForCausalLM,
    vs: &nn::Path,
) -> Result<LoraConfig> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(ModelError::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    let missing: Vec<String> = [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ModelError::MissingFiles {
            dir: dir.to_path_buf(),
            missing,
        });
    }
    let cfg = load_adapter_config(dir)?;
    attach_lora(model, vs, &cfg)?;
    let path = dir.join(ADAPTER_WEIGHTS);
    let tensors: BTreeMap<String, Tensor> = read_safetensors_file(&path)?.into_iter().collect();
    let _guard = tch::no_grad_guard();
    for (name, mut dst) in lora_parameters(model) {
        // PEFT may also save with the adapter name ("...lora_A.default.weight").
        let alt = name.replace(".weight", ".default.weight");
        let src = tensors
            .get(&name)
            .or_else(|| tensors.get(&alt))
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.clone(),
                name: name.clone(),
            })?;
        if src.size() != dst.size() {
            return Err(ModelError::ShapeMismatch {
                path: path.clone(),
                name,
                expected: dst.size(),
                actual: src.size(),
            });
        }
        dst.f_copy_(src)?; // converts kind and device
    }
    Ok(cfg)
}
