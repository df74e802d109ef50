//! Hugging Face checkpoints: `config.json` + `model.safetensors` (or sharded
//! `model.safetensors.index.json` + shards). Saving is atomic: the folder is written under a
//! temporary name in the same parent, fsynced, then renamed into place.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{nn, Device, Kind, Tensor};

use crate::error::{io_err, ModelError, Result};
use crate::qwen2::{Config, Qwen2ForCausalLM};

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

/// The parameter kind to use on a device: bf16 on CUDA, fp32 on CPU.
pub fn default_kind(device: Device) -> Kind {
    match device {
        Device::Cuda(_) => Kind::BFloat16,
        _ => Kind::Float,
    }
}

/// Checks the folder exists and holds a config and weights; returns the weight files to read
/// (one, or the shards named by the index) and the file that names them.
fn checkpoint_files(dir: &Path) -> Result<(Vec<PathBuf>, PathBuf)> {
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

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn kind_of(dtype: Dtype, path: &Path, name: &str) -> Result<Kind> {
    Ok(match dtype {
        Dtype::BOOL => Kind::Bool,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        other => {
            return Err(corrupt(
                path,
                format!("tensor {name} has unsupported dtype {other:?}"),
            ))
        }
    })
}

fn dtype_of(kind: Kind) -> Result<Dtype> {
    Ok(match kind {
        Kind::Bool => Dtype::BOOL,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Int16 => Dtype::I16,
        Kind::Int => Dtype::I32,
        Kind::Int64 => Dtype::I64,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        k => {
            return Err(ModelError::Unsupported(format!(
                "saving tensors of kind {k:?}"
            )))
        }
    })
}

fn view_to_tensor(view: &TensorView, path: &Path, name: &str) -> Result<Tensor> {
    let size: Vec<i64> = view.shape().iter().map(|&x| x as i64).collect();
    let kind = kind_of(view.dtype(), path, name)?;
    Ok(Tensor::f_from_data_size(view.data(), &size, kind)?)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io_err(path))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| corrupt(path, format!("{e} (truncated or not a safetensors file?)")))
}

/// Reads every tensor of a safetensors file (CPU tensors, file dtypes).
pub fn read_safetensors_file(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = read_file(path)?;
    let st = parse(path, &bytes)?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let t = view_to_tensor(&view, path, &name)?;
            Ok((name, t))
        })
        .collect()
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

/// Writes named tensors to a safetensors file (HF metadata `format: pt`) and fsyncs it.
pub(crate) fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut bufs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
        let numel = t.numel();
        let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut data, numel)?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        bufs.push((name.clone(), dtype_of(t.kind())?, shape, data));
    }
    let views = bufs
        .iter()
        .map(|(n, dt, shape, data)| {
            TensorView::new(*dt, shape.clone(), data)
                .map(|v| (n.as_str(), v))
                .map_err(|e| ModelError::BadInput(format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(views, Some(meta), path).map_err(|e| {
        ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Creates `dir` atomically: `fill` writes into a fresh temporary folder next to it, which is
/// fsynced and renamed to `dir` (an existing `dir` is swapped out and removed).
pub(crate) fn write_dir_atomically(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let name = dir
        .file_name()
        .ok_or_else(|| ModelError::BadInput(format!("{} has no folder name", dir.display())))?
        .to_string_lossy()
        .to_string();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let stamp = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = parent.join(format!(".{name}.tmp-{stamp}"));
    std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    let result = (|| {
        fill(&tmp)?;
        for entry in std::fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let p = entry.map_err(io_err(&tmp))?.path();
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&p))?;
        }
        fsync_dir(&tmp)?;
        if dir.exists() {
            let old = parent.join(format!(".{name}.old-{stamp}"));
            std::fs::rename(dir, &old).map_err(io_err(dir))?;
            std::fs::rename(&tmp, dir).map_err(io_err(dir))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&tmp, dir).map_err(io_err(dir))?;
        }
        fsync_dir(&parent)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
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
