/// Holm's step-down adjustment of `p` for `m = p.len()` comparisons made together: sort the
/// p-values, multiply the i-th smallest (i from 0) by `m - i`, take the running maximum so the
/// adjusted values keep the order of the raw ones, and cap at 1. Rejecting every hypothesis
/// whose adjusted p-value is below α keeps the chance of any false rejection in the family at
/// most α, without assuming the tests are independent (it is uniformly better than Bonferroni).
///
/// The adjusted values come back in the input's order. A NaN p-value sorts last, still counts
/// in `m` (conservative), and comes back as NaN.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    // NaN last, whatever its sign bit.
    order.sort_by(|&i, &j| match (p[i].is_nan(), p[j].is_nan()) {
        (false, false) => p[i].total_cmp(&p[j]),
        (a, b) => a.cmp(&b),
    });
    let mut out = vec![f64::NAN; m];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        if p[i].is_nan() {
            continue;
        }
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}
