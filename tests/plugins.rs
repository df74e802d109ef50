//! `kidbench plugins` finds the seven shipped methods (built by `cargo build --workspace`).

use crate::util::run;

#[test]
fn plugins_lists_all_seven_methods_with_parameters() {
    let (ok, stdout, stderr) = run(&["plugins"]);
    assert!(ok, "{stdout}\n{stderr}");
    for name in ["sft", "fkd", "rkd", "fdistill", "imitkd", "gkd", "kid"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing from:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("alpha=0.2"),
        "kid's alpha default: {stdout}"
    );
    assert!(
        stdout.contains("lambda=0.5"),
        "gkd's lambda default: {stdout}"
    );
}

#[test]
fn unknown_method_in_run_lists_the_available_ones() {
    let (ok, _, stderr) = run(&["run", "--methods", "kdi", "--out", "/nonexistent-results"]);
    assert!(!ok);
    assert!(stderr.contains("kdi"), "{stderr}");
    assert!(stderr.contains("sft"), "{stderr}");
}

/// `kidbench plugin check` as a user runs it: a shipped method passes every property (exit 0),
/// a plugin with a swapped KL direction fails the divergence property (exit 1, named).
#[test]
fn plugin_check_passes_kid_and_names_the_property_a_swapped_kl_breaks() {
    let (ok, stdout, stderr) = run(&["plugin", "check", "kid"]);
    assert!(ok, "{stdout}\n{stderr}");
    for property in [
        "load",
        "parameters",
        "loss",
        "masking",
        "normalization",
        "determinism",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("PASS {property}"))),
            "{property} in\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let lib = std::path::PathBuf::from(env!("CARGO_BIN_EXE_kidbench"))
        .parent()
        .unwrap()
        .join("libkidbench_broken_swapped_kl.so");
    let (ok, stdout, stderr) = run(&["plugin", "check", &lib.display().to_string()]);
    assert!(!ok, "a swapped KL must fail the check:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("FAIL divergence")),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("divergence"), "{stderr}");
}
