//! Records the libtorch version this crate (and so every plugin and host using it) is built
//! against: `$LIBTORCH/build-version`, e.g. `2.11.0+cpu`. Loading compares the plugin's copy with
//! the host's.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let version = std::env::var("LIBTORCH")
        .ok()
        .filter(|d| !d.is_empty())
        .and_then(|dir| {
            let file = std::path::Path::new(&dir).join("build-version");
            println!("cargo:rerun-if-changed={}", file.display());
            std::fs::read_to_string(file).ok()
        })
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=KIDBENCH_LIBTORCH_VERSION={version}");
}
