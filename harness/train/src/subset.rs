//! Pretrained students by layer subset (`--student-layers`): a student made from a pretrained
//! checkpoint by keeping some of its decoder layers ([`kidbench_model::subset`]), cached under
//! `$KIDBENCH_HOME/student-subsets/<key>/`, the key a hash of the parent folder's files (by
//! SHA-256) and the kept layers.
//!
//! `every:K` keeps layers `0, K, 2K, ...` and always the last one: DistilBERT-style students
//! keep both ends of the network (the first layer reads the embeddings, the last one writes
//! what the LM head reads). SmolLM2's 30 layers with `every:3` keep
//! `0,3,6,9,12,15,18,21,24,27,29` (11 layers). An explicit list (`0,3,6,29`) keeps exactly those
//! layers, listed once each in increasing order.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kidbench_model::subset::{check_layers, write_layer_subset, SUBSET_FILE};

use crate::presets::Resolved;

/// The flag this module serves (named by every error).
pub const FLAG: &str = "--student-layers";

/// A layer subset as the user writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSpec {
    /// `every:K`: layers `0, K, 2K, ...` and the last layer.
    Every(i64),
    /// `0,3,6`: exactly these layers.
    List(Vec<i64>),
}

impl std::str::FromStr for LayerSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<LayerSpec> {
        let t = s.trim();
        if let Some(k) = t.strip_prefix("every:") {
            let k: i64 = k
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{FLAG} {s}: every:K needs a positive integer K"))?;
            anyhow::ensure!(k >= 1, "{FLAG} {s}: every:K needs K >= 1");
            return Ok(LayerSpec::Every(k));
        }
        anyhow::ensure!(
            !t.is_empty(),
            "{FLAG}: the layer subset is empty; give every:K or a list such as 0,3,6"
        );
        let list = t
            .split(',')
            .map(|p| {
                p.trim().parse::<i64>().map_err(|_| {
                    anyhow::anyhow!(
                        "{FLAG} {s}: '{}' is not a layer index; give every:K or a list such as 0,3,6",
                        p.trim()
                    )
                })
            })
            .collect::<anyhow::Result<Vec<i64>>>()?;
        Ok(LayerSpec::List(list))
    }
}

impl LayerSpec {
    /// The kept layers of a model with `layers` layers, checked.
    pub fn layers(&self, layers: i64) -> anyhow::Result<Vec<i64>> {
        let keep = match self {
            LayerSpec::Every(k) => {
                let mut v: Vec<i64> = (0..layers).step_by(*k as usize).collect();
                if layers > 0 && v.last() != Some(&(layers - 1)) {
                    v.push(layers - 1);
                }
                v
            }
            LayerSpec::List(v) => v.clone(),
        };
        check_layers(&keep, layers).map_err(|e| anyhow::anyhow!("{FLAG} {}: {e}", self))?;
        Ok(keep)
    }
}

impl std::fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerSpec::Every(k) => write!(f, "every:{k}"),
            LayerSpec::List(v) => {
                let s: Vec<String> = v.iter().map(i64::to_string).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// SHA-256 of every file of `dir` (names sorted), hashed together.
fn folder_key(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.path().is_file() {
            continue;
        }
        out.push((name, crate::bench::sha256_file(&e.path())?));
    }
    out.sort();
    Ok(out)
}

/// The folder of the student made of `spec`'s layers of the checkpoint `parent`, written on
/// first use (under a lock; concurrent runs wait and reuse it).
pub fn subset_dir(parent: &Path, spec: &LayerSpec) -> anyhow::Result<PathBuf> {
    let cfg = kidbench_model::load_config(parent)
        .with_context(|| format!("{FLAG} {spec}: reading the model in {}", parent.display()))?;
    let keep = spec.layers(cfg.num_hidden_layers)?;
    let key = {
        use sha2::{Digest, Sha256};
        let text = serde_json::to_string(&serde_json::json!({
            "v": 1,
            "parent": folder_key(parent)?,
            "layers": keep,
        }))?;
        hex::encode(Sha256::digest(text.as_bytes()))
    };
    let dir = crate::cache::kidbench_home()
        .join("student-subsets")
        .join(&key[..16]);
    std::fs::create_dir_all(dir.parent().unwrap_or(&dir))
        .with_context(|| format!("creating {}", dir.display()))?;
    let _lock = crate::bench::LockFile::acquire(&dir.with_extension("lock"))
        .with_context(|| format!("locking {}", dir.display()))?;
    // The folder is renamed into place whole, so one with its provenance file is complete.
    if !dir.join(SUBSET_FILE).is_file() {
        write_layer_subset(parent, &keep, &dir).with_context(|| {
            format!(
                "{FLAG} {spec}: writing layers {keep:?} of {} to {}",
                parent.display(),
                dir.display()
            )
        })?;
    }
    Ok(dir)
}

/// The student `resolved` replaced by its layer subset `spec` (a pretrained folder only),
/// named `<model>-<kept>of<layers>` (`smollm2-135m-11of30`).
pub fn apply(resolved: Resolved, spec: &str) -> anyhow::Result<Resolved> {
    let layers: LayerSpec = spec.parse()?;
    match resolved {
        Resolved::Local { name, dir, .. } => {
            let parent_layers = kidbench_model::load_config(&dir)
                .with_context(|| format!("{FLAG} {spec}: reading the model in {}", dir.display()))?
                .num_hidden_layers;
            let kept = layers.layers(parent_layers)?.len();
            Ok(Resolved::Local {
                // no longer the preset itself: named after it and its layers
                spec: None,
                name: format!("{name}-{kept}of{parent_layers}"),
                dir: subset_dir(&dir, &layers)?,
            })
        }
        Resolved::Scratch(s) => anyhow::bail!(
            "{FLAG} {spec}: the student {} is trained from scratch; a layer subset needs a \
             pretrained student (a named model such as smollm2-135m, or its folder)",
            s.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_k_keeps_both_ends() {
        let e: LayerSpec = "every:3".parse().unwrap();
        assert_eq!(
            e.layers(30).unwrap(),
            vec![0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29]
        );
        assert_eq!(e.layers(4).unwrap(), vec![0, 3]);
        assert_eq!(e.layers(1).unwrap(), vec![0]);
        let all: LayerSpec = "every:1".parse().unwrap();
        assert_eq!(all.layers(3).unwrap(), vec![0, 1, 2]);
        let l: LayerSpec = " 0, 3,6 ".parse().unwrap();
        assert_eq!(l, LayerSpec::List(vec![0, 3, 6]));
        assert_eq!(l.to_string(), "0,3,6");
        assert_eq!(l.layers(7).unwrap(), vec![0, 3, 6]);
    }

    #[test]
    fn bad_subsets_name_the_flag() {
        for (spec, layers, want) in [
            ("", 4, "empty"),
            ("every:0", 4, "K >= 1"),
            ("every:x", 4, "positive integer"),
            ("0,a", 4, "'a' is not a layer index"),
            ("0,4", 4, "layer 4 is out of range"),
            ("3,1", 4, "increasing"),
        ] {
            let e = spec
                .parse::<LayerSpec>()
                .and_then(|s| s.layers(layers))
                .unwrap_err()
                .to_string();
            assert!(e.contains(FLAG) && e.contains(want), "{spec}: {e}");
        }
    }
}
