//! Bad inputs give errors that name what is wrong and what is available.

use kidbench_train::{method, presets};

#[test]
fn unknown_preset_lists_presets() {
    let err = presets::lookup("tiny-xl").unwrap_err().to_string();
    assert!(err.contains("unknown model preset 'tiny-xl'"), "{err}");
    for p in [
        "tiny-s",
        "tiny-m",
        "tiny-l",
        "qwen1.5-0.5b",
        "llama2-7b",
        "tinyllama-1.1b",
    ] {
        assert!(err.contains(p), "{err} lacks {p}");
    }
}

#[test]
fn aliases_resolve() {
    assert_eq!(presets::lookup("qwen-7b").unwrap().name(), "qwen1.5-7b");
    assert_eq!(
        presets::lookup("Qwen1.5-0.5B").unwrap().name(),
        "qwen1.5-0.5b"
    );
}

#[test]
fn missing_model_folder_names_folder_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = presets::resolve("qwen-0.5b", Some(&missing))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(err.contains(f), "{err} lacks {f}");
    }
    // A folder with some files: only the missing ones are named.
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    std::fs::write(dir.path().join("model.safetensors.index.json"), "{}").unwrap();
    let err = presets::resolve("qwen-0.5b", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer.json") && !err.contains("config.json"),
        "{err}"
    );
    std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
    assert!(presets::resolve("qwen-0.5b", Some(dir.path())).is_ok());
}

#[test]
fn unknown_method_lists_methods() {
    // the linked-in sft is there even when no plugin file is found
    let reg = method::registry(&[std::path::PathBuf::from("/nonexistent/plugins")]);
    let err = reg
        .create("dpo")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("unknown method 'dpo'") && err.contains("sft"),
        "{err}"
    );
    assert_eq!(
        reg.create("SFT").map(|m| m.name().to_string()).ok(),
        Some("sft".into())
    );
}

#[test]
fn method_lists_split_on_commas_but_keep_parameters_together() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        method::split_specs(&v(&[
            "sft,kid:alpha=0.3,strategy=hard,gkd",
            "rkd:temperature=2"
        ])),
        v(&[
            "sft",
            "kid:alpha=0.3,strategy=hard",
            "gkd",
            "rkd:temperature=2"
        ])
    );
    let specs = method::parse_specs(&v(&["sft,kid:alpha=0.3,strategy=hard"])).unwrap();
    assert_eq!(specs[1].name, "kid");
    assert_eq!(specs[1].params_string(), "alpha=0.3,strategy=hard");
    assert_eq!(specs[1].spec(), "kid:alpha=0.3,strategy=hard");
    assert_eq!(specs[1].label, "kid_alpha-0.3_strategy-hard");
    assert_eq!(specs[0].label, "sft");
    let e = method::parse_specs(&v(&["sft,SFT"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("listed twice"), "{e}");
    assert!(method::parse_specs(&v(&[","])).is_err());
}
