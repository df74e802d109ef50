//! Integration tests of the `kidbench` binary; one test binary (see Cargo.toml).

mod util;

mod cli_eval;
mod compare_cli;
mod doctor;
mod eval_pairs_cli;
mod plugin_new;
mod plugins;
mod plugins_run;
mod score_cli;
mod slurm;
mod sweep;
mod synth_check;
mod synth_manifest_cli;
mod testsuite_manifest_cli;
mod tiny_hf;
