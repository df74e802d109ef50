//! The kidbench side of `scripts/bench-hf.py` (issue 17): the same model folders, token ids and
//! lengths as the transformers side, one JSON line on stdout.
//!
//!     side_by_side generate --model DIR --inputs FILE [--threads N] [--reps R]
//!     side_by_side train --method sft|kid --student DIR [--teacher DIR] --inputs FILE
//!                        [--threads N] [--steps S] [--warmup W] [--plugin-dir DIR]
//!
//! `generate`: batch 32, left-padded prompts (`inputs.json`), 64 new tokens, greedy, no EOS. The
//! prefill (one cached forward over the prompts, last-position logits, argmax) is timed on its
//! own before each whole `generate`; decode = generate - prefill.
//!
//! `train`: kidbench's own trainer (`trainer::train_with_hook`, the `sft` plugin linked in, `kid`
//! from the plugin folder) on one fixed batch of 32 rows (`inputs.json`): every step is forward,
//! backward, clip 1.0 and AdamW on the same examples. Step times are the gaps between the
//! trainer's after-step hooks.
//!
//! `--device cuda` (after loading libtorch_cuda.so from LD_LIBRARY_PATH, as `kidbench` does)
//! runs either on the GPU in bf16 (`scripts/gpu-check.sh`); the default is the CPU in fp32.
//!
//! Every timed region is read on CLOCK_MONOTONIC, the clock `perf record -k CLOCK_MONOTONIC`
//! stamps its samples with, and reported as a `[start, end]` pair (`*_at`, seconds) beside its
//! duration, so that `bench-hf.py perf-split` can attribute samples to prefill, generate and
//! training steps.
//!
//! Run through `scripts/bench-hf.sh` (which builds it with `cargo bench --no-run`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use kidbench_model::{generate_from_prompts, left_pad, GenerationConfig, Sampling};
use kidbench_train::data::Example;
use kidbench_train::host::TokenIds;
use kidbench_train::lm::load_dir;
use kidbench_train::parts::CausalLm;
use kidbench_train::trainer::{train_with_hook, TrainConfig, TrainOptions};
use serde_json::{json, Value};
use tch::Device;

struct Args(Vec<String>);

impl Args {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .position(|a| a == key)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }
    fn req(&self, key: &str) -> anyhow::Result<&str> {
        self.get(key)
            .with_context(|| format!("side_by_side: {key} is required"))
    }
    fn num(&self, key: &str, default: usize) -> anyhow::Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .with_context(|| format!("side_by_side: {key} {v:?} is not a count")),
        }
    }
}

fn device(a: &Args) -> anyhow::Result<Device> {
    kidbench_train::lm::parse_device(a.get("--device").unwrap_or("cpu"))
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CLOCK_MONOTONIC in seconds (Linux's clock id 1), as perf's `-k CLOCK_MONOTONIC` stamps samples.
fn mono() -> f64 {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec of the C layout (x86_64/aarch64 Linux).
    let rc = unsafe { clock_gettime(1, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Waits for queued GPU work, so that a timer read after it measures the work.
fn sync(d: Device) {
    if let Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

fn read_inputs(path: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {path}"))
}

fn rows(v: &Value, what: &str) -> anyhow::Result<Vec<Vec<i64>>> {
    serde_json::from_value(v.clone()).with_context(|| format!("inputs.json: {what}"))
}

fn id(v: &Value, key: &str) -> anyhow::Result<i64> {
    v[key]
        .as_i64()
        .with_context(|| format!("inputs.json: {key} is not an integer"))
}

fn generate(a: &Args) -> anyhow::Result<Value> {
    let inputs = read_inputs(a.req("--inputs")?)?;
    let reps = a.num("--reps", 3)?;
    let dev = device(a)?;
    let lm = load_dir(&PathBuf::from(a.req("--model")?), dev)?;
    let model = &lm.model;
    let prompts = rows(&inputs["prompts"], "prompts")?;
    let cfg = GenerationConfig {
        max_new_tokens: id(&inputs, "max_new_tokens")?,
        sampling: Sampling::Greedy,
        eos_token_ids: Vec::new(),
        pad_token_id: id(&inputs, "pad")?,
        seed: 0,
        return_logprobs: false,
    };
    let mut runs = Vec::new();
    let mut first = Vec::new();
    for r in 0..=reps {
        // the first round is a warm-up
        let m0 = mono();
        {
            let _g = tch::no_grad_guard();
            let (ids, mask) = left_pad(&prompts, cfg.pad_token_id, model.device())?;
            let mut cache = model.new_kv_cache(ids.size()[1] + cfg.max_new_tokens);
            let logits = model.forward_last_with_cache(&ids, &mask, &mut cache)?;
            let _ = logits.argmax(-1, false);
            sync(dev);
        }
        let m1 = mono();
        let out = generate_from_prompts(model, &prompts, &cfg)?;
        let m2 = mono();
        if out
            .tokens
            .iter()
            .any(|t| t.len() as i64 != cfg.max_new_tokens)
        {
            bail!(
                "a sequence has fewer than {} new tokens",
                cfg.max_new_tokens
            );
        }
        first = out.tokens[0].iter().take(8).copied().collect();
        if r > 0 {
            runs.push(json!({"prefill_s": m1 - m0, "generate_s": m2 - m1,
                "prefill_at": [m0, m1], "generate_at": [m1, m2]}));
        }
    }
    Ok(
        json!({"side": "kidbench", "case": "generate", "threads": tch::get_num_threads(), "device": format!("{dev:?}"), "kind": format!("{:?}", model.kind()), "runs": runs, "first_tokens": first}),
    )
}

fn train(a: &Args) -> anyhow::Result<Value> {
    let inputs = read_inputs(a.req("--inputs")?)?;
    let method_name = a.req("--method")?;
    let steps = a.num("--steps", 5)?;
    let warmup = a.num("--warmup", 2)?;
    let dev = device(a)?;
    let student = load_dir(&PathBuf::from(a.req("--student")?), dev)?;
    let teacher = match a.get("--teacher") {
        Some(t) => Some(load_dir(&PathBuf::from(t), dev)?),
        None => None,
    };
    let prompt_len = inputs["train"]["prompt_len"]
        .as_u64()
        .context("inputs.json: train.prompt_len")? as usize;
    let data: Vec<Example> = rows(&inputs["train"]["rows"], "train.rows")?
        .into_iter()
        .map(|input_ids| Example {
            input_ids,
            prompt_len,
        })
        .collect();
    let tokens = TokenIds {
        pad: id(&inputs, "pad")?,
        eos: id(&inputs, "eos")?,
        mask: id(&inputs, "mask")?,
        stop: vec![id(&inputs, "eos")?],
    };
    let method = match method_name {
        "sft" => kidbench_train::method::builtin_sft()?,
        "kid" => {
            let dirs: Vec<PathBuf> = a
                .get("--plugin-dir")
                .map(PathBuf::from)
                .into_iter()
                .collect();
            let reg =
                kidbench_plugin_host::Registry::discover(&kidbench_plugin_host::search_dirs(&dirs));
            let alpha = inputs["kid_alpha"].as_f64().unwrap_or(0.2);
            reg.create(&format!("kid:alpha={alpha}"))
                .context("the kid plugin (build it: cargo build --release --workspace)")?
        }
        other => bail!("side_by_side: --method {other:?}: use sft or kid"),
    };
    let cfg = TrainConfig {
        steps: warmup + steps,
        batch_size: data.len(),
        micro_batch_size: data.len(),
        lr: 1e-3,
        warmup_steps: 0,
        grad_clip: 1.0,
        seed: 0,
        checkpoint_every: 0,
        log_every: 1_000_000,
        group_by_length: false,
        ..TrainConfig::default()
    };
    let mut monos = vec![mono()];
    let teacher_ref = teacher.as_ref().map(|t| &t.model as &dyn CausalLm);
    let report = train_with_hook(
        &student.vs,
        &student.model,
        teacher_ref,
        &method,
        &data,
        &tokens,
        &cfg,
        &TrainOptions {
            label: format!("bench {method_name}"),
            ..TrainOptions::default()
        },
        &mut |_| {
            monos.push(mono());
            Ok(())
        },
    )?;
    let step_at: Vec<[f64; 2]> = monos
        .windows(2)
        .map(|w| [w[0], w[1]])
        .skip(warmup)
        .collect();
    let times: Vec<f64> = step_at.iter().map(|[a, b]| b - a).collect();
    let tokens_per_step: usize = data.iter().map(|e| e.input_ids.len()).sum();
    Ok(json!({
        "side": "kidbench", "case": format!("train-{method_name}"),
        "threads": tch::get_num_threads(), "device": format!("{dev:?}"),
        "kind": format!("{:?}", student.model.kind()),
        "parameters": student.model.named_parameters().iter().map(|(_, t)| t.numel()).sum::<usize>(),
        "step_s": times, "step_at": step_at, "tokens_per_step": tokens_per_step,
        "final_loss": report.final_loss, "timings": report.timings,
    }))
}

fn main() -> anyhow::Result<()> {
    // Before any tch call, as in kidbench's main: CUDA registers only if libtorch_cuda is loaded.
    kidbench_model::load_cuda_runtime();
    // As kidbench's main does (KIDBENCH_MALLOC=default measures glibc's defaults).
    let allocator = kidbench_model::tune_allocator();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` appends `--bench`; ignore it.
    let argv: Vec<String> = argv.into_iter().filter(|a| a != "--bench").collect();
    let a = Args(argv);
    let threads = a.num("--threads", 1)?;
    tch::set_num_threads(threads as i32);
    let mut out = match a.0.first().map(String::as_str) {
        Some("generate") => generate(&a)?,
        Some("train") => train(&a)?,
        _ => bail!("usage: side_by_side generate|train ... (see the file's header)"),
    };
    out["allocator"] = json!(format!("{allocator:?}"));
    println!("{out}");
    Ok(())
}
