//! Where kidbench keeps what it reuses between runs.

use std::path::PathBuf;

/// `$KIDBENCH_HOME`, else `~/.cache/kidbench`.
pub fn kidbench_home() -> PathBuf {
    if let Some(d) = std::env::var_os("KIDBENCH_HOME") {
        return PathBuf::from(d);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("kidbench")
}
