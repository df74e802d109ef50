//! kidbench-kd: the divergences every KD method shares ([`div`]) and the plugin-side SDK
//! ([`sdk`]) that turns a plain Rust [`sdk::Method`] into a cdylib behind the stable ABI of
//! `kidbench-plugin-api`: `kidbench_kd::export_method!(MyMethod, "name", "description");`.
//! A method may declare its loss in the closed forms of [`div`] ([`sdk::LossForm`]), which
//! `kidbench plugin check` compares it with.

pub mod div;
pub mod sdk;

pub use div::{
    divergence_loss, log_probs, masked_loss, mle_loss, token_divergence, token_entropy, Divergence,
};

/// Label value of positions without loss (PyTorch's `ignore_index`), as in the host's batches.
pub const IGNORE: i64 = -100;

#[derive(Debug, thiserror::Error)]
pub enum KdError {
    #[error("shape: {0}")]
    Shape(String),
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests;
