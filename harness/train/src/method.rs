//! Training methods are KD plugins (`kidbench-plugin-host`): the trainer drives a
//! [`PluginMethod`] for every method, SFT included. The `sft` plugin is also linked into kidbench
//! ([`builtin_sft`]): teachers are trained with it, and it stands in for `sft` when no plugin
//! file named `sft` is found.
//!
//! `--methods` takes method specs `name[:key=value,...]`; a comma separates methods, except
//! before a `key=value` piece, which belongs to the method before it:
//! `sft,kid:alpha=0.3,strategy=hard,gkd` is `sft`, `kid:alpha=0.3,strategy=hard` and `gkd`.
//! (Write boolean parameters as `key=true` in a list; a bare word starts a new method.)

use std::path::{Path, PathBuf};

use kidbench_plugin_host::{
    parse_method_spec, search_dirs, PluginEntry, PluginError, PluginMethod, Registry,
};

use crate::TrainError;

/// The path shown for the linked-in sft plugin.
pub const BUILTIN_PATH: &str = "<built into kidbench>";

/// The `sft` plugin linked into kidbench (no plugin file needed).
pub fn builtin_sft_entry() -> Result<PluginEntry, PluginError> {
    PluginEntry::from_module(
        kidbench_plugin_sft::kidbench_plugin_root(),
        Path::new(BUILTIN_PATH),
    )
}

/// A fresh SFT method from the linked-in plugin (how teachers are trained).
pub fn builtin_sft() -> Result<PluginMethod, PluginError> {
    builtin_sft_entry()?.create(&[])
}

/// The plugins in [`search_dirs`]`(plugin_dirs)` (`--plugin-dir`, `KIDBENCH_PLUGIN_PATH`, the
/// executable's build folder), plus the linked-in `sft` when no `sft` plugin file was found.
pub fn registry(plugin_dirs: &[PathBuf]) -> Registry {
    let mut reg = Registry::discover(&search_dirs(plugin_dirs));
    if reg.get("sft").is_err() {
        if let Ok(e) = builtin_sft_entry() {
            reg.add(e);
        }
    }
    reg
}

/// One method of a run: the plugin name, its parameters as given, and a file-safe label.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MethodSpec {
    pub name: String,
    pub params: Vec<(String, String)>,
    /// Unique within a run; names the method's files (`metrics/<label>.jsonl`, ...).
    pub label: String,
}

impl MethodSpec {
    /// `key=value,key=value` (empty without parameters); the `params` column of results.csv.
    pub fn params_string(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `name:key=value,...`, as [`Registry::create`] takes it.
    pub fn spec(&self) -> String {
        if self.params.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, self.params_string())
        }
    }

    /// `name (key=value, ...)` for tables.
    pub fn display(&self) -> String {
        if self.params.is_empty() {
            self.name.clone()
        } else {
            let p: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{} ({})", self.name, p.join(", "))
        }
    }
}

/// Splits `--methods` values into method specs (see the module docs).
pub fn split_specs(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        for piece in item.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let is_param = piece.contains('=') && !piece.contains(':');
            match out.last_mut() {
                Some(last) if is_param => {
                    if last.contains(':') {
                        last.push(',');
                    } else {
                        last.push(':');
                    }
                    last.push_str(piece);
                }
                _ => out.push(piece.to_string()),
            }
        }
    }
    out
}

/// Only letters, digits, `.` and `-` (others become `_`): safe in a file name.
pub fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Parses `--methods` values; an error for a malformed spec, an empty list, or a method listed
/// twice. Whether the methods exist is checked against a [`Registry`] ([`resolve`]).
pub fn parse_specs(items: &[String]) -> Result<Vec<MethodSpec>, TrainError> {
    let mut out: Vec<MethodSpec> = Vec::new();
    for spec in split_specs(items) {
        let (name, params) =
            parse_method_spec(&spec).map_err(|e| TrainError::Config(e.to_string()))?;
        let label = if params.is_empty() {
            file_safe(&name)
        } else {
            let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}-{v}")).collect();
            file_safe(&format!("{name}_{}", p.join("_")))
        };
        let m = MethodSpec {
            name,
            params,
            label,
        };
        if out.iter().any(|o| o.label == m.label) {
            return Err(TrainError::Config(format!(
                "method '{}' is listed twice in --methods",
                m.spec()
            )));
        }
        out.push(m);
    }
    if out.is_empty() {
        return Err(TrainError::Config("--methods names no method".into()));
    }
    Ok(out)
}

/// Creates every method of `specs` from `reg` (an unknown method lists the available ones; a
/// bad parameter names the valid ones or the range).
pub fn resolve(
    reg: &Registry,
    specs: &[MethodSpec],
) -> Result<Vec<(MethodSpec, PluginMethod)>, PluginError> {
    specs
        .iter()
        .map(|s| Ok((s.clone(), reg.get(&s.name)?.create(&s.params)?)))
        .collect()
}
