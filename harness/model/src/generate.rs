//! Batched, KV-cached generation with left padding: greedy or sampling (temperature, top-k,
//! top-p) driven by a counter-based RNG.
//!
//! The prompt batch is prefilled once; then each step feeds one token per sequence. A
//! sequence stops at one of the EOS ids or after `max_new_tokens`; the loop ends as soon as all
//! sequences are finished (one scalar device->host read per step). Sampling randomness comes
//! from a hash of `(seed, step, row)` computed with integer tensor ops on the model's device: it
//! touches no global torch RNG state, so concurrent callers do not interfere, and a seed gives
//! the same tokens on every run (and the same uniforms on CPU and CUDA).

use tch::{Device, Kind, Tensor};

use crate::error::{ModelError, Result};
use crate::qwen2::Qwen2ForCausalLM;

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// Argmax.
    Greedy,
    /// Sample from `softmax(logits / temperature)`, restricted to the `top_k` most likely
    /// tokens then to the smallest set whose probability reaches `top_p` (HF order).
    /// A temperature of 0 means greedy.
    Sample {
        temperature: f64,
        top_k: Option<i64>,
        top_p: Option<f64>,
    },
}

/// Parameters of one [`generate`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub max_new_tokens: i64,
    pub sampling: Sampling,
    /// A sequence stops after emitting any of these (the EOS is kept in its tokens).
    pub eos_token_ids: Vec<i64>,
    /// Fed to finished sequences and used by [`left_pad`]; never returned.
    pub pad_token_id: i64,
    pub seed: u64,
    /// Also return the log-probability of each generated token under the model's raw
    /// distribution (`log_softmax(logits)`, temperature 1, before top-k/top-p filtering).
    pub return_logprobs: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 64,
            sampling: Sampling::Greedy,
            eos_token_ids: Vec::new(),
            pad_token_id: 0,
            seed: 0,
            return_logprobs: false,
        }
    }
}

/// What [`generate`] returns, one entry per input row.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOutput {
    /// New tokens of each sequence (no padding; ends with the EOS id when one was produced).
    pub tokens: Vec<Vec<i64>>,
    /// Per-token log-probs aligned with `tokens`, when requested.
    pub logprobs: Option<Vec<Vec<f32>>>,
    /// Whether each sequence stopped on an EOS (false: it hit `max_new_tokens`).
    pub stopped_at_eos: Vec<bool>,
}

/// Left-pads token lists into `input_ids` `[B, T]` int64 and `attention_mask` `[B, T]` on `device`.
pub fn left_pad(
    prompts: &[Vec<i64>],
    pad_token_id: i64,
    device: Device,
) -> Result<(Tensor, Tensor)> {
    if prompts.is_empty() {
        return Err(ModelError::BadInput("no prompts".into()));
    }
    let t = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if t == 0 {
        return Err(ModelError::BadInput("all prompts are empty".into()));
    }
    let mut ids = Vec::with_capacity(prompts.len() * t);
    let mut mask = Vec::with_capacity(prompts.len() * t);
    for p in prompts {
        let pad = t - p.len();
        ids.extend(std::iter::repeat_n(pad_token_id, pad));
        ids.extend_from_slice(p);
        mask.extend(std::iter::repeat_n(0i64, pad));
        mask.extend(std::iter::repeat_n(1i64, p.len()));
    }
    let shape = [prompts.len() as i64, t as i64];
    Ok((
        Tensor::f_from_slice(&ids)?
            .f_view(shape)?
            .f_to_device(device)?,
        Tensor::f_from_slice(&mask)?
            .f_view(shape)?
            .f_to_device(device)?,
    ))
}

/// [`left_pad`]s `prompts` (pad = `cfg.pad_token_id`) on the model's device and [`generate`]s.
pub fn generate_from_prompts(
    model: &Qwen2ForCausalLM,
    prompts: &[Vec<i64>],
    cfg: &GenerationConfig,
) -> Result<GenerationOutput> {
    let (ids, mask) = left_pad(prompts, cfg.pad_token_id, model.device())?;
    generate(model, &ids, &mask, cfg)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `(x * c) mod 2^32` for int64 tensors holding values in `[0, 2^32)`, without int64 overflow.
fn mul32(x: &Tensor, c: u32) -> Result<Tensor> {
    let lo = (c & 0xFFFF) as i64;
    let hi = (c >> 16) as i64;
    let a = x.f_mul_scalar(lo)?; // < 2^48
    let b = x
        .f_mul_scalar(hi)?
        .f_bitwise_and(0xFFFFi64)?
        .f_mul_scalar(65536i64)?;
    Ok(a.f_add(&b)?.f_bitwise_and(0xFFFF_FFFFi64)?)
}

/// The "lowbias32" integer hash on int64 tensors holding u32 values.
fn hash32(x: &Tensor) -> Result<Tensor> {
    let x = x.f_bitwise_xor_tensor(&x.f_bitwise_right_shift_tensor_scalar(16i64)?)?;
    let x = mul32(&x, 0x7feb_352d)?;
    let x = x.f_bitwise_xor_tensor(&x.f_bitwise_right_shift_tensor_scalar(15i64)?)?;
    let x = mul32(&x, 0x846c_a68b)?;
    Ok(x.f_bitwise_xor_tensor(&x.f_bitwise_right_shift_tensor_scalar(16i64)?)?)
}

/// Reference scalar version of [`hash32`] (tests check they agree).
#[cfg(test)]
pub(crate) fn hash32_scalar(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// Uniforms in `[0, 1)` (24-bit resolution, fp32) for rows `rows` (int64 `[B]`), a function of
/// `(seed, step, row)` only.
pub fn counter_uniforms(rows: &Tensor, seed: u64, step: u64) -> Result<Tensor> {
    let key = splitmix64(seed ^ splitmix64(step.wrapping_add(0x5EED)));
    let k1 = (key & 0xFFFF_FFFF) as i64;
    let k2 = (key >> 32) as i64;
    let x = hash32(&rows.f_bitwise_and(0xFFFF_FFFFi64)?.f_bitwise_xor(k1)?)?;
    let x = hash32(&x.f_bitwise_xor(k2)?)?;
    Ok(x.f_bitwise_right_shift_tensor_scalar(8i64)?
        .f_to_kind(Kind::Float)?
        .f_mul_scalar(1.0 / 16_777_216.0)?)
}

/// Picks one token per row from fp32 logits `[B, V]`; `uniforms` `[B]` in `[0, 1)` drive sampling.
pub fn choose_tokens(
    logits: &Tensor,
    sampling: &Sampling,
    uniforms: Option<&Tensor>,
) -> Result<Tensor> {
    let (temperature, top_k, top_p) = match sampling {
        Sampling::Greedy => return Ok(logits.f_argmax(-1, false)?),
        Sampling::Sample { temperature, .. } if *temperature <= 0.0 => {
            return Ok(logits.f_argmax(-1, false)?)
        }
        Sampling::Sample {
            temperature,
            top_k,
            top_p,
        } => (*temperature, *top_k, *top_p),
    };
    let u = uniforms.ok_or_else(|| ModelError::BadInput("sampling needs uniforms".into()))?;
    let (_, v) = logits.size2()?;
    let scaled = logits.f_to_kind(Kind::Float)?.f_div_scalar(temperature)?;
    let top_k = top_k.filter(|&k| k > 0 && k < v);
    let top_p = top_p.filter(|&p| p < 1.0);
    // Candidates (values, original indices), sorted descending when filtering is needed.
    let (vals, idx) = match (top_k, top_p) {
        (Some(k), _) => {
            let (a, b) = scaled.f_topk(k, -1, true, true)?;
            (a, Some(b))
        }
        (None, Some(_)) => {
            let (a, b) = scaled.f_sort(-1, true)?;
            (a, Some(b))
        }
        (None, None) => (scaled, None),
    };
    let mut probs = vals.f_softmax(-1, Kind::Float)?;
    if let Some(p) = top_p {
        // Drop a token when the mass strictly before it already reaches p (keeps >= 1 token).
        let before = probs.f_cumsum(-1, Kind::Float)?.f_sub(&probs)?;
        probs = probs.f_masked_fill(&before.f_gt(p)?, 0.0)?;
    }
    let cdf = probs.f_cumsum(-1, Kind::Float)?;
    let n = cdf.size()[1];
    let total = cdf.f_narrow(1, n - 1, 1)?;
    let target = u.f_view([-1, 1])?.f_to_kind(Kind::Float)?.f_mul(&total)?;
    let pos = target
        .f_searchsorted(&cdf, false, true, "right", None::<Tensor>)?
        .f_clamp_max(n - 1)?; // [B, 1]
    let tok = match idx {
        Some(i) => i.f_gather(1, &pos, false)?,
        None => pos,
    };
    Ok(tok.f_squeeze_dim(1)?)
}

/// Generates continuations for a left-padded batch `input_ids` `[B, T]` int64 with
/// `attention_mask` `[B, T]` (1 real, 0 pad). Runs under `no_grad`.
pub fn generate(
    model: &Qwen2ForCausalLM,
    input_ids: &Tensor,
    attention_mask: &Tensor,
    cfg: &GenerationConfig,
) -> Result<GenerationOutput> {
    let _guard = tch::no_grad_guard();
    let (b, t) = input_ids.size2()?;
    let dev = model.device();
    if cfg.max_new_tokens <= 0 {
        return Ok(GenerationOutput {
            tokens: vec![Vec::new(); b as usize],
            logprobs: cfg.return_logprobs.then(|| vec![Vec::new(); b as usize]),
            stopped_at_eos: vec![false; b as usize],
        });
    }
    let mut cache = model.new_kv_cache(t + cfg.max_new_tokens);
    let eos = Tensor::f_from_slice(&cfg.eos_token_ids)?.f_to_device(dev)?;
    let rows = Tensor::f_arange(b, (Kind::Int64, dev))?;
    let ones = Tensor::f_ones([b, 1], (Kind::Int64, dev))?;
    let mut finished = Tensor::f_zeros([b], (Kind::Bool, dev))?;
    let mut logits = model.forward_last_with_cache(input_ids, attention_mask, &mut cache)?;
    let mut steps: Vec<Tensor> = Vec::with_capacity(cfg.max_new_tokens as usize);
    let mut lps: Vec<Tensor> = Vec::new();
    for step in 0..cfg.max_new_tokens {
        let u = match cfg.sampling {
            Sampling::Greedy => None,
            _ => Some(counter_uniforms(&rows, cfg.seed, step as u64)?),
        };
        let next = choose_tokens(&logits, &cfg.sampling, u.as_ref())?;
        // Without EOS ids nothing finishes: no masking needed (two ops fewer per step).
        let can_finish = !cfg.eos_token_ids.is_empty();
        let next = if can_finish {
            next.f_masked_fill(&finished, cfg.pad_token_id)?
        } else {
            next
        };
        if cfg.return_logprobs {
            let lp = logits
                .f_log_softmax(-1, Kind::Float)?
                .f_gather(1, &next.f_unsqueeze(1)?, false)?
                .f_squeeze_dim(1)?;
            lps.push(lp);
        }
        let was_finished = finished.shallow_clone();
        if cfg.eos_token_ids.is_empty() {
            // nothing can finish early
        } else {
            let hit = Tensor::f_isin(&next, &eos, false, false)?
                .f_logical_and(&was_finished.f_logical_not()?)?;
            finished = finished.f_logical_or(&hit)?;
        }
        // Mark tokens produced after the end as invalid (-1) for the final trimming.
        steps.push(if can_finish {
            next.f_masked_fill(&was_finished, -1)?
        } else {
            next.shallow_clone()
        });
        if step + 1 == cfg.max_new_tokens {
            break;
        }
        if !cfg.eos_token_ids.is_empty() && bool::try_from(finished.f_all()?)? {
            break;
        }
        logits = model.forward_last_with_cache(&next.f_unsqueeze(1)?, &ones, &mut cache)?;
    }
    let toks = Tensor::f_stack(&steps, 1)?.f_to_device(Device::Cpu)?;
    let n = toks.size()[1] as usize;
    let flat: Vec<i64> = Vec::try_from(toks.f_flatten(0, -1)?)?;
    let flat_lp: Option<Vec<f32>> = if cfg.return_logprobs {
        let lp = Tensor::f_stack(&lps, 1)?.f_to_device(Device::Cpu)?;
        Some(Vec::try_from(lp.f_flatten(0, -1)?)?)
    } else {
        None
    };
    let mut tokens = Vec::with_capacity(b as usize);
    let mut logprobs = Vec::with_capacity(b as usize);
    let mut stopped = Vec::with_capacity(b as usize);
    for r in 0..b as usize {
        let row = &flat[r * n..(r + 1) * n];
        let len = row.iter().position(|&x| x < 0).unwrap_or(n);
        let seq = row[..len].to_vec();
        stopped.push(seq.last().is_some_and(|x| cfg.eos_token_ids.contains(x)));
        if let Some(lp) = &flat_lp {
            logprobs.push(lp[r * n..r * n + len].to_vec());
        }
        tokens.push(seq);
    }
    Ok(GenerationOutput {
        tokens,
        logprobs: flat_lp.map(|_| logprobs),
        stopped_at_eos: stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_hash_matches_scalar_hash() {
        let xs: Vec<i64> = vec![
            0,
            1,
            2,
            0xFFFF,
            0x1_0000,
            0x7FFF_FFFF,
            0xFFFF_FFFF,
            123_456_789,
            0xDEAD_BEEF,
        ];
        let got: Vec<i64> = Vec::try_from(hash32(&Tensor::from_slice(&xs)).unwrap()).unwrap();
        for (x, g) in xs.iter().zip(got) {
            assert_eq!(g, hash32_scalar(*x as u32) as i64, "hash32({x:#x})");
        }
    }

    #[test]
    fn uniforms_are_in_range_and_depend_on_seed_step_row() {
        let rows = Tensor::arange(4096, (Kind::Int64, Device::Cpu));
        let u = counter_uniforms(&rows, 7, 3).unwrap();
        let min = u.min().double_value(&[]);
        let max = u.max().double_value(&[]);
        assert!(
            (0.0..1.0).contains(&min) && max < 1.0 && max > 0.99,
            "{min} {max}"
        );
        let mean = u.mean(Kind::Float).double_value(&[]);
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        assert!(u.equal(&counter_uniforms(&rows, 7, 3).unwrap()));
        assert!(!u.equal(&counter_uniforms(&rows, 8, 3).unwrap()));
        assert!(!u.equal(&counter_uniforms(&rows, 7, 4).unwrap()));
    }

    #[test]
    fn sampling_follows_the_filtered_distribution() {
        let n = 40_000i64;
        // probabilities 0.4, 0.3, 0.2, 0.1
        let p = [0.4f64, 0.3, 0.2, 0.1];
        let logits_row: Vec<f32> = p.iter().map(|x| x.ln() as f32).collect();
        let logits = Tensor::from_slice(&logits_row)
            .view([1, 4])
            .expand([n, 4], false);
        let u = counter_uniforms(&Tensor::arange(n, (Kind::Int64, Device::Cpu)), 1, 0).unwrap();
        let freq = |s: &Sampling| -> Vec<f64> {
            let tok = choose_tokens(&logits, s, Some(&u)).unwrap();
            (0..4)
                .map(|k| {
                    tok.eq(k)
                        .to_kind(Kind::Float)
                        .mean(Kind::Float)
                        .double_value(&[])
                })
                .collect()
        };
        let plain = freq(&Sampling::Sample {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        });
        for (f, want) in plain.iter().zip(p) {
            assert!((f - want).abs() < 0.01, "plain {plain:?}");
        }
        let k2 = freq(&Sampling::Sample {
            temperature: 1.0,
            top_k: Some(2),
            top_p: None,
        });
        assert!(
            (k2[0] - 4.0 / 7.0).abs() < 0.01 && k2[2] == 0.0 && k2[3] == 0.0,
            "top-k {k2:?}"
        );
        // top_p 0.6: keeps 0.4 and 0.3 (mass before the third token is 0.7 >= 0.6).
        let p6 = freq(&Sampling::Sample {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.6),
        });
        assert!(
            (p6[0] - 4.0 / 7.0).abs() < 0.01 && p6[2] == 0.0 && p6[3] == 0.0,
            "top-p {p6:?}"
        );
        // Temperature 0.5 squares the odds: 16:9:4:1.
        let t = freq(&Sampling::Sample {
            temperature: 0.5,
            top_k: None,
            top_p: None,
        });
        assert!((t[0] - 16.0 / 30.0).abs() < 0.01, "temperature {t:?}");
        let g = freq(&Sampling::Greedy);
        assert_eq!(g, vec![1.0, 0.0, 0.0, 0.0]);
    }
}
