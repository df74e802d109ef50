//! Derived splits of synth, written beside `train.json` and `dev.json`:
//!
//! - `val.json` / `train-val.json`: a validation split for choosing settings without touching
//!   dev. Every train database of a few held-out train domains (the domain and all its re-skins)
//!   goes to `val.json` (ordered round-robin over its databases, so `--max-dev N` samples all of
//!   them); `train-val.json` is the rest of train. Like dev, validation schemas are unseen in its
//!   training split.
//! - `dev-syn.json` (benchmark `synth-syn`, in the spirit of Spider-Syn): every dev question with
//!   its schema words (table and column names, `synonyms.txt`) replaced by synonyms; the SQL and
//!   the databases stay. Values that the SQL quotes are never touched.
//! - `dev-realistic.json` (benchmark `synth-realistic`, in the spirit of Spider-Realistic): the dev
//!   questions that name the column of a quoted value (`whose city is Lima`, `with name X`),
//!   rewritten without the column (`with Lima`, `called X`); only rewritten questions are kept.

use std::collections::BTreeSet;

use crate::{Pair, SpiderSchema, SynthError};

/// One train domain in this many is held out for validation (by sorted domain name).
const VAL_EVERY: usize = 9;
/// Offset of the first held-out domain.
const VAL_OFFSET: usize = 4;

/// The derived splits.
#[derive(Debug, Clone, PartialEq)]
pub struct Variants {
    pub val: Vec<Pair>,
    pub train_val: Vec<Pair>,
    pub syn: Vec<Pair>,
    pub realistic: Vec<Pair>,
    /// The held-out train domains.
    pub val_domains: Vec<String>,
}

/// The domain of a train database: `library_r12` (a re-skin) and `library` are `library`.
pub fn base_domain(db_id: &str) -> &str {
    match db_id.rsplit_once("_r") {
        Some((base, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => db_id,
    }
}

/// The entries of `synonyms.txt`, longest phrase first.
fn synonyms() -> Result<Vec<(String, String)>, SynthError> {
    parse_synonyms(include_str!("synonyms.txt"))
}

fn parse_synonyms(text: &str) -> Result<Vec<(String, String)>, SynthError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |m: &str| SynthError::Synonyms {
            line: i + 1,
            msg: m.to_string(),
        };
        let (from, to) = line
            .split_once("=>")
            .ok_or_else(|| bad("expected `phrase => replacement`"))?;
        let (from, to) = (from.trim().to_lowercase(), to.trim().to_string());
        if from.is_empty() || to.is_empty() {
            return Err(bad("empty phrase or replacement"));
        }
        if !seen.insert(from.clone()) {
            return Err(bad(&format!("'{from}' is listed twice")));
        }
        out.push((from, to));
    }
    out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// The string literals of a SQL query (`'Lima'`, with `''` as a quote inside).
pub fn sql_literals(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut lit = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    lit.push('\'');
                }
                Some('\'') | None => break,
                Some(ch) => lit.push(ch),
            }
        }
        out.push(lit);
    }
    out
}

/// Byte ranges of `text` covered by any of `values` (verbatim).
fn protected(text: &str, values: &[String]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        let mut from = 0;
        while let Some(i) = text[from..].find(v.as_str()) {
            spans.push((from + i, from + i + v.len()));
            from += i + v.len();
        }
    }
    spans
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Whether `phrase` (lower case) matches `text` at byte `i` as whole words, case-insensitively.
fn matches_at(text: &str, i: usize, phrase: &str) -> bool {
    let (tb, pb) = (text.as_bytes(), phrase.as_bytes());
    if i + pb.len() > tb.len() || !text.is_char_boundary(i + pb.len()) {
        return false;
    }
    if !tb[i..i + pb.len()].eq_ignore_ascii_case(pb) {
        return false;
    }
    let before = i == 0 || !is_word_byte(tb[i - 1]);
    let after = i + pb.len() == tb.len() || !is_word_byte(tb[i + pb.len()]);
    before && after
}

/// `to` with its first letter upper-cased when `original` starts upper-case.
fn keep_case(original: &str, to: &str) -> String {
    if original.chars().next().is_some_and(char::is_uppercase) {
        let mut c = to.chars();
        match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect(),
            None => String::new(),
        }
    } else {
        to.to_string()
    }
}

/// `question` with every schema phrase of `dict` replaced (longest match first, one pass, never
/// inside a span of `keep`); the number of replacements.
fn replace_synonyms(
    question: &str,
    dict: &[(String, String)],
    keep: &[(usize, usize)],
) -> (String, usize) {
    let mut out = String::with_capacity(question.len() + 16);
    let mut n = 0;
    let mut i = 0;
    'scan: while i < question.len() {
        let inside = keep.iter().any(|&(a, b)| i >= a && i < b);
        if !inside {
            for (from, to) in dict {
                let end = i + from.len();
                let overlaps = keep.iter().any(|&(a, b)| i < b && end > a);
                if !overlaps && matches_at(question, i, from) {
                    out.push_str(&keep_case(&question[i..end], to));
                    n += 1;
                    i = end;
                    continue 'scan;
                }
            }
        }
        let ch = question[i..].chars().next().expect("i is a char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    (out, n)
}

/// `(natural column name, value)` of every `column = 'value'` in `sql`, the column's natural
/// name looked up in `schema` (`T1.city` and `city` alike).
fn equality_filters(sql: &str, schema: &SpiderSchema) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let bytes = sql.as_bytes();
    let mut from = 0;
    while let Some(k) = sql[from..].find(" = '") {
        let eq = from + k;
        // the identifier before " = ", after an optional alias
        let start = sql[..eq]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |p| p + 1);
        let ident = &sql[start..eq];
        let column = ident.rsplit('.').next().unwrap_or(ident);
        let lits = sql_literals(&sql[eq + 3..]);
        if let (Some(value), false) = (lits.first(), column.is_empty()) {
            let natural = schema
                .column_names_original
                .iter()
                .position(|(_, c)| c.eq_ignore_ascii_case(column))
                .map(|p| schema.column_names[p].1.clone());
            if let Some(n) = natural {
                out.push((n, value.clone()));
            }
        }
        from = eq + 4;
        if from >= bytes.len() {
            break;
        }
    }
    out
}

/// Replaces the first case-insensitive occurrence of `pattern` in `text` with `with`.
fn replace_ci(text: &str, pattern: &str, with: &str) -> Option<String> {
    let lower = text.to_lowercase();
    // lower-casing keeps byte offsets for the ASCII text synth writes
    if lower.len() != text.len() {
        return None;
    }
    let i = lower.find(&pattern.to_lowercase())?;
    Some(format!(
        "{}{with}{}",
        &text[..i],
        &text[i + pattern.len()..]
    ))
}

/// The question without the column names of its quoted values, if it names one.
fn realistic(question: &str, filters: &[(String, String)]) -> Option<String> {
    let mut q = question.to_string();
    let mut changed = false;
    for (col, v) in filters {
        let label = matches!(col.as_str(), "name" | "title");
        let forms: [(String, String); 3] = [
            (
                format!("whose {col} is {v}"),
                if label {
                    format!("called {v}")
                } else {
                    format!("with {v}")
                },
            ),
            (
                format!("with {col} {v}"),
                if label {
                    format!("called {v}")
                } else {
                    format!("with {v}")
                },
            ),
            (
                format!("have {col} {v}"),
                if label {
                    format!("are called {v}")
                } else {
                    format!("have {v}")
                },
            ),
        ];
        for (pat, with) in &forms {
            if let Some(next) = replace_ci(&q, pat, with) {
                q = next;
                changed = true;
                break;
            }
        }
    }
    changed.then_some(q)
}

/// `pairs` ordered round-robin over their databases (first question of each database, then the
/// second, ...), so that `--max-dev N` takes a slice of every database, not the first few.
fn interleave(pairs: Vec<Pair>) -> Vec<Pair> {
    let mut by_db: Vec<(String, std::collections::VecDeque<Pair>)> = Vec::new();
    for p in pairs {
        match by_db.iter_mut().find(|(d, _)| *d == p.db_id) {
            Some((_, q)) => q.push_back(p),
            None => by_db.push((p.db_id.clone(), std::collections::VecDeque::from([p]))),
        }
    }
    let mut out = Vec::new();
    while by_db.iter().any(|(_, q)| !q.is_empty()) {
        for (_, q) in by_db.iter_mut() {
            out.extend(q.pop_front());
        }
    }
    out
}

/// Derives the validation split and the two robustness variants.
pub fn derive(
    train: &[Pair],
    dev: &[Pair],
    schemas: &[&SpiderSchema],
) -> Result<Variants, SynthError> {
    let domains: BTreeSet<&str> = train.iter().map(|p| base_domain(&p.db_id)).collect();
    let val_domains: Vec<String> = domains
        .iter()
        .enumerate()
        .filter(|(i, _)| i % VAL_EVERY == VAL_OFFSET)
        .map(|(_, d)| d.to_string())
        .collect();
    let (val, train_val): (Vec<Pair>, Vec<Pair>) = train
        .iter()
        .cloned()
        .partition(|p| val_domains.iter().any(|d| d == base_domain(&p.db_id)));
    let val = interleave(val);
    let dict = synonyms()?;
    let schema_of = |db: &str| schemas.iter().find(|s| s.db_id == db).copied();
    let mut syn = Vec::with_capacity(dev.len());
    let mut real = Vec::new();
    for p in dev {
        let lits = sql_literals(&p.query);
        let keep = protected(&p.question, &lits);
        let (q, _) = replace_synonyms(&p.question, &dict, &keep);
        syn.push(Pair {
            question: q,
            ..p.clone()
        });
        if let Some(schema) = schema_of(&p.db_id) {
            if let Some(q) = realistic(&p.question, &equality_filters(&p.query, schema)) {
                real.push(Pair {
                    question: q,
                    ..p.clone()
                });
            }
        }
    }
    Ok(Variants {
        val,
        train_val,
        syn,
        realistic: real,
        val_domains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> SpiderSchema {
        SpiderSchema {
            db_id: "museum".into(),
            table_names: vec!["museum".into()],
            table_names_original: vec!["museum".into()],
            column_names: vec![
                (-1, "*".into()),
                (0, "name".into()),
                (0, "city".into()),
                (0, "annual visitors".into()),
            ],
            column_names_original: vec![
                (-1, "*".into()),
                (0, "name".into()),
                (0, "city".into()),
                (0, "annual_visitors".into()),
            ],
            column_types: vec!["text".into(); 4],
            primary_keys: vec![],
            foreign_keys: vec![],
        }
    }

    #[test]
    fn re_skins_belong_to_their_domain() {
        assert_eq!(base_domain("library_r12"), "library");
        assert_eq!(base_domain("library"), "library");
        assert_eq!(base_domain("real_estate"), "real_estate");
        assert_eq!(base_domain("real_estate_r3"), "real_estate");
        assert_eq!(base_domain("car_rx"), "car_rx");
    }

    #[test]
    fn literals_are_read_with_doubled_quotes() {
        assert_eq!(
            sql_literals("SELECT a FROM t WHERE b = 'O''Neil' AND c = 'x'"),
            vec!["O'Neil".to_string(), "x".to_string()]
        );
    }

    #[test]
    fn synonyms_replace_whole_words_longest_first_and_never_values() {
        let dict = parse_synonyms(
            "museums => galleries\nmuseum => gallery\nannual visitors => yearly attendance\nart => craft\n",
        )
        .unwrap();
        let q = "List the annual visitors of museums whose name is Munich Art Museum.";
        let keep = protected(q, &["Munich Art Museum".to_string()]);
        let (out, n) = replace_synonyms(q, &dict, &keep);
        assert_eq!(
            out,
            "List the yearly attendance of galleries whose name is Munich Art Museum."
        );
        assert_eq!(n, 2);
        // Case of the first letter is kept; "artworks" is not "art" (whole words only).
        let (out, _) = replace_synonyms("Museums with artworks", &dict, &[]);
        assert_eq!(out, "Galleries with artworks");
        // A possessive is the word itself.
        let (out, _) = replace_synonyms("the museum's city", &dict, &[]);
        assert_eq!(out, "the gallery's city");
    }

    #[test]
    fn a_phrase_listed_twice_is_an_error_naming_its_line() {
        let e = parse_synonyms("a => b\n# c\na => d\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3") && e.contains("'a' is listed twice"),
            "{e}"
        );
    }

    #[test]
    fn realistic_drops_the_column_of_a_quoted_value() {
        let s = schema();
        let f = equality_filters("SELECT name FROM museum WHERE city = 'Lima'", &s);
        assert_eq!(f, vec![("city".to_string(), "Lima".to_string())]);
        assert_eq!(
            realistic("List the names of museums whose city is Lima.", &f).as_deref(),
            Some("List the names of museums with Lima.")
        );
        let f = equality_filters(
            "SELECT city FROM museum AS T1 WHERE T1.name = 'Munich Art Museum'",
            &s,
        );
        assert_eq!(
            realistic(
                "Give me the city of the museum with name Munich Art Museum.",
                &f
            )
            .as_deref(),
            Some("Give me the city of the museum called Munich Art Museum.")
        );
        // No quoted value, or a value the question does not attach to its column: not kept.
        assert_eq!(realistic("How many museums are there?", &[]), None);
        let f = equality_filters("SELECT name FROM museum WHERE city = 'Lima'", &s);
        assert_eq!(realistic("Which museums are in Lima?", &f), None);
    }

    #[test]
    fn the_validation_split_holds_out_whole_domains() {
        let p = |db: &str| Pair {
            db_id: db.into(),
            question: format!("q {db}"),
            query: "SELECT 1".into(),
            hardness: crate::Hardness::Easy,
            template: "t".into(),
        };
        let train: Vec<Pair> = ["a", "b", "c", "d", "e", "e_r1", "e_r2", "f", "g"]
            .iter()
            .map(|d| p(d))
            .collect();
        let v = derive(&train, &[], &[]).unwrap();
        // sorted domains a..g: index 4 is "e", held out with its re-skins
        assert_eq!(v.val_domains, vec!["e".to_string()]);
        let val: Vec<&str> = v.val.iter().map(|p| p.db_id.as_str()).collect();
        assert_eq!(val, vec!["e", "e_r1", "e_r2"]);
        // round-robin over databases: a prefix covers every database
        let twice: Vec<Pair> = ["x", "x", "y", "y", "z"].iter().map(|d| p(d)).collect();
        let order: Vec<String> = interleave(twice).into_iter().map(|p| p.db_id).collect();
        assert_eq!(order, vec!["x", "y", "z", "x", "y"]);
        assert_eq!(v.train_val.len(), 6);
        assert!(v.train_val.iter().all(|p| base_domain(&p.db_id) != "e"));
    }
}
