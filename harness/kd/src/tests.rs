use tch::{Device, Kind, Tensor};

use super::*;
use crate::sdk::{bool_param, choice_param, float_param, Params};

const ALL: [Divergence; 6] = [
    Divergence::ForwardKl,
    Divergence::ReverseKl,
    Divergence::Jsd(0.3),
    Divergence::TotalVariation,
    Divergence::SkewKl(0.1),
    Divergence::SkewReverseKl(0.25),
];

fn dist(p: &[f64]) -> Tensor {
    // logits = log p, as a [1, 1, V] fp64 tensor
    Tensor::from_slice(&p.iter().map(|x| x.ln()).collect::<Vec<_>>()).view([1, 1, p.len() as i64])
}

fn kl(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| a * (a / b).ln())
        .sum()
}

fn mix(a: &[f64], wa: f64, b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| wa * x + (1.0 - wa) * y)
        .collect()
}

fn val(t: &Tensor) -> f64 {
    t.double_value(&[])
}

fn one(div: Divergence, s: &[f64], t: &[f64]) -> f64 {
    let d = token_divergence(div, &dist(s), &dist(t), 1.0).expect("divergence");
    d.double_value(&[0, 0])
}

const S: [f64; 3] = [0.2, 0.5, 0.3];
const T: [f64; 3] = [0.6, 0.1, 0.3];

#[test]
fn closed_forms() {
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    close(one(Divergence::ForwardKl, &S, &T), kl(&T, &S));
    close(one(Divergence::ReverseKl, &S, &T), kl(&S, &T));
    let tv = 0.5 * S.iter().zip(&T).map(|(a, b)| (a - b).abs()).sum::<f64>();
    close(one(Divergence::TotalVariation, &S, &T), tv);
    let b = 0.3;
    let m = mix(&T, b, &S);
    close(
        one(Divergence::Jsd(b), &S, &T),
        b * kl(&T, &m) + (1.0 - b) * kl(&S, &m),
    );
    let a = 0.1;
    close(one(Divergence::SkewKl(a), &S, &T), kl(&T, &mix(&T, a, &S)));
    close(
        one(Divergence::SkewReverseKl(a), &S, &T),
        kl(&S, &mix(&S, a, &T)),
    );
    // a hand-made two-class case: KL((.5,.5) || (.9,.1)) = .5 ln(.5/.9) + .5 ln(5)
    close(
        one(Divergence::ForwardKl, &[0.9, 0.1], &[0.5, 0.5]),
        0.5 * (0.5f64 / 0.9).ln() + 0.5 * 5f64.ln(),
    );
    close(one(Divergence::ForwardKl, &S, &S), 0.0);
}

#[test]
fn jsd_endpoints_are_exactly_fkl_and_rkl() {
    let s = Tensor::randn([2, 4, 7], (Kind::Float, Device::Cpu));
    let t = Tensor::randn([2, 4, 7], (Kind::Float, Device::Cpu));
    let d = |div| token_divergence(div, &s, &t, 1.5).expect("div");
    assert!(d(Divergence::Jsd(0.0)).equal(&d(Divergence::ForwardKl)));
    assert!(d(Divergence::Jsd(1.0)).equal(&d(Divergence::ReverseKl)));
    assert!(d(Divergence::SkewKl(0.0)).equal(&d(Divergence::ForwardKl)));
    assert!(d(Divergence::SkewReverseKl(0.0)).equal(&d(Divergence::ReverseKl)));
    // The interior tends to beta * FKL near 0 and (1 - beta) * RKL near 1.
    let eps = 1e-4;
    let s64 = s.to_kind(Kind::Double);
    let t64 = t.to_kind(Kind::Double);
    let d64 = |div| token_divergence(div, &s64, &t64, 1.0).expect("div");
    let near0 = d64(Divergence::Jsd(eps)) / eps;
    let near1 = d64(Divergence::Jsd(1.0 - eps)) / eps;
    assert!(near0.allclose(&d64(Divergence::ForwardKl), 1e-2, 1e-6, false));
    assert!(near1.allclose(&d64(Divergence::ReverseKl), 1e-2, 1e-6, false));
}

#[test]
fn neg_inf_logits_give_no_nan_in_value_or_gradient() {
    for div in ALL {
        let s = Tensor::from_slice(&[0.5f64, f64::NEG_INFINITY, 0.1, 0.3])
            .view([1, 1, 4])
            .set_requires_grad(true);
        let t = Tensor::from_slice(&[0.2f64, 0.4, f64::NEG_INFINITY, 0.3]).view([1, 1, 4]);
        let mask = Tensor::ones([1, 1], (Kind::Float, Device::Cpu));
        let loss = divergence_loss(div, &s, &t, &mask, 1.0, 1.0).expect("loss");
        assert!(val(&loss).is_finite(), "{div:?}: {}", val(&loss));
        loss.backward();
        let g = s.grad();
        assert!(
            bool::try_from(g.isfinite().all()).expect("bool"),
            "{div:?}: grad {g}"
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let opts = (Kind::Double, Device::Cpu);
    tch::manual_seed(3);
    let s0 = Tensor::randn([2, 3, 5], opts);
    let t = Tensor::randn([2, 3, 5], opts);
    let mask = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 1.0, 0.0, 1.0]).view([2, 3]);
    for div in ALL {
        for temp in [1.0, 2.0] {
            let f = |s: &Tensor| divergence_loss(div, s, &t, &mask, 4.0, temp).expect("loss");
            let s = s0.copy().set_requires_grad(true);
            f(&s).backward();
            let g = s.grad().flatten(0, -1);
            let flat = s0.flatten(0, -1);
            let h = 1e-6;
            for i in 0..flat.numel() as i64 {
                let plus = flat.copy();
                let _ = plus.get(i).g_add_scalar_(h);
                let minus = flat.copy();
                let _ = minus.get(i).g_add_scalar_(-h);
                let num =
                    (val(&f(&plus.view([2, 3, 5]))) - val(&f(&minus.view([2, 3, 5])))) / (2.0 * h);
                let ana = g.double_value(&[i]);
                assert!(
                    (num - ana).abs() < 1e-6,
                    "{div:?} T={temp} entry {i}: numeric {num} analytic {ana}"
                );
            }
        }
    }
}

#[test]
fn masked_positions_contribute_nothing() {
    let opts = (Kind::Float, Device::Cpu);
    let s = Tensor::randn([2, 4, 6], opts);
    let t = Tensor::randn([2, 4, 6], opts);
    let mask = Tensor::from_slice(&[0.0f32, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).view([2, 4]);
    // garbage (even NaN) at masked positions changes nothing
    let keep = mask.unsqueeze(-1).ne(0.0);
    let s2 = s.where_scalarother(&keep, f64::NAN);
    let t2 = t.where_scalarother(&keep, 123.0);
    for div in ALL {
        let a = divergence_loss(div, &s, &t, &mask, 3.0, 1.0).expect("a");
        let b = divergence_loss(div, &s2, &t2, &mask, 3.0, 1.0).expect("b");
        assert!(
            (val(&a) - val(&b)).abs() < 1e-6,
            "{div:?}: {} vs {}",
            val(&a),
            val(&b)
        );
    }
    let labels =
        Tensor::from_slice(&[IGNORE, 2, 3, IGNORE, IGNORE, 1, IGNORE, IGNORE]).view([2, 4]);
    let a = mle_loss(&s, &labels, 3.0, IGNORE).expect("mle");
    let b = mle_loss(&s2.nan_to_num(0.0, None, None), &labels, 3.0, IGNORE).expect("mle");
    assert!((val(&a) - val(&b)).abs() < 1e-6);
}

#[test]
fn normalization_is_invariant_to_batch_split() {
    let opts = (Kind::Double, Device::Cpu);
    let s = Tensor::randn([4, 5, 6], opts);
    let t = Tensor::randn([4, 5, 6], opts);
    let mask = Tensor::randint(2, [4, 5], (Kind::Float, Device::Cpu));
    let _ = mask.get(0).get(0).fill_(1.0);
    let norm = f64::try_from(mask.sum(Kind::Double)).expect("norm");
    for div in ALL {
        let whole = val(&divergence_loss(div, &s, &t, &mask, norm, 1.0).expect("whole"));
        let mut parts = 0.0;
        for (lo, len) in [(0, 1), (1, 3)] {
            parts += val(&divergence_loss(
                div,
                &s.narrow(0, lo, len),
                &t.narrow(0, lo, len),
                &mask.narrow(0, lo, len),
                norm,
                1.0,
            )
            .expect("part"));
        }
        assert!((whole - parts).abs() < 1e-12, "{div:?}: {whole} vs {parts}");
    }
}

#[test]
fn bf16_logits_are_computed_in_fp32() {
    let s = Tensor::randn([1, 2, 8], (Kind::BFloat16, Device::Cpu));
    let t = Tensor::randn([1, 2, 8], (Kind::BFloat16, Device::Cpu));
    let d = token_divergence(Divergence::ReverseKl, &s, &t, 1.0).expect("div");
    assert_eq!(d.kind(), Kind::Float);
    let want = token_divergence(
        Divergence::ReverseKl,
        &s.to_kind(Kind::Float),
        &t.to_kind(Kind::Float),
        1.0,
    )
    .expect("div");
    assert!(d.allclose(&want, 1e-6, 1e-6, false));
}

#[test]
fn mle_matches_cross_entropy() {
    let s = Tensor::randn([2, 3, 5], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[IGNORE, 2, 4, 0, IGNORE, 1]).view([2, 3]);
    let ours = val(&mle_loss(&s, &labels, 4.0, IGNORE).expect("mle"));
    let theirs = val(&s.view([6, 5]).cross_entropy_loss::<Tensor>(
        &labels.view([6]),
        None,
        tch::Reduction::Sum,
        IGNORE,
        0.0,
    )) / 4.0;
    assert!((ours - theirs).abs() < 1e-5);
}

#[test]
fn bad_inputs_are_errors() {
    let s = Tensor::randn([1, 2, 3], (Kind::Float, Device::Cpu));
    let t = Tensor::randn([1, 2, 4], (Kind::Float, Device::Cpu));
    assert!(token_divergence(Divergence::ForwardKl, &s, &t, 1.0).is_err());
    assert!(token_divergence(Divergence::ForwardKl, &s, &s, 0.0).is_err());
    assert!(token_divergence(Divergence::Jsd(1.5), &s, &s, 1.0).is_err());
    assert!(masked_loss(
        &Tensor::zeros([1, 2], (Kind::Float, Device::Cpu)),
        &Tensor::ones([1, 3], (Kind::Float, Device::Cpu)),
        1.0
    )
    .is_err());
    assert!(Divergence::parse("nope", 0.5).is_err());
    assert_eq!(
        Divergence::parse("jsd", 0.5).expect("jsd"),
        Divergence::Jsd(0.5)
    );
}

#[test]
fn params_validate_names_ranges_and_choices() {
    let specs = vec![
        float_param("alpha", 0.2, 0.0, 1.0, "mask fraction"),
        choice_param("strategy", "random", &["random", "hard"], "which tokens"),
        bool_param("vanilla", false, "no imperfect data"),
    ];
    let kv = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let p = Params::parse("kid", &specs, &kv("alpha", "0.3")).expect("ok");
    assert_eq!(p.f64("alpha").expect("alpha"), 0.3);
    assert_eq!(p.text("strategy").expect("strategy"), "random");
    assert!(Params::parse("kid", &specs, &kv("vanilla", ""))
        .expect("ok")
        .bool("vanilla")
        .expect("b"));
    let e = Params::parse("kid", &specs, &kv("beta", "1"))
        .expect_err("unknown")
        .to_string();
    assert!(e.contains("alpha, strategy, vanilla"), "{e}");
    let e = Params::parse("kid", &specs, &kv("alpha", "1.5"))
        .expect_err("range")
        .to_string();
    assert!(e.contains("[0, 1]"), "{e}");
    let e = Params::parse("kid", &specs, &kv("strategy", "x"))
        .expect_err("choice")
        .to_string();
    assert!(e.contains("random|hard"), "{e}");
}

mod ctx {
    use std::ffi::c_void;

    use abi_stable::std_types::{RErr, RNone, RResult, RSome, RString};
    use kidbench_plugin_api::{
        BatchOf, BatchOwned, HostCtx, Model, SampleSpec, SpecialTokens, StepInfo, TensorOwned,
        TensorRef,
    };
    use tch::Tensor;

    use crate::sdk::Ctx;

    extern "C" fn no_forward(
        _: *mut c_void,
        _: Model,
        _: TensorRef,
        _: TensorRef,
        _: abi_stable::std_types::ROption<TensorRef>,
        _: bool,
    ) -> RResult<TensorOwned, RString> {
        RErr("none".into())
    }

    extern "C" fn no_sample(
        _: *mut c_void,
        _: Model,
        _: SampleSpec,
    ) -> RResult<BatchOwned, RString> {
        RErr("none".into())
    }

    #[test]
    fn logits_that_were_not_requested_are_an_error_naming_the_method() {
        let ids = Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]);
        let logits = Tensor::zeros([1, 3, 4], (tch::Kind::Float, tch::Device::Cpu));
        let r = TensorRef::new(&ids);
        let mut raw = HostCtx {
            batch: BatchOf {
                input_ids: r,
                attention_mask: r,
                labels: r,
                loss_mask: r,
                norm_tokens: 2.0,
            },
            student_logits: RNone,
            teacher_logits: RNone,
            step: StepInfo {
                step: 0,
                total_steps: 1,
                micro_batch: 0,
                seed: 0,
            },
            tokens: SpecialTokens {
                pad: 0,
                eos: 2,
                mask: 3,
            },
            host: std::ptr::null_mut(),
            forward: no_forward,
            sample: no_sample,
        };
        {
            // SAFETY: every handle lives until the end of this block.
            let ctx = unsafe { Ctx::new(&mut raw, "mymethod") };
            assert!(!ctx.has_student_logits());
            let e = format!("{:#}", ctx.student_logits().expect_err("not requested"));
            assert!(
                e.contains("'mymethod'") && e.contains("DataRequest::student_logits"),
                "{e}"
            );
            let e = format!("{:#}", ctx.teacher_logits().expect_err("not requested"));
            assert!(
                e.contains("'mymethod'") && e.contains("DataRequest::teacher_logits"),
                "{e}"
            );
        }
        raw.student_logits = RSome(TensorRef::new(&logits));
        // SAFETY: as above.
        let ctx = unsafe { Ctx::new(&mut raw, "mymethod") };
        assert_eq!(ctx.student_logits().expect("requested").size(), [1, 3, 4]);
    }
}

/// JSD and the skew KLs mix the two distributions by logsumexp; an entry that is `-inf` for
/// both (a token both models rule out) once gave a NaN gradient (`exp(-inf - -inf)` in the
/// backward). The value there is the value without that entry, and every gradient is finite.
#[test]
fn an_entry_both_sides_rule_out_gives_a_finite_gradient() {
    for div in [
        Divergence::Jsd(0.3),
        Divergence::SkewKl(0.1),
        Divergence::SkewReverseKl(0.25),
    ] {
        let neg = f64::NEG_INFINITY;
        let s = Tensor::from_slice(&[0.2f64.ln(), 0.8f64.ln(), neg])
            .view([1, 1, 3])
            .set_requires_grad(true);
        let t = Tensor::from_slice(&[0.6f64.ln(), 0.4f64.ln(), neg]).view([1, 1, 3]);
        let d = token_divergence(div, &s, &t, 1.0).unwrap();
        let want = one(div, &[0.2, 0.8], &[0.6, 0.4]);
        assert!((d.double_value(&[0, 0]) - want).abs() < 1e-12, "{div:?}");
        d.sum(Kind::Double).backward();
        let g: Vec<f64> = Vec::try_from(s.grad().flatten(0, -1)).unwrap();
        assert!(g.iter().all(|x| x.is_finite()), "{div:?}: gradient {g:?}");
    }
}
