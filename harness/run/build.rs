//! Lets this crate's test and example binaries find libtorch at run time (no LD_LIBRARY_PATH),
//! and records the toolchain and libtorch for the `versions.json` of each results folder.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
        let version = std::fs::read_to_string(format!("{dir}/build-version"))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|_| dir.clone());
        println!("cargo:rustc-env=KIDBENCH_LIBTORCH={version}");
    } else {
        println!("cargo:rustc-env=KIDBENCH_LIBTORCH=unknown");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let v = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KIDBENCH_RUSTC={v}");
}
