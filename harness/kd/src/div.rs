//! Token-level divergences between a student and a teacher distribution over the vocabulary, and
//! their masked, globally normalized reduction.
//!
//! Conventions (every function here):
//! - logits are `[B, T, V]`; they are upcast to fp32 when they are half/bf16 (fp64 stays fp64,
//!   which the finite-difference tests use);
//! - `temperature` divides both sides' logits before the softmax (no `T²` rescaling);
//! - vocabulary entries where either side's logit is `-inf` are dropped from the sum *before*
//!   any multiplication, so a `0 · -inf` never makes a NaN (forward or backward);
//! - [`masked_loss`] sums per-token values where the mask is set (target tokens: the prompt and
//!   padding are excluded, EOS is kept) and divides by `norm`, the target-token count of the
//!   **whole global batch**, so gradient accumulation over micro-batches gives the same gradient
//!   however the batch is split.

use tch::{Kind, Tensor};

use crate::KdError;

/// Which divergence to take; `p_T` is the teacher, `p_S` the student.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Divergence {
    /// `KL(p_T || p_S) = Σ p_T (log p_T − log p_S)` (the true KL, not soft cross-entropy).
    ForwardKl,
    /// `KL(p_S || p_T)`.
    ReverseKl,
    /// Generalized JSD(β) of GKD: `β KL(p_T || M) + (1−β) KL(p_S || M)` with
    /// `M = β p_T + (1−β) p_S`, mixed in probability space by logsumexp.
    /// The ends are special-cased: **β = 0 is exactly forward KL(T||S), β = 1 exactly reverse
    /// KL(S||T)** (the interior formula tends to `β·FKL` and `(1−β)·RKL` there).
    Jsd(f64),
    /// Total variation `½ Σ |p_T − p_S|`.
    TotalVariation,
    /// Skew KL(α): `KL(p_T || α p_T + (1−α) p_S)` (α = 0 is forward KL).
    SkewKl(f64),
    /// Skew reverse KL(α): `KL(p_S || α p_S + (1−α) p_T)` (α = 0 is reverse KL).
    SkewReverseKl(f64),
}

impl Divergence {
    /// Parses `fkl`, `rkl`, `jsd` (with `beta`), `tv`, `skl`/`srkl` (with `beta` as the skew).
    pub fn parse(name: &str, beta: f64) -> Result<Self, KdError> {
        let d = match name.trim().to_ascii_lowercase().as_str() {
            "fkl" | "kl" | "forward_kl" => Divergence::ForwardKl,
            "rkl" | "reverse_kl" => Divergence::ReverseKl,
            "jsd" => Divergence::Jsd(beta),
            "tv" | "tvd" => Divergence::TotalVariation,
            "skl" | "skew_kl" => Divergence::SkewKl(beta),
            "srkl" | "skew_rkl" => Divergence::SkewReverseKl(beta),
            other => {
                return Err(KdError::Invalid(format!(
                    "unknown divergence '{other}'; valid: fkl, rkl, jsd, tv, skl, srkl"
                )))
            }
        };
        d.validate()?;
        Ok(d)
    }

    fn validate(&self) -> Result<(), KdError> {
        match *self {
            Divergence::Jsd(b) | Divergence::SkewKl(b) | Divergence::SkewReverseKl(b)
                if !(0.0..=1.0).contains(&b) =>
            {
                Err(KdError::Invalid(format!(
                    "{self:?}: the weight must be in [0, 1], got {b}"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// `logits` upcast to at least fp32.
pub fn upcast(logits: &Tensor) -> Tensor {
    match logits.kind() {
        Kind::Double => logits.shallow_clone(),
        Kind::Float => logits.shallow_clone(),
        _ => logits.to_kind(Kind::Float),
    }
}

/// Log-probabilities at `temperature`, in fp32 (or fp64).
pub fn log_probs(logits: &Tensor, temperature: f64) -> Tensor {
    let l = upcast(logits);
    let l = if temperature == 1.0 {
        l
    } else {
        l / temperature
    };
    l.log_softmax(-1, None::<Kind>)
}

/// `Σ_v p (log p − log q)` over the last dimension, from log-probabilities, dropping entries where
/// either side is `-inf` (or otherwise non-finite) before multiplying.
fn kl_from_log(log_p: &Tensor, log_q: &Tensor) -> Tensor {
    let finite = log_p.isfinite().logical_and(&log_q.isfinite());
    let lp = log_p.where_scalarother(&finite, 0.0);
    let lq = log_q.where_scalarother(&finite, 0.0);
    let term = lp.exp() * (&lp - &lq);
    term.where_scalarother(&finite, 0.0)
        .sum_dim_intlist(-1, false, None::<Kind>)
}

/// `log(w_a p_a + w_b p_b)` by logsumexp (weights in (0, 1)). Where both sides are `-inf` the
/// mixture is `-inf` with no gradient: logsumexp's backward there would be `exp(-inf - -inf)`,
/// NaN, and one NaN poisons every gradient of the step.
fn log_mix(log_a: &Tensor, w_a: f64, log_b: &Tensor, w_b: f64) -> Tensor {
    let live = log_a
        .isneginf()
        .logical_and(&log_b.isneginf())
        .logical_not();
    let a = log_a.where_scalarother(&live, 0.0);
    let b = log_b.where_scalarother(&live, 0.0);
    Tensor::stack(&[a + w_a.ln(), b + w_b.ln()], 0)
        .logsumexp(0, false)
        .where_scalarother(&live, f64::NEG_INFINITY)
}

fn check_pair(student: &Tensor, teacher: &Tensor) -> Result<(), KdError> {
    let (s, t) = (student.size(), teacher.size());
    if s.len() != 3 {
        return Err(KdError::Shape(format!(
            "student logits must be [batch, time, vocab], got {s:?}"
        )));
    }
    if s != t {
        return Err(KdError::Shape(format!(
            "student logits {s:?} and teacher logits {t:?} differ in shape"
        )));
    }
    Ok(())
}

/// Per-token divergence `[B, T]` (no masking, no normalization).
pub fn token_divergence(
    div: Divergence,
    student: &Tensor,
    teacher: &Tensor,
    temperature: f64,
) -> Result<Tensor, KdError> {
    check_pair(student, teacher)?;
    div.validate()?;
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(KdError::Invalid(format!(
            "temperature must be > 0, got {temperature}"
        )));
    }
    let ls = log_probs(student, temperature);
    let lt = log_probs(teacher, temperature);
    Ok(match div {
        Divergence::ForwardKl => kl_from_log(&lt, &ls),
        Divergence::ReverseKl => kl_from_log(&ls, &lt),
        Divergence::Jsd(0.0) => kl_from_log(&lt, &ls),
        Divergence::Jsd(1.0) => kl_from_log(&ls, &lt),
        Divergence::Jsd(b) => {
            let m = log_mix(&lt, b, &ls, 1.0 - b);
            kl_from_log(&lt, &m) * b + kl_from_log(&ls, &m) * (1.0 - b)
        }
        Divergence::TotalVariation => {
            (lt.exp() - ls.exp())
                .abs()
                .sum_dim_intlist(-1, false, None::<Kind>)
                * 0.5
        }
        Divergence::SkewKl(0.0) => kl_from_log(&lt, &ls),
        Divergence::SkewKl(1.0) => lt.sum_dim_intlist(-1, false, None::<Kind>) * 0.0,
        Divergence::SkewKl(a) => kl_from_log(&lt, &log_mix(&lt, a, &ls, 1.0 - a)),
        Divergence::SkewReverseKl(0.0) => kl_from_log(&ls, &lt),
        Divergence::SkewReverseKl(1.0) => ls.sum_dim_intlist(-1, false, None::<Kind>) * 0.0,
        Divergence::SkewReverseKl(a) => kl_from_log(&ls, &log_mix(&ls, a, &lt, 1.0 - a)),
    })
}

/// Sum of `per_token` `[B, T]` where `mask` `[B, T]` is nonzero, divided by `norm` (the target
/// tokens of the whole global batch). Masked-out positions contribute exactly nothing, even when
/// their values are not finite.
pub fn masked_loss(per_token: &Tensor, mask: &Tensor, norm: f64) -> Result<Tensor, KdError> {
    if per_token.size() != mask.size() {
        return Err(KdError::Shape(format!(
            "per-token values {:?} and mask {:?} differ in shape",
            per_token.size(),
            mask.size()
        )));
    }
    check_norm(norm)?;
    let keep = mask.to_device(per_token.device()).ne(0.0);
    Ok(per_token
        .where_scalarother(&keep, 0.0)
        .sum(per_token.kind())
        / norm)
}

/// The flat row indices (into `[B·T]`) where `mask` `[B, T]` is nonzero, on `device`.
fn kept_rows(mask: &Tensor, device: tch::Device) -> Tensor {
    mask.to_device(device)
        .ne(0.0)
        .reshape([-1])
        .nonzero()
        .squeeze_dim(1)
}

/// Rows `idx` of `[B, T, V]` logits, as `[1, N, V]`.
fn select_rows(logits: &Tensor, idx: &Tensor) -> Tensor {
    let v = logits.size()[2];
    logits.reshape([-1, v]).index_select(0, idx).unsqueeze(0)
}

fn check_norm(norm: f64) -> Result<(), KdError> {
    if norm > 0.0 && norm.is_finite() {
        Ok(())
    } else {
        Err(KdError::Invalid(format!(
            "the normalizer (global target tokens) must be > 0, got {norm}"
        )))
    }
}

/// A divergence over the target tokens, normalized by `norm`: the same value as
/// `masked_loss(token_divergence(..), mask, norm)`, computed on the masked rows only (the
/// prompt and padding rows, most of a batch, never reach the softmaxes).
pub fn divergence_loss(
    div: Divergence,
    student: &Tensor,
    teacher: &Tensor,
    mask: &Tensor,
    norm: f64,
    temperature: f64,
) -> Result<Tensor, KdError> {
    check_pair(student, teacher)?;
    let s = student.size();
    if mask.size() != s[..2] {
        return Err(KdError::Shape(format!(
            "mask {:?} does not match logits {s:?}",
            mask.size()
        )));
    }
    check_norm(norm)?;
    let idx = kept_rows(mask, student.device());
    let per_token = token_divergence(
        div,
        &select_rows(student, &idx),
        &select_rows(&teacher.to_device(student.device()), &idx),
        temperature,
    )?;
    Ok(per_token.sum(per_token.kind()) / norm)
}

/// Summed token cross-entropy (MLE) over positions whose label is not `ignore`, divided by `norm`.
pub fn mle_loss(
    logits: &Tensor,
    labels: &Tensor,
    norm: f64,
    ignore: i64,
) -> Result<Tensor, KdError> {
    let size = logits.size();
    let (b, t, v) = match size.as_slice() {
        [b, t, v] => (*b, *t, *v),
        _ => {
            return Err(KdError::Shape(format!(
                "logits must be [batch, time, vocab], got {size:?}"
            )))
        }
    };
    if labels.size() != [b, t] {
        return Err(KdError::Shape(format!(
            "labels {:?} do not match logits {size:?}",
            labels.size()
        )));
    }
    check_norm(norm)?;
    let labels = labels.view([b * t]).to_device(logits.device());
    let idx = labels.ne(ignore).nonzero().squeeze_dim(1);
    let lp =
        upcast(&logits.reshape([b * t, v]).index_select(0, &idx)).log_softmax(-1, None::<Kind>);
    let picked = labels.index_select(0, &idx);
    let nll = -lp.gather(1, &picked.unsqueeze(1), false).squeeze_dim(1);
    Ok(nll.sum(nll.kind()) / norm)
}

/// Entropy (nats) of the distribution at each position, `[B, T]`.
pub fn token_entropy(logits: &Tensor, temperature: f64) -> Tensor {
    let lp = log_probs(logits, temperature);
    let finite = lp.isfinite();
    let l0 = lp.where_scalarother(&finite, 0.0);
    -(l0.exp() * &l0)
        .where_scalarother(&finite, 0.0)
        .sum_dim_intlist(-1, false, None::<Kind>)
}
