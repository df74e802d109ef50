use crate::error::{check_level, check_runs};
use crate::interval::{bootstrap_mean_ci, mean, t_interval};
use crate::{Interval, StatsError};

/// Which interval an [`Accuracy`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CiMethod {
    /// Student's t-interval over the per-seed accuracies (≥ 2 seeds): it includes the
    /// training-seed variance.
    TOverSeeds,
    /// Percentile bootstrap over the questions of the single run: it includes only the
    /// question-sampling variance, so it is narrower than the truth for a trained model.
    BootstrapOverQuestions,
}

/// Accuracy of one configuration over its seeds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accuracy {
    /// Mean over seeds of each seed's fraction of questions right, in [0, 1].
    pub mean: f64,
    /// Interval around `mean` (bounds clipped to [0, 1]), by `method`.
    pub ci: Interval,
    pub method: CiMethod,
    pub seeds: usize,
    pub questions: usize,
}

/// Accuracy of `runs[s][q]`, the verdict of question q in the run with seed s (every run over
/// the same questions, in the same order).
///
/// `mean` is the mean over seeds of the per-seed accuracies (fractions in [0, 1]). The interval
/// is the t-interval over the per-seed accuracies when there are ≥ 2 seeds, else a percentile
/// bootstrap over the questions of the one run (`resamples` resamples, seeded with `seed`).
/// Both bounds are clipped to [0, 1]: an accuracy cannot lie outside, so clipping loses no
/// coverage.
///
/// Errors: no runs, no questions, runs of unequal lengths, `level` not in (0, 1), and
/// `resamples == 0` with a single seed.
pub fn accuracy(
    runs: &[Vec<bool>],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Result<Accuracy, StatsError> {
    let (seeds, questions) = check_runs(runs, "runs")?;
    check_level(level)?;
    let per_seed: Vec<f64> = runs.iter().map(|r| fraction(r)).collect();
    let (ci, method) = if seeds >= 2 {
        let ci = t_interval(&per_seed, level).ok_or(StatsError::InvalidLevel { level })?;
        (ci, CiMethod::TOverSeeds)
    } else {
        if resamples == 0 {
            return Err(StatsError::NoResamples);
        }
        let values: Vec<f64> = runs[0].iter().map(|&v| f64::from(u8::from(v))).collect();
        let ci = bootstrap_mean_ci(&values, level, resamples, seed);
        (ci, CiMethod::BootstrapOverQuestions)
    };
    let mean = mean(&per_seed);
    Ok(Accuracy {
        mean,
        ci: Interval {
            estimate: mean,
            lo: ci.lo.clamp(0.0, 1.0),
            hi: ci.hi.clamp(0.0, 1.0),
            level,
        },
        method,
        seeds,
        questions,
    })
}

/// Fraction of `true` in a non-empty slice.
pub(crate) fn fraction(v: &[bool]) -> f64 {
    v.iter().filter(|&&x| x).count() as f64 / v.len() as f64
}
