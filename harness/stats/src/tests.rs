//! Every expected value here comes from a t table, a closed form worked out by hand, or SciPy
//! 1.x (`scipy.stats`, in a throwaway venv), never from this crate.

use super::*;
use proptest::prelude::*;

fn close(x: f64, want: f64, tol: f64) -> bool {
    (x - want).abs() <= tol
}

/// `n` verdicts, the first `right` of them true.
fn verdicts(n: usize, right: usize) -> Vec<bool> {
    (0..n).map(|i| i < right).collect()
}

#[test]
fn t_quantiles_match_a_t_table() {
    // Two-sided 95 % critical values from any t table (and scipy.stats.t.ppf(0.975, df)).
    for (df, want) in [
        (1.0, 12.7062),
        (2.0, 4.3027),
        (4.0, 2.7764),
        (9.0, 2.2622),
        (29.0, 2.0452),
        (1e6, 1.95997),
        (f64::INFINITY, 1.95996),
    ] {
        let t = t_quantile(0.975, df);
        assert!(close(t, want, 5e-5), "t_(0.975, {df}) = {t}, table {want}");
    }
    // Where statrs' own inverse drifts (large df), against scipy.stats.t.ppf, to 1e-10.
    for (df, p, want) in [
        (1000.0, 0.975, 1.9623390808264083),
        (1001.0, 0.975, 1.9623367052808798),
        (1001.0, 0.0005, -3.3002728760660096),
        (5000.0, 0.995, 2.5768129665562802),
        (1e5, 0.975, 1.9599877075346095),
        (1e6, 0.975, 1.959966356814107),
        (1e6, 0.9995, 3.2905364612487222),
    ] {
        let t = t_quantile(p, df);
        assert!(close(t, want, 1e-10), "t_({p}, {df}) = {t}, scipy {want}");
    }
    // Other tails: t_(0.995, 9) = 3.2498 (99 % two-sided), t_(0.05, 5) = -2.0150.
    assert!(close(t_quantile(0.995, 9.0), 3.2498, 5e-5));
    assert!(close(t_quantile(0.05, 5.0), -2.0150, 5e-5));
    assert!(close(t_quantile(0.5, 7.0), 0.0, 1e-12));
}

#[test]
fn t_quantile_of_bad_input_is_nan() {
    assert!(t_quantile(0.0, 5.0).is_nan());
    assert!(t_quantile(1.0, 5.0).is_nan());
    assert!(t_quantile(0.975, 0.0).is_nan());
    assert!(t_quantile(f64::NAN, 5.0).is_nan());
}

#[test]
fn t_interval_of_one_to_five_is_three_plus_minus_1_9632() {
    // mean 3, s^2 = (4+1+0+1+4)/4 = 2.5, s/sqrt(5) = sqrt(0.5) = 0.707107,
    // t_(0.975, 4) = 2.776445: 3 ± 1.963243 (scipy.stats.t.interval: 1.0367568, 4.9632432).
    let ci = t_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95).unwrap();
    assert_eq!(ci.estimate, 3.0);
    assert!(close(ci.lo, 1.0367568, 1e-6), "{ci:?}");
    assert!(close(ci.hi, 4.9632432, 1e-6), "{ci:?}");
    assert!(close(ci.half_width(), 1.9632432, 1e-6));
    assert_eq!(ci.level, 0.95);
}

#[test]
fn t_interval_needs_two_values_and_a_level_in_0_1() {
    assert_eq!(t_interval(&[], 0.95), None);
    assert_eq!(t_interval(&[0.5], 0.95), None);
    assert_eq!(t_interval(&[0.5, 0.6], 1.0), None);
    assert_eq!(t_interval(&[0.5, 0.6], 0.0), None);
}

#[test]
fn bootstrap_is_deterministic_for_a_seed_and_contains_the_mean() {
    let values: Vec<f64> = (0..50).map(|i| ((i * 37) % 11) as f64).collect();
    let mean = values.iter().sum::<f64>() / 50.0;
    let a = bootstrap_mean_ci(&values, 0.95, 1000, 7);
    let b = bootstrap_mean_ci(&values, 0.95, 1000, 7);
    assert_eq!(a, b);
    assert_eq!(a.estimate, mean);
    assert!(a.lo < mean && mean < a.hi, "{a:?}");
    let c = bootstrap_mean_ci(&values, 0.95, 1000, 8);
    assert_ne!(
        (a.lo, a.hi),
        (c.lo, c.hi),
        "another seed draws other resamples"
    );
}

#[test]
fn bootstrap_of_a_coin_has_the_normal_theory_width() {
    // 400 verdicts, half right: SE = sqrt(0.5 * 0.5 / 400) = 0.025, so a 95 % interval is
    // about 0.5 ± 1.96 * 0.025 = 0.5 ± 0.049. 4000 resamples put the bootstrap within a few
    // thousandths of that.
    let values: Vec<f64> = (0..400).map(|i| (i % 2) as f64).collect();
    let ci = bootstrap_mean_ci(&values, 0.95, 4000, 1);
    assert!(close(ci.half_width(), 0.049, 0.004), "{ci:?}");
    assert!(close((ci.lo + ci.hi) / 2.0, 0.5, 0.004), "{ci:?}");
}

#[test]
fn bootstrap_of_bad_input_has_nan_bounds() {
    let e = bootstrap_mean_ci(&[], 0.95, 100, 0);
    assert!(e.estimate.is_nan() && e.lo.is_nan() && e.hi.is_nan());
    let z = bootstrap_mean_ci(&[1.0, 2.0], 0.95, 0, 0);
    assert_eq!(z.estimate, 1.5);
    assert!(z.lo.is_nan() && z.hi.is_nan());
    assert!(bootstrap_mean_ci(&[1.0, 2.0], 1.5, 10, 0).lo.is_nan());
}

#[test]
fn accuracy_over_three_seeds_is_the_t_interval_of_their_accuracies() {
    // Accuracies 0.5, 0.6, 0.7 over 10 questions: mean 0.6, s = 0.1, s/sqrt(3) = 0.057735,
    // t_(0.975, 2) = 4.302653: 0.6 ± 0.248414 (scipy: 0.3515862, 0.8484138).
    let runs = vec![verdicts(10, 5), verdicts(10, 6), verdicts(10, 7)];
    let acc = accuracy(&runs, 0.95, 100, 0).unwrap();
    assert_eq!(acc.method, CiMethod::TOverSeeds);
    assert_eq!((acc.seeds, acc.questions), (3, 10));
    assert!(close(acc.mean, 0.6, 1e-12));
    assert!(close(acc.ci.lo, 0.3515862, 1e-6), "{acc:?}");
    assert!(close(acc.ci.hi, 0.8484138, 1e-6), "{acc:?}");
}

#[test]
fn accuracy_of_one_seed_bootstraps_questions_and_clips_to_0_1() {
    let one = accuracy(&[verdicts(200, 150)], 0.95, 2000, 3).unwrap();
    assert_eq!(one.method, CiMethod::BootstrapOverQuestions);
    assert_eq!(one.mean, 0.75);
    // Normal theory: SE = sqrt(0.75 * 0.25 / 200) = 0.030619, half width ≈ 0.0600.
    assert!(close(one.ci.half_width(), 0.0600, 0.006), "{one:?}");
    // Seeds 0.9, 1.0, 1.0 (10 questions): mean 0.9667, s = 0.057735, t-interval
    // 0.9667 ± 4.302653 * 0.033333 = [0.8232, 1.1101], clipped above at 1.
    let high = accuracy(
        &[verdicts(10, 9), verdicts(10, 10), verdicts(10, 10)],
        0.95,
        1,
        0,
    )
    .unwrap();
    assert!(close(high.ci.lo, 0.823245, 1e-5), "{high:?}");
    assert_eq!(high.ci.hi, 1.0);
}

#[test]
fn accuracy_refuses_bad_input_with_typed_errors() {
    assert_eq!(
        accuracy(&[], 0.95, 10, 0),
        Err(StatsError::NoRuns { side: "runs" })
    );
    assert_eq!(
        accuracy(&[vec![]], 0.95, 10, 0),
        Err(StatsError::NoQuestions { side: "runs" })
    );
    assert_eq!(
        accuracy(&[vec![true, false], vec![true]], 0.95, 10, 0),
        Err(StatsError::RaggedRuns {
            side: "runs",
            run: 1,
            len: 1,
            expected: 2
        })
    );
    assert_eq!(
        accuracy(&[vec![true]], 0.95, 0, 0),
        Err(StatsError::NoResamples)
    );
    assert_eq!(
        accuracy(&[vec![true]], 95.0, 10, 0),
        Err(StatsError::InvalidLevel { level: 95.0 })
    );
}

/// Two runs over `a_only + b_only + both + neither` questions with those cell counts.
fn table(a_only: usize, b_only: usize, both: usize, neither: usize) -> (Vec<bool>, Vec<bool>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (n, x, y) in [
        (a_only, true, false),
        (b_only, false, true),
        (both, true, true),
        (neither, false, false),
    ] {
        a.extend(std::iter::repeat_n(x, n));
        b.extend(std::iter::repeat_n(y, n));
    }
    (a, b)
}

#[test]
fn mcnemar_matches_hand_computed_binomial_sums() {
    // 0 vs 5 discordant: 2 * P[X <= 0], X ~ Bin(5, 1/2) = 2 * 1/32 = 0.0625.
    let (a, b) = table(0, 5, 3, 2);
    let m = mcnemar_exact(&a, &b).unwrap();
    assert_eq!((m.a_only, m.b_only), (0, 5));
    assert!(close(m.p_value, 0.0625, 1e-15), "{m:?}");
    // 1 vs 9: 2 * (C(10,0) + C(10,1)) / 2^10 = 2 * 11 / 1024 = 0.021484375.
    let (a, b) = table(1, 9, 0, 0);
    assert!(close(
        mcnemar_exact(&a, &b).unwrap().p_value,
        22.0 / 1024.0,
        1e-15
    ));
    // 2 vs 4: 2 * (1 + 6 + 15) / 64 = 44 / 64 = 0.6875.
    let (a, b) = table(2, 4, 10, 10);
    assert!(close(mcnemar_exact(&a, &b).unwrap().p_value, 0.6875, 1e-15));
    // 3 vs 3: the two-sided sum exceeds 1 and is capped.
    let (a, b) = table(3, 3, 1, 1);
    assert_eq!(mcnemar_exact(&a, &b).unwrap().p_value, 1.0);
    // Nothing discordant: p = 1.
    let (a, b) = table(0, 0, 4, 4);
    assert_eq!(mcnemar_exact(&a, &b).unwrap().p_value, 1.0);
}

#[test]
fn mcnemar_stays_exact_with_thousands_of_discordant_pairs() {
    // scipy.stats.binomtest(950, 2000, 0.5).pvalue = 0.026824146240280546
    let (a, b) = table(950, 1050, 300, 0);
    let p = mcnemar_exact(&a, &b).unwrap().p_value;
    assert!((p / 0.026824146240280546 - 1.0).abs() < 1e-9, "{p}");
    // scipy.stats.binomtest(430, 1000, 0.5).pvalue = 1.0709737664959605e-05
    let (a, b) = table(430, 570, 0, 0);
    let p = mcnemar_exact(&a, &b).unwrap().p_value;
    assert!((p / 1.0709737664959605e-05 - 1.0).abs() < 1e-9, "{p}");
}

#[test]
fn mcnemar_refuses_empty_and_unequal_runs() {
    assert_eq!(
        mcnemar_exact(&[], &[]),
        Err(StatsError::NoQuestions { side: "a" })
    );
    assert_eq!(
        mcnemar_exact(&[true], &[true, false]),
        Err(StatsError::QuestionsDiffer { a: 1, b: 2 })
    );
}

#[test]
fn holm_matches_the_textbook_example() {
    // Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06.
    let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
    for (x, want) in adj.iter().zip([0.03, 0.06, 0.06, 0.02]) {
        assert!(close(*x, want, 1e-12), "{adj:?}");
    }
}

#[test]
fn holm_caps_at_one_keeps_ties_and_passes_nan_through() {
    assert_eq!(holm(&[]), Vec::<f64>::new());
    assert_eq!(holm(&[0.3]), vec![0.3]);
    // 0.2*3 = 0.6, 0.2*2 = 0.4 -> 0.6, 0.5*1 -> 0.6 by monotonicity.
    let adj = holm(&[0.2, 0.5, 0.2]);
    for (x, want) in adj.iter().zip([0.6, 0.6, 0.6]) {
        assert!(close(*x, want, 1e-12), "{adj:?}");
    }
    // m = 3 with the NaN: 0.01 * 3 = 0.03, 0.6 * 2 = 1.2 capped at 1, NaN stays NaN.
    let adj = holm(&[0.6, f64::NAN, 0.01]);
    assert!(
        close(adj[2], 0.03, 1e-12) && adj[0] == 1.0 && adj[1].is_nan(),
        "{adj:?}"
    );
}

#[test]
fn a_clear_difference_is_significant_for_one_seed_and_for_three() {
    // b right on 60 more of 200 questions: 20 a-only against 80 b-only. McNemar:
    // scipy.stats.binomtest(20, 100, 0.5).pvalue = 1.1159089057251951e-09.
    let (a, b) = table(20, 80, 50, 50);
    let one = paired_comparison(
        std::slice::from_ref(&a),
        std::slice::from_ref(&b),
        0.95,
        2000,
        0,
    )
    .unwrap();
    assert_eq!(one.test, PairedTest::McNemarExact);
    assert!(close(one.diff.estimate, 0.3, 1e-12));
    assert!(
        (one.p_value / 1.1159089057251951e-09 - 1.0).abs() < 1e-9,
        "{one:?}"
    );
    assert!(one.diff.lo > 0.0, "{one:?}");
    let three = paired_comparison(
        &[a.clone(), a.clone(), a],
        &[b.clone(), b.clone(), b],
        0.95,
        2000,
        0,
    )
    .unwrap();
    assert_eq!(three.test, PairedTest::PairedBootstrap);
    assert_eq!((three.seeds, three.questions), (3, 200));
    assert!(close(three.diff.estimate, 0.3, 1e-12));
    // No resample moves the difference by 0.3 (~ 9 SE): p is the floor 1/2001.
    assert!(three.p_value < 0.001, "{three:?}");
    assert!(close(three.p_value, 1.0 / 2001.0, 1e-15));
}

#[test]
fn a_small_difference_is_not_significant() {
    // 10 vs 12 discordant of 100: 2 * P[Bin(22, 1/2) <= 10] = 0.8318119 (scipy.stats.binomtest).
    let (a, b) = table(10, 12, 40, 38);
    let p = paired_bootstrap(
        std::slice::from_ref(&a),
        std::slice::from_ref(&b),
        0.95,
        2000,
        5,
    )
    .unwrap();
    assert!(p.p_value > 0.5, "{p:?}");
    assert!(p.diff.contains(0.0), "{p:?}");
    let m = mcnemar_exact(&a, &b).unwrap();
    assert!(close(m.p_value, 0.8318, 1e-4), "{m:?}");
}

#[test]
fn paired_statistics_refuse_mismatched_sides() {
    let one = vec![vec![true, false]];
    let two = vec![vec![true, false], vec![false, false]];
    assert_eq!(
        paired_bootstrap(&one, &two, 0.95, 10, 0),
        Err(StatsError::SeedsDiffer { a: 1, b: 2 })
    );
    assert_eq!(
        paired_comparison(&one, &[vec![true]], 0.95, 10, 0),
        Err(StatsError::QuestionsDiffer { a: 2, b: 1 })
    );
    assert_eq!(
        paired_bootstrap(&[], &one, 0.95, 10, 0),
        Err(StatsError::NoRuns { side: "a" })
    );
    assert_eq!(
        paired_bootstrap(&one, &[vec![true], vec![]], 0.95, 10, 0),
        Err(StatsError::RaggedRuns {
            side: "b",
            run: 1,
            len: 0,
            expected: 1
        })
    );
    assert_eq!(
        paired_bootstrap(&one, &one, 0.95, 0, 0),
        Err(StatsError::NoResamples)
    );
    assert_eq!(
        paired_comparison(&one, &one, f64::NAN, 10, 0)
            .unwrap_err()
            .to_string(),
        "confidence level NaN is not in (0, 1)"
    );
}

/// 1 to 3 seeds of 1 to 60 questions, two sides of the same shape.
fn two_sides() -> impl Strategy<Value = (Vec<Vec<bool>>, Vec<Vec<bool>>)> {
    (1usize..=3, 1usize..=60).prop_flat_map(|(s, q)| {
        let side = proptest::collection::vec(proptest::collection::vec(any::<bool>(), q), s);
        (side.clone(), side)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn identical_verdicts_give_no_difference_and_p_one(
        (a, _) in two_sides(), seed in any::<u64>()
    ) {
        let boot = paired_bootstrap(&a, &a, 0.95, 200, seed).unwrap();
        prop_assert_eq!(boot.diff.estimate, 0.0);
        prop_assert_eq!((boot.diff.lo, boot.diff.hi), (0.0, 0.0));
        prop_assert_eq!(boot.p_value, 1.0);
        let mc = mcnemar_exact(&a[0], &a[0]).unwrap();
        prop_assert_eq!((mc.a_only, mc.b_only, mc.p_value), (0, 0, 1.0));
        prop_assert_eq!(paired_comparison(&a, &a, 0.95, 200, seed).unwrap().p_value, 1.0);
    }

    #[test]
    fn swapping_a_and_b_negates_the_difference_and_keeps_p(
        (a, b) in two_sides(), seed in any::<u64>()
    ) {
        let ab = paired_comparison(&a, &b, 0.95, 200, seed).unwrap();
        let ba = paired_comparison(&b, &a, 0.95, 200, seed).unwrap();
        prop_assert_eq!(ab.diff.estimate, -ba.diff.estimate);
        prop_assert_eq!(ab.p_value, ba.p_value);
        prop_assert!((ab.diff.lo + ba.diff.hi).abs() < 1e-9);
        prop_assert!((ab.diff.hi + ba.diff.lo).abs() < 1e-9);
        let boot_ab = paired_bootstrap(&a, &b, 0.95, 200, seed).unwrap();
        let boot_ba = paired_bootstrap(&b, &a, 0.95, 200, seed).unwrap();
        prop_assert_eq!(boot_ab.p_value, boot_ba.p_value);
        let mc_ab = mcnemar_exact(&a[0], &b[0]).unwrap();
        let mc_ba = mcnemar_exact(&b[0], &a[0]).unwrap();
        prop_assert_eq!((mc_ab.a_only, mc_ab.b_only), (mc_ba.b_only, mc_ba.a_only));
        prop_assert_eq!(mc_ab.p_value, mc_ba.p_value);
    }

    #[test]
    fn p_values_lie_in_0_1_and_the_interval_holds_the_resampled_middle(
        (a, b) in two_sides(), seed in any::<u64>()
    ) {
        let p = paired_bootstrap(&a, &b, 0.9, 100, seed).unwrap();
        prop_assert!(p.p_value > 0.0 && p.p_value <= 1.0);
        prop_assert!(p.diff.lo <= p.diff.hi);
        prop_assert!((-1.0..=1.0).contains(&p.diff.lo) && (-1.0..=1.0).contains(&p.diff.hi));
        let m = mcnemar_exact(&a[0], &b[0]).unwrap();
        prop_assert!(m.p_value > 0.0 && m.p_value <= 1.0);
    }
}
