//! `kidbench doctor`: what this binary runs on and where it looks for things.

use std::path::PathBuf;

use anyhow::Result;

use crate::paths::{shown, DataArgs};

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub data: DataArgs,
}

/// The libtorch shared library actually mapped into this process (it can differ from the build's
/// when LD_LIBRARY_PATH points elsewhere, as on a CUDA machine).
fn loaded_library(name: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.rsplit('/').next().is_some_and(|f| f.starts_with(name)))
        .map(str::to_string)
}

fn gpu_name() -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .replace('\n', "; ")
    })
}

pub fn run(args: &DoctorArgs, cuda_loaded: bool) -> Result<()> {
    let build = PathBuf::from(env!("KIDBENCH_BUILD_LIBTORCH"));
    let version = std::fs::read_to_string(build.join("build-version"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|_| "unknown (no build-version file)".into());
    println!("kidbench {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch (build): {version} at {}", build.display());
    // Any tensor op maps libtorch; do one so the path below is what really runs.
    let _ = tch::Tensor::from(1.0f64).double_value(&[]);
    println!(
        "libtorch (loaded): {}",
        loaded_library("libtorch_cpu").unwrap_or_else(|| "not found in /proc/self/maps".into())
    );
    let cuda = tch::Cuda::is_available();
    println!(
        "libtorch_cuda.so: {}",
        if cuda_loaded {
            loaded_library("libtorch_cuda").unwrap_or_else(|| "loaded".into())
        } else {
            "not found (CPU only; put a CUDA libtorch's lib folder on LD_LIBRARY_PATH to use a GPU)"
                .into()
        }
    );
    println!(
        "CUDA available: {cuda} ({} device(s)){}",
        tch::Cuda::device_count(),
        gpu_name().map(|n| format!(", {n}")).unwrap_or_default()
    );
    println!("CPU threads for libtorch: {}", tch::get_num_threads());
    // main has tuned it already: this returns what that call did.
    println!("allocator: {}", kidbench_model::tune_allocator());
    let machine = kidbench_results::Machine::this(tch::get_num_threads().max(1) as usize, "cpu");
    println!(
        "CPU: {} [{}]; kernel settings: {} (runs record this; the same seed on another CPU or thread count can train another model)",
        machine.cpu,
        machine.flags.join(" "),
        if machine.env.is_empty() {
            "none set".to_string()
        } else {
            machine.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
        }
    );
    let roots = args.data.roots();
    println!("data directory: {}", shown(&roots.data));
    println!("databases directory: {}", shown(&roots.databases));
    println!(
        "models directory ($KIDBENCH_MODELS): {}",
        std::env::var("KIDBENCH_MODELS").unwrap_or_else(|_| "not set".into())
    );
    Ok(())
}
