//! The trainer's host services on a tiny real model (forward with and without grad, KV-cache
//! sampling laid out like `collate`), and the plugin-driven trainer with methods that sample and
//! use the teacher.

mod common;

use common::*;
use kidbench_kd::sdk::api::{DataRequest, DataSource, ParamSpec, StepInfo};
use kidbench_kd::sdk::{ground_truth, sampled, sampling, Ctx, Params, Plugin};
use kidbench_kd::{divergence_loss, mle_loss, Divergence, IGNORE};
use kidbench_model::{Config, GenerationConfig, GenerationOutput, Qwen2ForCausalLM};
use kidbench_plugin_host::{HostServices, Model, PluginEntry, PluginMethod, SampleSpec};
use kidbench_train::data::{collate, Example};
use kidbench_train::host::{step_seed, TokenIds, TrainHost};
use kidbench_train::trainer::{train, CausalLm, TrainConfig, TrainOptions};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const V: i64 = 40;
const EOS: i64 = 2;

fn tiny(seed: i64) -> (VarStore, Qwen2ForCausalLM) {
    let cfg: Config = serde_json::from_value(serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": V,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 64,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "tie_word_embeddings": true,
        "bos_token_id": 1,
        "eos_token_id": EOS,
        "torch_dtype": "float32",
    }))
    .expect("config");
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let m = Qwen2ForCausalLM::new(&vs.root(), &cfg).expect("model");
    (vs, m)
}

fn tokens() -> TokenIds {
    TokenIds {
        pad: 0,
        eos: EOS,
        mask: 3,
        stop: vec![EOS],
    }
}

/// Two examples with prompts of 4 and 2 tokens (BOS included).
fn micro() -> Vec<Example> {
    vec![
        Example {
            input_ids: vec![1, 5, 6, 7, 8, 9, EOS],
            prompt_len: 4,
        },
        Example {
            input_ids: vec![1, 10, 11, EOS],
            prompt_len: 2,
        },
    ]
}

fn ints(t: &Tensor) -> Vec<i64> {
    Vec::try_from(t.flatten(0, -1).to_kind(Kind::Int64)).expect("ints")
}

/// Checks the `collate` layout of a sampled batch against its prompts and continuations.
fn check_layout(b: &kidbench_plugin_host::SampledBatch, prompts: &[&[i64]], gens: &[Vec<i64>]) {
    let t = b.input_ids.size()[1] as usize;
    assert_eq!(b.input_ids.size(), [prompts.len() as i64, t as i64]);
    for x in [&b.attention_mask, &b.labels, &b.loss_mask] {
        assert_eq!(x.size(), b.input_ids.size());
    }
    let (ids, att, lab) = (ints(&b.input_ids), ints(&b.attention_mask), ints(&b.labels));
    let mask: Vec<f32> = Vec::try_from(b.loss_mask.flatten(0, -1)).expect("mask");
    let mut targets = 0;
    for (r, (p, g)) in prompts.iter().zip(gens).enumerate() {
        let row = &ids[r * t..(r + 1) * t];
        let n = p.len() + g.len();
        assert_eq!(&row[..p.len()], *p, "row {r} starts with its prompt");
        assert_eq!(
            &row[p.len()..n],
            &g[..],
            "row {r} continues with its sample"
        );
        assert!(row[n..].iter().all(|&x| x == 0), "right padding");
        for q in 0..t {
            assert_eq!(
                att[r * t + q],
                i64::from(q < n),
                "attention row {r} pos {q}"
            );
            // position q predicts token q+1 when that token was generated
            let want = if q + 1 >= p.len() && q + 1 < n {
                targets += 1;
                row[q + 1]
            } else {
                IGNORE
            };
            assert_eq!(lab[r * t + q], want, "label row {r} pos {q}");
            assert_eq!(mask[r * t + q], f32::from(u8::from(want != IGNORE)));
        }
    }
    assert_eq!(
        targets,
        gens.iter().map(Vec::len).sum::<usize>(),
        "every generated token, EOS included, carries loss"
    );
}

#[test]
fn forward_grad_only_for_the_student_when_asked() {
    let _g = torch_lock();
    let (_vs_s, student) = tiny(1);
    let (_vs_t, teacher) = tiny(2);
    let toks = tokens();
    let mut host = TrainHost::new(&student, Some(&teacher), &toks, Device::Cpu);
    let ex = micro();
    let refs: Vec<&Example> = ex.iter().collect();
    let b = collate(&refs, 0, Device::Cpu).unwrap();
    let s = host
        .forward(Model::Student, &b.input_ids, &b.attention_mask, None, true)
        .unwrap();
    assert_eq!(s.size(), [2, 7, V]);
    assert!(s.requires_grad());
    let s0 = host
        .forward(Model::Student, &b.input_ids, &b.attention_mask, None, false)
        .unwrap();
    assert!(!s0.requires_grad());
    assert!(s0.allclose(&s.detach(), 1e-6, 1e-6, false));
    let t = host
        .forward(Model::Teacher, &b.input_ids, &b.attention_mask, None, true)
        .unwrap();
    assert!(!t.requires_grad(), "the teacher never gets grad");
    assert!(!t.allclose(&s.detach(), 1e-3, 1e-3, false));
    // with rows (plugin ABI v4): exact on the loss rows, 0 on the others
    let r = host
        .forward(
            Model::Student,
            &b.input_ids,
            &b.attention_mask,
            Some(&b.loss_mask),
            false,
        )
        .unwrap();
    let keep = b.loss_mask.ne(0.0).to_kind(tch::Kind::Float).unsqueeze(-1);
    assert!(r.allclose(&(&s0 * &keep), 1e-5, 1e-5, false));
    let zeroed = r
        .abs()
        .sum_dim_intlist(-1, false, tch::Kind::Float)
        .eq(0.0)
        .sum(tch::Kind::Int64)
        .int64_value(&[]);
    let prompt_rows = b.loss_mask.eq(0.0).sum(tch::Kind::Int64).int64_value(&[]);
    assert_eq!(zeroed, prompt_rows, "every non-loss row is 0");
    let e = host
        .forward(
            Model::Student,
            &b.input_ids,
            &b.attention_mask,
            Some(&b.loss_mask.narrow(1, 0, 3)),
            false,
        )
        .unwrap_err();
    assert!(format!("{e:#}").contains("forward rows"), "{e:#}");
    assert!(host.timings.student_forward_backward > 0.0);
    assert!(host.timings.teacher_forward > 0.0);
    assert_eq!(host.timings.sampling, 0.0);
    // no teacher: a clear error
    let mut alone = TrainHost::new(&student, None, &toks, Device::Cpu);
    let e = alone
        .forward(Model::Teacher, &b.input_ids, &b.attention_mask, None, false)
        .unwrap_err();
    assert!(format!("{e:#}").contains("no teacher"), "{e:#}");
}

#[test]
fn samples_complete_the_micro_batch_prompts_like_collate() {
    let _g = torch_lock();
    let (_vs_s, student) = tiny(3);
    let (_vs_t, teacher) = tiny(4);
    let toks = tokens();
    let mut host = TrainHost::new(&student, Some(&teacher), &toks, Device::Cpu);
    let ex = micro();
    let refs: Vec<&Example> = ex.iter().collect();
    let spec = SampleSpec {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        max_new_tokens: 6,
    };
    let prompts: Vec<&[i64]> = ex.iter().map(|e| &e.input_ids[..e.prompt_len]).collect();
    // global batch = 2 micro-batches of this size: norm_tokens scales by 2
    host.set_micro_batch(&refs, 4, step_seed(42, 0, 0));
    let a = host.sample(Model::Student, &spec).unwrap();
    let gens_of = |b: &kidbench_plugin_host::SampledBatch| -> Vec<Vec<i64>> {
        let t = b.input_ids.size()[1] as usize;
        let ids = ints(&b.input_ids);
        let att = ints(&b.attention_mask);
        prompts
            .iter()
            .enumerate()
            .map(|(r, p)| {
                let n = att[r * t..(r + 1) * t].iter().sum::<i64>() as usize;
                ids[r * t + p.len()..r * t + n].to_vec()
            })
            .collect()
    };
    let gens = gens_of(&a);
    check_layout(&a, &prompts, &gens);
    for g in &gens {
        assert!(!g.is_empty() && g.len() <= 6);
        // stops at the first EOS, which is kept
        if let Some(i) = g.iter().position(|&x| x == EOS) {
            assert_eq!(i, g.len() - 1);
        } else {
            assert_eq!(g.len(), 6);
        }
    }
    let targets: usize = gens.iter().map(Vec::len).sum();
    assert_eq!(a.norm_tokens, 2.0 * targets as f64);
    assert!(!a.input_ids.requires_grad());

    // same micro-batch seed: the same samples; another seed or the teacher: others
    host.set_micro_batch(&refs, 4, step_seed(42, 0, 0));
    let again = host.sample(Model::Student, &spec).unwrap();
    assert!(again.input_ids.equal(&a.input_ids));
    let mut differs = false;
    for step in 1..6 {
        host.set_micro_batch(&refs, 2, step_seed(42, step, 0));
        let other = host.sample(Model::Student, &spec).unwrap();
        check_layout(&other, &prompts, &gens_of(&other));
        differs |=
            other.input_ids.size() != a.input_ids.size() || !other.input_ids.equal(&a.input_ids);
        // one micro-batch per step: the sampled batch's own count, exactly
        let n = other.loss_mask.sum(Kind::Float).double_value(&[]);
        assert_eq!(other.norm_tokens, n);
    }
    assert!(differs, "the step seed changes the samples");
    let t = host.sample(Model::Teacher, &spec).unwrap();
    check_layout(&t, &prompts, &gens_of(&t));
    // greedy (temperature 0) does not depend on the seed
    let greedy = SampleSpec {
        temperature: 0.0,
        ..spec
    };
    host.set_micro_batch(&refs, 2, 1);
    let g1 = host.sample(Model::Student, &greedy).unwrap();
    host.set_micro_batch(&refs, 2, 2);
    let g2 = host.sample(Model::Student, &greedy).unwrap();
    assert!(g1.input_ids.equal(&g2.input_ids));
    assert!(host.timings.sampling > 0.0);
    let bad = SampleSpec {
        max_new_tokens: 0,
        ..spec
    };
    assert!(host.sample(Model::Student, &bad).is_err());
}

/// A model whose generator returns fixed continuations (to check EOS handling exactly).
struct Scripted(Vec<Vec<i64>>);

impl CausalLm for Scripted {
    fn forward(&self, ids: &Tensor, _: &Tensor) -> anyhow::Result<Tensor> {
        Ok(ids.one_hot(V).to_kind(Kind::Float))
    }
    fn generate(
        &self,
        prompts: &[Vec<i64>],
        cfg: &GenerationConfig,
    ) -> anyhow::Result<GenerationOutput> {
        assert_eq!(cfg.eos_token_ids, [EOS]);
        assert_eq!(cfg.max_new_tokens, 3);
        Ok(GenerationOutput {
            tokens: self.0[..prompts.len()].to_vec(),
            logprobs: None,
            stopped_at_eos: self.0.iter().map(|g| g.last() == Some(&EOS)).collect(),
        })
    }
}

#[test]
fn labels_cover_the_eos_when_one_was_produced() {
    let m = Scripted(vec![vec![20, EOS], vec![21, 22, 23]]);
    let toks = tokens();
    let mut host = TrainHost::new(&m, None, &toks, Device::Cpu);
    let ex = micro();
    let refs: Vec<&Example> = ex.iter().collect();
    host.set_micro_batch(&refs, 2, 9);
    let spec = SampleSpec {
        temperature: 0.7,
        top_k: 5,
        top_p: 0.9,
        max_new_tokens: 3,
    };
    let b = host.sample(Model::Student, &spec).unwrap();
    let prompts: Vec<&[i64]> = ex.iter().map(|e| &e.input_ids[..e.prompt_len]).collect();
    check_layout(&b, &prompts, &m.0);
    assert_eq!(b.norm_tokens, 5.0);
    // row 0: [1 5 6 7 | 20 EOS], labels 20 at 3 and EOS at 4
    assert_eq!(
        &ints(&b.labels)[..6],
        &[IGNORE, IGNORE, IGNORE, 20, EOS, IGNORE]
    );
    let cfg = host.generation_config(Model::Student, &spec);
    assert_eq!(
        cfg.sampling,
        kidbench_model::Sampling::Sample {
            temperature: 0.7,
            top_k: Some(5),
            top_p: Some(0.9)
        }
    );
}

// ---------------------------------------------------------------- the trainer with plugins

/// A test method: with `on_policy`, student samples + reverse KL against the teacher plus MLE
/// on the ground truth through a host forward; else forward KL on the ground truth.
struct Probe {
    on_policy: bool,
}

impl Plugin for Probe {
    const NAME: &'static str = "probe";
    const VERSION: &'static str = "0";
    const DESCRIPTION: &'static str = "test method";
    fn params() -> Vec<ParamSpec> {
        vec![kidbench_kd::sdk::bool_param("on_policy", true, "sample")]
    }
    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(Probe {
            on_policy: p.bool("on_policy")?,
        })
    }
    fn data_request(&mut self, step: &StepInfo) -> anyhow::Result<DataRequest> {
        anyhow::ensure!(step.total_steps == 3, "total steps {}", step.total_steps);
        Ok(if self.on_policy {
            sampled(DataSource::StudentSamples, sampling(1.0, 5), true)
        } else {
            ground_truth(true)
        })
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let (s, t) = (ctx.student_logits()?, ctx.teacher_logits()?);
        let div = if self.on_policy {
            Divergence::ReverseKl
        } else {
            Divergence::ForwardKl
        };
        let loss = divergence_loss(div, &s, &t, &b.loss_mask, b.norm, 1.0)?;
        if !self.on_policy {
            return Ok(loss);
        }
        // the step's seed is a pure function of (run seed, step, micro-batch)
        let st = ctx.step();
        anyhow::ensure!(st.seed == step_seed(5, st.step, st.micro_batch), "seed");
        let g = ctx.sample(Model::Teacher, sampling(0.0, 4))?;
        let sg = ctx.forward(Model::Student, &g.input_ids, &g.attention_mask, true)?;
        let loss = loss + mle_loss(&sg, &g.labels, g.norm, IGNORE)?;
        Ok(loss)
    }
}

/// A test method `P` built in (not a dylib), created with `params`.
fn method<P: Plugin>(params: &[(&str, String)]) -> PluginMethod {
    let entry =
        PluginEntry::from_module(kidbench_kd::sdk::module::<P>(), "<test>".as_ref()).unwrap();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    entry.create(&params).unwrap()
}

fn probe(on_policy: bool) -> PluginMethod {
    method::<Probe>(&[("on_policy", on_policy.to_string())])
}

/// `m` trained by `cfg` on `data`: a tiny student (init seed 12 + `offset`) with a tiny
/// teacher (seed 11 + `offset`); the report and the student's final weights.
fn train_tiny(
    m: &PluginMethod,
    data: &[Example],
    cfg: &TrainConfig,
    offset: i64,
) -> (
    kidbench_train::trainer::TrainReport,
    Vec<(String, Vec<f64>)>,
) {
    let _g = torch_lock();
    let (_tv, teacher) = tiny(11 + offset);
    let (vs, student) = tiny(12 + offset);
    let before = weights(&vs);
    let r = train(
        &vs,
        &student,
        Some(&teacher),
        m,
        data,
        &tokens(),
        cfg,
        &TrainOptions::default(),
    )
    .expect("trains");
    let after = weights(&vs);
    assert!(max_abs_diff(&before, &after) > 1e-5, "weights moved");
    (r, after)
}

fn examples_v(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let p = 2 + i % 3;
            let mut ids = vec![1];
            ids.extend((0..p).map(|k| 4 + ((i + k) % 30) as i64));
            ids.extend((0..2 + i % 3).map(|k| 4 + ((i * 5 + k) % 30) as i64));
            ids.push(EOS);
            Example {
                input_ids: ids,
                prompt_len: 1 + p,
            }
        })
        .collect()
}

#[test]
fn trainer_serves_sampling_and_the_teacher_deterministically() {
    let data = examples_v(24);
    let cfg = TrainConfig {
        steps: 3,
        batch_size: 4,
        micro_batch_size: 2,
        lr: 1e-2,
        warmup_steps: 1,
        seed: 5,
        checkpoint_every: 0,
        log_every: 1,
        ..Default::default()
    };
    let toks = tokens();
    let go = |on_policy: bool| {
        let (r, after) = train_tiny(&probe(on_policy), &data, &cfg, 0);
        (after, r)
    };
    let (w1, r1) = go(true);
    let (w2, r2) = go(true);
    assert_eq!(w1, w2, "sampling is seeded: two runs give the same weights");
    assert_eq!(r1.final_loss, r2.final_loss);
    assert_eq!(r1.steps_done, 3);
    assert!(r1.timings.sampling > 0.0 && r1.timings.teacher_forward > 0.0);
    assert!(r1.timings.student_forward_backward > 0.0);
    let (_, r3) = go(false);
    assert_eq!(r3.timings.sampling, 0.0, "ground truth only: no sampling");
    assert!(r3.timings.teacher_forward > 0.0);

    // a method that needs the teacher, without one: a clear error naming the method
    let _g = torch_lock();
    let (vs, student) = tiny(12);
    let e = train(
        &vs,
        &student,
        None,
        &probe(false),
        &data,
        &toks,
        &cfg,
        &TrainOptions::default(),
    )
    .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("probe") && e.contains("no teacher"), "{e}");
}

#[test]
fn a_time_budget_trains_until_it_is_spent() {
    let data = examples(40);
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        steps: 1_000_000,
        batch_size: 8,
        micro_batch_size: 8,
        lr: 1e-2,
        warmup_steps: 0,
        checkpoint_every: 0,
        log_every: 1,
        time_budget_seconds: Some(0.5),
        ..Default::default()
    };
    let opts = TrainOptions {
        checkpoint_dir: Some(dir.path().join("ckpt")),
        resume: true,
        metrics_path: Some(dir.path().join("m.jsonl")),
        ..Default::default()
    };
    let _g = torch_lock();
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let m = Bigram::new(&vs);
    let sft = kidbench_train::method::builtin_sft().unwrap();
    let r = train(
        &vs,
        &m,
        None,
        &sft,
        &data,
        &TokenIds::pad_only(PAD),
        &cfg,
        &opts,
    )
    .unwrap();
    assert!(r.train_seconds >= 0.5, "{}", r.train_seconds);
    assert!(r.steps_done >= 1 && r.steps_done < cfg.steps);
    // one metrics line per step; the learning rate follows the budget used: it rises during
    // the warmup, then never rises again
    let text = std::fs::read_to_string(dir.path().join("m.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), r.steps_done);
    assert_eq!(
        lines.last().unwrap()["step"].as_u64(),
        Some(r.steps_done as u64)
    );
    let lrs: Vec<f64> = lines.iter().map(|l| l["lr"].as_f64().unwrap()).collect();
    let top = lrs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap();
    assert!(lrs[top..].windows(2).all(|w| w[1] <= w[0]), "{lrs:?}");
    assert!(lrs.iter().all(|&l| l > 0.0 && l <= cfg.lr));
    // the last step is checkpointed
    assert!(dir
        .path()
        .join(format!("ckpt/step-{}/meta.json", r.steps_done))
        .is_file());
    // resumed after the budget is spent: nothing more to do
    let again = train(
        &vs,
        &m,
        None,
        &sft,
        &data,
        &TokenIds::pad_only(PAD),
        &cfg,
        &opts,
    )
    .unwrap();
    assert_eq!(again.resumed_from, Some(r.steps_done));
    assert_eq!(again.steps_done, r.steps_done);
}

// ---------------------------------------------------------------- fixed teacher samples

/// `(tag, prompt, completion)` of one teacher-sampled row.
type SeenRow = (String, Vec<i64>, Vec<i64>);

/// Every teacher-sampled row a `Recorder` saw.
static SEEN: std::sync::Mutex<Vec<SeenRow>> = std::sync::Mutex::new(Vec::new());

/// A test method that trains on teacher samples (`fixed`: made once before training) and
/// records each row it is handed.
struct Recorder {
    tag: String,
    fixed: bool,
}

impl Plugin for Recorder {
    const NAME: &'static str = "recorder";
    const VERSION: &'static str = "0";
    const DESCRIPTION: &'static str = "test method";
    fn params() -> Vec<ParamSpec> {
        vec![
            kidbench_kd::sdk::bool_param("fixed", true, "fixed teacher samples"),
            kidbench_kd::sdk::text_param("tag", "", "the run's name in SEEN"),
        ]
    }
    fn new(p: &Params) -> anyhow::Result<Self> {
        Ok(Recorder {
            tag: p.text("tag")?.to_string(),
            fixed: p.bool("fixed")?,
        })
    }
    fn data_request(&mut self, _: &StepInfo) -> anyhow::Result<DataRequest> {
        let source = if self.fixed {
            DataSource::FixedTeacherSamples
        } else {
            DataSource::TeacherSamples
        };
        Ok(sampled(source, sampling(1.0, 6), true))
    }
    fn loss(&mut self, ctx: &mut Ctx<'_>) -> anyhow::Result<Tensor> {
        let b = ctx.batch();
        let ids = ints(&b.input_ids);
        let labels = ints(&b.labels);
        let t = b.input_ids.size()[1] as usize;
        let mut seen = SEEN.lock().unwrap();
        for r in 0..b.input_ids.size()[0] as usize {
            let row = &ids[r * t..(r + 1) * t];
            let lab = &labels[r * t..(r + 1) * t];
            // the completion: the labelled positions' next tokens; the prompt: what precedes
            let first = lab.iter().position(|&l| l != IGNORE).unwrap_or(t - 1);
            let gen: Vec<i64> = lab.iter().copied().filter(|&l| l != IGNORE).collect();
            seen.push((self.tag.clone(), row[..=first].to_vec(), gen));
        }
        drop(seen);
        let (s, te) = (ctx.student_logits()?, ctx.teacher_logits()?);
        Ok(divergence_loss(
            Divergence::ReverseKl,
            &s,
            &te,
            &b.loss_mask,
            b.norm,
            1.0,
        )?)
    }
}

fn recorder(fixed: bool, tag: &str) -> PluginMethod {
    method::<Recorder>(&[("fixed", fixed.to_string()), ("tag", tag.to_string())])
}

#[test]
fn fixed_teacher_samples_are_made_once_per_prompt_before_training() {
    // 6 distinct prompts, 3 epochs: every prompt comes back twice
    let data = examples_v(6);
    let cfg = TrainConfig {
        steps: 9,
        batch_size: 2,
        micro_batch_size: 2,
        lr: 1e-2,
        warmup_steps: 1,
        seed: 3,
        checkpoint_every: 0,
        log_every: 1,
        ..Default::default()
    };
    let go = |fixed: bool, tag: &str| {
        let (r, w) = train_tiny(&recorder(fixed, tag), &data, &cfg, 10);
        let rows: Vec<(Vec<i64>, Vec<i64>)> = SEEN
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.0 == tag)
            .map(|s| (s.1.clone(), s.2.clone()))
            .collect();
        (r, rows, w)
    };
    let distinct = |rows: &[(Vec<i64>, Vec<i64>)]| {
        let mut m: std::collections::BTreeMap<Vec<i64>, std::collections::BTreeSet<Vec<i64>>> =
            Default::default();
        for (p, g) in rows {
            m.entry(p.clone()).or_default().insert(g.clone());
        }
        m
    };

    let (r, rows, w) = go(true, "fixed-a");
    assert_eq!(rows.len(), 18, "9 steps of 2 rows");
    let by_prompt = distinct(&rows);
    assert_eq!(by_prompt.len(), 6, "every prompt visited");
    for (p, gens) in &by_prompt {
        assert_eq!(
            gens.len(),
            1,
            "prompt {p:?} got one fixed completion, not {gens:?}"
        );
    }
    // made once: nothing sampled during training; the precompute made each prompt's once
    assert_eq!(r.token_counts.teacher_sampled, 0);
    let made: u64 = by_prompt
        .values()
        .map(|g| g.iter().next().unwrap().len() as u64)
        .sum();
    assert_eq!(r.token_counts.teacher_precomputed, made);
    assert_eq!(r.timings.sampling, 0.0, "no sampling inside the steps");
    assert!(r.timings.precompute > 0.0);
    // reproducible: the same run makes the same samples and weights
    let (_, rows2, w2) = go(true, "fixed-b");
    assert_eq!(rows, rows2);
    assert_eq!(w, w2);

    // fresh samples: a prompt's second visit draws again
    let (r, rows, _) = go(false, "fresh");
    assert_eq!(rows.len(), 18);
    assert!(r.token_counts.teacher_sampled > 0);
    assert_eq!(r.token_counts.teacher_precomputed, 0);
    assert_eq!(r.timings.precompute, 0.0);
    let redrawn = distinct(&rows).values().filter(|g| g.len() > 1).count();
    assert!(
        redrawn > 0,
        "with temperature 1 some prompt's samples differ"
    );
}
