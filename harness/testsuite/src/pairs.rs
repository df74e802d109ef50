//! Pairs files: what `kidbench eval --pairs FILE` reads.
//!
//! JSON Lines, one object per line with at least `"id"` (a string or a number), `"db_id"`,
//! `"gold"` and `"pred"` (strings); other fields are ignored and blank lines skipped.
//!
//! - A lone UTF-16 surrogate escape (`"\udcff"`, what Python's `json.dumps` writes for bytes
//!   decoded with `surrogateescape`) is read as U+FFFD and the line is scored as usual
//!   ([`PairsFile::lenient_lines`] lists such lines). A valid high + low pair is left alone.
//! - A line that cannot be scored — raw bytes that are not UTF-8, not JSON, not an object, a
//!   field missing or of the wrong type (`"pred": null` and `"pred": 42` included) — is not
//!   fatal: it is kept with its [`LineError`] and scored 0 by [`score_pairs_file`], and the rest
//!   of the file is scored. A missing `id` is such a line too (its record then carries only its
//!   line number).
//! - An id on more than one line is reported ([`PairsFile::duplicates`]); the lines are scored.
//! - A file with no non-blank line is an error ([`PairsError::Empty`]), not a score of 0 of 0.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kidbench_sql::eval::{summarize, EvalOptions, Pair, Verdict};
use serde_json::Value;

use crate::score::{score_pairs, Scoring};
use crate::verdict::{Suite, TsReport, TsVerdict};

/// Why a pairs file cannot be used at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairsError {
    /// The file cannot be opened or read.
    #[error("cannot read pairs file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No line holds anything.
    #[error(
        "pairs file {path} is empty: expected one JSON object per line with \"id\", \"db_id\", \"gold\" and \"pred\""
    )]
    Empty { path: PathBuf },
}

/// What is wrong with one field of a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    #[error("missing field \"{0}\"")]
    Missing(&'static str),
    /// `found` and `expected` as in "a number", "null", "a string".
    #[error("wrong type: \"{field}\" is {found}, expected {expected}")]
    WrongType {
        field: &'static str,
        found: &'static str,
        expected: &'static str,
    },
}

/// Why one line cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Raw bytes that are not UTF-8 (`column` is 1-based, in bytes).
    #[error("not UTF-8: byte 0x{byte:02x} at column {column}")]
    NotUtf8 { byte: u8, column: usize },
    /// Not a JSON value (serde_json's message).
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("not a JSON object but {0}")]
    NotObject(&'static str),
    /// One or more fields missing or of the wrong type, in the order id, db_id, gold, pred.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Fields(Vec<FieldError>),
}

/// One non-blank line of a pairs file.
#[derive(Debug, Clone, PartialEq)]
pub struct PairLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The `id` as written (a string or a number); `Null` when missing or unusable.
    pub id: Value,
    /// The pair; on a bad line, the fields that could be read (the others empty).
    pub pair: Pair,
    /// Why the line cannot be scored (`None`: it is scored).
    pub error: Option<LineError>,
}

impl PairLine {
    pub fn is_bad(&self) -> bool {
        self.error.is_some()
    }
}

/// An id seen again: on `line`, first on `first_line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateId {
    pub id: String,
    pub first_line: usize,
    pub line: usize,
}

/// A pairs file as read by [`read_pairs`].
#[derive(Debug, Clone, PartialEq)]
pub struct PairsFile {
    pub path: PathBuf,
    /// Every non-blank line, in file order (good and bad).
    pub lines: Vec<PairLine>,
    /// Every repeated id, in the order of the repeating lines.
    pub duplicates: Vec<DuplicateId>,
    /// Lines on which a lone surrogate escape was read as U+FFFD.
    pub lenient_lines: Vec<usize>,
}

impl PairsFile {
    /// The lines that cannot be scored.
    pub fn bad_lines(&self) -> impl Iterator<Item = &PairLine> {
        self.lines.iter().filter(|l| l.is_bad())
    }

    /// `<file>: line <n>: <error>` for a bad line; `None` for a good one.
    pub fn describe(&self, line: &PairLine) -> Option<String> {
        line.error
            .as_ref()
            .map(|e| format!("{}: line {}: {e}", self.path.display(), line.line))
    }
}

/// Reads a pairs file; see the module documentation for what each kind of line becomes.
pub fn read_pairs(path: &Path) -> Result<PairsFile, PairsError> {
    let bytes = std::fs::read(path).map_err(|source| PairsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = Vec::new();
    let mut lenient_lines = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let number = i + 1;
        let mut raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if number == 1 {
            raw = raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(raw);
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (line, lenient) = parse_line(number, raw);
        if lenient {
            lenient_lines.push(number);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(PairsError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut duplicates = Vec::new();
    for l in &lines {
        if l.id.is_null() {
            continue;
        }
        match first.get(l.pair.id.as_str()) {
            Some(&first_line) => duplicates.push(DuplicateId {
                id: l.pair.id.clone(),
                first_line,
                line: l.line,
            }),
            None => {
                first.insert(&l.pair.id, l.line);
            }
        }
    }
    Ok(PairsFile {
        path: path.to_path_buf(),
        lines,
        duplicates,
        lenient_lines,
    })
}

/// How a JSON value is named in messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One non-blank line; the flag says whether a lone surrogate was replaced.
fn parse_line(number: usize, raw: &[u8]) -> (PairLine, bool) {
    let (text, utf8_error) = match std::str::from_utf8(raw) {
        Ok(t) => (Cow::Borrowed(t), None),
        // Still read what can be read (the id, for the record), but the line is bad.
        Err(e) => (
            String::from_utf8_lossy(raw),
            Some(LineError::NotUtf8 {
                byte: raw[e.valid_up_to()],
                column: e.valid_up_to() + 1,
            }),
        ),
    };
    let fixed = replace_lone_surrogates(&text);
    let lenient = matches!(fixed, Cow::Owned(_));
    let mut line = PairLine {
        line: number,
        id: Value::Null,
        pair: Pair {
            id: String::new(),
            db_id: String::new(),
            gold: String::new(),
            pred: String::new(),
        },
        error: None,
    };
    let value: Value = match serde_json::from_str(&fixed) {
        Ok(v) => v,
        Err(e) => {
            line.error = Some(utf8_error.unwrap_or_else(|| LineError::NotJson(e.to_string())));
            return (line, lenient);
        }
    };
    let Value::Object(obj) = value else {
        line.error = Some(utf8_error.unwrap_or(LineError::NotObject(kind(&value))));
        return (line, lenient);
    };
    let mut errors = Vec::new();
    match obj.get("id") {
        Some(Value::String(s)) => {
            line.pair.id = s.clone();
            line.id = Value::String(s.clone());
        }
        Some(Value::Number(n)) => {
            line.pair.id = n.to_string();
            line.id = Value::Number(n.clone());
        }
        Some(other) => errors.push(FieldError::WrongType {
            field: "id",
            found: kind(other),
            expected: "a string or a number",
        }),
        None => errors.push(FieldError::Missing("id")),
    }
    for (field, slot) in [
        ("db_id", &mut line.pair.db_id),
        ("gold", &mut line.pair.gold),
        ("pred", &mut line.pair.pred),
    ] {
        match obj.get(field) {
            Some(Value::String(s)) => *slot = s.clone(),
            Some(other) => errors.push(FieldError::WrongType {
                field,
                found: kind(other),
                expected: "a string",
            }),
            None => errors.push(FieldError::Missing(field)),
        }
    }
    line.error = utf8_error.or((!errors.is_empty()).then_some(LineError::Fields(errors)));
    (line, lenient)
}

/// The four hex digits after `\u` at `at` (the index of the backslash), as a code unit.
fn escape_at(b: &[u8], at: usize) -> Option<u16> {
    if b.get(at) != Some(&b'\\') || b.get(at + 1) != Some(&b'u') {
        return None;
    }
    let hex = std::str::from_utf8(b.get(at + 2..at + 6)?).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

/// JSON text with every `\uD800`-`\uDFFF` escape that is not half of a valid high + low pair
/// replaced by `\uFFFD`. Other escapes, `\\u` (an escaped backslash, then `u`) included, are
/// copied as they are. Returns the text unchanged (borrowed) when there is nothing to replace.
pub fn replace_lone_surrogates(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = escape_at(b, i) else {
            // `\\`, `\"`, `\n`, ...: the escaped character is not the start of an escape.
            i += 2;
            continue;
        };
        let high = (0xD800..=0xDBFF).contains(&unit);
        let low = (0xDC00..=0xDFFF).contains(&unit);
        if high && escape_at(b, i + 6).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u)) {
            i += 12;
            continue;
        }
        if high || low {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push_str("\\uFFFD");
            copied = i + 6;
        }
        i += 6;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// The verdict of a bad line: not matched, scored 0, its message in `error`.
fn bad_verdict(line: &PairLine, message: String) -> Verdict {
    Verdict {
        id: line.pair.id.clone(),
        db_id: line.pair.db_id.clone(),
        matched: false,
        cause: None,
        error: Some(message),
        gold_cause: None,
        gold_error: None,
        order_matters: false,
        ms: 0.0,
        gold_rows: None,
        pred_rows: None,
        gold_preview: Vec::new(),
        pred_preview: Vec::new(),
        hardness: Some(kidbench_sql::hardness::label(&line.pair.gold)),
    }
}

/// Scores a pairs file: [`score_pairs`] on its good lines, and a verdict for each bad line
/// (not matched, its message as `error`), all in file order (`verdicts[i]` judges
/// `file.lines[i]`). Bad lines count in the EX and TS denominators (they score 0) and in
/// their gold query's hardness level (`unknown` when there is none); the TS suite counters
/// (`questions_without_suite`, `gold_failed_on_suite`) cover the good lines only.
pub fn score_pairs_file<R>(
    file: &PairsFile,
    resolve: R,
    opts: &EvalOptions,
    suite: Option<&Suite>,
    progress: Option<&indicatif::ProgressBar>,
) -> Scoring
where
    R: Fn(&str) -> PathBuf + Sync,
{
    let good: Vec<usize> = (0..file.lines.len())
        .filter(|&i| !file.lines[i].is_bad())
        .collect();
    let pairs: Vec<Pair> = good.iter().map(|&i| file.lines[i].pair.clone()).collect();
    let scored = score_pairs(&pairs, resolve, opts, suite, progress);
    if let Some(p) = progress {
        p.inc((file.lines.len() - good.len()) as u64);
    }
    let mut slots: Vec<Option<Verdict>> = vec![None; file.lines.len()];
    for (&i, v) in good.iter().zip(scored.verdicts) {
        slots[i] = Some(v);
    }
    let verdicts: Vec<Verdict> = slots
        .into_iter()
        .zip(&file.lines)
        .map(|(v, l)| v.unwrap_or_else(|| bad_verdict(l, file.describe(l).unwrap_or_default())))
        .collect();
    let summary = summarize(&verdicts);
    let ts = scored.ts.map(|t| merge_ts(file, &good, t));
    Scoring {
        verdicts,
        summary,
        ts,
    }
}

/// TS verdicts of the good lines, re-indexed to file order, with a TS = EX = 0 verdict for each
/// bad line, counted in the summary's totals and hardness levels.
fn merge_ts(file: &PairsFile, good: &[usize], t: TsReport) -> TsReport {
    let TsReport {
        verdicts,
        mut summary,
    } = t;
    let mut slots: Vec<Option<TsVerdict>> = vec![None; file.lines.len()];
    for mut v in verdicts {
        let at = good[v.index];
        v.index = at;
        slots[at] = Some(v);
    }
    let mut out = Vec::with_capacity(file.lines.len());
    for (i, (slot, l)) in slots.into_iter().zip(&file.lines).enumerate() {
        if let Some(v) = slot {
            out.push(v);
            continue;
        }
        let hardness = kidbench_sql::hardness::classify(&l.pair.gold).ok();
        summary.all.count += 1;
        summary
            .by_hardness
            .entry(hardness.map_or("unknown", |h| h.as_str()).to_string())
            .or_default()
            .count += 1;
        out.push(TsVerdict {
            index: i,
            id: l.pair.id.clone(),
            db_id: l.pair.db_id.clone(),
            hardness,
            skipped: false,
            ex: false,
            ts: false,
            ts_first_failing_db: None,
            suite_databases_used: 0,
            gold_failed_on_suite: 0,
            suite_pred_error: None,
        });
    }
    TsReport {
        verdicts: out,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn one(line: &str) -> PairLine {
        let (_d, p) = file(line.as_bytes());
        let mut f = read_pairs(&p).unwrap();
        assert_eq!(f.lines.len(), 1);
        f.lines.remove(0)
    }

    const OK: &str = r#""id": 1, "db_id": "d", "gold": "SELECT 1""#;

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(replace_lone_surrogates(r#""\udcff""#), r#""\uFFFD""#);
        assert_eq!(replace_lone_surrogates(r#""a\uD800b""#), r#""a\uFFFDb""#);
        // A valid pair is kept; a high followed by a high loses only the first.
        assert!(matches!(
            replace_lone_surrogates(r#""\ud83d\ude00""#),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            replace_lone_surrogates(r#""\ud83d\ud83d\ude00""#),
            r#""\uFFFD\ud83d\ude00""#
        );
        // A low before a high is two lone surrogates.
        assert_eq!(
            replace_lone_surrogates(r#""\ude00\ud83d""#),
            r#""\uFFFD\uFFFD""#
        );
        // `\\udcff` is a backslash then the text "udcff"; `\\\udcff` is a backslash, then a
        // lone surrogate.
        assert!(matches!(
            replace_lone_surrogates(r#""\\udcff""#),
            Cow::Borrowed(_)
        ));
        assert_eq!(replace_lone_surrogates(r#""\\\udcff""#), r#""\\\uFFFD""#);
        // Ordinary escapes, a BMP escape and a short escape are left alone.
        for s in [r#""\n\"\u00e9\u0041""#, r#""\u12""#, r#""\"#] {
            assert!(
                matches!(replace_lone_surrogates(s), Cow::Borrowed(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn a_lone_surrogate_in_pred_is_read_as_u_fffd_and_scored() {
        let l = one(&format!(r#"{{{OK}, "pred": "SELECT '\udcff'"}}"#));
        assert_eq!(l.error, None);
        assert_eq!(l.pair.pred, "SELECT '\u{fffd}'");
        let l = one(&format!(r#"{{{OK}, "pred": "SELECT '\\udcff'"}}"#));
        assert_eq!(
            l.pair.pred, "SELECT '\\udcff'",
            "an escaped backslash stays"
        );
        let l = one(&format!(r#"{{{OK}, "pred": "SELECT '\ud83d\ude00'"}}"#));
        assert_eq!(l.pair.pred, "SELECT '\u{1f600}'");
    }

    #[test]
    fn bad_fields_are_named_precisely() {
        let l = one(&format!(r#"{{{OK}, "pred": 42}}"#));
        assert_eq!(
            l.error.unwrap().to_string(),
            "wrong type: \"pred\" is a number, expected a string"
        );
        let l = one(&format!(r#"{{{OK}}}"#));
        assert_eq!(l.error.unwrap().to_string(), "missing field \"pred\"");
        let l = one(&format!(r#"{{{OK}, "pred": null}}"#));
        assert_eq!(
            l.error.unwrap().to_string(),
            "wrong type: \"pred\" is null, expected a string"
        );
        let l = one(r#"{"id": [1], "gold": 3, "pred": "SELECT 1"}"#);
        assert_eq!(
            l.error.unwrap().to_string(),
            "wrong type: \"id\" is an array, expected a string or a number; missing field \"db_id\"; wrong type: \"gold\" is a number, expected a string"
        );
        assert_eq!(l.pair.pred, "SELECT 1", "readable fields are kept");
        let l = one(r#"{"db_id": "d", "gold": "SELECT 1", "pred": "SELECT 1"}"#);
        assert_eq!(l.error.unwrap().to_string(), "missing field \"id\"");
        assert!(l.id.is_null());
        let l = one(r#"["not", "an", "object"]"#);
        assert_eq!(
            l.error.unwrap().to_string(),
            "not a JSON object but an array"
        );
        let l = one(r#"{"id": 1, "db_id": "#);
        assert!(
            l.error.unwrap().to_string().starts_with("not JSON: "),
            "truncated line"
        );
    }

    #[test]
    fn raw_bytes_that_are_not_utf8_make_a_bad_line_that_keeps_its_id() {
        let mut bytes =
            br#"{"id": "x7", "db_id": "d", "gold": "SELECT 1", "pred": "SELECT '"#.to_vec();
        let column = bytes.len() + 1;
        bytes.extend_from_slice(b"\xff'\"}");
        let (_d, p) = file(&bytes);
        let f = read_pairs(&p).unwrap();
        let l = &f.lines[0];
        assert_eq!(l.error, Some(LineError::NotUtf8 { byte: 0xff, column }));
        assert_eq!(l.id, Value::String("x7".into()));
        assert_eq!(
            f.describe(l).unwrap(),
            format!(
                "{}: line 1: not UTF-8: byte 0xff at column {column}",
                p.display()
            )
        );
    }

    #[test]
    fn line_numbers_count_blank_lines_and_duplicates_name_both_lines() {
        let text = format!(
            "\u{feff}{{{OK}, \"pred\": \"a\"}}\r\n\n  \n{{\"id\": \"1\", \"db_id\": \"d\", \"gold\": \"g\", \"pred\": 1}}\n{{\"id\": 2, \"db_id\": \"d\", \"gold\": \"g\", \"pred\": \"b\"}}\n{{{OK}, \"pred\": \"c\"}}\n"
        );
        let (_d, p) = file(text.as_bytes());
        let f = read_pairs(&p).unwrap();
        let numbers: Vec<usize> = f.lines.iter().map(|l| l.line).collect();
        assert_eq!(numbers, [1, 4, 5, 6]);
        assert_eq!(f.lines[0].error, None, "BOM and CRLF are tolerated");
        assert_eq!(f.lines[0].id, Value::from(1));
        let bad: Vec<usize> = f.bad_lines().map(|l| l.line).collect();
        assert_eq!(bad, [4]);
        // `1` and `"1"` are the same id wherever ids are joined.
        assert_eq!(
            f.duplicates,
            [
                DuplicateId {
                    id: "1".into(),
                    first_line: 1,
                    line: 4
                },
                DuplicateId {
                    id: "1".into(),
                    first_line: 1,
                    line: 6
                }
            ]
        );
    }

    #[test]
    fn an_empty_file_is_an_error_naming_it() {
        for text in ["", "\n", "  \n\r\n\t\n"] {
            let (_d, p) = file(text.as_bytes());
            let e = read_pairs(&p).unwrap_err();
            assert!(matches!(e, PairsError::Empty { .. }), "{e}");
            assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        }
        let e = read_pairs(Path::new("/nonexistent/p.jsonl")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/p.jsonl"), "{e}");
    }

    #[test]
    fn bad_lines_score_zero_in_file_order_and_the_rest_is_scored() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.sqlite");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(x INT); INSERT INTO t VALUES (1), (2), (3);")
            .unwrap();
        let lines = [
            r#"{"id": "a", "db_id": "d", "gold": "SELECT x FROM t", "pred": "SELECT x FROM t"}"#,
            r#"{"id": "b", "db_id": "d", "gold": "SELECT x FROM t", "pred": null}"#,
            r#"{"id": "c", "db_id": "d", "gold": "SELECT count(*) FROM t", "pred": "SELECT 3"}"#,
            r#"{"id": "d", "db_id": "d", "gold": "SELECT x FROM t", "pred": "SELECT x FROM t WHERE x > 1"}"#,
        ];
        let path = dir.path().join("p.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let f = read_pairs(&path).unwrap();
        let s = score_pairs_file(&f, |_| db.clone(), &EvalOptions::default(), None, None);
        let matched: Vec<bool> = s.verdicts.iter().map(|v| v.matched).collect();
        assert_eq!(matched, [true, false, true, false]);
        let ids: Vec<&str> = s.verdicts.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(
            s.verdicts[1].error.as_deref(),
            Some(
                format!(
                    "{}: line 2: wrong type: \"pred\" is null, expected a string",
                    path.display()
                )
                .as_str()
            )
        );
        assert_eq!(s.verdicts[1].cause, None);
        assert_eq!(s.summary.total, 4);
        assert_eq!(s.summary.evaluated, 4);
        assert_eq!(s.summary.matched, 2);
        assert!((s.summary.ex - 0.5).abs() < 1e-12);
        // Every gold is easy, the bad line's too: 4 easy questions, 2 right.
        assert_eq!(s.summary.by_hardness.get("easy"), Some(&(4, 2)));
    }
}
