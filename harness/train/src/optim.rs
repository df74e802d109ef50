//! AdamW with decoupled weight decay, written out so its state (m, v, step) can be checkpointed and
//! restored bit-for-bit; the linear-warmup + cosine learning-rate schedule; global-norm clipping.
//!
//! Parameters below fp32 (bf16, on CPU with `--dtype bf16` and on CUDA by default) get an fp32
//! master copy: the moments and the update are fp32 and are applied to the master, which is then
//! rounded into the bf16 parameter the model computes with. A bf16 parameter updated in place
//! would lose every update smaller than half its last bit (2^-8 of its magnitude): with a 2e-5
//! learning rate, most of them. The same code runs on CPU and CUDA. Checkpoints hold the masters
//! (`param.<name>`, fp32), so a resumed bf16 run continues from the same fp32 state.

use std::collections::BTreeMap;

use tch::{nn::VarStore, Kind, Tensor};

/// Hyper-parameters of [`AdamW`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW over the trainable variables of a [`VarStore`], in name order.
pub struct AdamW {
    pub cfg: AdamWConfig,
    /// (name, parameter, first moment, second moment).
    params: Vec<(String, Tensor, Tensor, Tensor)>,
    /// The fp32 master copy of each parameter below fp32 (None for fp32/fp64 ones), in the
    /// order of `params`.
    masters: Vec<Option<Tensor>>,
    /// Number of updates applied.
    pub t: u64,
}

/// Whether a parameter of this kind trains through an fp32 master copy.
fn needs_master(kind: Kind) -> bool {
    matches!(kind, Kind::BFloat16 | Kind::Half)
}

impl AdamW {
    pub fn new(vs: &VarStore, cfg: AdamWConfig) -> Self {
        let _guard = tch::no_grad_guard();
        let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
        let mut params = Vec::new();
        let mut masters = Vec::new();
        for (n, p) in vars.into_iter().filter(|(_, p)| p.requires_grad()) {
            let master = needs_master(p.kind()).then(|| p.detach().to_kind(Kind::Float));
            let like = master.as_ref().unwrap_or(&p);
            let m = like.zeros_like();
            let v = like.zeros_like();
            masters.push(master);
            params.push((n, p, m, v));
        }
        AdamW {
            cfg,
            params,
            masters,
            t: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _, _) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Global L2 norm of the gradients; scales them down to `max_norm` when above it (if > 0).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let _guard = tch::no_grad_guard();
        let mut sq = 0f64;
        for (_, p, _, _) in &self.params {
            let g = p.grad();
            if g.defined() {
                sq += g
                    .pow_tensor_scalar(2)
                    .sum(tch::Kind::Double)
                    .double_value(&[]);
            }
        }
        let norm = sq.sqrt();
        if max_norm > 0.0 && norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for (_, p, _, _) in &mut self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(scale);
                }
            }
        }
        norm
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.t += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        for ((_, p, m, v), master) in self.params.iter_mut().zip(&mut self.masters) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            // bf16 parameters: fp32 gradient, moments and update, applied to the master
            let (g, w) = match master.as_mut() {
                Some(w) => (g.to_kind(Kind::Float), w),
                None => (g, &mut *p),
            };
            let _ = m.g_mul_scalar_(beta1);
            let _ = m.g_add_(&(&g * (1.0 - beta1)));
            let _ = v.g_mul_scalar_(beta2);
            let _ = v.g_add_(&(g.square() * (1.0 - beta2)));
            if weight_decay > 0.0 {
                let _ = w.g_mul_scalar_(1.0 - lr * weight_decay);
            }
            let denom = (&*v / bc2).sqrt() + eps;
            let update = (&*m / bc1) / denom * lr;
            let _ = w.g_sub_(&update);
            if let Some(w) = master.as_ref() {
                p.copy_(w); // rounded once into the parameter's kind
            }
        }
    }

    /// Optimizer state as named tensors (`adam_m.<name>`, `adam_v.<name>`).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.params.len() * 2);
        for (n, _, m, v) in &self.params {
            out.push((format!("adam_m.{n}"), m.shallow_clone()));
            out.push((format!("adam_v.{n}"), v.shallow_clone()));
        }
        out
    }

    /// Parameters as named tensors (`param.<name>`): the fp32 master of a bf16 parameter.
    pub fn param_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.masters)
            .map(|((n, p, _, _), master)| {
                (
                    format!("param.{n}"),
                    master.as_ref().unwrap_or(p).shallow_clone(),
                )
            })
            .collect()
    }

    /// How many parameters train through an fp32 master copy (those below fp32).
    pub fn master_count(&self) -> usize {
        self.masters.iter().filter(|m| m.is_some()).count()
    }

    /// Restores parameters and moments from named tensors written by the two methods above.
    pub fn load(&mut self, named: &BTreeMap<String, Tensor>, t: u64) -> Result<(), String> {
        let _guard = tch::no_grad_guard();
        for ((n, p, m, v), master) in self.params.iter_mut().zip(&mut self.masters) {
            let w = match master.as_mut() {
                Some(w) => w,
                None => &mut *p,
            };
            for (prefix, dst) in [("param", &mut *w), ("adam_m", &mut *m), ("adam_v", &mut *v)] {
                let key = format!("{prefix}.{n}");
                let src = named
                    .get(&key)
                    .ok_or_else(|| format!("missing tensor '{key}'"))?;
                if src.size() != dst.size() {
                    return Err(format!(
                        "tensor '{key}' has shape {:?}, the model expects {:?}",
                        src.size(),
                        dst.size()
                    ));
                }
                dst.f_copy_(&src.to_device(dst.device()).to_kind(dst.kind()))
                    .map_err(|e| format!("cannot restore '{key}': {e}"))?;
            }
            if let Some(w) = master.as_ref() {
                p.f_copy_(w)
                    .map_err(|e| format!("cannot restore 'param.{n}': {e}"))?;
            }
        }
        self.t = t;
        Ok(())
    }
}

/// Linear warmup from 0 to `peak` over `warmup` steps, then cosine decay to `peak * min_ratio` at
/// `total` steps. `step` is 0-based (the learning rate of the `step`-th update).
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64, min_ratio: f64) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let decay = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup.min(step)) as f64 / decay).clamp(0.0, 1.0);
    let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (min_ratio + (1.0 - min_ratio) * cos)
}

/// The schedule of [`lr_at`] over a fraction of a budget instead of steps: linear warmup over the
/// first `warmup` of the budget, then cosine decay to `peak * min_ratio` when `used` reaches 1.
pub fn lr_at_fraction(used: f64, warmup: f64, peak: f64, min_ratio: f64) -> f64 {
    let used = used.clamp(0.0, 1.0);
    if warmup > 0.0 && used < warmup {
        // never 0: the first update of a warmup is small, not skipped
        return peak * (used / warmup).max(0.01);
    }
    let progress = ((used - warmup) / (1.0 - warmup).max(1e-9)).clamp(0.0, 1.0);
    let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (min_ratio + (1.0 - min_ratio) * cos)
}
