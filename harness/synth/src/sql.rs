//! A small SQL AST for the templates: Spider-style rendering and Spider's hardness rule.
//!
//! Templates build a [`Query`]; its text comes from [`Query::render`] and its level from
//! [`Query::hardness`], which applies the counting rule of Spider's official `evaluation.py`
//! to the structure (so the label never drifts from the SQL a template actually emits).

use crate::data::{round2, Val};
use crate::Hardness;

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Agg {
    Count,
    Avg,
    Max,
    Min,
    Sum,
}

impl Agg {
    fn sql(self) -> &'static str {
        match self {
            Agg::Count => "count",
            Agg::Avg => "avg",
            Agg::Max => "max",
            Agg::Min => "min",
            Agg::Sum => "sum",
        }
    }
}

/// A select item, order key, or condition left-hand side.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A column, already qualified when needed (`T1.name`).
    Col(String),
    /// `count(*)`.
    CountStar,
    /// `agg([DISTINCT ]col)`.
    Agg(Agg, bool, String),
}

impl Expr {
    pub(crate) fn col(s: impl Into<String>) -> Self {
        Expr::Col(s.into())
    }
    fn has_agg(&self) -> bool {
        !matches!(self, Expr::Col(_))
    }
    fn render(&self) -> String {
        match self {
            Expr::Col(c) => c.clone(),
            Expr::CountStar => "count(*)".to_owned(),
            Expr::Agg(a, true, c) => format!("{}(DISTINCT {c})", a.sql()),
            Expr::Agg(a, false, c) => format!("{}({c})", a.sql()),
        }
    }
}

/// A literal, rendered identically in the SQL and in the question.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Int(i64),
    Real(f64),
    Text(String),
}

/// Two-decimal reals without trailing zeros: `12.5`, `3`, `0.25`.
pub(crate) fn fmt_real(x: f64) -> String {
    let s = format!("{:.2}", round2(x));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

impl Lit {
    /// SQL form: strings single-quoted.
    pub(crate) fn sql(&self) -> String {
        match self {
            Lit::Text(s) => format!("'{}'", s.replace('\'', "''")),
            other => other.text(),
        }
    }
    /// Question form (what the question text says).
    pub(crate) fn text(&self) -> String {
        match self {
            Lit::Int(i) => i.to_string(),
            Lit::Real(x) => fmt_real(*x),
            Lit::Text(s) => s.clone(),
        }
    }
}

impl From<&Val> for Lit {
    fn from(v: &Val) -> Self {
        match v {
            Val::Int(i) => Lit::Int(*i),
            Val::Real(x) => Lit::Real(*x),
            Val::Text(s) => Lit::Text(s.clone()),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
        }
    }
}

/// The right-hand side of a condition.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Cmp(Op, Lit),
    CmpSub(Op, Box<Query>),
    Between(Lit, Lit),
    /// `LIKE pattern` (negated when the flag is set).
    Like(String, bool),
    /// `IN (subquery)` (negated when the flag is set).
    In(Box<Query>, bool),
}

/// One condition of WHERE or HAVING.
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub lhs: Expr,
    pub pred: Pred,
}

impl Cond {
    pub(crate) fn cmp(lhs: Expr, op: Op, lit: Lit) -> Self {
        Cond {
            lhs,
            pred: Pred::Cmp(op, lit),
        }
    }
    fn negated(&self) -> bool {
        matches!(self.pred, Pred::Like(_, true) | Pred::In(_, true))
    }
    fn is_like(&self) -> bool {
        matches!(self.pred, Pred::Like(..))
    }
    fn nested(&self) -> usize {
        usize::from(matches!(self.pred, Pred::CmpSub(..) | Pred::In(..)))
    }
    fn render(&self) -> String {
        let l = self.lhs.render();
        match &self.pred {
            Pred::Cmp(op, v) => format!("{l} {} {}", op.sql(), v.sql()),
            Pred::CmpSub(op, q) => format!("{l} {} ({})", op.sql(), q.render()),
            Pred::Between(a, b) => format!("{l} BETWEEN {} AND {}", a.sql(), b.sql()),
            Pred::Like(p, neg) => {
                let not = if *neg { "NOT " } else { "" };
                format!("{l} {not}LIKE '{}'", p.replace('\'', "''"))
            }
            Pred::In(q, neg) => {
                let not = if *neg { "NOT " } else { "" };
                format!("{l} {not}IN ({})", q.render())
            }
        }
    }
    /// Literals of this condition (for tests and checks).
    fn literals(&self, out: &mut Vec<Lit>) {
        match &self.pred {
            Pred::Cmp(_, v) => out.push(v.clone()),
            Pred::Between(a, b) => {
                out.push(a.clone());
                out.push(b.clone());
            }
            Pred::Like(p, _) => out.push(Lit::Text(p.trim_matches('%').to_owned())),
            Pred::CmpSub(_, q) | Pred::In(q, _) => q.collect_literals(out),
        }
    }
}

/// `JOIN table AS alias ON left = right`.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    pub table: String,
    pub alias: String,
    pub left: String,
    pub right: String,
}

/// Set operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOp {
    Union,
    Intersect,
    Except,
}

/// A SELECT statement (optionally followed by one set operation).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub distinct: bool,
    pub select: Vec<Expr>,
    pub from: String,
    pub alias: Option<String>,
    pub joins: Vec<Join>,
    pub where_: Vec<Cond>,
    /// Connect WHERE conditions with OR instead of AND.
    pub where_or: bool,
    pub group_by: Vec<String>,
    /// HAVING conditions, connected with AND.
    pub having: Vec<Cond>,
    /// `(key, descending)`.
    pub order_by: Vec<(Expr, bool)>,
    pub limit: Option<u32>,
    pub set_op: Option<(SetOp, Box<Query>)>,
}

impl Query {
    /// `SELECT <items> FROM <table>`.
    pub(crate) fn select(items: Vec<Expr>, from: &str) -> Self {
        Query {
            select: items,
            from: from.to_owned(),
            ..Query::default()
        }
    }

    /// Spider-style text: upper-case keywords, lower-case aggregates, `T1`/`T2` aliases.
    pub(crate) fn render(&self) -> String {
        let mut s = String::from("SELECT ");
        if self.distinct {
            s.push_str("DISTINCT ");
        }
        let items: Vec<String> = self.select.iter().map(Expr::render).collect();
        s.push_str(&items.join(", "));
        s.push_str(" FROM ");
        s.push_str(&self.from);
        if let Some(a) = &self.alias {
            s.push_str(" AS ");
            s.push_str(a);
        }
        for j in &self.joins {
            s.push_str(&format!(
                " JOIN {} AS {} ON {} = {}",
                j.table, j.alias, j.left, j.right
            ));
        }
        if !self.where_.is_empty() {
            let conn = if self.where_or { " OR " } else { " AND " };
            let conds: Vec<String> = self.where_.iter().map(Cond::render).collect();
            s.push_str(" WHERE ");
            s.push_str(&conds.join(conn));
        }
        if !self.group_by.is_empty() {
            s.push_str(" GROUP BY ");
            s.push_str(&self.group_by.join(", "));
        }
        if !self.having.is_empty() {
            let conds: Vec<String> = self.having.iter().map(Cond::render).collect();
            s.push_str(" HAVING ");
            s.push_str(&conds.join(" AND "));
        }
        if !self.order_by.is_empty() {
            let keys: Vec<String> = self
                .order_by
                .iter()
                .map(|(e, desc)| format!("{} {}", e.render(), if *desc { "DESC" } else { "ASC" }))
                .collect();
            s.push_str(" ORDER BY ");
            s.push_str(&keys.join(", "));
        }
        if let Some(n) = self.limit {
            s.push_str(&format!(" LIMIT {n}"));
        }
        if let Some((op, q)) = &self.set_op {
            s.push_str(match op {
                SetOp::Union => " UNION ",
                SetOp::Intersect => " INTERSECT ",
                SetOp::Except => " EXCEPT ",
            });
            s.push_str(&q.render());
        }
        s
    }

    /// Spider's `count_component1`: WHERE, GROUP BY, ORDER BY, LIMIT, joins, ORs, LIKEs.
    pub(crate) fn component1(&self) -> usize {
        let mut c = usize::from(!self.where_.is_empty())
            + usize::from(!self.group_by.is_empty())
            + usize::from(!self.order_by.is_empty())
            + usize::from(self.limit.is_some())
            + self.joins.len();
        if self.where_or {
            c += self.where_.len().saturating_sub(1);
        }
        c += self
            .where_
            .iter()
            .chain(&self.having)
            .filter(|c| c.is_like())
            .count();
        c
    }

    /// Spider's `count_component2`: nested queries in WHERE/HAVING plus the set operation.
    pub(crate) fn component2(&self) -> usize {
        self.where_
            .iter()
            .chain(&self.having)
            .map(Cond::nested)
            .sum::<usize>()
            + usize::from(self.set_op.is_some())
    }

    /// Spider's `count_others`, including the official code's quirks: negated WHERE
    /// conditions count as aggregations, and so do HAVING's AND/OR connectives.
    pub(crate) fn others(&self) -> usize {
        let agg = self.select.iter().filter(|e| e.has_agg()).count()
            + self.where_.iter().filter(|c| c.negated()).count()
            + self.order_by.iter().filter(|(e, _)| e.has_agg()).count()
            + self.having.iter().filter(|c| c.negated()).count()
            + self.having.len().saturating_sub(1);
        usize::from(agg > 1)
            + usize::from(self.select.len() > 1)
            + usize::from(self.where_.len() > 1)
            + usize::from(self.group_by.len() > 1)
    }

    /// Spider's hardness level of this query.
    pub(crate) fn hardness(&self) -> Hardness {
        let (c1, c2, o) = (self.component1(), self.component2(), self.others());
        if c1 <= 1 && o == 0 && c2 == 0 {
            Hardness::Easy
        } else if (o <= 2 && c1 <= 1 && c2 == 0) || (c1 <= 2 && o < 2 && c2 == 0) {
            Hardness::Medium
        } else if (o > 2 && c1 <= 2 && c2 == 0)
            || (2 < c1 && c1 <= 3 && o <= 2 && c2 == 0)
            || (c1 <= 1 && o == 0 && c2 <= 1)
        {
            Hardness::Hard
        } else {
            Hardness::Extra
        }
    }

    /// Every literal in WHERE/HAVING conditions, including subqueries and set operands.
    pub(crate) fn collect_literals(&self, out: &mut Vec<Lit>) {
        for c in self.where_.iter().chain(&self.having) {
            c.literals(out);
        }
        if let Some((_, q)) = &self.set_op {
            q.collect_literals(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(sql: Query) -> (String, Hardness) {
        (sql.render(), sql.hardness())
    }

    #[test]
    fn spider_examples() {
        // SELECT count(*) FROM singer: easy.
        let (s, h) = q(Query::select(vec![Expr::CountStar], "singer"));
        assert_eq!(s, "SELECT count(*) FROM singer");
        assert_eq!(h, Hardness::Easy);
        // Join + WHERE: c1 = 2, others 0: medium.
        let mut j = Query::select(vec![Expr::col("T1.name")], "singer");
        j.alias = Some("T1".into());
        j.joins.push(Join {
            table: "concert".into(),
            alias: "T2".into(),
            left: "T1.singer_id".into(),
            right: "T2.singer_id".into(),
        });
        j.where_
            .push(Cond::cmp(Expr::col("T2.year"), Op::Eq, Lit::Int(2014)));
        let (s, h) = q(j.clone());
        assert_eq!(
            s,
            "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T2.year = 2014"
        );
        assert_eq!(h, Hardness::Medium);
        // + GROUP BY + ORDER BY count(*) + LIMIT: c1 = 5: extra.
        j.group_by.push("T1.singer_id".into());
        j.order_by.push((Expr::CountStar, true));
        j.limit = Some(1);
        assert_eq!(j.hardness(), Hardness::Extra);
        // Scalar subquery: c1 = 1, c2 = 1: hard.
        let mut n = Query::select(vec![Expr::col("name")], "singer");
        n.where_.push(Cond {
            lhs: Expr::col("age"),
            pred: Pred::CmpSub(
                Op::Gt,
                Box::new(Query::select(
                    vec![Expr::Agg(Agg::Avg, false, "age".into())],
                    "singer",
                )),
            ),
        });
        assert_eq!(
            n.render(),
            "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)"
        );
        assert_eq!(n.hardness(), Hardness::Hard);
        // GROUP BY + HAVING count(*): HAVING's lone condition adds nothing: easy.
        let mut g = Query::select(vec![Expr::col("city")], "singer");
        g.group_by.push("city".into());
        g.having
            .push(Cond::cmp(Expr::CountStar, Op::Ge, Lit::Int(2)));
        assert_eq!(g.hardness(), Hardness::Easy);
        // Two WHERE conditions with two select items and two aggregates: others = 3: hard.
        let mut m = Query::select(
            vec![Expr::CountStar, Expr::Agg(Agg::Avg, false, "age".into())],
            "singer",
        );
        m.where_.push(Cond::cmp(
            Expr::col("city"),
            Op::Eq,
            Lit::Text("Oslo".into()),
        ));
        m.where_
            .push(Cond::cmp(Expr::col("age"), Op::Gt, Lit::Int(30)));
        assert_eq!(m.hardness(), Hardness::Hard);
    }

    #[test]
    fn reals_render_compactly() {
        assert_eq!(fmt_real(12.5), "12.5");
        assert_eq!(fmt_real(3.0), "3");
        assert_eq!(fmt_real(0.25), "0.25");
        assert_eq!(fmt_real(1499.999), "1500");
    }
}
