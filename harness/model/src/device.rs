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

/// What [`tune_allocator`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorTuning {
    /// glibc's heap keeps freed memory (trim threshold 2 GiB - 1, 64 MiB top pad) and serves
    /// blocks up to 32 MiB from the heap instead of fresh `mmap`s.
    Applied,
    /// Left as it was: `GLIBC_TUNABLES` sets a `glibc.malloc.` tunable, or
    /// `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_` or `MALLOC_MMAP_THRESHOLD_` is set (the
    /// user's choice wins), or `KIDBENCH_MALLOC=default`.
    LeftToUser,
    /// Not a glibc target, or glibc refused a setting.
    Unavailable,
}

impl std::fmt::Display for AllocatorTuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AllocatorTuning::Applied => {
                "glibc's heap keeps freed memory (trim threshold 2 GiB, top pad 64 MiB, mmap \
                 threshold 32 MiB; KIDBENCH_MALLOC=default for glibc's defaults)"
            }
            AllocatorTuning::LeftToUser => {
                "glibc's defaults or the user's (a glibc.malloc tunable, MALLOC_*_ or \
                 KIDBENCH_MALLOC=default is set)"
            }
            AllocatorTuning::Unavailable => {
                "the platform's defaults (not glibc, or glibc refused a setting)"
            }
        })
    }
}

/// Keeps freed tensor memory in the process instead of handing it back to the kernel.
///
/// libtorch's CPU allocator is `malloc`. With glibc's defaults every training step frees its
/// activations, glibc trims the top of the heap (or unmaps a large block), and the next step
/// takes the same memory back through page faults that the kernel zeroes first:
/// `bench-hf.py perf-split` measured 18 % of a tiny-m SFT step and 29 % of a KID step in
/// allocation, page faults and the kernel's page clearing (docs/PERFORMANCE.md). Raising the
/// trim and mmap thresholds makes the heap reuse that memory; the price is that the resident
/// size stays at its peak. Call it first thing in `main`, before tensors are allocated; later
/// calls only return what the first one did.
pub fn tune_allocator() -> AllocatorTuning {
    static DONE: std::sync::OnceLock<AllocatorTuning> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| {
        if left_to_user(|k| std::env::var(k).ok()) {
            AllocatorTuning::LeftToUser
        } else {
            glibc_tuning()
        }
    })
}

/// Whether the environment (`var`) already says how glibc's allocator should behave.
fn left_to_user(var: impl Fn(&str) -> Option<String>) -> bool {
    [
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_TOP_PAD_",
        "MALLOC_MMAP_THRESHOLD_",
    ]
    .iter()
    .any(|k| var(k).is_some())
        || var("GLIBC_TUNABLES").is_some_and(|v| v.contains("glibc.malloc."))
        || var("KIDBENCH_MALLOC").is_some_and(|v| v == "default")
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_tuning() -> AllocatorTuning {
    extern "C" {
        fn mallopt(param: std::os::raw::c_int, value: std::os::raw::c_int) -> std::os::raw::c_int;
    }
    // <malloc.h>: M_TRIM_THRESHOLD -1, M_TOP_PAD -2, M_MMAP_THRESHOLD -3 (at most 32 MiB on
    // 64-bit targets: HEAP_MAX_SIZE / 2).
    const SETTINGS: [(i32, i32); 3] = [(-1, i32::MAX), (-2, 64 << 20), (-3, 32 << 20)];
    for (param, value) in SETTINGS {
        // SAFETY: mallopt takes two ints and only changes the allocator's parameters.
        if unsafe { mallopt(param, value) } != 1 {
            return AllocatorTuning::Unavailable;
        }
    }
    AllocatorTuning::Applied
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_tuning() -> AllocatorTuning {
    AllocatorTuning::Unavailable
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

    #[test]
    fn allocator_tuning_yields_to_the_user() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!left_to_user(env(&[])));
        assert!(!left_to_user(env(&[("MALLOC_ARENA_MAX", "2")])));
        assert!(!left_to_user(env(&[("KIDBENCH_MALLOC", "tuned")])));
        assert!(left_to_user(env(&[("KIDBENCH_MALLOC", "default")])));
        assert!(left_to_user(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.trim_threshold=0"
        )])));
        assert!(left_to_user(env(&[("MALLOC_TOP_PAD_", "0")])));
        assert!(!left_to_user(env(&[(
            "GLIBC_TUNABLES",
            "glibc.cpu.hwcaps=-AVX2"
        )])));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_the_allocator_settings() {
        // mallopt returns 0 for a value out of range (an mmap threshold over 32 MiB, say).
        assert_eq!(glibc_tuning(), AllocatorTuning::Applied);
    }
}
