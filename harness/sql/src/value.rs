//! SQL values with Python's equality semantics.
//!
//! The reference evaluators are Python scripts: `1 == 1.0` is true there, `'1' == 1` is false, and
//! `str` never equals `bytes`. Scores must not drift from theirs, so [`Value`] implements `Eq` and
//! `Hash` the same way: an integral real equals (and hashes like) the integer with that value.

use std::hash::{Hash, Hasher};

/// One cell of a query result, as SQLite returned it.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    /// Text decoded leniently: invalid UTF-8 never aborts a run.
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// The exact integer this value equals numerically, if any (`Real(2.0)` -> `Some(2)`).
    fn as_exact_int(&self) -> Option<i64> {
        match *self {
            Value::Integer(i) => Some(i),
            Value::Real(f) if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) => {
                let i = f as i64;
                // i64 -> f64 loses precision above 2^53; only claim equality when it round-trips.
                (i as f64 == f).then_some(i)
            }
            _ => None,
        }
    }

    /// A short, human-readable rendering used in previews and reports.
    pub fn render(&self) -> String {
        match self {
            Value::Null => "NULL".to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => format!("{f:?}"),
            Value::Text(s) => format!("{s:?}"),
            Value::Blob(b) => format!("<blob {} bytes>", b.len()),
        }
    }

    /// Approximate heap size in bytes, used for result-size caps.
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Text(s) => s.len(),
                Value::Blob(b) => b.len(),
                _ => 0,
            }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Integer(a), Integer(b)) => a == b,
            (Real(a), Real(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Integer(_), Real(_)) | (Real(_), Integer(_)) => {
                match (self.as_exact_int(), other.as_exact_int()) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                }
            }
            (Text(a), Text(b)) => a == b,
            (Blob(a), Blob(b)) => a == b,
            _ => false,
        }
    }
}

// NaN is made equal to itself above (SQLite turns NaN into NULL anyway), so Eq holds.
impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Integer(_) | Value::Real(_) => match self.as_exact_int() {
                Some(i) => {
                    1u8.hash(state);
                    i.hash(state);
                }
                None => {
                    2u8.hash(state);
                    if let Value::Real(f) = self {
                        if f.is_nan() {
                            u64::MAX.hash(state)
                        } else {
                            f.to_bits().hash(state)
                        }
                    }
                }
            },
            Value::Text(s) => {
                3u8.hash(state);
                s.hash(state);
            }
            Value::Blob(b) => {
                4u8.hash(state);
                b.hash(state);
            }
        }
    }
}

impl From<rusqlite::types::ValueRef<'_>> for Value {
    fn from(v: rusqlite::types::ValueRef<'_>) -> Self {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

/// A query result: the rows in the order SQLite produced them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl ResultSet {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Width of the result: the row width when there are rows, otherwise the declared column count.
    pub fn width(&self) -> usize {
        self.rows.first().map_or(self.columns.len(), Vec::len)
    }

    /// The first `n` rows rendered as text, for reports.
    pub fn preview(&self, n: usize) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .take(n)
            .map(|r| r.iter().map(Value::render).collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Value::*;
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn h(v: &Value) -> u64 {
        let mut s = DefaultHasher::new();
        v.hash(&mut s);
        s.finish()
    }

    #[test]
    fn integer_equals_integral_real_like_python() {
        assert_eq!(Integer(1), Real(1.0));
        assert_eq!(h(&Integer(1)), h(&Real(1.0)));
        assert_ne!(Integer(1), Real(1.5));
        assert_eq!(Integer(-3), Real(-3.0));
    }

    #[test]
    fn text_never_equals_number_or_blob() {
        assert_ne!(Text("1".into()), Integer(1));
        assert_ne!(Text("a".into()), Blob(b"a".to_vec()));
        assert_ne!(Null, Integer(0));
        assert_ne!(Null, Text(String::new()));
    }

    #[test]
    fn large_reals_do_not_alias_integers() {
        // 2^53 + 1 is not representable as f64; the integer must not equal the rounded real.
        let i = (1i64 << 53) + 1;
        assert_ne!(Integer(i), Real(i as f64));
    }
}
