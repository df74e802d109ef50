//! A valid shared library that exports no kidbench root module.

#[no_mangle]
pub extern "C" fn kidbench_not_a_plugin() -> i32 {
    42
}
