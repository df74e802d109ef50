//! `kidbench plugin new`: the scaffolded crate builds with cargo, loads through the plugin host,
//! trains the toy student, and `kidbench plugins --plugin-dir` lists it.
//!
//! The nested `cargo build` reuses this build's compiled dependencies (torch-sys, tch, abi_stable,
//! ...; compiling those takes minutes): the scaffold gets the workspace's Cargo.lock (`plugin new`
//! copies it), builds `--offline` with the workspace's dev profile, and shares this test binary's
//! build directory (`CARGO_BUILD_BUILD_DIR`) while its final artifacts go to a folder of its own
//! under `CARGO_TARGET_TMPDIR`. A crate's artifacts are reused only when its features match, and
//! features are unified over a build's whole graph, so the test copy of the scaffold also lists
//! every registry dependency of the workspace members with their features (see
//! [`workspace_dependencies`]): its dependencies then resolve as in `cargo build --workspace`, and
//! only kidbench-plugin-api, kidbench-kd and the plugin compile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kidbench_plugin_host::testing::{collate, ToyHost};
use kidbench_plugin_host::{load_plugin, PluginMethod, SampledBatch, SpecialTokens, StepInfo};

use crate::util::{run, tempdir};

const NAME: &str = "scaffold_skew";
const TOKENS: SpecialTokens = SpecialTokens {
    pad: 0,
    eos: 2,
    mask: 3,
};

/// The workspace's `[profile.dev]` (Cargo.toml): the scaffold is a workspace of its own, so its
/// dependencies match this build's artifacts only with the same profile.
const DEV_PROFILE: [&str; 3] = [
    "profile.dev.opt-level=1",
    "profile.dev.debug=\"line-tables-only\"",
    "profile.dev.package.\"*\".opt-level=3",
];

/// cargo, or a failure that says why this test needs it.
fn cargo() -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    match Command::new(&cargo).arg("--version").output() {
        Ok(o) if o.status.success() => cargo,
        other => panic!(
            "this test builds a scaffolded plugin with cargo, but `{cargo} --version` failed \
             ({other:?}); install cargo or point $CARGO at it"
        ),
    }
}

/// `<build dir>/<profile>` of this test binary (`<build dir>/<profile>/deps/integration-*`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary in <build dir>/<profile>/deps")
        .to_path_buf()
}

/// The normal and build dependencies from a registry of every kidbench workspace member, as a
/// TOML table for the scaffold's manifest (`cfg(all())`: always active, and no clash with the
/// scaffold's own `[dependencies]`).
fn workspace_dependencies() -> String {
    let out = Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    // (table, name) -> (version requirement, default features, features)
    let mut deps: BTreeMap<(&str, String), (String, bool, BTreeSet<String>)> = BTreeMap::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        for d in pkg["dependencies"].as_array().expect("dependencies") {
            let table = match d["kind"].as_str() {
                None => "dependencies",
                Some("build") => "build-dependencies",
                _ => continue,
            };
            if d["source"].is_null() || d["optional"] == true || !d["target"].is_null() {
                continue;
            }
            let name = d["name"].as_str().expect("name").to_string();
            let e = deps.entry((table, name)).or_insert_with(|| {
                (
                    d["req"].as_str().expect("req").into(),
                    false,
                    BTreeSet::new(),
                )
            });
            e.1 |= d["uses_default_features"] == true;
            let features = d["features"].as_array().expect("features");
            e.2.extend(features.iter().filter_map(|f| f.as_str()).map(String::from));
        }
    }
    let mut toml = String::new();
    for table in ["dependencies", "build-dependencies"] {
        toml += &format!("\n[target.'cfg(all())'.{table}]\n");
        for ((_, name), (req, default, features)) in deps.iter().filter(|(k, _)| k.0 == table) {
            let features: Vec<String> = features.iter().map(|f| format!("{f:?}")).collect();
            toml += &format!(
                "{name} = {{ version = {req:?}, default-features = {default}, features = [{}] }}\n",
                features.join(", ")
            );
        }
    }
    toml
}

/// Runs `cargo <args>` on the scaffold at `manifest`, sharing this build's build directory;
/// returns the folder of its final artifacts.
fn nested_cargo(manifest: &Path, args: &[&str]) -> PathBuf {
    let profile_dir = profile_dir();
    let build_dir = profile_dir.parent().expect("build dir");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile folder name");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-scaffold");
    // torch-sys reruns its build script when LIBTORCH changes: pass the one this build used.
    let libtorch = std::env::var_os("LIBTORCH")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| env!("KIDBENCH_BUILD_LIBTORCH").into());
    let mut cmd = Command::new(cargo());
    cmd.args(args)
        .arg("--offline")
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_BUILD_BUILD_DIR", build_dir)
        .env("LIBTORCH", libtorch);
    if profile == "debug" {
        let ws = include_str!("../Cargo.toml");
        assert!(
            ws.contains("[profile.dev]\nopt-level = 1\ndebug = \"line-tables-only\"\n")
                && ws.contains("[profile.dev.package.\"*\"]\nopt-level = 3\n"),
            "the workspace's dev profile changed: update DEV_PROFILE in tests/plugin_new.rs"
        );
        for c in DEV_PROFILE {
            cmd.args(["--config", c]);
        }
    } else {
        cmd.args(["--profile", profile]);
    }
    let out = cmd.output().expect("running cargo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`cargo {}` on the scaffolded plugin failed:\n{}\n{stderr}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    let compiled: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling"))
        .map(str::trim)
        .collect();
    eprintln!("cargo {}: compiled {compiled:?}", args.join(" "));
    // The build directory also holds an intermediate copy of the cdylib (`deps/`), a folder test
    // binaries search for plugins: remove it so no other test meets this plugin.
    let _ = std::fs::remove_file(build_dir.join(profile).join("deps").join(so_name()));
    target.join(profile)
}

/// Runs the scaffold's own unit tests, then builds it; returns the folder holding its cdylib.
fn test_and_build(dir: &Path) -> PathBuf {
    let manifest = dir.join("Cargo.toml");
    let mut toml = std::fs::read_to_string(&manifest).expect("scaffolded Cargo.toml");
    toml += &workspace_dependencies();
    std::fs::write(&manifest, toml).expect("writing Cargo.toml");
    nested_cargo(&manifest, &["test", "--lib"]);
    nested_cargo(&manifest, &["build"])
}

fn so_name() -> String {
    format!(
        "{}kidbench_plugin_{NAME}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn step(i: u64) -> StepInfo {
    StepInfo {
        step: i,
        total_steps: 100,
        micro_batch: 0,
        seed: 11 + i,
    }
}

fn gold() -> SampledBatch {
    collate(
        &[
            (vec![1, 4, 5, 6, 7, 2], 2),
            (vec![1, 8, 9, 10, 11, 12, 2], 3),
            (vec![1, 13, 14, 2], 2),
        ],
        0,
    )
    .expect("batch")
}

/// Losses of `steps` plain SGD steps on the toy student table.
fn train(method: &PluginMethod, steps: u64) -> Vec<f64> {
    let mut host = ToyHost::new(17, 3);
    let gold = gold();
    let mut losses = Vec::new();
    for i in 0..steps {
        let loss = host
            .step(method, &gold, step(i), TOKENS)
            .unwrap_or_else(|e| panic!("step {i}: {e:#}"));
        losses.push(loss.double_value(&[]));
        host.student.zero_grad();
        loss.backward();
        let update = host.student.grad() * 0.5;
        let _guard = tch::no_grad_guard();
        let _ = host.student.f_sub_(&update).expect("sgd");
    }
    losses
}

#[test]
fn scaffolded_plugin_builds_loads_trains_and_is_listed() {
    let t0 = Instant::now();
    let tmp = tempdir();
    let dir = tmp.path().join(NAME);
    let dir_s = dir.to_str().expect("utf-8 temp path");
    let kidbench = env!("CARGO_MANIFEST_DIR");
    let args = [
        "plugin",
        "new",
        NAME,
        "--dir",
        dir_s,
        "--kidbench-path",
        kidbench,
    ];
    let (ok, stdout, stderr) = run(&args);
    assert!(ok, "{stdout}\n{stderr}");
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/lib.rs",
        "README.md",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing; {stdout}");
    }
    assert!(
        stdout.contains(&format!("--methods sft,{NAME}:alpha=0.2")),
        "{stdout}"
    );

    // never overwrites; names are checked
    let lib_before = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    let (ok, _, stderr) = run(&args);
    assert!(
        !ok && stderr.contains(dir_s) && stderr.contains("already exists"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(),
        lib_before
    );
    let (ok, _, stderr) = run(&["plugin", "new", "Skew-KL", "--dir", dir_s]);
    assert!(
        !ok && stderr.contains("invalid plugin name 'Skew-KL'"),
        "{stderr}"
    );
    let t_scaffold = t0.elapsed();

    let out = test_and_build(&dir);
    let so = out.join(so_name());
    assert!(so.is_file(), "{} not built", so.display());
    let t_build = t0.elapsed() - t_scaffold;

    let entry = load_plugin(&so).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entry.name, NAME);
    let alpha = entry
        .params
        .iter()
        .find(|p| p.name == "alpha")
        .expect("alpha");
    assert_eq!(
        (alpha.default.as_str(), alpha.range),
        ("0.1", Some((0.0, 1.0)))
    );
    let create = |alpha: &str| {
        entry
            .create(&[("alpha".into(), alpha.into())])
            .unwrap_or_else(|e| panic!("alpha={alpha}: {e}"))
    };
    let losses = train(&create("0.3"), 8);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "SGD on the loss must lower it: {losses:?}"
    );
    // the parameter reaches the method: alpha = 1 leaves only the MLE term (KD term 0)
    let (kd, mle_only) = (train(&create("0"), 1)[0], train(&create("1"), 1)[0]);
    assert!(mle_only < kd, "alpha=1 {mle_only} vs alpha=0 {kd}");
    let t_train = t0.elapsed() - t_scaffold - t_build;

    let (ok, stdout, stderr) = run(&["plugins", "--plugin-dir", out.to_str().unwrap()]);
    assert!(ok, "{stdout}\n{stderr}");
    let header = format!("{NAME} 0.1.0 ");
    let block: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with(&header))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with(' '))
        .map(|(_, l)| l)
        .collect();
    assert!(!block.is_empty(), "{NAME} not listed:\n{stdout}");
    let block = block.join("\n");
    assert!(
        block.contains(&format!("from {}", so.display())) && block.contains("alpha=0.1"),
        "{block}"
    );
    eprintln!(
        "plugin new: scaffold {t_scaffold:.1?}, cargo test + build {t_build:.1?}, load+train {t_train:.1?}, total {:.1?}",
        t0.elapsed()
    );
}
