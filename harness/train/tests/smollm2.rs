//! The `smollm2-135m` preset, and the crash it used to hit: SmolLM2 declares pad = eos, kidbench
//! then added a pad and a mask token with ids 49152/49153, beyond the checkpoint's 49,152
//! embedding rows, and the first forward failed with "index out of range in self".
//!
//! The model folder comes from `scripts/models.sh smollm2-135m`; without it the tests that need
//! it fail with the resolver's error, which names that command.

use kidbench_tokenizer::SqlTokenizer;
use kidbench_train::data::{collate, Example};
use kidbench_train::lm;
use kidbench_train::presets::{self, Preset, Resolved};
use tch::{Device, Tensor};

const FETCH: &str = "scripts/models.sh smollm2-135m";

#[test]
fn smollm2_preset_names_the_command_that_fetches_it() {
    let p = presets::lookup("smollm2-135m").expect("preset");
    assert!(
        matches!(p, Preset::Hf(h) if h.fetch == Some(FETCH)),
        "{p:?}"
    );
    assert_eq!(
        presets::lookup("SmolLM2").expect("alias").name(),
        "smollm2-135m"
    );
    assert!(presets::names().contains(&"smollm2-135m".to_string()));

    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("smollm2-135m");
    let err = presets::resolve("smollm2-135m", Some(&missing))
        .unwrap_err()
        .to_string();
    assert!(err.contains(FETCH), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

fn smollm2() -> (SqlTokenizer, lm::Lm) {
    let dir = match presets::resolve("smollm2-135m", None) {
        Ok(Resolved::Local { dir, .. }) => dir,
        Ok(other) => panic!("smollm2-135m resolved to {other:?}"),
        Err(e) => panic!("{e}"),
    };
    let tok = SqlTokenizer::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let model = lm::load_dir(&dir, Device::Cpu).unwrap_or_else(|e| panic!("{e:#}"));
    (tok, model)
}

const SCHEMA: &str = "CREATE TABLE singer (name TEXT, country TEXT, age INTEGER);\n-- ";

#[test]
fn smollm2_pad_and_mask_ids_index_the_embedding() {
    let (tok, m) = smollm2();
    let rows = m.model.config().vocab_size;
    for id in [tok.pad_id(), tok.eos_id(), tok.mask_id()] {
        assert!(
            (0..rows).contains(&id),
            "id {id} has no embedding row ({rows} rows)"
        );
    }
    let pairs = [
        ("How many singers are there?", "SELECT count(*) FROM singer"),
        (
            "Names of singers from France older than 30?",
            "SELECT name FROM singer WHERE country = 'France' AND age > 30 ORDER BY age",
        ),
    ];
    let examples: Vec<Example> = pairs
        .iter()
        .map(|(q, sql)| {
            let e = tok
                .encode_pair(&format!("{SCHEMA}{q}\nSELECT"), sql, 1024, 128)
                .expect("encode");
            Example {
                input_ids: e.input_ids,
                prompt_len: e.prompt_len,
            }
        })
        .collect();
    let refs: Vec<&Example> = examples.iter().collect();
    let batch = collate(&refs, tok.pad_id(), Device::Cpu).expect("collate");
    let logits = tch::no_grad(|| m.model.forward(&batch.input_ids, &batch.attention_mask))
        .expect("forward on a padded batch");
    assert_eq!(logits.size()[2], rows);
    assert!(bool::try_from(logits.isfinite().all()).expect("bool"));

    // KID's imperfect input: positions that carry loss replaced by the mask id, one more forward.
    let masked = batch.input_ids.where_self(
        &batch.loss_mask.eq(0.0),
        &Tensor::full_like(&batch.input_ids, tok.mask_id()),
    );
    let logits = tch::no_grad(|| m.model.forward(&masked, &batch.attention_mask))
        .expect("forward with mask tokens");
    assert!(bool::try_from(logits.isfinite().all()).expect("bool"));

    // Left padding with the reused pad id changes nothing: a prompt decodes the same alone and
    // beside a longer one.
    let prompts: Vec<Vec<i64>> = pairs
        .iter()
        .map(|(q, _)| {
            tok.encode_prompt(&format!("{SCHEMA}{q}\nSELECT"), 1024)
                .expect("prompt")
                .input_ids
        })
        .collect();
    let both = lm::generate_sql(&m.model, &tok, &prompts, 2, 6, None).expect("batched");
    let alone = lm::generate_sql(&m.model, &tok, &prompts[..1], 1, 6, None).expect("alone");
    assert_eq!(both.sql[0], alone.sql[0]);
}
