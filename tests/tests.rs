//! Integration tests of the `kidbench` binary; one test binary (see Cargo.toml).
