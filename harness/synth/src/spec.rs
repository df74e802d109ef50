//! Parser for the embedded schema spec (`domains.txt`): databases, tables, typed columns.

use crate::words;
use crate::SynthError;

/// The embedded spec text.
pub(crate) const DOMAINS: &str = include_str!("domains.txt");

/// Which split a database belongs to. Train and dev are split by database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    Train,
    Dev,
}

impl Split {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
        }
    }
}

/// How a column's values are generated, which also fixes its SQL type and template role.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `INTEGER PRIMARY KEY`, ids `1..=n`.
    Pk,
    /// Foreign key to the primary key of the table with this index.
    Fk(usize),
    /// Unique person names (a label).
    Person,
    /// Unique combinations of one word from each list (a label).
    Combo(Vec<Vec<String>>),
    /// Category drawn from the list.
    Cat(Vec<String>),
    /// Integer in `[lo, hi]`.
    Int(i64, i64),
    /// Real in `[lo, hi]`, two decimals.
    Real(f64, f64),
    /// Date between `y0-01-01` and `y1-12-28`, as `'YYYY-MM-DD'` text.
    Date(i32, i32),
}

impl Kind {
    /// The declared SQLite column type.
    pub(crate) fn sql_type(&self) -> &'static str {
        match self {
            Kind::Pk | Kind::Fk(_) | Kind::Int(..) => "INTEGER",
            Kind::Real(..) => "REAL",
            Kind::Person | Kind::Combo(_) | Kind::Cat(_) => "TEXT",
            Kind::Date(..) => "DATE",
        }
    }

    /// The Spider `column_types` entry.
    pub(crate) fn spider_type(&self) -> &'static str {
        match self {
            Kind::Pk | Kind::Fk(_) | Kind::Int(..) | Kind::Real(..) => "number",
            Kind::Person | Kind::Combo(_) | Kind::Cat(_) => "text",
            Kind::Date(..) => "time",
        }
    }

    /// Whether the column is a unique, name-like label.
    pub(crate) fn is_label(&self) -> bool {
        matches!(self, Kind::Person | Kind::Combo(_))
    }

    /// Whether the column is a numeric measure (not a key).
    pub(crate) fn is_measure(&self) -> bool {
        matches!(self, Kind::Int(..) | Kind::Real(..))
    }
}

/// One column of a table.
#[derive(Debug, Clone)]
pub(crate) struct ColumnSpec {
    pub name: String,
    pub natural: String,
    pub kind: Kind,
}

/// One table: name, natural singular/plural, row-count range, columns.
#[derive(Debug, Clone)]
pub(crate) struct TableSpec {
    pub name: String,
    pub singular: String,
    pub plural: String,
    pub rows: (usize, usize),
    pub columns: Vec<ColumnSpec>,
}

/// One database.
#[derive(Debug, Clone)]
pub(crate) struct DbSpec {
    pub db_id: String,
    pub split: Split,
    pub tables: Vec<TableSpec>,
}

fn err(line: usize, msg: impl Into<String>) -> SynthError {
    SynthError::Spec {
        line,
        msg: msg.into(),
    }
}

fn parse_list(line: usize, s: &str) -> Result<Vec<String>, SynthError> {
    if let Some(pool) = s.strip_prefix('@') {
        return words::pool(pool)
            .map(|p| p.iter().map(|w| (*w).to_owned()).collect())
            .ok_or_else(|| err(line, format!("unknown pool @{pool}")));
    }
    let items: Vec<String> = s.split(',').map(|i| i.trim().to_owned()).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(err(line, format!("empty item in list `{s}`")));
    }
    Ok(items)
}

fn parse_kind(line: usize, s: &str, tables: &[TableSpec]) -> Result<Kind, SynthError> {
    let (head, arg) = match s.split_once(':') {
        Some((h, a)) => (h, Some(a)),
        None => (s, None),
    };
    let nums = |a: Option<&str>| -> Result<(String, String), SynthError> {
        let a = a.ok_or_else(|| err(line, format!("`{head}` needs `lo,hi`")))?;
        let (lo, hi) = a
            .split_once(',')
            .ok_or_else(|| err(line, format!("`{head}` needs `lo,hi`, got `{a}`")))?;
        Ok((lo.trim().to_owned(), hi.trim().to_owned()))
    };
    let bad = |what: &str| err(line, format!("bad number in `{what}`"));
    Ok(match head {
        "pk" => Kind::Pk,
        "person" => Kind::Person,
        "fk" => {
            let t = arg.ok_or_else(|| err(line, "fk needs a table"))?;
            let idx = tables
                .iter()
                .position(|x| x.name == t)
                .ok_or_else(|| err(line, format!("fk to unknown (or later) table `{t}`")))?;
            Kind::Fk(idx)
        }
        "combo" => {
            let a = arg.ok_or_else(|| err(line, "combo needs lists"))?;
            let lists = a
                .split('/')
                .map(|l| parse_list(line, l.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            Kind::Combo(lists)
        }
        "cat" => Kind::Cat(parse_list(
            line,
            arg.ok_or_else(|| err(line, "cat needs a list"))?,
        )?),
        "int" => {
            let (lo, hi) = nums(arg)?;
            let lo: i64 = lo.parse().map_err(|_| bad(s))?;
            let hi: i64 = hi.parse().map_err(|_| bad(s))?;
            if lo > hi {
                return Err(err(line, "int range lo > hi"));
            }
            Kind::Int(lo, hi)
        }
        "real" => {
            let (lo, hi) = nums(arg)?;
            let lo: f64 = lo.parse().map_err(|_| bad(s))?;
            let hi: f64 = hi.parse().map_err(|_| bad(s))?;
            if lo >= hi {
                return Err(err(line, "real range lo >= hi"));
            }
            Kind::Real(lo, hi)
        }
        "date" => {
            let (lo, hi) = nums(arg)?;
            let lo: i32 = lo.parse().map_err(|_| bad(s))?;
            let hi: i32 = hi.parse().map_err(|_| bad(s))?;
            if lo > hi {
                return Err(err(line, "date range lo > hi"));
            }
            Kind::Date(lo, hi)
        }
        other => return Err(err(line, format!("unknown column kind `{other}`"))),
    })
}

fn fields(s: &str) -> Vec<&str> {
    s.split('|').map(str::trim).collect()
}

/// Parse the embedded spec.
pub(crate) fn parse() -> Result<Vec<DbSpec>, SynthError> {
    parse_text(DOMAINS)
}

/// Parse spec text (see the header of `domains.txt` for the syntax).
pub(crate) fn parse_text(text: &str) -> Result<Vec<DbSpec>, SynthError> {
    let mut dbs: Vec<DbSpec> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix("db ") {
            let mut it = rest.split_whitespace();
            let db_id = it.next().ok_or_else(|| err(line, "db needs an id"))?;
            let split = match it.next() {
                Some("train") => Split::Train,
                Some("dev") => Split::Dev,
                other => {
                    return Err(err(
                        line,
                        format!("db split must be train|dev, got {other:?}"),
                    ))
                }
            };
            if dbs.iter().any(|d| d.db_id == db_id) {
                return Err(err(line, format!("duplicate db `{db_id}`")));
            }
            dbs.push(DbSpec {
                db_id: db_id.to_owned(),
                split,
                tables: Vec::new(),
            });
        } else if let Some(rest) = l.strip_prefix("table ") {
            let db = dbs
                .last_mut()
                .ok_or_else(|| err(line, "table before any db"))?;
            let f = fields(rest);
            if f.len() != 4 {
                return Err(err(
                    line,
                    "table needs `name | singular | plural | min-max`",
                ));
            }
            let (lo, hi) = f[3]
                .split_once('-')
                .ok_or_else(|| err(line, "rows must be `min-max`"))?;
            let lo: usize = lo.parse().map_err(|_| err(line, "bad min rows"))?;
            let hi: usize = hi.parse().map_err(|_| err(line, "bad max rows"))?;
            if lo == 0 || lo > hi {
                return Err(err(line, "rows must satisfy 0 < min <= max"));
            }
            if db.tables.iter().any(|t| t.name == f[0]) {
                return Err(err(line, format!("duplicate table `{}`", f[0])));
            }
            db.tables.push(TableSpec {
                name: f[0].to_owned(),
                singular: f[1].to_owned(),
                plural: f[2].to_owned(),
                rows: (lo, hi),
                columns: Vec::new(),
            });
        } else {
            let db = dbs
                .last_mut()
                .ok_or_else(|| err(line, "column before any db"))?;
            let f = fields(l);
            if f.len() != 3 {
                return Err(err(line, "column needs `name | kind | natural`"));
            }
            let kind = parse_kind(line, f[1], &db.tables)?;
            let t = db
                .tables
                .last_mut()
                .ok_or_else(|| err(line, "column before any table"))?;
            if t.columns.iter().any(|c| c.name == f[0]) {
                return Err(err(line, format!("duplicate column `{}`", f[0])));
            }
            if matches!(kind, Kind::Pk) && !t.columns.is_empty() {
                return Err(err(line, "the primary key must be the first column"));
            }
            t.columns.push(ColumnSpec {
                name: f[0].to_owned(),
                natural: f[2].to_owned(),
                kind,
            });
        }
    }
    for db in &dbs {
        if !(3..=8).contains(&db.tables.len()) {
            return Err(SynthError::Data {
                db_id: db.db_id.clone(),
                msg: format!("{} tables, expected 3-8", db.tables.len()),
            });
        }
        for t in &db.tables {
            if !matches!(t.columns.first().map(|c| &c.kind), Some(Kind::Pk)) {
                return Err(SynthError::Data {
                    db_id: db.db_id.clone(),
                    msg: format!("table {} has no primary key column first", t.name),
                });
            }
        }
    }
    Ok(dbs)
}
