//! `kidbench_plugin_host::check` on the real cdylibs, loaded by path as `kidbench plugin check`
//! does: the seven shipped plugins pass every property, and each broken fixture in
//! plugins/broken/ fails exactly the property it breaks, with a message naming the fault. The
//! values the check measures are compared with forward/reverse KL and cross-entropy computed
//! here by hand (f64 loops over the check's toy tables and batch), not with `kidbench_kd`.

mod util;

use kidbench_plugin_host::check::{self, toy, Outcome, Property, Report};
use util::{built, so, FIXTURES, PLUGINS};

fn softmax(x: &[f64], temperature: f64) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| ((v - m) / temperature).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

/// KL(p || q) = Σ p (ln p − ln q).
fn kl(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| a * (a.ln() - b.ln()))
        .sum()
}

/// The check's toy models as f64 rows: a position's logits are its token's row.
struct Hand {
    student: Vec<Vec<f64>>,
    teacher: Vec<Vec<f64>>,
}

impl Hand {
    fn new() -> Hand {
        let (s, t) = toy::tables();
        let rows = |x: tch::Tensor| -> Vec<Vec<f64>> {
            Vec::<f64>::try_from(x.to_kind(tch::Kind::Double).flatten(0, -1))
                .expect("table")
                .chunks(toy::VOCAB as usize)
                .map(|c| c.to_vec())
                .collect()
        };
        Hand {
            student: rows(s),
            teacher: rows(t),
        }
    }

    /// Σ over the target positions of `rows` of `f(p_S, p_T, label)` at `temperature`.
    fn sum(
        &self,
        rows: &[usize],
        temperature: f64,
        f: impl Fn(&[f64], &[f64], usize) -> f64,
    ) -> f64 {
        let mut total = 0.0;
        for &r in rows {
            let (toks, prompt_len) = toy::EXAMPLES[r];
            for p in (prompt_len - 1)..(toks.len() - 1) {
                let (x, y) = (toks[p] as usize, toks[p + 1] as usize);
                let ps = softmax(&self.student[x], temperature);
                let pt = softmax(&self.teacher[x], temperature);
                total += f(&ps, &pt, y);
            }
        }
        total
    }

    fn fkl(&self, rows: &[usize], temperature: f64) -> f64 {
        self.sum(rows, temperature, |s, t, _| kl(t, s))
    }

    fn rkl(&self, rows: &[usize], temperature: f64) -> f64 {
        self.sum(rows, temperature, |s, t, _| kl(s, t))
    }

    fn ce(&self, rows: &[usize]) -> f64 {
        self.sum(rows, 1.0, |s, _, y| -s[y].ln())
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

fn run(stem: &str, params: &[(&str, &str)]) -> Report {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = check::check_file(&so(built(), stem), &params);
    eprintln!("{r}\n");
    r
}

const ALL_ROWS: [usize; 4] = toy::ALL_ROWS;

#[test]
fn the_batch_has_the_documented_target_counts() {
    // 4 + 3 + 6 + 2 target tokens (EOS included); the split is 6 | 9
    assert_eq!(toy::target_count(&ALL_ROWS), 15);
    assert_eq!(toy::target_count(toy::SPLIT[0]), 6);
    assert_eq!(toy::target_count(toy::SPLIT[1]), 9);
}

#[test]
fn the_seven_shipped_plugins_pass_every_property() {
    for name in PLUGINS {
        let r = run(&format!("kidbench_plugin_{name}"), &[]);
        assert!(r.passed(), "{r}");
        assert_eq!(r.plugin, name);
        assert_eq!(r.findings.len(), Property::ALL.len());
        for f in &r.findings {
            let declares = matches!(name, "fkd" | "rkd" | "gkd");
            let skipped = f.property == Property::Divergence && !declares;
            let want = if skipped {
                Outcome::Skip
            } else {
                Outcome::Pass
            };
            assert_eq!(f.outcome, want, "{name}: {f}");
        }
        // the 1/norm scaling is exact for every method
        let n = r.finding(Property::Normalization).expect("normalization");
        assert!(
            (n.get("scale.ratio").expect("ratio") - 0.5).abs() < 1e-6,
            "{n}"
        );
        // the split is compared exactly unless the loss draws on the seed (kid masks at
        // random; imitkd replaces each example by a student sample at random)
        let random = matches!(name, "kid" | "imitkd");
        assert_eq!(n.get("split.sum").is_some(), !random, "{name}: {n}");
    }
}

#[test]
fn fkd_is_forward_kl_plus_mle_by_hand() {
    let h = Hand::new();
    let r = run(
        "kidbench_plugin_fkd",
        &[("temperature", "2"), ("mle_weight", "0.5")],
    );
    assert!(r.passed(), "{r}");
    let d = r.finding(Property::Divergence).expect("divergence");
    let want = (h.fkl(&ALL_ROWS, 2.0) + 0.5 * h.ce(&ALL_ROWS)) / 15.0;
    let measured = d.get("fkl.measured").expect("measured");
    assert!(close(measured, want), "{measured} vs {want} (by hand)");
    assert!(close(d.get("fkl.expected").expect("expected"), want));
    // reverse KL differs enough on this batch for a swapped direction to show
    let rkl = (h.rkl(&ALL_ROWS, 2.0) + 0.5 * h.ce(&ALL_ROWS)) / 15.0;
    assert!((rkl - want).abs() > 1e-2, "{rkl} vs {want}");
}

/// (fixture, the properties it fails, words the line of the first must contain).
const EXPECTED: [(&str, &[Property], &str); 14] = [
    ("wrong_abi", &[Property::Load], "plugin ABI version"),
    ("wrong_torch", &[Property::Load], "0.0.1+bogus"),
    ("no_entry", &[Property::Load], "missing symbol"),
    (
        "panics",
        &[Property::Loss],
        "panicked: fixture panic in loss",
    ),
    ("nan", &[Property::Loss], "not finite"),
    ("detached", &[Property::Loss], "the loss has no gradient"),
    (
        "reads_padding",
        &[Property::Masking],
        "the loss reads padding positions",
    ),
    ("micro_mean", &[Property::Normalization], "TRL #4719"),
    // the gate's noisy rkd draws its noise from torch's global generator, and multiplies
    // log-probabilities that are -inf at masked vocabulary entries by it
    (
        "worse_rkd",
        &[Property::Determinism, Property::Stability],
        "same step and seed",
    ),
    (
        "undeclared_teacher",
        &[Property::Data],
        "did not request them",
    ),
    ("unstable_kl", &[Property::Stability], "not finite"),
    (
        "lenient_params",
        &[Property::Parameters],
        "no_such_parameter=1 is accepted",
    ),
    ("swapped_kl", &[Property::Divergence], "it equals rkl"),
    // the gate's slow rkd is correct, only slower
    ("slow_rkd", &[], ""),
];

#[test]
fn each_broken_fixture_fails_exactly_the_property_it_breaks() {
    assert_eq!(EXPECTED.len(), FIXTURES.len());
    for (fixture, want, words) in EXPECTED {
        assert!(FIXTURES.contains(&fixture), "{fixture}");
        let r = run(&format!("kidbench_broken_{fixture}"), &[]);
        assert_eq!(r.failures(), want, "{fixture}:\n{r}");
        if let Some(&p) = want.first() {
            let f = r.finding(p).expect("finding");
            let line = f.to_string();
            assert!(line.starts_with(&format!("FAIL {}", p.name())), "{line}");
            assert!(line.contains(words), "{fixture}: '{words}' not in: {line}");
            assert!(!f.expected.is_empty(), "{line}");
            // what cannot be measured after the failure is skipped, never failed
            if matches!(p, Property::Load | Property::Loss) && fixture != "detached" {
                let after = r.findings.iter().skip_while(|x| x.property != p).skip(1);
                assert!(after.clone().all(|x| x.outcome == Outcome::Skip), "{r}");
            }
        }
    }
}

#[test]
fn swapped_kl_measures_reverse_kl_where_forward_kl_is_declared_by_hand() {
    let h = Hand::new();
    let r = run("kidbench_broken_swapped_kl", &[]);
    let d = r.finding(Property::Divergence).expect("divergence");
    let fkl = (h.fkl(&ALL_ROWS, 1.0) + h.ce(&ALL_ROWS)) / 15.0;
    let rkl = (h.rkl(&ALL_ROWS, 1.0) + h.ce(&ALL_ROWS)) / 15.0;
    assert!(close(d.get("fkl.measured").expect("measured"), rkl), "{d}");
    assert!(close(d.get("fkl.expected").expect("expected"), fkl), "{d}");
}

#[test]
fn micro_mean_split_values_by_hand() {
    let h = Hand::new();
    let r = run("kidbench_broken_micro_mean", &[]);
    let n = r.finding(Property::Normalization).expect("normalization");
    let (a, b) = (toy::SPLIT[0], toy::SPLIT[1]);
    // each micro-batch divided by its own count (6, 9) instead of the global 15
    let split = h.fkl(a, 1.0) / 6.0 + h.fkl(b, 1.0) / 9.0;
    let whole = h.fkl(&ALL_ROWS, 1.0) / 15.0;
    assert!(
        close(n.get("split.sum").expect("sum"), split),
        "{n}: {split}"
    );
    assert!(
        close(n.get("split.whole").expect("whole"), whole),
        "{n}: {whole}"
    );
    assert!((split - whole).abs() > 1e-3, "{split} {whole}");
    // doubling norm_tokens does not change a loss that ignores it
    assert!(
        (n.get("scale.ratio").expect("ratio") - 1.0).abs() < 1e-9,
        "{n}"
    );
    // at the whole batch (its own count is the global one) it is the declared forward KL
    let d = r.finding(Property::Divergence).expect("divergence");
    assert_eq!(d.outcome, Outcome::Pass, "{d}");
    assert!(
        close(d.get("fkl.measured").expect("measured"), whole),
        "{d}"
    );
}
