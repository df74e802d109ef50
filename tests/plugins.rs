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
