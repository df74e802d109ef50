//! A toy host for tests and as a reference of the trainer's side of a step: "models" are lookup
//! tables (`logits[b, t] = table[input_ids[b, t]]`), so the logits of any token tensor are cheap,
//! deterministic, and (for the student) differentiable.

use anyhow::Context;
use tch::{Kind, Tensor};

use crate::{
    BatchTensors, DataSource, HostServices, LossInput, Model, PluginError, PluginMethod,
    SampleSpec, SampledBatch, SpecialTokens, StepInfo,
};

/// Label of positions without loss.
pub const IGNORE: i64 = -100;

/// Right-padded batch of `(tokens, prompt_len)` examples (tokens = BOS + prompt + target + EOS),
/// laid out as the trainer's `collate` does. `norm_tokens` is this batch's target count.
pub fn collate(examples: &[(Vec<i64>, usize)], pad: i64) -> anyhow::Result<SampledBatch> {
    let t = examples.iter().map(|e| e.0.len()).max().unwrap_or(0);
    anyhow::ensure!(
        !examples.is_empty() && t >= 2,
        "need examples of two tokens or more"
    );
    let b = examples.len();
    let mut ids = vec![pad; b * t];
    let mut att = vec![0i64; b * t];
    let mut labels = vec![IGNORE; b * t];
    let mut n = 0usize;
    for (i, (toks, prompt_len)) in examples.iter().enumerate() {
        anyhow::ensure!(
            *prompt_len >= 1 && *prompt_len <= toks.len(),
            "bad prompt_len"
        );
        ids[i * t..i * t + toks.len()].copy_from_slice(toks);
        att[i * t..i * t + toks.len()]
            .iter_mut()
            .for_each(|a| *a = 1);
        for p in (prompt_len - 1)..(toks.len() - 1) {
            labels[i * t + p] = toks[p + 1];
            n += 1;
        }
    }
    let shape = [b as i64, t as i64];
    let labels = Tensor::from_slice(&labels).view(shape);
    Ok(SampledBatch {
        input_ids: Tensor::from_slice(&ids).view(shape),
        attention_mask: Tensor::from_slice(&att).view(shape),
        loss_mask: labels.ne(IGNORE).to_kind(Kind::Float),
        labels,
        norm_tokens: n as f64,
    })
}

/// A `[vocab, vocab]` table of pseudo-random values in `[-scale·√3, scale·√3]` (unit variance
/// times `scale`) from `seed` alone. Not torch's global generator: tests run in parallel
/// threads and would otherwise draw from one shared stream in any order.
pub(crate) fn toy_table(vocab: i64, seed: u64, scale: f64) -> Tensor {
    let mut z = seed.wrapping_add(0x2545_f491_4f6c_dd1d);
    let values: Vec<f32> = (0..vocab * vocab)
        .map(|_| {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^= x >> 31;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            ((u * 2.0 - 1.0) * 3f64.sqrt() * scale) as f32
        })
        .collect();
    Tensor::from_slice(&values).view([vocab, vocab])
}

/// `[B, T, V]` logits kept where `rows` `[B, T]` is nonzero and 0 elsewhere, as a real host
/// returns them when it skips the LM head on the other rows.
pub(crate) fn on_rows(logits: Tensor, rows: &Tensor) -> Tensor {
    logits * rows.ne(0.0).to_kind(Kind::Float).unsqueeze(-1)
}

/// Two lookup-table "models" over a vocabulary of `vocab` tokens.
pub struct ToyHost {
    pub student: Tensor,
    pub teacher: Tensor,
    /// What `sample(Student, ..)` / `sample(Teacher, ..)` return.
    pub student_samples: Option<SampledBatch>,
    pub teacher_samples: Option<SampledBatch>,
    /// Log of `(model, grad)` of every extra forward.
    pub forwards: Vec<(Model, bool)>,
    /// Log of the host's own forwards on the requested batch (`(model, grad)`), per step.
    pub batch_forwards: Vec<(Model, bool)>,
    pub samples: Vec<(Model, SampleSpec)>,
}

impl ToyHost {
    pub fn new(vocab: i64, seed: i64) -> Self {
        ToyHost {
            student: toy_table(vocab, seed as u64, 1.0).set_requires_grad(true),
            teacher: toy_table(vocab, seed as u64 ^ 0x9e37_79b9, 2.0),
            student_samples: None,
            teacher_samples: None,
            forwards: Vec::new(),
            batch_forwards: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Logits of `model` on `input_ids`.
    pub fn logits(&self, model: Model, input_ids: &Tensor, grad: bool) -> Tensor {
        let table = match model {
            Model::Student if grad => self.student.shallow_clone(),
            Model::Student => self.student.detach(),
            Model::Teacher => self.teacher.detach(),
        };
        let size = input_ids.size();
        let v = table.size()[0];
        table
            .index_select(0, &input_ids.flatten(0, -1))
            .view([size[0], size[1], v])
    }

    /// One micro-batch step as the trainer does it: the method's data request, the batch it
    /// names, student logits (grad) and teacher logits when asked, then the loss.
    pub fn step(
        &mut self,
        method: &PluginMethod,
        gold: &SampledBatch,
        step: StepInfo,
        tokens: SpecialTokens,
    ) -> anyhow::Result<Tensor> {
        let req = method.data_request(&step)?;
        let sampled;
        let batch: BatchTensors<'_> = match req.source {
            DataSource::GroundTruth => gold.view(),
            DataSource::StudentSamples => {
                sampled = self.sample(Model::Student, &req.sampling)?;
                sampled.view()
            }
            // the toy host's teacher samples are fixed anyway
            DataSource::TeacherSamples | DataSource::FixedTeacherSamples => {
                sampled = self.sample(Model::Teacher, &req.sampling)?;
                sampled.view()
            }
        };
        // ABI v3: the host's batch logits are exact on loss rows and 0 elsewhere.
        let rows = batch.loss_mask;
        let student_logits = req
            .student_logits
            .then(|| on_rows(self.logits(Model::Student, batch.input_ids, true), rows));
        let teacher_logits = req
            .teacher_logits
            .then(|| on_rows(self.logits(Model::Teacher, batch.input_ids, false), rows));
        if req.student_logits {
            self.batch_forwards.push((Model::Student, true));
        }
        if req.teacher_logits {
            self.batch_forwards.push((Model::Teacher, false));
        }
        let input = LossInput {
            batch,
            student_logits: student_logits.as_ref(),
            teacher_logits: teacher_logits.as_ref(),
            step,
            tokens,
        };
        let loss: Result<Tensor, PluginError> = method.loss(&input, self);
        Ok(loss?)
    }
}

fn copy(b: &SampledBatch) -> SampledBatch {
    SampledBatch {
        input_ids: b.input_ids.copy(),
        attention_mask: b.attention_mask.copy(),
        labels: b.labels.copy(),
        loss_mask: b.loss_mask.copy(),
        norm_tokens: b.norm_tokens,
    }
}

impl HostServices for ToyHost {
    fn forward(
        &mut self,
        model: Model,
        input_ids: &Tensor,
        _attention_mask: &Tensor,
        rows: Option<&Tensor>,
        grad: bool,
    ) -> anyhow::Result<Tensor> {
        anyhow::ensure!(input_ids.dim() == 2, "input_ids must be [batch, time]");
        self.forwards.push((model, grad));
        let logits = self.logits(model, input_ids, grad);
        // ABI v4: with `rows`, exact on those rows and 0 elsewhere, like a real host.
        Ok(match rows {
            Some(r) => on_rows(logits, r),
            None => logits,
        })
    }

    fn sample(&mut self, model: Model, spec: &SampleSpec) -> anyhow::Result<SampledBatch> {
        self.samples.push((model, *spec));
        let b = match model {
            Model::Student => self.student_samples.as_ref(),
            Model::Teacher => self.teacher_samples.as_ref(),
        };
        b.map(copy)
            .with_context(|| format!("the toy host has no {model:?} samples"))
    }
}
