//! Hugging Face checkpoints: `config.json` + `model.safetensors` (or sharded
//! `model.safetensors.index.json` + shards). Saving is atomic: the folder is written under a
//! temporary name in the same parent, fsynced, then renamed into place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tch::{nn, Device, Kind, Tensor};

use crate::error::{io_err, ModelError, Result};
use crate::qwen2::{Config, Qwen2ForCausalLM};
pub use crate::safetensors_io::read_safetensors_file;
use crate::safetensors_io::{
    corrupt, parse, read_file, view_to_tensor, write_dir_atomically, write_safetensors,
};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A model loaded from disk together with the `VarStore` owning its parameters (build the
/// optimizer of full fine-tuning from `vs`).
#[derive(Debug)]
pub struct LoadedModel {
    pub vs: nn::VarStore,
    pub model: Qwen2ForCausalLM,
}

/// The parameter kind to use on a device when `--dtype` is not given: bf16 on CUDA, fp32 on
/// CPU ([`crate::Dtype::default_for`]).
pub fn default_kind(device: Device) -> Kind {
    crate::Dtype::default_for(device).kind()
}

/// Checks the folder exists and holds a config and weights; returns the weight files to read
/// (one, or the shards named by the index) and the file that names them.
pub(crate) fn checkpoint_files(dir: &Path) -> Result<(Vec<PathBuf>, PathBuf)> {
    if !dir.is_dir() {
        return Err(ModelError::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    let mut missing = Vec::new();
    if !dir.join(CONFIG_FILE).is_file() {
        missing.push(CONFIG_FILE.to_string());
    }
    let single = dir.join(WEIGHTS_FILE);
    let index = dir.join(INDEX_FILE);
    let files = if single.is_file() {
        Some((vec![single.clone()], single))
    } else if index.is_file() {
        None
    } else {
        missing.push(format!("{WEIGHTS_FILE} (or {INDEX_FILE})"));
        None
    };
    if !missing.is_empty() {
        return Err(ModelError::MissingFiles {
            dir: dir.to_path_buf(),
            missing,
        });
    }
    if let Some(f) = files {
        return Ok(f);
    }
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(&index).map_err(io_err(&index))?;
    let idx: Index = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: index.clone(),
        source,
    })?;
    let shards: BTreeSet<&String> = idx.weight_map.values().collect();
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for s in shards {
        let p = dir.join(s);
        if !p.is_file() {
            missing.push(s.clone());
        }
        out.push(p);
    }
    if !missing.is_empty() {
        return Err(ModelError::MissingFiles {
            dir: dir.to_path_buf(),
            missing,
        });
    }
    Ok((out, index))
}

/// Reads and validates `config.json` of a checkpoint folder.
pub fn load_config(dir: impl AsRef<Path>) -> Result<Config> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(ModelError::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    let path = dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(ModelError::MissingFiles {
            dir: dir.to_path_buf(),
            missing: vec![CONFIG_FILE.into()],
        });
    }
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let cfg: Config = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.clone(),
        source,
    })?;
    cfg.validate().map_err(|e| match e {
        ModelError::InvalidConfig(m) => {
            ModelError::InvalidConfig(format!("{}: {m}", path.display()))
        }
        other => other,
    })?;
    Ok(cfg)
}

/// Loads a checkpoint folder onto `device` with parameters of `kind` (see [`default_kind`]).
/// bf16/fp16/fp32 files convert to `kind`.
pub fn load(dir: impl AsRef<Path>, device: Device, kind: Kind) -> Result<LoadedModel> {
    let dir = dir.as_ref();
    checkpoint_files(dir)?;
    let cfg = load_config(dir)?;
    let mut vs = nn::VarStore::new(device);
    vs.set_kind(kind); // new variables are created directly in `kind`
    let model = Qwen2ForCausalLM::new(&vs.root(), &cfg)?;
    load_weights(dir, &model)?;
    Ok(LoadedModel { vs, model })
}

/// Fills `model`'s parameters from the checkpoint folder `dir` (single or sharded).
pub fn load_weights(dir: impl AsRef<Path>, model: &Qwen2ForCausalLM) -> Result<()> {
    let dir = dir.as_ref();
    let (files, naming_file) = checkpoint_files(dir)?;
    let cfg = model.config();
    let wanted: BTreeMap<&str, &Tensor> = model
        .named_parameters()
        .iter()
        .map(|(n, t)| (n.as_str(), t))
        .collect();
    let mut found: BTreeSet<String> = BTreeSet::new();
    let _guard = tch::no_grad_guard();
    for path in &files {
        let bytes = read_file(path)?;
        let st = parse(path, &bytes)?;
        for name in st.names() {
            let name: &str = name;
            let Some(dst) = wanted.get(name) else {
                continue; // e.g. lm_head.weight of a tied model, rotary buffers of old exports
            };
            let view = st.tensor(name).map_err(|e| corrupt(path, e))?;
            let actual: Vec<i64> = view.shape().iter().map(|&x| x as i64).collect();
            let expected = dst.size();
            if actual != expected {
                let is_vocab = name == "model.embed_tokens.weight" || name == "lm_head.weight";
                if is_vocab && actual.len() == 2 && actual[1] == expected[1] {
                    return Err(ModelError::VocabMismatch {
                        path: path.clone(),
                        expected: cfg.vocab_size,
                        actual: actual[0],
                    });
                }
                return Err(ModelError::ShapeMismatch {
                    path: path.clone(),
                    name: name.to_string(),
                    expected,
                    actual,
                });
            }
            let src = view_to_tensor(&view, path, name)?;
            let mut dst = dst.shallow_clone();
            dst.f_copy_(&src)?;
            found.insert(name.to_string());
        }
    }
    if let Some((name, _)) = wanted.iter().find(|(n, _)| !found.contains(**n)) {
        return Err(ModelError::MissingTensor {
            path: naming_file,
            name: name.to_string(),
        });
    }
    Ok(())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BFloat16 => "bfloat16",
        Kind::Half => "float16",
        Kind::Double => "float64",
        _ => "float32",
    }
}

/// Saves `model` as a HF checkpoint folder (`config.json` + `model.safetensors`, parameters in
/// their current kind), atomically. LoRA adapters are not included (see `lora::save_adapter`).
pub fn save(dir: impl AsRef<Path>, model: &Qwen2ForCausalLM) -> Result<()> {
    let mut cfg = model.config().clone();
    let dtype = kind_name(model.kind()).to_string();
    if cfg.extra.contains_key("dtype") {
        // transformers >= 5 spells it `dtype`
        cfg.extra
            .insert("dtype".into(), serde_json::Value::String(dtype));
    } else {
        cfg.torch_dtype = Some(dtype);
    }
    let json = serde_json::to_string_pretty(&cfg)
        .map_err(|e| ModelError::InvalidConfig(format!("cannot serialize config: {e}")))?;
    let params = model.named_parameters().to_vec_shallow();
    write_dir_atomically(dir.as_ref(), |tmp| {
        let cfg_path = tmp.join(CONFIG_FILE);
        std::fs::write(&cfg_path, json.as_bytes()).map_err(io_err(&cfg_path))?;
        write_safetensors(&tmp.join(WEIGHTS_FILE), &params)
    })
}

trait ShallowVec {
    fn to_vec_shallow(&self) -> Vec<(String, Tensor)>;
}

impl ShallowVec for [(String, Tensor)] {
    fn to_vec_shallow(&self) -> Vec<(String, Tensor)> {
        self.iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect()
    }
}
