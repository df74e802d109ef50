//! A test fixture: a minimal causal LM (embedding → linear head) to exercise the trainer quickly.
#![allow(dead_code)]

use kidbench_train::data::Example;
use kidbench_train::trainer::CausalLm;
use tch::nn::{self, Module};
use tch::Tensor;

/// libtorch's RNG is process-global and tests run on parallel threads: seeded sections take this.
pub fn torch_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub const VOCAB: i64 = 20;
pub const PAD: i64 = 0;

pub struct Bigram {
    emb: nn::Embedding,
    head: nn::Linear,
}

impl Bigram {
    pub fn new(vs: &nn::VarStore) -> Self {
        let p = vs.root();
        Bigram {
            emb: nn::embedding(&p / "emb", VOCAB, 16, Default::default()),
            head: nn::linear(&p / "head", 16, VOCAB, Default::default()),
        }
    }
}

impl CausalLm for Bigram {
    fn forward(&self, ids: &Tensor, _mask: &Tensor) -> anyhow::Result<Tensor> {
        Ok(self.head.forward(&self.emb.forward(ids).tanh()))
    }
}

/// Examples of varying prompt and target lengths: BOS=1, EOS=2, tokens 3..VOCAB.
pub fn examples(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let p = 2 + i % 5;
            let t = 1 + (i * 7) % 4;
            let mut ids = vec![1];
            ids.extend((0..p).map(|k| 3 + ((i + k) % 17) as i64));
            ids.extend((0..t).map(|k| 3 + ((i * 3 + k) % 17) as i64));
            ids.push(2);
            Example {
                input_ids: ids,
                prompt_len: 1 + p,
            }
        })
        .collect()
}

/// All variables of a store, by name, as flat f64 vectors.
pub fn weights(vs: &nn::VarStore) -> Vec<(String, Vec<f64>)> {
    let mut v: Vec<(String, Vec<f64>)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| {
            let flat = t.flatten(0, -1).to_kind(tch::Kind::Double);
            (n, Vec::<f64>::try_from(&flat).expect("tensor to vec"))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub fn max_abs_diff(a: &[(String, Vec<f64>)], b: &[(String, Vec<f64>)]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut m = 0f64;
    for ((na, va), (nb, vb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        for (x, y) in va.iter().zip(vb) {
            m = m.max((x - y).abs());
        }
    }
    m
}
