//! Loading Hugging Face style model directories built in the tests (no hub access).

mod common;

use std::path::Path;

use common::{corpus, round_trip_cases};
use kidbench_tokenizer::{check_compatible, Error, Origin, SqlTokenizer};
use serde_json::json;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

const QWEN_SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// A small Qwen-like tokenizer: byte-level BPE, no post-processor (so no BOS), specials
/// added *after* the BPE vocabulary like Qwen's `<|endoftext|>` = 151643.
fn qwen_like() -> Tokenizer {
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(500)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer: TrainerWrapper = trainer.into();
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let texts = corpus();
    tok.train(&mut trainer, texts.iter())
        .expect("train fixture");
    let specials: Vec<AddedToken> = QWEN_SPECIALS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tok.add_special_tokens(&specials);
    tok
}

fn write_json(dir: &Path, name: &str, v: &serde_json::Value) {
    std::fs::write(
        dir.join(name),
        serde_json::to_string_pretty(v).expect("json"),
    )
    .expect("write fixture");
}

fn write_tokenizer(dir: &Path, tok: &Tokenizer) {
    std::fs::write(
        dir.join("tokenizer.json"),
        tok.to_string(true).expect("serialize fixture"),
    )
    .expect("write fixture");
}

#[test]
fn qwen_base_like_reuses_existing_tokens_for_pad_and_mask() {
    let raw = qwen_like();
    let eot = raw.token_to_id("<|endoftext|>").expect("eot");
    let im_start = raw.token_to_id("<|im_start|>").expect("im_start");
    let im_end = raw.token_to_id("<|im_end|>").expect("im_end");
    let base_size = raw.get_vocab_size(true);
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    write_json(
        dir.path(),
        "tokenizer_config.json",
        &json!({
            "add_bos_token": false,
            "bos_token": null,
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "added_tokens_decoder": {}
        }),
    );
    write_json(
        dir.path(),
        "config.json",
        &json!({"bos_token_id": eot, "eos_token_id": eot, "vocab_size": base_size + 64}),
    );

    let tok = SqlTokenizer::load(dir.path()).expect("load");
    assert_eq!(tok.origin(), Origin::HuggingFace);
    assert_eq!(tok.eos_id(), i64::from(eot));
    assert_eq!(tok.bos_id(), None, "Qwen prepends no BOS");
    // pad = eos would drop EOS from the stop ids: an existing special token pads instead.
    assert!(!tok.pad_added());
    assert_eq!(tok.pad_id(), i64::from(im_start));
    // No mask-like token and the declared bos is eos: the next free special token masks.
    assert!(!tok.mask_added());
    assert_eq!(tok.mask_id(), i64::from(im_end));
    assert_eq!(tok.vocab_size(), base_size, "nothing is added");
    assert_eq!(tok.config_vocab_size(), Some(base_size + 64));
    assert!(!tok.needs_embedding_resize(base_size));
    assert_eq!(tok.stop_ids(), vec![i64::from(eot)]);

    // Text round-trips, chat markers in text stay text.
    for case in round_trip_cases() {
        let ids = tok.encode(&case).expect("encode");
        assert_eq!(tok.decode(&ids).expect("decode"), case);
    }
    let ids = tok.encode("a <|im_end|> b").expect("encode");
    assert!(ids.iter().all(|&i| i < eot as i64), "{ids:?}");

    // encode_pair without BOS: prompt_len is the prompt alone.
    let p = tok.encode("How many?").expect("encode");
    let enc = tok
        .encode_pair("How many?", "SELECT 1", 32, 32)
        .expect("pair");
    assert_eq!(enc.prompt_len, p.len());
    assert_eq!(&enc.input_ids[..p.len()], &p[..]);
    assert_eq!(enc.input_ids.last(), Some(&tok.eos_id()));
    let enc = tok
        .encode_prompt("How many singers are there?", 3)
        .expect("prompt");
    assert_eq!(enc.input_ids.len(), 3);

    // Saving and loading keeps the added tokens, ids and flags.
    let out = tempfile::tempdir().expect("tempdir");
    tok.save(out.path()).expect("save");
    let back = SqlTokenizer::load(out.path()).expect("reload");
    assert_eq!(back.special_tokens(), tok.special_tokens());
    assert!(!back.mask_added() && !back.pad_added());
    assert_eq!(back.config_vocab_size(), Some(base_size + 64));
    check_compatible(&tok, &back).expect("same tokenizer");

    // Loading the same HF directory twice gives the same ids (deterministic additions).
    let again = SqlTokenizer::load(dir.path().join("tokenizer.json")).expect("load file");
    check_compatible(&tok, &again).expect("deterministic");
}

#[test]
fn qwen_instruct_like_keeps_declared_pad_and_collects_stop_ids() {
    let raw = qwen_like();
    let eot = raw.token_to_id("<|endoftext|>").expect("eot");
    let im_end = raw.token_to_id("<|im_end|>").expect("im_end");
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    write_json(
        dir.path(),
        "tokenizer_config.json",
        &json!({"bos_token": null, "eos_token": {"content": "<|im_end|>", "special": true}, "pad_token": "<|endoftext|>"}),
    );
    write_json(
        dir.path(),
        "generation_config.json",
        &json!({"eos_token_id": [im_end, eot], "pad_token_id": eot}),
    );
    let tok = SqlTokenizer::load(dir.path()).expect("load");
    assert_eq!(tok.eos_id(), i64::from(im_end));
    assert_eq!(tok.pad_id(), i64::from(eot));
    assert!(!tok.pad_added());
    // No mask, no bos: the one special token that is neither pad nor a stop id.
    assert!(!tok.mask_added());
    assert_eq!(
        tok.mask_id(),
        i64::from(raw.token_to_id("<|im_start|>").expect("im_start"))
    );
    // pad is never a stop id, even when the model lists it as one.
    assert_eq!(tok.stop_ids(), vec![i64::from(im_end)]);
    let ids = tok.encode("SELECT 1").expect("encode");
    let mut gen = ids.clone();
    gen.push(i64::from(im_end));
    gen.extend(&ids);
    assert_eq!(tok.decode(&gen).expect("decode"), "SELECT 1");
}

#[test]
fn llama_like_template_bos_and_existing_mask_are_used() {
    let mut raw = qwen_like();
    let extra = ["<|begin_of_text|>", "<|end_of_text|>", "<mask>"];
    raw.add_special_tokens(
        &extra
            .iter()
            .map(|t| AddedToken::from(*t, true))
            .collect::<Vec<_>>(),
    );
    let bos = raw.token_to_id("<|begin_of_text|>").expect("bos");
    let eos = raw.token_to_id("<|end_of_text|>").expect("eos");
    let mask = raw.token_to_id("<mask>").expect("mask");
    let template = TemplateProcessing::builder()
        .try_single("<|begin_of_text|> $A")
        .expect("single")
        .special_tokens(vec![("<|begin_of_text|>", bos)])
        .build()
        .expect("template");
    raw.with_post_processor(Some(template));
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    // Only config.json, with ids: eos from eos_token_id, no pad anywhere.
    write_json(
        dir.path(),
        "config.json",
        &json!({"bos_token_id": bos, "eos_token_id": [eos], "vocab_size": 1000}),
    );
    let tok = SqlTokenizer::load(dir.path()).expect("load");
    assert_eq!(tok.bos_id(), Some(i64::from(bos)));
    assert_eq!(tok.eos_id(), i64::from(eos));
    assert_eq!(tok.mask_id(), i64::from(mask));
    assert!(!tok.mask_added());
    // No pad declared: the first free special token pads (nothing is added).
    assert!(!tok.pad_added());
    assert_eq!(
        tok.pad_id(),
        i64::from(raw.token_to_id("<|endoftext|>").expect("eot"))
    );
    let enc = tok.encode_pair("q", "SELECT 1", 8, 8).expect("pair");
    assert_eq!(enc.input_ids[0], i64::from(bos));
}

#[test]
fn trained_student_vs_hf_teacher_reports_each_special() {
    let raw = qwen_like();
    let eot = raw.token_to_id("<|endoftext|>").expect("eot");
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    write_json(
        dir.path(),
        "tokenizer_config.json",
        &json!({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}),
    );
    let teacher = SqlTokenizer::load(dir.path()).expect("load");
    let student = common::trained(600);
    let err = check_compatible(&student, &teacher).unwrap_err();
    let Error::Incompatible { differences } = &err else {
        panic!("expected Incompatible, got {err:?}");
    };
    let has = |s: &str| differences.iter().any(|d| d == s);
    assert!(
        has(&format!(
            "vocab size {} (student) vs {} (teacher)",
            student.vocab_size(),
            teacher.vocab_size()
        )),
        "{differences:?}"
    );
    assert!(
        has("bos id 1 \"<s>\" (student) vs none (teacher)"),
        "{differences:?}"
    );
    assert!(
        has(&format!(
            "eos id 2 \"</s>\" (student) vs {eot} \"<|endoftext|>\" (teacher)"
        )),
        "{differences:?}"
    );
    assert!(
        differences
            .iter()
            .any(|d| d.starts_with("pad id 0 \"<pad>\" (student) vs ")),
        "{differences:?}"
    );
    assert!(
        differences
            .iter()
            .any(|d| d.starts_with("mask id 3 \"<mask>\" (student) vs ")),
        "{differences:?}"
    );
    assert!(
        differences
            .iter()
            .any(|d| d.starts_with("vocabularies differ at ")),
        "{differences:?}"
    );
}

#[test]
fn missing_tokenizer_json_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = SqlTokenizer::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MissingFile { .. }), "{msg}");
    assert!(
        msg.contains(&dir.path().join("tokenizer.json").display().to_string()),
        "{msg}"
    );
    let err = SqlTokenizer::load(dir.path().join("nope").join("tokenizer.json")).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn unparsable_json_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tokenizer.json"), "{ not json").expect("write");
    let err = SqlTokenizer::load(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    // Valid JSON, but not a tokenizer.
    std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": 3}").expect("write");
    let err = SqlTokenizer::load(dir.path()).unwrap_err();
    assert!(matches!(err, Error::InvalidTokenizer { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    // A broken sidecar is named too.
    write_tokenizer(dir.path(), &qwen_like());
    std::fs::write(dir.path().join("tokenizer_config.json"), "[1,").expect("write");
    let err = SqlTokenizer::load(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}

#[test]
fn missing_eos_is_reported() {
    // A BPE without any special token and no sidecar files: no EOS can be found.
    let mut raw = qwen_like();
    raw.with_added_vocabulary(Default::default());
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    let err = SqlTokenizer::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::MissingSpecialToken { role: "eos", .. }),
        "{msg}"
    );
    assert!(msg.contains("tokenizer.json"), "{msg}");
}

/// A tokenizer whose special tokens come first, like SmolLM2's (`<|endoftext|>` 0,
/// `<|im_start|>` 1, `<|im_end|>` 2) or LLaMA-2's (`<unk>` 0, `<s>` 1, `</s>` 2), with an
/// optional post-processor that prepends `bos`.
fn specials_first(specials: &[&str], bos: Option<&str>) -> Tokenizer {
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(400)
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
    tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let texts = corpus();
    tok.train(&mut trainer, texts.iter())
        .expect("train fixture");
    if let Some(bos) = bos {
        let id = tok.token_to_id(bos).expect("bos");
        let template = TemplateProcessing::builder()
            .try_single(format!("{bos} $A"))
            .expect("single")
            .special_tokens(vec![(bos, id)])
            .build()
            .expect("template");
        tok.with_post_processor(Some(template));
    }
    tok
}

/// Every id the tokenizer can put into a model input.
fn special_ids(tok: &SqlTokenizer) -> Vec<i64> {
    let mut ids = vec![tok.pad_id(), tok.eos_id(), tok.mask_id()];
    ids.extend(tok.bos_id());
    ids.extend(tok.stop_ids());
    ids
}

/// SmolLM2 declares pad = eos = `<|im_end|>` and has exactly as many embedding rows as tokens:
/// the pad and mask that used to be added got ids 49152/49153 and the embedding failed with
/// "index out of range in self".
#[test]
fn pad_equal_to_eos_gets_no_id_beyond_the_embedding() {
    let raw = specials_first(&["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None);
    let rows = raw.get_vocab_size(true);
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    write_json(
        dir.path(),
        "tokenizer_config.json",
        &json!({
            "add_bos_token": false,
            "bos_token": "<|im_start|>",
            "eos_token": "<|im_end|>",
            "pad_token": "<|im_end|>",
            "unk_token": "<|endoftext|>"
        }),
    );
    write_json(
        dir.path(),
        "config.json",
        &json!({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "vocab_size": rows}),
    );
    let tok = SqlTokenizer::load(dir.path()).expect("load");
    for id in special_ids(&tok) {
        assert!(
            (id as usize) < rows,
            "id {id} has no embedding row (rows: {rows})"
        );
    }
    assert_eq!(tok.vocab_size(), rows);
    assert!(!tok.needs_embedding_resize(rows));
    assert_eq!(tok.eos_id(), 2);
    assert_eq!(tok.bos_id(), None, "SmolLM2 prepends no BOS");
    assert_eq!(tok.pad_id(), 0, "the declared unk pads");
    assert_eq!(tok.mask_id(), 1, "the declared bos masks");
    assert_eq!(tok.stop_ids(), vec![2]);
    assert!(!tok.pad_added() && !tok.mask_added());
    // Saved and loaded again: the same ids.
    let out = tempfile::tempdir().expect("tempdir");
    tok.save(out.path()).expect("save");
    let back = SqlTokenizer::load(out.path()).expect("reload");
    assert_eq!(back.special_tokens(), tok.special_tokens());
}

/// LLaMA-2 and TinyLlama: bos `<s>` prepended, no pad, no mask, 32000 rows for 32000 tokens.
#[test]
fn llama2_like_without_pad_pads_with_unk_and_masks_with_bos() {
    let raw = specials_first(&["<unk>", "<s>", "</s>"], Some("<s>"));
    let rows = raw.get_vocab_size(true);
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    write_json(
        dir.path(),
        "tokenizer_config.json",
        &json!({"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": null}),
    );
    write_json(
        dir.path(),
        "config.json",
        &json!({"bos_token_id": 1, "eos_token_id": 2, "vocab_size": rows}),
    );
    let tok = SqlTokenizer::load(dir.path()).expect("load");
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), 2);
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.mask_id(), 1, "KID masks with <s>, as in the paper");
    for id in special_ids(&tok) {
        assert!(
            (id as usize) < rows,
            "id {id} has no embedding row (rows: {rows})"
        );
    }
    let enc = tok.encode_pair("q", "SELECT 1", 8, 8).expect("pair");
    assert_eq!(enc.input_ids[0], 1);
    assert_eq!(enc.input_ids.last(), Some(&2));
}

#[test]
fn eos_beyond_the_embedding_rows_is_a_mismatch() {
    let raw = qwen_like();
    let eot = raw.token_to_id("<|endoftext|>").expect("eot");
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    write_json(
        dir.path(),
        "config.json",
        &json!({"eos_token_id": eot, "vocab_size": eot}),
    );
    let err = SqlTokenizer::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    // eos and the specials after it have no row: the tokenizer is not this checkpoint's.
    assert!(
        matches!(err, Error::VocabMismatch { rows, .. } if rows == eot as usize),
        "{msg}"
    );
    assert!(msg.contains("config.json"), "{msg}");
    assert!(
        msg.contains(&format!("vocab_size {eot} (embedding rows)")),
        "{msg}"
    );
}

/// A tokenizer.json of a bigger model beside a smaller checkpoint: ordinary text would encode
/// to ids past the embedding ("index out of range in self" in the first forward). The load
/// says so, naming both files, even though every special id has a row.
#[test]
fn tokenizer_with_ids_beyond_vocab_size_is_refused_at_load() {
    let raw = qwen_like();
    let tokens = raw.get_vocab_size(true);
    assert!(tokens > 300, "the fixture has {tokens} ids");
    let dir = tempfile::tempdir().expect("tempdir");
    write_tokenizer(dir.path(), &raw);
    // eos is id 0 (exists, has a row); the checkpoint has 300 rows.
    let eos = raw.id_to_token(0).expect("id 0");
    write_json(
        dir.path(),
        "tokenizer_config.json",
        &json!({"eos_token": eos, "pad_token": eos}),
    );
    write_json(dir.path(), "config.json", &json!({"vocab_size": 300}));
    let err = SqlTokenizer::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::VocabMismatch { tokens: t, rows: 300, .. } if t == tokens),
        "{msg}"
    );
    assert!(msg.contains("tokenizer.json"), "{msg}");
    assert!(msg.contains("config.json"), "{msg}");
    assert!(
        msg.contains(&format!("ids go up to {}", tokens - 1)),
        "{msg}"
    );
    assert!(msg.contains("vocab_size 300"), "{msg}");
    // The same tokenizer with as many rows as ids loads.
    write_json(dir.path(), "config.json", &json!({"vocab_size": tokens}));
    assert!(SqlTokenizer::load(dir.path()).is_ok());
}
