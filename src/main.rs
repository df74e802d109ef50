//! The `kidbench` command line.

mod doctor;
mod eval_cmd;
mod paths;
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
    /// Print the libtorch in use, CUDA availability and where data and models are looked for.
    Doctor(doctor::DoctorArgs),
    /// Test suites for test-suite accuracy (TS).
    Testsuite {
        #[command(subcommand)]
        cmd: TestsuiteCmd,
    },
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
