//! The `kidbench` command line.

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Eval(a) => eval_cmd::run(a),
        Command::Synth(a) => synth_cmd::run(a),
        Command::Benchmarks(a) => synth_cmd::list(a),
    }
}
