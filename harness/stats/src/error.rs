/// Why a statistic could not be computed from its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// No run at all (`runs` / `a` / `b` is empty).
    #[error("{side}: no runs")]
    NoRuns { side: &'static str },
    /// Runs with zero questions: there is nothing to average.
    #[error("{side}: the runs have no questions")]
    NoQuestions { side: &'static str },
    /// Every run of one side must cover the same questions, so the same number of them.
    #[error("{side}: run {run} has {len} questions, run 0 has {expected}")]
    RaggedRuns {
        side: &'static str,
        run: usize,
        len: usize,
        expected: usize,
    },
    /// Paired statistics pair run `s` of `a` with run `s` of `b`.
    #[error("a has {a} seeds, b has {b}: paired statistics need the same seeds on both sides")]
    SeedsDiffer { a: usize, b: usize },
    /// Paired statistics pair question `q` of `a` with question `q` of `b`.
    #[error(
        "a has {a} questions, b has {b}: paired statistics need the same questions on both sides"
    )]
    QuestionsDiffer { a: usize, b: usize },
    /// A confidence level must lie strictly between 0 and 1 (e.g. 0.95).
    #[error("confidence level {level} is not in (0, 1)")]
    InvalidLevel { level: f64 },
    /// A bootstrap needs at least one resample.
    #[error("a bootstrap needs at least one resample, got 0")]
    NoResamples,
}

/// `level` in (0, 1), NaN excluded.
pub(crate) fn check_level(level: f64) -> Result<(), StatsError> {
    if crate::interval::open_unit(level) {
        Ok(())
    } else {
        Err(StatsError::InvalidLevel { level })
    }
}

/// Seeds and questions of one side's `runs[s][q]`, checked to be a non-empty rectangle.
pub(crate) fn check_runs(
    runs: &[Vec<bool>],
    side: &'static str,
) -> Result<(usize, usize), StatsError> {
    let first = runs.first().ok_or(StatsError::NoRuns { side })?;
    let expected = first.len();
    if let Some((run, r)) = runs.iter().enumerate().find(|(_, r)| r.len() != expected) {
        return Err(StatsError::RaggedRuns {
            side,
            run,
            len: r.len(),
            expected,
        });
    }
    if expected == 0 {
        return Err(StatsError::NoQuestions { side });
    }
    Ok((runs.len(), expected))
}
