//! Device selection and CUDA runtime loading.

use tch::Device;

/// Loads `libtorch_cuda.so` (searched by `dlopen`, i.e. through `LD_LIBRARY_PATH` and the
/// system paths) with `RTLD_NOW | RTLD_GLOBAL` and leaks the handle so it stays loaded.
/// Returns whether it loaded.
///
/// libtorch registers its CUDA backend from that library's static initializers; binaries
/// linked only against the CPU view never load it. Call this first thing in `main`, before
/// ANY tch call, or CUDA will not be available.
pub fn load_cuda_runtime() -> bool {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading libtorch_cuda runs its static initializers, which register the CUDA
    // backend with the already-linked libtorch; the handle is leaked so it is never unloaded.
    match unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) } {
        Ok(lib) => {
            std::mem::forget(lib);
            true
        }
        Err(_) => false,
    }
}

/// CUDA device 0 when CUDA is available, else CPU.
pub fn best_device() -> Device {
    Device::cuda_if_available()
}

/// The precision of a model's parameters and activations (`--dtype`). Logits are fp32 either
/// way ([`crate::Qwen2ForCausalLM::logits`]), and so is every loss computed from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Fp32,
    Bf16,
}

impl Dtype {
    /// Names accepted by `--dtype` (and their aliases, for the error message).
    pub const NAMES: &'static str = "fp32 (float32, f32) or bf16 (bfloat16)";

    /// `fp32` | `float32` | `f32` | `bf16` | `bfloat16` (case-insensitive).
    pub fn parse(s: &str) -> Result<Dtype, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "f32" => Ok(Dtype::Fp32),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            other => Err(format!("unknown dtype '{other}'; use {}", Dtype::NAMES)),
        }
    }

    /// The default on a device: bf16 on CUDA, fp32 elsewhere.
    pub fn default_for(device: Device) -> Dtype {
        match device {
            Device::Cuda(_) => Dtype::Bf16,
            _ => Dtype::Fp32,
        }
    }

    /// The libtorch kind of the parameters.
    pub fn kind(self) -> tch::Kind {
        match self {
            Dtype::Fp32 => tch::Kind::Float,
            Dtype::Bf16 => tch::Kind::BFloat16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names_and_defaults() {
        assert_eq!(Dtype::parse("BF16"), Ok(Dtype::Bf16));
        assert_eq!(Dtype::parse("bfloat16"), Ok(Dtype::Bf16));
        assert_eq!(Dtype::parse(" fp32 "), Ok(Dtype::Fp32));
        assert_eq!(Dtype::parse("float32"), Ok(Dtype::Fp32));
        let e = Dtype::parse("fp16").unwrap_err();
        assert!(e.contains("'fp16'") && e.contains("bf16"), "{e}");
        assert_eq!(Dtype::default_for(Device::Cpu), Dtype::Fp32);
        assert_eq!(Dtype::default_for(Device::Cuda(0)), Dtype::Bf16);
        assert_eq!(Dtype::Bf16.kind(), tch::Kind::BFloat16);
        assert_eq!(Dtype::Fp32.to_string(), "fp32");
    }
}
