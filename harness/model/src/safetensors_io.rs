//! Safetensors files and atomic folders: what checkpoints and LoRA adapters both read and
//! write (a leaf module: it knows no model, so `checkpoint` and `lora` do not import each
//! other for it).

use std::fs::File;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{Device, Kind, Tensor};

use crate::error::{io_err, ModelError, Result};

pub(crate) fn corrupt(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(crate) fn dtype_of(kind: Kind) -> Result<Dtype> {
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

pub(crate) fn kind_of(dtype: Dtype, path: &Path, name: &str) -> Result<Kind> {
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

pub(crate) fn view_to_tensor(view: &TensorView, path: &Path, name: &str) -> Result<Tensor> {
    let size: Vec<i64> = view.shape().iter().map(|&x| x as i64).collect();
    let kind = kind_of(view.dtype(), path, name)?;
    Ok(Tensor::f_from_data_size(view.data(), &size, kind)?)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io_err(path))
}

pub(crate) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
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

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
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
