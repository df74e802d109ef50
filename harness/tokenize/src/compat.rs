//! Student/teacher tokenizer compatibility.

use crate::{Error, Result, SpecialToken, SqlTokenizer};

/// How many differing ids an incompatibility report lists before summarising.
const MAX_LISTED_IDS: usize = 3;

/// Checks that `student` and `teacher` can be distilled logit-to-logit: same vocabulary size,
/// same special ids (pad, bos, eos, mask) and the same token at every id (compared through
/// [`SqlTokenizer::vocab_sha256`]).
///
/// The error ([`Error::Incompatible`]) lists every difference, e.g.
/// `vocab size 151936 (student) vs 152064 (teacher)`, `eos id 2 "</s>" (student) vs 151643
/// "<|endoftext|>" (teacher)`, or the first ids whose tokens differ.
pub fn check_compatible(student: &SqlTokenizer, teacher: &SqlTokenizer) -> Result<()> {
    let mut diffs = Vec::new();
    if student.vocab_size() != teacher.vocab_size() {
        diffs.push(format!(
            "vocab size {} (student) vs {} (teacher)",
            student.vocab_size(),
            teacher.vocab_size()
        ));
    }
    let (s, t) = (student.special_tokens(), teacher.special_tokens());
    let roles: [(&str, Option<&SpecialToken>, Option<&SpecialToken>); 4] = [
        ("pad", Some(&s.pad), Some(&t.pad)),
        ("bos", s.bos.as_ref(), t.bos.as_ref()),
        ("eos", Some(&s.eos), Some(&t.eos)),
        ("mask", Some(&s.mask), Some(&t.mask)),
    ];
    for (role, a, b) in roles {
        if a.map(|x| x.id) != b.map(|x| x.id) {
            diffs.push(format!(
                "{role} id {} (student) vs {} (teacher)",
                describe(a),
                describe(b)
            ));
        }
    }
    if student.vocab_sha256() != teacher.vocab_sha256() {
        let (a, b) = (student.id_to_token_table(), teacher.id_to_token_table());
        let differing: Vec<usize> = (0..a.len().max(b.len()))
            .filter(|&i| a.get(i).cloned().flatten() != b.get(i).cloned().flatten())
            .collect();
        let listed: Vec<String> = differing
            .iter()
            .take(MAX_LISTED_IDS)
            .map(|&i| {
                format!(
                    "id {i}: {} (student) vs {} (teacher)",
                    show(a.get(i)),
                    show(b.get(i))
                )
            })
            .collect();
        diffs.push(format!(
            "vocabularies differ at {} id(s), first {}",
            differing.len(),
            listed.join(", ")
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Error::Incompatible { differences: diffs })
    }
}

fn describe(t: Option<&SpecialToken>) -> String {
    match t {
        Some(t) => format!("{} {:?}", t.id, t.token),
        None => "none".to_owned(),
    }
}

fn show(t: Option<&Option<String>>) -> String {
    match t {
        Some(Some(s)) => format!("{s:?}"),
        _ => "<no token>".to_owned(),
    }
}
