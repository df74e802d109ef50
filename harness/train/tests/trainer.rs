//! The trainer core: loss mask, accumulation-invariant normalization, determinism, resume,
//! checkpoint integrity.

mod common;

use common::*;
use kidbench_train::data::{collate, Example, IGNORE};
use kidbench_train::host::TokenIds;
use kidbench_train::method::builtin_sft;
use kidbench_train::trainer::{train, TrainConfig, TrainOptions};
use tch::nn::VarStore;
use tch::Device;

fn cfg(steps: usize, micro: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 8,
        micro_batch_size: micro,
        lr: 1e-2,
        warmup_steps: 2,
        checkpoint_every: 0,
        log_every: 1,
        ..Default::default()
    }
}

fn run(
    c: &TrainConfig,
    data: &[Example],
    opts: &TrainOptions,
) -> (
    Vec<(String, Vec<f64>)>,
    kidbench_train::trainer::TrainReport,
) {
    let _g = torch_lock();
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let m = Bigram::new(&vs);
    let sft = builtin_sft().expect("the linked-in sft plugin");
    let r =
        train(&vs, &m, None, &sft, data, &TokenIds::pad_only(PAD), c, opts).expect("training runs");
    (weights(&vs), r)
}

#[test]
fn loss_mask_covers_target_and_eos_only() {
    // BOS p1 p2 | t1 t2 EOS ; a shorter second row is padded.
    let a = Example {
        input_ids: vec![1, 5, 6, 7, 8, 2],
        prompt_len: 3,
    };
    let b = Example {
        input_ids: vec![1, 9, 10, 2],
        prompt_len: 2,
    };
    let batch = collate(&[&a, &b], PAD, Device::Cpu).unwrap();
    let labels: Vec<i64> = Vec::try_from(batch.labels.flatten(0, -1)).unwrap();
    let mask: Vec<f32> = Vec::try_from(batch.loss_mask.flatten(0, -1)).unwrap();
    let att: Vec<i64> = Vec::try_from(batch.attention_mask.flatten(0, -1)).unwrap();
    let i = IGNORE;
    // Row a: positions 2,3,4 predict t1, t2, EOS.
    assert_eq!(&labels[..6], &[i, i, 7, 8, 2, i]);
    // Row b: prompt BOS 9, targets 10 EOS; positions 4,5 are padding.
    assert_eq!(&labels[6..], &[i, 10, 2, i, i, i]);
    let expect_mask: Vec<f32> = labels.iter().map(|&l| (l != i) as u8 as f32).collect();
    assert_eq!(mask, expect_mask);
    assert_eq!(att, vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    assert_eq!(batch.target_tokens, 3 + 2);
    assert_eq!(
        batch.target_tokens as usize,
        a.target_tokens() + b.target_tokens()
    );
    // The last label of each row with a target is EOS.
    assert!(labels.contains(&2));
}

#[test]
fn bad_examples_are_rejected() {
    let e = Example {
        input_ids: vec![1, 2],
        prompt_len: 3,
    };
    let err = collate(&[&e], PAD, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("prompt_len"), "{err}");
    assert!(collate(&[], PAD, Device::Cpu).is_err());
}

#[test]
fn accumulation_split_does_not_change_the_result() {
    let data = examples(40);
    let opts = TrainOptions::default();
    let (w8, r8) = run(&cfg(3, 8), &data, &opts);
    let (w2, r2) = run(&cfg(3, 2), &data, &opts);
    let (w3, r3) = run(&cfg(3, 3), &data, &opts);
    assert!(
        (r8.final_loss - r2.final_loss).abs() < 1e-5,
        "{} vs {}",
        r8.final_loss,
        r2.final_loss
    );
    assert!((r8.final_loss - r3.final_loss).abs() < 1e-5);
    assert!(max_abs_diff(&w8, &w2) < 1e-5, "{}", max_abs_diff(&w8, &w2));
    assert!(max_abs_diff(&w8, &w3) < 1e-5, "{}", max_abs_diff(&w8, &w3));
    // Training changed the weights at all (the comparison above is not vacuous).
    let _g = torch_lock();
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let _ = Bigram::new(&vs);
    assert!(max_abs_diff(&w8, &weights(&vs)) > 1e-4);
}

#[test]
fn same_seed_same_weights() {
    let data = examples(40);
    let opts = TrainOptions::default();
    let (a, ra) = run(&cfg(6, 4), &data, &opts);
    let (b, rb) = run(&cfg(6, 4), &data, &opts);
    assert_eq!(a, b);
    assert_eq!(ra.final_loss, rb.final_loss);
    // A different data-order seed gives different weights.
    let mut c2 = cfg(6, 4);
    c2.seed = 43;
    let (c, _) = run(&c2, &data, &opts);
    assert_ne!(a, c);
}

#[test]
fn killed_and_resumed_equals_uninterrupted() {
    let data = examples(30);
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(10, 4);
    c.checkpoint_every = 4;
    let (straight, r_straight) = run(&c, &data, &TrainOptions::default());

    let opts = TrainOptions {
        checkpoint_dir: Some(dir.path().join("ckpt")),
        resume: true,
        metrics_path: Some(dir.path().join("metrics.jsonl")),
        stop_after: Some(6), // "killed" after step 6: the last checkpoint is step 4
        ..Default::default()
    };
    let (_, r1) = run(&c, &data, &opts);
    assert_eq!(r1.steps_done, 6);
    assert!(dir.path().join("ckpt/step-4/state.safetensors").is_file());
    let opts = TrainOptions {
        stop_after: None,
        ..opts
    };
    let (resumed, r2) = run(&c, &data, &opts);
    assert_eq!(r2.resumed_from, Some(4));
    assert_eq!(
        resumed, straight,
        "resumed weights differ from the uninterrupted run"
    );
    assert_eq!(r2.final_loss, r_straight.final_loss);
    // Metrics: one line per step 1..=10, no duplicates from the re-run steps 5-6.
    let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());
    // A finished run resumed again does nothing more and keeps the weights.
    let (again, r3) = run(&c, &data, &opts);
    assert_eq!(r3.resumed_from, Some(10));
    assert_eq!(again, straight);
}

#[test]
fn a_run_ended_early_is_checkpointed_there_and_the_full_run_continues_from_it() {
    let data = examples(30);
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(10, 4);
    c.checkpoint_every = 4;
    let (straight, _) = run(&c, &data, &TrainOptions::default());
    let opts = TrainOptions {
        checkpoint_dir: Some(dir.path().join("ckpt")),
        resume: true,
        end_at: Some(6), // not a multiple of checkpoint_every: checkpointed because it ends
        ..Default::default()
    };
    let (early, r1) = run(&c, &data, &opts);
    assert_eq!(r1.steps_done, 6);
    assert!(dir.path().join("ckpt/step-6/state.safetensors").is_file());
    assert_ne!(early, straight);
    let (full, r2) = run(
        &c,
        &data,
        &TrainOptions {
            end_at: None,
            ..opts
        },
    );
    assert_eq!(r2.resumed_from, Some(6));
    assert_eq!(full, straight, "the continued run is the straight one");
}

#[test]
fn corrupt_checkpoint_is_a_clear_error() {
    let data = examples(20);
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(3, 4);
    let opts = TrainOptions {
        checkpoint_dir: Some(dir.path().join("ckpt")),
        resume: true,
        ..Default::default()
    };
    run(&c, &data, &opts);
    let state = dir.path().join("ckpt/step-3/state.safetensors");
    let bytes = std::fs::read(&state).unwrap();
    std::fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();
    let _g = torch_lock();
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let m = Bigram::new(&vs);
    let sft = builtin_sft().unwrap();
    let tokens = TokenIds::pad_only(PAD);
    let err = train(&vs, &m, None, &sft, &data, &tokens, &c, &opts).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("state.safetensors"), "{msg}");
    assert!(msg.contains("corrupt or truncated"), "{msg}");

    // A resume with different settings is refused, naming the checkpoint.
    std::fs::write(&state, &bytes).unwrap();
    let mut other = c.clone();
    other.lr = 0.5;
    let err = train(&vs, &m, None, &sft, &data, &tokens, &other, &opts).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("meta.json") && msg.contains("different training configuration"),
        "{msg}"
    );
}

#[test]
fn lr_schedule_warms_up_then_decays() {
    use kidbench_train::optim::lr_at;
    assert!((lr_at(0, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
    assert!((lr_at(9, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
    assert!((lr_at(10, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
    assert!((lr_at(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
    let mid = lr_at(55, 100, 10, 1.0, 0.1);
    assert!((mid - 0.55).abs() < 1e-9, "{mid}");
}

/// Issue 15: a run without `resume` over a finished run's folder, killed, then resumed, kept
/// only a few lines of its metrics (it resumed from the old run's last checkpoint). A fresh run
/// now removes the earlier run's checkpoints, and what a failed write left.
#[test]
fn a_fresh_run_over_a_finished_one_killed_and_resumed_keeps_its_whole_curve() {
    let data = examples(30);
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(10, 4);
    c.checkpoint_every = 4;
    let (straight, _) = run(&c, &data, &TrainOptions::default());
    let ckpt = dir.path().join("ckpt");
    let metrics = dir.path().join("metrics.jsonl");
    let fresh = TrainOptions {
        checkpoint_dir: Some(ckpt.clone()),
        resume: false,
        metrics_path: Some(metrics.clone()),
        ..Default::default()
    };
    // A finished run: its last checkpoint is step 10.
    run(&c, &data, &fresh);
    assert!(ckpt.join("step-10").is_dir());
    // What a checkpoint write killed half-way leaves.
    std::fs::create_dir_all(ckpt.join(".tmp-step-8-4242")).unwrap();
    // The same run again without resume, "killed" after step 3, before its first checkpoint.
    let (_, r1) = run(
        &c,
        &data,
        &TrainOptions {
            stop_after: Some(3),
            ..fresh.clone()
        },
    );
    assert_eq!(r1.resumed_from, None);
    assert!(
        !ckpt.join("step-10").exists(),
        "the earlier run's checkpoint is not this run's"
    );
    // Resumed: this run has no checkpoint yet, so it starts again (not from the earlier run's
    // step 10), to the uninterrupted weights and a whole curve.
    let (resumed, r2) = run(
        &c,
        &data,
        &TrainOptions {
            resume: true,
            ..fresh
        },
    );
    assert_eq!(r2.resumed_from, None);
    assert_eq!(resumed, straight);
    let steps: Vec<u64> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());
    let leftovers: Vec<String> = std::fs::read_dir(&ckpt)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
