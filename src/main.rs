//! The `kidbench` command line.

mod doctor;
mod eval_cmd;
mod paths;
mod plugin_check;
mod plugin_new;
mod plugins_cmd;
mod report_cmd;
mod score_cmd;
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

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Score predictions by executing them (EX), from a benchmark or a pairs file.
    Eval(eval_cmd::EvalArgs),
    /// Generate the embedded `synth` benchmark (deterministic from a seed).
    Synth(synth_cmd::SynthArgs),
    /// List the known benchmarks and whether their files are present.
    Benchmarks(synth_cmd::BenchmarksArgs),
    /// Train (or reuse) a teacher, train one student per method, score both on the dev split.
    Run(kidbench_run::RunArgs),
    /// Run a grid of runs from a sweep file (resumable; one method per cell).
    Sweep(kidbench_run::sweep::SweepArgs),
    /// Tables with confidence intervals and charts from run or sweep folders.
    Report(report_cmd::ReportArgs),
    /// Compare two run or sweep folders; exits non-zero on a significant accuracy drop or a
    /// latency growth (the regression gate).
    Compare(report_cmd::CompareArgs),
    /// Score a pretrained model (a preset with a folder, or any HF folder) on a benchmark's dev
    /// split without training: zero- or few-shot prompts, its chat template, EX and TS.
    Score(score_cmd::ScoreArgs),
    /// Fine-tune a teacher with SFT and cache it (keyed by model, data and config).
    Teacher(kidbench_run::TeacherArgs),
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
    /// Run the conformance suite on a plugin (name or library path) against toy models: one
    /// line per property; exits non-zero when one fails.
    Check(plugin_check::CheckArgs),
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
    // Before tensors are allocated: freed tensor memory stays in the heap (see tune_allocator).
    kidbench_model::tune_allocator();
    let cli = Cli::parse();
    match run(&cli, cuda_loaded) {
        Err(e) if kidbench_train::interrupt::is_interrupt(&e) => {
            // Stopped by a signal after checkpointing: the shell's exit code for that signal.
            eprintln!("kidbench: {e:#}");
            let sig = kidbench_train::interrupt::requested().unwrap_or(15);
            std::process::exit(128 + sig);
        }
        other => other,
    }
}

fn run(cli: &Cli, cuda_loaded: bool) -> anyhow::Result<()> {
    match &cli.command {
        Command::Doctor(a) => doctor::run(a, cuda_loaded),
        Command::Plugins(a) => plugins_cmd::run(a),
        Command::Plugin {
            cmd: PluginCmd::New(a),
        } => plugin_new::run(a),
        Command::Plugin {
            cmd: PluginCmd::Check(a),
        } => plugin_check::run(a),
        Command::Run(a) => {
            let s = kidbench_run::run(a)?;
            report_cmd::print_run(&s);
            Ok(())
        }
        Command::Sweep(a) => report_cmd::sweep(a),
        Command::Report(a) => report_cmd::report(a),
        Command::Compare(a) => report_cmd::compare(a),
        Command::Teacher(a) => {
            let t = kidbench_run::teacher(a)?;
            let how = if t.reused { "cached" } else { "trained" };
            println!("teacher {} ({how})", t.dir.display());
            Ok(())
        }
        Command::Score(a) => score_cmd::run(a),
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
