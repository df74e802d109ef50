//! Device selection and CUDA runtime loading.

use tch::Device;

/// Loads `libtorch_cuda.so` (searched by `dlopen`, i.e. through `LD_LIBRARY_PATH` and the
/// system paths) with `RTLD_NOW | RTLD_GLOBAL` and leaks the handle so it stays loaded.
/// Returns whether it loaded.
///
/// libtorch registers its CUDA backend from that library's static initializers; binaries
/// linked only against the CPU view never load it. Call this first thing in `main`, before
/// ANY tch call, or CUDA will not be available.
pub fn load_cuda_runtime() -> bool {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading libtorch_cuda runs its static initializers, which register the CUDA
    // backend with the already-linked libtorch; the handle is leaked so it is never unloaded.
    match unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) } {
        Ok(lib) => {
            std::mem::forget(lib);
            true
        }
        Err(_) => false,
    }
}

/// CUDA device 0 when CUDA is available, else CPU.
pub fn best_device() -> Device {
    Device::cuda_if_available()
}
