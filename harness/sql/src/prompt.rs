//! The CodeS database prompt, as used by the KID paper.
//!
//! ```text
//! database schema :
//! table singer , columns = [ singer.singer_id ( int | primary key | values : 1 , 2 ) , ... ]
//! foreign keys :
//! concert.stadium_id = stadium.stadium_id
//! matched contents :
//! singer.country ( France )
//! <question>
//! ```
//!
//! Everything that depends only on the database (the schema part, sample values, the index of
//! database values) is built once by [`DatabasePrompter::new`]; [`DatabasePrompter::prompt`] then
//! only matches the question's n-grams against the index, so thousands of questions are cheap.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::schema::{
    open_read_only, quote_ident, read_sqlite_schema, schema_from_sqlite, ColumnRef, Schema,
    SchemaError,
};
use crate::value::Value;

/// Why a prompter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The database (or its schema) could not be read.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// Reading values from the database failed.
    #[error("database {db_id} ({path}): reading column {column}: {source}")]
    Sqlite {
        db_id: String,
        path: PathBuf,
        /// `table.column`, original names.
        column: String,
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// The options are out of range.
    #[error("invalid prompt options: {0}")]
    Options(String),
}

/// Knobs of the prompt; [`Default`] gives the CodeS settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptOptions {
    /// Sample values shown per column (`values : v1 , v2`).
    pub sample_values: usize,
    /// Values longer than this many characters are neither shown nor matched.
    pub max_value_chars: usize,
    /// Minimum similarity for a database value to count as matched by the question, in `(0.5, 1]`.
    pub match_threshold: f64,
    /// At most this many matched values are listed per column.
    pub max_matches_per_column: usize,
    /// Longest question n-gram (in words) matched against database values.
    pub max_ngram: usize,
    /// How the schema is laid out.
    pub style: PromptStyle,
}

/// Layout of the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptStyle {
    /// The CodeS prompt of the KID paper (types, keys, comments, sample values per column).
    #[default]
    Codes,
    /// The same information with about a third of the tokens, for small models trained from
    /// scratch on a CPU budget: one line per table with bare column names (comments kept in
    /// parentheses, types and primary-key marks dropped), foreign keys on one line, matched
    /// contents only when there are some.
    ///
    /// ```text
    /// schema :
    /// book : book_id title author_id ( author ) pages ( number of pages )
    /// keys : book.author_id = author.author_id
    /// matched : member.name ( Daniel )
    /// <question>
    /// ```
    Compact,
    /// The compact layout written so that every table name, column name and value is preceded
    /// by a space wherever it appears (`table book : ...`, `book . author_id`), for targets in
    /// the spaced SQL layout of [`crate::spaced`]: a name is then the same tokens in the prompt
    /// and in the SQL.
    ///
    /// ```text
    /// schema :
    /// table book : book_id title author_id ( author ) pages ( number of pages )
    /// keys : book . author_id = author . author_id
    /// matched : member . name ( Daniel )
    /// <question>
    /// ```
    Spaced,
}

impl PromptStyle {
    /// Whether targets are written in the spaced SQL layout ([`crate::spaced::space_sql`]) and
    /// predictions must be turned back with [`crate::spaced::unspace_sql`].
    pub fn spaced_sql(self) -> bool {
        self == PromptStyle::Spaced
    }

    /// The compact family (one line per table, no types).
    fn compact(self) -> bool {
        matches!(self, PromptStyle::Compact | PromptStyle::Spaced)
    }

    /// `table.column` as this layout writes it.
    fn qualified(self, table: &str, column: &str) -> String {
        if self.spaced_sql() {
            format!("{table} . {column}")
        } else {
            format!("{table}.{column}")
        }
    }
}

impl Default for PromptOptions {
    fn default() -> Self {
        PromptOptions {
            sample_values: 2,
            max_value_chars: 25,
            match_threshold: 0.9,
            max_matches_per_column: 25,
            max_ngram: 4,
            style: PromptStyle::Codes,
        }
    }
}

/// A column's values matched by a question: `table.column ( v1 , v2 )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedColumn {
    /// `table.column` (`table . column` in the [`PromptStyle::Spaced`] layout), lower-cased (and
    /// back-quoted when the name has special characters).
    pub column: String,
    /// Matched database values, original spelling, best match first.
    pub values: Vec<String>,
}

/// One indexed database value.
struct Entry {
    /// Index into `DatabasePrompter::column_names`.
    column: u32,
    /// The value as stored (one line).
    original: String,
    /// Normalized form (see [`normalize`]), as chars for the similarity computation.
    normalized: Vec<char>,
}

/// Builds CodeS prompts for one database. Construct once per database, then call
/// [`prompt`](Self::prompt) per question.
pub struct DatabasePrompter {
    db_id: String,
    options: PromptOptions,
    schema_text: String,
    /// `table.column` display names of the indexed columns, in schema order.
    column_names: Vec<String>,
    entries: Vec<Entry>,
    /// Normalized value -> entries with exactly that normalized form.
    exact: HashMap<String, Vec<u32>>,
    /// A 3-char key of each value long enough for near matches -> entries (see `fuzzy_key`).
    fuzzy: HashMap<[char; 3], Vec<u32>>,
    warnings: Vec<String>,
}

impl DatabasePrompter {
    /// Builds the prompter for the SQLite file `db_path` described by `schema` (e.g. from
    /// `tables.json`: names, primary keys, foreign keys and natural-name comments come from it;
    /// column types are the types declared in the SQLite file, falling back to the schema's).
    pub fn new(
        db_path: impl AsRef<Path>,
        schema: &Schema,
        options: PromptOptions,
    ) -> Result<Self, PromptError> {
        let db_path = db_path.as_ref();
        if !(options.match_threshold > 0.5 && options.match_threshold <= 1.0) {
            return Err(PromptError::Options(format!(
                "match_threshold {} is not in (0.5, 1]",
                options.match_threshold
            )));
        }
        let declared = read_sqlite_schema(db_path, &schema.db_id, true)?;
        let conn = open_read_only(db_path)?;
        let mut prompter = DatabasePrompter {
            db_id: schema.db_id.clone(),
            options,
            schema_text: String::new(),
            column_names: Vec::new(),
            entries: Vec::new(),
            exact: HashMap::new(),
            fuzzy: HashMap::new(),
            warnings: Vec::new(),
        };
        let style = prompter.options.style;
        let compact = style.compact();
        let mut text = String::from(if compact {
            "schema :\n"
        } else {
            "database schema :\n"
        });
        for table in &schema.tables {
            let sqlite_table = declared
                .table_index(&table.name)
                .map(|i| &declared.tables[i]);
            if sqlite_table.is_none() {
                prompter.warnings.push(format!(
                    "table {} is not in {}",
                    table.name,
                    db_path.display()
                ));
            }
            let tname = display_name(&table.name);
            let mut cols = Vec::with_capacity(table.columns.len());
            for column in &table.columns {
                let sqlite_col = sqlite_table.and_then(|t| {
                    t.columns
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(&column.name))
                });
                let qualified = style.qualified(&tname, &display_name(&column.name));
                let ty = sqlite_col
                    .and_then(|c| c.declared_type.as_deref())
                    .filter(|t| !t.is_empty())
                    .unwrap_or(&column.col_type)
                    .to_lowercase();
                let mut parts = Vec::new();
                if !compact {
                    parts.push(ty);
                    if column.primary_key {
                        parts.push("primary key".to_string());
                    }
                }
                if squash(&column.natural_name) != squash(&column.name) {
                    let comment = one_line(&column.natural_name);
                    parts.push(if compact {
                        comment
                    } else {
                        format!("comment : {comment}")
                    });
                }
                if let Some(sc) = sqlite_col {
                    let samples = prompter.sample_values(&conn, db_path, &table.name, &sc.name)?;
                    if !samples.is_empty() {
                        let label = if compact { "" } else { "values : " };
                        parts.push(format!("{label}{}", samples.join(" , ")));
                    }
                    if is_text_column(&column.col_type, sc.declared_type.as_deref()) {
                        prompter.index_column(&conn, db_path, &table.name, &sc.name, &qualified)?;
                    }
                } else if sqlite_table.is_some() {
                    prompter.warnings.push(format!(
                        "column {}.{} is not in {}",
                        table.name,
                        column.name,
                        db_path.display()
                    ));
                }
                cols.push(match (compact, parts.is_empty()) {
                    (true, true) => display_name(&column.name),
                    (true, false) => {
                        format!("{} ( {} )", display_name(&column.name), parts.join(" ; "))
                    }
                    (false, _) => format!("{qualified} ( {} )", parts.join(" | ")),
                });
            }
            if style.spaced_sql() {
                let _ = writeln!(text, "table {tname} : {}", cols.join(" "));
            } else if compact {
                let _ = writeln!(text, "{tname} : {}", cols.join(" "));
            } else {
                let _ = writeln!(text, "table {tname} , columns = [ {} ]", cols.join(" , "));
            }
        }
        let mut keys = Vec::new();
        if !compact {
            text.push_str("foreign keys :\n");
            if schema.foreign_keys.is_empty() {
                text.push_str("None\n");
            }
        }
        for fk in &schema.foreign_keys {
            let name = |r: ColumnRef| {
                let t = schema.tables.get(r.table)?;
                let c = t.columns.get(r.column)?;
                Some(style.qualified(&display_name(&t.name), &display_name(&c.name)))
            };
            match (name(fk.from), name(fk.to)) {
                (Some(a), Some(b)) if compact => keys.push(format!("{a} = {b}")),
                (Some(a), Some(b)) => {
                    let _ = writeln!(text, "{a} = {b}");
                }
                _ => prompter
                    .warnings
                    .push(format!("foreign key {fk:?} names a column out of range")),
            }
        }
        if compact && !keys.is_empty() {
            let _ = writeln!(text, "keys : {}", keys.join(" ; "));
        }
        prompter.schema_text = text;
        Ok(prompter)
    }

    /// Builds the prompter from the SQLite file alone (no `tables.json`): no comments, keys as
    /// declared in the file.
    pub fn from_sqlite(
        db_path: impl AsRef<Path>,
        db_id: &str,
        options: PromptOptions,
    ) -> Result<Self, PromptError> {
        let schema = schema_from_sqlite(db_path.as_ref(), db_id)?;
        Self::new(db_path, &schema, options)
    }

    /// The database id.
    pub fn db_id(&self) -> &str {
        &self.db_id
    }

    /// The question-independent part: `database schema :` ... through the foreign-key lines
    /// (ends with a newline).
    pub fn schema_text(&self) -> &str {
        &self.schema_text
    }

    /// Inconsistencies between the schema and the database file (tables or columns missing from
    /// the file); such columns get no sample values and are not matched.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Number of distinct (column, value) pairs in the value index.
    pub fn indexed_values(&self) -> usize {
        self.entries.len()
    }

    /// The full prompt for a question: schema, matched contents, then the question on its own
    /// line (followed by a newline).
    pub fn prompt(&self, question: &str) -> String {
        let matched = self.matched_contents(question);
        let mut out = String::with_capacity(self.schema_text.len() + 256);
        out.push_str(&self.schema_text);
        if self.options.style.compact() {
            if !matched.is_empty() {
                let cols: Vec<String> = matched
                    .iter()
                    .map(|m| format!("{} ( {} )", m.column, m.values.join(" , ")))
                    .collect();
                let _ = writeln!(out, "matched : {}", cols.join(" ; "));
            }
        } else {
            out.push_str("matched contents :\n");
            if matched.is_empty() {
                out.push_str("None\n");
            }
            for m in &matched {
                let _ = writeln!(out, "{} ( {} )", m.column, m.values.join(" , "));
            }
        }
        out.push_str(&one_line(question));
        out.push('\n');
        out
    }

    /// Database values that match n-grams (1 to `max_ngram` words) of the question, grouped by
    /// column in schema order.
    pub fn matched_contents(&self, question: &str) -> Vec<MatchedColumn> {
        let norm = normalize(question);
        let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
        // entry -> best score
        let mut best: HashMap<u32, f64> = HashMap::new();
        let theta = self.options.match_threshold;
        for n in 1..=self.options.max_ngram.max(1) {
            for window in words.windows(n) {
                if window.iter().all(|w| STOPWORDS.contains(w)) {
                    continue;
                }
                let gram = window.join(" ");
                if let Some(ids) = self.exact.get(&gram) {
                    for &id in ids {
                        best.insert(id, 1.0);
                    }
                }
                let g: Vec<char> = gram.chars().collect();
                let slack = slack(g.len(), theta) + slack(self.options.max_value_chars, theta);
                let mut seen_keys: Vec<[char; 3]> = Vec::new();
                for off in 0..=slack {
                    let Some(key) = g.get(off..off + 3) else {
                        break;
                    };
                    let key = [key[0], key[1], key[2]];
                    if seen_keys.contains(&key) {
                        continue;
                    }
                    seen_keys.push(key);
                    for &id in self.fuzzy.get(&key).into_iter().flatten() {
                        let e = &self.entries[id as usize];
                        let score = similarity(&e.normalized, &g);
                        if score >= theta {
                            let b = best.entry(id).or_insert(0.0);
                            if score > *b {
                                *b = score;
                            }
                        }
                    }
                }
            }
        }
        let mut by_column: Vec<Vec<(f64, u32)>> = vec![Vec::new(); self.column_names.len()];
        for (id, score) in best {
            by_column[self.entries[id as usize].column as usize].push((score, id));
        }
        by_column
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, mut v)| {
                v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                v.truncate(self.options.max_matches_per_column);
                MatchedColumn {
                    column: self.column_names[c].clone(),
                    values: v
                        .into_iter()
                        .map(|(_, id)| self.entries[id as usize].original.clone())
                        .collect(),
                }
            })
            .collect()
    }

    /// `values :` of a column: the first distinct non-null values, minus long and empty ones.
    fn sample_values(
        &self,
        conn: &Connection,
        db_path: &Path,
        table: &str,
        column: &str,
    ) -> Result<Vec<String>, PromptError> {
        let values = read_distinct(conn, table, column, Some(self.options.sample_values))
            .map_err(|source| self.sql_error(db_path, table, column, source))?;
        Ok(values
            .iter()
            .filter_map(render)
            .filter(|s| !s.trim().is_empty() && s.chars().count() <= self.options.max_value_chars)
            .collect())
    }

    /// Adds a text column's distinct short values to the match index.
    fn index_column(
        &mut self,
        conn: &Connection,
        db_path: &Path,
        table: &str,
        column: &str,
        display: &str,
    ) -> Result<(), PromptError> {
        let values = read_distinct(conn, table, column, None)
            .map_err(|source| self.sql_error(db_path, table, column, source))?;
        let col_id = self.column_names.len() as u32;
        self.column_names.push(display.to_string());
        let theta = self.options.match_threshold;
        for v in values {
            let Value::Text(s) = v else { continue };
            if s.chars().count() > self.options.max_value_chars {
                continue;
            }
            let normalized = normalize(&s);
            if normalized.is_empty() {
                continue;
            }
            let chars: Vec<char> = normalized.chars().collect();
            let id = self.entries.len() as u32;
            if let Some(key) = fuzzy_key(&chars, theta) {
                self.fuzzy.entry(key).or_default().push(id);
            }
            self.exact.entry(normalized).or_default().push(id);
            self.entries.push(Entry {
                column: col_id,
                original: one_line(&s),
                normalized: chars,
            });
        }
        Ok(())
    }

    fn sql_error(
        &self,
        db_path: &Path,
        table: &str,
        column: &str,
        source: rusqlite::Error,
    ) -> PromptError {
        PromptError::Sqlite {
            db_id: self.db_id.clone(),
            path: db_path.to_owned(),
            column: format!("{table}.{column}"),
            source: Box::new(source),
        }
    }
}

/// Distinct non-null values of a column, in the order SQLite returns them.
///
/// The only place this module reads database contents; swap it for the safe executor if needed.
fn read_distinct(
    conn: &Connection,
    table: &str,
    column: &str,
    limit: Option<usize>,
) -> rusqlite::Result<Vec<Value>> {
    let col = quote_ident(column);
    let mut sql = format!(
        "SELECT DISTINCT {col} FROM {} WHERE {col} IS NOT NULL",
        quote_ident(table)
    );
    if let Some(n) = limit {
        let _ = write!(sql, " LIMIT {n}");
    }
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(Value::from(row.get_ref(0)?));
    }
    Ok(out)
}

/// A value as the prompt shows it (`None` for blobs).
fn render(v: &Value) -> Option<String> {
    match v {
        Value::Null | Value::Blob(_) => None,
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) => {
            let s = f.to_string();
            Some(if f.is_finite() && !s.contains(['.', 'e', 'E']) {
                format!("{s}.0") // Python's str(3.0) == "3.0"
            } else {
                s
            })
        }
        Value::Text(s) => Some(one_line(s)),
    }
}

/// Whether a column holds text worth matching against the question.
fn is_text_column(spider_type: &str, declared: Option<&str>) -> bool {
    if spider_type.eq_ignore_ascii_case("text") {
        return true;
    }
    declared.is_some_and(|d| {
        let d = d.to_ascii_lowercase();
        d.contains("char") || d.contains("text") || d.contains("clob")
    }) && !spider_type.eq_ignore_ascii_case("number")
}

/// A name as it appears in the prompt: lower-cased, back-quoted when it has characters other than
/// letters, digits and `_` (as CodeS does for names like `Home Town`).
fn display_name(name: &str) -> String {
    let lower = name.to_lowercase();
    if lower.chars().all(|c| c.is_alphanumeric() || c == '_') {
        lower
    } else {
        format!("`{lower}`")
    }
}

/// Lower-case with `_` and spaces removed: `Singer_ID` and `singer id` are the same name.
fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Collapses line breaks and tabs so a value cannot break the one-line-per-table layout.
fn one_line(s: &str) -> String {
    if s.contains(['\n', '\r', '\t']) {
        s.split(['\n', '\r', '\t'])
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        s.to_string()
    }
}

/// Matching form of a text: lower-case, apostrophes dropped (`singer's` -> `singers`), every other
/// non-alphanumeric character a word break, single spaces.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c == '\'' || c == '’' || c == '`' {
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

/// Function words that never form an n-gram on their own (a lone `a` would otherwise match grade
/// `A` in every question).
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or",
    "not", "is", "are", "was", "were", "be", "been", "do", "does", "did", "what", "which", "who",
    "whom", "whose", "how", "when", "where", "why", "that", "this", "these", "those", "it", "its",
    "their", "them", "they", "there", "than", "as", "me", "i", "you", "we", "s", "t",
];

/// Characters a string of `len` chars may have outside the common substring at `theta`.
fn slack(len: usize, theta: f64) -> usize {
    ((1.0 - theta) * len as f64 + 1e-9).floor() as usize
}

/// The index key of a value: its 3 characters starting at its slack. Any n-gram scoring at least
/// `theta` shares a common substring covering these characters (for `theta > 0.5` and values of
/// at least 4 characters; shorter values can only match exactly).
fn fuzzy_key(chars: &[char], theta: f64) -> Option<[char; 3]> {
    if chars.len() < 4 {
        return None;
    }
    let k = slack(chars.len(), theta);
    // The common substring covers [k, k + 3) when theta * len >= k + 3.
    if theta * chars.len() as f64 + 1e-9 < (k + 3) as f64 {
        return None;
    }
    chars.get(k..k + 3).map(|w| [w[0], w[1], w[2]])
}

/// Longest common substring of `a` and `b` over the longer length: 1.0 for equal strings, and at
/// least `theta` only if the common part covers both the value and the n-gram.
fn similarity(a: &[char], b: &[char]) -> f64 {
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 0.0;
    }
    let mut prev = vec![0u16; b.len() + 1];
    let mut cur = vec![0u16; b.len() + 1];
    let mut lcs = 0u16;
    for &ca in a {
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = if ca == cb { prev[j] + 1 } else { 0 };
            lcs = lcs.max(cur[j + 1]);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    f64::from(lcs) / longest as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_and_names() {
        assert_eq!(normalize("  Singer's  Home-Town?"), "singers home town");
        assert_eq!(display_name("Home Town"), "`home town`");
        assert_eq!(display_name("Singer_ID"), "singer_id");
        assert_eq!(squash("Singer_ID"), squash("singer id"));
        assert_ne!(squash("StuID"), squash("student id"));
        assert_eq!(one_line("a\nb\tc"), "a b c");
        assert_eq!(render(&Value::Real(3.0)).as_deref(), Some("3.0"));
        assert_eq!(render(&Value::Real(2.5)).as_deref(), Some("2.5"));
    }

    #[test]
    fn similarity_requires_covering_match() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(similarity(&c("france"), &c("france")), 1.0);
        assert!(similarity(&c("united states"), &c("united statess")) >= 0.9);
        assert!(similarity(&c("singer"), &c("singers")) < 0.9);
        assert!(similarity(&c("france"), &c("in france")) < 0.9);
    }

    /// The index key must never lose a pair that scores above the threshold.
    #[test]
    fn fuzzy_key_finds_every_near_match() {
        let theta = 0.9;
        let words = [
            "abcdefghij",
            "xabcdefghij",
            "abcdefghijk",
            "abcdefghijkl",
            "zzabcdefghijklmnopqrstuvw",
            "abcdefghijklmnopqrstuvwxy",
            "bcdefghijklmnopqrstuvwxyz",
        ];
        for v in words {
            for g in words {
                let (vc, gc): (Vec<char>, Vec<char>) = (v.chars().collect(), g.chars().collect());
                if similarity(&vc, &gc) < theta || v == g {
                    continue;
                }
                let key = fuzzy_key(&vc, theta).expect("long values have a key");
                let max_off = slack(gc.len(), theta) + slack(25, theta);
                let found = (0..=max_off)
                    .filter_map(|o| gc.get(o..o + 3))
                    .any(|w| w == key);
                assert!(found, "value {v} / gram {g}");
            }
        }
    }

    #[test]
    fn builds_prompt_for_a_small_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE country (id int PRIMARY KEY, name text, \"Home Town\" text);
             CREATE TABLE city (id int PRIMARY KEY, cname varchar(30),
                                country_id int REFERENCES country(id));
             INSERT INTO country VALUES (1, 'France', ''), (2, 'United Kingdom', 'x'),
                                        (3, 'A name that is far too long to show', NULL);
             INSERT INTO city VALUES (1, 'Paris', 1), (2, 'London', 2);",
        )
        .unwrap();
        drop(conn);
        let p = DatabasePrompter::from_sqlite(&path, "d", PromptOptions::default()).unwrap();
        let out = p.prompt("Which cities are in france or the united kingdoms?");
        let expected = "database schema :\n\
            table country , columns = [ country.id ( int | primary key | values : 1 , 2 ) , \
            country.name ( text | values : France , United Kingdom ) , \
            country.`home town` ( text | values : x ) ]\n\
            table city , columns = [ city.id ( int | primary key | values : 1 , 2 ) , \
            city.cname ( varchar(30) | values : Paris , London ) , \
            city.country_id ( int | values : 1 , 2 ) ]\n\
            foreign keys :\n\
            city.country_id = country.id\n\
            matched contents :\n\
            country.name ( France , United Kingdom )\n\
            Which cities are in france or the united kingdoms?\n";
        assert_eq!(out, expected);
        assert!(p.prompt("How many?").contains("matched contents :\nNone\n"));
    }
}
