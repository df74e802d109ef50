//! Where kidbench looks for data, generated databases and benchmark files.

use std::path::{Path, PathBuf};

use kidbench_sql::benchmark::{Registry, Roots};

/// The checkout this binary was built from (benchmarks/, databases/ live there).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Options shared by every command that opens a benchmark.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// Folder holding the benchmark data (e.g. `spider/`). Default: $KIDBENCH_DATA, else
    /// `data/` in the checkout, else `../shared/data` beside it.
    #[arg(long, global = true, env = "KIDBENCH_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Folder for generated databases (synth, test suites). Default: `databases/` in the checkout.
    #[arg(long, global = true, env = "KIDBENCH_DATABASES")]
    pub databases_dir: Option<PathBuf>,
    /// Extra folder of benchmark TOML files (added to, or replacing, the shipped ones).
    #[arg(long, global = true, env = "KIDBENCH_BENCHMARKS")]
    pub benchmarks_dir: Option<PathBuf>,
}

impl DataArgs {
    pub fn roots(&self) -> Roots {
        let repo = repo_dir();
        let data = self.data_dir.clone().unwrap_or_else(|| {
            let candidates = [repo.join("data"), repo.join("..").join("shared").join("data")];
            candidates
                .iter()
                .find(|p| p.is_dir())
                .cloned()
                .unwrap_or_else(|| repo.join("data"))
        });
        let databases = self
            .databases_dir
            .clone()
            .unwrap_or_else(|| repo.join("databases"));
        Roots { data, databases }
    }

    pub fn registry(&self) -> anyhow::Result<Registry> {
        let mut r = Registry::builtin();
        if let Some(dir) = &self.benchmarks_dir {
            r.add_dir(dir)?;
        }
        Ok(r)
    }
}

/// `path` for messages: shown as given, or canonical when it exists.
pub fn shown(path: &Path) -> String {
    path.canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
