//! Tests of the trained byte-level BPE tokenizer.

mod common;

use common::{corpus, round_trip_cases, trained, SCHEMA};
use kidbench_tokenizer::{
    Error, Origin, SqlTokenizer, BOS_ID, EOS_ID, MASK_ID, META_FILE, PAD_ID, TOKENIZER_FILE,
};

#[test]
fn round_trip_is_exact() {
    let tok = trained(600);
    for case in round_trip_cases() {
        let ids = tok.encode(&case).expect("encode");
        let back = tok.decode(&ids).expect("decode");
        assert_eq!(back, case, "round trip changed {case:?} (ids {ids:?})");
    }
}

#[test]
fn round_trip_through_encode_pair() {
    let tok = trained(600);
    let sql = "SELECT name FROM singer WHERE country = 'Zürich' AND age >= 30";
    let enc = tok
        .encode_pair("Question?", sql, 64, 64)
        .expect("encode_pair");
    // decode stops at EOS and skips BOS; the target decodes to the exact SQL.
    assert_eq!(tok.decode(enc.target_ids()).expect("decode"), sql);
    let mut with_tail = enc.target_ids().to_vec();
    with_tail.extend(tok.encode(" garbage after eos").expect("encode"));
    assert_eq!(tok.decode(&with_tail).expect("decode"), sql);
}

#[test]
fn merges_actually_compress() {
    let tok = trained(600);
    let sql = "SELECT name FROM singer WHERE country = 'Paris'";
    let n = tok.encode(sql).expect("encode").len();
    assert!(n < sql.len() / 2, "{n} tokens for {} bytes", sql.len());
}

#[test]
fn special_ids_are_fixed_and_distinct() {
    let tok = trained(600);
    assert_eq!(tok.pad_id(), i64::from(PAD_ID));
    assert_eq!(tok.bos_id(), Some(i64::from(BOS_ID)));
    assert_eq!(tok.eos_id(), i64::from(EOS_ID));
    assert_eq!(tok.mask_id(), i64::from(MASK_ID));
    assert_eq!((PAD_ID, BOS_ID, EOS_ID, MASK_ID), (0, 1, 2, 3));
    assert_eq!(tok.stop_ids(), vec![2]);
    assert!(!tok.mask_added() && !tok.pad_added());
    assert_eq!(tok.origin(), Origin::Trained);
    assert!(tok.vocab_size() > 260 && tok.vocab_size() <= 600);
}

#[test]
fn specials_in_text_are_plain_text() {
    // Training text full of special-token strings must not make them mergeable, and encoding
    // such text must never yield a special id.
    let mut texts = corpus();
    texts.extend((0..50).map(|_| "<s> </s> <pad> <mask> <s></s>".to_string()));
    let tok = SqlTokenizer::train(texts.iter().map(String::as_str), 600).expect("train");
    let text = "a <s> b </s> c <pad> d <mask>";
    let ids = tok.encode(text).expect("encode");
    assert!(ids.iter().all(|&i| i > 3), "special id in {ids:?}");
    assert_eq!(tok.decode(&ids).expect("decode"), text);
}

#[test]
fn encode_pair_layout() {
    let tok = trained(600);
    let prompt = "How many singers?";
    let sql = "SELECT count(*) FROM singer";
    let p = tok.encode(prompt).expect("encode");
    let s = tok.encode(sql).expect("encode");
    let enc = tok.encode_pair(prompt, sql, 100, 100).expect("encode_pair");
    let mut want = vec![tok.bos_id().expect("bos")];
    want.extend(&p);
    want.extend(&s);
    want.push(tok.eos_id());
    assert_eq!(enc.input_ids, want);
    assert_eq!(enc.prompt_len, 1 + p.len());
    assert!(!enc.prompt_truncated && !enc.target_truncated);
    assert_eq!(enc.target_ids().last(), Some(&tok.eos_id()));
}

#[test]
fn encode_pair_truncates_prompt_from_the_left() {
    let tok = trained(600);
    let question = "-- Question: How many concerts were held in Zürich in 2014?";
    let prompt = format!("{SCHEMA}\n{SCHEMA}\n{question}");
    let full = tok.encode(&prompt).expect("encode");
    let max_prompt = 20;
    assert!(
        full.len() + 1 > max_prompt,
        "prompt must be long for this test"
    );
    let enc = tok
        .encode_pair(&prompt, "SELECT 1", max_prompt, 16)
        .expect("encode_pair");
    assert_eq!(enc.prompt_len, max_prompt);
    assert!(enc.prompt_truncated);
    assert_eq!(enc.input_ids[0], tok.bos_id().expect("bos"));
    // The end of the prompt survives: the last max_prompt-1 ids of the full prompt.
    assert_eq!(
        &enc.input_ids[1..max_prompt],
        &full[full.len() - (max_prompt - 1)..]
    );
    let kept = tok.decode(&enc.input_ids[..max_prompt]).expect("decode");
    assert!(kept.ends_with("in 2014?"), "{kept:?}");
    assert_eq!(enc.input_ids.last(), Some(&tok.eos_id()));
    let target = tok.encode("SELECT 1").expect("encode");
    assert_eq!(enc.input_ids.len(), max_prompt + target.len() + 1);
}

#[test]
fn encode_pair_truncated_target_has_no_eos() {
    let tok = trained(600);
    let sql = "SELECT name, country, age FROM singer WHERE age > 30 ORDER BY age";
    let s = tok.encode(sql).expect("encode");
    // exactly fits: len + EOS
    let fit = tok.encode_pair("q", sql, 8, s.len() + 1).expect("fit");
    assert!(!fit.target_truncated);
    assert_eq!(fit.input_ids.last(), Some(&tok.eos_id()));
    // one short: cut, no EOS, within budget
    let cut = tok.encode_pair("q", sql, 8, s.len()).expect("cut");
    assert!(cut.target_truncated);
    assert_eq!(cut.target_ids(), &s[..]);
    let cut = tok.encode_pair("q", sql, 8, 3).expect("cut");
    assert_eq!(cut.target_ids(), &s[..3]);
    assert!(!cut.input_ids.contains(&tok.eos_id()));
}

#[test]
fn encode_budgets_are_validated() {
    let tok = trained(600);
    assert!(matches!(
        tok.encode_pair("q", "s", 1, 4),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        tok.encode_pair("q", "s", 4, 0),
        Err(Error::InvalidArgument(_))
    ));
    let p = tok.encode_prompt("some prompt text", 2).expect("prompt");
    assert_eq!(p.input_ids.len(), 2);
    assert_eq!(p.prompt_len, 2);
    assert_eq!(p.input_ids[0], tok.bos_id().expect("bos"));
}

#[test]
fn decode_skips_specials_and_rejects_negative_ids() {
    let tok = trained(600);
    let ids = tok.encode("SELECT 1").expect("encode");
    let mut noisy = vec![tok.bos_id().expect("bos"), tok.pad_id(), tok.mask_id()];
    noisy.extend(&ids);
    noisy.push(tok.pad_id());
    noisy.push(1_000_000); // beyond the vocabulary: skipped
    assert_eq!(tok.decode(&noisy).expect("decode"), "SELECT 1");
    assert!(matches!(tok.decode(&[5, -1]), Err(Error::InvalidId(-1))));
}

#[test]
fn training_is_deterministic() {
    let a = trained(600).to_json().expect("json");
    let b = trained(600).to_json().expect("json");
    assert_eq!(a, b);
    // Order of the texts does not matter either.
    let mut texts = corpus();
    texts.reverse();
    let c = SqlTokenizer::train(texts.iter().map(String::as_str), 600)
        .expect("train")
        .to_json()
        .expect("json");
    assert_eq!(a, c);
    // A different size gives a different tokenizer (the test can fail).
    let d = trained(400).to_json().expect("json");
    assert_ne!(a, d);
}

#[test]
fn too_small_vocab_is_rejected() {
    let texts = corpus();
    let err = SqlTokenizer::train(texts.iter().map(String::as_str), 100).unwrap_err();
    assert!(err.to_string().contains("260"), "{err}");
}

#[test]
fn save_load_round_trip() {
    let tok = trained(600);
    let dir = tempfile::tempdir().expect("tempdir");
    tok.save(dir.path()).expect("save");
    assert!(dir.path().join(TOKENIZER_FILE).is_file());
    assert!(dir.path().join(META_FILE).is_file());
    for path in [
        dir.path().to_path_buf(),
        dir.path().join(TOKENIZER_FILE),
        dir.path().join(META_FILE),
    ] {
        let back = SqlTokenizer::load(&path).expect("load");
        assert_eq!(back.to_json().expect("json"), tok.to_json().expect("json"));
        assert_eq!(back.special_tokens(), tok.special_tokens());
        assert_eq!(back.vocab_size(), tok.vocab_size());
        assert_eq!(back.vocab_sha256(), tok.vocab_sha256());
        assert_eq!(back.origin(), Origin::Trained);
        let sql = "SELECT avg(age) FROM singer WHERE country != 'Zürich'";
        assert_eq!(back.encode(sql).expect("a"), tok.encode(sql).expect("b"));
        kidbench_tokenizer::check_compatible(&tok, &back).expect("compatible");
    }
    // Saved file is byte-identical to to_json.
    let on_disk = std::fs::read_to_string(dir.path().join(TOKENIZER_FILE)).expect("read");
    assert_eq!(on_disk, tok.to_json().expect("json"));
}

#[test]
fn trained_tokenizer_json_alone_loads_with_same_specials() {
    // Without the kidbench sidecar the HF policy applies; it must find the same ids,
    // BOS included (detected from the template post-processor).
    let tok = trained(600);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(TOKENIZER_FILE),
        tok.to_json().expect("json"),
    )
    .expect("write");
    let back = SqlTokenizer::load(dir.path()).expect("load");
    assert_eq!(back.special_tokens(), tok.special_tokens());
    assert!(!back.mask_added() && !back.pad_added());
    assert_eq!(back.origin(), Origin::HuggingFace);
}

#[test]
fn tampered_meta_is_reported_with_its_file() {
    let tok = trained(600);
    let dir = tempfile::tempdir().expect("tempdir");
    tok.save(dir.path()).expect("save");
    let meta_path = dir.path().join(META_FILE);
    let meta = std::fs::read_to_string(&meta_path).expect("read");
    let mut v: serde_json::Value = serde_json::from_str(&meta).expect("json");
    v["special"]["eos"]["id"] = serde_json::json!(0);
    std::fs::write(&meta_path, v.to_string()).expect("write");
    let err = SqlTokenizer::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::SpecialIds { .. }), "{msg}");
    assert!(msg.contains(META_FILE), "{msg}");
    assert!(msg.contains("pad and eos share id 0"), "{msg}");
}

/// Not a timing test: prints average token counts (held-out half of the corpus) for the
/// lead's report. Run with `-- --nocapture` to see them.
#[test]
fn report_average_lengths() {
    let texts = corpus();
    let train: Vec<&str> = texts.iter().step_by(2).map(String::as_str).collect();
    let held_out: Vec<&str> = texts
        .iter()
        .skip(1)
        .step_by(2)
        .map(String::as_str)
        .collect();
    for vocab in [300, 400, 1024] {
        let tok = SqlTokenizer::train(train.iter().copied(), vocab).expect("train");
        let (mut sql, mut prompt) = ((0usize, 0usize, 0usize), (0usize, 0usize, 0usize));
        for t in &held_out {
            let n = tok.encode(t).expect("encode").len();
            let acc = if t.to_ascii_uppercase().starts_with("SELECT") {
                &mut sql
            } else {
                &mut prompt
            };
            acc.0 += n;
            acc.1 += 1;
            acc.2 += t.len();
        }
        assert!(sql.1 > 0 && prompt.1 > 0);
        println!(
            "vocab {vocab} (actual {}): SQL {:.1} tokens avg ({:.2} bytes/token), prompts {:.1} tokens avg ({:.2} bytes/token)",
            tok.vocab_size(),
            sql.0 as f64 / sql.1 as f64,
            sql.2 as f64 / sql.0 as f64,
            prompt.0 as f64 / prompt.1 as f64,
            prompt.2 as f64 / prompt.0 as f64,
        );
    }
}
