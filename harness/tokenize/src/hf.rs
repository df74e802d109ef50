//! Special-token resolution for Hugging Face model directories.
//! The policy is documented on [`crate::SqlTokenizer::load`].

use std::path::Path;

use serde_json::Value;
use tokenizers::Tokenizer;

use crate::{read_json, Error, Result, SpecialToken, SpecialTokens};

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

/// An existing token to reuse for a role: the first of `named`, then of the special added tokens
/// by id, then of all ids from 0, that has an embedding row (`id < rows`) and is none of the
/// `taken` ids.
fn reuse(
    tok: &Tokenizer,
    named: impl IntoIterator<Item = SpecialToken>,
    taken: &[u32],
    rows: usize,
) -> Option<SpecialToken> {
    let free = |t: &SpecialToken| (t.id as usize) < rows && !taken.contains(&t.id);
    if let Some(t) = named.into_iter().find(free) {
        return Some(t);
    }
    let mut added: Vec<(u32, String)> = tok
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, t)| t.special)
        .map(|(id, t)| (id, t.content))
        .collect();
    added.sort();
    if let Some(t) = added
        .into_iter()
        .map(|(id, token)| SpecialToken { token, id })
        .find(|t| free(t) && tok.token_to_id(&t.token) == Some(t.id))
    {
        return Some(t);
    }
    (0..rows as u32)
        .filter(|id| !taken.contains(id))
        .filter_map(|id| by_id(tok, id))
        .find(|t| tok.token_to_id(&t.token) == Some(t.id))
}

/// Checks that a token the model reads or writes has an embedding row.
fn has_row(t: &SpecialToken, role: &str, rows: Option<usize>, config: &Path) -> Result<()> {
    match rows {
        Some(r) if t.id as usize >= r => Err(Error::SpecialIds {
            path: Some(config.to_path_buf()),
            detail: format!(
                "{role} {:?} has id {} but the model has {r} embedding rows (vocab_size): \
                 the tokenizer does not match the checkpoint",
                t.token, t.id
            ),
        }),
        _ => Ok(()),
    }
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
    let config_vocab_size = side
        .config
        .get("vocab_size")
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok());
    // Ids at or beyond the embedding's rows index out of range: nothing below may pick one,
    // and a tokenizer that can produce one is not this checkpoint's.
    let tokens = crate::vocab_len(&tok);
    let rows = config_vocab_size.unwrap_or(tokens);
    let config_file = dir.join("config.json");
    if tokens > rows {
        return Err(Error::VocabMismatch {
            tokenizer: tokenizer_file.to_path_buf(),
            config: config_file,
            tokens,
            rows,
        });
    }

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
    has_row(&eos, "eos", config_vocab_size, &config_file)?;

    // bos: only if the tokenizer itself prepends one (or says add_bos_token: true).
    let add_bos = side
        .tokenizer_config
        .get("add_bos_token")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let declared_bos = side
        .declared(&tok, "bos_token")
        .or_else(|| side.config_id(&tok, "bos_token_id"));
    let bos = match prepended_bos(&tok)? {
        Some(id) => by_id(&tok, id),
        None if add_bos => declared_bos.clone(),
        None => None,
    }
    .filter(|b| b.id != eos.id);
    if let Some(b) = &bos {
        has_row(b, "bos", config_vocab_size, &config_file)?;
    }

    let mut stop_ids = vec![eos.id];
    for file in [&side.config, &side.generation_config] {
        if let Some(v) = file.get("eos_token_id") {
            stop_ids.extend(
                id_list(v)
                    .into_iter()
                    .filter(|&id| (id as usize) < rows && tok.id_to_token(id).is_some()),
            );
        }
    }

    // pad: the declared one unless it is eos or bos (a pad = eos tokenizer, e.g. SmolLM2 or Qwen
    // base); else an existing token reused: padded positions are masked out of attention and
    // loss, so any id with an embedding row serves, but never eos, bos or a stop id.
    let collides = |t: &SpecialToken, others: &[Option<&SpecialToken>]| {
        others.iter().flatten().any(|o| o.id == t.id)
    };
    let pad_declared = side
        .declared(&tok, "pad_token")
        .or_else(|| side.config_id(&tok, "pad_token_id"))
        .or_else(|| well_known(&tok, &["<pad>", "<|pad|>", "[PAD]"]))
        .filter(|p| !collides(p, &[Some(&eos), bos.as_ref()]) && (p.id as usize) < rows);
    let mut taken: Vec<u32> = stop_ids.clone();
    taken.extend(bos.as_ref().map(|b| b.id));
    let pad = match pad_declared {
        Some(p) => p,
        None => {
            let unk = side
                .declared(&tok, "unk_token")
                .or_else(|| well_known(&tok, &["<unk>", "[UNK]", "<|unk|>"]));
            reuse(&tok, unk, &taken, rows).ok_or_else(|| Error::MissingSpecialToken {
                role: "pad",
                path: tokenizer_file.to_path_buf(),
                detail: format!("no token below id {rows} is free to pad with"),
            })?
        }
    };

    // mask: the declared one (or a well-known name); else an existing token reused, the way the
    // KID paper masks with `<s>`: the declared bos first (even when it is not prepended), then
    // another special token. Never eos, pad or a stop id; it may equal bos.
    let mask_declared = side
        .declared(&tok, "mask_token")
        .or_else(|| well_known(&tok, &["<mask>", "[MASK]", "<|mask|>"]))
        .filter(|m| {
            !collides(m, &[Some(&eos), bos.as_ref(), Some(&pad)]) && (m.id as usize) < rows
        });
    let mask = match mask_declared {
        Some(m) => m,
        None => {
            let mut taken = stop_ids.clone();
            taken.push(pad.id);
            reuse(&tok, declared_bos.or_else(|| bos.clone()), &taken, rows).ok_or_else(|| {
                Error::MissingSpecialToken {
                    role: "mask",
                    path: tokenizer_file.to_path_buf(),
                    detail: format!("no token below id {rows} is free to mask with"),
                }
            })?
        }
    };

    Ok(Resolved {
        tokenizer: tok,
        special: SpecialTokens {
            pad,
            bos,
            eos,
            mask,
        },
        stop_ids,
        mask_added: false,
        pad_added: false,
        config_vocab_size,
    })
}
