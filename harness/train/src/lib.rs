//! `kidbench-train`: model presets, the SFT trainer (resumable, deterministic on CPU), the teacher
//! cache and the `kidbench run` pipeline.
//!
//! A training step is split three ways so knowledge-distillation methods plug in without touching
//! the loop: the host builds a [`data::Batch`], a [`method::Method`] turns student (and optionally
//! teacher) logits into a loss, the host runs backward, clipping and the optimizer, and times each
//! part separately.

pub mod bench;
pub mod cache;
pub mod data;
pub mod error;
pub mod lm;
pub mod method;
pub mod optim;
pub mod presets;
pub mod run;
pub mod trainer;

pub use error::TrainError;

pub use run::{run, teacher, CommonArgs, RunArgs, RunSummary, TeacherArgs, TeacherSummary};
