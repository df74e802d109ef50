//! Spider's difficulty levels (easy / medium / hard / extra) computed from SQL text.
//!
//! Spider's evaluator derives the level from three counts over its own parsed form of the gold
//! query. This module computes the same counts on a [`sqlparser`] AST, including the quirks of the
//! official code (see [`Components`]), so levels agree with the official ones on Spider dev and can
//! be computed for any benchmark's SQL.

use std::fmt;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArguments, GroupByExpr, InTarget, JoinConstraint, JoinOperator,
    LimitClause, OrderByKind, Query, Select, SetExpr, Statement, UnaryOperator,
};
use sqlparser::dialect::{GenericDialect, SQLiteDialect};
use sqlparser::parser::Parser;

/// Spider's difficulty level. Ordered from easiest to hardest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Hardness {
    Easy,
    Medium,
    Hard,
    Extra,
}

impl Hardness {
    /// All levels, easiest first.
    pub const ALL: [Hardness; 4] = [
        Hardness::Easy,
        Hardness::Medium,
        Hardness::Hard,
        Hardness::Extra,
    ];

    /// The lowercase name used in reports (`easy`, ..., `extra`).
    pub fn as_str(self) -> &'static str {
        match self {
            Hardness::Easy => "easy",
            Hardness::Medium => "medium",
            Hardness::Hard => "hard",
            Hardness::Extra => "extra",
        }
    }
}

impl fmt::Display for Hardness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a level could not be computed; callers then report the hardness as unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HardnessError {
    /// The text is empty or only whitespace / `;`.
    #[error("empty SQL query")]
    Empty,
    /// Neither the SQLite nor the generic SQL dialect could parse the text.
    #[error("cannot parse SQL query {sql:?}: {message}")]
    Parse { sql: String, message: String },
    /// The text holds more than one statement.
    #[error("expected one SQL statement, found {count}: {sql:?}")]
    MultipleStatements { sql: String, count: usize },
    /// The statement is not a query (`INSERT`, `CREATE`, ...).
    #[error("not a SELECT query: {sql:?}")]
    NotAQuery { sql: String },
}

/// The three counts Spider's level is computed from, for the top-level query only.
///
/// - `component1`: one each for WHERE, GROUP BY, ORDER BY and LIMIT; the number of FROM tables
///   minus one (a FROM subquery is one table); the `OR` connectives and the `LIKE` conditions
///   among the JOIN-ON, WHERE and HAVING conditions.
/// - `component2`: subqueries used as the value of a JOIN-ON / WHERE / HAVING condition, plus one
///   for a top-level INTERSECT / UNION / EXCEPT.
/// - `others`: one each for an aggregation count above one, more than one SELECT item, more than
///   one WHERE condition, more than one GROUP BY expression. The aggregation count reproduces the
///   official code: SELECT items whose expression starts with an aggregate, *negated* WHERE
///   conditions, GROUP BY expressions with an aggregate, aggregated operands of ORDER BY items,
///   and in HAVING the negated conditions plus every AND/OR connective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Components {
    pub component1: u32,
    pub component2: u32,
    pub others: u32,
}

impl Components {
    /// Spider's level for these counts.
    pub fn level(self) -> Hardness {
        level(self.component1, self.component2, self.others)
    }
}

/// Spider's level from its three counts (the official decision table).
pub fn level(c1: u32, c2: u32, others: u32) -> Hardness {
    if c1 <= 1 && others == 0 && c2 == 0 {
        Hardness::Easy
    } else if (others <= 2 && c1 <= 1 && c2 == 0) || (c1 <= 2 && others < 2 && c2 == 0) {
        Hardness::Medium
    } else if (c2 == 0 && ((others > 2 && c1 <= 2) || (c1 == 3 && others <= 2)))
        || (c1 <= 1 && others == 0 && c2 <= 1)
    {
        Hardness::Hard
    } else {
        Hardness::Extra
    }
}

/// The hardness of a gold query as a label (`easy`, `medium`, `hard`, `extra`), or `unknown`
/// when it does not parse: the label every kidbench command gives a verdict.
pub fn label(sql: &str) -> String {
    classify(sql).map_or_else(|_| "unknown".to_string(), |h| h.to_string())
}

/// Spider's difficulty level of a SQL query.
pub fn classify(sql: &str) -> Result<Hardness, HardnessError> {
    Ok(components(sql)?.level())
}

/// The counts behind [`classify`], for reports and debugging.
pub fn components(sql: &str) -> Result<Components, HardnessError> {
    let query = parse_query(sql)?;
    Ok(count_query(&query))
}

/// Joins operators that some gold queries write with a space (`! =`, `> =`, `< =`), outside
/// string literals and quoted identifiers.
fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' => {
                // Copy the quoted run verbatim; a doubled quote stays inside the run.
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            out.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            '!' | '<' | '>' => {
                out.push(c);
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if j > i + 1 && chars.get(j) == Some(&'=') {
                    out.push('=');
                    i = j + 1;
                } else {
                    i += 1;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn parse_query(sql: &str) -> Result<Query, HardnessError> {
    let text = normalize(sql);
    let trimmed = text.trim().trim_end_matches(';').trim();
    if trimmed.is_empty() {
        return Err(HardnessError::Empty);
    }
    let statements = match Parser::parse_sql(&SQLiteDialect {}, trimmed) {
        Ok(s) => s,
        Err(first) => {
            Parser::parse_sql(&GenericDialect {}, trimmed).map_err(|_| HardnessError::Parse {
                sql: sql.to_string(),
                message: first.to_string(),
            })?
        }
    };
    let mut statements = statements.into_iter();
    match (statements.next(), statements.len()) {
        (Some(Statement::Query(q)), 0) => Ok(*q),
        (Some(_), 0) => Err(HardnessError::NotAQuery {
            sql: sql.to_string(),
        }),
        (None, _) => Err(HardnessError::Empty),
        (Some(_), rest) => Err(HardnessError::MultipleStatements {
            sql: sql.to_string(),
            count: rest + 1,
        }),
    }
}

/// Counts gathered over a list of conditions (Spider's `cond_unit` lists).
#[derive(Default)]
struct CondStats {
    conditions: u32,
    ors: u32,
    ands: u32,
    likes: u32,
    negated: u32,
    nested: u32,
}

impl CondStats {
    fn add(&mut self, expr: &Expr) {
        match expr {
            Expr::BinaryOp {
                left,
                op: op @ (BinaryOperator::And | BinaryOperator::Or),
                right,
            } => {
                self.add(left);
                if *op == BinaryOperator::Or {
                    self.ors += 1;
                } else {
                    self.ands += 1;
                }
                self.add(right);
            }
            Expr::Nested(inner)
                if matches!(
                    **inner,
                    Expr::BinaryOp {
                        op: BinaryOperator::And | BinaryOperator::Or,
                        ..
                    }
                ) =>
            {
                self.add(inner)
            }
            leaf => self.leaf(leaf),
        }
    }

    fn leaf(&mut self, expr: &Expr) {
        self.conditions += 1;
        match expr {
            Expr::Like {
                negated, pattern, ..
            }
            | Expr::ILike {
                negated, pattern, ..
            } => {
                self.likes += 1;
                self.negated += u32::from(*negated);
                self.nested += u32::from(is_subquery(pattern));
            }
            Expr::In {
                negated, target, ..
            } => {
                self.negated += u32::from(*negated);
                if matches!(target, InTarget::Subquery(_)) {
                    self.nested += 1;
                }
            }
            Expr::Between {
                negated, low, high, ..
            } => {
                self.negated += u32::from(*negated);
                self.nested += u32::from(is_subquery(low)) + u32::from(is_subquery(high));
            }
            Expr::Exists { negated, .. } => {
                self.negated += u32::from(*negated);
                self.nested += 1;
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => {
                // `NOT (cond)`: Spider's not-flag on a single condition.
                self.negated += 1;
                if let Expr::Exists { .. } | Expr::In { .. } = **expr {
                    let mut inner = CondStats::default();
                    inner.leaf(expr);
                    self.nested += inner.nested;
                    self.likes += inner.likes;
                }
            }
            Expr::BinaryOp { left, right, .. } => {
                self.nested += u32::from(is_subquery(left)) + u32::from(is_subquery(right));
            }
            _ => {}
        }
    }
}

/// Whether a condition operand is a (possibly parenthesized) subquery.
fn is_subquery(expr: &Expr) -> bool {
    match expr {
        Expr::Subquery(_) => true,
        Expr::Nested(inner) => is_subquery(inner),
        _ => false,
    }
}

/// Whether an expression is a call of one of Spider's aggregates.
fn is_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::Function(f) => {
            let name = f.name.to_string();
            let name = name.trim_matches(|c| c == '"' || c == '`');
            ["max", "min", "count", "sum", "avg"]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name))
                && !matches!(f.args, FunctionArguments::None)
        }
        Expr::Nested(inner) => is_aggregate(inner),
        _ => false,
    }
}

/// Whether an expression *starts* with an aggregate, as Spider's SELECT parser sees it
/// (`max(a) - min(a)` is aggregated, `a + max(b)` is not).
fn starts_with_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryOp { left, .. } => starts_with_aggregate(left),
        other => is_aggregate(other),
    }
}

/// Aggregated operands of a value unit (`a`, or `a op b`): 0, 1 or 2.
fn aggregated_operands(expr: &Expr) -> u32 {
    match expr {
        Expr::BinaryOp {
            left,
            op:
                BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide,
            right,
        } => u32::from(is_aggregate(left)) + u32::from(is_aggregate(right)),
        other => u32::from(is_aggregate(other)),
    }
}

/// The leftmost SELECT of a (possibly parenthesized or set-operation) query body, and whether the
/// body is a set operation.
fn main_select(body: &SetExpr) -> (Option<&Select>, bool) {
    match body {
        SetExpr::Select(s) => (Some(s), false),
        SetExpr::Query(q) => main_select(&q.body),
        SetExpr::SetOperation { left, .. } => (main_select(left).0, true),
        _ => (None, false),
    }
}

fn count_query(query: &Query) -> Components {
    let (select, set_op) = main_select(&query.body);
    // With a set operation, Spider attaches a trailing ORDER BY / LIMIT to the right-hand query.
    let (order_by, has_limit) = if set_op {
        (None, false)
    } else {
        let limit = match &query.limit_clause {
            Some(LimitClause::LimitOffset { limit, .. }) => limit.is_some(),
            Some(LimitClause::OffsetCommaLimit { .. }) => true,
            None => false,
        };
        (query.order_by.as_ref(), limit)
    };
    let mut c1 = 0u32;
    let mut c2 = u32::from(set_op);
    let mut agg = 0u32;
    let mut others = 0u32;

    if let Some(select) = select {
        // FROM: table units and JOIN-ON conditions.
        let mut from_conds = CondStats::default();
        let mut units = 0u32;
        for twj in &select.from {
            units += 1;
            for join in &twj.joins {
                units += 1;
                if let Some(JoinConstraint::On(on)) = join_constraint(&join.join_operator) {
                    from_conds.add(on);
                }
            }
        }
        c1 += units.saturating_sub(1);

        let mut where_conds = CondStats::default();
        if let Some(w) = &select.selection {
            c1 += 1;
            where_conds.add(w);
        }
        let mut having = CondStats::default();
        if let Some(h) = &select.having {
            having.add(h);
        }
        let group_by: &[Expr] = match &select.group_by {
            GroupByExpr::Expressions(exprs, _) => exprs,
            GroupByExpr::All(_) => &[],
        };
        if !group_by.is_empty() {
            c1 += 1;
        }
        let order_items = match order_by.map(|o| &o.kind) {
            Some(OrderByKind::Expressions(items)) => items.as_slice(),
            _ => &[],
        };
        if order_by.is_some() {
            c1 += 1;
        }
        if has_limit {
            c1 += 1;
        }
        for s in [&from_conds, &where_conds, &having] {
            c1 += s.ors + s.likes;
            c2 += s.nested;
        }

        agg += select
            .projection
            .iter()
            .filter(|item| match item {
                sqlparser::ast::SelectItem::UnnamedExpr(e)
                | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. }
                | sqlparser::ast::SelectItem::ExprWithAliases { expr: e, .. } => {
                    starts_with_aggregate(e)
                }
                _ => false,
            })
            .count() as u32;
        agg += where_conds.negated;
        agg += group_by.iter().filter(|e| is_aggregate(e)).count() as u32;
        agg += order_items
            .iter()
            .map(|o| aggregated_operands(&o.expr))
            .sum::<u32>();
        agg += having.negated + having.ands + having.ors;

        others += u32::from(agg > 1);
        others += u32::from(select.projection.len() > 1);
        others += u32::from(where_conds.conditions > 1);
        others += u32::from(group_by.len() > 1);
    }
    Components {
        component1: c1,
        component2: c2,
        others,
    }
}

fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c) => Some(c),
        JoinOperator::AsOf { constraint, .. } => Some(constraint),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(sql: &str) -> Hardness {
        classify(sql).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn simple_levels() {
        assert_eq!(h("SELECT count(*) FROM singer"), Hardness::Easy);
        assert_eq!(h("SELECT name FROM singer WHERE age > 20"), Hardness::Easy);
        assert_eq!(
            h("SELECT name, country, age FROM singer ORDER BY age DESC"),
            Hardness::Medium
        );
        assert_eq!(
            h("SELECT name FROM singer WHERE id NOT IN (SELECT singer_id FROM concert)"),
            Hardness::Hard
        );
        assert_eq!(
            h("SELECT a FROM t INTERSECT SELECT a FROM u"),
            Hardness::Hard
        );
        assert_eq!(
            h(
                "SELECT T1.a, count(*) FROM t AS T1 JOIN u AS T2 ON T1.id = T2.id \
               WHERE T2.x LIKE '%a%' GROUP BY T1.a ORDER BY count(*) DESC LIMIT 1"
            ),
            Hardness::Extra
        );
    }

    #[test]
    fn spaced_operators_are_normalized() {
        assert_eq!(
            normalize("a ! = 1 and b > = 2 and c < =3"),
            "a != 1 and b >= 2 and c <=3"
        );
        assert_eq!(
            normalize("x = '! =' and y = \"> =\""),
            "x = '! =' and y = \"> =\""
        );
        assert_eq!(h("SELECT a FROM t WHERE b ! = 'x'"), Hardness::Easy);
    }

    #[test]
    fn having_quirks() {
        // Connectives in HAVING count as aggregations; an aggregate condition alone does not.
        let c = components("SELECT a FROM t GROUP BY a HAVING count(*) > 1").unwrap();
        assert_eq!(c.others, 0);
        let c =
            components("SELECT a FROM t GROUP BY a HAVING count(*) > 1 AND sum(b) > 2").unwrap();
        assert_eq!(c.others, 0); // one AND: aggregation count 1
        let c = components("SELECT count(*) FROM t GROUP BY a HAVING count(*) > 1 AND sum(b) > 2")
            .unwrap();
        assert_eq!(c.others, 1);
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(classify("  ; "), Err(HardnessError::Empty));
        assert!(matches!(
            classify("SELEC x FROM"),
            Err(HardnessError::Parse { .. })
        ));
        assert!(matches!(
            classify("DELETE FROM t"),
            Err(HardnessError::NotAQuery { .. })
        ));
        assert!(matches!(
            classify("SELECT 1; SELECT 2"),
            Err(HardnessError::MultipleStatements { count: 2, .. })
        ));
    }

    #[test]
    fn serde_and_order() {
        assert_eq!(
            serde_json::to_string(&Hardness::Extra).unwrap(),
            "\"extra\""
        );
        assert!(Hardness::Easy < Hardness::Extra);
        assert_eq!(Hardness::Hard.to_string(), "hard");
    }
}
