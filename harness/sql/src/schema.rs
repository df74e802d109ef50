//! Database schemas: Spider-format `tables.json` files, or schemas read straight from a SQLite file.
//!
//! A [`Schema`] keeps the *original* table and column names (what SQL must use) next to the
//! natural-language names Spider annotates (`Singer_ID` / `singer id`). Schemas built from a SQLite
//! file have no annotation, so their natural names equal the original ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;

/// Why a schema could not be loaded. Every variant names the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path} is not a Spider tables.json file: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The JSON parsed but is inconsistent (lengths differ, indices out of range).
    #[error("{path}: database {db_id}: {message}")]
    Invalid {
        path: PathBuf,
        db_id: String,
        message: String,
    },
    /// SQLite could not open or describe the database.
    #[error("cannot read the schema of SQLite database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The database file does not exist.
    #[error("SQLite database {path} does not exist")]
    MissingDatabase { path: PathBuf },
}

/// A column of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    /// The name as it appears in the database (`Singer_ID`).
    pub name: String,
    /// The natural-language name (`singer id`); equal to `name` when there is no annotation.
    pub natural_name: String,
    /// Spider's coarse type (`text`, `number`, `time`, `boolean`, `others`).
    pub col_type: String,
    /// The type declared in `CREATE TABLE`, when the schema was read from SQLite (`int`, `varchar(20)`).
    pub declared_type: Option<String>,
    /// Whether the column is (part of) the table's primary key.
    pub primary_key: bool,
}

/// A table of a [`Schema`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Table {
    /// The name as it appears in the database.
    pub name: String,
    /// The natural-language name; equal to `name` when there is no annotation.
    pub natural_name: String,
    /// Columns in declaration order.
    pub columns: Vec<Column>,
}

/// A column designated by position: `schema.tables[table].columns[column]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ColumnRef {
    pub table: usize,
    pub column: usize,
}

/// A foreign key: `from` (the referencing column) references `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ForeignKey {
    pub from: ColumnRef,
    pub to: ColumnRef,
}

/// The schema of one database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Schema {
    /// Database identifier (`concert_singer`).
    pub db_id: String,
    /// Tables in declaration order.
    pub tables: Vec<Table>,
    /// Foreign keys, in file order.
    pub foreign_keys: Vec<ForeignKey>,
}

impl Schema {
    /// The column a [`ColumnRef`] designates, if it is in range.
    pub fn column(&self, r: ColumnRef) -> Option<&Column> {
        self.tables.get(r.table)?.columns.get(r.column)
    }

    /// `table.column` with the original names, if the reference is in range.
    pub fn qualified_name(&self, r: ColumnRef) -> Option<String> {
        let table = self.tables.get(r.table)?;
        let column = table.columns.get(r.column)?;
        Some(format!("{}.{}", table.name, column.name))
    }

    /// The index of a table by name, ignoring ASCII case.
    pub fn table_index(&self, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// One entry of a Spider `tables.json` file, as written on disk.
#[derive(Debug, Deserialize)]
struct RawSchema {
    db_id: String,
    table_names: Vec<String>,
    table_names_original: Vec<String>,
    column_names: Vec<(i64, String)>,
    column_names_original: Vec<(i64, String)>,
    column_types: Vec<String>,
    primary_keys: Vec<RawKey>,
    foreign_keys: Vec<(usize, usize)>,
}

/// A primary key entry: one column index, or a list of them for composite keys (BIRD-style files).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawKey {
    One(usize),
    Many(Vec<usize>),
}

/// Loads every database of a Spider-format `tables.json`, in file order.
pub fn load_tables_json(path: impl AsRef<Path>) -> Result<Vec<Schema>, SchemaError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_tables_json(&text, path)
}

/// Like [`load_tables_json`], keyed by `db_id`.
pub fn load_tables_json_map(
    path: impl AsRef<Path>,
) -> Result<BTreeMap<String, Schema>, SchemaError> {
    Ok(load_tables_json(path)?
        .into_iter()
        .map(|s| (s.db_id.clone(), s))
        .collect())
}

/// Parses the text of a `tables.json` file; `path` is only used in error messages.
pub fn parse_tables_json(text: &str, path: &Path) -> Result<Vec<Schema>, SchemaError> {
    let raw: Vec<RawSchema> = serde_json::from_str(text).map_err(|source| SchemaError::Json {
        path: path.to_owned(),
        source,
    })?;
    raw.into_iter().map(|r| convert(r, path)).collect()
}

fn convert(raw: RawSchema, path: &Path) -> Result<Schema, SchemaError> {
    let invalid = |message: String| SchemaError::Invalid {
        path: path.to_owned(),
        db_id: raw.db_id.clone(),
        message,
    };
    if raw.table_names.len() != raw.table_names_original.len() {
        return Err(invalid(format!(
            "{} table_names but {} table_names_original",
            raw.table_names.len(),
            raw.table_names_original.len()
        )));
    }
    let n_cols = raw.column_names_original.len();
    if raw.column_names.len() != n_cols || raw.column_types.len() != n_cols {
        return Err(invalid(format!(
            "column_names ({}), column_names_original ({n_cols}) and column_types ({}) differ in length",
            raw.column_names.len(),
            raw.column_types.len()
        )));
    }
    let mut tables: Vec<Table> = raw
        .table_names_original
        .iter()
        .zip(&raw.table_names)
        .map(|(name, natural)| Table {
            name: name.clone(),
            natural_name: natural.clone(),
            columns: Vec::new(),
        })
        .collect();
    // Global column index (as used by primary_keys / foreign_keys) -> position in its table.
    let mut refs: Vec<Option<ColumnRef>> = Vec::with_capacity(n_cols);
    for (i, ((t, name), (t2, natural))) in raw
        .column_names_original
        .iter()
        .zip(&raw.column_names)
        .enumerate()
    {
        if t != t2 {
            return Err(invalid(format!(
                "column {i} belongs to table {t} in column_names_original but {t2} in column_names"
            )));
        }
        if *t < 0 {
            refs.push(None); // the `*` pseudo-column
            continue;
        }
        let ti = *t as usize;
        let table = tables
            .get_mut(ti)
            .ok_or_else(|| invalid(format!("column {i} ({name}) names missing table {t}")))?;
        refs.push(Some(ColumnRef {
            table: ti,
            column: table.columns.len(),
        }));
        table.columns.push(Column {
            name: name.clone(),
            natural_name: natural.clone(),
            col_type: raw.column_types[i].clone(),
            declared_type: None,
            primary_key: false,
        });
    }
    let resolve = |i: usize, what: &str| -> Result<ColumnRef, SchemaError> {
        refs.get(i).copied().flatten().ok_or_else(|| {
            invalid(format!(
                "{what} names column {i}, which is not a table column"
            ))
        })
    };
    for key in &raw.primary_keys {
        let cols: &[usize] = match key {
            RawKey::One(c) => std::slice::from_ref(c),
            RawKey::Many(cs) => cs,
        };
        for &c in cols {
            let r = resolve(c, "primary_keys")?;
            tables[r.table].columns[r.column].primary_key = true;
        }
    }
    let foreign_keys = raw
        .foreign_keys
        .iter()
        .map(|&(a, b)| {
            Ok(ForeignKey {
                from: resolve(a, "foreign_keys")?,
                to: resolve(b, "foreign_keys")?,
            })
        })
        .collect::<Result<Vec<_>, SchemaError>>()?;
    Ok(Schema {
        db_id: raw.db_id,
        tables,
        foreign_keys,
    })
}

/// Opens a SQLite database read-only and immutable (no locks, no journal, no writes).
///
/// Kept in one place so that it can later be replaced by the sandboxed executor.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, SchemaError> {
    if !path.is_file() {
        return Err(SchemaError::MissingDatabase {
            path: path.to_owned(),
        });
    }
    let uri = format!(
        "file:{}?mode=ro&immutable=1",
        uri_escape(&path.to_string_lossy())
    );
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| SchemaError::Sqlite {
        path: path.to_owned(),
        source,
    })
}

/// Percent-escapes the characters that are special in a SQLite URI path.
fn uri_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// Quotes an identifier for use in SQL text (`"a""b"`).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Spider's coarse type for a declared SQLite type, following SQLite's affinity rules.
fn coarse_type(declared: &str) -> &'static str {
    let d = declared.to_ascii_lowercase();
    if d.contains("int") {
        "number"
    } else if d.contains("char") || d.contains("clob") || d.contains("text") {
        "text"
    } else if d.contains("date") || d.contains("time") || d.contains("year") {
        "time"
    } else if d.contains("bool") || d.contains("bit") {
        "boolean"
    } else if d.contains("real")
        || d.contains("floa")
        || d.contains("doub")
        || d.contains("num")
        || d.contains("dec")
    {
        "number"
    } else if d.is_empty() || d.contains("blob") {
        "others"
    } else {
        "text"
    }
}

/// Reads the schema of a SQLite file: tables (in creation order), columns with declared types,
/// primary keys and foreign keys. Natural names equal the original names.
///
/// Foreign keys whose target cannot be resolved (unknown table or column) are skipped.
pub fn schema_from_sqlite(path: impl AsRef<Path>, db_id: &str) -> Result<Schema, SchemaError> {
    read_sqlite_schema(path.as_ref(), db_id, false)
}

/// [`schema_from_sqlite`], optionally keeping SQLite's internal tables (`sqlite_sequence`), which
/// some `tables.json` files list.
pub(crate) fn read_sqlite_schema(
    path: &Path,
    db_id: &str,
    include_internal: bool,
) -> Result<Schema, SchemaError> {
    let conn = open_read_only(path)?;
    let sql_err = |source| SchemaError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let names: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND (?1 OR name NOT LIKE 'sqlite\\_%' ESCAPE '\\') ORDER BY rowid",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([include_internal], |r| r.get::<_, String>(0))
            .map_err(sql_err)?;
        rows.collect::<Result<_, _>>().map_err(sql_err)?
    };
    let mut tables = Vec::with_capacity(names.len());
    for name in &names {
        let mut stmt = conn
            .prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")
            .map_err(sql_err)?;
        let columns = stmt
            .query_map([name], |r| {
                let cname: String = r.get(0)?;
                let declared: String = r.get::<_, Option<String>>(1)?.unwrap_or_default();
                let pk: i64 = r.get(2)?;
                Ok(Column {
                    natural_name: cname.clone(),
                    name: cname,
                    col_type: coarse_type(&declared).to_string(),
                    declared_type: Some(declared),
                    primary_key: pk > 0,
                })
            })
            .map_err(sql_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_err)?;
        tables.push(Table {
            name: name.clone(),
            natural_name: name.clone(),
            columns,
        });
    }
    let mut schema = Schema {
        db_id: db_id.to_string(),
        tables,
        foreign_keys: Vec::new(),
    };
    for (ti, name) in names.iter().enumerate() {
        let mut stmt = conn
            .prepare(
                "SELECT \"table\", \"from\", \"to\", seq FROM pragma_foreign_key_list(?1) \
                 ORDER BY id, seq",
            )
            .map_err(sql_err)?;
        let rows: Vec<(String, String, Option<String>, i64)> = stmt
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        for (parent, from, to, seq) in rows {
            let Some(from_ci) = column_index(&schema.tables[ti], &from) else {
                continue;
            };
            let Some(pi) = schema.table_index(&parent) else {
                continue;
            };
            let to_ci = match to {
                Some(to) => column_index(&schema.tables[pi], &to),
                // `REFERENCES parent` without columns means the parent's primary key.
                None => schema.tables[pi]
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.primary_key)
                    .nth(seq as usize)
                    .map(|(i, _)| i),
            };
            if let Some(to_ci) = to_ci {
                schema.foreign_keys.push(ForeignKey {
                    from: ColumnRef {
                        table: ti,
                        column: from_ci,
                    },
                    to: ColumnRef {
                        table: pi,
                        column: to_ci,
                    },
                });
            }
        }
    }
    Ok(schema)
}

fn column_index(table: &Table, name: &str) -> Option<usize> {
    table
        .columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &str = r#"[{"db_id": "d", "table_names": ["singer", "concert"],
        "table_names_original": ["Singer", "Concert"],
        "column_names": [[-1, "*"], [0, "singer id"], [0, "name"], [1, "concert id"], [1, "singer id"]],
        "column_names_original": [[-1, "*"], [0, "Singer_ID"], [0, "Name"], [1, "ID"], [1, "Singer_ID"]],
        "column_types": ["text", "number", "text", "number", "number"],
        "primary_keys": [1, [3, 4]], "foreign_keys": [[4, 1]]}]"#;

    #[test]
    fn parses_tables_json_with_composite_keys() {
        let s = parse_tables_json(TABLES, Path::new("t.json")).unwrap();
        let s = &s[0];
        assert_eq!(s.tables.len(), 2);
        assert_eq!(s.tables[1].columns[1].name, "Singer_ID");
        assert!(s.tables[0].columns[0].primary_key);
        assert!(!s.tables[0].columns[1].primary_key);
        assert!(s.tables[1].columns[0].primary_key && s.tables[1].columns[1].primary_key);
        assert_eq!(
            s.qualified_name(s.foreign_keys[0].from).as_deref(),
            Some("Concert.Singer_ID")
        );
        assert_eq!(
            s.qualified_name(s.foreign_keys[0].to).as_deref(),
            Some("Singer.Singer_ID")
        );
    }

    #[test]
    fn invalid_index_names_file_and_db() {
        let bad = TABLES.replace("[[4, 1]]", "[[4, 9]]");
        let err = parse_tables_json(&bad, Path::new("x/tables.json")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("x/tables.json") && msg.contains("database d"),
            "{msg}"
        );
        let err = parse_tables_json("{", Path::new("y.json")).unwrap_err();
        assert!(err.to_string().contains("y.json"));
    }

    #[test]
    fn reads_schema_from_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE p (id INTEGER PRIMARY KEY, name VARCHAR(20));
             CREATE TABLE c (a int, b int, pid int REFERENCES p, x text,
                             PRIMARY KEY (a, b), FOREIGN KEY (x) REFERENCES p(name));",
        )
        .unwrap();
        drop(conn);
        let s = schema_from_sqlite(&path, "ab").unwrap();
        assert_eq!(s.tables.len(), 2);
        assert_eq!(
            s.tables[0].columns[1].declared_type.as_deref(),
            Some("VARCHAR(20)")
        );
        assert_eq!(s.tables[0].columns[1].col_type, "text");
        assert!(s.tables[1].columns[0].primary_key && s.tables[1].columns[1].primary_key);
        let fks: Vec<_> = s
            .foreign_keys
            .iter()
            .map(|f| {
                (
                    s.qualified_name(f.from).unwrap(),
                    s.qualified_name(f.to).unwrap(),
                )
            })
            .collect();
        assert!(fks.contains(&("c.pid".into(), "p.id".into())), "{fks:?}");
        assert!(fks.contains(&("c.x".into(), "p.name".into())), "{fks:?}");
        let err = schema_from_sqlite(dir.path().join("none.sqlite"), "n").unwrap_err();
        assert!(err.to_string().contains("none.sqlite"));
    }
}
