//! Training data: encoded (prompt, target) pairs, the seeded data order, and padded batches with a
//! loss mask over the target tokens (EOS included; prompt and padding excluded).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

use crate::TrainError;

/// Label value of positions that carry no loss (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// One training example: `input_ids = BOS + prompt + target + EOS`; the target starts at
/// `prompt_len` (the count of BOS + prompt tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub input_ids: Vec<i64>,
    pub prompt_len: usize,
}

impl Example {
    /// Tokens that carry loss: target + EOS.
    pub fn target_tokens(&self) -> usize {
        self.input_ids.len().saturating_sub(self.prompt_len)
    }
}

/// A padded batch (right padding) for causal-LM training.
///
/// `labels[b, t]` is the token position `t` must predict (`input_ids[b, t+1]`) when that token is
/// part of the target, else [`IGNORE`]. `loss_mask` is 1.0 exactly where `labels != IGNORE`.
#[derive(Debug)]
pub struct Batch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub labels: Tensor,
    pub loss_mask: Tensor,
    /// Number of positions carrying loss in this batch.
    pub target_tokens: i64,
    /// Number of non-padding tokens in this batch.
    pub tokens: i64,
}

/// Pads examples to the longest one (right padding with `pad_id`) and builds labels and the mask.
pub fn collate(examples: &[&Example], pad_id: i64, device: Device) -> Result<Batch, TrainError> {
    if examples.is_empty() {
        return Err(TrainError::Data("cannot build an empty batch".into()));
    }
    let t = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(0);
    if t < 2 {
        return Err(TrainError::Data(
            "every example needs at least two tokens (BOS and EOS)".into(),
        ));
    }
    let b = examples.len();
    let mut ids = vec![pad_id; b * t];
    let mut mask = vec![0i64; b * t];
    let mut labels = vec![IGNORE; b * t];
    let mut target_tokens = 0i64;
    let mut tokens = 0i64;
    for (i, e) in examples.iter().enumerate() {
        let n = e.input_ids.len();
        if e.prompt_len == 0 || e.prompt_len > n {
            return Err(TrainError::Data(format!(
                "example with {n} tokens has prompt_len {} (must be 1..={n})",
                e.prompt_len
            )));
        }
        let row = i * t;
        ids[row..row + n].copy_from_slice(&e.input_ids);
        mask[row..row + n].iter_mut().for_each(|m| *m = 1);
        tokens += n as i64;
        // Position p predicts token p+1; keep it when token p+1 is a target token.
        for p in (e.prompt_len - 1)..(n - 1) {
            labels[row + p] = e.input_ids[p + 1];
            target_tokens += 1;
        }
    }
    let shape = [b as i64, t as i64];
    let labels_t = Tensor::from_slice(&labels).view(shape);
    let loss_mask = labels_t.ne(IGNORE).to_kind(Kind::Float);
    Ok(Batch {
        input_ids: Tensor::from_slice(&ids).view(shape).to_device(device),
        attention_mask: Tensor::from_slice(&mask).view(shape).to_device(device),
        labels: labels_t.to_device(device),
        loss_mask: loss_mask.to_device(device),
        target_tokens,
        tokens,
    })
}

/// The seeded order in which examples are visited: a fresh permutation per epoch, a pure function
/// of (seed, epoch), so a resumed run visits exactly the same examples as an uninterrupted one.
#[derive(Debug, Clone)]
pub struct DataOrder {
    n: usize,
    seed: u64,
    cached: Option<(u64, Vec<usize>)>,
}

impl DataOrder {
    pub fn new(n: usize, seed: u64) -> Result<Self, TrainError> {
        if n == 0 {
            return Err(TrainError::Data("no training examples".into()));
        }
        Ok(DataOrder {
            n,
            seed,
            cached: None,
        })
    }

    fn permutation(&mut self, epoch: u64) -> &[usize] {
        if self.cached.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut p: Vec<usize> = (0..self.n).collect();
            p.shuffle(&mut rng);
            self.cached = Some((epoch, p));
        }
        match &self.cached {
            Some((_, p)) => p,
            None => &[],
        }
    }

    /// Example indices of global batch `step` (0-based) of `batch_size` examples.
    pub fn batch(&mut self, step: usize, batch_size: usize) -> Vec<usize> {
        let n = self.n as u64;
        (0..batch_size as u64)
            .map(|i| {
                let pos = step as u64 * batch_size as u64 + i;
                let p = self.permutation(pos / n);
                p[(pos % n) as usize]
            })
            .collect()
    }
}
