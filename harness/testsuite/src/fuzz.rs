//! Random databases with the schema of an original one.
//!
//! A [`DatabaseSpec`] is read once per schema from the original SQLite file: the `CREATE`
//! statements in `sqlite_master`, each column's declared type, `NOT NULL` and primary-key
//! membership, the foreign keys, and a pool of values per column (the original's values, the
//! literals the schema's gold queries compare that column with, and the numbers next to numeric
//! literals, so that `>` and `>=` select different rows).
//!
//! [`generate`] then writes one candidate database for a seed:
//!
//! - tables are created from the original DDL (indexes and views too, never triggers);
//! - parents are filled before children (a topological order of the foreign-key graph, cycles
//!   broken by table order); a foreign-key column draws from the rows actually present in the
//!   parent, a self-reference from the rows of its own table;
//! - rows are inserted with `INSERT OR IGNORE`, so SQLite itself enforces primary-key and `UNIQUE`
//!   uniqueness, `NOT NULL` and `CHECK` constraints by skipping offending rows (key columns are
//!   never given NULL);
//! - a final repair pass deletes (or, when the columns are nullable, nulls out) every child row
//!   whose foreign key has no parent row, until nothing changes, so foreign-key integrity holds
//!   even across cycles.
//!
//! Sizes are small (one to a few tens of rows per table) so every query runs in microseconds.

use std::collections::HashMap;
use std::path::Path;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use crate::error::TestsuiteError;
use crate::neighbours::{ColumnInfo, Literal, SchemaInfo, TableInfo};

/// The coarse kind of values a column holds, from its declared type (SQLite affinity rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Integer,
    Real,
    Text,
    /// Text that looks like a date (`DATE`, `DATETIME`, `TIMESTAMP`, `TIME`).
    Date,
}

impl ValueKind {
    /// SQLite's affinity rules on the declared type, with dates split from text.
    pub fn from_declared(decl: &str) -> Self {
        let d = decl.to_ascii_uppercase();
        if d.contains("INT") {
            ValueKind::Integer
        } else if d.contains("DATE") || d.contains("TIME") {
            ValueKind::Date
        } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") || d.is_empty() {
            ValueKind::Text
        } else {
            // REAL, FLOAT, DOUBLE, NUMERIC, DECIMAL, BOOLEAN: numeric affinity.
            ValueKind::Real
        }
    }

    fn numeric(self) -> bool {
        matches!(self, ValueKind::Integer | ValueKind::Real)
    }
}

/// One column of a table to fuzz.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub declared_type: String,
    pub kind: ValueKind,
    pub not_null: bool,
    /// Part of the primary key.
    pub primary_key: bool,
    /// Values to draw from (original values, gold literals, boundary values); never NULL.
    pub pool: Vec<Value>,
    /// How many of the pool's values came from the original database (they come first).
    pub original_values: usize,
}

/// A foreign key (possibly composite): `columns` of this table reference `parent_columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeySpec {
    pub columns: Vec<usize>,
    pub parent: usize,
    pub parent_columns: Vec<usize>,
}

/// One table to fuzz.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
    pub foreign_keys: Vec<ForeignKeySpec>,
}

/// Everything needed to generate databases with the schema of one original database.
#[derive(Debug, Clone)]
pub struct DatabaseSpec {
    pub db_id: String,
    /// `CREATE TABLE`, then `CREATE INDEX`, then `CREATE VIEW` statements, in original order.
    pub ddl: Vec<String>,
    pub tables: Vec<TableSpec>,
    /// Tables in fill order: parents before children.
    pub order: Vec<usize>,
    /// Foreign keys whose parent table or column does not exist (skipped), as text.
    pub skipped_foreign_keys: Vec<String>,
}

/// Quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn uri(path: &Path) -> String {
    let mut out = String::from("file:");
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("?mode=ro&immutable=1");
    out
}

/// Opens a trusted database read-only and immutable (never writes, locks or journals).
pub(crate) fn open_read_only(db_id: &str, path: &Path) -> Result<Connection, TestsuiteError> {
    let abs = std::fs::canonicalize(path).map_err(|e| TestsuiteError::io(path, e))?;
    Connection::open_with_flags(
        uri(&abs),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| TestsuiteError::sqlite(db_id, path, e))
}

/// A foreign key as `pragma_foreign_key_list` lists it: (id, parent table, (from, to) columns).
type FkGroup = (i64, String, Vec<(String, Option<String>)>);

/// Maximum number of original values kept per column.
const ORIGINAL_VALUES: usize = 60;

fn literal_value(l: &Literal) -> Value {
    match l {
        Literal::Integer(i) => Value::Integer(*i),
        Literal::Real(f) => Value::Real(*f),
        Literal::Text(s) => Value::Text(s.clone()),
    }
}

fn value_literal(v: &Value) -> Option<Literal> {
    match v {
        Value::Integer(i) => Some(Literal::Integer(*i)),
        Value::Real(f) => Some(Literal::Real(*f)),
        Value::Text(s) => Some(Literal::Text(s.clone())),
        _ => None,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

impl DatabaseSpec {
    /// Reads the schema and the original values of every column of `path` (a trusted database,
    /// opened read-only and immutable).
    pub fn read(db_id: &str, path: &Path) -> Result<Self, TestsuiteError> {
        let conn = open_read_only(db_id, path)?;
        let err = |e| TestsuiteError::sqlite(db_id, path, e);
        let mut ddl_tables = Vec::new();
        let mut ddl_rest = Vec::new();
        let mut names = Vec::new();
        {
            let mut stmt = conn
                .prepare(
                    "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(err)?;
            for row in rows {
                let (ty, name, sql) = row.map_err(err)?;
                match ty.as_str() {
                    "table" => {
                        names.push(name);
                        ddl_tables.push(sql);
                    }
                    "index" => ddl_rest.push((0, sql)),
                    "view" => ddl_rest.push((1, sql)),
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            return Err(TestsuiteError::Invalid {
                db_id: db_id.to_string(),
                message: format!("{} has no tables", path.display()),
            });
        }
        ddl_rest.sort_by_key(|(k, _)| *k);
        let mut ddl = ddl_tables;
        ddl.extend(ddl_rest.into_iter().map(|(_, s)| s));

        let mut tables = Vec::with_capacity(names.len());
        for name in &names {
            let mut stmt = conn
                .prepare(
                    "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
                )
                .map_err(err)?;
            let cols: Vec<(String, String, bool, bool)> = stmt
                .query_map([name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        r.get::<_, i64>(2)? != 0,
                        r.get::<_, i64>(3)? > 0,
                    ))
                })
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?;
            let mut columns = Vec::with_capacity(cols.len());
            for (cname, decl, not_null, pk) in cols {
                let q = format!(
                    "SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL LIMIT {ORIGINAL_VALUES}",
                    c = quote_ident(&cname),
                    t = quote_ident(name)
                );
                let mut stmt = conn.prepare(&q).map_err(err)?;
                let mut pool: Vec<Value> = stmt
                    .query_map([], |r| r.get::<_, Value>(0))
                    .map_err(err)?
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                pool.retain(|v| !matches!(v, Value::Blob(_)));
                let original_values = pool.len();
                columns.push(ColumnSpec {
                    kind: ValueKind::from_declared(&decl),
                    declared_type: decl,
                    name: cname,
                    not_null: not_null || pk,
                    primary_key: pk,
                    pool,
                    original_values,
                });
            }
            tables.push(TableSpec {
                name: name.clone(),
                columns,
                foreign_keys: Vec::new(),
            });
        }

        let mut skipped = Vec::new();
        for ti in 0..tables.len() {
            let mut stmt = conn
                .prepare(
                    "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) \
                     ORDER BY id, seq",
                )
                .map_err(err)?;
            let rows: Vec<(i64, String, String, Option<String>)> = stmt
                .query_map([&tables[ti].name], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?;
            let mut groups: Vec<FkGroup> = Vec::new();
            for (id, parent, from, to) in rows {
                match groups.last_mut() {
                    Some(g) if g.0 == id => g.2.push((from, to)),
                    _ => groups.push((id, parent, vec![(from, to)])),
                }
            }
            for (_, parent, pairs) in groups {
                let describe = || {
                    format!(
                        "{}({}) -> {}",
                        tables[ti].name,
                        pairs
                            .iter()
                            .map(|p| p.0.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        parent
                    )
                };
                let Some(pi) = tables
                    .iter()
                    .position(|t| t.name.eq_ignore_ascii_case(&parent))
                else {
                    skipped.push(describe());
                    continue;
                };
                let parent_pk: Vec<usize> = tables[pi]
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.primary_key)
                    .map(|(i, _)| i)
                    .collect();
                let mut cols = Vec::new();
                let mut pcols = Vec::new();
                for (k, (from, to)) in pairs.iter().enumerate() {
                    let c = tables[ti]
                        .columns
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(from));
                    let p = match to {
                        Some(to) => tables[pi]
                            .columns
                            .iter()
                            .position(|c| c.name.eq_ignore_ascii_case(to)),
                        None => parent_pk.get(k).copied(),
                    };
                    if let (Some(c), Some(p)) = (c, p) {
                        cols.push(c);
                        pcols.push(p);
                    }
                }
                if cols.len() != pairs.len() {
                    skipped.push(describe());
                    continue;
                }
                let fk = ForeignKeySpec {
                    columns: cols,
                    parent: pi,
                    parent_columns: pcols,
                };
                if !tables[ti].foreign_keys.contains(&fk) {
                    tables[ti].foreign_keys.push(fk);
                }
            }
        }
        let order = fill_order(&tables);
        Ok(DatabaseSpec {
            db_id: db_id.to_string(),
            ddl,
            tables,
            order,
            skipped_foreign_keys: skipped,
        })
    }

    /// Adds literals from the schema's gold queries, as (lower-cased column name, literal) pairs,
    /// to the pools of every column of that name. Numbers also add their neighbours (±1, and
    /// ±0.5 for reals), so that `>` and `>=` (or `<` and `<=`) select different rows; strings
    /// add one just below (the literal minus its last character) and one just above (plus `a`).
    pub fn add_literals(&mut self, literals: &[(String, Literal)]) {
        let mut by_column: HashMap<&str, Vec<Value>> = HashMap::new();
        for (col, lit) in literals {
            let entry = by_column.entry(col.as_str()).or_default();
            match lit {
                Literal::Integer(i) => {
                    for d in [-1, 0, 1] {
                        entry.push(Value::Integer(i.saturating_add(d)));
                    }
                }
                Literal::Real(f) => {
                    for d in [-1.0, -0.5, 0.0, 0.5, 1.0] {
                        entry.push(Value::Real(f + d));
                    }
                }
                Literal::Text(t) => {
                    entry.push(literal_value(lit));
                    // Strings just below and just above, for `<`/`<=` and `>`/`>=` on text.
                    let mut below = t.clone();
                    if below.pop().is_some() {
                        entry.push(Value::Text(below));
                    }
                    entry.push(Value::Text(format!("{t}a")));
                }
            }
        }
        // Per column, then shared along foreign keys: a literal compared with a child column
        // must exist in the parent key too (children draw their values from parent rows), and
        // one compared with a parent key is useful in its children.
        let mut extra: Vec<Vec<Vec<Value>>> = self
            .tables
            .iter()
            .map(|t| {
                t.columns
                    .iter()
                    .map(|c| {
                        by_column
                            .get(c.name.to_lowercase().as_str())
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        for (ti, t) in self.tables.iter().enumerate() {
            for fk in &t.foreign_keys {
                for (&c, &pc) in fk.columns.iter().zip(&fk.parent_columns) {
                    let child = extra[ti][c].clone();
                    let parent = extra[fk.parent][pc].clone();
                    extra[fk.parent][pc].extend(child);
                    extra[ti][c].extend(parent);
                }
            }
        }
        for (t, extra) in self.tables.iter_mut().zip(extra) {
            for (c, extra) in t.columns.iter_mut().zip(extra) {
                for v in extra {
                    if !c.pool.iter().any(|p| same_value(p, &v)) {
                        c.pool.push(v);
                    }
                }
            }
        }
    }

    /// The view of this schema neighbour generation needs (column types and original values).
    pub fn schema_info(&self) -> SchemaInfo {
        SchemaInfo {
            tables: self
                .tables
                .iter()
                .map(|t| TableInfo {
                    name: t.name.clone(),
                    columns: t
                        .columns
                        .iter()
                        .map(|c| ColumnInfo {
                            name: c.name.clone(),
                            numeric: c.kind.numeric(),
                            values: c.pool[..c.original_values]
                                .iter()
                                .take(20)
                                .filter_map(value_literal)
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Parents before children (Kahn's algorithm); on a cycle, the lowest-numbered remaining table
/// goes next. Self-references are ignored here.
fn fill_order(tables: &[TableSpec]) -> Vec<usize> {
    let n = tables.len();
    let parents: Vec<Vec<usize>> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut p: Vec<usize> = t
                .foreign_keys
                .iter()
                .map(|f| f.parent)
                .filter(|&p| p != i)
                .collect();
            p.sort_unstable();
            p.dedup();
            p
        })
        .collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n)
            .find(|&i| !done[i] && parents[i].iter().all(|&p| done[p]))
            .or_else(|| (0..n).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }
    order
}

/// Draws a fresh value of `kind` that is not in `taken` (for keys and empty pools).
fn synthetic(kind: ValueKind, column: &str, k: usize, rng: &mut ChaCha8Rng) -> Value {
    match kind {
        ValueKind::Integer => Value::Integer(rng.random_range(0..100) + 1000 * k as i64),
        ValueKind::Real => {
            Value::Real(f64::from(rng.random_range(0..1000u32)) / 10.0 + 1000.0 * k as f64)
        }
        ValueKind::Date => Value::Text(format!(
            "{:04}-{:02}-{:02}",
            rng.random_range(1990..2025),
            rng.random_range(1..13),
            (k % 28) + 1
        )),
        ValueKind::Text => Value::Text(format!("{column} {k}")),
    }
}

/// Candidate size class: how many rows tables get.
fn table_rows(size: u8, rng: &mut ChaCha8Rng) -> usize {
    match size {
        0 => rng.random_range(1..=4),
        1 => rng.random_range(4..=15),
        _ => rng.random_range(12..=40),
    }
}

/// The values one column takes in one candidate: a random subset of its pool (so values repeat
/// and groups form), always including some gold literals when it has any.
fn active_values(col: &ColumnSpec, rows: usize, rng: &mut ChaCha8Rng) -> Vec<Value> {
    if col.pool.is_empty() {
        let k = rng.random_range(1..=rows.clamp(1, 8));
        return (0..k)
            .map(|i| synthetic(col.kind, &col.name, i, rng))
            .collect();
    }
    let mut pool = col.pool.clone();
    let total = pool.len();
    let (orig, lits) = pool.split_at_mut(col.original_values);
    orig.shuffle(rng);
    lits.shuffle(rng);
    let cap = rows.max(2).min(total);
    let k = rng.random_range(1..=cap);
    // Half from the gold literals (when there are some), half from the original values.
    let n_lit = if lits.is_empty() {
        0
    } else {
        rng.random_range(0..=k.min(lits.len()))
    };
    let mut out: Vec<Value> = lits.iter().take(n_lit).cloned().collect();
    out.extend(orig.iter().take(k - n_lit).cloned());
    if out.is_empty() {
        out.extend(orig.first().or(lits.first()).cloned());
    }
    out
}

/// Writes one random database for `spec` and `seed` to `path` (which must not exist).
pub fn generate(spec: &DatabaseSpec, seed: u64, path: &Path) -> Result<(), TestsuiteError> {
    let db_id = spec.db_id.as_str();
    let err = |e| TestsuiteError::sqlite(db_id, path, e);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut conn = Connection::open(path).map_err(err)?;
    conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA foreign_keys=OFF;")
        .map_err(err)?;
    let tx = conn.transaction().map_err(err)?;
    for sql in &spec.ddl {
        tx.execute_batch(sql).map_err(err)?;
    }
    let size: u8 = match rng.random_range(0..20) {
        0..=4 => 0,
        5..=13 => 1,
        _ => 2,
    };
    let null_rate = if rng.random_bool(0.3) { 0.15 } else { 0.0 };

    for &ti in &spec.order {
        let table = &spec.tables[ti];
        let n = table_rows(size, &mut rng);
        let width = table.columns.len();
        // Column values, drawn independently.
        let single_pk = table.columns.iter().filter(|c| c.primary_key).count() == 1;
        let mut rows: Vec<Vec<Value>> = vec![vec![Value::Null; width]; n];
        for (ci, col) in table.columns.iter().enumerate() {
            if col.primary_key && single_pk {
                // Distinct values: most gold literals, the original values shuffled, then
                // fresh ones.
                let (orig, lits) = col.pool.split_at(col.original_values);
                let mut vals: Vec<Value> = lits
                    .iter()
                    .filter(|_| rng.random_bool(0.7))
                    .cloned()
                    .collect();
                vals.shuffle(&mut rng);
                let mut rest = orig.to_vec();
                rest.shuffle(&mut rng);
                vals.extend(rest);
                let mut k = 0;
                while vals.len() < n {
                    vals.push(synthetic(col.kind, &col.name, 100 + k, &mut rng));
                    k += 1;
                }
                for (r, v) in rows.iter_mut().zip(vals) {
                    r[ci] = v;
                }
                continue;
            }
            let active = active_values(col, n, &mut rng);
            let nullable = !col.not_null && null_rate > 0.0;
            for r in rows.iter_mut() {
                r[ci] = if nullable && rng.random_bool(null_rate) {
                    Value::Null
                } else {
                    active.choose(&mut rng).cloned().unwrap_or(Value::Null)
                };
            }
        }
        // Foreign keys: draw whole parent tuples.
        for fk in &table.foreign_keys {
            let parent_tuples: Vec<Vec<Value>> = if fk.parent == ti {
                rows.iter()
                    .map(|r| fk.parent_columns.iter().map(|&c| r[c].clone()).collect())
                    .collect()
            } else {
                let p = &spec.tables[fk.parent];
                let q = format!(
                    "SELECT DISTINCT {} FROM {}",
                    fk.parent_columns
                        .iter()
                        .map(|&c| quote_ident(&p.columns[c].name))
                        .collect::<Vec<_>>()
                        .join(", "),
                    quote_ident(&p.name)
                );
                let mut stmt = tx.prepare(&q).map_err(err)?;
                let w = fk.parent_columns.len();
                let got = stmt
                    .query_map([], |r| (0..w).map(|i| r.get::<_, Value>(i)).collect())
                    .map_err(err)?
                    .collect::<Result<Vec<Vec<Value>>, _>>()
                    .map_err(err)?;
                got
            };
            let mut tuples: Vec<Vec<Value>> = parent_tuples
                .into_iter()
                .filter(|t| t.iter().all(|v| !matches!(v, Value::Null)))
                .collect();
            tuples.shuffle(&mut rng);
            if !tuples.is_empty() {
                let k = rng.random_range(1..=tuples.len());
                tuples.truncate(k);
            }
            let nullable = fk.columns.iter().all(|&c| !table.columns[c].not_null);
            for r in rows.iter_mut() {
                match tuples.choose(&mut rng) {
                    Some(t) if !(nullable && null_rate > 0.0 && rng.random_bool(null_rate)) => {
                        for (&c, v) in fk.columns.iter().zip(t) {
                            r[c] = v.clone();
                        }
                    }
                    _ if nullable => {
                        for &c in &fk.columns {
                            r[c] = Value::Null;
                        }
                    }
                    // No parent row and not nullable: the repair pass removes this row.
                    _ => {}
                }
            }
        }
        let sql = format!(
            "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
            quote_ident(&table.name),
            table
                .columns
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", "),
            vec!["?"; width].join(", ")
        );
        let mut stmt = tx.prepare(&sql).map_err(err)?;
        for r in &rows {
            match stmt.execute(rusqlite::params_from_iter(r.iter())) {
                Ok(_) => {}
                // A value an `INTEGER PRIMARY KEY` cannot hold: skip the row, like a conflict.
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::TypeMismatch
                            | rusqlite::ErrorCode::ConstraintViolation
                    ) => {}
                Err(e) => return Err(err(e)),
            }
        }
    }
    repair_foreign_keys(spec, &tx).map_err(err)?;
    tx.commit().map_err(err)?;
    conn.close().map_err(|(_, e)| err(e))?;
    Ok(())
}

/// The `WHERE` condition selecting rows of `table` whose foreign key `fk` has no parent row.
pub fn fk_violation_condition(spec: &DatabaseSpec, table: usize, fk: &ForeignKeySpec) -> String {
    let t = &spec.tables[table];
    let p = &spec.tables[fk.parent];
    let tq = quote_ident(&t.name);
    let not_null = fk
        .columns
        .iter()
        .map(|&c| format!("{tq}.{} IS NOT NULL", quote_ident(&t.columns[c].name)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let join = fk
        .columns
        .iter()
        .zip(&fk.parent_columns)
        .map(|(&c, &pc)| {
            format!(
                "kb_parent.{} = {tq}.{}",
                quote_ident(&p.columns[pc].name),
                quote_ident(&t.columns[c].name)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "{not_null} AND NOT EXISTS (SELECT 1 FROM {} AS kb_parent WHERE {join})",
        quote_ident(&p.name)
    )
}

/// Deletes (or nulls out, when every column of the key is nullable) rows whose foreign key has no
/// parent row, until nothing changes.
fn repair_foreign_keys(spec: &DatabaseSpec, conn: &Connection) -> rusqlite::Result<()> {
    for _ in 0..64 {
        let mut changed = 0;
        for (ti, t) in spec.tables.iter().enumerate() {
            for fk in &t.foreign_keys {
                let cond = fk_violation_condition(spec, ti, fk);
                let nullable = fk.columns.iter().all(|&c| !t.columns[c].not_null);
                let sql = if nullable {
                    format!(
                        "UPDATE OR IGNORE {} SET {} WHERE {cond}",
                        quote_ident(&t.name),
                        fk.columns
                            .iter()
                            .map(|&c| format!("{} = NULL", quote_ident(&t.columns[c].name)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    format!("DELETE FROM {} WHERE {cond}", quote_ident(&t.name))
                };
                changed += conn.execute(&sql, [])?;
            }
        }
        if changed == 0 {
            return Ok(());
        }
    }
    // Still changing after many rounds (pathological cycles): empty the offending tables.
    for (ti, t) in spec.tables.iter().enumerate() {
        for fk in &t.foreign_keys {
            let cond = fk_violation_condition(spec, ti, fk);
            conn.execute(
                &format!("DELETE FROM {} WHERE {cond}", quote_ident(&t.name)),
                [],
            )?;
        }
    }
    Ok(())
}
