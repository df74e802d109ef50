//! The conformance suite's world: the lookup-table "models" of [`crate::testing`], one fixed
//! global batch, a toy sampler, and a host that runs one micro-batch step as the trainer does
//! while it logs what the method asks for and perturbs the tensors it hands out.

use std::collections::BTreeSet;

use tch::{Kind, Tensor};

use crate::testing::{collate, on_rows, toy_table};
use crate::{
    DataRequest, DataSource, HostServices, LossInput, Model, PluginError, PluginMethod, SampleSpec,
    SampledBatch, SpecialTokens, StepInfo,
};

/// Vocabulary of the toy models.
pub const VOCAB: i64 = 16;
/// Padding 0, EOS 2, mask 3 (BOS is 1); ordinary tokens are 4..16.
pub const TOKENS: SpecialTokens = SpecialTokens {
    pad: 0,
    eos: 2,
    mask: 3,
};
/// Seed of the toy tables (student: scale 1, teacher: scale 2, as `ToyHost::new(16, 11)`).
pub const SEED: u64 = 11;
/// Tokens the toy sampler never writes: padding, BOS, the mask token.
const BANNED: [i64; 3] = [0, 1, 3];
/// The toy sampler writes at most this many tokens (the "model's positions").
pub const MAX_NEW: u32 = 8;

/// The global batch: `(BOS + prompt + target + EOS, prompt length with BOS)`; 4 + 3 + 6 + 2 = 15
/// target tokens (the EOS included), right padded to 12 positions.
pub const EXAMPLES: [(&[i64], usize); 4] = [
    (&[1, 5, 6, 7, 8, 9, 10, 2], 4),
    (&[1, 11, 12, 13, 14, 2], 3),
    (&[1, 5, 9, 12, 7, 6, 15, 11, 10, 9, 8, 2], 6),
    (&[1, 4, 4, 6, 2], 3),
];
/// Every row of the global batch.
pub const ALL_ROWS: [usize; 4] = [0, 1, 2, 3];
/// The gradient-accumulation split of the normalization property: one row with 6 target
/// tokens, then three rows with 9.
pub const SPLIT: [&[usize]; 2] = [&[2], &[0, 1, 3]];

/// The step every property runs (unless it varies it).
pub const BASE_STEP: StepInfo = StepInfo {
    step: 3,
    total_steps: 10,
    micro_batch: 0,
    seed: 0x5eed_0003,
};

/// Target tokens of `rows` of [`EXAMPLES`].
pub fn target_count(rows: &[usize]) -> usize {
    rows.iter()
        .map(|&r| EXAMPLES[r].0.len() - EXAMPLES[r].1)
        .sum()
}

/// Rows `rows` of the global batch as one micro-batch: laid out like the trainer's `collate`,
/// `norm_tokens` the target count of the whole global batch (15).
pub fn gold(rows: &[usize]) -> SampledBatch {
    let examples: Vec<(Vec<i64>, usize)> = rows
        .iter()
        .map(|&r| (EXAMPLES[r].0.to_vec(), EXAMPLES[r].1))
        .collect();
    let mut b = collate(&examples, TOKENS.pad).expect("the check's examples are valid");
    b.norm_tokens = target_count(&ALL_ROWS) as f64;
    b
}

/// The toy student and teacher tables `[VOCAB, VOCAB]` (no grad): a position's logits are the
/// row of its token.
pub fn tables() -> (Tensor, Tensor) {
    (
        toy_table(VOCAB, SEED, 1.0),
        toy_table(VOCAB, SEED ^ 0x9e37_79b9, 2.0),
    )
}

/// `[B, T, V]` logits of a lookup table on `input_ids` `[B, T]`.
pub fn lookup(table: &Tensor, input_ids: &Tensor) -> Tensor {
    let size = input_ids.size();
    table
        .index_select(0, &input_ids.flatten(0, -1))
        .view([size[0], size[1], VOCAB])
}

/// What the host perturbs in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Perturb {
    None,
    /// Tokens before the last prompt token, and every logit row outside the targets that is
    /// inside the sequence (the prompt, the row after EOS).
    Prompt,
    /// Tokens and logit rows at padding positions.
    Padding,
    /// Logit rows at target positions.
    Target,
    /// The teacher logits the host hands over with the batch, at target rows.
    TeacherNoise,
    /// The student logits the host hands over with the batch, at target rows.
    StudentNoise,
    /// Every logit scaled so the largest is ±1e4.
    Extreme,
    /// At target rows, a quarter of the vocabulary `-inf` for the student (never the label) and
    /// another quarter for the teacher.
    NegInf,
    /// Whole rows of `-inf` outside the targets (prompt and padding), both models.
    NegInfRows,
}

/// One step of the check.
#[derive(Debug, Clone)]
pub(crate) struct StepCfg {
    pub rows: Vec<usize>,
    pub step: StepInfo,
    pub perturb: Perturb,
    /// Hand over student and teacher logits whether requested or not.
    pub provide_all: bool,
    /// Multiplies every batch's `norm_tokens`.
    pub norm_factor: f64,
    /// Seed of the toy sampler; `None`: the step's seed, as the trainer does.
    pub sample_seed: Option<u64>,
    /// torch's global generator is seeded with this before the step.
    pub torch_seed: i64,
}

impl StepCfg {
    pub fn base() -> StepCfg {
        StepCfg {
            rows: ALL_ROWS.to_vec(),
            step: BASE_STEP,
            perturb: Perturb::None,
            provide_all: false,
            norm_factor: 1.0,
            sample_seed: None,
            torch_seed: 7,
        }
    }

    pub fn with(&self, perturb: Perturb) -> StepCfg {
        StepCfg {
            perturb,
            ..self.clone()
        }
    }
}

/// What the method did in a step, in order (for determinism).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    Request(DataRequest),
    Forward {
        model: Model,
        grad: bool,
        ids: Vec<i64>,
        rows: bool,
    },
    Sample {
        model: Model,
        spec: SampleSpec,
        ids: Vec<i64>,
    },
}

/// The batch the loss was computed on (the one the data request named).
pub(crate) struct Used {
    pub input_ids: Tensor,
    pub loss_mask: Tensor,
    pub labels: Tensor,
    pub norm: f64,
}

pub(crate) struct StepOut {
    pub loss: f64,
    pub requires_grad: bool,
    /// d loss / d student table (zeros when the loss has no gradient).
    pub grad: Tensor,
    pub request: DataRequest,
    pub events: Vec<Event>,
    /// Student tokens (table rows) at the exact rows of every forward with grad.
    pub touched: BTreeSet<i64>,
    /// Teacher forwards the method asked for with grad.
    pub teacher_grad_asked: usize,
    pub used: Used,
}

#[derive(Debug, Clone)]
pub(crate) enum StepError {
    /// The host refused a NaN or infinite loss.
    NotFinite(String),
    /// The plugin panicked (caught by its SDK).
    Panic(String),
    /// Any other error: the plugin's own, or the host's.
    Failed(String),
}

impl StepError {
    pub fn message(&self) -> &str {
        match self {
            StepError::NotFinite(m) | StepError::Panic(m) | StepError::Failed(m) => m,
        }
    }
}

fn classify(e: PluginError) -> StepError {
    let text = e.to_string();
    match &e {
        PluginError::BadLoss { what, .. } if what.starts_with("not finite") => {
            StepError::NotFinite(text)
        }
        PluginError::Call { message, .. } if message.starts_with("panicked") => {
            StepError::Panic(text)
        }
        _ => StepError::Failed(text),
    }
}

/// SplitMix64: the toy sampler's and the perturbations' random source (not torch's global one).
struct Mix(u64);

impl Mix {
    fn new(seed: u64) -> Mix {
        Mix(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn model_id(m: Model) -> usize {
    match m {
        Model::Student => 0,
        Model::Teacher => 1,
    }
}

fn to_i64(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.to_kind(Kind::Int64).flatten(0, -1)).unwrap_or_default()
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap_or_default()
}

/// Zones of a batch handed out in this step, `[B, T]` f32 masks.
struct Layout {
    attention: Tensor,
    target: Tensor,
    other: Tensor,
    pad: Tensor,
    labels: Vec<i64>,
    ids: Vec<i64>,
    /// `attention` as plain values, for matching forward rows ([`Layout::find_row`]).
    att: Vec<i64>,
    t: usize,
}

impl Layout {
    fn of(b: &SampledBatch) -> Layout {
        let attention = b.attention_mask.to_kind(Kind::Int64);
        let target = b.loss_mask.ne(0.0).to_kind(Kind::Float);
        let inside = attention.ne(0).to_kind(Kind::Float);
        Layout {
            other: (&inside - &target).clamp_min(0.0),
            pad: attention.eq(0).to_kind(Kind::Float),
            labels: to_i64(&b.labels),
            ids: to_i64(&b.input_ids),
            att: to_i64(&attention),
            t: b.input_ids.size()[1] as usize,
            attention,
            target,
        }
    }

    fn shallow(&self) -> Layout {
        Layout {
            attention: self.attention.shallow_clone(),
            target: self.target.shallow_clone(),
            other: self.other.shallow_clone(),
            pad: self.pad.shallow_clone(),
            labels: self.labels.clone(),
            ids: self.ids.clone(),
            att: self.att.clone(),
            t: self.t,
        }
    }

    /// The row of this layout that forward row (`ids`, `att`) is, right padded or trimmed:
    /// the same attention mask and the same tokens where it attends.
    fn find_row(&self, ids: &[i64], att: &[i64]) -> Option<usize> {
        let mine = &self.att;
        let rows = mine.len() / self.t.max(1);
        (0..rows).find(|&j| {
            let (ra, ri) = (
                &mine[j * self.t..(j + 1) * self.t],
                &self.ids[j * self.t..(j + 1) * self.t],
            );
            (0..self.t.max(att.len())).all(|p| {
                let a = att.get(p).copied().unwrap_or(0);
                let b = ra.get(p).copied().unwrap_or(0);
                a == b && (a == 0 || ids.get(p) == ri.get(p))
            })
        })
    }
}

/// Deterministic noise `[B, T, V]` in about ±8.7 (uniform, scale 5).
fn noise(size: &[i64], salt: u64) -> Tensor {
    let n: i64 = size.iter().product();
    let mut rng = Mix::new(0x6e6f_6973_6500 ^ salt);
    let v: Vec<f32> = (0..n)
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * 3f64.sqrt() * 5.0) as f32)
        .collect();
    Tensor::from_slice(&v).view(size)
}

/// A host like the trainer's for one micro-batch of the global batch, with the toy models.
pub(crate) struct CheckHost {
    pub student: Tensor,
    teacher: Tensor,
    rows: [Vec<Vec<f64>>; 2],
    scale: [f64; 2],
    cfg: StepCfg,
    layouts: Vec<Layout>,
    calls: [u64; 2],
    events: Vec<Event>,
    touched: BTreeSet<i64>,
    teacher_grad_asked: usize,
}

impl CheckHost {
    pub fn new(cfg: StepCfg) -> CheckHost {
        let (s, t) = tables();
        let rows_of = |x: &Tensor| -> Vec<Vec<f64>> {
            to_f64(x)
                .chunks(VOCAB as usize)
                .map(|c| c.to_vec())
                .collect()
        };
        let max = |x: &Tensor| x.abs().max().double_value(&[]);
        CheckHost {
            rows: [rows_of(&s), rows_of(&t)],
            scale: [1e4 / max(&s), 1e4 / max(&t)],
            student: s.set_requires_grad(true),
            teacher: t,
            cfg,
            layouts: Vec::new(),
            calls: [0, 0],
            events: Vec::new(),
            touched: BTreeSet::new(),
            teacher_grad_asked: 0,
        }
    }

    fn logits(&self, model: Model, ids: &Tensor, grad: bool) -> Tensor {
        match model {
            Model::Student if grad => lookup(&self.student, ids),
            Model::Student => lookup(&self.student.detach(), ids),
            Model::Teacher => lookup(&self.teacher, ids),
        }
    }

    fn touch(&mut self, ids: &Tensor, rows: &Tensor) {
        let ids = to_i64(ids);
        let rows = to_f64(rows);
        for (id, r) in ids.iter().zip(&rows) {
            if *r != 0.0 {
                self.touched.insert(*id);
            }
        }
    }

    /// The layout a forward's tokens belong to: the handed-out batch with the same attention
    /// mask, or else, row by row, rows of handed-out batches (a method that mixes rows of
    /// several batches, such as imitkd's per-example mixing, right padded to a common length).
    fn layout_of(&self, ids: &Tensor, mask: &Tensor) -> Option<Layout> {
        let mask = mask.to_kind(Kind::Int64);
        let whole = (0..self.layouts.len()).rev().find(|&i| {
            let a = &self.layouts[i].attention;
            a.size() == mask.size() && a.equal(&mask)
        });
        if let Some(i) = whole {
            return Some(self.layouts[i].shallow());
        }
        let size = mask.size();
        if size.len() != 2 {
            return None;
        }
        let (b, t) = (size[0] as usize, size[1] as usize);
        let (att, ids) = (to_i64(&mask), to_i64(ids));
        let mut zones = [vec![0f32; b * t], vec![0f32; b * t], vec![0f32; b * t]];
        let mut labels = vec![-100i64; b * t];
        for r in 0..b {
            let (ra, ri) = (&att[r * t..(r + 1) * t], &ids[r * t..(r + 1) * t]);
            let (l, j) = self
                .layouts
                .iter()
                .rev()
                .find_map(|l| l.find_row(ri, ra).map(|j| (l, j)))?;
            let parts = [to_f64(&l.target), to_f64(&l.other), to_f64(&l.pad)];
            for p in 0..t {
                let i = r * t + p;
                if p < l.t {
                    for (z, part) in zones.iter_mut().zip(&parts) {
                        z[i] = part[j * l.t + p] as f32;
                    }
                    labels[i] = l.labels[j * l.t + p];
                } else {
                    zones[2][i] = 1.0;
                }
            }
        }
        let shape = [b as i64, t as i64];
        let [target, other, pad] = zones.map(|z| Tensor::from_slice(&z).view(shape));
        Some(Layout {
            attention: mask,
            target,
            other,
            pad,
            labels,
            ids,
            att,
            t,
        })
    }

    fn neg_inf_mask(&self, model: Model, l: &Layout, size: &[i64]) -> Tensor {
        let (b, t, v) = (size[0] as usize, size[1] as usize, size[2] as usize);
        let target = to_f64(&l.target);
        let mut m = vec![false; b * t * v];
        for r in 0..b {
            for p in 0..t {
                let i = r * t + p;
                if target[i] == 0.0 {
                    continue;
                }
                for x in 0..v {
                    m[i * v + x] = match model {
                        Model::Student => (x + p) % 4 == 0 && x as i64 != l.labels[i],
                        Model::Teacher => (x + p) % 4 == 2,
                    };
                }
            }
        }
        Tensor::from_slice(&m).view(size)
    }

    fn transform(
        &self,
        model: Model,
        logits: Tensor,
        layout: Option<&Layout>,
        host: bool,
    ) -> Tensor {
        let perturb = self.cfg.perturb;
        match perturb {
            Perturb::None => return logits,
            Perturb::Extreme => return logits * self.scale[model_id(model)],
            _ => {}
        }
        let Some(l) = layout else {
            return logits;
        };
        let size = logits.size();
        if size.len() != 3 || size[1] as usize != l.t {
            return logits;
        }
        let salt = model_id(model) as u64 + 1;
        let add = |zone: &Tensor| &logits + noise(&size, salt) * zone.unsqueeze(-1);
        match perturb {
            Perturb::Prompt => add(&l.other),
            Perturb::Padding => add(&l.pad),
            Perturb::Target => add(&l.target),
            Perturb::TeacherNoise if host && model == Model::Teacher => add(&l.target),
            Perturb::StudentNoise if host && model == Model::Student => add(&l.target),
            Perturb::NegInf => {
                logits.masked_fill(&self.neg_inf_mask(model, l, &size), f64::NEG_INFINITY)
            }
            Perturb::NegInfRows => {
                let rows = (&l.other + &l.pad)
                    .gt(0.0)
                    .unsqueeze(-1)
                    .expand(size.as_slice(), false);
                logits.masked_fill(&rows, f64::NEG_INFINITY)
            }
            _ => logits.shallow_clone(),
        }
    }

    /// Changes the tokens of the perturbed zone (prompt tokens before the last one, or padding).
    fn perturb_tokens(&self, b: &mut SampledBatch) {
        let prompt = match self.cfg.perturb {
            Perturb::Prompt => true,
            Perturb::Padding => false,
            _ => return,
        };
        let size = b.input_ids.size();
        let (rows, t) = (size[0] as usize, size[1] as usize);
        let mut ids = to_i64(&b.input_ids);
        let att = to_i64(&b.attention_mask);
        let lm = to_f64(&b.loss_mask);
        for r in 0..rows {
            let first_target = (0..t).find(|&p| lm[r * t + p] != 0.0).unwrap_or(t);
            for p in 0..t {
                let i = r * t + p;
                let in_zone = if prompt {
                    att[i] != 0 && p < first_target
                } else {
                    att[i] == 0
                };
                if in_zone {
                    let old = ids[i];
                    let mut new = 4 + (old * 7 + p as i64 * 3 + r as i64 * 5 + 1).rem_euclid(12);
                    if new == old {
                        new = 4 + (new - 3) % 12;
                    }
                    ids[i] = new;
                }
            }
        }
        b.input_ids = Tensor::from_slice(&ids).view([rows as i64, t as i64]);
    }

    fn hand_out(&mut self, b: &mut SampledBatch) -> usize {
        self.perturb_tokens(b);
        self.layouts.push(Layout::of(b));
        self.layouts.len() - 1
    }

    /// One completion of `last` by the toy `model` (next token from the previous token's row).
    fn generate(&self, model: Model, last: i64, spec: &SampleSpec, rng: &mut Mix) -> Vec<i64> {
        let rows = &self.rows[model_id(model)];
        let max_new = spec.max_new_tokens.clamp(1, MAX_NEW);
        let mut out = Vec::new();
        let mut cur = last;
        for _ in 0..max_new {
            let logits = &rows[cur as usize];
            let mut cand: Vec<(i64, f64)> = (0..VOCAB)
                .filter(|v| !BANNED.contains(v))
                .map(|v| (v, logits[v as usize]))
                .collect();
            cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let next = if spec.temperature <= 0.0 {
                cand[0].0
            } else {
                if spec.top_k > 0 {
                    cand.truncate(spec.top_k as usize);
                }
                let top = cand[0].1;
                let mut p: Vec<f64> = cand
                    .iter()
                    .map(|c| ((c.1 - top) / spec.temperature).exp())
                    .collect();
                let z: f64 = p.iter().sum();
                p.iter_mut().for_each(|x| *x /= z);
                if spec.top_p < 1.0 {
                    let mut acc = 0.0;
                    let keep = p
                        .iter()
                        .position(|x| {
                            acc += x;
                            acc >= spec.top_p
                        })
                        .map_or(p.len(), |i| i + 1);
                    p.truncate(keep);
                    let z: f64 = p.iter().sum();
                    p.iter_mut().for_each(|x| *x /= z);
                }
                let u = rng.next_f64();
                let mut acc = 0.0;
                let mut pick = cand[p.len() - 1].0;
                for (i, x) in p.iter().enumerate() {
                    acc += x;
                    if u < acc {
                        pick = cand[i].0;
                        break;
                    }
                }
                pick
            };
            out.push(next);
            if next == TOKENS.eos {
                break;
            }
            cur = next;
        }
        out
    }

    /// The micro-batch's prompts completed by `model`. Every row of the global batch is sampled
    /// from its own seed (so a split batch samples the same rows), and `norm_tokens` is the
    /// generated-target count of the whole global batch.
    fn sample_batch(&mut self, model: Model, spec: &SampleSpec) -> SampledBatch {
        let base = self.cfg.sample_seed.unwrap_or(self.cfg.step.seed);
        let call = self.calls[model_id(model)];
        self.calls[model_id(model)] += 1;
        let all: Vec<(Vec<i64>, usize)> = ALL_ROWS
            .iter()
            .map(|&r| {
                let (toks, prompt_len) = EXAMPLES[r];
                let mut rng = Mix::new(
                    Mix::new(base ^ ((model_id(model) as u64) << 56) ^ (call << 40) ^ r as u64)
                        .next_u64(),
                );
                let mut seq = toks[..prompt_len].to_vec();
                let gen = self.generate(model, seq[prompt_len - 1], spec, &mut rng);
                seq.extend(gen);
                (seq, prompt_len)
            })
            .collect();
        let global: usize = all.iter().map(|(s, p)| s.len() - p).sum();
        let mine: Vec<(Vec<i64>, usize)> = self.cfg.rows.iter().map(|&r| all[r].clone()).collect();
        let mut b = collate(&mine, TOKENS.pad).expect("sampled rows are valid");
        b.norm_tokens = global as f64 * self.cfg.norm_factor;
        self.hand_out(&mut b);
        self.events.push(Event::Sample {
            model,
            spec: *spec,
            ids: to_i64(&b.input_ids),
        });
        b
    }
}

impl HostServices for CheckHost {
    fn forward(
        &mut self,
        model: Model,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: Option<&Tensor>,
        grad: bool,
    ) -> anyhow::Result<Tensor> {
        anyhow::ensure!(input_ids.dim() == 2, "input_ids must be [batch, time]");
        let ids = to_i64(input_ids);
        anyhow::ensure!(
            ids.iter().all(|&i| (0..VOCAB).contains(&i)),
            "token ids must be in [0, {VOCAB})"
        );
        let layout = self.layout_of(input_ids, attention_mask);
        self.events.push(Event::Forward {
            model,
            grad,
            ids,
            rows: rows.is_some(),
        });
        if model == Model::Teacher && grad {
            self.teacher_grad_asked += 1;
        }
        let with_grad = grad && model == Model::Student;
        if with_grad {
            let exact_rows = match (rows, layout.as_ref()) {
                (Some(r), _) => r.shallow_clone(),
                (None, Some(l)) => l.target.shallow_clone(),
                (None, None) => attention_mask.shallow_clone(),
            };
            self.touch(input_ids, &exact_rows);
        }
        let exact = self.logits(model, input_ids, with_grad);
        let out = match rows {
            Some(r) => on_rows(exact, r),
            None => exact,
        };
        Ok(self.transform(model, out, layout.as_ref(), false))
    }

    fn sample(&mut self, model: Model, spec: &SampleSpec) -> anyhow::Result<SampledBatch> {
        Ok(self.sample_batch(model, spec))
    }
}

/// One micro-batch step of `method` as the trainer runs it, in the check's world.
pub(crate) fn run_step(method: &PluginMethod, cfg: &StepCfg) -> Result<StepOut, StepError> {
    let mut host = CheckHost::new(cfg.clone());
    tch::manual_seed(cfg.torch_seed);
    let req = method.data_request(&cfg.step).map_err(classify)?;
    host.events.push(Event::Request(req));
    let batch = match req.source {
        DataSource::GroundTruth => {
            let mut b = gold(&cfg.rows);
            b.norm_tokens *= cfg.norm_factor;
            host.hand_out(&mut b);
            b
        }
        DataSource::StudentSamples => host.sample_batch(Model::Student, &req.sampling),
        // one step: a fixed teacher sample is a teacher sample
        DataSource::TeacherSamples | DataSource::FixedTeacherSamples => {
            host.sample_batch(Model::Teacher, &req.sampling)
        }
    };
    let li = host.layouts.len() - 1;
    // ABI v3: the host's batch logits are exact on loss rows and 0 elsewhere.
    let student = (req.student_logits || cfg.provide_all).then(|| {
        host.touch(&batch.input_ids, &batch.loss_mask);
        let l = on_rows(
            host.logits(Model::Student, &batch.input_ids, true),
            &batch.loss_mask,
        );
        host.transform(Model::Student, l, Some(&host.layouts[li]), true)
    });
    let teacher = (req.teacher_logits || cfg.provide_all).then(|| {
        let l = on_rows(
            host.logits(Model::Teacher, &batch.input_ids, false),
            &batch.loss_mask,
        );
        host.transform(Model::Teacher, l, Some(&host.layouts[li]), true)
    });
    let input = LossInput {
        batch: batch.view(),
        student_logits: student.as_ref(),
        teacher_logits: teacher.as_ref(),
        step: cfg.step,
        tokens: TOKENS,
    };
    let loss = method.loss(&input, &mut host).map_err(classify)?;
    let value = loss
        .f_view([1])
        .and_then(|l| l.f_double_value(&[0]))
        .map_err(|e| StepError::Failed(format!("unreadable loss: {e}")))?;
    let requires_grad = loss.requires_grad();
    if requires_grad {
        loss.f_view([1])
            .and_then(|l| l.f_sum(Kind::Float))
            .map(|l| l.backward())
            .map_err(|e| StepError::Failed(format!("backward failed: {e}")))?;
    }
    let g = host.student.grad();
    let grad = if g.defined() {
        g.detach().copy()
    } else {
        Tensor::zeros_like(&host.student.detach())
    };
    let used = Used {
        input_ids: batch.input_ids.shallow_clone(),
        loss_mask: batch.loss_mask.shallow_clone(),
        labels: batch.labels.shallow_clone(),
        norm: batch.norm_tokens,
    };
    Ok(StepOut {
        loss: value,
        requires_grad,
        grad,
        request: req,
        events: std::mem::take(&mut host.events),
        touched: std::mem::take(&mut host.touched),
        teacher_grad_asked: host.teacher_grad_asked,
        used,
    })
}
