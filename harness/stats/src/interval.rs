use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// A point estimate with a two-sided confidence interval at `level` (e.g. 0.95): an interval
/// built this way covers the true value in a fraction `level` of repeated experiments.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
}

impl Interval {
    /// Half the interval's width, `(hi - lo) / 2`: the "±" of `estimate ± half_width` when the
    /// interval is symmetric (a t-interval), half the width otherwise (a bootstrap interval).
    pub fn half_width(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }

    /// Whether `x` lies in `[lo, hi]`.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// Quantile of Student's t distribution with `df` degrees of freedom: the `t` with
/// `P[T ≤ t] = p`. `df = ∞` gives the standard normal quantile. NaN when `p` is not in (0, 1)
/// or `df` is not positive.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let df_ok = df > 0.0; // false for NaN too
    if !open_unit(p) || !df_ok {
        return f64::NAN;
    }
    if df > CORNISH_FISHER_DF {
        return cornish_fisher(Normal::standard().inverse_cdf(p), df);
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// Above this many degrees of freedom statrs' inverse (via the inverse regularized beta
/// function) loses accuracy (about 1e-4 off at df = 1e6), while the expansion below is exact to
/// machine precision (its first omitted term is of order df⁻⁵).
const CORNISH_FISHER_DF: f64 = 1000.0;

/// Cornish–Fisher expansion of the t quantile around the normal quantile `z`
/// (Abramowitz & Stegun 26.7.5): `t = z + g1/ν + g2/ν² + g3/ν³ + g4/ν⁴`.
fn cornish_fisher(z: f64, df: f64) -> f64 {
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df
}

/// Mean of `values` with Student's t-interval `mean ± t_{(1+level)/2, n-1} · s/√n`, where `s` is
/// the sample standard deviation (divisor `n - 1`). It assumes the values are independent draws
/// of a roughly normal quantity (e.g. one accuracy per training seed). `None` when `n < 2` (no
/// spread to estimate) or `level` is not in (0, 1).
pub fn t_interval(values: &[f64], level: f64) -> Option<Interval> {
    let n = values.len();
    if n < 2 || !open_unit(level) {
        return None;
    }
    let mean = mean(values);
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    let se = (var / n as f64).sqrt();
    let t = t_quantile((1.0 + level) / 2.0, (n - 1) as f64);
    Some(Interval {
        estimate: mean,
        lo: mean - t * se,
        hi: mean + t * se,
        level,
    })
}

/// Percentile bootstrap interval of the mean of `values`: draw `resamples` samples of
/// `values.len()` values with replacement, take each one's mean, and return the
/// `(1 - level)/2` and `(1 + level)/2` quantiles of those means (linearly interpolated between
/// order statistics) around the mean of `values` itself. It assumes nothing about the shape of
/// the distribution, only that the values are independent (e.g. one verdict per question).
///
/// Seeded with `ChaCha8Rng::seed_from_u64(seed)`: deterministic. An empty `values` gives NaN
/// everywhere; `resamples == 0` or a `level` outside (0, 1) gives NaN bounds.
pub fn bootstrap_mean_ci(values: &[f64], level: f64, resamples: usize, seed: u64) -> Interval {
    let n = values.len();
    let estimate = if n == 0 { f64::NAN } else { mean(values) };
    let nan = Interval {
        estimate,
        lo: f64::NAN,
        hi: f64::NAN,
        level,
    };
    if n == 0 || resamples == 0 || !open_unit(level) {
        return nan;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    let (lo, hi) = percentile_bounds(&mut means, level);
    Interval {
        estimate,
        lo,
        hi,
        level,
    }
}

/// `x` in (0, 1); false for NaN.
pub(crate) fn open_unit(x: f64) -> bool {
    x > 0.0 && x < 1.0
}

pub(crate) fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The `(1 - level)/2` and `(1 + level)/2` quantiles of `xs` (sorted in place), by linear
/// interpolation between order statistics (R's type 7, numpy's default). `xs` must not be
/// empty.
pub(crate) fn percentile_bounds(xs: &mut [f64], level: f64) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (quantile_sorted(xs, tail), quantile_sorted(xs, 1.0 - tail))
}

fn quantile_sorted(xs: &[f64], p: f64) -> f64 {
    let h = (xs.len() - 1) as f64 * p;
    let j = h.floor() as usize;
    if j + 1 >= xs.len() {
        return xs[xs.len() - 1];
    }
    xs[j] + (h - j as f64) * (xs[j + 1] - xs[j])
}
