//! `kidbench plugins`: the KD method plugins found, their parameters, and load failures.

use std::path::PathBuf;

use anyhow::Result;
use kidbench_plugin_host::{search_dirs, Registry};

#[derive(clap::Args, Debug)]
pub struct PluginsArgs {
    /// Extra folder to search for plugin libraries (searched first; repeatable).
    #[arg(long = "plugin-dir")]
    pub plugin_dirs: Vec<PathBuf>,
}

pub fn run(args: &PluginsArgs) -> Result<()> {
    let dirs = search_dirs(&args.plugin_dirs);
    let reg = Registry::discover(&dirs);
    for e in reg.list() {
        println!("{} {}  {}", e.name, e.version, e.description);
        println!("    from {}", e.path.display());
        for p in &e.params {
            let mut extra = String::new();
            if let Some((lo, hi)) = p.range {
                extra = format!(" in [{lo}, {hi}]");
            }
            if !p.choices.is_empty() {
                extra = format!(" one of {}", p.choices.join("|"));
            }
            println!("    {}={} ({:?}{extra})", p.name, p.default, p.kind);
        }
    }
    for f in reg.failures() {
        println!("failed to load: {f}");
    }
    if reg.list().is_empty() {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        anyhow::bail!(
            "no plugins found in {} (build them with `cargo build --workspace`, or pass --plugin-dir)",
            shown.join(", ")
        );
    }
    Ok(())
}
