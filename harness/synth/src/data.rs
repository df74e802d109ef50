//! Row generation from a [`DbSpec`], SQLite file writing and the Spider `tables.json` entry.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;

use crate::spec::{DbSpec, Kind, TableSpec};
use crate::{SpiderSchema, SynthError};

/// One stored value. Every generated value is non-NULL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Int(i64),
    Real(f64),
    Text(String),
}

/// A generated database: its spec and the rows of every table (same order as the spec).
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub spec: DbSpec,
    pub rows: Vec<Vec<Vec<Val>>>,
}

/// A foreign-key relation `child.fk_col -> parent.pk`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rel {
    pub child: usize,
    pub fk_col: usize,
    pub parent: usize,
    /// The child has no other foreign key to the same parent, so "parents with children" is
    /// unambiguous without naming the role.
    pub unique: bool,
}

impl Db {
    pub(crate) fn table(&self, t: usize) -> &TableSpec {
        &self.spec.tables[t]
    }

    /// The first label (unique name-like) column of table `t`.
    pub(crate) fn label(&self, t: usize) -> Option<usize> {
        self.table(t).columns.iter().position(|c| c.kind.is_label())
    }

    /// Category columns of table `t`.
    pub(crate) fn cats(&self, t: usize) -> Vec<usize> {
        self.cols_where(t, |k| matches!(k, Kind::Cat(_)))
    }

    /// Numeric measure columns of table `t`.
    pub(crate) fn measures(&self, t: usize) -> Vec<usize> {
        self.cols_where(t, Kind::is_measure)
    }

    /// Date columns of table `t`.
    pub(crate) fn dates(&self, t: usize) -> Vec<usize> {
        self.cols_where(t, |k| matches!(k, Kind::Date(..)))
    }

    fn cols_where(&self, t: usize, f: impl Fn(&Kind) -> bool) -> Vec<usize> {
        self.table(t)
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| f(&c.kind))
            .map(|(i, _)| i)
            .collect()
    }

    /// Every foreign-key relation of the database.
    pub(crate) fn rels(&self) -> Vec<Rel> {
        let mut out = Vec::new();
        for (ci, t) in self.spec.tables.iter().enumerate() {
            for (col, c) in t.columns.iter().enumerate() {
                if let Kind::Fk(p) = c.kind {
                    let same = t
                        .columns
                        .iter()
                        .filter(|o| matches!(o.kind, Kind::Fk(q) if q == p))
                        .count();
                    out.push(Rel {
                        child: ci,
                        fk_col: col,
                        parent: p,
                        unique: same == 1,
                    });
                }
            }
        }
        out
    }

    /// Distinct values of a column, in first-seen order.
    pub(crate) fn distinct(&self, t: usize, col: usize) -> Vec<&Val> {
        let mut out: Vec<&Val> = Vec::new();
        for r in &self.rows[t] {
            if !out.contains(&&r[col]) {
                out.push(&r[col]);
            }
        }
        out
    }
}

fn date(rng: &mut ChaCha8Rng, y0: i32, y1: i32) -> String {
    let y = rng.random_range(y0..=y1);
    let m = rng.random_range(1..=12);
    let d = rng.random_range(1..=28);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Round to two decimals (the precision used in the database and in every literal).
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// All combinations of one word per list, joined by spaces, in list order.
fn combos(lists: &[Vec<String>]) -> Vec<String> {
    let mut acc = vec![String::new()];
    for l in lists {
        let mut next = Vec::with_capacity(acc.len() * l.len());
        for a in &acc {
            for w in l {
                next.push(if a.is_empty() {
                    w.clone()
                } else {
                    format!("{a} {w}")
                });
            }
        }
        acc = next;
    }
    acc
}

/// Draw weighted index: `weights` are positive integers.
fn weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len().saturating_sub(1)
}

/// Generate every table's rows. Parents come first in the spec, so foreign keys always point
/// at existing rows.
pub(crate) fn generate_rows(spec: &DbSpec, rng: &mut ChaCha8Rng) -> Result<Db, SynthError> {
    let mut rows: Vec<Vec<Vec<Val>>> = Vec::with_capacity(spec.tables.len());
    let fail = |msg: String| SynthError::Data {
        db_id: spec.db_id.clone(),
        msg,
    };
    for t in &spec.tables {
        let n = rng.random_range(t.rows.0..=t.rows.1);
        let mut cols: Vec<Vec<Val>> = Vec::with_capacity(t.columns.len());
        for c in &t.columns {
            let col: Vec<Val> = match &c.kind {
                Kind::Pk => (1..=n as i64).map(Val::Int).collect(),
                Kind::Fk(p) => {
                    let np = rows[*p].len();
                    if np == 0 {
                        return Err(fail(format!("{}.{}: empty parent", t.name, c.name)));
                    }
                    // About 80 % of the parents are referenced, with uneven weights, so that
                    // "has no ..." and "has the most ..." questions have answers.
                    let mut ids: Vec<i64> = (1..=np as i64).collect();
                    ids.shuffle(rng);
                    let active = ((np * 4) / 5).max(1);
                    ids.truncate(active);
                    let weights: Vec<u32> = ids.iter().map(|_| rng.random_range(1..=6)).collect();
                    (0..n)
                        .map(|_| Val::Int(ids[weighted(rng, &weights)]))
                        .collect()
                }
                Kind::Person => {
                    let lists = vec![
                        crate::words::FIRST
                            .iter()
                            .map(|s| (*s).to_owned())
                            .collect(),
                        crate::words::LAST.iter().map(|s| (*s).to_owned()).collect(),
                    ];
                    unique_labels(rng, &lists, n)
                        .ok_or_else(|| fail(format!("{}.{}: too few names", t.name, c.name)))?
                }
                Kind::Combo(lists) => unique_labels(rng, lists, n).ok_or_else(|| {
                    fail(format!(
                        "{}.{}: fewer combinations than rows",
                        t.name, c.name
                    ))
                })?,
                Kind::Cat(list) => {
                    let mut vals = list.clone();
                    if vals.len() > 10 {
                        vals.shuffle(rng);
                        let k = rng.random_range(6..=10);
                        vals.truncate(k);
                    }
                    let weights: Vec<u32> = vals.iter().map(|_| rng.random_range(1..=4)).collect();
                    (0..n)
                        .map(|_| Val::Text(vals[weighted(rng, &weights)].clone()))
                        .collect()
                }
                Kind::Int(lo, hi) => (0..n)
                    .map(|_| Val::Int(rng.random_range(*lo..=*hi)))
                    .collect(),
                Kind::Real(lo, hi) => (0..n)
                    .map(|_| Val::Real(round2(rng.random_range(*lo..*hi))))
                    .collect(),
                Kind::Date(y0, y1) => (0..n).map(|_| Val::Text(date(rng, *y0, *y1))).collect(),
            };
            cols.push(col);
        }
        // Two foreign keys to the same parent (home/away team) never point at the same row.
        let fk_pairs: Vec<(usize, usize)> = t
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.kind {
                Kind::Fk(p) => Some((i, p)),
                _ => None,
            })
            .collect();
        for (a, (ia, pa)) in fk_pairs.iter().enumerate() {
            for (ib, pb) in fk_pairs.iter().skip(a + 1) {
                if pa != pb || rows[*pa].len() < 2 {
                    continue;
                }
                let np = rows[*pa].len() as i64;
                let first = cols[*ia].clone();
                for (a, b) in first.iter().zip(cols[*ib].iter_mut()) {
                    while b == a {
                        *b = Val::Int(rng.random_range(1..=np));
                    }
                }
            }
        }
        let table_rows: Vec<Vec<Val>> = (0..n)
            .map(|r| cols.iter().map(|c| c[r].clone()).collect())
            .collect();
        rows.push(table_rows);
    }
    Ok(Db {
        spec: spec.clone(),
        rows,
    })
}

fn unique_labels(rng: &mut ChaCha8Rng, lists: &[Vec<String>], n: usize) -> Option<Vec<Val>> {
    let mut all = combos(lists);
    if all.len() < n {
        return None;
    }
    all.shuffle(rng);
    all.truncate(n);
    Some(all.into_iter().map(Val::Text).collect())
}

/// The `CREATE TABLE` statement of one table (Spider-like DDL with declared foreign keys).
pub(crate) fn ddl(spec: &DbSpec, t: &TableSpec) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in &t.columns {
        let extra = if matches!(c.kind, Kind::Pk) {
            " PRIMARY KEY"
        } else {
            " NOT NULL"
        };
        parts.push(format!("    {} {}{}", c.name, c.kind.sql_type(), extra));
    }
    for c in &t.columns {
        if let Kind::Fk(p) = c.kind {
            let parent = &spec.tables[p];
            parts.push(format!(
                "    FOREIGN KEY ({}) REFERENCES {} ({})",
                c.name, parent.name, parent.columns[0].name
            ));
        }
    }
    format!("CREATE TABLE {} (\n{}\n)", t.name, parts.join(",\n"))
}

/// Write the database file. Same rows, same statements, same order: byte-identical files.
pub(crate) fn write_sqlite(db: &Db, path: &Path) -> Result<(), SynthError> {
    let sq = |source: rusqlite::Error| SynthError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        std::fs::remove_file(path).map_err(|source| SynthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let mut conn = Connection::open(path).map_err(sq)?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(sq)?;
    let tx = conn.transaction().map_err(sq)?;
    for (ti, t) in db.spec.tables.iter().enumerate() {
        tx.execute_batch(&ddl(&db.spec, t)).map_err(sq)?;
        let placeholders = vec!["?"; t.columns.len()].join(", ");
        let sql = format!("INSERT INTO {} VALUES ({placeholders})", t.name);
        let mut stmt = tx.prepare(&sql).map_err(sq)?;
        for row in &db.rows[ti] {
            let params: Vec<rusqlite::types::Value> = row
                .iter()
                .map(|v| match v {
                    Val::Int(i) => rusqlite::types::Value::Integer(*i),
                    Val::Real(x) => rusqlite::types::Value::Real(*x),
                    Val::Text(s) => rusqlite::types::Value::Text(s.clone()),
                })
                .collect();
            stmt.execute(rusqlite::params_from_iter(params))
                .map_err(sq)?;
        }
    }
    tx.commit().map_err(sq)?;
    conn.close().map_err(|(_, e)| sq(e))?;
    Ok(())
}

/// The Spider `tables.json` entry of a database.
pub(crate) fn spider_schema(spec: &DbSpec) -> SpiderSchema {
    let mut s = SpiderSchema {
        db_id: spec.db_id.clone(),
        table_names: spec.tables.iter().map(|t| t.singular.clone()).collect(),
        table_names_original: spec.tables.iter().map(|t| t.name.clone()).collect(),
        column_names: vec![(-1, "*".to_owned())],
        column_names_original: vec![(-1, "*".to_owned())],
        column_types: vec!["text".to_owned()],
        primary_keys: Vec::new(),
        foreign_keys: Vec::new(),
    };
    // Global column index of (table, column).
    let mut base = Vec::with_capacity(spec.tables.len());
    let mut next = 1usize;
    for t in &spec.tables {
        base.push(next);
        next += t.columns.len();
    }
    for (ti, t) in spec.tables.iter().enumerate() {
        for (ci, c) in t.columns.iter().enumerate() {
            s.column_names.push((ti as i64, c.natural.clone()));
            s.column_names_original.push((ti as i64, c.name.clone()));
            s.column_types.push(c.kind.spider_type().to_owned());
            match c.kind {
                Kind::Pk => s.primary_keys.push(base[ti] + ci),
                Kind::Fk(p) => s.foreign_keys.push([base[ti] + ci, base[p]]),
                _ => {}
            }
        }
    }
    s
}
