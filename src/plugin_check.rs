//! `kidbench plugin check NAME|PATH [--params key=value,...]`: loads one plugin through the
//! normal host and runs the conformance suite of `kidbench_plugin_host::check` against its toy
//! models, printing one line per property (what was measured, what was expected); exits
//! non-zero when a property fails.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use kidbench_plugin_host::check::{self, Report};
use kidbench_plugin_host::{parse_method_spec, search_dirs, PluginError, Registry, FILE_PREFIX};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// A plugin name (searched like `kidbench plugins`) or the path of a plugin library.
    pub plugin: String,
    /// Parameters to create the method with, `key=value,...` (as after `name:` in --methods).
    #[arg(long)]
    pub params: Option<String>,
    /// Extra folder to search for plugin libraries (searched first; repeatable).
    #[arg(long = "plugin-dir")]
    pub plugin_dirs: Vec<PathBuf>,
}

/// Whether `s` names a library file rather than a plugin.
fn is_path(s: &str) -> bool {
    s.contains(std::path::MAIN_SEPARATOR)
        || s.contains('/')
        || s.ends_with(std::env::consts::DLL_SUFFIX)
        || Path::new(s).is_file()
}

/// The file of a plugin that failed to load, when its file is named after `name`.
fn failed_file(reg: &Registry, name: &str) -> Option<PathBuf> {
    let file = format!(
        "{}{FILE_PREFIX}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    reg.failures().iter().find_map(|e| {
        let path = match e {
            PluginError::NotALibrary { path, .. }
            | PluginError::MissingSymbol { path, .. }
            | PluginError::Incompatible { path, .. }
            | PluginError::AbiVersion { path, .. }
            | PluginError::TorchVersion { path, .. } => path,
            _ => return None,
        };
        (path.file_name().and_then(|n| n.to_str()) == Some(file.as_str())).then(|| path.clone())
    })
}

/// The report of the plugin `args` names.
pub fn report(args: &CheckArgs) -> Result<Report> {
    let params = match &args.params {
        Some(p) if !p.trim().is_empty() => parse_method_spec(&format!("params:{p}"))?.1,
        _ => Vec::new(),
    };
    if is_path(&args.plugin) {
        let path = PathBuf::from(&args.plugin);
        if !path.is_file() {
            bail!("{}: no such plugin library", path.display());
        }
        return Ok(check::check_file(&path, &params));
    }
    let reg = Registry::discover(&search_dirs(&args.plugin_dirs));
    let name = args.plugin.trim().to_ascii_lowercase();
    match reg.get(&name) {
        Ok(entry) => Ok(check::check(entry, &params)),
        // a library of that name that does not load: its `load` property fails
        Err(e) => match failed_file(&reg, &name) {
            Some(path) => Ok(check::check_file(&path, &params)),
            None => Err(e.into()),
        },
    }
}

pub fn run(args: &CheckArgs) -> Result<()> {
    let r = report(args)?;
    println!("{r}");
    let failed: Vec<&str> = r.failures().iter().map(|p| p.name()).collect();
    if !failed.is_empty() {
        bail!(
            "plugin '{}' fails {} of {} properties: {}",
            r.plugin,
            failed.len(),
            r.findings.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kidbench_plugin_host::check::{Outcome, Property};

    fn args(plugin: &str, params: Option<&str>) -> CheckArgs {
        CheckArgs {
            plugin: plugin.to_string(),
            params: params.map(str::to_string),
            plugin_dirs: Vec::new(),
        }
    }

    /// `target/<profile>/` of this test binary (`target/<profile>/deps/kidbench-*`), where
    /// `cargo build --workspace` puts the plugin libraries.
    fn built(stem: &str) -> PathBuf {
        let exe = std::env::current_exe().expect("current exe");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        dir.join(format!(
            "{}{stem}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
    }

    #[test]
    fn names_and_paths_are_told_apart() {
        assert!(!is_path("kid"));
        assert!(is_path("./libx.so"));
        assert!(is_path("target/debug/libkidbench_plugin_kid.so"));
        assert!(is_path("libkidbench_plugin_kid.so"));
    }

    #[test]
    fn unknown_names_and_missing_files_are_clear_errors() {
        let e = report(&args("no_such_method", None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown method 'no_such_method'; available:"),
            "{e}"
        );
        let e = report(&args("/nonexistent/libkidbench_plugin_x.so", None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such plugin library"), "{e}");
        let e = report(&args("kid", Some("alpha="))).map(|r| r.passed());
        // a bare key is `key=`; for a float that is refused, naming the parameter
        assert!(matches!(e, Ok(false)), "{e:?}");
    }

    /// Needs `cargo build --workspace` (the plugin libraries in target/<profile>/).
    #[test]
    fn kid_passes_by_name_and_a_fixture_fails_its_property_by_path() {
        let r = report(&args("kid", Some("alpha=0.3,strategy=hard"))).expect("kid");
        assert!(r.passed(), "{r}");
        assert_eq!(
            r.params,
            [
                ("alpha".to_string(), "0.3".to_string()),
                ("strategy".into(), "hard".into())
            ]
        );
        let path = built("kidbench_broken_swapped_kl");
        let a = args(path.to_str().expect("utf-8"), None);
        let r = report(&a).expect("swapped_kl");
        assert_eq!(r.failures(), [Property::Divergence], "{r}");
        let e = run(&a).unwrap_err().to_string();
        assert!(
            e.contains("plugin 'swapped_kl' fails 1 of 9 properties: divergence"),
            "{e}"
        );
        // a library that does not load fails `load`, the rest is skipped
        let r = report(&args(
            built("kidbench_broken_wrong_abi").to_str().unwrap(),
            None,
        ))
        .expect("wrong_abi");
        assert_eq!(r.failures(), [Property::Load], "{r}");
        assert!(r
            .findings
            .iter()
            .skip(1)
            .all(|f| f.outcome == Outcome::Skip));
    }
}
