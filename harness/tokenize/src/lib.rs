//! # kidbench-tokenizer
//!
//! The tokenizer shared by the student and teacher models of kidbench.
//!
//! * [`SqlTokenizer::train`] trains a **byte-level BPE** (GPT-2 style pre-tokenizer that keeps
//!   SQL identifiers such as `author_id` whole, see [`WORD_PATTERN`]; no normalizer, byte-level
//!   decoder) on the benchmark's prompts and SQL. Byte-level BPE
//!   round-trips every UTF-8 string exactly: spaces, quotes, punctuation, digits, case and
//!   non-ASCII text such as `Zürich` come back byte for byte from [`SqlTokenizer::decode`].
//!   The special tokens `<pad>`, `<s>`, `</s>`, `<mask>` get the fixed ids 0, 1, 2, 3.
//! * [`SqlTokenizer::load`] loads either a tokenizer saved by [`SqlTokenizer::save`] or a
//!   Hugging Face model directory (`tokenizer.json` plus the optional sidecar files), resolving
//!   the special tokens with the policy documented on [`SqlTokenizer::load`].
//! * [`SqlTokenizer::encode_pair`] / [`SqlTokenizer::encode_prompt`] build model inputs;
//!   [`SqlTokenizer::decode`] turns generated ids back into SQL.
//! * [`check_compatible`] verifies that a student and a teacher share one vocabulary, which
//!   logit-level distillation requires.
//!
//! ## Special tokens in text
//! Text is always encoded with *special-token parsing switched off*: a question that contains
//! the literal characters `</s>` or `<|im_end|>` is encoded as ordinary bytes and decodes back
//! to those characters. Special ids enter a sequence only through `encode_pair` /
//! `encode_prompt`. Training never merges a special token's text into a vocabulary entry (the
//! training texts are split around special-token strings before counting).

mod compat;
mod error;
mod hf;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::{AddedToken, Tokenizer};

pub use compat::check_compatible;
pub use error::{Error, Result};

/// How trained tokenizers cut text into words before BPE: GPT-2's pattern (a word keeps its
/// leading space), except that a word may hold `_` and, after its first letter, digits. SQL
/// identifiers such as `author_id` or `T1` are then one word that BPE can learn as one token
/// (GPT-2's pattern cuts them at every `_` and letter/digit boundary, which makes schema prompts
/// about a third longer). Splitting off the leading space as well (so ` Lima` and `'Lima` share
/// tokens) was tried for the tiny presets and made them worse: 0.7 % instead of 5.3 % dev EX
/// after 1,500 steps, with prompts 40 % longer (docs/TRAINING.md).
pub const WORD_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?[\p{L}_][\p{L}\p{N}_]*| ?\p{N}+| ?[^\s\p{L}\p{N}_]+|\s+(?!\S)|\s+";

/// The pre-tokenizer of trained tokenizers: [`WORD_PATTERN`] words, then byte-level mapping.
fn pre_tokenizer() -> Result<Sequence> {
    let split = Split::new(
        SplitPattern::Regex(WORD_PATTERN.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| Error::tk("building the word pattern", e))?;
    Ok(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(
            ByteLevel::default()
                .add_prefix_space(false)
                .use_regex(false),
        ),
    ]))
}

/// Padding token of a trained tokenizer (id [`PAD_ID`]).
pub const PAD_TOKEN: &str = "<pad>";
/// Beginning-of-sequence token of a trained tokenizer (id [`BOS_ID`]).
pub const BOS_TOKEN: &str = "<s>";
/// End-of-sequence token of a trained tokenizer (id [`EOS_ID`]).
pub const EOS_TOKEN: &str = "</s>";
/// Mask token of a trained tokenizer (id [`MASK_ID`]).
pub const MASK_TOKEN: &str = "<mask>";
/// Fixed id of [`PAD_TOKEN`] in a trained tokenizer.
pub const PAD_ID: u32 = 0;
/// Fixed id of [`BOS_TOKEN`] in a trained tokenizer.
pub const BOS_ID: u32 = 1;
/// Fixed id of [`EOS_TOKEN`] in a trained tokenizer.
pub const EOS_ID: u32 = 2;
/// Fixed id of [`MASK_TOKEN`] in a trained tokenizer.
pub const MASK_ID: u32 = 3;
/// Mask token that earlier versions added to a Hugging Face tokenizer without a usable one (a
/// new id, often beyond the checkpoint's embedding rows). No longer added: an existing token is
/// reused (see [`SqlTokenizer::load`]); the name stays for sidecars written by those versions.
pub const KID_MASK_TOKEN: &str = "<|kid_mask|>";
/// Pad token that earlier versions added when the declared pad was missing or equal to EOS/BOS.
/// No longer added, like [`KID_MASK_TOKEN`].
pub const KID_PAD_TOKEN: &str = "<|kid_pad|>";
/// File name of the Hugging Face tokenizer file.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the kidbench sidecar that records the resolved special tokens.
pub const META_FILE: &str = "kidbench_tokenizer.json";

/// Where a [`SqlTokenizer`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Trained by [`SqlTokenizer::train`] (special ids 0..=3).
    Trained,
    /// A Hugging Face `tokenizer.json`, special tokens resolved by the HF policy.
    HuggingFace,
}

/// One resolved special token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialToken {
    /// Its text, e.g. `</s>` or `<|endoftext|>`.
    pub token: String,
    /// Its id.
    pub id: u32,
}

/// The resolved special tokens. `pad`, `eos` and (when present) `bos` are pairwise distinct
/// (a loss mask built from `token != pad` therefore never drops EOS), and `mask` differs from
/// `pad` and `eos`; `mask` may equal `bos`, the way the KID paper masks with `<s>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialTokens {
    /// Padding; never a training target.
    pub pad: SpecialToken,
    /// Prepended to every sequence, or `None` for models that use no BOS (e.g. Qwen).
    pub bos: Option<SpecialToken>,
    /// Appended to every complete target; generation stops on it.
    pub eos: SpecialToken,
    /// Mask token for masked/denoising objectives.
    pub mask: SpecialToken,
}

impl SpecialTokens {
    /// Checks that the ids are pairwise distinct (mask and bos may share one).
    fn check_distinct(&self, path: Option<&Path>) -> Result<()> {
        let mut roles: Vec<(&str, &SpecialToken)> =
            vec![("pad", &self.pad), ("eos", &self.eos), ("mask", &self.mask)];
        if let Some(bos) = &self.bos {
            roles.push(("bos", bos));
        }
        for (i, (ra, a)) in roles.iter().enumerate() {
            for (rb, b) in roles.iter().skip(i + 1) {
                if a.id == b.id && !matches!((*ra, *rb), ("mask", "bos") | ("bos", "mask")) {
                    return Err(Error::SpecialIds {
                        path: path.map(Path::to_path_buf),
                        detail: format!(
                            "{ra} and {rb} share id {} ({:?} / {:?})",
                            a.id, a.token, b.token
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Model input built by [`SqlTokenizer::encode_pair`] or [`SqlTokenizer::encode_prompt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// `[BOS] + prompt + target + [EOS]` (BOS only when the tokenizer has one).
    pub input_ids: Vec<i64>,
    /// Number of leading ids that belong to the prompt, BOS included. Targets (the loss
    /// region) are `input_ids[prompt_len..]`.
    pub prompt_len: usize,
    /// The prompt was cut from the left to fit `max_prompt`.
    pub prompt_truncated: bool,
    /// The target was cut at `max_target`; such a sequence carries **no** EOS, so that the
    /// model is never taught to stop in the middle of a query.
    pub target_truncated: bool,
}

impl Encoded {
    /// The target part (`input_ids[prompt_len..]`), EOS included when present.
    pub fn target_ids(&self) -> &[i64] {
        self.input_ids.get(self.prompt_len..).unwrap_or(&[])
    }
}

/// On-disk sidecar written next to `tokenizer.json` by [`SqlTokenizer::save`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    format: String,
    version: u32,
    origin: Origin,
    special: SpecialTokens,
    stop_ids: Vec<u32>,
    mask_added: bool,
    pad_added: bool,
    config_vocab_size: Option<usize>,
    vocab_size: usize,
    vocab_sha256: String,
}

const META_FORMAT: &str = "kidbench-tokenizer";
const META_VERSION: u32 = 1;

/// A tokenizer with resolved, pairwise-distinct special ids.
///
/// Wraps a [`tokenizers::Tokenizer`]. Construct it with [`SqlTokenizer::train`] or
/// [`SqlTokenizer::load`].
#[derive(Debug, Clone)]
pub struct SqlTokenizer {
    inner: Tokenizer,
    special: SpecialTokens,
    stop_ids: Vec<u32>,
    mask_added: bool,
    pad_added: bool,
    config_vocab_size: Option<usize>,
    vocab_size: usize,
    origin: Origin,
}

impl SqlTokenizer {
    /// Trains a byte-level BPE tokenizer on `texts` (prompts and SQL) with at most
    /// `vocab_size` entries, special tokens included.
    ///
    /// * Special tokens `<pad>`, `<s>`, `</s>`, `<mask>` get ids 0, 1, 2, 3; then come the 256
    ///   byte symbols, then merges. So `vocab_size` must be at least 260.
    /// * Merges need a pair frequency of at least 2, so a small corpus can yield a smaller
    ///   vocabulary than asked for; [`SqlTokenizer::vocab_size`] reports the real size.
    /// * Training is deterministic (BPE has no randomness; ties are broken by symbol ids), so
    ///   there is no seed: the same texts (in any order) and `vocab_size` give a byte-identical
    ///   `tokenizer.json`.
    /// * The saved `tokenizer.json` carries a template post-processor (`<s> $A` for one
    ///   sequence, `<s> $A $B </s>` for a pair), so the HF Python library adds the same
    ///   specials as [`SqlTokenizer::encode_pair`] when asked to add special tokens.
    pub fn train<'a>(texts: impl IntoIterator<Item = &'a str>, vocab_size: usize) -> Result<Self> {
        let specials = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, MASK_TOKEN];
        let min_size = specials.len() + 256;
        if vocab_size < min_size {
            return Err(Error::InvalidArgument(format!(
                "vocab_size {vocab_size} is below the minimum {min_size} (4 specials + 256 bytes)"
            )));
        }
        // Split every text around special-token strings so that no merge can ever spell one.
        // (The GPT-2 pre-tokenizer already separates `<`, letters and `>`; the split keeps the
        // guarantee independent of that regex.)
        let mut pieces: Vec<String> = Vec::new();
        for text in texts {
            split_around(text, &specials, &mut pieces);
        }

        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(
                specials
                    .iter()
                    .map(|t| AddedToken::from(*t, true))
                    .collect(),
            )
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut trainer: TrainerWrapper = trainer.into();

        let mut tok = Tokenizer::new(BPE::default());
        tok.with_pre_tokenizer(Some(pre_tokenizer()?));
        tok.with_decoder(Some(ByteLevelDecoder::default()));
        tok.train(&mut trainer, pieces.iter())
            .map_err(|e| Error::tk("training the BPE model", e))?;

        let id_of = |t: &str| tok.token_to_id(t);
        for (want, t) in [PAD_ID, BOS_ID, EOS_ID, MASK_ID].iter().zip(specials) {
            if id_of(t) != Some(*want) {
                return Err(Error::SpecialIds {
                    path: None,
                    detail: format!("trained {t:?} has id {:?}, expected {want}", id_of(t)),
                });
            }
        }
        let template = TemplateProcessing::builder()
            .try_single(format!("{BOS_TOKEN} $A"))
            .map_err(|e| Error::tk("building the post-processor", e))?
            .try_pair(format!("{BOS_TOKEN} $A $B {EOS_TOKEN}"))
            .map_err(|e| Error::tk("building the post-processor", e))?
            .special_tokens(vec![(BOS_TOKEN, BOS_ID), (EOS_TOKEN, EOS_ID)])
            .build()
            .map_err(|e| Error::tk("building the post-processor", e))?;
        tok.with_post_processor(Some(template));

        let st = |token: &str, id: u32| SpecialToken {
            token: token.to_owned(),
            id,
        };
        let special = SpecialTokens {
            pad: st(PAD_TOKEN, PAD_ID),
            bos: Some(st(BOS_TOKEN, BOS_ID)),
            eos: st(EOS_TOKEN, EOS_ID),
            mask: st(MASK_TOKEN, MASK_ID),
        };
        Self::assemble(
            tok,
            special,
            vec![EOS_ID],
            false,
            false,
            None,
            Origin::Trained,
            None,
        )
    }

    /// Builds the struct, switching special-token parsing off and checking the invariants.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        mut inner: Tokenizer,
        special: SpecialTokens,
        mut stop_ids: Vec<u32>,
        mask_added: bool,
        pad_added: bool,
        config_vocab_size: Option<usize>,
        origin: Origin,
        path: Option<&Path>,
    ) -> Result<Self> {
        inner.set_encode_special_tokens(true);
        special.check_distinct(path)?;
        let vocab_size = vocab_len(&inner);
        for s in [
            Some(&special.pad),
            special.bos.as_ref(),
            Some(&special.eos),
            Some(&special.mask),
        ]
        .into_iter()
        .flatten()
        {
            if inner.token_to_id(&s.token) != Some(s.id) {
                return Err(Error::SpecialIds {
                    path: path.map(Path::to_path_buf),
                    detail: format!(
                        "{:?} is recorded with id {} but the vocabulary says {:?}",
                        s.token,
                        s.id,
                        inner.token_to_id(&s.token)
                    ),
                });
            }
        }
        if !stop_ids.contains(&special.eos.id) {
            stop_ids.insert(0, special.eos.id);
        }
        let mut seen = HashSet::new();
        stop_ids.retain(|id| *id != special.pad.id && seen.insert(*id));
        Ok(SqlTokenizer {
            inner,
            special,
            stop_ids,
            mask_added,
            pad_added,
            config_vocab_size,
            vocab_size,
            origin,
        })
    }

    /// Loads a tokenizer from a directory or a file.
    ///
    /// `path` may be a directory, a `tokenizer.json` or a `kidbench_tokenizer.json`; sidecar
    /// files are looked up in the same directory.
    ///
    /// * If `kidbench_tokenizer.json` is present (written by [`SqlTokenizer::save`]), the
    ///   special tokens, stop ids and flags recorded there are used and checked against the
    ///   vocabulary.
    /// * Otherwise the directory is treated as a Hugging Face model and the special tokens are
    ///   resolved as follows (sidecars `tokenizer_config.json`, `special_tokens_map.json`,
    ///   `config.json`, `generation_config.json` are all optional):
    ///   - **eos**: `eos_token` of `tokenizer_config.json`, else of `special_tokens_map.json`,
    ///     else `eos_token_id` of `config.json` then `generation_config.json` (first of a
    ///     list), else the first special token named `</s>`, `<|endoftext|>`,
    ///     `<|end_of_text|>`, `<eos>`. None found is an error.
    ///   - **bos**: the id that the tokenizer's own post-processor prepends (found by encoding
    ///     a probe with and without special tokens), else the declared `bos_token` when
    ///     `tokenizer_config.json` says `add_bos_token: true`; otherwise **no BOS** (`None`).
    ///     Qwen2/2.5 therefore get no BOS, exactly as their tokenizer encodes. A BOS equal to
    ///     EOS is dropped (GPT-2 style).
    ///   - **No new token is ever added**, and no special id is at or beyond the model's
    ///     embedding rows (`vocab_size` of `config.json`; without one, the tokenizer's own
    ///     size): a checkpoint is used as it is, with no embedding to resize. An eos or bos
    ///     beyond those rows is an error (the tokenizer does not match the checkpoint).
    ///   - **pad**: the declared `pad_token` (tokenizer_config, special_tokens_map, then
    ///     `config.json` `pad_token_id`), else a special token named `<pad>`, `<|pad|>`,
    ///     `[PAD]`. If none exists **or it equals EOS or BOS** (SmolLM2 and Qwen base declare
    ///     pad = eos; LLaMA-2 and TinyLlama declare none), an existing token is reused: the
    ///     declared `unk_token` (or `<unk>`, `[UNK]`), else the first special token by id, else
    ///     the first id, never eos, bos or a stop id. Padded positions are masked out of
    ///     attention and loss, so the pad never needs an embedding row of its own.
    ///   - **mask**: the declared `mask_token`, else a special token named `<mask>`, `[MASK]`,
    ///     `<|mask|>`, provided it differs from pad/eos/bos; otherwise an existing token is
    ///     reused, as the KID paper masks with `<s>`: the declared `bos_token` (even one the
    ///     tokenizer does not prepend, e.g. SmolLM2's `<|im_start|>`), else the first other
    ///     special token, never eos, pad or a stop id. The mask may equal bos (LLaMA: `<s>`).
    ///   - The same HF folder always yields the same ids.
    ///     [`SqlTokenizer::pad_added`] and [`SqlTokenizer::mask_added`] are false (true only
    ///     in sidecars written by earlier versions, which added `<|kid_pad|>`/`<|kid_mask|>`).
    ///   - **stop ids** for generation: eos plus every `eos_token_id` of `config.json` and
    ///     `generation_config.json` (pad excluded).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (dir, tokenizer_file) = resolve_paths(path);
        let inner = read_tokenizer(&tokenizer_file)?;
        let meta_file = dir.join(META_FILE);
        if meta_file.is_file() {
            let meta: Meta = read_json(&meta_file)?;
            if meta.format != META_FORMAT || meta.version != META_VERSION {
                return Err(Error::SpecialIds {
                    path: Some(meta_file),
                    detail: format!(
                        "unsupported format {:?} version {} (expected {META_FORMAT:?} {META_VERSION})",
                        meta.format, meta.version
                    ),
                });
            }
            let tok = Self::assemble(
                inner,
                meta.special,
                meta.stop_ids,
                meta.mask_added,
                meta.pad_added,
                meta.config_vocab_size,
                meta.origin,
                Some(&meta_file),
            )?;
            if tok.vocab_sha256() != meta.vocab_sha256 {
                return Err(Error::SpecialIds {
                    path: Some(meta_file),
                    detail: format!(
                        "vocabulary hash {} does not match the one recorded ({}): {} was changed",
                        tok.vocab_sha256(),
                        meta.vocab_sha256,
                        tokenizer_file.display()
                    ),
                });
            }
            return Ok(tok);
        }
        let resolved = hf::resolve(inner, &dir, &tokenizer_file)?;
        Self::assemble(
            resolved.tokenizer,
            resolved.special,
            resolved.stop_ids,
            resolved.mask_added,
            resolved.pad_added,
            resolved.config_vocab_size,
            Origin::HuggingFace,
            Some(&tokenizer_file),
        )
    }

    /// Writes `dir/tokenizer.json` (Hugging Face format, loadable by the HF `tokenizers`
    /// library) and `dir/kidbench_tokenizer.json` (resolved special tokens, flags, vocab hash).
    /// Creates `dir` if needed.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let json = self.to_json()?;
        let tok_path = dir.join(TOKENIZER_FILE);
        write_file(&tok_path, json.as_bytes())?;
        let meta = Meta {
            format: META_FORMAT.to_owned(),
            version: META_VERSION,
            origin: self.origin,
            special: self.special.clone(),
            stop_ids: self.stop_ids.clone(),
            mask_added: self.mask_added,
            pad_added: self.pad_added,
            config_vocab_size: self.config_vocab_size,
            vocab_size: self.vocab_size,
            vocab_sha256: self.vocab_sha256(),
        };
        let meta_path = dir.join(META_FILE);
        let text = serde_json::to_string_pretty(&meta).map_err(|source| Error::Json {
            path: meta_path.clone(),
            source,
        })?;
        write_file(&meta_path, text.as_bytes())
    }

    /// The Hugging Face `tokenizer.json` text (pretty-printed, deterministic).
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(true)
            .map_err(|e| Error::tk("serializing tokenizer.json", e))
    }

    /// Encodes raw text to ids without any special token. Special-token strings inside the
    /// text are encoded as ordinary text.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        Ok(self.encode_u32(text)?.into_iter().map(i64::from).collect())
    }

    /// Encodes text in which the tokenizer's special and added tokens are tokens, the way
    /// Hugging Face tokenizes a rendered chat template (`<|im_start|>user` is the
    /// `<|im_start|>` id, then `user`); no BOS or EOS is added. Use it for chat prompts only:
    /// [`SqlTokenizer::encode`] keeps such strings as text.
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<i64>> {
        let mut inner = self.inner.clone();
        inner.set_encode_special_tokens(false);
        let enc = inner
            .encode_fast(text, false)
            .map_err(|e| Error::tk("encoding text with special tokens", e))?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    fn encode_u32(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::tk("encoding text", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Training input: `[BOS] + prompt + target + [EOS]`.
    ///
    /// * The prompt part (BOS included) has at most `max_prompt` ids; a longer prompt is cut
    ///   **from the left** (its beginning is dropped, BOS is kept, the end of the prompt —
    ///   usually the question — survives).
    /// * The target part (EOS included) has at most `max_target` ids. A target that does not
    ///   fit is cut to its first `max_target` ids and gets **no EOS**
    ///   ([`Encoded::target_truncated`]), so the model is never taught to stop early.
    /// * `prompt_len` is the length of the prompt part; the loss region is
    ///   `input_ids[prompt_len..]`.
    ///
    /// Errors when `max_prompt` cannot hold the BOS or `max_target` is zero.
    pub fn encode_pair(
        &self,
        prompt: &str,
        target: &str,
        max_prompt: usize,
        max_target: usize,
    ) -> Result<Encoded> {
        if max_target == 0 {
            return Err(Error::InvalidArgument(
                "max_target must be at least 1".into(),
            ));
        }
        let mut enc = self.encode_prompt(prompt, max_prompt)?;
        let target_ids = self.encode_u32(target)?;
        let target_truncated = target_ids.len() + 1 > max_target;
        if target_truncated {
            enc.input_ids
                .extend(target_ids.iter().take(max_target).map(|&i| i64::from(i)));
        } else {
            enc.input_ids
                .extend(target_ids.iter().map(|&i| i64::from(i)));
            enc.input_ids.push(i64::from(self.special.eos.id));
        }
        enc.target_truncated = target_truncated;
        Ok(enc)
    }

    /// Generation input: `[BOS] + prompt`, at most `max_prompt` ids, prompt cut from the left
    /// like in [`SqlTokenizer::encode_pair`]. `prompt_len == input_ids.len()`.
    pub fn encode_prompt(&self, prompt: &str, max_prompt: usize) -> Result<Encoded> {
        let n_bos = usize::from(self.special.bos.is_some());
        if max_prompt <= n_bos {
            return Err(Error::InvalidArgument(format!(
                "max_prompt {max_prompt} leaves no room for the prompt after {n_bos} BOS"
            )));
        }
        let ids = self.encode_u32(prompt)?;
        let keep = max_prompt - n_bos;
        let start = ids.len().saturating_sub(keep);
        let mut input_ids = Vec::with_capacity(max_prompt);
        if let Some(bos) = &self.special.bos {
            input_ids.push(i64::from(bos.id));
        }
        input_ids.extend(ids[start..].iter().map(|&i| i64::from(i)));
        Ok(Encoded {
            prompt_len: input_ids.len(),
            input_ids,
            prompt_truncated: start > 0,
            target_truncated: false,
        })
    }

    /// Decodes generated ids to text: stops at the first stop id (EOS and the model's other
    /// end ids), skips special tokens (pad, bos, mask and every other special added token),
    /// and silently skips ids at or beyond [`SqlTokenizer::vocab_size`] (rows of a padded
    /// embedding that no token owns). Negative ids are an error.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let id = u32::try_from(id).map_err(|_| Error::InvalidId(id))?;
            if self.stop_ids.contains(&id) {
                break;
            }
            if (id as usize) < self.vocab_size {
                out.push(id);
            }
        }
        self.inner
            .decode(&out, true)
            .map_err(|e| Error::tk("decoding ids", e))
    }

    /// Number of ids: highest id + 1 (specials and added tokens included). The model's
    /// embedding and LM head need at least this many rows.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Padding id.
    pub fn pad_id(&self) -> i64 {
        i64::from(self.special.pad.id)
    }
    /// BOS id, or `None` for tokenizers that use no BOS (e.g. Qwen).
    pub fn bos_id(&self) -> Option<i64> {
        self.special.bos.as_ref().map(|t| i64::from(t.id))
    }
    /// EOS id.
    pub fn eos_id(&self) -> i64 {
        i64::from(self.special.eos.id)
    }
    /// Mask id.
    pub fn mask_id(&self) -> i64 {
        i64::from(self.special.mask.id)
    }
    /// Ids on which generation stops (EOS first). Never contains the pad id.
    pub fn stop_ids(&self) -> Vec<i64> {
        self.stop_ids.iter().map(|&i| i64::from(i)).collect()
    }
    /// The resolved special tokens (text and id).
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }
    /// True when the mask token [`KID_MASK_TOKEN`] was added to a Hugging Face tokenizer (only
    /// in sidecars written by earlier versions; [`SqlTokenizer::load`] no longer adds tokens).
    pub fn mask_added(&self) -> bool {
        self.mask_added
    }
    /// True when the pad token [`KID_PAD_TOKEN`] was added to a Hugging Face tokenizer (only in
    /// sidecars written by earlier versions).
    pub fn pad_added(&self) -> bool {
        self.pad_added
    }
    /// `vocab_size` of the model's `config.json` (embedding rows), when one was found.
    pub fn config_vocab_size(&self) -> Option<usize> {
        self.config_vocab_size
    }
    /// Whether a model with `embedding_rows` rows must be resized to hold every id of this
    /// tokenizer (true when `embedding_rows < vocab_size()`).
    pub fn needs_embedding_resize(&self, embedding_rows: usize) -> bool {
        embedding_rows < self.vocab_size
    }
    /// Where the tokenizer came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }
    /// The wrapped `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Tokens by id, `0..vocab_size()`; ids without a token are `None`.
    pub fn id_to_token_table(&self) -> Vec<Option<String>> {
        let mut table = vec![None; self.vocab_size];
        for (tok, id) in self.inner.get_vocab(true) {
            if let Some(slot) = table.get_mut(id as usize) {
                *slot = Some(tok);
            }
        }
        table
    }

    /// SHA-256 (hex) of the vocabulary: every `(id, token)` pair in id order.
    pub fn vocab_sha256(&self) -> String {
        let mut h = Sha256::new();
        for (id, tok) in self.id_to_token_table().iter().enumerate() {
            if let Some(tok) = tok {
                h.update((id as u64).to_le_bytes());
                h.update((tok.len() as u64).to_le_bytes());
                h.update(tok.as_bytes());
            }
        }
        hex::encode(h.finalize())
    }
}

/// Highest id + 1 over the model vocabulary and the added tokens.
fn vocab_len(tok: &Tokenizer) -> usize {
    tok.get_vocab(true)
        .values()
        .map(|&id| id as usize + 1)
        .max()
        .unwrap_or(0)
}

/// Pushes the non-empty pieces of `text` between occurrences of any of `specials`.
fn split_around(text: &str, specials: &[&str], out: &mut Vec<String>) {
    let mut rest = text;
    loop {
        let next = specials
            .iter()
            .filter_map(|s| rest.find(s).map(|at| (at, s.len())))
            .min();
        match next {
            Some((at, len)) => {
                if at > 0 {
                    out.push(rest[..at].to_owned());
                }
                rest = &rest[at + len..];
            }
            None => {
                if !rest.is_empty() {
                    out.push(rest.to_owned());
                }
                return;
            }
        }
    }
}

/// `(directory, tokenizer.json path)` for a directory, a `tokenizer.json` or a
/// `kidbench_tokenizer.json`.
fn resolve_paths(path: &Path) -> (PathBuf, PathBuf) {
    if path.is_dir() {
        return (path.to_path_buf(), path.join(TOKENIZER_FILE));
    }
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if path.file_name().is_some_and(|n| n == META_FILE) {
        let file = dir.join(TOKENIZER_FILE);
        return (dir, file);
    }
    (dir, path.to_path_buf())
}

fn read_file(path: &Path, hint: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
                hint: hint.to_owned(),
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_file(path, "expected JSON file")?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_tokenizer(path: &Path) -> Result<Tokenizer> {
    let text = read_file(
        path,
        "a tokenizer directory must contain tokenizer.json (HF format)",
    )?;
    // Parse as plain JSON first so a syntax error is reported as such, with its position.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_value(value).map_err(|e| Error::InvalidTokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
