//! A smaller model made from a checkpoint by keeping a subset of its decoder layers, the way
//! DistilBERT initialised its student from every other layer of BERT: a real teacher/student
//! capacity gap from one pretrained checkpoint.
//!
//! The subset is a new HF folder: `config.json` with `num_hidden_layers` (and `layer_types`,
//! when present) reduced, `model.safetensors` holding the embedding, the final norm, the LM
//! head (when untied) and the kept layers renumbered `0..k` with their bytes unchanged, every
//! other file of the parent (tokenizer, generation config, ...) copied, and
//! `kidbench_subset.json` naming the parent and the kept layers.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::TensorView;

use crate::checkpoint::{checkpoint_files, load_config, CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE};
use crate::error::{io_err, ModelError, Result};
use crate::safetensors_io::{parse, read_file, write_dir_atomically};

/// Provenance file of a subset folder.
pub const SUBSET_FILE: &str = "kidbench_subset.json";

const LAYER_PREFIX: &str = "model.layers.";

/// `model.layers.<i>.<rest>` → `(i, rest)`.
fn layer_of(name: &str) -> Option<(i64, &str)> {
    let tail = name.strip_prefix(LAYER_PREFIX)?;
    let (idx, rest) = tail.split_once('.')?;
    Some((idx.parse().ok()?, rest))
}

/// Checks `keep` against a model of `layers` layers: not empty, every index in `0..layers`,
/// strictly increasing (a layer once, in the parent's order).
pub fn check_layers(keep: &[i64], layers: i64) -> Result<()> {
    if keep.is_empty() {
        return Err(ModelError::BadInput(
            "the layer subset is empty; keep at least one layer".into(),
        ));
    }
    if let Some(bad) = keep.iter().find(|&&i| i < 0 || i >= layers) {
        return Err(ModelError::BadInput(format!(
            "layer {bad} is out of range: the model has {layers} layers (0..={})",
            layers - 1
        )));
    }
    if let Some(w) = keep.windows(2).find(|w| w[0] >= w[1]) {
        return Err(ModelError::BadInput(format!(
            "layers must be listed once each in increasing order, got {} then {}",
            w[0], w[1]
        )));
    }
    Ok(())
}

/// Writes `out` (atomically): the checkpoint `parent` with only the decoder layers `keep`
/// (parent indices, strictly increasing), renumbered `0..keep.len()`.
pub fn write_layer_subset(parent: &Path, keep: &[i64], out: &Path) -> Result<()> {
    let cfg = load_config(parent)?;
    check_layers(keep, cfg.num_hidden_layers)?;
    let (files, _) = checkpoint_files(parent)?;
    let new_index: BTreeMap<i64, i64> = keep
        .iter()
        .enumerate()
        .map(|(new, &old)| (old, new as i64))
        .collect();

    let config_path = parent.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: config_path.clone(),
            source,
        })?;
    config["num_hidden_layers"] = keep.len().into();
    if let Some(serde_json::Value::Array(types)) = config.get("layer_types").cloned() {
        if types.len() as i64 == cfg.num_hidden_layers {
            let kept: Vec<serde_json::Value> =
                keep.iter().map(|&i| types[i as usize].clone()).collect();
            config["layer_types"] = kept.into();
        }
    }
    let config_text = serde_json::to_string_pretty(&config)
        .map_err(|e| ModelError::InvalidConfig(format!("cannot serialize config: {e}")))?;

    let buffers: Vec<Vec<u8>> = files.iter().map(|f| read_file(f)).collect::<Result<_>>()?;
    let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
    let mut seen_layers = std::collections::BTreeSet::new();
    for (path, bytes) in files.iter().zip(&buffers) {
        let st = parse(path, bytes)?;
        for (name, view) in st.tensors() {
            let renamed = match layer_of(&name) {
                Some((old, rest)) => {
                    seen_layers.insert(old);
                    match new_index.get(&old) {
                        Some(new) => format!("{LAYER_PREFIX}{new}.{rest}"),
                        None => continue,
                    }
                }
                None => name.clone(),
            };
            views.push((renamed, view));
        }
    }
    if let Some(missing) = keep.iter().find(|i| !seen_layers.contains(i)) {
        return Err(ModelError::MissingTensor {
            path: parent.to_path_buf(),
            name: format!("{LAYER_PREFIX}{missing}.*"),
        });
    }
    views.sort_by(|a, b| a.0.cmp(&b.0));

    let skip: Vec<std::ffi::OsString> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_os_string()))
        .chain([CONFIG_FILE, WEIGHTS_FILE, INDEX_FILE, SUBSET_FILE].map(Into::into))
        .collect();
    let provenance = serde_json::json!({
        "parent": parent.display().to_string(),
        "parent_layers": cfg.num_hidden_layers,
        "layers": keep,
    });
    write_dir_atomically(out, |tmp| {
        let p = tmp.join(CONFIG_FILE);
        std::fs::write(&p, config_text.as_bytes()).map_err(io_err(&p))?;
        let p = tmp.join(WEIGHTS_FILE);
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::tensor::serialize_to_file(views, Some(meta), &p).map_err(|e| {
            ModelError::Io {
                path: p.clone(),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        let p = tmp.join(SUBSET_FILE);
        let text = serde_json::to_string_pretty(&provenance).unwrap_or_default();
        std::fs::write(&p, text.as_bytes()).map_err(io_err(&p))?;
        for e in std::fs::read_dir(parent).map_err(io_err(parent))? {
            let e = e.map_err(io_err(parent))?;
            let name = e.file_name();
            let hidden = name.to_string_lossy().starts_with('.');
            if hidden || skip.contains(&name) || !e.path().is_file() {
                continue;
            }
            let dst = tmp.join(&name);
            std::fs::copy(e.path(), &dst).map_err(io_err(&dst))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_parse() {
        assert_eq!(
            layer_of("model.layers.12.mlp.up_proj.weight"),
            Some((12, "mlp.up_proj.weight"))
        );
        assert_eq!(layer_of("model.norm.weight"), None);
        assert_eq!(layer_of("model.layers.x.mlp"), None);
    }

    #[test]
    fn bad_subsets_are_named() {
        let e = check_layers(&[], 4).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = check_layers(&[0, 4], 4).unwrap_err().to_string();
        assert!(
            e.contains("layer 4 is out of range") && e.contains("4 layers"),
            "{e}"
        );
        let e = check_layers(&[-1], 4).unwrap_err().to_string();
        assert!(e.contains("layer -1"), "{e}");
        let e = check_layers(&[2, 1], 4).unwrap_err().to_string();
        assert!(e.contains("increasing"), "{e}");
        let e = check_layers(&[1, 1], 4).unwrap_err().to_string();
        assert!(e.contains("increasing"), "{e}");
        check_layers(&[0, 3], 4).unwrap();
    }
}
