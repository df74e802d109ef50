use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{check_level, check_runs};
use crate::interval::percentile_bounds;
use crate::{Interval, StatsError};

/// McNemar's exact test of two single runs over the same questions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct McNemar {
    /// Questions `a` gets right and `b` gets wrong.
    pub a_only: usize,
    /// Questions `b` gets right and `a` gets wrong.
    pub b_only: usize,
    /// Two-sided exact p-value of "a and b are equally accurate".
    pub p_value: f64,
}

/// McNemar's exact test: under "a and b are equally accurate", each discordant question (one
/// side right, the other wrong) is equally likely to favour either side, so
/// `a_only ~ Bin(a_only + b_only, 1/2)`. The two-sided p-value is
/// `min(1, 2·P[X ≤ min(a_only, b_only)])` with `X ~ Bin(a_only + b_only, 1/2)`; questions both
/// get right or both get wrong say nothing about the difference and do not count. No discordant
/// question gives p = 1. The binomial sum is computed in log space, so thousands of discordant
/// questions keep full relative precision.
///
/// Errors: `a` or `b` empty, or of different lengths.
pub fn mcnemar_exact(a: &[bool], b: &[bool]) -> Result<McNemar, StatsError> {
    if a.is_empty() {
        return Err(StatsError::NoQuestions { side: "a" });
    }
    if b.is_empty() {
        return Err(StatsError::NoQuestions { side: "b" });
    }
    if a.len() != b.len() {
        return Err(StatsError::QuestionsDiffer {
            a: a.len(),
            b: b.len(),
        });
    }
    let a_only = a.iter().zip(b).filter(|(&x, &y)| x && !y).count();
    let b_only = a.iter().zip(b).filter(|(&x, &y)| !x && y).count();
    let n = a_only + b_only;
    let p_value = if n == 0 {
        1.0
    } else {
        (2.0 * ln_binom_half_cdf(n, a_only.min(b_only)).exp()).min(1.0)
    };
    Ok(McNemar {
        a_only,
        b_only,
        p_value,
    })
}

/// `ln P[X ≤ k]` for `X ~ Bin(n, 1/2)`: log-sum-exp of `ln C(n, j) - n ln 2`, j = 0..=k, with
/// `ln C(n, j)` built up by `ln C(n, j) = ln C(n, j-1) + ln(n-j+1) - ln j`.
fn ln_binom_half_cdf(n: usize, k: usize) -> f64 {
    let k = k.min(n);
    let mut ln_c = 0.0_f64;
    let mut terms = Vec::with_capacity(k + 1);
    terms.push(0.0);
    for j in 1..=k {
        ln_c += ((n - j + 1) as f64).ln() - (j as f64).ln();
        terms.push(ln_c);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    max + sum.ln() - n as f64 * std::f64::consts::LN_2
}

/// Which test produced a [`Paired`]'s p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairedTest {
    McNemarExact,
    PairedBootstrap,
}

/// A paired comparison of two configurations, B against A, on the same questions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Paired {
    /// `acc(b) - acc(a)` as fractions (positive: b is better), with its bootstrap interval.
    pub diff: Interval,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
    pub test: PairedTest,
    pub seeds: usize,
    pub questions: usize,
}

/// Paired bootstrap of `acc(b) - acc(a)`, where `a[s][q]` / `b[s][q]` is the verdict of
/// question q in the run with seed index s (the same seeds and questions on both sides, in the
/// same order), and acc is the mean over seeds of the per-seed accuracy.
///
/// Each resample draws as many question indices as there are questions, with replacement, and
/// keeps every drawn question's verdicts of both sides across all seeds together; with ≥ 2
/// seeds it also draws seed indices with replacement, keeping `a[s]` and `b[s]` together. So
/// the interval reflects question sampling and (with seeds) training-seed variance, and the
/// pairing removes the variance the two sides share.
///
/// The interval is the percentile interval of the resampled differences. The two-sided p-value
/// compares the centred bootstrap distribution to the observed difference d:
/// `p = (#{|d* - d| ≥ |d|} + 1) / (resamples + 1)`, capped at 1. Identical inputs give a
/// difference of 0 and p = 1; swapping `a` and `b` negates the difference and keeps p. The
/// smallest p it can report is `1 / (resamples + 1)`.
///
/// Seeded with `ChaCha8Rng::seed_from_u64(seed)`: deterministic.
///
/// Errors: either side has no runs or no questions, runs of unequal lengths, different numbers
/// of seeds or questions on the two sides, `level` not in (0, 1), `resamples == 0`.
pub fn paired_bootstrap(
    a: &[Vec<bool>],
    b: &[Vec<bool>],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Result<Paired, StatsError> {
    let (seeds, questions) = check_pair(a, b, level)?;
    if resamples == 0 {
        return Err(StatsError::NoResamples);
    }
    // delta[s * questions + q] = b - a, in {-1, 0, 1}. Every resample has `seeds` seeds and
    // `questions` questions, so all differences share the denominator and the sums can be
    // compared exactly, in integers.
    let delta: Vec<i64> = a
        .iter()
        .zip(b)
        .flat_map(|(ra, rb)| {
            ra.iter()
                .zip(rb)
                .map(|(&x, &y)| i64::from(y) - i64::from(x))
        })
        .collect();
    let total: i64 = delta.iter().sum();
    let denom = (seeds * questions) as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seed_counts = vec![1_i64; seeds];
    let mut q_counts = vec![0_i64; questions];
    let mut diffs = Vec::with_capacity(resamples);
    let mut extreme = 0_usize;
    for _ in 0..resamples {
        if seeds >= 2 {
            seed_counts.fill(0);
            for _ in 0..seeds {
                seed_counts[rng.random_range(0..seeds)] += 1;
            }
        }
        q_counts.fill(0);
        for _ in 0..questions {
            q_counts[rng.random_range(0..questions)] += 1;
        }
        let mut sum = 0_i64;
        for (s, &m) in seed_counts.iter().enumerate() {
            if m == 0 {
                continue;
            }
            let row = &delta[s * questions..(s + 1) * questions];
            let row_sum: i64 = row.iter().zip(&q_counts).map(|(d, c)| d * c).sum();
            sum += m * row_sum;
        }
        if (sum - total).abs() >= total.abs() {
            extreme += 1;
        }
        diffs.push(sum as f64 / denom);
    }
    let (lo, hi) = percentile_bounds(&mut diffs, level);
    let p_value = ((extreme + 1) as f64 / (resamples + 1) as f64).min(1.0);
    Ok(Paired {
        diff: Interval {
            estimate: total as f64 / denom,
            lo,
            hi,
            level,
        },
        p_value,
        test: PairedTest::PairedBootstrap,
        seeds,
        questions,
    })
}

/// The comparison reports use. One seed on each side: the interval of the difference comes
/// from the paired bootstrap over questions and the p-value from McNemar's exact test (exact,
/// and not limited to `1 / (resamples + 1)`). ≥ 2 seeds: [`paired_bootstrap`] over seeds and
/// questions, its p-value included. Same errors as [`paired_bootstrap`].
pub fn paired_comparison(
    a: &[Vec<bool>],
    b: &[Vec<bool>],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Result<Paired, StatsError> {
    let (seeds, _) = check_pair(a, b, level)?;
    let boot = paired_bootstrap(a, b, level, resamples, seed)?;
    if seeds >= 2 {
        return Ok(boot);
    }
    let mc = mcnemar_exact(&a[0], &b[0])?;
    Ok(Paired {
        p_value: mc.p_value,
        test: PairedTest::McNemarExact,
        ..boot
    })
}

fn check_pair(a: &[Vec<bool>], b: &[Vec<bool>], level: f64) -> Result<(usize, usize), StatsError> {
    let (sa, qa) = check_runs(a, "a")?;
    let (sb, qb) = check_runs(b, "b")?;
    if sa != sb {
        return Err(StatsError::SeedsDiffer { a: sa, b: sb });
    }
    if qa != qb {
        return Err(StatsError::QuestionsDiffer { a: qa, b: qb });
    }
    check_level(level)?;
    Ok((sa, qa))
}
