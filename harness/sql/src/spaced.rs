//! The spaced SQL layout: every SQL token separated by one space, and string literals padded
//! inside their quotes (`WHERE T1 . name = ' Munich Art Museum '`).
//!
//! Why: a byte-level BPE glues a word to the space before it, so `name` after a space, after a
//! dot and after a quote are three different token sequences. A small model trained from scratch
//! must then learn to copy an unseen name *and* change its first token, which it does badly. In
//! the spaced layout a schema name or a question value is written with the same tokens in the
//! prompt and in the SQL, so copying is a plain copy. Models trained on spaced targets emit
//! spaced SQL; [`unspace_sql`] turns it back into ordinary SQL before it is executed.
//!
//! [`space_sql`] then [`unspace_sql`] gives back the same SQL tokens and literal values as the
//! original (whitespace between tokens may differ). Only `'…'` and `"…"` literals are padded; in a
//! literal a leading or trailing `%` (LIKE patterns) is also set apart: `'%Ursula%'` is written
//! `' % Ursula % '`.

/// One lexical token of a SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlToken {
    /// Keyword, identifier, number or quoted identifier (`` `x` ``, `[x]`), as written.
    Word(String),
    /// A `'…'` or `"…"` literal: the quote character and the text between the quotes (doubled
    /// quotes kept as written). `closed` is false when the text ended inside the literal.
    Literal {
        quote: char,
        body: String,
        closed: bool,
    },
    /// Operator or punctuation (`>=`, `(`, `,`, `.`, ...).
    Punct(String),
}

/// Splits SQL text into tokens. Never fails: any character that is not part of a word, literal or
/// known operator becomes a one-character [`SqlToken::Punct`].
pub fn lex(sql: &str) -> Vec<SqlToken> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut body = String::new();
            let mut j = i + 1;
            let mut closed = false;
            while j < chars.len() {
                if chars[j] == c {
                    if chars.get(j + 1) == Some(&c) {
                        body.push(c);
                        body.push(c);
                        j += 2;
                        continue;
                    }
                    closed = true;
                    j += 1;
                    break;
                }
                body.push(chars[j]);
                j += 1;
            }
            out.push(SqlToken::Literal {
                quote: c,
                body,
                closed,
            });
            i = j;
        } else if c == '`' || c == '[' {
            let close = if c == '[' { ']' } else { '`' };
            let mut j = i + 1;
            while j < chars.len() && chars[j] != close {
                j += 1;
            }
            let end = (j + 1).min(chars.len());
            out.push(SqlToken::Word(chars[i..end].iter().collect()));
            i = end;
        } else if is_word_char(c) {
            let mut j = i + 1;
            while j < chars.len() && is_word_char(chars[j]) {
                j += 1;
            }
            // A decimal number keeps its fraction: `1.5` is one token, `T1.name` three.
            let numeric = chars[i..j].iter().all(|c| c.is_ascii_digit());
            if numeric
                && chars.get(j) == Some(&'.')
                && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit())
            {
                j += 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
            }
            out.push(SqlToken::Word(chars[i..j].iter().collect()));
            i = j;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let n = if matches!(two.as_str(), ">=" | "<=" | "!=" | "<>" | "==" | "||") {
                2
            } else {
                1
            };
            out.push(SqlToken::Punct(chars[i..i + n].iter().collect()));
            i += n;
        }
    }
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// The spaced layout of `sql` (see the module documentation).
pub fn space_sql(sql: &str) -> String {
    let parts: Vec<String> = lex(sql)
        .into_iter()
        .map(|t| match t {
            SqlToken::Word(w) | SqlToken::Punct(w) => w,
            SqlToken::Literal {
                quote,
                body,
                closed,
            } => {
                let mut s = String::with_capacity(body.len() + 6);
                s.push(quote);
                s.push(' ');
                s.push_str(&space_percent(&body));
                if closed {
                    s.push(' ');
                    s.push(quote);
                }
                s
            }
        })
        .collect();
    parts.join(" ")
}

fn space_percent(body: &str) -> String {
    if body.len() < 2 {
        return body.to_string();
    }
    let mut s = body.to_string();
    if s.starts_with('%') {
        s.insert(1, ' ');
    }
    if s.ends_with('%') {
        s.insert(s.len() - 1, ' ');
    }
    s
}

fn unspace_literal(body: &str) -> String {
    let b = body.strip_prefix(' ').unwrap_or(body);
    let b = b.strip_suffix(' ').unwrap_or(b);
    let mut s = b.to_string();
    if s.len() >= 3 && s.starts_with("% ") {
        s.remove(1);
    }
    if s.len() >= 3 && s.ends_with(" %") {
        s.remove(s.len() - 2);
    }
    s
}

/// Words after which `(` opens a list or a subquery rather than a function's arguments, so the
/// space before it is kept.
const KEYWORDS_BEFORE_PAREN: &[&str] = &[
    "and",
    "as",
    "by",
    "except",
    "exists",
    "from",
    "having",
    "in",
    "intersect",
    "join",
    "not",
    "on",
    "or",
    "select",
    "union",
    "values",
    "when",
    "where",
    "then",
    "else",
    "with",
    "all",
];

/// Ordinary SQL from spaced SQL (model output): literal padding removed, and no space around
/// `.`, before `,` and `)` or after `(`, nor between a function name and its `(`.
pub fn unspace_sql(spaced: &str) -> String {
    let toks = lex(spaced);
    let mut out = String::with_capacity(spaced.len());
    let mut prev: Option<&SqlToken> = None;
    for t in &toks {
        let text = match t {
            SqlToken::Word(w) | SqlToken::Punct(w) => w.clone(),
            SqlToken::Literal {
                quote,
                body,
                closed,
            } => {
                let mut s = String::new();
                s.push(*quote);
                s.push_str(&unspace_literal(body));
                if *closed {
                    s.push(*quote);
                }
                s
            }
        };
        if let Some(p) = prev {
            if needs_space(p, t) {
                out.push(' ');
            }
        }
        out.push_str(&text);
        prev = Some(t);
    }
    out
}

fn needs_space(prev: &SqlToken, next: &SqlToken) -> bool {
    let punct = |t: &SqlToken, s: &str| matches!(t, SqlToken::Punct(p) if p == s);
    if punct(next, ",") || punct(next, ")") || punct(next, ".") || punct(next, ";") {
        return false;
    }
    if punct(prev, "(") || punct(prev, ".") {
        return false;
    }
    if punct(next, "(") {
        if let SqlToken::Word(w) = prev {
            return KEYWORDS_BEFORE_PAREN.contains(&w.to_ascii_lowercase().as_str());
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_names_and_values() {
        assert_eq!(
            space_sql("SELECT T2.name, count(*) FROM a AS T2 WHERE T2.city = 'Munich Art' AND x>=1.5"),
            "SELECT T2 . name , count ( * ) FROM a AS T2 WHERE T2 . city = ' Munich Art ' AND x >= 1.5"
        );
        assert_eq!(
            space_sql("name LIKE '%Ursula%'"),
            "name LIKE ' % Ursula % '"
        );
        assert_eq!(space_sql("x = ''"), "x = '  '");
    }

    #[test]
    fn unspaces_to_ordinary_sql() {
        assert_eq!(
            unspace_sql("SELECT T2 . name , count ( * ) FROM a AS T2 WHERE T2 . city = ' Munich Art ' AND x IN ( SELECT y FROM b )"),
            "SELECT T2.name, count(*) FROM a AS T2 WHERE T2.city = 'Munich Art' AND x IN (SELECT y FROM b)"
        );
        assert_eq!(
            unspace_sql("name LIKE ' % Ursula % '"),
            "name LIKE '%Ursula%'"
        );
        assert_eq!(unspace_sql("x = '  '"), "x = ''");
    }

    #[test]
    fn round_trip_keeps_tokens_and_values() {
        for q in [
            "SELECT name FROM t WHERE a = 'it''s' OR b = \"Lima\"",
            "SELECT count(DISTINCT x) FROM t WHERE y LIKE '%a b%' AND z LIKE 'q%'",
            "SELECT `odd name` FROM [t 1] WHERE x = ' padded ' AND v = '%'",
            "SELECT avg(T1.price) FROM t AS T1 WHERE T1.x <> -3.25 AND name = 'unterminated",
        ] {
            assert_eq!(lex(&unspace_sql(&space_sql(q))), lex(q), "{q}");
        }
    }
}
