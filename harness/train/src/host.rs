//! The trainer's side of the plugin boundary: [`TrainHost`] implements
//! [`kidbench_plugin_host::HostServices`] for the real student and teacher, and times every call.
//!
//! - `forward(model, ids, mask, grad)`: the student with grad only when `grad` (else under
//!   `no_grad`), the teacher always under `no_grad`; inputs are moved to the model's device.
//! - `sample(model, spec)`: the current micro-batch's prompts (BOS + prompt of each example)
//!   completed by the batched KV-cache generator (`temperature` 0 is greedy; `top_k` 0 and
//!   `top_p` 1 are off; stops at the tokenizer's stop ids; `max_new_tokens` from the spec),
//!   under `no_grad`, seeded from the micro-batch's `StepInfo::seed`, the model and the call's
//!   index within the micro-batch (reproducible). The result is right padded and laid out like
//!   [`crate::data::collate`]: `labels`/`loss_mask` cover the generated tokens, the EOS included
//!   when one was produced, never the prompt.
//!
//! Logits leave the host as fp32 ([`fp32_logits`]) whatever the models compute in (`--dtype
//! bf16`), so the plugins' losses and reductions are fp32.
//!
//! `norm_tokens` of a sampled batch: its own generated-target count times
//! `global examples / micro-batch examples`. With one micro-batch per step (the default) that is
//! exactly the sampled batch's own target count, so a sampled loss is a per-token mean like a
//! ground-truth one; with gradient accumulation it estimates the global count from this
//! micro-batch (the others are not sampled yet), so the sum over micro-batches stays a
//! per-token mean of the global batch in expectation.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use kidbench_model::{GenerationConfig, Sampling};
use kidbench_plugin_host::{
    BatchTensors, HostServices, Model, SampleSpec, SampledBatch, SpecialTokens,
};
use tch::{Device, Kind, Tensor};

use crate::data::{collate, Example};
use crate::parts::{CausalLm, Timings, TokenCounts};

/// The token ids the host needs: padding, EOS, the mask token (kid) and the generator's stop ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIds {
    pub pad: i64,
    pub eos: i64,
    /// `-1`: the vocabulary has no mask token.
    pub mask: i64,
    /// Generation stops after any of these (EOS first).
    pub stop: Vec<i64>,
}

impl TokenIds {
    /// Only a padding id (EOS and stop ids unknown, no mask): enough for ground-truth methods.
    pub fn pad_only(pad: i64) -> Self {
        TokenIds {
            pad,
            eos: -1,
            mask: -1,
            stop: Vec::new(),
        }
    }

    pub fn from_tokenizer(tok: &kidbench_tokenizer::SqlTokenizer) -> Self {
        TokenIds {
            pad: tok.pad_id(),
            eos: tok.eos_id(),
            mask: tok.mask_id(),
            stop: tok.stop_ids(),
        }
    }

    /// What a plugin sees.
    pub fn special(&self) -> SpecialTokens {
        SpecialTokens {
            pad: self.pad,
            eos: self.eos,
            mask: self.mask,
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `StepInfo::seed`: a pure function of (run seed, step, micro-batch).
pub fn step_seed(run_seed: u64, step: u64, micro_batch: u32) -> u64 {
    splitmix64(splitmix64(splitmix64(run_seed ^ 0x6B69_6462_656E_6368) ^ step) ^ micro_batch as u64)
}

/// Host services for one training run: the models, the current micro-batch, and the timings.
pub struct TrainHost<'a> {
    student: &'a dyn CausalLm,
    teacher: Option<&'a dyn CausalLm>,
    tokens: &'a TokenIds,
    device: Device,
    /// BOS + prompt of each example of the current micro-batch.
    prompts: Vec<Vec<i64>>,
    /// Global-batch examples / micro-batch examples (scales a sampled batch's target count).
    norm_scale: f64,
    seed: u64,
    /// Sampling calls made in the current micro-batch (each gets its own seed).
    sample_calls: u64,
    /// Time per part (student, teacher and sampling are filled by the calls here).
    pub timings: Timings,
    /// Tokens per kind of model call (the compute ledger).
    pub counts: TokenCounts,
    /// `DataSource::FixedTeacherSamples`: the teacher's completion of each prompt, and the
    /// sampling settings they were made with (`None`: not made yet).
    fixed: HashMap<Vec<i64>, Vec<i64>>,
    fixed_spec: Option<SampleSpec>,
}

impl<'a> TrainHost<'a> {
    pub fn new(
        student: &'a dyn CausalLm,
        teacher: Option<&'a dyn CausalLm>,
        tokens: &'a TokenIds,
        device: Device,
    ) -> Self {
        TrainHost {
            student,
            teacher,
            tokens,
            device,
            prompts: Vec::new(),
            norm_scale: 1.0,
            seed: 0,
            sample_calls: 0,
            timings: Timings::default(),
            counts: TokenCounts::default(),
            fixed: HashMap::new(),
            fixed_spec: None,
        }
    }

    /// Makes `examples` the micro-batch that `sample` completes; `global_examples` is the size
    /// of the whole global batch; `seed` is the micro-batch's `StepInfo::seed`.
    pub fn set_micro_batch(&mut self, examples: &[&Example], global_examples: usize, seed: u64) {
        self.prompts = examples
            .iter()
            .map(|e| e.input_ids[..e.prompt_len.min(e.input_ids.len())].to_vec())
            .collect();
        self.norm_scale = global_examples.max(1) as f64 / examples.len().max(1) as f64;
        self.seed = seed;
        self.sample_calls = 0;
    }

    /// Seconds spent in student, teacher and sampling calls so far.
    pub fn model_seconds(&self) -> f64 {
        self.timings.student_forward_backward + self.timings.teacher_forward + self.timings.sampling
    }

    fn model(&self, model: Model) -> anyhow::Result<&'a dyn CausalLm> {
        match model {
            Model::Student => Ok(self.student),
            Model::Teacher => self
                .teacher
                .context("this run has no teacher model (the method asked for the teacher)"),
        }
    }

    /// The sampling settings of `spec` as a generator configuration.
    pub fn generation_config(&self, model: Model, spec: &SampleSpec) -> GenerationConfig {
        let sampling = if spec.temperature <= 0.0 {
            Sampling::Greedy
        } else {
            Sampling::Sample {
                temperature: spec.temperature,
                top_k: (spec.top_k > 0).then_some(spec.top_k as i64),
                top_p: (spec.top_p < 1.0).then_some(spec.top_p),
            }
        };
        let which = match model {
            Model::Student => 1u64,
            Model::Teacher => 2u64,
        };
        GenerationConfig {
            max_new_tokens: spec.max_new_tokens as i64,
            sampling,
            eos_token_ids: self.tokens.stop.clone(),
            pad_token_id: self.tokens.pad,
            seed: splitmix64(self.seed ^ splitmix64((self.sample_calls << 2) | which)),
            return_logprobs: false,
        }
    }
}

impl TrainHost<'_> {
    /// The host's own forward on a method's batch (`DataRequest::student_logits` /
    /// `teacher_logits`): logits exact on the batch's loss rows, the LM head skipped elsewhere
    /// (those rows are 0; the plugin API documents it).
    pub fn batch_forward(
        &mut self,
        model: Model,
        batch: &BatchTensors<'_>,
        grad: bool,
    ) -> anyhow::Result<Tensor> {
        self.timed_forward(
            model,
            batch.input_ids,
            batch.attention_mask,
            grad,
            Some(batch.loss_mask),
        )
    }

    fn timed_forward(
        &mut self,
        model: Model,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        grad: bool,
        rows: Option<&Tensor>,
    ) -> anyhow::Result<Tensor> {
        anyhow::ensure!(
            input_ids.dim() == 2 && input_ids.size() == attention_mask.size(),
            "forward needs input_ids and attention_mask of the same [batch, time] shape, got {:?} and {:?}",
            input_ids.size(),
            attention_mask.size()
        );
        let m = self.model(model)?;
        let ids = input_ids.to_device(self.device);
        let mask = attention_mask.to_device(self.device);
        let t = Instant::now();
        let run = || match rows {
            Some(r) => m.forward_rows(&ids, &mask, r),
            None => m.forward(&ids, &mask),
        };
        let out = if model == Model::Student && grad {
            run()
        } else {
            tch::no_grad(run)
        }
        .and_then(fp32_logits)
        .with_context(|| format!("{model:?} forward"));
        let s = t.elapsed().as_secs_f64();
        let n = mask
            .f_sum(tch::Kind::Int64)
            .and_then(|t| t.f_int64_value(&[]))
            .unwrap_or(0)
            .max(0) as u64;
        match model {
            Model::Student => {
                self.timings.student_forward_backward += s;
                if grad {
                    self.counts.student_backward += n;
                } else {
                    self.counts.student_forward += n;
                }
            }
            Model::Teacher => {
                self.timings.teacher_forward += s;
                self.counts.teacher_forward += n;
            }
        }
        out
    }
}

/// Logits as fp32, whatever the model computes in: every log-softmax, divergence and
/// reduction of the host and the plugins runs in fp32 (a bf16 model's logits are cast here; the
/// cast is differentiable, so the gradient flows back into the bf16 model).
pub fn fp32_logits(logits: Tensor) -> anyhow::Result<Tensor> {
    if logits.kind() == Kind::Float {
        return Ok(logits);
    }
    logits
        .f_to_kind(Kind::Float)
        .context("casting logits to fp32")
}

impl HostServices for TrainHost<'_> {
    fn forward(
        &mut self,
        model: Model,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: Option<&Tensor>,
        grad: bool,
    ) -> anyhow::Result<Tensor> {
        self.timed_forward(model, input_ids, attention_mask, grad, rows)
    }

    fn sample(&mut self, model: Model, spec: &SampleSpec) -> anyhow::Result<SampledBatch> {
        anyhow::ensure!(!self.prompts.is_empty(), "no micro-batch to sample for");
        let cfg = self.generation_config(model, spec);
        self.sample_calls += 1;
        let prompts = std::mem::take(&mut self.prompts);
        let t = Instant::now();
        let out = self.generate(model, &prompts, spec, &cfg);
        self.timings.sampling += t.elapsed().as_secs_f64();
        self.prompts = prompts;
        let generated = out?;
        let n: u64 = generated.iter().map(|t| t.len() as u64).sum();
        match model {
            Model::Student => self.counts.student_sampled += n,
            Model::Teacher => self.counts.teacher_sampled += n,
        }
        self.completed(&generated)
    }
}

impl TrainHost<'_> {
    /// `prompts` completed by `model` with `cfg` (under `no_grad`), one token list per prompt.
    fn generate(
        &self,
        model: Model,
        prompts: &[Vec<i64>],
        spec: &SampleSpec,
        cfg: &GenerationConfig,
    ) -> anyhow::Result<Vec<Vec<i64>>> {
        anyhow::ensure!(
            spec.max_new_tokens >= 1,
            "sampling needs max_new_tokens >= 1"
        );
        anyhow::ensure!(
            spec.temperature.is_finite() && spec.top_p > 0.0,
            "bad sampling settings {spec:?}"
        );
        let m = self.model(model)?;
        let out = tch::no_grad(|| m.generate(prompts, cfg))
            .with_context(|| format!("sampling from the {model:?}"))?;
        anyhow::ensure!(
            out.tokens.len() == prompts.len(),
            "the generator returned {} sequences for {} prompts",
            out.tokens.len(),
            prompts.len()
        );
        Ok(out.tokens)
    }

    /// The current micro-batch's prompts followed by `generated` (one list per prompt), laid
    /// out like `collate`, with the sampled batch's `norm_tokens`.
    fn completed(&self, generated: &[Vec<i64>]) -> anyhow::Result<SampledBatch> {
        let examples: Vec<Example> = self
            .prompts
            .iter()
            .zip(generated)
            .map(|(p, gen)| {
                let mut ids = p.clone();
                ids.extend_from_slice(gen);
                Example {
                    input_ids: ids,
                    prompt_len: p.len(),
                }
            })
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let b = collate(&refs, self.tokens.pad, self.device)?;
        Ok(SampledBatch {
            input_ids: b.input_ids,
            attention_mask: b.attention_mask,
            labels: b.labels,
            loss_mask: b.loss_mask,
            norm_tokens: (b.target_tokens as f64 * self.norm_scale).max(1.0),
        })
    }

    /// Whether [`Self::precompute_teacher`] has made the fixed teacher samples.
    pub fn fixed_teacher_ready(&self) -> bool {
        self.fixed_spec.is_some()
    }

    /// `DataSource::FixedTeacherSamples`, first request: completes each distinct prompt of
    /// `visits` (every example the run will train on, in visit order) once with the teacher,
    /// `chunk` prompts per generation, each chunk seeded from `seed` and its index alone (so
    /// the completions do not depend on the step that asked first, and a resumed run makes the
    /// same ones). Timed as `Timings::precompute`; the tokens count as `teacher_precomputed`.
    /// A later call does nothing ([`Self::fixed_teacher_batch`] refuses another `spec`).
    pub fn precompute_teacher(
        &mut self,
        visits: &[&Example],
        chunk: usize,
        spec: &SampleSpec,
        seed: u64,
    ) -> anyhow::Result<()> {
        if self.fixed_spec.is_some() {
            return Ok(());
        }
        let t = Instant::now();
        let mut seen = std::collections::HashSet::new();
        let prompts: Vec<Vec<i64>> = visits
            .iter()
            .map(|e| e.input_ids[..e.prompt_len.min(e.input_ids.len())].to_vec())
            .filter(|p| seen.insert(p.clone()))
            .collect();
        let (saved_seed, saved_calls) = (self.seed, self.sample_calls);
        let mut result = Ok(());
        let mut made = 0u64;
        for (i, part) in prompts.chunks(chunk.max(1)).enumerate() {
            self.seed = step_seed(seed ^ 0x6669_7865_6474_6368, i as u64, 0);
            self.sample_calls = 0;
            let cfg = self.generation_config(Model::Teacher, spec);
            match self.generate(Model::Teacher, part, spec, &cfg) {
                Ok(gens) => {
                    for (p, g) in part.iter().zip(gens) {
                        made += g.len() as u64;
                        self.fixed.insert(p.clone(), g);
                    }
                }
                Err(e) => {
                    result = Err(e.context("precomputing the fixed teacher samples"));
                    break;
                }
            }
        }
        (self.seed, self.sample_calls) = (saved_seed, saved_calls);
        self.timings.precompute += t.elapsed().as_secs_f64();
        result?;
        // assigned, not added: a resumed run makes the same samples again
        self.counts.teacher_precomputed = made;
        self.fixed_spec = Some(*spec);
        Ok(())
    }

    /// The current micro-batch completed by the fixed teacher samples
    /// ([`Self::precompute_teacher`] first).
    pub fn fixed_teacher_batch(&self, spec: &SampleSpec) -> anyhow::Result<SampledBatch> {
        anyhow::ensure!(!self.prompts.is_empty(), "no micro-batch to sample for");
        let made = self
            .fixed_spec
            .as_ref()
            .context("the fixed teacher samples are not made yet")?;
        anyhow::ensure!(
            made == spec,
            "the fixed teacher samples were made with {made:?}; a request with {spec:?} cannot reuse them"
        );
        let generated = self
            .prompts
            .iter()
            .map(|p| {
                self.fixed.get(p).cloned().with_context(|| {
                    "a prompt of this micro-batch has no precomputed teacher sample".to_string()
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.completed(&generated)
    }
}
