//! `kidbench-stats`: the statistics `kidbench report` and `kidbench compare` put beside accuracy
//! figures, so that a reader can tell a real difference between two methods from noise.
//!
//! - [`t_quantile`], [`t_interval`]: Student's t interval of a mean (used over seeds).
//! - [`bootstrap_mean_ci`]: percentile bootstrap interval of a mean (used over questions).
//! - [`accuracy`]: mean accuracy over seeds with the interval that fits the number of seeds.
//! - [`mcnemar_exact`], [`paired_bootstrap`], [`paired_comparison`]: is method B better or worse
//!   than method A on the *same* questions? Paired data, so the tests look at per-question
//!   verdicts, not at two independent means.
//! - [`holm`]: Holm's step-down correction when one table makes many comparisons.
//!
//! # Bad input
//!
//! The functions over verdict sets ([`accuracy`], [`mcnemar_exact`], [`paired_bootstrap`],
//! [`paired_comparison`]) return `Result<_, `[`StatsError`]`>` and never panic: no runs, runs with
//! no questions, runs of unequal lengths, two sides with different numbers of seeds or questions,
//! a `level` outside (0, 1) and zero resamples (where a bootstrap is needed) are errors.
//! The scalar helpers signal bad input in their value instead: [`t_quantile`] returns NaN,
//! [`t_interval`] returns `None`, [`bootstrap_mean_ci`] returns NaN bounds (NaN estimate for
//! an empty input), [`holm`] passes a NaN p-value through as NaN.
//!
//! Every bootstrap is seeded (`ChaCha8Rng::seed_from_u64(seed)`), so the same input, resample
//! count and seed give bit-identical results on every machine.

mod accuracy;
mod error;
mod holm;
mod interval;
mod paired;

pub use accuracy::{accuracy, Accuracy, CiMethod};
pub use error::StatsError;
pub use holm::holm;
pub use interval::{bootstrap_mean_ci, t_interval, t_quantile, Interval};
pub use paired::{mcnemar_exact, paired_bootstrap, paired_comparison, McNemar, Paired, PairedTest};

#[cfg(test)]
mod tests;
