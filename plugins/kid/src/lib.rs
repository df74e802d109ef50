//! `kid`: distillation on imperfect targets. For each micro-batch a fraction `alpha` of the
//! target tokens (never prompt, padding or EOS) is replaced by the mask token; ONE student forward
//! without grad on that masked sequence (requested from the host) predicts the masked places
//! (`fill=argmax`, or `fill=sample`), which are written back: the imperfect target. The loss is
//! reverse KL(S||T) between student and teacher on the imperfect sequence + `mle_weight` x MLE
//! whose labels are the ground truth. `mask_only` uses the masked sequence itself as the
//! imperfect data; `vanilla` (or `alpha=0`) uses the ground truth, which is exactly `rkd`.
//!
//! Where the MLE term reads its logits (`mle=`):
//! - `imperfect` (default): the student's logits on the imperfect sequence, i.e. the same
//!   forward as the reverse KL, with the ground-truth tokens as labels. A step costs one masked
//!   student forward (no grad), one teacher forward and ONE student forward/backward; the host
//!   runs no forward of its own on the batch (`DataRequest::student_logits` is false).
//! - `ground_truth`: the literal reading, MLE on a separate student forward on the ground truth
//!   (the host's batch forward, with grad): one more student forward/backward per step.
//!
//! With `alpha=0` (or `vanilla`) the imperfect sequence is the ground truth, so both readings are
//! `rkd` + MLE on the host's ground-truth forward.
//!
//! Token `q` of a row is predicted by position `q-1`, so a target token is one whose
//! `labels[q-1] != -100`; its "entropy" (strategies `hard`/`easy`) is the entropy of the
//! student's distribution at `q-1` on the original sequence (the host's batch logits when there
//! are any, else one more student forward without grad).

use std::io::Write;
use std::path::PathBuf;

use kidbench_kd::sdk::api::{DataRequest, DataSource, Model, ParamSpec, StepInfo};
use kidbench_kd::sdk::{
    bool_param, choice_param, float_param, ground_truth, sampling, text_param, Batch, Ctx, Method,
    Params,
};
use kidbench_kd::{divergence_loss, mle_loss, token_entropy, Divergence, IGNORE};
use rand::Rng;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// A uniformly random subset.
    Random,
    /// Evenly spaced positions (random offset).
    Uniform,
    /// The highest student entropy on the original sequence.
    Hard,
    /// The lowest.
    Easy,
}

/// Which student logits the MLE term is computed on (`mle=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mle {
    /// The imperfect sequence's (the reverse-KL forward), ground-truth labels: one student
    /// forward/backward per step.
    Imperfect,
    /// A separate student forward on the ground truth.
    GroundTruth,
}

pub struct Kid {
    pub alpha: f64,
    pub mle: Mle,
    pub strategy: Strategy,
    pub sample_fill: bool,
    pub mask_only: bool,
    pub vanilla: bool,
    pub temperature: f64,
    pub mle_weight: f64,
    pub dump: Option<PathBuf>,
}

/// Token positions of one row that may be masked: target tokens except EOS.
pub fn candidates(ids: &[i64], labels: &[i64], eos: i64) -> Vec<usize> {
    (1..ids.len())
        .filter(|&q| labels[q - 1] != IGNORE && ids[q] != eos)
        .collect()
}

/// Chooses `round(alpha * n)` of a row's `n` candidates; `entropy[q-1]` scores token `q`.
pub fn select(
    cands: &[usize],
    alpha: f64,
    strategy: Strategy,
    entropy: &[f64],
    rng: &mut impl Rng,
) -> Vec<usize> {
    let n = cands.len();
    let k = ((alpha * n as f64).round() as usize).min(n);
    if k == 0 {
        return Vec::new();
    }
    let mut out: Vec<usize> = match strategy {
        Strategy::Random => rand::seq::index::sample(rng, n, k)
            .into_iter()
            .map(|i| cands[i])
            .collect(),
        Strategy::Uniform => {
            let offset: f64 = rng.random();
            (0..k)
                .map(|i| cands[(((i as f64 + offset) * n as f64 / k as f64) as usize).min(n - 1)])
                .collect()
        }
        Strategy::Hard | Strategy::Easy => {
            let score = |q: usize| entropy.get(q - 1).copied().unwrap_or(0.0);
            let mut c = cands.to_vec();
            c.sort_by(|&a, &b| {
                let o = score(a).total_cmp(&score(b));
                if strategy == Strategy::Hard {
                    o.reverse()
                } else {
                    o
                }
                .then(a.cmp(&b))
            });
            c.truncate(k);
            c
        }
    };
    out.sort_unstable();
    out.dedup();
    out
}

fn to_vec_i64(t: &Tensor) -> anyhow::Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(
        t.to_device(Device::Cpu).to_kind(Kind::Int64).flatten(0, -1),
    )?)
}

fn to_vec_f64(t: &Tensor) -> anyhow::Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        t.to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(0, -1),
    )?)
}

/// The masked and the imperfect sequences of a batch, and the masked positions per row.
pub struct Imperfect {
    pub masked: Tensor,
    pub imperfect: Tensor,
    pub positions: Vec<Vec<usize>>,
}

impl Kid {
    /// `student`: the student's logits on the ground truth (for `hard`/`easy`), when the host
    /// computed them; otherwise they are computed here (no grad) when the strategy needs them.
    fn imperfect(
        &self,
        ctx: &mut Ctx<'_>,
        b: &Batch,
        student: Option<&Tensor>,
    ) -> anyhow::Result<Imperfect> {
        let size = b.input_ids.size();
        let (rows, t) = match size.as_slice() {
            [r, t] => (*r as usize, *t as usize),
            _ => anyhow::bail!("input_ids must be [batch, time], got {size:?}"),
        };
        let tokens = ctx.tokens();
        anyhow::ensure!(
            tokens.mask >= 0,
            "kid needs a mask token id (the host's tokenizer has none); use vanilla or alpha=0"
        );
        let ids = to_vec_i64(&b.input_ids)?;
        let labels = to_vec_i64(&b.labels)?;
        anyhow::ensure!(
            labels.len() == ids.len(),
            "labels and input_ids differ in shape"
        );
        let entropy = match (self.strategy, student) {
            (Strategy::Hard | Strategy::Easy, Some(s)) => {
                to_vec_f64(&token_entropy(&s.detach(), 1.0))?
            }
            (Strategy::Hard | Strategy::Easy, None) => {
                // entropies are read at target rows only (`q-1` of a target token `q`)
                let s = ctx.forward_rows(
                    Model::Student,
                    &b.input_ids,
                    &b.attention_mask,
                    &b.loss_mask,
                    false,
                )?;
                to_vec_f64(&token_entropy(&s, 1.0))?
            }
            _ => Vec::new(),
        };
        anyhow::ensure!(
            entropy.is_empty() || entropy.len() == ids.len(),
            "logits and input_ids differ in shape"
        );
        let mut rng = ctx.rng(7);
        let mut positions = Vec::with_capacity(rows);
        for r in 0..rows {
            let row = r * t..(r + 1) * t;
            let c = candidates(&ids[row.clone()], &labels[row.clone()], tokens.eos);
            let ent = if entropy.is_empty() {
                &[][..]
            } else {
                &entropy[row]
            };
            positions.push(select(&c, self.alpha, self.strategy, ent, &mut rng));
        }
        let mut masked = ids.clone();
        for (r, ps) in positions.iter().enumerate() {
            for &q in ps {
                masked[r * t + q] = tokens.mask;
            }
        }
        let dev = b.input_ids.device();
        let masked_t = Tensor::from_slice(&masked)
            .view([rows as i64, t as i64])
            .to_device(dev);
        let filled = if self.mask_only {
            masked.clone()
        } else {
            // the one extra student forward, no grad, on the masked sequence; predictions are
            // read at `q-1` of masked target tokens `q`, which are loss rows
            let logits = ctx.forward_rows(
                Model::Student,
                &masked_t,
                &b.attention_mask,
                &b.loss_mask,
                false,
            )?;
            let v = *logits.size().last().unwrap_or(&0);
            anyhow::ensure!(
                logits.size() == [rows as i64, t as i64, v],
                "student logits {:?} do not match input_ids {size:?}",
                logits.size()
            );
            let idx: Vec<i64> = positions
                .iter()
                .enumerate()
                .flat_map(|(r, ps)| ps.iter().map(move |&q| (r * t + q - 1) as i64))
                .collect();
            let mut out = ids.clone();
            if !idx.is_empty() {
                let picked = logits
                    .view([(rows * t) as i64, v])
                    .index_select(0, &Tensor::from_slice(&idx).to_device(logits.device()));
                let preds: Vec<i64> = if self.sample_fill {
                    let probs = to_vec_f64(&picked.to_kind(Kind::Float).softmax(-1, Kind::Double))?;
                    probs
                        .chunks(v as usize)
                        .map(|p| {
                            let u: f64 = rng.random();
                            let mut acc = 0.0;
                            let mut pick = p.len() - 1;
                            for (i, x) in p.iter().enumerate() {
                                acc += x;
                                if u < acc {
                                    pick = i;
                                    break;
                                }
                            }
                            pick as i64
                        })
                        .collect()
                } else {
                    to_vec_i64(&picked.argmax(-1, false))?
                };
                let flat = positions
                    .iter()
                    .enumerate()
                    .flat_map(|(r, ps)| ps.iter().map(move |&q| r * t + q));
                for (pos, p) in flat.zip(preds) {
                    out[pos] = p;
                }
            }
            out
        };
        if let Some(path) = &self.dump {
            self.write_dump(path, &ctx.step(), t, &ids, &masked, &filled, &positions)?;
        }
        Ok(Imperfect {
            masked: masked_t,
            imperfect: Tensor::from_slice(&filled)
                .view([rows as i64, t as i64])
                .to_device(dev),
            positions,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn write_dump(
        &self,
        path: &PathBuf,
        step: &StepInfo,
        t: usize,
        ids: &[i64],
        masked: &[i64],
        filled: &[i64],
        positions: &[Vec<usize>],
    ) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("kid dump {}: {e}", path.display()))?;
        let list = |xs: &[i64]| {
            xs.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        for (r, ps) in positions.iter().enumerate() {
            let row = r * t..(r + 1) * t;
            let pos: Vec<i64> = ps.iter().map(|&q| q as i64).collect();
            writeln!(
                f,
                "{{\"step\":{},\"micro_batch\":{},\"row\":{r},\"ground_truth\":[{}],\"masked\":[{}],\"imperfect\":[{}],\"positions\":[{}]}}",
                step.step,
                step.micro_batch,
                list(&ids[row.clone()]),
                list(&masked[row.clone()]),
                list(&filled[row]),
                list(&pos)
            )?;
        }
        Ok(())
    }
}

impl Method for Kid {
    fn params() -> Vec<ParamSpec> {
        vec![
            float_param("alpha", 0.2, 0.0, 1.0, "fraction of target tokens masked"),
            choice_param(
                "strategy",
                "random",
                &["random", "uniform", "hard", "easy"],
                "which target tokens are masked (hard/easy: highest/lowest student entropy)",
            ),
            choice_param(
                "fill",
                "argmax",
                &["argmax", "sample"],
                "how the student fills masked places",
            ),
            bool_param(
                "mask_only",
                false,
                "the masked sequence itself is the imperfect data",
            ),
            bool_param(
                "vanilla",
                false,
                "no imperfect data: reverse KL on the ground truth",
            ),
            float_param(
                "temperature",
                1.0,
                0.01,
                100.0,
                "softmax temperature of the reverse KL",
            ),
            float_param(
                "mle_weight",
                1.0,
                0.0,
                100.0,
                "weight of the MLE loss on the ground truth",
            ),
            choice_param(
                "mle",
                "imperfect",
                &["imperfect", "ground_truth"],
                "MLE (ground-truth labels) on the imperfect forward (one student pass) or on a \
                 separate ground-truth forward",
            ),
            text_param(
                "dump",
                "",
                "append imperfect sequences (JSON lines) to this file",
            ),
        ]
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        let strategy = match p.text("strategy")? {
            "uniform" => Strategy::Uniform,
            "hard" => Strategy::Hard,
            "easy" => Strategy::Easy,
            _ => Strategy::Random,
        };
        let dump = p.text("dump")?;
        Ok(Kid {
            alpha: p.f64("alpha")?,
            mle: match p.text("mle")? {
                "ground_truth" => Mle::GroundTruth,
                _ => Mle::Imperfect,
            },
            strategy,
            sample_fill: p.text("fill")? == "sample",
            mask_only: p.bool("mask_only")?,
            vanilla: p.bool("vanilla")?,
            temperature: p.f64("temperature")?,
            mle_weight: p.f64("mle_weight")?,
            dump: (!dump.is_empty()).then(|| PathBuf::from(dump)),
        })
    }

    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        if self.on_ground_truth() {
            // rkd: student (grad) and teacher logits on the ground truth
            return Ok(ground_truth(true));
        }
        // The teacher only runs on the imperfect sequence (`ctx.forward`); the host's student
        // forward on the ground truth is needed only by `mle=ground_truth`.
        Ok(DataRequest {
            source: DataSource::GroundTruth,
            sampling: sampling(1.0, 0),
            student_logits: self.mle == Mle::GroundTruth && self.mle_weight > 0.0,
            teacher_logits: false,
        })
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        if self.on_ground_truth() {
            let s = ctx.student_logits()?;
            let t = ctx.teacher_logits()?;
            let div = divergence_loss(
                Divergence::ReverseKl,
                &s,
                &t,
                &b.loss_mask,
                b.norm,
                self.temperature,
            )?;
            return self.with_mle(div, &s, &b);
        }
        let gold = if ctx.has_student_logits() {
            Some(ctx.student_logits()?)
        } else {
            None
        };
        let imp = self.imperfect(ctx, &b, gold.as_ref())?;
        // the one student forward/backward on the imperfect sequence, and the teacher's; the
        // imperfect sequence has the batch's positions, so its loss rows are the batch's
        let rows = &b.loss_mask;
        let s2 = ctx.forward_rows(
            Model::Student,
            &imp.imperfect,
            &b.attention_mask,
            rows,
            true,
        )?;
        let t2 = ctx.forward_rows(
            Model::Teacher,
            &imp.imperfect,
            &b.attention_mask,
            rows,
            false,
        )?;
        let div = divergence_loss(
            Divergence::ReverseKl,
            &s2,
            &t2,
            &b.loss_mask,
            b.norm,
            self.temperature,
        )?;
        match (self.mle, gold) {
            (Mle::Imperfect, _) => self.with_mle(div, &s2, &b),
            (Mle::GroundTruth, Some(s)) => self.with_mle(div, &s, &b),
            (Mle::GroundTruth, None) => Ok(div), // mle_weight = 0
        }
    }
}

impl Kid {
    fn on_ground_truth(&self) -> bool {
        self.vanilla || self.alpha == 0.0
    }

    /// `div + mle_weight * CE(logits, ground-truth labels)`.
    fn with_mle(&self, div: Tensor, logits: &Tensor, b: &Batch) -> anyhow::Result<Tensor> {
        if self.mle_weight == 0.0 {
            return Ok(div);
        }
        Ok(div + mle_loss(logits, &b.labels, b.norm, IGNORE)? * self.mle_weight)
    }
}

kidbench_kd::export_method!(
    Kid,
    "kid",
    "reverse KL on imperfect targets (masked tokens refilled by the student) + MLE"
);

#[cfg(test)]
mod tests;
