//! What a run reads before it plans: the benchmark (synth generated when missing), its train and
//! dev questions with their prompts, the databases and their checksums, the test suite, the
//! resolved models and the device. Opened once; shared by every cell of a sweep that uses the
//! same benchmark and models.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use kidbench_sql::benchmark::{Benchmark, Split};
use kidbench_sql::compare::CompareMode;
use kidbench_sql::prompt::{PromptOptions, PromptStyle};
use kidbench_testsuite::Suite;
use kidbench_train::bench::{self, SplitData};
use kidbench_train::presets::{self, ModelFlags, Resolved};
use tch::Device;

use crate::args::{CommonArgs, RunArgs, STUDENT_FLAGS, TEACHER_FLAGS};
use crate::plan::{hash_of, DataPlan, SplitPlan};

/// The opened benchmark and models.
pub struct Context {
    pub bench: Benchmark,
    pub prompt_options: PromptOptions,
    pub train: SplitData,
    pub dev: SplitData,
    pub suite: Option<Suite>,
    /// SHA-256 of the suite's manifest.json.
    pub suite_manifest_sha: Option<String>,
    pub compare_mode: CompareMode,
    pub teacher: Resolved,
    pub student: Resolved,
    pub device: Device,
    /// `--dtype` (default: the device's, [`kidbench_model::Dtype::default_for`]).
    pub dtype: kidbench_model::Dtype,
    /// `train/<db>` and `dev/<db>` → SHA-256 (written beside every run's results).
    pub database_checksums: BTreeMap<String, String>,
    /// The benchmark by content (part of the plan).
    pub data_plan: DataPlan,
}

/// The CodeS prompt for named models; for from-scratch models the compact spaced layout without
/// sample values (see docs/TRAINING.md).
fn prompt_options(models: &[&Resolved]) -> PromptOptions {
    if models.iter().all(|m| matches!(m, Resolved::Scratch(_))) {
        PromptOptions {
            sample_values: 0,
            style: PromptStyle::Spaced,
            ..PromptOptions::default()
        }
    } else {
        PromptOptions::default()
    }
}

/// Question and schema files of a split by file name (not path) → SHA-256.
fn split_files(bench: &Benchmark, split: Split) -> anyhow::Result<BTreeMap<String, String>> {
    let by_path = bench::file_checksums(bench, split)?;
    Ok(by_path
        .into_iter()
        .map(|(p, sha)| {
            let name = PathBuf::from(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(p);
            (name, sha)
        })
        .collect())
}

fn split_plan(
    bench: &Benchmark,
    split: Split,
    data: &SplitData,
    limit: Option<usize>,
    checksums: &mut BTreeMap<String, String>,
) -> anyhow::Result<SplitPlan> {
    let mut dbs = BTreeMap::new();
    for (db, path) in &data.databases {
        let sha = bench::sha256_file(path)?;
        checksums.insert(format!("{split}/{db}"), sha.clone());
        dbs.insert(db.clone(), sha);
    }
    Ok(SplitPlan {
        files: split_files(bench, split)?,
        databases: hash_of(&dbs),
        questions: data.items.len(),
        skipped_missing_database: data.skipped_missing_db,
        limit,
    })
}

/// The teacher and the student of `args`, each a preset or a local HF folder
/// ([`presets::resolve_model`]).
pub fn resolve_models(
    args: &RunArgs,
    teacher_flags: ModelFlags,
) -> anyhow::Result<(Resolved, Resolved)> {
    let teacher = presets::resolve_model(
        args.teacher.as_deref(),
        args.teacher_dir.as_deref(),
        teacher_flags,
    )?;
    let student = presets::resolve_model(
        args.student.as_deref(),
        args.student_dir.as_deref(),
        STUDENT_FLAGS,
    )?;
    Ok((teacher, student))
}

/// `CompareMode` of the benchmark's evaluation rules.
pub fn compare_mode(bench: &Benchmark) -> CompareMode {
    match bench.spec.compare {
        kidbench_sql::benchmark::CompareMode::TestSuite => CompareMode::TestSuite,
        kidbench_sql::benchmark::CompareMode::Bird => CompareMode::Bird,
        kidbench_sql::benchmark::CompareMode::Strict => CompareMode::Strict,
    }
}

impl Context {
    /// Opens the benchmark of `common` for `teacher` and `student` (dev limited to `max_dev`).
    pub fn open(
        common: &CommonArgs,
        teacher: Resolved,
        student: Resolved,
        max_dev: Option<usize>,
    ) -> anyhow::Result<Context> {
        let device = kidbench_train::lm::parse_device(&common.device)?;
        let dtype = kidbench_train::lm::parse_dtype(common.dtype.as_deref(), device)?;
        let bench = bench::open(
            &common.benchmark,
            &common.data_dir,
            &common.databases_dir,
            !common.quiet,
        )?;
        let prompt_options = prompt_options(&[&teacher, &student]);
        let train = bench::load_split(&bench, Split::Train, common.max_train, &prompt_options)?;
        if train.items.is_empty() {
            anyhow::bail!(
                "benchmark '{}' has no usable training question (databases missing?)",
                bench.name()
            );
        }
        let dev = bench::load_split(&bench, Split::Dev, max_dev, &prompt_options)?;
        if dev.items.is_empty() {
            anyhow::bail!("benchmark '{}' has no usable dev question", bench.name());
        }
        let suite_dir =
            kidbench_testsuite::default_suite_dir(&common.databases_dir, bench.suite_name());
        let suite = Suite::open_if_built(&suite_dir)
            .with_context(|| format!("opening the test suite {}", suite_dir.display()))?;
        let suite_manifest_sha = match &suite {
            Some(s) => Some(bench::sha256_file(&s.dir.join("manifest.json"))?),
            None => None,
        };
        let mut checksums = BTreeMap::new();
        let data_plan = DataPlan {
            benchmark: bench.name().to_string(),
            train: split_plan(
                &bench,
                Split::Train,
                &train,
                common.max_train,
                &mut checksums,
            )?,
            dev: split_plan(&bench, Split::Dev, &dev, max_dev, &mut checksums)?,
            prompt_sample_values: prompt_options.sample_values,
            prompt_style: serde_json::to_value(prompt_options.style)?,
        };
        Ok(Context {
            compare_mode: compare_mode(&bench),
            bench,
            prompt_options,
            train,
            dev,
            suite,
            suite_manifest_sha,
            teacher,
            student,
            device,
            dtype,
            database_checksums: checksums,
            data_plan,
        })
    }

    /// Opens what `args` names: its models resolved, its benchmark.
    pub fn for_run(args: &RunArgs) -> anyhow::Result<Context> {
        Context::for_run_flags(args, TEACHER_FLAGS)
    }

    /// [`Context::for_run`] with the teacher named by other flags (`kidbench teacher`'s
    /// `--model` / `--model-dir`), for its error messages.
    pub fn for_run_flags(args: &RunArgs, teacher_flags: ModelFlags) -> anyhow::Result<Context> {
        let (teacher, mut student) = resolve_models(args, teacher_flags)?;
        if let Some(layers) = &args.student_layers {
            student = kidbench_train::subset::apply(student, layers)?;
        }
        Context::open(&args.common, teacher, student, args.max_dev)
    }

    /// The parameter kind of every model of the run (`--dtype`).
    pub fn kind(&self) -> tch::Kind {
        self.dtype.kind()
    }

    /// The text a model learns to emit for a gold query.
    pub fn target_text(&self, gold: &str) -> String {
        target_text(&self.prompt_options, gold)
    }

    /// The SQL to execute for a model's output.
    pub fn prediction_sql(&self, output: &str) -> String {
        if self.prompt_options.style.spaced_sql() {
            kidbench_sql::spaced::unspace_sql(output)
        } else {
            output.to_string()
        }
    }
}

/// The text a model learns to emit for a gold query: the query itself, or its spaced layout
/// when the prompt style asks for it ([`kidbench_sql::spaced`]).
pub fn target_text(opts: &PromptOptions, gold: &str) -> String {
    if opts.style.spaced_sql() {
        kidbench_sql::spaced::space_sql(gold)
    } else {
        gold.to_string()
    }
}
