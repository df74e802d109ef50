//! The Qwen2 decoder-only transformer (also Qwen1.5, Qwen2.5, and LLaMA when QKV bias is off).
//!
//! Parameter names come straight from the `nn::Path` used at construction, and match
//! Hugging Face's `Qwen2ForCausalLM` / `LlamaForCausalLM` state dicts:
//! `model.embed_tokens.weight`, `model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}`,
//! `model.layers.N.mlp.{gate,up,down}_proj.weight`, `model.layers.N.{input,post_attention}_layernorm.weight`,
//! `model.norm.weight`, `lm_head.weight` (absent when embeddings are tied). Safetensors files
//! therefore load and save without a renaming table.
//!
//! Numerics follow HF: RMSNorm in fp32 then cast back, rotary tables computed in fp32, logits
//! always returned as fp32 (`Kind::Float`) whatever the parameter kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::error::{ModelError, Result};
use crate::layers::LoraLayer;

/// `eos_token_id` in HF configs is either one id or a list of ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<i64> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

fn default_rope_theta() -> f64 {
    10000.0
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> i64 {
    32768
}
fn default_act() -> String {
    "silu".to_string()
}

/// Model hyper-parameters. Field names are exactly the keys of a HF `config.json`; keys this
/// implementation does not use are kept in `extra` so a load -> save round trip preserves them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    /// Defaults to `num_attention_heads` (no GQA) when absent, as in HF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<i64>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: i64,
    /// Top-level in most hub configs; transformers >= 5 writes `rope_parameters.rope_theta`
    /// instead (kept in `extra`). Read it through [`Config::rope_theta`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// LLaMA's key. Qwen2 configs omit it and always have q/k/v biases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
    /// Explicit head dim (newer configs); defaults to hidden_size / num_attention_heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
    /// Std of the normal init used by [`Qwen2ForCausalLM::new`] (HF default 0.02).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer_range: Option<f64>,
    /// Every other key of config.json, preserved verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Default for Config {
    /// A tiny Qwen2 configuration (useful for tests); real models come from config.json.
    fn default() -> Self {
        Config {
            vocab_size: 256,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            max_position_embeddings: 4096,
            rope_theta: Some(10000.0),
            rms_norm_eps: 1e-6,
            tie_word_embeddings: false,
            hidden_act: "silu".into(),
            attention_bias: None,
            head_dim: None,
            model_type: Some("qwen2".into()),
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            torch_dtype: Some("float32".into()),
            initializer_range: None,
            extra: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Parses a config.json text.
    pub fn from_json_str(s: &str) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// The rotary base: `rope_theta`, else `rope_parameters.rope_theta`, else 10000.
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| {
                self.extra
                    .get("rope_parameters")
                    .and_then(|v| v.get("rope_theta"))
                    .and_then(serde_json::Value::as_f64)
            })
            .unwrap_or_else(default_rope_theta)
    }

    pub fn num_kv_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> i64 {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    fn is_llama(&self) -> bool {
        self.model_type.as_deref() == Some("llama")
    }

    /// Whether q/k/v projections carry a bias: `attention_bias` if given, else true for Qwen2.
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias.unwrap_or(!self.is_llama())
    }

    /// LLaMA's `attention_bias` also biases o_proj; Qwen2's o_proj never has one.
    pub fn o_bias(&self) -> bool {
        self.is_llama() && self.attention_bias.unwrap_or(false)
    }

    /// The EOS ids (empty when the config has none).
    pub fn eos_token_ids(&self) -> Vec<i64> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Checks the hyper-parameters are consistent and supported.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        for (k, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_kv_heads()),
            ("head_dim", self.head_dim()),
        ] {
            if v <= 0 {
                return bad(format!("{k} must be positive, got {v}"));
            }
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_attention_heads % self.num_kv_heads() != 0 {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.num_kv_heads()
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        if self.hidden_act != "silu" {
            return Err(ModelError::Unsupported(format!(
                "hidden_act {:?} (only \"silu\")",
                self.hidden_act
            )));
        }
        for key in ["rope_scaling", "rope_parameters"] {
            if let Some(v) = self.extra.get(key) {
                let ty = v
                    .get("rope_type")
                    .or_else(|| v.get("type"))
                    .and_then(|t| t.as_str());
                if !v.is_null() && ty != Some("default") {
                    return Err(ModelError::Unsupported(format!(
                        "{key} {v} (only default RoPE)"
                    )));
                }
            }
        }
        if let Some(serde_json::Value::Array(types)) = self.extra.get("layer_types") {
            if types.iter().any(|t| t.as_str() != Some("full_attention")) {
                return Err(ModelError::Unsupported(
                    "layer_types other than full_attention".into(),
                ));
            }
        }
        if self.extra.get("use_sliding_window") == Some(&serde_json::Value::Bool(true)) {
            return Err(ModelError::Unsupported("use_sliding_window = true".into()));
        }
        if self.extra.get("mlp_bias") == Some(&serde_json::Value::Bool(true)) {
            return Err(ModelError::Unsupported("mlp_bias = true".into()));
        }
        Ok(())
    }
}

/// A linear layer `y = x W^T + b`, with an optional LoRA adapter added to its output.
#[derive(Debug)]
pub(crate) struct Linear {
    /// Module path relative to the model root, e.g. `model.layers.0.self_attn.q_proj`.
    pub(crate) name: String,
    pub(crate) weight: Tensor,
    bias: Option<Tensor>,
    pub(crate) lora: Option<LoraLayer>,
}

impl Linear {
    fn new(
        p: &nn::Path,
        name: String,
        in_dim: i64,
        out_dim: i64,
        bias: bool,
        std: f64,
    ) -> Result<Self> {
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: std,
        };
        let weight = p.f_var("weight", &[out_dim, in_dim], init)?;
        let bias = if bias {
            Some(p.f_zeros("bias", &[out_dim])?)
        } else {
            None
        };
        Ok(Linear {
            name,
            weight,
            bias,
            lora: None,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.f_linear(&self.weight, self.bias.as_ref())?;
        match &self.lora {
            None => Ok(y),
            Some(l) => Ok(y.f_add(&l.forward(x)?)?),
        }
    }

    pub(crate) fn in_out(&self) -> (i64, i64) {
        let s = self.weight.size();
        (s[1], s[0])
    }
}

#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
    dim: i64,
}

impl RmsNorm {
    fn new(p: &nn::Path, dim: i64, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            weight: p.f_ones("weight", &[dim])?,
            eps,
            dim,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let kind = x.kind();
        if kind == Kind::Float && self.weight.kind() == Kind::Float {
            // fp32: libtorch's one fused op computes HF's formula (`x * rsqrt(mean(x^2) + eps) *
            // weight`) in one pass instead of six ops; other kinds keep HF's cast order below.
            return Ok(x.f_rms_norm([self.dim], Some(&self.weight), self.eps)?);
        }
        let xf = x.f_to_kind(Kind::Float)?;
        let var = xf
            .f_pow_tensor_scalar(2)?
            .f_mean_dim(-1, true, Kind::Float)?;
        let normed = xf.f_mul(&var.f_add_scalar(self.eps)?.f_rsqrt()?)?;
        Ok(self.weight.f_mul(&normed.f_to_kind(kind)?)?)
    }
}

/// HF's `x * cos + rotate_half(x) * sin` with `rotate_half(x) = cat(-x2, x1)`, written as
/// `x * cos + roll(x, d/2) * sin_signed` where `sin_signed = cat(-sin1, sin2)` (the two halves of
/// HF's `sin` are equal): the same products bit for bit (`-a * b == a * -b`), four ops not seven.
fn apply_rope(x: &Tensor, cos: &Tensor, sin_signed: &Tensor, half: i64) -> Result<Tensor> {
    Ok(x.f_mul(cos)?
        .f_add(&x.f_roll([half], [-1])?.f_mul(sin_signed)?)?)
}

/// `cos` and `sin_signed` (see [`apply_rope`]) `[..., head_dim]` in `kind` for fp32 angles
/// `freqs` `[..., head_dim / 2]` (HF: `emb = cat(freqs, freqs)`, `cos(emb)`, `sin(emb)`).
fn rope_tables(freqs: &Tensor, kind: Kind) -> Result<(Tensor, Tensor)> {
    let c = freqs.f_cos()?;
    let s = freqs.f_sin()?;
    Ok((
        Tensor::f_cat(&[&c, &c], -1)?.f_to_kind(kind)?,
        Tensor::f_cat(&[&s.f_neg()?, &s], -1)?.f_to_kind(kind)?,
    ))
}

/// Weights of one layer concatenated for the cached (generation) path: one `[q; k; v]`
/// projection and one `[gate; up]` projection instead of five. Built from the model's current
/// weights when a generation starts (they live in its [`KvCache`]), only for projections without
/// a LoRA adapter; detached (the cached path is inference only).
#[derive(Debug)]
struct Fused {
    qkv: Option<(Tensor, Option<Tensor>)>,
    gate_up: Option<Tensor>,
}

/// One layer's slice of a [`KvCache`]: preallocated `[B, kv_heads, capacity, head_dim]` buffers.
#[derive(Debug)]
struct LayerCache {
    k: Tensor,
    v: Tensor,
}

/// Key/value cache for incremental decoding.
///
/// Ownership: a cache belongs to ONE generation call (one batch); the model itself is
/// immutable (`&self`) and can be shared by several callers, each with its own cache. The cache
/// stores, per layer, preallocated key/value buffers plus which cached positions are real
/// tokens, so left padding in the prompt stays masked for all later steps; the count of real
/// tokens per row (the next position id); rotary tables for its capacity; and the layers'
/// fused projections (built from the weights at its first forward). It is meant for inference
/// under `tch::no_grad`: it writes into its buffers in place, and its forwards carry no
/// gradient. `clear()` empties it for reuse with a new batch (buffers are kept when the batch
/// shape matches; the fused weights are rebuilt, so weights changed in between are seen).
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    /// `[B, capacity]` bool: cached position is a real token (not padding).
    key_ok: Option<Tensor>,
    /// `[B, 1]` int64: real tokens cached per row.
    count: Option<Tensor>,
    /// `cos`, `sin_signed` `[capacity, head_dim]` for position ids `0..capacity`.
    rope: Option<(Tensor, Tensor)>,
    fused: Vec<Fused>,
    len: i64,
    capacity: i64,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers; `capacity` positions are allocated
    /// on first use (it grows if exceeded). Use prompt length + max new tokens.
    pub fn new(num_layers: usize, capacity: i64) -> Self {
        KvCache {
            layers: (0..num_layers).map(|_| None).collect(),
            key_ok: None,
            count: None,
            rope: None,
            fused: Vec::new(),
            len: 0,
            capacity: capacity.max(1),
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> i64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every cached position (and the fused weights).
    pub fn clear(&mut self) {
        self.len = 0;
        self.count = None;
        self.fused.clear();
    }

    /// Records the new tokens' mask `[B, T]` int64 at positions `len..len+T`; returns their
    /// position ids `[B, T]` (`cumsum(mask) - 1` over the whole sequence, clamped at 0) and the
    /// key mask `[B, len+T]` bool of every position.
    fn record_mask(&mut self, new_mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = new_mask.size2()?;
        let (past, need) = (self.len, self.len + t);
        let fits = match &self.key_ok {
            Some(k) => {
                let (kb, kcap) = k.size2()?;
                kb == b && kcap >= need && k.device() == new_mask.device()
            }
            None => false,
        };
        if !fits {
            let old = self.key_ok.take();
            let cap = need.max(self.capacity).max(match &old {
                Some(k) => 2 * k.size()[1],
                None => 0,
            });
            let buf = Tensor::f_zeros([b, cap], (Kind::Bool, new_mask.device()))?;
            if let (Some(o), true) = (&old, past > 0) {
                buf.f_narrow(1, 0, past)?
                    .f_copy_(&o.f_narrow(1, 0, past)?)?;
            }
            self.key_ok = Some(buf);
        }
        let key_ok = self
            .key_ok
            .as_ref()
            .ok_or_else(|| ModelError::BadInput("KvCache key mask missing".into()))?;
        key_ok.f_narrow(1, past, t)?.f_copy_(&new_mask.f_ne(0)?)?;
        let cums = new_mask.f_cumsum(1, Kind::Int64)?;
        let (pos, count) = match (&self.count, past) {
            (Some(c), p) if p > 0 => (cums.f_add(c)?, c.f_add(&cums.f_narrow(1, t - 1, 1)?)?),
            _ => (cums.shallow_clone(), cums.f_narrow(1, t - 1, 1)?),
        };
        self.count = Some(count);
        Ok((
            pos.f_sub_scalar(1)?.f_clamp_min(0)?,
            key_ok.f_narrow(1, 0, need)?,
        ))
    }

    /// `cos`, `sin_signed` `[B, 1, T, head_dim]` at position ids `pos` `[B, T]` (all below
    /// `need`), looked up in tables computed by the uncached path's formula.
    fn rope_at(
        &mut self,
        pos: &Tensor,
        inv_freq: &Tensor,
        kind: Kind,
        need: i64,
    ) -> Result<(Tensor, Tensor)> {
        let need = self.capacity.max(need);
        let stale = match &self.rope {
            Some((c, _)) => c.size()[0] < need || c.kind() != kind || c.device() != pos.device(),
            None => true,
        };
        if stale {
            let cap = match &self.rope {
                Some((c, _)) => need.max(2 * c.size()[0]),
                None => need,
            };
            let ids = Tensor::f_arange(cap, (Kind::Float, pos.device()))?;
            let freqs = ids.f_unsqueeze(-1)?.f_mul(&inv_freq.f_view([1, -1])?)?;
            self.rope = Some(rope_tables(&freqs, kind)?);
        }
        let (c, s) = self
            .rope
            .as_ref()
            .ok_or_else(|| ModelError::BadInput("KvCache rotary tables missing".into()))?;
        let at = |table: &Tensor| -> Result<Tensor> {
            Ok(Tensor::f_embedding(table, pos, -1, false, false)?.f_unsqueeze(1)?)
        };
        Ok((at(c)?, at(s)?))
    }

    /// Writes `k, v` `[B, kv, T, hd]` at positions `past..past+T` and returns views over
    /// positions `0..past+T`.
    fn append(
        &mut self,
        layer: usize,
        past: i64,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.size4()?;
        let need = past + t;
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| ModelError::BadInput(format!("KvCache has no layer {layer}")))?;
        let reusable = match slot {
            Some(c) => {
                let (cb, ch, ccap, cd) = c.k.size4()?;
                cb == b
                    && ch == h
                    && cd == d
                    && ccap >= need
                    && c.k.kind() == k.kind()
                    && c.k.device() == k.device()
            }
            None => false,
        };
        if !reusable {
            let cap = need.max(self.capacity).max(match slot {
                Some(c) => 2 * c.k.size()[2],
                None => 0,
            });
            let opts = (k.kind(), k.device());
            let nk = Tensor::f_zeros([b, h, cap, d], opts)?;
            let nv = Tensor::f_zeros([b, h, cap, d], opts)?;
            if let Some(c) = slot.as_ref() {
                if past > 0 && c.k.size()[0] == b {
                    nk.f_narrow(2, 0, past)?
                        .f_copy_(&c.k.f_narrow(2, 0, past)?)?;
                    nv.f_narrow(2, 0, past)?
                        .f_copy_(&c.v.f_narrow(2, 0, past)?)?;
                }
            }
            *slot = Some(LayerCache { k: nk, v: nv });
        }
        let c = slot
            .as_mut()
            .ok_or_else(|| ModelError::BadInput("KvCache slot empty".into()))?;
        c.k.f_narrow(2, past, t)?.f_copy_(k)?;
        c.v.f_narrow(2, past, t)?.f_copy_(v)?;
        Ok((c.k.f_narrow(2, 0, need)?, c.v.f_narrow(2, 0, need)?))
    }
}

#[derive(Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: i64,
    n_kv: i64,
    head_dim: i64,
}

/// Position information shared by every layer of one forward call.
struct Ctx<'a> {
    cos: &'a Tensor,
    /// `sin` with its first half negated (see [`apply_rope`]).
    sin: &'a Tensor,
    /// Boolean `[B, 1, T, S]`: true where a query may attend a key; None: plain causal
    /// attention (no padding before any real token).
    mask: Option<&'a Tensor>,
    past: i64,
    /// `head_dim / 2`, the rotary shift.
    half: i64,
}

impl Attention {
    fn new(p: &nn::Path, prefix: &str, cfg: &Config, std: f64) -> Result<Self> {
        let (h, kv, hd, d) = (
            cfg.num_attention_heads,
            cfg.num_kv_heads(),
            cfg.head_dim(),
            cfg.hidden_size,
        );
        let qkv_bias = cfg.qkv_bias();
        let lin = |name: &str, i, o, b| {
            Linear::new(&(p / name), format!("{prefix}.{name}"), i, o, b, std)
        };
        Ok(Attention {
            q_proj: lin("q_proj", d, h * hd, qkv_bias)?,
            k_proj: lin("k_proj", d, kv * hd, qkv_bias)?,
            v_proj: lin("v_proj", d, kv * hd, qkv_bias)?,
            o_proj: lin("o_proj", h * hd, d, cfg.o_bias())?,
            n_heads: h,
            n_kv: kv,
            head_dim: hd,
        })
    }

    fn repeat_kv(&self, x: Tensor) -> Result<Tensor> {
        let rep = self.n_heads / self.n_kv;
        if rep == 1 {
            return Ok(x);
        }
        let (b, kv, s, d) = x.size4()?;
        Ok(x.f_unsqueeze(2)?
            .f_expand([b, kv, rep, s, d], false)?
            .f_reshape([b, kv * rep, s, d])?)
    }

    /// `[q; k; v]` weights (and biases) for the cached path, when none has an adapter.
    fn fuse(&self) -> Result<Option<(Tensor, Option<Tensor>)>> {
        let lin = [&self.q_proj, &self.k_proj, &self.v_proj];
        if lin.iter().any(|l| l.lora.is_some()) {
            return Ok(None);
        }
        let w = Tensor::f_cat(&lin.map(|l| &l.weight), 0)?.f_detach()?;
        let b = match lin.map(|l| l.bias.as_ref()) {
            [Some(q), Some(k), Some(v)] => Some(Tensor::f_cat(&[q, k, v], 0)?.f_detach()?),
            _ => None,
        };
        Ok(Some((w, b)))
    }

    fn forward(
        &self,
        x: &Tensor,
        ctx: &Ctx,
        cache: Option<(&mut KvCache, usize)>,
        fused: Option<&(Tensor, Option<Tensor>)>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.size3()?;
        let (h, kv, hd) = (self.n_heads, self.n_kv, self.head_dim);
        let (q, k, v) = match fused {
            Some((w, bias)) => {
                // one projection; rotary embeddings on q and k at once ([B, H + KV, T, hd])
                let y = x
                    .f_linear(w, bias.as_ref())?
                    .f_view([b, t, h + 2 * kv, hd])?
                    .f_transpose(1, 2)?;
                let qk = apply_rope(&y.f_narrow(1, 0, h + kv)?, ctx.cos, ctx.sin, ctx.half)?;
                (
                    qk.f_narrow(1, 0, h)?,
                    qk.f_narrow(1, h, kv)?,
                    y.f_narrow(1, h + kv, kv)?,
                )
            }
            None => {
                let shape = |y: Tensor, heads: i64| -> Result<Tensor> {
                    Ok(y.f_view([b, t, heads, hd])?.f_transpose(1, 2)?)
                };
                let q = shape(self.q_proj.forward(x)?, h)?;
                let k = shape(self.k_proj.forward(x)?, kv)?;
                let v = shape(self.v_proj.forward(x)?, kv)?;
                (
                    apply_rope(&q, ctx.cos, ctx.sin, ctx.half)?,
                    apply_rope(&k, ctx.cos, ctx.sin, ctx.half)?,
                    v,
                )
            }
        };
        let (k, v) = match cache {
            Some((c, layer)) => c.append(layer, ctx.past, &k, &v)?,
            None => (k, v),
        };
        let rep = h / kv;
        let y = if t == 1 && rep > 1 {
            // Decoding with GQA: the `rep` query heads that share a kv head (HF's repeat_kv
            // order) are `rep` queries of that head, all with the same mask row: the same
            // attention without copying the cached keys and values `rep` times.
            let qg = q.f_reshape([b, kv, rep, hd])?;
            Tensor::f_scaled_dot_product_attention(&qg, &k, &v, ctx.mask, 0.0, false, None, false)?
                .f_reshape([b, h, 1, hd])?
        } else {
            let k = self.repeat_kv(k)?;
            let v = self.repeat_kv(v)?;
            Tensor::f_scaled_dot_product_attention(
                &q,
                &k,
                &v,
                ctx.mask,
                0.0,
                ctx.mask.is_none(),
                None,
                false,
            )?
        };
        let y = y.f_transpose(1, 2)?.f_reshape([b, t, h * hd])?;
        self.o_proj.forward(&y)
    }
}

#[derive(Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(p: &nn::Path, prefix: &str, cfg: &Config, std: f64) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let lin = |name: &str, a, b| {
            Linear::new(&(p / name), format!("{prefix}.{name}"), a, b, false, std)
        };
        Ok(Mlp {
            gate_proj: lin("gate_proj", d, i)?,
            up_proj: lin("up_proj", d, i)?,
            down_proj: lin("down_proj", i, d)?,
        })
    }

    /// `[gate; up]` weights for the cached path, when neither has an adapter.
    fn fuse(&self) -> Result<Option<Tensor>> {
        if self.gate_proj.lora.is_some() || self.up_proj.lora.is_some() {
            return Ok(None);
        }
        Ok(Some(
            Tensor::f_cat(&[&self.gate_proj.weight, &self.up_proj.weight], 0)?.f_detach()?,
        ))
    }

    fn forward(&self, x: &Tensor, fused: Option<&Tensor>) -> Result<Tensor> {
        let (g, u) = match fused {
            Some(w) => {
                let gu = x.f_linear::<Tensor>(w, None)?;
                let i = self.gate_proj.in_out().1;
                (gu.f_narrow(-1, 0, i)?, gu.f_narrow(-1, i, i)?)
            }
            None => (self.gate_proj.forward(x)?, self.up_proj.forward(x)?),
        };
        self.down_proj.forward(&g.f_silu()?.f_mul(&u)?)
    }
}

#[derive(Debug)]
struct DecoderLayer {
    self_attn: Attention,
    mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    fn new(p: &nn::Path, prefix: &str, cfg: &Config, std: f64) -> Result<Self> {
        Ok(DecoderLayer {
            self_attn: Attention::new(
                &(p / "self_attn"),
                &format!("{prefix}.self_attn"),
                cfg,
                std,
            )?,
            mlp: Mlp::new(&(p / "mlp"), &format!("{prefix}.mlp"), cfg, std)?,
            input_layernorm: RmsNorm::new(
                &(p / "input_layernorm"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
            post_attention_layernorm: RmsNorm::new(
                &(p / "post_attention_layernorm"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
        })
    }

    fn fuse(&self) -> Result<Fused> {
        Ok(Fused {
            qkv: self.self_attn.fuse()?,
            gate_up: self.mlp.fuse()?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        ctx: &Ctx,
        cache: Option<(&mut KvCache, usize)>,
        fused: Option<&Fused>,
    ) -> Result<Tensor> {
        let h = x.f_add(&self.self_attn.forward(
            &self.input_layernorm.forward(x)?,
            ctx,
            cache,
            fused.and_then(|f| f.qkv.as_ref()),
        )?)?;
        Ok(h.f_add(&self.mlp.forward(
            &self.post_attention_layernorm.forward(&h)?,
            fused.and_then(|f| f.gate_up.as_ref()),
        )?)?)
    }

    fn linears_mut(&mut self) -> [&mut Linear; 7] {
        let a = &mut self.self_attn;
        let m = &mut self.mlp;
        [
            &mut a.q_proj,
            &mut a.k_proj,
            &mut a.v_proj,
            &mut a.o_proj,
            &mut m.gate_proj,
            &mut m.up_proj,
            &mut m.down_proj,
        ]
    }
}

/// Qwen2 (Qwen1.5/2/2.5, LLaMA) causal language model.
///
/// Immutable after construction (apart from attaching LoRA), so `&self` methods can be called
/// from several places; incremental decoding state lives in a caller-owned [`KvCache`].
#[derive(Debug)]
pub struct Qwen2ForCausalLM {
    cfg: Config,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
    /// `[head_dim / 2]` fp32 rotary inverse frequencies.
    inv_freq: Tensor,
    /// HF name -> parameter, relative to the path given to `new`.
    params: Vec<(String, Tensor)>,
}

impl Qwen2ForCausalLM {
    /// Builds the model with its parameters registered under `vs` (use `&vs.root()` so that
    /// names are the HF ones). Parameters are randomly initialized (normal, std
    /// `initializer_range` or 0.02; biases 0; norms 1); load a checkpoint to get real weights.
    pub fn new(vs: &nn::Path, cfg: &Config) -> Result<Self> {
        cfg.validate()?;
        let std = cfg.initializer_range.unwrap_or(0.02);
        let m = vs / "model";
        let embed_tokens = (&m / "embed_tokens").f_var(
            "weight",
            &[cfg.vocab_size, cfg.hidden_size],
            nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        )?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers as usize);
        for i in 0..cfg.num_hidden_layers {
            layers.push(DecoderLayer::new(
                &(&m / "layers" / i),
                &format!("model.layers.{i}"),
                cfg,
                std,
            )?);
        }
        let norm = RmsNorm::new(&(&m / "norm"), cfg.hidden_size, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(Linear::new(
                &(vs / "lm_head"),
                "lm_head".into(),
                cfg.hidden_size,
                cfg.vocab_size,
                false,
                std,
            )?)
        };
        let hd = cfg.head_dim();
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| (1.0 / cfg.rope_theta().powf((2 * i) as f64 / hd as f64)) as f32)
            .collect();
        let inv_freq = Tensor::f_from_slice(&inv)?.f_to_device(vs.device())?;

        let mut model = Qwen2ForCausalLM {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            inv_freq,
            params: Vec::new(),
        };
        model.params = model.collect_params();
        Ok(model)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn device(&self) -> Device {
        self.embed_tokens.device()
    }

    /// Kind of the parameters (Float on CPU, BFloat16 typically on CUDA).
    pub fn kind(&self) -> Kind {
        self.embed_tokens.kind()
    }

    /// Every base parameter with its HF name (sorted by name); LoRA adapters not included.
    pub fn named_parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// A fresh cache sized for `capacity` positions.
    pub fn new_kv_cache(&self, capacity: i64) -> KvCache {
        KvCache::new(self.layers.len(), capacity)
    }

    /// Base parameters with their HF names (relative to the construction path), sorted.
    fn collect_params(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.shallow_clone(),
        )];
        let push_lin = |l: &Linear, out: &mut Vec<(String, Tensor)>| {
            out.push((format!("{}.weight", l.name), l.weight.shallow_clone()));
            if let Some(b) = &l.bias {
                out.push((format!("{}.bias", l.name), b.shallow_clone()));
            }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            for l in [
                &layer.self_attn.q_proj,
                &layer.self_attn.k_proj,
                &layer.self_attn.v_proj,
                &layer.self_attn.o_proj,
                &layer.mlp.gate_proj,
                &layer.mlp.up_proj,
                &layer.mlp.down_proj,
            ] {
                push_lin(l, &mut out);
            }
            out.push((
                format!("model.layers.{i}.input_layernorm.weight"),
                layer.input_layernorm.weight.shallow_clone(),
            ));
            out.push((
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                layer.post_attention_layernorm.weight.shallow_clone(),
            ));
        }
        out.push((
            "model.norm.weight".to_string(),
            self.norm.weight.shallow_clone(),
        ));
        if let Some(l) = &self.lm_head {
            push_lin(l, &mut out);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub(crate) fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        self.layers.iter_mut().flat_map(|l| l.linears_mut())
    }

    pub(crate) fn linears(&self) -> impl Iterator<Item = &Linear> {
        self.layers.iter().flat_map(|l| {
            let a = &l.self_attn;
            let m = &l.mlp;
            [
                &a.q_proj,
                &a.k_proj,
                &a.v_proj,
                &a.o_proj,
                &m.gate_proj,
                &m.up_proj,
                &m.down_proj,
            ]
        })
    }

    /// Full-sequence forward for training / scoring: logits `[B, T, V]` fp32.
    ///
    /// `input_ids` `[B, T]` int64; `attention_mask` `[B, T]` (1 real token, 0 padding; any
    /// integer or bool kind). Left padding is supported: position ids are `cumsum(mask) - 1`
    /// clamped at 0. Logits at padded positions are finite but meaningless.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let h = self.hidden(input_ids, attention_mask, None)?;
        self.logits(&h)
    }

    /// Incremental forward: processes `input_ids` `[B, T]` after the positions already in
    /// `cache`, appends them to it, and returns logits `[B, T, V]` fp32. `attention_mask`
    /// `[B, T]` covers the new tokens only. Call under `tch::no_grad`.
    pub fn forward_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let h = self.hidden(input_ids, attention_mask, Some(cache))?;
        self.logits(&h)
    }

    /// Like [`forward_with_cache`](Self::forward_with_cache) but only returns the logits of the
    /// last position, `[B, V]` fp32 (skips the LM head elsewhere: what generation needs).
    pub fn forward_last_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let h = self.hidden(input_ids, attention_mask, Some(cache))?;
        let t = h.size3()?.1;
        self.logits(&h.f_select(1, t - 1)?)
    }

    /// Logits `[B, T, V]` fp32 computed by the LM head only where `rows` `[B, T]` is nonzero;
    /// every other row is 0. The same values as [`forward`](Self::forward) on those rows, for a
    /// fraction of the LM head's cost when most positions are prompt (training losses only read
    /// the target rows).
    pub fn forward_rows(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &Tensor,
    ) -> Result<Tensor> {
        if rows.size() != input_ids.size() {
            return Err(ModelError::BadInput(format!(
                "forward rows must be [batch, time] like input_ids, got {:?} and {:?}",
                rows.size(),
                input_ids.size()
            )));
        }
        let h = self.hidden(input_ids, attention_mask, None)?;
        let (b, t, d) = h.size3()?;
        let idx = rows
            .f_to_device(h.device())?
            .f_ne(0)?
            .f_reshape([-1])?
            .f_nonzero()?
            .f_squeeze_dim(1)?;
        let picked = self.logits(&h.f_reshape([b * t, d])?.f_index_select(0, &idx)?)?;
        let v = picked.size2()?.1;
        let full = Tensor::f_zeros([b * t, v], (Kind::Float, h.device()))?;
        Ok(full.f_index_copy(0, &idx, &picked)?.f_reshape([b, t, v])?)
    }

    /// Final-norm hidden states `[B, T, D]` in the parameter kind.
    pub fn hidden_states(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.hidden(input_ids, attention_mask, None)
    }

    /// The LM head on hidden states `[..., D]` (e.g. only the rows of target positions, which
    /// is what makes SFT on long prompts cheap): logits `[..., V]` fp32.
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        let y = match &self.lm_head {
            Some(l) => l.forward(h)?,
            None => h.f_linear::<Tensor>(&self.embed_tokens, None)?,
        };
        Ok(y.f_to_kind(Kind::Float)?)
    }

    fn hidden(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.size2().map_err(|_| {
            ModelError::BadInput(format!(
                "input_ids must be [B, T], got {:?}",
                input_ids.size()
            ))
        })?;
        if input_ids.kind() != Kind::Int64 {
            return Err(ModelError::BadInput(format!(
                "input_ids must be int64, got {:?}",
                input_ids.kind()
            )));
        }
        if attention_mask.size() != [b, t] {
            return Err(ModelError::BadInput(format!(
                "attention_mask shape {:?} differs from input_ids [{b}, {t}]",
                attention_mask.size()
            )));
        }
        if t == 0 {
            return Err(ModelError::BadInput("empty sequence (T = 0)".into()));
        }
        let dev = self.device();
        let kind = self.kind();
        let new_mask = attention_mask.f_to_kind(Kind::Int64)?.f_to_device(dev)?;
        let input_ids = input_ids.f_to_device(dev)?;
        let half = self.cfg.head_dim() / 2;

        let (past, key_ok, cos, sin) = match cache.as_deref_mut() {
            Some(c) => {
                if c.layers.len() != self.layers.len() {
                    return Err(ModelError::BadInput(format!(
                        "KvCache built for {} layers, model has {}",
                        c.layers.len(),
                        self.layers.len()
                    )));
                }
                let past = c.len;
                if past > 0 {
                    let cached = c.count.as_ref().map_or(-1, |n| n.size()[0]);
                    if cached != b {
                        return Err(ModelError::BadInput(format!(
                            "batch size {b} differs from the cached batch {cached}"
                        )));
                    }
                }
                let (pos, key_ok) = c.record_mask(&new_mask)?;
                let (cos, sin) = c.rope_at(&pos, &self.inv_freq, kind, past + t)?;
                (past, key_ok, cos, sin)
            }
            None => {
                // Positions: cumsum(mask) - 1, clamped at 0.
                let pos = new_mask
                    .f_cumsum(1, Kind::Int64)?
                    .f_sub_scalar(1)?
                    .f_clamp_min(0)?;
                let freqs = pos
                    .f_to_kind(Kind::Float)?
                    .f_unsqueeze(-1)?
                    .f_mul(&self.inv_freq.f_view([1, 1, -1])?)?;
                let (cos, sin) = rope_tables(&freqs, kind)?;
                let key_ok = new_mask.f_ne(0)?;
                (0, key_ok, cos.f_unsqueeze(1)?, sin.f_unsqueeze(1)?)
            }
        };
        let s = past + t;

        // Mask [B, 1, T, S]: causal AND key is real, OR the diagonal (a padded query attends to
        // itself so its row is never empty: no NaN in forward or backward).
        // Without padding, or with right padding only (training batches), every real query's
        // causal window holds real keys only: plain causal attention gives the same values
        // there (padded queries are meaningless either way) and skips the masked-out half.
        let causal_only = cache.is_none()
            && t > 1
            && bool::try_from(
                new_mask
                    .f_narrow(1, 1, t - 1)?
                    .f_le_tensor(&new_mask.f_narrow(1, 0, t - 1)?)?
                    .f_all()?,
            )?;
        let mask = if causal_only {
            None
        } else if t == 1 {
            // one new token per row (decoding): every cached key is causal; itself always
            let own = Tensor::f_ones([b, 1], (Kind::Bool, dev))?;
            let m = Tensor::f_cat(&[&key_ok.f_narrow(1, 0, past)?, &own], 1)?;
            Some(m.f_view([b, 1, 1, s])?)
        } else {
            let q_abs = Tensor::f_arange_start(past, s, (Kind::Int64, dev))?.f_view([t, 1])?;
            let k_abs = Tensor::f_arange(s, (Kind::Int64, dev))?.f_view([1, s])?;
            let causal = k_abs.f_le_tensor(&q_abs)?; // [T, S]
            let diag = k_abs.f_eq_tensor(&q_abs)?;
            Some(
                causal
                    .f_view([1, 1, t, s])?
                    .f_logical_and(&key_ok.f_view([b, 1, 1, s])?)?
                    .f_logical_or(&diag.f_view([1, 1, t, s])?)?,
            )
        };

        let ctx = Ctx {
            cos: &cos,
            sin: &sin,
            mask: mask.as_ref(),
            past,
            half,
        };
        // The cached path uses fused projections, built from the weights at its first call.
        let fused = match cache.as_deref_mut() {
            Some(c) => {
                if c.fused.len() != self.layers.len() {
                    c.fused = self
                        .layers
                        .iter()
                        .map(DecoderLayer::fuse)
                        .collect::<Result<_>>()?;
                }
                std::mem::take(&mut c.fused)
            }
            None => Vec::new(),
        };
        let mut h = Tensor::f_embedding(&self.embed_tokens, &input_ids, -1, false, false)?;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h, &ctx, cache.as_deref_mut().map(|c| (c, i)), fused.get(i))?;
        }
        if let Some(c) = cache {
            c.fused = fused;
            c.len = s;
        }
        self.norm.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_model(seed: i64) -> (nn::VarStore, Qwen2ForCausalLM) {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        // GQA (4 heads, 2 kv heads) and q/k/v biases: every part of the fused projections
        let cfg = Config {
            initializer_range: Some(0.2),
            ..Config::default()
        };
        let model = Qwen2ForCausalLM::new(&vs.root(), &cfg).unwrap();
        tch::no_grad(|| {
            for (name, t) in model.named_parameters() {
                if name.ends_with(".bias") {
                    // non-zero biases, so a misplaced one would show
                    t.shallow_clone().copy_(&(t.randn_like() * 0.3));
                }
            }
        });
        (vs, model)
    }

    /// Prefill of a left-padded batch then three single-token steps through a cache, against
    /// the uncached forward on the whole sequences (the three-projection path, computed
    /// independently of the fused one): the largest difference of any real position's logits.
    fn cached_vs_full(model: &Qwen2ForCausalLM, cache: &mut KvCache) -> f64 {
        let ids =
            Tensor::from_slice(&[0i64, 0, 5, 9, 17, 3, 8, 1, 2, 4, 0, 30, 31, 32, 33]).view([3, 5]);
        let mask =
            Tensor::from_slice(&[0i64, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1]).view([3, 5]);
        let extra = Tensor::from_slice(&[7i64, 11, 13, 40, 41, 42, 100, 101, 102]).view([3, 3]);
        let all_ids = Tensor::cat(&[&ids, &extra], 1);
        let all_mask = Tensor::cat(&[&mask, &extra.ones_like()], 1);
        let _g = tch::no_grad_guard();
        let full = model.forward(&all_ids, &all_mask).unwrap();
        let mut got = vec![model.forward_with_cache(&ids, &mask, cache).unwrap()];
        for j in 0..3 {
            let tok = extra.narrow(1, j, 1);
            got.push(
                model
                    .forward_with_cache(&tok, &tok.ones_like(), cache)
                    .unwrap(),
            );
        }
        let got = Tensor::cat(&got, 1);
        let real = all_mask.unsqueeze(-1).to_kind(Kind::Float);
        ((got - full).abs() * real).max().double_value(&[])
    }

    #[test]
    fn fused_cached_path_equals_the_uncached_forward_with_and_without_lora() {
        let (_vs, mut model) = tiny_model(5);
        let mut cache = model.new_kv_cache(4);
        let d = cached_vs_full(&model, &mut cache);
        assert!(d < 1e-5, "fused cached vs uncached: {d}");
        assert!(cache
            .fused
            .iter()
            .all(|f| f.qkv.is_some() && f.gate_up.is_some()));

        // adapters with non-zero B on q_proj and up_proj of layer 0: those stay unfused
        tch::manual_seed(9);
        for lin in model.layers[0].linears_mut() {
            if lin.name.ends_with("q_proj") || lin.name.ends_with("up_proj") {
                let (i, o) = lin.in_out();
                lin.lora = Some(LoraLayer {
                    a: Tensor::randn([2, i], (Kind::Float, Device::Cpu)),
                    b: Tensor::randn([o, 2], (Kind::Float, Device::Cpu)) * 0.1,
                    scaling: 0.5,
                });
            }
        }
        let mut cache = model.new_kv_cache(8);
        let d = cached_vs_full(&model, &mut cache);
        assert!(d < 1e-5, "cached with LoRA vs uncached: {d}");
        assert!(cache.fused[0].qkv.is_none() && cache.fused[0].gate_up.is_none());
        assert!(cache.fused[1].qkv.is_some() && cache.fused[1].gate_up.is_some());
    }

    #[test]
    fn a_cleared_cache_sees_changed_weights() {
        let (_vs, model) = tiny_model(6);
        let mut cache = model.new_kv_cache(16);
        assert!(cached_vs_full(&model, &mut cache) < 1e-5);
        let ids = Tensor::from_slice(&[5i64, 9, 17, 3]).view([1, 4]);
        let before = tch::no_grad(|| model.forward(&ids, &ids.ones_like()).unwrap());
        tch::no_grad(|| {
            for (_, t) in model.named_parameters() {
                let _ = t.shallow_clone().g_mul_scalar_(1.1);
            }
        });
        let after = tch::no_grad(|| model.forward(&ids, &ids.ones_like()).unwrap());
        let moved = (after - before).abs().max().double_value(&[]);
        assert!(
            moved > 0.1,
            "the weight change moved the logits by only {moved}"
        );
        cache.clear();
        // the logits grew with the weights: a relative tolerance of ~1e-6
        let d = cached_vs_full(&model, &mut cache);
        assert!(d < 1e-4, "after a weight change and clear(): {d}");
    }

    /// Shape of a hub Qwen1.5 config (top-level rope_theta, sliding window off, list EOS).
    const QWEN15: &str = r#"{
      "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
      "eos_token_id": [151645, 151643], "hidden_act": "silu", "hidden_size": 1024,
      "initializer_range": 0.02, "intermediate_size": 2816, "max_position_embeddings": 32768,
      "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 16,
      "num_hidden_layers": 24, "num_key_value_heads": 16, "rms_norm_eps": 1e-06,
      "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
      "torch_dtype": "bfloat16", "transformers_version": "4.37.0", "use_cache": true,
      "use_sliding_window": false, "vocab_size": 151936, "rope_scaling": null
    }"#;

    #[test]
    fn parses_hub_style_configs() {
        let c = Config::from_json_str(QWEN15).unwrap();
        c.validate().unwrap();
        assert_eq!(c.rope_theta(), 1e6);
        assert_eq!(c.eos_token_ids(), vec![151645, 151643]);
        assert!(c.qkv_bias() && !c.o_bias());
        assert_eq!(c.head_dim(), 64);
        assert_eq!(c.num_kv_heads(), 16);
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);

        let mut v: serde_json::Value = serde_json::from_str(QWEN15).unwrap();
        v["rope_scaling"] = serde_json::json!({"type": "yarn", "factor": 4.0});
        let c: Config = serde_json::from_value(v).unwrap();
        assert!(matches!(c.validate(), Err(ModelError::Unsupported(_))));

        let mut v: serde_json::Value = serde_json::from_str(QWEN15).unwrap();
        v["hidden_act"] = "gelu".into();
        let c: Config = serde_json::from_value(v).unwrap();
        assert!(matches!(c.validate(), Err(ModelError::Unsupported(_))));

        let llama = r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}"#;
        let c = Config::from_json_str(llama).unwrap();
        c.validate().unwrap();
        assert!(!c.qkv_bias());
        assert_eq!(c.rope_theta(), 500000.0);
        assert_eq!(c.num_kv_heads(), 2);
    }
}
