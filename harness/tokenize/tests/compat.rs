//! Student/teacher compatibility reports.

mod common;

use common::{corpus, trained};
use kidbench_tokenizer::{check_compatible, Error, SqlTokenizer};

fn differences(student: &SqlTokenizer, teacher: &SqlTokenizer) -> Vec<String> {
    match check_compatible(student, teacher) {
        Err(Error::Incompatible { differences }) => differences,
        other => panic!("expected Incompatible, got {other:?}"),
    }
}

#[test]
fn identical_tokenizers_are_compatible() {
    check_compatible(&trained(600), &trained(600)).expect("same training, same tokenizer");
}

#[test]
fn different_sizes_are_reported_precisely() {
    let student = trained(500);
    let teacher = trained(600);
    let diffs = differences(&student, &teacher);
    let want = format!(
        "vocab size {} (student) vs {} (teacher)",
        student.vocab_size(),
        teacher.vocab_size()
    );
    assert_eq!(diffs.first(), Some(&want), "{diffs:?}");
    // Special ids are equal (0..=3), so only size and tokens differ.
    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert!(diffs[1].starts_with("vocabularies differ at "), "{diffs:?}");
}

#[test]
fn same_size_different_tokens_names_the_first_id() {
    let student = trained(400);
    // Same size, different corpus: merges differ.
    let other: Vec<String> = corpus().iter().map(|s| s.to_lowercase()).collect();
    let teacher = SqlTokenizer::train(other.iter().map(String::as_str), 400).expect("train");
    assert_eq!(
        student.vocab_size(),
        teacher.vocab_size(),
        "fixture needs equal sizes"
    );
    let diffs = differences(&student, &teacher);
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    let table_s = student.id_to_token_table();
    let table_t = teacher.id_to_token_table();
    let first = (0..table_s.len())
        .find(|&i| table_s[i] != table_t[i])
        .expect("a differing id");
    assert!(first >= 260, "specials and bytes are shared: {first}");
    assert!(
        diffs[0].contains(&format!("first id {first}: ")),
        "{diffs:?}"
    );
    let err = check_compatible(&student, &teacher)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("incompatible tokenizers: vocabularies differ at "),
        "{err}"
    );
}
