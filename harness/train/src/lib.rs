//! `kidbench-train`: model presets, the trainer (resumable, deterministic on CPU), its host
//! services and optimizer. The `kidbench run` pipeline built on it lives in `kidbench-run`.
//!
//! Every method, SFT included, is a KD plugin driven through the `kidbench-plugin-host`
//! boundary: the plugin says which data a micro-batch needs and turns logits into a loss; the
//! trainer ([`trainer::train`]) builds that batch, runs the forwards it asked for, serves the
//! extra forwards and sampling it asks for during `loss` ([`host::TrainHost`]), runs backward,
//! clipping and the optimizer, and times each part separately.

pub mod bench;
pub mod cache;
pub mod data;
pub mod error;
pub mod host;
pub mod interrupt;
pub mod lm;
pub mod method;
pub mod optim;
pub mod parts;
pub mod presets;
pub mod progress;
pub mod subset;
pub mod trainer;

pub use error::TrainError;
