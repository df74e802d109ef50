//! Loads the real plugin cdylibs and the broken fixtures through dlopen (built on first use, see
//! `util`).

mod util;

use std::path::PathBuf;

use kidbench_plugin_host::testing::{collate, ToyHost};
use kidbench_plugin_host::{
    is_plugin_file, search_dirs, PluginError, Registry, SpecialTokens, StepInfo,
};
use util::{built, so, PLUGINS};

/// The fixtures of the host's load and call errors.
const BROKEN: [&str; 5] = ["wrong_abi", "wrong_torch", "panics", "nan", "no_entry"];
const TOK: SpecialTokens = SpecialTokens {
    pad: 0,
    eos: 2,
    mask: 3,
};

fn step(i: u64) -> StepInfo {
    StepInfo {
        step: i,
        total_steps: 10,
        micro_batch: 0,
        seed: 40 + i,
    }
}

#[test]
fn discovers_all_methods_with_parameters_and_paths() {
    let dir = built();
    let reg = Registry::discover(std::slice::from_ref(dir));
    assert!(reg.failures().is_empty(), "{:?}", reg.failures());
    let mut names = reg.names();
    names.sort();
    let mut want: Vec<String> = PLUGINS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    let kid = reg.get("kid").expect("kid");
    assert_eq!(kid.path, so(dir, "kidbench_plugin_kid"));
    let alpha = kid
        .params
        .iter()
        .find(|p| p.name == "alpha")
        .expect("alpha");
    assert_eq!(
        (alpha.default.as_str(), alpha.range),
        ("0.2", Some((0.0, 1.0)))
    );
    // the build output dir of this binary is searched by default
    assert!(search_dirs(&[]).contains(dir));
    assert!(!is_plugin_file(&so(dir, "kidbench_broken_nan")));
}

#[test]
fn unknown_methods_and_bad_parameters_are_clear_errors() {
    let reg = Registry::discover(std::slice::from_ref(built()));
    let e = reg.create("nope").expect_err("unknown").to_string();
    assert!(
        e.contains("unknown method 'nope'") && e.contains("kid") && e.contains("sft"),
        "{e}"
    );
    let e = reg.create("kid:alpah=0.3").expect_err("param").to_string();
    assert!(
        e.contains("plugin 'kid'") && e.contains("valid parameters: alpha"),
        "{e}"
    );
    let e = reg.create("gkd:lambda=2").expect_err("range").to_string();
    assert!(e.contains("[0, 1]"), "{e}");
    assert!(reg
        .create("kid:alpha=0.3,strategy=hard,fill=sample")
        .is_ok());
    assert!(reg.create(":x=1").is_err());
}

#[test]
fn loaded_plugins_train_through_the_boundary() -> anyhow::Result<()> {
    let reg = Registry::discover(std::slice::from_ref(built()));
    let gold = collate(
        &[
            (vec![1, 5, 6, 7, 8, 9, 10, 11, 12, 2], 3),
            (vec![1, 5, 13, 14, 15, 2], 2),
        ],
        0,
    )?;
    // kid with alpha = 0 is exactly rkd, through dlopen as well
    let rkd = reg.create("rkd")?;
    let kid0 = reg.create("kid:alpha=0")?;
    let a = ToyHost::new(16, 1).step(&rkd, &gold, step(0), TOK)?;
    let b = ToyHost::new(16, 1).step(&kid0, &gold, step(0), TOK)?;
    assert!(a.equal(&b));
    // every method gives a finite loss whose gradient reaches the host's student
    for spec in [
        "sft",
        "fkd",
        "rkd",
        "fdistill",
        "imitkd",
        "gkd:lambda=1",
        "kid:alpha=0.5",
    ] {
        let m = reg.create(spec)?;
        let mut host = ToyHost::new(16, 2);
        host.student_samples = Some(collate(
            &[(vec![1, 5, 9, 9, 2], 2), (vec![1, 5, 4, 2], 2)],
            0,
        )?);
        host.teacher_samples = Some(collate(
            &[(vec![1, 5, 7, 8, 2], 2), (vec![1, 5, 6, 2], 2)],
            0,
        )?);
        let loss = host.step(&m, &gold, step(9), TOK)?;
        loss.backward();
        let g = host
            .student
            .grad()
            .abs()
            .sum(tch::Kind::Double)
            .double_value(&[]);
        assert!(g > 0.0, "{spec}: no gradient");
    }
    Ok(())
}

#[test]
fn each_fault_is_a_clear_error_naming_the_plugin() -> anyhow::Result<()> {
    let dir = built();
    let tmp = tempfile::tempdir()?;
    for b in BROKEN {
        std::fs::copy(
            so(dir, &format!("kidbench_broken_{b}")),
            so(tmp.path(), &format!("kidbench_plugin_{b}")),
        )?;
    }
    std::fs::copy(
        so(dir, "kidbench_plugin_sft"),
        so(tmp.path(), "kidbench_plugin_sft"),
    )?;
    let text = so(tmp.path(), "kidbench_plugin_text");
    std::fs::write(&text, "not a shared library\n")?;

    let reg = Registry::discover(&[tmp.path().to_path_buf()]);
    // the failures never stop the others from loading
    let mut names = reg.names();
    names.sort();
    assert_eq!(names, ["nan", "panics", "sft"]);
    let fails = reg.failures();
    assert_eq!(fails.len(), 4, "{fails:#?}");
    let find = |stem: &str| {
        let path = so(tmp.path(), stem);
        fails
            .iter()
            .find(|e| e.to_string().contains(&path.display().to_string()))
            .unwrap_or_else(|| panic!("no failure for {}: {fails:#?}", path.display()))
    };
    let e = find("kidbench_plugin_wrong_abi");
    assert!(
        matches!(
            e,
            PluginError::AbiVersion {
                found,
                expected: kidbench_plugin_api::ABI_VERSION,
                ..
            } if *found == kidbench_plugin_api::ABI_VERSION + 1
        ),
        "{e}"
    );
    assert!(e.to_string().contains("plugin 'wrong_abi'"));
    let e = find("kidbench_plugin_wrong_torch");
    assert!(matches!(e, PluginError::TorchVersion { .. }), "{e}");
    assert!(e.to_string().contains("0.0.1+bogus"), "{e}");
    let e = find("kidbench_plugin_no_entry");
    assert!(matches!(e, PluginError::MissingSymbol { .. }), "{e}");
    let e = find("kidbench_plugin_text");
    assert!(matches!(e, PluginError::NotALibrary { .. }), "{e}");

    // a panic inside the plugin is caught there and reported, naming the plugin
    let gold = collate(&[(vec![1, 5, 6, 7, 2], 2)], 0)?;
    let m = reg.create("panics")?;
    let e = ToyHost::new(8, 1)
        .step(&m, &gold, step(0), TOK)
        .expect_err("panic");
    let e = format!("{e:#}");
    assert!(
        e.contains("plugin 'panics'") && e.contains("panicked: fixture panic in loss"),
        "{e}"
    );
    let e = reg
        .create("panics:where=create")
        .expect_err("create panic")
        .to_string();
    assert!(e.contains("create failed: panicked"), "{e}");
    let m = reg.create("panics:where=data_request")?;
    let e = m.data_request(&step(0)).expect_err("dr panic").to_string();
    assert!(e.contains("data_request failed: panicked"), "{e}");
    // a NaN loss is refused
    let m = reg.create("nan")?;
    let e = ToyHost::new(8, 1)
        .step(&m, &gold, step(0), TOK)
        .expect_err("nan");
    let e = format!("{e:#}");
    assert!(
        e.contains("plugin 'nan'") && e.contains("not finite"),
        "{e}"
    );
    // the good plugin next to them still works
    let _ = ToyHost::new(8, 1).step(&reg.create("sft")?, &gold, step(0), TOK)?;
    Ok(())
}

#[test]
fn plugin_path_env_is_searched() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::env::set_var(kidbench_plugin_host::PLUGIN_PATH_ENV, tmp.path());
    let dirs = search_dirs(&[PathBuf::from("/nonexistent/first")]);
    assert_eq!(dirs[0], PathBuf::from("/nonexistent/first"));
    assert_eq!(dirs[1], tmp.path());
}
