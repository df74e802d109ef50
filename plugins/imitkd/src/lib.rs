//! `imitkd` (Lin et al. 2020, imitation-learning KD): forward KL(T||S) on a mixture of
//! ground-truth and student-generated sequences. The student's share grows over training:
//! each micro-batch is student-sampled with probability `final_share * progress` (linear
//! schedule) or `final_share * progress^2` (`schedule=quadratic`), else it is the ground truth.
//!
//! `mix=example` (the default, as Lin et al. mix): each example of the micro-batch is replaced
//! by the student's completion of its prompt with that probability, independently (drawn from
//! the micro-batch's seeded stream 1); the student samples the whole micro-batch whenever at
//! least one example is replaced, and the FKL runs on the mixed batch (the method's own
//! forwards on its loss rows). `mix=batch`: one coin per micro-batch decides whether the whole
//! micro-batch is student-sampled or gold (cheaper: no sampling on gold steps; steps are then
//! all one or the other).

use kidbench_kd::sdk::api::{DataRequest, DataSource, Model, ParamSpec, StepInfo};
use kidbench_kd::sdk::{
    choice_param, float_param, int_param, progress, sampling, student_samples_with_prob, Ctx,
    Method, Params,
};
use kidbench_kd::{divergence_loss, Divergence};
use rand::Rng;
use tch::Tensor;

pub struct ImitKd {
    final_share: f64,
    quadratic: bool,
    per_example: bool,
    temperature: f64,
    sample_temperature: f64,
    max_new_tokens: u32,
}

impl ImitKd {
    /// Probability that the micro-batch of `step` is student-generated.
    pub fn student_share(&self, step: &StepInfo) -> f64 {
        let p = progress(step);
        self.final_share * if self.quadratic { p * p } else { p }
    }

    /// Which rows of the micro-batch of `step` are replaced by student samples (`mix=example`).
    pub fn student_rows(&self, ctx: &Ctx<'_>, rows: usize) -> Vec<bool> {
        let p = self.student_share(&ctx.step());
        let mut rng = ctx.rng(1);
        (0..rows)
            .map(|_| p > 0.0 && rng.random::<f64>() < p)
            .collect()
    }

    fn per_example_loss(&self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let gold = ctx.batch();
        let take = self.student_rows(ctx, gold.input_ids.size()[0] as usize);
        let b = if take.iter().any(|&t| t) {
            let spec = sampling(self.sample_temperature, self.max_new_tokens);
            let samples = ctx.sample(Model::Student, spec)?;
            gold.mix_rows(&samples, &take, ctx.tokens().pad)?
        } else {
            gold
        };
        let (ids, mask, rows) = (&b.input_ids, &b.attention_mask, &b.loss_mask);
        let s = ctx.forward_rows(Model::Student, ids, mask, rows, true)?;
        let t = ctx.forward_rows(Model::Teacher, ids, mask, rows, false)?;
        Ok(divergence_loss(
            Divergence::ForwardKl,
            &s,
            &t,
            rows,
            b.norm,
            self.temperature,
        )?)
    }
}

impl Method for ImitKd {
    fn params() -> Vec<ParamSpec> {
        vec![
            float_param(
                "final_share",
                1.0,
                0.0,
                1.0,
                "student share at the end of training",
            ),
            choice_param(
                "schedule",
                "linear",
                &["linear", "quadratic"],
                "growth of the student share",
            ),
            choice_param(
                "mix",
                "example",
                &["example", "batch"],
                "what the coin replaces: each example (Lin et al.) or the whole micro-batch",
            ),
            float_param(
                "temperature",
                1.0,
                0.01,
                100.0,
                "softmax temperature of the KL",
            ),
            float_param(
                "sample_temperature",
                1.0,
                0.0,
                100.0,
                "student sampling temperature (0 = greedy)",
            ),
            int_param(
                "max_new_tokens",
                128,
                1,
                4096,
                "length limit of student samples",
            ),
        ]
    }

    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(ImitKd {
            final_share: p.f64("final_share")?,
            quadratic: p.text("schedule")? == "quadratic",
            per_example: p.text("mix")? == "example",
            temperature: p.f64("temperature")?,
            sample_temperature: p.f64("sample_temperature")?,
            max_new_tokens: u32::try_from(p.i64("max_new_tokens")?)?,
        })
    }

    fn data_request(&mut self, step: &StepInfo) -> anyhow::Result<DataRequest> {
        if self.per_example {
            // the gold batch only: `loss` samples, mixes and runs its own forwards
            return Ok(DataRequest {
                source: DataSource::GroundTruth,
                sampling: sampling(self.sample_temperature, self.max_new_tokens),
                student_logits: false,
                teacher_logits: false,
            });
        }
        Ok(student_samples_with_prob(
            step,
            self.student_share(step),
            sampling(self.sample_temperature, self.max_new_tokens),
        ))
    }

    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        if self.per_example {
            return self.per_example_loss(ctx);
        }
        let b = ctx.batch();
        let (s, t) = (ctx.student_logits()?, ctx.teacher_logits()?);
        Ok(divergence_loss(
            Divergence::ForwardKl,
            &s,
            &t,
            &b.loss_mask,
            b.norm,
            self.temperature,
        )?)
    }
}

kidbench_kd::export_method!(
    ImitKd,
    "imitkd",
    "forward KL on ground truth mixed with student samples, the student share growing"
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every conformance property of `kidbench plugin check` holds.
    #[test]
    fn passes_plugin_check() {
        kidbench_plugin_host::check::assert_conforms(kidbench_plugin_root(), &[]);
    }
    use kidbench_plugin_host::testing::{collate, ToyHost};
    use kidbench_plugin_host::{DataSource, Model, PluginEntry, SpecialTokens};

    #[test]
    fn student_share_grows_over_training() -> anyhow::Result<()> {
        let entry = PluginEntry::from_module(kidbench_plugin_root(), "<linked>".as_ref())?;
        let m = entry.create(&[("mix".into(), "batch".into())])?;
        let share = |lo: u64, hi: u64| -> anyhow::Result<f64> {
            let mut n = 0;
            for i in lo..hi {
                let st = StepInfo {
                    step: i,
                    total_steps: 1000,
                    micro_batch: 0,
                    seed: 77 + i,
                };
                n += (m.data_request(&st)?.source == DataSource::StudentSamples) as usize;
            }
            Ok(n as f64 / (hi - lo) as f64)
        };
        let (early, late) = (share(0, 200)?, share(800, 1000)?);
        assert!(early < 0.2 && late > 0.8, "{early} {late}");
        let first = StepInfo {
            step: 0,
            total_steps: 1000,
            micro_batch: 0,
            seed: 1,
        };
        assert_eq!(m.data_request(&first)?.source, DataSource::GroundTruth);

        // the loss is FKL on whatever batch was handed (here: student samples at the end)
        let mut host = ToyHost::new(13, 4);
        let samples = collate(&[(vec![1, 4, 9, 9, 2], 2)], 0)?;
        let (ids, mask, norm) = (
            samples.input_ids.copy(),
            samples.loss_mask.copy(),
            samples.norm_tokens,
        );
        host.student_samples = Some(samples);
        let gold = collate(&[(vec![1, 4, 5, 6, 2], 2)], 0)?;
        let last = StepInfo {
            step: 1000,
            total_steps: 1000,
            micro_batch: 0,
            seed: 3,
        };
        let loss = host.step(
            &m,
            &gold,
            last,
            SpecialTokens {
                pad: 0,
                eos: 2,
                mask: 3,
            },
        )?;
        let s = host.logits(Model::Student, &ids, true);
        let t = host.logits(Model::Teacher, &ids, false);
        let want = divergence_loss(Divergence::ForwardKl, &s, &t, &mask, norm, 1.0)?;
        assert!(loss.equal(&want));
        Ok(())
    }

    const TOKENS: SpecialTokens = SpecialTokens {
        pad: 0,
        eos: 2,
        mask: 3,
    };

    fn at(step: u64, seed: u64) -> StepInfo {
        StepInfo {
            step,
            total_steps: 100,
            micro_batch: 0,
            seed,
        }
    }

    /// Examples as (tokens, prompt length).
    type Rows = Vec<(Vec<i64>, usize)>;

    /// Four gold examples and, for the same prompts, four student completions of other lengths.
    fn gold_and_samples() -> anyhow::Result<(Rows, Rows)> {
        let gold = vec![
            (vec![1, 4, 5, 6, 2], 2),
            (vec![1, 7, 8, 2], 2),
            (vec![1, 9, 10, 11, 12, 2], 2),
            (vec![1, 4, 4, 2], 2),
        ];
        let samples = vec![
            (vec![1, 4, 9, 9, 9, 9, 2], 2),
            (vec![1, 7, 2], 2),
            (vec![1, 9, 12, 2], 2),
            (vec![1, 4, 5, 2], 2),
        ];
        Ok((gold, samples))
    }

    /// The FKL the plugin must give on the batch made of `rows` (collated by hand, right
    /// padded): the reference the mixed batch is checked against.
    fn fkl_on(host: &ToyHost, rows: &[(Vec<i64>, usize)]) -> anyhow::Result<Tensor> {
        let b = collate(rows, 0)?;
        let s = host.logits(Model::Student, &b.input_ids, true);
        let t = host.logits(Model::Teacher, &b.input_ids, false);
        Ok(divergence_loss(
            Divergence::ForwardKl,
            &s,
            &t,
            &b.loss_mask,
            b.norm_tokens,
            1.0,
        )?)
    }

    /// `mix=example` (the default): the coin is per example, so with the student share at 1/2
    /// some micro-batch mixes gold and student rows, and its loss is the FKL on exactly that
    /// mixed batch; at share 0 it is the gold batch (nothing sampled), at share 1 all samples.
    #[test]
    fn per_example_mixing_replaces_single_examples() -> anyhow::Result<()> {
        let entry = PluginEntry::from_module(kidbench_plugin_root(), "<linked>".as_ref())?;
        let m = entry.create(&[])?;
        let (gold, samples) = gold_and_samples()?;
        let gold_batch = collate(&gold, 0)?;
        let mut saw_mixed = false;
        for seed in 0..40u64 {
            let mut host = ToyHost::new(13, 4);
            host.student_samples = Some(collate(&samples, 0)?);
            let loss = host.step(&m, &gold_batch, at(50, seed), TOKENS)?;
            assert!(
                host.batch_forwards.is_empty(),
                "no host forward on the gold batch"
            );
            // the loss must equal the FKL on one of the 16 row choices
            let mut matched = Vec::new();
            for mask in 0u32..16 {
                let rows: Vec<(Vec<i64>, usize)> = (0..4)
                    .map(|i| {
                        if mask >> i & 1 == 1 {
                            samples[i].clone()
                        } else {
                            gold[i].clone()
                        }
                    })
                    .collect();
                let want = fkl_on(&host, &rows)?;
                if (loss.double_value(&[]) - want.double_value(&[])).abs() < 1e-6 {
                    matched.push(mask);
                }
            }
            assert!(!matched.is_empty(), "seed {seed}: loss matches no row mix");
            if matched.iter().all(|&k| k != 0 && k != 15) {
                saw_mixed = true;
                assert_eq!(host.samples.len(), 1, "one student sampling call");
            }
        }
        assert!(saw_mixed, "40 micro-batches at share 1/2 never mixed rows");

        // share 0 at step 0: the gold batch, no sampling at all
        let mut host = ToyHost::new(13, 4);
        host.student_samples = Some(collate(&samples, 0)?);
        let loss = host.step(&m, &gold_batch, at(0, 9), TOKENS)?;
        assert!(host.samples.is_empty());
        let want = fkl_on(&host, &gold)?;
        assert!((loss.double_value(&[]) - want.double_value(&[])).abs() < 1e-6);
        // share 1 at the last step: every row is the student's
        let loss = host.step(&m, &gold_batch, at(100, 9), TOKENS)?;
        let want = fkl_on(&host, &samples)?;
        assert!((loss.double_value(&[]) - want.double_value(&[])).abs() < 1e-6);
        Ok(())
    }
}
