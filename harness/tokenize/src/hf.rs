//! Special-token resolution for Hugging Face model directories.
//! The policy is documented on [`crate::SqlTokenizer::load`].

use std::path::Path;

use serde_json::Value;
use tokenizers::{AddedToken, Tokenizer};

use crate::{read_json, Error, Result, SpecialToken, SpecialTokens, KID_MASK_TOKEN, KID_PAD_TOKEN};

/// Outcome of resolving an HF tokenizer.
pub(crate) struct Resolved {
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    pub stop_ids: Vec<u32>,
    pub mask_added: bool,
    pub pad_added: bool,
    pub config_vocab_size: Option<usize>,
}

/// The optional sidecar JSON files of an HF model directory (`Value::Null` when absent).
struct Sidecars {
    tokenizer_config: Value,
    special_tokens_map: Value,
    config: Value,
    generation_config: Value,
}

fn optional_json(dir: &Path, name: &str) -> Result<Value> {
    let path = dir.join(name);
    if path.is_file() {
        read_json(&path)
    } else {
        Ok(Value::Null)
    }
}

/// The token text of a field that is a string or an AddedToken object (`{"content": ...}`).
fn token_text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(m) => m.get("content").and_then(Value::as_str),
        _ => None,
    }
}

/// Ids of a field that is an integer or a list of integers.
fn id_list(v: &Value) -> Vec<u32> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .into_iter()
            .collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect(),
        _ => Vec::new(),
    }
}

impl Sidecars {
    /// The declared token for `key` (e.g. `eos_token`) in tokenizer_config, then
    /// special_tokens_map, if it exists in the vocabulary.
    fn declared(&self, tok: &Tokenizer, key: &str) -> Option<SpecialToken> {
        [&self.tokenizer_config, &self.special_tokens_map]
            .into_iter()
            .filter_map(|file| file.get(key).and_then(token_text))
            .find_map(|text| by_text(tok, text))
    }

    /// The first id for `key` (e.g. `eos_token_id`) in config.json then generation_config.json.
    fn config_id(&self, tok: &Tokenizer, key: &str) -> Option<SpecialToken> {
        [&self.config, &self.generation_config]
            .into_iter()
            .filter_map(|file| file.get(key))
            .flat_map(id_list)
            .find_map(|id| by_id(tok, id))
    }
}

fn by_text(tok: &Tokenizer, text: &str) -> Option<SpecialToken> {
    tok.token_to_id(text).map(|id| SpecialToken {
        token: text.to_owned(),
        id,
    })
}

fn by_id(tok: &Tokenizer, id: u32) -> Option<SpecialToken> {
    tok.id_to_token(id).map(|token| SpecialToken { token, id })
}

/// The first of `names` that is a *special* added token of `tok`.
fn well_known(tok: &Tokenizer, names: &[&str]) -> Option<SpecialToken> {
    let added = tok.get_added_tokens_decoder();
    names.iter().find_map(|name| {
        added
            .iter()
            .find(|(_, t)| t.special && t.content == *name)
            .map(|(&id, t)| SpecialToken {
                token: t.content.clone(),
                id,
            })
    })
}

/// The id the tokenizer's post-processor prepends to a single sequence, if any.
fn prepended_bos(tok: &Tokenizer) -> Result<Option<u32>> {
    let probe = "SELECT 1";
    let plain = tok
        .encode_fast(probe, false)
        .map_err(|e| Error::tk("probing for BOS", e))?;
    let with = tok
        .encode_fast(probe, true)
        .map_err(|e| Error::tk("probing for BOS", e))?;
    let (plain, with) = (plain.get_ids(), with.get_ids());
    if with.len() > plain.len() && with.get(1..=plain.len()) == Some(plain) {
        Ok(with.first().copied())
    } else {
        Ok(None)
    }
}

/// Adds a new special token and returns it with its id.
fn add_special(tok: &mut Tokenizer, text: &str, path: &Path) -> Result<SpecialToken> {
    tok.add_special_tokens(&[AddedToken::from(text, true)]);
    by_text(tok, text).ok_or_else(|| Error::MissingSpecialToken {
        role: if text == KID_PAD_TOKEN { "pad" } else { "mask" },
        path: path.to_path_buf(),
        detail: format!("adding {text:?} to the vocabulary failed"),
    })
}

pub(crate) fn resolve(mut tok: Tokenizer, dir: &Path, tokenizer_file: &Path) -> Result<Resolved> {
    let side = Sidecars {
        tokenizer_config: optional_json(dir, "tokenizer_config.json")?,
        special_tokens_map: optional_json(dir, "special_tokens_map.json")?,
        config: optional_json(dir, "config.json")?,
        generation_config: optional_json(dir, "generation_config.json")?,
    };
    // Probe with special-token parsing off, as every later encode is.
    tok.set_encode_special_tokens(true);

    // eos (required)
    let eos = side
        .declared(&tok, "eos_token")
        .or_else(|| side.config_id(&tok, "eos_token_id"))
        .or_else(|| well_known(&tok, &["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"]))
        .ok_or_else(|| Error::MissingSpecialToken {
            role: "eos",
            path: tokenizer_file.to_path_buf(),
            detail: "no eos_token in tokenizer_config.json/special_tokens_map.json, no \
                     eos_token_id in config.json/generation_config.json, and no special \
                     token named </s>, <|endoftext|>, <|end_of_text|> or <eos>"
                .into(),
        })?;

    // bos: only if the tokenizer itself prepends one (or says add_bos_token: true).
    let add_bos = side
        .tokenizer_config
        .get("add_bos_token")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let bos = match prepended_bos(&tok)? {
        Some(id) => by_id(&tok, id),
        None if add_bos => side
            .declared(&tok, "bos_token")
            .or_else(|| side.config_id(&tok, "bos_token_id")),
        None => None,
    }
    .filter(|b| b.id != eos.id);

    // pad: declared, else well-known; must differ from eos and bos, else add KID_PAD_TOKEN.
    let collides = |t: &SpecialToken, others: &[Option<&SpecialToken>]| {
        others.iter().flatten().any(|o| o.id == t.id)
    };
    let pad_candidate = side
        .declared(&tok, "pad_token")
        .or_else(|| side.config_id(&tok, "pad_token_id"))
        .or_else(|| well_known(&tok, &["<pad>", "<|pad|>", "[PAD]"]))
        .filter(|p| !collides(p, &[Some(&eos), bos.as_ref()]));
    let (pad, pad_added) = match pad_candidate {
        Some(p) => (p, false),
        None => (add_special(&mut tok, KID_PAD_TOKEN, tokenizer_file)?, true),
    };

    // mask: declared, else well-known; must differ from the others, else add KID_MASK_TOKEN.
    let mask_candidate = side
        .declared(&tok, "mask_token")
        .or_else(|| well_known(&tok, &["<mask>", "[MASK]", "<|mask|>"]))
        .filter(|m| !collides(m, &[Some(&eos), bos.as_ref(), Some(&pad)]));
    let (mask, mask_added) = match mask_candidate {
        Some(m) => (m, false),
        None => (add_special(&mut tok, KID_MASK_TOKEN, tokenizer_file)?, true),
    };

    let mut stop_ids = vec![eos.id];
    for file in [&side.config, &side.generation_config] {
        if let Some(v) = file.get("eos_token_id") {
            stop_ids.extend(
                id_list(v)
                    .into_iter()
                    .filter(|&id| tok.id_to_token(id).is_some()),
            );
        }
    }
    let config_vocab_size = side
        .config
        .get("vocab_size")
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok());

    Ok(Resolved {
        tokenizer: tok,
        special: SpecialTokens {
            pad,
            bos,
            eos,
            mask,
        },
        stop_ids,
        mask_added,
        pad_added,
        config_vocab_size,
    })
}
