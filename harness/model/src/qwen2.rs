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
}

impl RmsNorm {
    fn new(p: &nn::Path, dim: i64, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            weight: p.f_ones("weight", &[dim])?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let kind = x.kind();
        let xf = x.f_to_kind(Kind::Float)?;
        let var = xf
            .f_pow_tensor_scalar(2)?
            .f_mean_dim(-1, true, Kind::Float)?;
        let normed = xf.f_mul(&var.f_add_scalar(self.eps)?.f_rsqrt()?)?;
        Ok(self.weight.f_mul(&normed.f_to_kind(kind)?)?)
    }
}

fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let half = x.size().last().copied().unwrap_or(0) / 2;
    let x1 = x.f_narrow(-1, 0, half)?;
    let x2 = x.f_narrow(-1, half, half)?;
    Ok(Tensor::f_cat(&[x2.f_neg()?, x1], -1)?)
}

fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    Ok(x.f_mul(cos)?.f_add(&rotate_half(x)?.f_mul(sin)?)?)
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
/// stores, per layer, preallocated key/value buffers plus the attention mask of every cached
/// position, so left padding in the prompt stays masked for all later steps. It is meant for
/// inference under `tch::no_grad` (it writes into its buffers in place). `clear()` empties it
/// for reuse with a new batch (buffers are kept when the batch shape matches).
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    /// `[B, len]` int64 mask (1 real, 0 pad) of the cached positions.
    mask: Option<Tensor>,
    len: i64,
    capacity: i64,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers; `capacity` positions are allocated
    /// on first use (it grows if exceeded). Use prompt length + max new tokens.
    pub fn new(num_layers: usize, capacity: i64) -> Self {
        KvCache {
            layers: (0..num_layers).map(|_| None).collect(),
            mask: None,
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

    /// Forgets every cached position.
    pub fn clear(&mut self) {
        self.len = 0;
        self.mask = None;
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
    sin: &'a Tensor,
    /// Boolean `[B, 1, T, S]`: true where a query may attend a key.
    mask: &'a Tensor,
    past: i64,
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

    fn forward(
        &self,
        x: &Tensor,
        ctx: &Ctx,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.size3()?;
        let shape = |y: Tensor, heads: i64| -> Result<Tensor> {
            Ok(y.f_view([b, t, heads, self.head_dim])?.f_transpose(1, 2)?)
        };
        let q = shape(self.q_proj.forward(x)?, self.n_heads)?;
        let k = shape(self.k_proj.forward(x)?, self.n_kv)?;
        let v = shape(self.v_proj.forward(x)?, self.n_kv)?;
        let q = apply_rope(&q, ctx.cos, ctx.sin)?;
        let k = apply_rope(&k, ctx.cos, ctx.sin)?;
        let (k, v) = match cache {
            Some((c, layer)) => c.append(layer, ctx.past, &k, &v)?,
            None => (k, v),
        };
        let k = self.repeat_kv(k)?;
        let v = self.repeat_kv(v)?;
        let y = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(ctx.mask),
            0.0,
            false,
            None,
            false,
        )?;
        let y =
            y.f_transpose(1, 2)?
                .f_contiguous()?
                .f_view([b, t, self.n_heads * self.head_dim])?;
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

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate_proj.forward(x)?.f_silu()?;
        self.down_proj.forward(&g.f_mul(&self.up_proj.forward(x)?)?)
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

    fn forward(
        &self,
        x: &Tensor,
        ctx: &Ctx,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let h = x.f_add(&self.self_attn.forward(
            &self.input_layernorm.forward(x)?,
            ctx,
            cache,
        )?)?;
        Ok(h.f_add(
            &self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?,
        )?)
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

        let (past, full_mask) = match cache.as_deref() {
            Some(c) if c.len > 0 => {
                let pm = c
                    .mask
                    .as_ref()
                    .ok_or_else(|| ModelError::BadInput("KvCache has length but no mask".into()))?;
                if pm.size()[0] != b {
                    return Err(ModelError::BadInput(format!(
                        "batch size {b} differs from the cached batch {}",
                        pm.size()[0]
                    )));
                }
                (c.len, Tensor::f_cat(&[pm, &new_mask], 1)?)
            }
            _ => (0, new_mask.shallow_clone()),
        };
        if let Some(c) = cache.as_deref() {
            if c.layers.len() != self.layers.len() {
                return Err(ModelError::BadInput(format!(
                    "KvCache built for {} layers, model has {}",
                    c.layers.len(),
                    self.layers.len()
                )));
            }
        }
        let s = past + t;

        // Positions: cumsum(mask) - 1 over the whole sequence, clamped at 0; keep the new part.
        let pos = full_mask
            .f_cumsum(1, Kind::Int64)?
            .f_sub_scalar(1)?
            .f_clamp_min(0)?
            .f_narrow(1, past, t)?;
        let freqs = pos
            .f_to_kind(Kind::Float)?
            .f_unsqueeze(-1)?
            .f_mul(&self.inv_freq.f_view([1, 1, -1])?)?;
        let emb = Tensor::f_cat(&[&freqs, &freqs], -1)?;
        let cos = emb.f_cos()?.f_to_kind(kind)?.f_unsqueeze(1)?;
        let sin = emb.f_sin()?.f_to_kind(kind)?.f_unsqueeze(1)?;

        // Mask [B, 1, T, S]: causal AND key is real, OR the diagonal (a padded query attends to
        // itself so its row is never empty: no NaN in forward or backward).
        let q_abs = Tensor::f_arange_start(past, s, (Kind::Int64, dev))?.f_view([t, 1])?;
        let k_abs = Tensor::f_arange(s, (Kind::Int64, dev))?.f_view([1, s])?;
        let causal = k_abs.f_le_tensor(&q_abs)?; // [T, S]
        let diag = k_abs.f_eq_tensor(&q_abs)?;
        let key_ok = full_mask.f_ne(0)?.f_view([b, 1, 1, s])?;
        let mask = causal
            .f_view([1, 1, t, s])?
            .f_logical_and(&key_ok)?
            .f_logical_or(&diag.f_view([1, 1, t, s])?)?;

        let ctx = Ctx {
            cos: &cos,
            sin: &sin,
            mask: &mask,
            past,
        };
        let mut h = Tensor::f_embedding(&self.embed_tokens, &input_ids, -1, false, false)?;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h, &ctx, cache.as_deref_mut().map(|c| (c, i)))?;
        }
        if let Some(c) = cache {
            c.mask = Some(full_mask);
            c.len = s;
        }
        self.norm.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
