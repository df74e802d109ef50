//! The `kidbench` command line.

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
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
