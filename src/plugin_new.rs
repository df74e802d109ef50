//! `kidbench plugin new <name>`: scaffolds a KD method plugin crate from the templates embedded
//! in this binary (`templates/plugin/`): a working skew-KL method with unit tests, a build script
//! and a README.
//!
//! Inside a kidbench workspace (a `Cargo.toml` with `[workspace]` naming `harness/plugin-api`,
//! found from the new folder upwards) the crate inherits the workspace's dependencies and its
//! folder defaults to `plugins/<name>`; the line to add to the workspace `members` is printed, the
//! workspace manifest is left alone. Anywhere else the crate is a workspace of its own that depends
//! on the kidbench crates by path (`--kidbench-path`, default: the sources this binary was built
//! from) and gets a copy of their `Cargo.lock`. Existing files are never overwritten.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// Method name: lowercase ASCII letters, digits and `_`, starting with a letter. It names the
    /// library (`libkidbench_plugin_<name>.so`) and the method (`--methods <name>:key=value`).
    pub name: String,
    /// Folder to create (absent or empty). Default: `plugins/<name>` of the kidbench workspace
    /// around the current folder, else `./<name>`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// kidbench sources to depend on by path; makes a standalone crate even inside a kidbench
    /// workspace. Default for a folder outside one: the sources this binary was built from.
    #[arg(long)]
    pub kidbench_path: Option<PathBuf>,
}

const CARGO_WORKSPACE: &str = include_str!("../templates/plugin/Cargo.workspace.toml.tmpl");
const CARGO_STANDALONE: &str = include_str!("../templates/plugin/Cargo.standalone.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/plugin/src/lib.rs.tmpl");
const BUILD_RS: &str = include_str!("../templates/plugin/build.rs.tmpl");
const README: &str = include_str!("../templates/plugin/README.md.tmpl");
const GITIGNORE: &str = include_str!("../templates/plugin/gitignore.tmpl");

/// Versions a standalone plugin pins; they must be the kidbench workspace's (checked in tests).
const TCH_REQ: &str = "=0.24.0";
const ABI_STABLE_REQ: &str = "0.11";

/// The kidbench sources this binary was built from.
fn build_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the new crate gets its kidbench dependencies from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// A member of the kidbench workspace at `root`.
    Workspace { root: PathBuf },
    /// A workspace of its own, depending on the kidbench sources at `kidbench` by path.
    Standalone { kidbench: PathBuf },
}

/// What `plugin new` is about to write.
#[derive(Debug)]
struct Plan {
    name: String,
    dir: PathBuf,
    mode: Mode,
    /// (path relative to `dir`, contents)
    files: Vec<(PathBuf, String)>,
    /// A `Cargo.lock` to copy into `dir` (standalone only).
    lock: Option<PathBuf>,
}

/// Checks a method name; the error says what is allowed and why.
fn validate_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        let fixed = name.to_ascii_lowercase().replace(['-', ' ', '.'], "_");
        let hint = if fixed != name && validate_name(&fixed).is_ok() {
            format!(" (try '{fixed}')")
        } else {
            String::new()
        };
        bail!(
            "invalid plugin name '{name}'{hint}: use lowercase ASCII letters, digits and '_', \
             starting with a letter (it names the library libkidbench_plugin_<name>.so and the \
             method in --methods)"
        );
    }
    if name.len() > 64 {
        bail!("invalid plugin name '{name}': at most 64 characters");
    }
    Ok(())
}

/// The Rust type of the method: `skew_kl` -> `SkewKl`; `...Method` when that would clash with a
/// name the template uses.
fn type_name(name: &str) -> String {
    let camel: String = name
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    const TAKEN: [&str; 18] = [
        "Self",
        "Plugin",
        "Method",
        "LossForm",
        "KidbenchPlugin",
        "KidbenchPluginMeta",
        "Params",
        "Ctx",
        "Tensor",
        "Divergence",
        "DataRequest",
        "ParamSpec",
        "StepInfo",
        "ToyHost",
        "Model",
        "PluginEntry",
        "PluginMethod",
        "SpecialTokens",
    ];
    if TAKEN.contains(&camel.as_str()) {
        camel + "Method"
    } else {
        camel
    }
}

/// `path` made absolute (against `cwd`) with `.` and `..` removed lexically.
fn normalize(cwd: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in cwd.join(path).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `manifest` (a Cargo.toml's text) is the kidbench workspace's.
fn is_kidbench_workspace(manifest: &str) -> bool {
    manifest.lines().any(|l| l.trim() == "[workspace]")
        && manifest.contains("\"harness/plugin-api\"")
}

/// The kidbench workspace holding `path` (or `path` itself), if any.
fn find_workspace(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|d| fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| is_kidbench_workspace(&t)))
        .map(Path::to_path_buf)
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `template` with every `{{key}}` replaced; an unknown or missing key is a bug.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(
        !s.contains("{{"),
        "unfilled placeholder in a template:\n{s}"
    );
    s
}

/// `dir` relative to `base` with `/` separators, when it is inside.
fn relative(dir: &Path, base: &Path) -> Option<String> {
    let rel = dir.strip_prefix(base).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

fn plan(args: &NewArgs, cwd: &Path) -> Result<Plan> {
    let name = args.name.trim().to_string();
    validate_name(&name)?;
    let dir = match &args.dir {
        Some(d) => normalize(cwd, d),
        None => match find_workspace(cwd) {
            Some(root) => root.join("plugins").join(&name),
            None => cwd.join(&name),
        },
    };
    let mode = match (&args.kidbench_path, find_workspace(&dir)) {
        (None, Some(root)) => Mode::Workspace { root },
        (given, _) => {
            let kidbench = match given {
                Some(p) => normalize(cwd, p),
                None => build_root(),
            };
            for krate in ["harness/kd", "harness/plugin-host"] {
                if !kidbench.join(krate).join("Cargo.toml").is_file() {
                    let shown = kidbench.display();
                    if given.is_some() {
                        bail!(
                            "--kidbench-path {shown} is not a kidbench checkout \
                             (no {krate}/Cargo.toml)"
                        );
                    }
                    bail!(
                        "{shown}, the kidbench sources this binary was built from, has no \
                         {krate}/Cargo.toml: pass --kidbench-path <kidbench checkout>"
                    );
                }
            }
            Mode::Standalone { kidbench }
        }
    };
    if let Ok(mut entries) = fs::read_dir(&dir) {
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty: pick another name or --dir (nothing is overwritten)",
                dir.display()
            );
        }
    } else if dir.exists() {
        bail!("{} exists and is not a folder (--dir)", dir.display());
    }
    // A plugin folder of that name in the kidbench sources means a method of that name already
    // exists; the host would load only one of the two.
    let sources = match &mode {
        Mode::Workspace { root } => root,
        Mode::Standalone { kidbench } => kidbench,
    };
    let existing = sources.join("plugins").join(&name);
    if existing != dir && existing.exists() {
        bail!(
            "a plugin folder {} already exists: kidbench would find two methods named '{name}'; pick another name",
            existing.display()
        );
    }

    let crate_name = name.replace('_', "-");
    let type_name = type_name(&name);
    let build_steps;
    let (cargo_toml, lock) = match &mode {
        Mode::Workspace { root } => {
            let member = relative(&dir, root).expect("a workspace member is inside its root");
            build_steps = format!(
                "This crate belongs to the kidbench workspace: add `\"{member}\",` to `members` in \
                 the workspace's `Cargo.toml`. Then, from the workspace root, after \
                 `source scripts/env.sh`:\n\n\
                 ```sh\n\
                 cargo test -p kidbench-plugin-{crate_name}\n\
                 # target/debug/libkidbench_plugin_{name}.so, where kidbench looks by default\n\
                 cargo build -p kidbench-plugin-{crate_name}\n\
                 cargo run -- plugins\n\
                 # the conformance suite, one line per property (also run by `cargo test`)\n\
                 cargo run -- plugin check {name}\n\
                 cargo run -- run --methods sft,{name}:alpha=0.2\n\
                 ```"
            );
            (
                render(
                    CARGO_WORKSPACE,
                    &[("name", &name), ("crate_name", &crate_name)],
                ),
                None,
            )
        }
        Mode::Standalone { kidbench } => {
            let k = kidbench.display();
            build_steps = format!(
                "`LIBTORCH` must name the libtorch of the `kidbench` binary \
                 (`source {k}/scripts/env.sh` sets it).\n\n\
                 ```sh\n\
                 cargo test\n\
                 # target/debug/libkidbench_plugin_{name}.so \
                 (in $CARGO_TARGET_DIR/debug when that is set)\n\
                 cargo build\n\
                 kidbench plugins --plugin-dir target/debug\n\
                 # the conformance suite, one line per property (also run by `cargo test`)\n\
                 kidbench plugin check target/debug/libkidbench_plugin_{name}.so\n\
                 kidbench run --methods sft,{name}:alpha=0.2 --plugin-dir target/debug\n\
                 ```\n\n\
                 `KIDBENCH_PLUGIN_PATH` (`:`-separated folders) works like `--plugin-dir`."
            );
            let kd = toml_string(&kidbench.join("harness/kd").to_string_lossy());
            let host = toml_string(&kidbench.join("harness/plugin-host").to_string_lossy());
            let toml = render(
                CARGO_STANDALONE,
                &[
                    ("name", &name),
                    ("crate_name", &crate_name),
                    ("kd_path", &kd),
                    ("host_path", &host),
                    ("tch_version", TCH_REQ),
                    ("abi_stable_version", ABI_STABLE_REQ),
                ],
            );
            let lock = Some(kidbench.join("Cargo.lock")).filter(|l| l.is_file());
            (toml, lock)
        }
    };
    let vars = [
        ("name", name.as_str()),
        ("type_name", type_name.as_str()),
        ("build_steps", build_steps.as_str()),
    ];
    let mut files = vec![
        (PathBuf::from("Cargo.toml"), cargo_toml),
        (PathBuf::from("build.rs"), BUILD_RS.to_string()),
        (PathBuf::from("src/lib.rs"), render(LIB_RS, &vars)),
        (PathBuf::from("README.md"), render(README, &vars)),
    ];
    if matches!(mode, Mode::Standalone { .. }) {
        files.push((PathBuf::from(".gitignore"), GITIGNORE.to_string()));
    }
    Ok(Plan {
        name,
        dir,
        mode,
        files,
        lock,
    })
}

/// Creates `path` with `contents`; fails rather than overwrite.
fn write_new(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {} (nothing is overwritten)", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))
}

fn write(plan: &Plan) -> Result<()> {
    for (rel, contents) in &plan.files {
        write_new(&plan.dir.join(rel), contents.as_bytes())?;
    }
    if let Some(lock) = &plan.lock {
        let bytes = fs::read(lock).with_context(|| format!("reading {}", lock.display()))?;
        write_new(&plan.dir.join("Cargo.lock"), &bytes)?;
    }
    Ok(())
}

pub fn run(args: &NewArgs) -> Result<()> {
    let cwd = std::env::current_dir().context("the current folder")?;
    let plan = plan(args, &cwd)?;
    write(&plan)?;
    let (name, dir) = (&plan.name, plan.dir.display());
    let crate_name = name.replace('_', "-");
    println!("created plugin '{name}' (crate kidbench-plugin-{crate_name}) in {dir}");
    for (rel, _) in &plan.files {
        println!("    {}", rel.display());
    }
    match &plan.mode {
        Mode::Workspace { root } => {
            let member = relative(&plan.dir, root).expect("inside the workspace");
            let manifest = root.join("Cargo.toml");
            let listed =
                fs::read_to_string(&manifest).is_ok_and(|t| t.contains(&format!("\"{member}\"")));
            println!("next:");
            if listed {
                println!("  - \"{member}\" is already in the workspace members");
            } else {
                println!(
                    "  - add this line to `members` in {} (not done for you):\n        \"{member}\",",
                    manifest.display()
                );
            }
            println!("  - cargo test -p kidbench-plugin-{crate_name}");
            println!(
                "  - cargo build -p kidbench-plugin-{crate_name}   (target/debug/libkidbench_plugin_{name}.so)"
            );
            println!("  - kidbench plugin check {name}   (the conformance suite)");
            println!("  - kidbench plugins; kidbench run --methods sft,{name}:alpha=0.2");
        }
        Mode::Standalone { kidbench } => {
            if plan.lock.is_some() {
                println!(
                    "    Cargo.lock (copied from {}: the same dependency versions)",
                    kidbench.display()
                );
            }
            println!("depends on the kidbench sources in {}", kidbench.display());
            println!(
                "next (with LIBTORCH set: source {}/scripts/env.sh):",
                kidbench.display()
            );
            println!("  - cd {dir} && cargo test && cargo build");
            println!("  - kidbench plugins --plugin-dir {dir}/target/debug");
            println!(
                "  - kidbench plugin check {dir}/target/debug/libkidbench_plugin_{name}.so   (the conformance suite)"
            );
            println!(
                "  - kidbench run --methods sft,{name}:alpha=0.2 --plugin-dir {dir}/target/debug"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, dir: Option<&Path>, kidbench: Option<&Path>) -> NewArgs {
        NewArgs {
            name: name.to_string(),
            dir: dir.map(Path::to_path_buf),
            kidbench_path: kidbench.map(Path::to_path_buf),
        }
    }

    #[test]
    fn names_are_checked_with_a_hint() {
        for ok in ["skewkl", "skew_kl", "a1", "kd_2_b"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "1x", "_x", "Skew", "skew-kl", "sk ew", "é", "a/b", "x."] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid plugin name"), "{bad}: {e}");
        }
        let e = validate_name("skew-kl").unwrap_err().to_string();
        assert!(e.contains("try 'skew_kl'"), "{e}");
        let e = validate_name("Skew-KL").unwrap_err().to_string();
        assert!(e.contains("try 'skew_kl'"), "{e}");
        let e = validate_name("1x").unwrap_err().to_string();
        assert!(!e.contains("try"), "{e}");
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn type_names_are_camel_case_and_avoid_clashes() {
        assert_eq!(type_name("skew_kl"), "SkewKl");
        assert_eq!(type_name("a1_b"), "A1B");
        assert_eq!(type_name("skew__kl_"), "SkewKl");
        assert_eq!(type_name("plugin"), "PluginMethod");
        assert_eq!(type_name("self"), "SelfMethod");
        assert_eq!(type_name("method"), "MethodMethod");
        assert_eq!(type_name("kidbench_plugin"), "KidbenchPluginMethod");
    }

    #[test]
    fn paths_and_strings() {
        let cwd = Path::new("/a/b");
        assert_eq!(normalize(cwd, Path::new("../c/./d")), Path::new("/a/c/d"));
        assert_eq!(normalize(cwd, Path::new("/x/../y")), Path::new("/y"));
        assert_eq!(toml_string(r#"C:\x "y""#), r#""C:\\x \"y\"""#);
        assert_eq!(
            relative(Path::new("/r/plugins/x"), Path::new("/r")).as_deref(),
            Some("plugins/x")
        );
        assert_eq!(relative(Path::new("/s/x"), Path::new("/r")), None);
    }

    #[test]
    fn pinned_versions_are_the_workspaces() {
        let ws = include_str!("../Cargo.toml");
        assert!(ws.contains(&format!("tch = \"{TCH_REQ}\"")), "tch pin");
        assert!(ws.contains(&format!("abi_stable = \"{ABI_STABLE_REQ}\"")));
        assert!(is_kidbench_workspace(ws));
        assert!(!is_kidbench_workspace("[workspace]\nmembers = [\"a\"]\n"));
    }

    /// A fake kidbench workspace: the manifest is all detection looks at.
    fn fake_workspace() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("Cargo.toml"),
            "[workspace]\nmembers = [\n    \"harness/plugin-api\",\n    \"plugins/fkd\",\n]\n",
        )
        .unwrap();
        fs::create_dir_all(t.path().join("plugins/fkd")).unwrap();
        fs::write(t.path().join("plugins/fkd/Cargo.toml"), "").unwrap();
        fs::create_dir_all(t.path().join("harness/plugin-api")).unwrap();
        t
    }

    #[test]
    fn inside_a_workspace_defaults_to_plugins_and_inherits_dependencies() {
        let ws = fake_workspace();
        let cwd = ws.path().join("harness/plugin-api");
        let p = plan(&args("skew_kl", None, None), &cwd).unwrap();
        assert_eq!(p.dir, ws.path().join("plugins/skew_kl"));
        assert_eq!(
            p.mode,
            Mode::Workspace {
                root: ws.path().to_path_buf()
            }
        );
        assert!(p.lock.is_none());
        let cargo = &p.files[0].1;
        assert!(
            cargo.contains("name = \"kidbench-plugin-skew-kl\""),
            "{cargo}"
        );
        assert!(
            cargo.contains("name = \"kidbench_plugin_skew_kl\""),
            "{cargo}"
        );
        assert!(
            cargo.contains("crate-type = [\"cdylib\", \"rlib\"]"),
            "{cargo}"
        );
        assert!(
            cargo.contains("kidbench-kd = { workspace = true }"),
            "{cargo}"
        );
        assert!(!cargo.contains("[workspace]"), "{cargo}");
        let lib = &p
            .files
            .iter()
            .find(|f| f.0 == Path::new("src/lib.rs"))
            .unwrap()
            .1;
        assert!(lib.contains("pub struct SkewKl {"), "{lib}");
        assert!(
            lib.contains("export_method!(\n    SkewKl,\n    \"skew_kl\","),
            "{lib}"
        );
        assert!(lib.contains("impl Method for SkewKl {"), "{lib}");
        assert!(lib.contains("check::assert_conforms(\n"), "{lib}");
        let readme = &p
            .files
            .iter()
            .find(|f| f.0 == Path::new("README.md"))
            .unwrap()
            .1;
        assert!(readme.contains("\"plugins/skew_kl\","), "{readme}");

        // an existing plugin folder, a non-empty --dir, a file: refused, naming the folder
        let e = plan(&args("fkd", None, None), &cwd)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plugins/fkd") && e.contains("already exists"),
            "{e}"
        );
        let e = plan(&args("x", Some(Path::new("../../plugins")), None), &cwd)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not empty"), "{e}");
        let e = plan(&args("x", Some(Path::new("../../Cargo.toml")), None), &cwd)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a folder"), "{e}");
        // an empty folder is fine
        fs::create_dir_all(ws.path().join("plugins/empty")).unwrap();
        assert!(plan(&args("empty", None, None), &cwd).is_ok());
    }

    #[test]
    fn outside_a_workspace_depends_on_the_kidbench_sources_by_path() {
        let t = tempfile::tempdir().unwrap();
        let p = plan(&args("skewkl", None, None), t.path()).unwrap();
        assert_eq!(p.dir, t.path().join("skewkl"));
        assert_eq!(
            p.mode,
            Mode::Standalone {
                kidbench: build_root()
            }
        );
        assert_eq!(p.lock, Some(build_root().join("Cargo.lock")));
        let cargo = &p.files[0].1;
        let kd = toml_string(&build_root().join("harness/kd").to_string_lossy());
        assert!(
            cargo.contains(&format!("kidbench-kd = {{ path = {kd} }}")),
            "{cargo}"
        );
        assert!(cargo.contains("tch = \"=0.24.0\""), "{cargo}");
        assert!(cargo.contains("\n[workspace]\n"), "{cargo}");
        assert!(p.files.iter().any(|f| f.0 == Path::new(".gitignore")));
        // --kidbench-path is checked, and forces a standalone crate inside a workspace too
        let e = plan(&args("skewkl", None, Some(t.path())), t.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--kidbench-path") && e.contains("harness/kd"),
            "{e}"
        );
        let ws = fake_workspace();
        let p = plan(&args("skewkl", None, Some(&build_root())), ws.path()).unwrap();
        assert_eq!(p.dir, ws.path().join("plugins/skewkl"));
        assert!(matches!(p.mode, Mode::Standalone { .. }));
    }

    #[test]
    fn writing_never_overwrites() {
        let t = tempfile::tempdir().unwrap();
        let p = plan(&args("skewkl", None, None), t.path()).unwrap();
        write(&p).unwrap();
        assert!(t.path().join("skewkl/src/lib.rs").is_file());
        assert!(t.path().join("skewkl/Cargo.lock").is_file());
        let e = plan(&args("skewkl", None, None), t.path()).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        // a file appearing between planning and writing is not overwritten either
        let t2 = tempfile::tempdir().unwrap();
        let p = plan(&args("skewkl", None, None), t2.path()).unwrap();
        fs::create_dir_all(t2.path().join("skewkl")).unwrap();
        fs::write(t2.path().join("skewkl/build.rs"), "mine").unwrap();
        let e = format!("{:#}", write(&p).unwrap_err());
        assert!(e.contains("build.rs"), "{e}");
        assert_eq!(
            fs::read_to_string(t2.path().join("skewkl/build.rs")).unwrap(),
            "mine"
        );
    }
}
