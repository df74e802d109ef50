//! Query preprocessing of the Spider test-suite evaluator (Zhong et al., 2020).
//!
//! The reference evaluator rewrites both the gold and the predicted query before executing them:
//!
//! 1. [`fix_spaced_operators`]: the plain string replacements `"> ="` -> `">="`, `"< ="` -> `"<="`
//!    and `"! ="` -> `"!="` (Spider's tokenised gold files contain the spaced forms);
//! 2. [`remove_distinct`] (unless `keep_distinct`): the query is tokenised and every token whose
//!    text equals `distinct` case-insensitively is dropped, the remaining token texts are joined
//!    unchanged, so `count(DISTINCT x)` becomes `count( x)`. Quoted identifiers (`"distinct"`),
//!    string literals and comments are single tokens whose text is not `distinct`, so they stay;
//! 3. [`replace_cur_year`]: `YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*` (case-insensitive, trailing
//!    whitespace included) becomes `2020`, applied just before execution.
//!
//! Whether row order matters is decided on the gold query after steps 1 and 2 ([`order_matters`]).

use sqlparser::dialect::SQLiteDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// `"> ="`, `"< ="`, `"! ="` become `">="`, `"<="`, `"!="` (plain substring replacement, in that
/// order, exactly as the reference does).
pub fn fix_spaced_operators(sql: &str) -> String {
    sql.replace("> =", ">=")
        .replace("< =", "<=")
        .replace("! =", "!=")
}

/// Removes every unquoted `DISTINCT` keyword token, keeping all other text byte for byte.
///
/// Tokenisation uses sqlparser's SQLite dialect with whitespace and comments kept; the removed
/// tokens are cut out of the original text by their spans. If the text cannot be tokenised
/// (e.g. an unterminated string), it is returned unchanged and SQLite reports the error later.
pub fn remove_distinct(sql: &str) -> String {
    let dialect = SQLiteDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else {
        return sql.to_string();
    };
    let mut cuts: Vec<(u64, u64, u64, u64)> = Vec::new();
    for t in &tokens {
        if let Token::Word(w) = &t.token {
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("distinct") {
                let s = t.span;
                cuts.push((s.start.line, s.start.column, s.end.line, s.end.column));
            }
        }
    }
    if cuts.is_empty() {
        return sql.to_string();
    }
    // Map (line, column) -> byte offset: lines are split at '\n', columns count chars from 1.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, col: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let col = usize::try_from(col).ok()?.checked_sub(1)?;
        let rest = &sql[start..];
        match rest.char_indices().nth(col) {
            Some((i, _)) => Some(start + i),
            None if rest.chars().count() == col => Some(sql.len()),
            None => None,
        }
    };
    let mut out = String::with_capacity(sql.len());
    let mut pos = 0usize;
    for (l1, c1, l2, c2) in cuts {
        let (Some(a), Some(b)) = (offset(l1, c1), offset(l2, c2)) else {
            return sql.to_string();
        };
        // Sanity check: the span must cover exactly the keyword.
        if a < pos || b < a || !sql[a..b].eq_ignore_ascii_case("distinct") {
            return sql.to_string();
        }
        out.push_str(&sql[pos..a]);
        pos = b;
    }
    out.push_str(&sql[pos..]);
    out
}

/// Replaces `YEAR(CURDATE())` (regex `YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*`, case-insensitive,
/// no word boundary, trailing whitespace consumed) with `2020`.
pub fn replace_cur_year(sql: &str) -> String {
    fn ws(s: &str, mut i: usize) -> usize {
        while let Some(c) = s[i..].chars().next() {
            if !c.is_whitespace() {
                break;
            }
            i += c.len_utf8();
        }
        i
    }
    fn lit(s: &str, i: usize, word: &str) -> Option<usize> {
        let end = i + word.len();
        (s.as_bytes()
            .get(i..end)?
            .eq_ignore_ascii_case(word.as_bytes()))
        .then_some(end)
    }
    fn matches(s: &str, i: usize) -> Option<usize> {
        let i = lit(s, i, "year")?;
        let i = lit(s, ws(s, i), "(")?;
        let i = lit(s, ws(s, i), "curdate")?;
        let i = lit(s, ws(s, i), "(")?;
        let i = lit(s, ws(s, i), ")")?;
        let i = lit(s, ws(s, i), ")")?;
        Some(ws(s, i))
    }
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut copied = 0;
    while i < sql.len() {
        if let Some(end) = matches(sql, i) {
            out.push_str(&sql[copied..i]);
            out.push_str("2020");
            i = end;
            copied = end;
        } else {
            i += sql[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// The text the reference compares and executes (steps 1-3 of the module docs).
pub fn normalize(sql: &str, keep_distinct: bool) -> String {
    let fixed = fix_spaced_operators(sql);
    let fixed = if keep_distinct {
        fixed
    } else {
        remove_distinct(&fixed)
    };
    replace_cur_year(&fixed)
}

/// Whether row order matters: the (normalised) gold query contains `order by`, lower-cased, as a
/// plain substring (so `ORDER  BY` with two spaces does not count, exactly like the reference).
pub fn order_matters(gold: &str) -> bool {
    gold.to_lowercase().contains("order by")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_operators() {
        assert_eq!(
            fix_spaced_operators("a > = 1 AND b < = 2 OR c ! = 3"),
            "a >= 1 AND b <= 2 OR c != 3"
        );
    }

    #[test]
    fn distinct_removal_keeps_everything_else() {
        assert_eq!(
            remove_distinct("SELECT count(DISTINCT x) FROM t"),
            "SELECT count( x) FROM t"
        );
        assert_eq!(
            remove_distinct("select Distinct é, \"distinct\", [distinct], 'distinct' from distinct_t -- distinct\n"),
            "select  é, \"distinct\", [distinct], 'distinct' from distinct_t -- distinct\n"
        );
        assert_eq!(remove_distinct("SELECT 'oops"), "SELECT 'oops");
        assert_eq!(
            remove_distinct(
                "SELECT\n\tDISTINCT a\nFROM t\nWHERE b = 'ü' AND c IN (SELECT DISTINCT c FROM u)"
            ),
            "SELECT\n\t a\nFROM t\nWHERE b = 'ü' AND c IN (SELECT  c FROM u)"
        );
    }

    #[test]
    fn cur_year() {
        assert_eq!(
            replace_cur_year("SELECT year(curdate()) - 1"),
            "SELECT 2020- 1"
        );
        assert_eq!(replace_cur_year("x = YEAR ( CURDATE ( ) )"), "x = 2020");
        assert_eq!(replace_cur_year("YEAR(CURDATE)"), "YEAR(CURDATE)");
    }

    #[test]
    fn order() {
        assert!(order_matters("select a from t ORDER BY a"));
        assert!(!order_matters("select a from t ORDER  BY a"));
        assert!(!order_matters("select a from t"));
    }
}
