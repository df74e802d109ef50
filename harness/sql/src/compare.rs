//! Result comparison: the Spider test-suite rule (default), BIRD's set rule, and a strict rule.
//!
//! Values compare with Python semantics ([`Value`]): `1 == 1.0`, `'1' != 1`, `NULL == NULL`.

use std::collections::{HashMap, HashSet};

use crate::{ResultSet, Value};

/// How two results are compared.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// Spider test-suite evaluator (Zhong et al., 2020); see [`test_suite_eq`].
    #[default]
    TestSuite,
    /// BIRD: `set(pred_rows) == set(gold_rows)`; order and duplicates ignored, column order
    /// significant, no permutation.
    Bird,
    /// Same rows in the same order with the same column order.
    Strict,
}

impl CompareMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareMode::TestSuite => "test_suite",
            CompareMode::Bird => "bird",
            CompareMode::Strict => "strict",
        }
    }
}

impl std::str::FromStr for CompareMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "test_suite" | "testsuite" | "ts" | "spider" => Ok(CompareMode::TestSuite),
            "bird" => Ok(CompareMode::Bird),
            "strict" => Ok(CompareMode::Strict),
            other => Err(format!(
                "unknown comparison mode {other:?} (expected test_suite, bird or strict)"
            )),
        }
    }
}

/// Compares `pred` against `gold` under `mode`. `order_matters` is only used by
/// [`CompareMode::TestSuite`] (see [`crate::normalize::order_matters`]).
pub fn results_match(
    gold: &ResultSet,
    pred: &ResultSet,
    mode: CompareMode,
    order_matters: bool,
) -> bool {
    match mode {
        CompareMode::TestSuite => test_suite_eq(&gold.rows, &pred.rows, order_matters),
        CompareMode::Bird => bird_eq(&gold.rows, &pred.rows),
        CompareMode::Strict => gold.rows == pred.rows,
    }
}

/// BIRD's rule: the sets of rows are equal.
pub fn bird_eq(gold: &[Vec<Value>], pred: &[Vec<Value>]) -> bool {
    let g: HashSet<&[Value]> = gold.iter().map(Vec::as_slice).collect();
    let p: HashSet<&[Value]> = pred.iter().map(Vec::as_slice).collect();
    g == p
}

/// The Spider test-suite rule, reproducing the reference `result_eq`:
///
/// 1. both results empty: match; different row counts: no match; different widths of the first
///    row: no match;
/// 2. quick rejection: every row is sorted by the key `str(v) + str(type(v))` (Python's text of
///    the value and of its type, so `1` and `1.0` sort differently) and the sorted rows must be
///    equal as lists when order matters, as sets otherwise;
/// 3. there must be a permutation of the prediction's columns under which the results are equal:
///    as lists when order matters, as multisets of rows otherwise.
///
/// The reference tries every permutation (pruned with 20 random rows beyond 3 columns). Here the
/// search is deterministic and exact: a gold column may only take a prediction column with the
/// same multiset of values (the same list when order matters), prediction columns that are
/// identical lists are interchangeable and assigned as one group, and every partial assignment
/// must keep the projected row multisets equal. The verdict is the same as trying all
/// permutations.
pub fn test_suite_eq(gold: &[Vec<Value>], pred: &[Vec<Value>], order_matters: bool) -> bool {
    if gold.is_empty() && pred.is_empty() {
        return true;
    }
    if gold.len() != pred.len() {
        return false;
    }
    let width = gold[0].len();
    if pred[0].len() != width {
        return false;
    }
    if gold.iter().chain(pred).any(|r| r.len() != width) {
        // SQL results are rectangular; anything else is a caller bug, never a match.
        return false;
    }
    if !quick_accept(gold, pred, order_matters) {
        return false;
    }
    permutation_exists(gold, pred, width, order_matters)
}

/// Step 2 of [`test_suite_eq`]: true unless the rows, each sorted as a multiset, differ.
fn quick_accept(gold: &[Vec<Value>], pred: &[Vec<Value>], order_matters: bool) -> bool {
    let g: Vec<Vec<&Value>> = gold.iter().map(|r| unorder_row(r)).collect();
    let p: Vec<Vec<&Value>> = pred.iter().map(|r| unorder_row(r)).collect();
    if order_matters {
        g == p
    } else {
        let gs: HashSet<&Vec<&Value>> = g.iter().collect();
        let ps: HashSet<&Vec<&Value>> = p.iter().collect();
        gs == ps
    }
}

/// A row's values sorted (stably) by `str(v) + str(type(v))`, as the reference's `unorder_row`.
fn unorder_row(row: &[Value]) -> Vec<&Value> {
    let mut keyed: Vec<(String, &Value)> = row.iter().map(|v| (python_sort_key(v), v)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, v)| v).collect()
}

/// Python's `str(v) + str(type(v))` for the value as the `sqlite3` module would return it.
pub fn python_sort_key(v: &Value) -> String {
    match v {
        Value::Null => "None<class 'NoneType'>".to_string(),
        Value::Integer(i) => format!("{i}<class 'int'>"),
        Value::Real(f) => format!("{}<class 'float'>", python_float_repr(*f)),
        Value::Text(s) => format!("{s}<class 'str'>"),
        Value::Blob(b) => format!("{}<class 'bytes'>", python_bytes_repr(b)),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for decimal exponents in
/// `-4..16` (with a trailing `.0` when integral), otherwise `d.ddde+XX`.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= n {
            format!("{}{}.0", digits, "0".repeat((point - n) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

/// Python's `repr(bytes)`.
fn python_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = String::from("b");
    s.push(quote);
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if c as char == quote => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(quote);
    s
}

/// Step 3 of [`test_suite_eq`].
fn permutation_exists(
    gold: &[Vec<Value>],
    pred: &[Vec<Value>],
    width: usize,
    order_matters: bool,
) -> bool {
    // Group prediction columns that are identical lists: swapping them changes nothing.
    let mut class_rep: Vec<usize> = Vec::new();
    let mut class_size: Vec<usize> = Vec::new();
    for j in 0..width {
        let cj = col(pred, j);
        match class_rep.iter().position(|&r| col(pred, r) == cj) {
            Some(c) => class_size[c] += 1,
            None => {
                class_rep.push(j);
                class_size.push(1);
            }
        }
    }
    // Candidate classes for every gold column.
    let pred_bags: Vec<HashMap<&Value, usize>> = if order_matters {
        Vec::new()
    } else {
        class_rep.iter().map(|&r| bag(col(pred, r))).collect()
    };
    let mut candidates: Vec<Vec<usize>> = Vec::with_capacity(width);
    for i in 0..width {
        let gi = col(gold, i);
        let cands: Vec<usize> = if order_matters {
            (0..class_rep.len())
                .filter(|&c| col(pred, class_rep[c]) == gi)
                .collect()
        } else {
            let gb = bag(gi);
            (0..class_rep.len())
                .filter(|&c| pred_bags[c] == gb)
                .collect()
        };
        if cands.is_empty() {
            return false;
        }
        candidates.push(cands);
    }
    if order_matters {
        // Every column equal as a list means the permuted rows are equal as lists; only the
        // class capacities remain to check (a gold column matches at most one class).
        let mut need = vec![0usize; class_rep.len()];
        for c in &candidates {
            need[c[0]] += 1;
        }
        return need == class_size;
    }
    // Most constrained gold columns first.
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by_key(|&i| candidates[i].len());
    let mut remaining = class_size;
    let mut assigned: Vec<(usize, usize)> = Vec::with_capacity(width);
    search(
        gold,
        pred,
        &order,
        &candidates,
        &class_rep,
        &mut remaining,
        &mut assigned,
    )
}

fn col(rows: &[Vec<Value>], j: usize) -> Vec<&Value> {
    rows.iter().map(|r| &r[j]).collect()
}

fn bag(v: Vec<&Value>) -> HashMap<&Value, usize> {
    let mut m = HashMap::new();
    for x in v {
        *m.entry(x).or_insert(0) += 1;
    }
    m
}

fn search(
    gold: &[Vec<Value>],
    pred: &[Vec<Value>],
    order: &[usize],
    candidates: &[Vec<usize>],
    class_rep: &[usize],
    remaining: &mut [usize],
    assigned: &mut Vec<(usize, usize)>,
) -> bool {
    let Some(&i) = order.get(assigned.len()) else {
        return true;
    };
    for &c in &candidates[i] {
        if remaining[c] == 0 {
            continue;
        }
        remaining[c] -= 1;
        assigned.push((i, class_rep[c]));
        if projected_bags_equal(gold, pred, assigned)
            && search(
                gold, pred, order, candidates, class_rep, remaining, assigned,
            )
        {
            return true;
        }
        assigned.pop();
        remaining[c] += 1;
    }
    false
}

/// Multiset equality of the rows projected on the assigned (gold column, prediction column) pairs.
fn projected_bags_equal(
    gold: &[Vec<Value>],
    pred: &[Vec<Value>],
    assigned: &[(usize, usize)],
) -> bool {
    let mut counts: HashMap<Vec<&Value>, isize> = HashMap::with_capacity(gold.len());
    for r in gold {
        *counts
            .entry(assigned.iter().map(|&(g, _)| &r[g]).collect())
            .or_insert(0) += 1;
    }
    for r in pred {
        let key: Vec<&Value> = assigned.iter().map(|&(_, p)| &r[p]).collect();
        match counts.get_mut(&key) {
            Some(n) if *n > 0 => *n -= 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        for (f, s) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.25e17, "1.25e+17"),
            (123456.789, "123456.789"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(python_float_repr(f), s, "{f}");
        }
    }

    #[test]
    fn bytes_repr_matches_python() {
        assert_eq!(python_bytes_repr(b"ab\x00'"), "b\"ab\\x00'\"");
        assert_eq!(python_bytes_repr(b"a\\\n"), "b'a\\\\\\n'");
    }
}
