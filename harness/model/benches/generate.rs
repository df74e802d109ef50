//! Generation throughput of a tiny-s-sized model (d=128, 2 layers, 4 heads, vocab 2000):
//! batch 32, left-padded prompts of 60..80 tokens, 64 new tokens, no EOS.
//!
//!     source scripts/env.sh && OMP_NUM_THREADS=1 cargo bench -p kidbench-model --bench generate
//!
//! On a small shared CPU box keep libtorch to one thread (OMP_NUM_THREADS=1 or
//! tch::set_num_threads(1)): with 2 threads competing with other jobs it is ~10x slower.
//! Criterion reports elements/s = generated tokens per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kidbench_model::{generate_from_prompts, Config, GenerationConfig, Qwen2ForCausalLM, Sampling};
use tch::nn;

const BATCH: usize = 32;
const NEW: i64 = 64;

fn bench(c: &mut Criterion) {
    let device = kidbench_model::best_device();
    let cfg = Config {
        vocab_size: 2000,
        hidden_size: 128,
        intermediate_size: 384,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(4),
        initializer_range: Some(0.1),
        ..Config::default()
    };
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(device);
    vs.set_kind(kidbench_model::default_kind(device));
    let model = Qwen2ForCausalLM::new(&vs.root(), &cfg).expect("model");
    let prompts: Vec<Vec<i64>> = (0..BATCH)
        .map(|i| {
            (0..60 + (i * 7) % 21)
                .map(|j| ((i * 131 + j * 17) % 1990 + 5) as i64)
                .collect()
        })
        .collect();
    let mut group = c.benchmark_group(format!("generate_tiny_s_{device:?}"));
    group.throughput(Throughput::Elements((BATCH as u64) * NEW as u64));
    group.sample_size(10);
    for (name, sampling) in [
        ("greedy", Sampling::Greedy),
        (
            "sample_t1_k50_p095",
            Sampling::Sample {
                temperature: 1.0,
                top_k: Some(50),
                top_p: Some(0.95),
            },
        ),
        (
            "sample_t1",
            Sampling::Sample {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
        ),
    ] {
        let gen = GenerationConfig {
            max_new_tokens: NEW,
            sampling,
            seed: 1,
            ..Default::default()
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let out = generate_from_prompts(&model, &prompts, &gen).expect("generate");
                assert_eq!(out.tokens[0].len(), NEW as usize);
                out
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
