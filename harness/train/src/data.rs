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

/// Batches per length group (see [`DataOrder::grouped`]).
pub const GROUP_BATCHES: usize = 32;

/// The seeded order in which examples are visited: a fresh permutation per epoch, a pure function
/// of (seed, epoch), so a resumed run visits exactly the same examples as an uninterrupted one.
#[derive(Debug, Clone)]
pub struct DataOrder {
    n: usize,
    seed: u64,
    /// Length grouping: example lengths and the batch size whose batches are grouped.
    grouping: Option<(Vec<usize>, usize)>,
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
            grouping: None,
            cached: None,
        })
    }

    /// Like [`DataOrder::new`], but batches hold examples of similar length, so little of a
    /// padded batch is padding: each epoch's permutation is cut into groups of
    /// [`GROUP_BATCHES`] × `batch_size` examples, each group is sorted by length and cut into
    /// batches, and the batches of a group are visited in a seeded random order. Every example
    /// is still seen once per epoch.
    pub fn grouped(lengths: &[usize], seed: u64, batch_size: usize) -> Result<Self, TrainError> {
        let mut order = Self::new(lengths.len(), seed)?;
        order.grouping = Some((lengths.to_vec(), batch_size.max(1)));
        Ok(order)
    }

    fn permutation(&mut self, epoch: u64) -> &[usize] {
        if self.cached.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut p: Vec<usize> = (0..self.n).collect();
            p.shuffle(&mut rng);
            if let Some((lengths, bs)) = &self.grouping {
                let mut grouped = Vec::with_capacity(p.len());
                for group in p.chunks(bs * GROUP_BATCHES) {
                    let mut g = group.to_vec();
                    g.sort_by_key(|&i| lengths[i]);
                    let mut batches: Vec<&[usize]> = g.chunks(*bs).collect();
                    batches.shuffle(&mut rng);
                    batches.iter().for_each(|b| grouped.extend_from_slice(b));
                }
                p = grouped;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Padded tokens of the batches of one epoch.
    fn padded(order: &mut DataOrder, lengths: &[usize], bs: usize) -> usize {
        (0..lengths.len() / bs)
            .map(|step| {
                let b = order.batch(step, bs);
                b.iter().map(|&i| lengths[i]).max().unwrap_or(0) * b.len()
            })
            .sum()
    }

    #[test]
    fn grouped_order_visits_every_example_once_per_epoch_and_pads_less() -> anyhow::Result<()> {
        let bs = 8;
        let n = bs * GROUP_BATCHES * 3;
        // lengths 20..=219 in a scrambled order
        let lengths: Vec<usize> = (0..n).map(|i| 20 + (i * 7919) % 200).collect();
        for epoch in 0..2usize {
            let mut g = DataOrder::grouped(&lengths, 5, bs)?;
            let mut seen: Vec<usize> = (0..n / bs)
                .flat_map(|s| g.batch(epoch * n / bs + s, bs))
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "epoch {epoch}");
        }
        let mut plain = DataOrder::new(n, 5)?;
        let mut grouped = DataOrder::grouped(&lengths, 5, bs)?;
        let real: usize = lengths.iter().sum();
        let (p, g) = (
            padded(&mut plain, &lengths, bs),
            padded(&mut grouped, &lengths, bs),
        );
        assert!(p > real && g >= real);
        // random batches of 8 pad to about 90 % of the longest length; grouped ones barely pad
        assert!(
            (g - real) * 10 < p - real,
            "plain {p}, grouped {g}, real {real}"
        );
        // deterministic for a seed, different for another
        let mut again = DataOrder::grouped(&lengths, 5, bs)?;
        let mut other = DataOrder::grouped(&lengths, 6, bs)?;
        assert_eq!(
            again.batch(3, bs),
            DataOrder::grouped(&lengths, 5, bs)?.batch(3, bs)
        );
        assert_ne!(again.batch(4, bs), other.batch(4, bs));
        Ok(())
    }
}
