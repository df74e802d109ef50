//! The `kidbench` binary and its test binaries find libtorch through an rpath (tch's own rpath
//! only covers tch's targets), and `kidbench doctor` reports which libtorch it was built against.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(dir) = std::env::var_os("LIBTORCH").filter(|d| !d.is_empty()) else {
        println!("cargo::error=LIBTORCH is not set: run `source scripts/env.sh` (it runs scripts/setup.sh) first");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,{}",
        dir.join("lib").display()
    );
    println!("cargo:rustc-env=KIDBENCH_BUILD_LIBTORCH={}", dir.display());
}
