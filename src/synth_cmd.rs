//! `kidbench synth` and `kidbench benchmarks`: generate the embedded benchmark, list the registry.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kidbench_sql::benchmark::{Benchmark, Location};
use kidbench_synth::SynthConfig;

use crate::paths::{shown, DataArgs};

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Seed of every random choice; the same seed gives byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (default: `<databases>/synth`, where the `synth` benchmark reads).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Regenerate even when the folder already holds this seed's output.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn synth_dir(data: &DataArgs) -> PathBuf {
    data.roots().databases.join("synth")
}

/// Generates synth into `dir` unless it already holds the output of `cfg` and every file
/// matches its manifest (size and SHA-256); a file that does not match is named on stderr and
/// the folder regenerated. Concurrent calls on one folder wait for each other (a lock beside
/// it) and the later ones reuse. Returns the manifest and whether it was generated now.
pub fn ensure_synth(
    dir: &std::path::Path,
    cfg: &SynthConfig,
    force: bool,
) -> Result<(kidbench_synth::Manifest, bool)> {
    let e = kidbench_synth::ensure(dir, cfg, force)
        .with_context(|| format!("generating synth into {}", dir.display()))?;
    Ok((e.manifest, e.generated.is_some()))
}

pub fn run(args: &SynthArgs) -> Result<()> {
    let dir = args.out.clone().unwrap_or_else(|| synth_dir(&args.data));
    let cfg = SynthConfig {
        seed: args.seed,
        ..SynthConfig::default()
    };
    let (m, fresh) = ensure_synth(&dir, &cfg, args.force)?;
    println!(
        "synth {} in {}: {} databases{}",
        if fresh { "generated" } else { "up to date" },
        shown(&dir),
        m.databases.len(),
        if fresh {
            ""
        } else {
            ", every file verified against manifest.json"
        }
    );
    for (split, c) in &m.splits {
        println!(
            "  {split}: {} pairs over {} databases, hardness {}",
            c.pairs,
            c.databases,
            serde_json::to_string(&c.by_hardness)?
        );
    }
    Ok(())
}

/// Opens a benchmark by name; the generated `synth` benchmark is generated first if missing.
pub fn open_benchmark(data: &DataArgs, name: &str) -> Result<Benchmark> {
    let registry = data.registry()?;
    let roots = data.roots();
    let bench = registry.open(name, &roots)?;
    if bench.spec.location == Location::Databases && bench.name() == "synth" {
        ensure_synth(&synth_dir(data), &SynthConfig::default(), false)?;
    }
    let first = bench.question_paths(kidbench_sql::benchmark::Split::Dev)?;
    if let Some(missing) = first.iter().find(|p| !p.exists()) {
        anyhow::bail!(
            "benchmark '{}': {} does not exist (data directory {}; set --data-dir or KIDBENCH_DATA)",
            bench.name(),
            missing.display(),
            shown(&bench.base)
        );
    }
    Ok(bench)
}

#[derive(clap::Args, Debug)]
pub struct BenchmarksArgs {
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn list(args: &BenchmarksArgs) -> Result<()> {
    let registry = args.data.registry()?;
    let roots = args.data.roots();
    for name in registry.names() {
        let (spec, source) = registry.get(&name)?;
        let bench = registry.open(&name, &roots)?;
        let present = bench
            .question_paths(kidbench_sql::benchmark::Split::Dev)
            .map(|ps| ps.iter().all(|p| p.exists()))
            .unwrap_or(false);
        println!(
            "{name:<18} {:<10} {:<40} {}  [{source}]",
            spec.compare.as_str(),
            spec.description,
            if present { "present" } else { "not found" },
        );
    }
    println!("data directory: {}", shown(&roots.data));
    println!("databases directory: {}", shown(&roots.databases));
    Ok(())
}
