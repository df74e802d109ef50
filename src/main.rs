//! The `kidbench` command line.

mod doctor;
mod eval_cmd;
mod paths;
mod plugin_new;
mod plugins_cmd;
mod synth_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kidbench",
    version,
    about = "Distill text-to-SQL models with pluggable KD methods; score them by execution."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score predictions by executing them (EX), from a benchmark or a pairs file.
    Eval(eval_cmd::EvalArgs),
    /// Generate the embedded `synth` benchmark (deterministic from a seed).
    Synth(synth_cmd::SynthArgs),
    /// List the known benchmarks and whether their files are present.
    Benchmarks(synth_cmd::BenchmarksArgs),
    /// Train (or reuse) a teacher, train one student per method, score both on the dev split.
    Run(kidbench_train::RunArgs),
    /// Fine-tune a teacher with SFT and cache it (keyed by model, data and config).
    Teacher(kidbench_train::TeacherArgs),
    /// List the KD method plugins found, with their parameters and any load failures.
    Plugins(plugins_cmd::PluginsArgs),
    /// Write KD method plugins.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCmd,
    },
    /// Print the libtorch in use, CUDA availability and where data and models are looked for.
    Doctor(doctor::DoctorArgs),
    /// Test suites for test-suite accuracy (TS).
    Testsuite {
        #[command(subcommand)]
        cmd: TestsuiteCmd,
    },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Create a plugin crate: a working skew-KL method with unit tests, to build and change.
    New(plugin_new::NewArgs),
}

#[derive(Subcommand)]
enum TestsuiteCmd {
    /// Distil a test suite for a benchmark's dev split (resumable per schema).
    Build {
        #[command(flatten)]
        args: kidbench_testsuite::TestsuiteBuildArgs,
        #[command(flatten)]
        data: paths::DataArgs,
    },
}

fn main() -> anyhow::Result<()> {
    // Before ANY tch call: CUDA registers only if libtorch_cuda.so is loaded first (it is found
    // through LD_LIBRARY_PATH on a CUDA machine; absent here, and then we run on CPU).
    let cuda_loaded = kidbench_model::load_cuda_runtime();
    let cli = Cli::parse();
    match &cli.command {
        Command::Doctor(a) => doctor::run(a, cuda_loaded),
        Command::Plugins(a) => plugins_cmd::run(a),
        Command::Plugin {
            cmd: PluginCmd::New(a),
        } => plugin_new::run(a),
        Command::Run(a) => {
            let s = kidbench_train::run(a)?;
            println!("results: {}", s.dir.display());
            let teacher = if s.teacher_reused {
                "cached"
            } else {
                "trained"
            };
            let scores = |label: &str, sc: &kidbench_train::run::ModelScore| {
                let ts = sc.ts.map(|t| format!(", TS {:.1}%", 100.0 * t));
                format!("{label} EX {:.1}%{}", 100.0 * sc.ex, ts.unwrap_or_default())
            };
            println!("{}", scores(&format!("teacher ({teacher})"), &s.teacher));
            if let Some(i) = &s.student_init {
                println!("{}", scores("student_init", i));
            }
            for m in &s.methods {
                let name = if m.params.is_empty() {
                    m.name.clone()
                } else {
                    format!("{}:{}", m.name, m.params)
                };
                match &m.score {
                    Some(sc) => println!(
                        "{}{}",
                        scores(&name, sc),
                        m.latency_vs_sft
                            .map(|l| format!(", latency {l:.2}x SFT"))
                            .unwrap_or_default()
                    ),
                    None => println!(
                        "{name} FAILED: {}",
                        m.error.as_deref().unwrap_or("unknown error")
                    ),
                }
            }
            println!("table: {}", s.dir.join("results.md").display());
            Ok(())
        }
        Command::Teacher(a) => {
            let t = kidbench_train::teacher(a)?;
            let how = if t.reused { "cached" } else { "trained" };
            println!("teacher {} ({how})", t.dir.display());
            Ok(())
        }
        Command::Eval(a) => eval_cmd::run(a),
        Command::Synth(a) => synth_cmd::run(a),
        Command::Benchmarks(a) => synth_cmd::list(a),
        Command::Testsuite {
            cmd: TestsuiteCmd::Build { args, data },
        } => {
            let roots = data.roots();
            // Opening through the CLI's helper generates synth first when it is the target.
            synth_cmd::open_benchmark(data, &args.benchmark)?;
            let m = args.run(&data.registry()?, &roots)?;
            println!(
                "{}",
                kidbench_testsuite::describe_manifest(&m, &args.out_dir(&roots))
            );
            Ok(())
        }
    }
}
