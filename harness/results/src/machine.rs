//! What a model's arithmetic ran on. The seed fixes data order, masking and sampling, not the
//! floating-point sums: libtorch and its BLAS choose kernels by the CPU's instruction sets and
//! split reductions by the thread count, so the same plan on another CPU (or with another
//! thread count or kernel setting) can give other floats from the first step on, and after a
//! few hundred steps another model. A record says where it was made, so that a reader (and
//! `kidbench compare`) can tell a change of code from a change of machine.

use std::collections::BTreeMap;

/// The CPU flags that select libtorch's and oneDNN/MKL's kernels, in the order shown.
pub const KERNEL_FLAGS: &[&str] = &[
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
];

/// Environment variables that change which kernels run, or how work is split between threads.
pub const KERNEL_ENV: &[&str] = &[
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
];

/// A machine fingerprint: enough to say whether two runs could have done the same arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// The CPU's model name (`/proc/cpuinfo`), or `unknown`.
    pub cpu: String,
    /// Which of [`KERNEL_FLAGS`] the CPU has.
    pub flags: Vec<String>,
    /// libtorch's intra-op threads.
    pub threads: usize,
    /// Where the model ran (`cpu`, `cuda:0`).
    pub device: String,
    /// Those of [`KERNEL_ENV`] that were set, with their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl Machine {
    /// The fingerprint from the text of `/proc/cpuinfo` (first processor's `model name` and
    /// `flags`, or `Features` on ARM), the thread count, the device and a lookup of the
    /// environment.
    pub fn from_parts(
        cpuinfo: &str,
        threads: usize,
        device: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Machine {
        let field = |names: &[&str]| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                names.contains(&k.trim()).then(|| v.trim().to_string())
            })
        };
        let mut cpu = field(&["model name", "Model", "cpu model"])
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        // A virtual machine often shows a bare vendor name; family and model tell generations apart.
        if let (Some(f), Some(m)) = (field(&["cpu family"]), field(&["model"])) {
            cpu.push_str(&format!(" (family {f}, model {m})"));
        }
        let present = field(&["flags", "Features"]).unwrap_or_default();
        let present: Vec<&str> = present.split_whitespace().collect();
        let flags = KERNEL_FLAGS
            .iter()
            .filter(|f| present.contains(f))
            .map(|f| f.to_string())
            .collect();
        let env = KERNEL_ENV
            .iter()
            .filter_map(|k| env(k).map(|v| (k.to_string(), v)))
            .collect();
        Machine {
            cpu,
            flags,
            threads,
            device: device.to_string(),
            env,
        }
    }

    /// This process's machine: `/proc/cpuinfo` (empty where there is none) and its environment.
    pub fn this(threads: usize, device: &str) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine::from_parts(&cpuinfo, threads, device, |k| std::env::var(k).ok())
    }

    /// One line for a reader: `AMD EPYC (family 25, model 17) [avx2 fma], 1 thread, cpu`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} [{}], {} thread{}, {}",
            self.cpu,
            self.flags.join(" "),
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.device
        );
        for (k, v) in &self.env {
            s.push_str(&format!(", {k}={v}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPYC: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC 9454\n\
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 sha_ni\n\nprocessor\t: 1\n\
model name\t: AMD EPYC 9454\nflags\t\t: fpu\n";

    #[test]
    fn the_first_processor_names_the_cpu_and_its_kernel_flags() {
        let m = Machine::from_parts(EPYC, 2, "cpu", |_| None);
        assert_eq!(m.cpu, "AMD EPYC 9454 (family 25, model 17)");
        assert_eq!(m.flags, ["avx2", "fma", "avx512f", "avx512_bf16"]);
        assert!(m.env.is_empty());
        assert_eq!(
            m.summary(),
            "AMD EPYC 9454 (family 25, model 17) [avx2 fma avx512f avx512_bf16], 2 threads, cpu"
        );
    }

    #[test]
    fn kernel_settings_in_the_environment_are_kept_and_others_are_not() {
        let env = |k: &str| match k {
            "ATEN_CPU_CAPABILITY" => Some("avx2".to_string()),
            "OMP_NUM_THREADS" => Some("1".to_string()),
            "HOME" => Some("/root".to_string()),
            _ => None,
        };
        let m = Machine::from_parts(EPYC, 1, "cpu", env);
        assert_eq!(
            m.env.keys().collect::<Vec<_>>(),
            ["ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS"]
        );
        assert!(m
            .summary()
            .ends_with("1 thread, cpu, ATEN_CPU_CAPABILITY=avx2, OMP_NUM_THREADS=1"));
    }

    #[test]
    fn an_arm_cpuinfo_and_an_empty_one_still_give_a_fingerprint() {
        let arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm sve\nCPU part\t: 0xd40\n";
        let m = Machine::from_parts(arm, 4, "cpu", |_| None);
        assert_eq!(m.cpu, "unknown");
        assert_eq!(m.flags, ["asimd", "sve"]);
        let none = Machine::from_parts("", 1, "cuda:0", |_| None);
        assert_eq!((none.cpu.as_str(), none.flags.len()), ("unknown", 0));
    }

    #[test]
    fn old_records_without_env_read_back() {
        let m: Machine =
            serde_json::from_str(r#"{"cpu":"x","flags":["avx2"],"threads":1,"device":"cpu"}"#)
                .unwrap();
        assert!(m.env.is_empty());
    }
}
