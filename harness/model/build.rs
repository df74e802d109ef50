//! Embeds an rpath to libtorch so test and bench binaries run without LD_LIBRARY_PATH
//! (tch's own rpath does not propagate to dependent binaries).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    match std::env::var("LIBTORCH") {
        Ok(dir) if !dir.is_empty() => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
        }
        _ => {
            // `cargo::error` fails the build with this message once the script ends.
            println!(
                "cargo::error=LIBTORCH is not set: run `scripts/setup.sh` then \
                 `source scripts/env.sh` before building kidbench-model"
            );
        }
    }
}
