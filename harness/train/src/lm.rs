//! Glue to `kidbench-model`: building from-scratch presets, loading local HF models, saving,
//! the trainer's [`CausalLm`] view, device and dtype selection and batched greedy generation.
//!
//! `--dtype bf16` (the default on CUDA) makes every model of a run bf16, on CPU too: forwards,
//! backward and generation run in bf16, logits come out fp32 (the model casts them), and the
//! optimizer keeps fp32 masters ([`crate::optim`]).

use std::path::Path;

use anyhow::Context;
use kidbench_model::{
    checkpoint, Config, GenerationConfig, GenerationOutput, Qwen2ForCausalLM, Sampling,
};
use kidbench_tokenizer::SqlTokenizer;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::parts::CausalLm;
use crate::presets::{scratch_config_json, Resolved, ScratchSpec};

/// A model and the store holding its parameters.
pub struct Lm {
    pub vs: VarStore,
    pub model: Qwen2ForCausalLM,
}

impl CausalLm for Qwen2ForCausalLM {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> anyhow::Result<Tensor> {
        Qwen2ForCausalLM::forward(self, input_ids, attention_mask).map_err(anyhow::Error::from)
    }

    fn forward_rows(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &Tensor,
    ) -> anyhow::Result<Tensor> {
        Qwen2ForCausalLM::forward_rows(self, input_ids, attention_mask, rows)
            .map_err(anyhow::Error::from)
    }

    /// KV-cached batched generation; `max_new_tokens` is cut so that the longest prompt plus its
    /// continuation fits the model's positions.
    fn generate(
        &self,
        prompts: &[Vec<i64>],
        cfg: &GenerationConfig,
    ) -> anyhow::Result<GenerationOutput> {
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0) as i64;
        let room = self.config().max_position_embeddings - longest;
        let mut cfg = cfg.clone();
        cfg.max_new_tokens = cfg.max_new_tokens.min(room.max(1));
        kidbench_model::generate_from_prompts(self, prompts, &cfg).map_err(anyhow::Error::from)
    }
}

/// `auto` | `cpu` | `cuda`.
pub fn parse_device(s: &str) -> anyhow::Result<Device> {
    match s.trim().to_ascii_lowercase().as_str() {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            kidbench_model::load_cuda_runtime();
            Ok(kidbench_model::best_device())
        }
        "cuda" | "gpu" => {
            kidbench_model::load_cuda_runtime();
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                anyhow::bail!(
                    "--device cuda: CUDA is not available on this machine (use auto or cpu)"
                )
            }
        }
        other => anyhow::bail!("unknown device '{other}'; use auto, cpu or cuda"),
    }
}

/// A fresh, seeded from-scratch model whose vocabulary is the tokenizer's, in the device's
/// default kind ([`checkpoint::default_kind`]).
pub fn build_scratch(
    spec: &ScratchSpec,
    tok: &SqlTokenizer,
    device: Device,
    seed: u64,
) -> anyhow::Result<Lm> {
    build_scratch_as(spec, tok, device, checkpoint::default_kind(device), seed)
}

/// [`build_scratch`] with parameters of `kind`. The weights are drawn in fp32 and then
/// converted, so a bf16 model of a seed is the fp32 model of that seed rounded to bf16.
pub fn build_scratch_as(
    spec: &ScratchSpec,
    tok: &SqlTokenizer,
    device: Device,
    kind: Kind,
    seed: u64,
) -> anyhow::Result<Lm> {
    let json = scratch_config_json(
        spec,
        tok.vocab_size() as i64,
        tok.bos_id().unwrap_or(tok.eos_id()),
        tok.eos_id(),
    );
    let cfg: Config = serde_json::from_value(json)
        .with_context(|| format!("building the config of preset {}", spec.name))?;
    tch::manual_seed(seed as i64);
    let mut vs = VarStore::new(device);
    let model = Qwen2ForCausalLM::new(&vs.root(), &cfg)
        .with_context(|| format!("building model for preset {}", spec.name))?;
    if kind != Kind::Float {
        // converts every variable in place (`set_data`): the model's handles see the new kind
        vs.set_kind(kind);
    }
    Ok(Lm { vs, model })
}

/// Loads a saved checkpoint folder (HF layout) in fp32 on CPU, bf16 on CUDA.
pub fn load_dir(dir: &Path, device: Device) -> anyhow::Result<Lm> {
    load_dir_as(dir, device, checkpoint::default_kind(device))
}

/// Loads a saved checkpoint folder (HF layout) with parameters of `kind` (the file's dtype is
/// converted).
pub fn load_dir_as(dir: &Path, device: Device, kind: Kind) -> anyhow::Result<Lm> {
    let loaded = checkpoint::load(dir, device, kind)
        .with_context(|| format!("loading model from {}", dir.display()))?;
    Ok(Lm {
        vs: loaded.vs,
        model: loaded.model,
    })
}

/// The student/teacher model of a resolved preset, before training, in the device's default
/// kind.
pub fn initial_model(
    resolved: &Resolved,
    tok: &SqlTokenizer,
    device: Device,
    seed: u64,
) -> anyhow::Result<Lm> {
    initial_model_as(
        resolved,
        tok,
        device,
        checkpoint::default_kind(device),
        seed,
    )
}

/// [`initial_model`] with parameters of `kind` (`--dtype`).
pub fn initial_model_as(
    resolved: &Resolved,
    tok: &SqlTokenizer,
    device: Device,
    kind: Kind,
    seed: u64,
) -> anyhow::Result<Lm> {
    match resolved {
        Resolved::Scratch(spec) => build_scratch_as(spec, tok, device, kind, seed),
        Resolved::Local { dir, .. } => load_dir_as(dir, device, kind),
    }
}

/// `--dtype` (fp32 | bf16; None: the device's default) as a parameter kind.
pub fn parse_dtype(dtype: Option<&str>, device: Device) -> anyhow::Result<kidbench_model::Dtype> {
    match dtype {
        None => Ok(kidbench_model::Dtype::default_for(device)),
        Some(s) => kidbench_model::Dtype::parse(s).map_err(|e| anyhow::anyhow!("--dtype {s}: {e}")),
    }
}

pub fn save(dir: &Path, lm: &Lm) -> anyhow::Result<()> {
    checkpoint::save(dir, &lm.model).with_context(|| format!("saving model to {}", dir.display()))
}

/// Result of [`generate_sql`]: one SQL line per prompt, in input order.
pub struct Generated {
    pub sql: Vec<String>,
    pub seconds: f64,
    pub new_tokens: usize,
}

/// Collapses a generated query onto one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Greedy, KV-cached, batched decoding of `prompts` (token ids, BOS + prompt). Prompts are sorted
/// by length so batches carry little padding; outputs come back in input order.
pub fn generate_sql(
    model: &Qwen2ForCausalLM,
    tok: &SqlTokenizer,
    prompts: &[Vec<i64>],
    batch_size: usize,
    max_new_tokens: i64,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<Generated> {
    let start = std::time::Instant::now();
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
    let cfg = GenerationConfig {
        max_new_tokens,
        sampling: Sampling::Greedy,
        eos_token_ids: tok.stop_ids(),
        pad_token_id: tok.pad_id(),
        seed: 0,
        return_logprobs: false,
    };
    let mut out = vec![String::new(); prompts.len()];
    let mut new_tokens = 0usize;
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<Vec<i64>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let g = kidbench_model::generate_from_prompts(model, &batch, &cfg)
            .context("generating predictions")?;
        for (&i, toks) in chunk.iter().zip(&g.tokens) {
            new_tokens += toks.len();
            out[i] = one_line(&tok.decode(toks).context("decoding a prediction")?);
        }
        if let Some(p) = progress {
            p.inc(chunk.len() as u64);
        }
    }
    Ok(Generated {
        sql: out,
        seconds: start.elapsed().as_secs_f64(),
        new_tokens,
    })
}
