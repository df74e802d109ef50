//! Neighbour queries: near-miss variants of a gold query, made on its sqlparser AST.
//!
//! A neighbour differs from the gold query by exactly one small edit, the kind of mistake a model
//! makes: a comparison operator, a literal, a column, an aggregate function, `DISTINCT`, the
//! direction of an `ORDER BY` key, the `LIMIT`, a dropped predicate, `AND`/`OR`, or a join.
//! A good test suite tells every non-equivalent neighbour apart from its gold query.
//!
//! Generation is deterministic: the same gold text, schema and seed give the same neighbours in
//! the same order. The walk over the AST is hand-written (sqlparser's `visitor` feature needs a
//! derive crate this workspace does not build), and every edit is made on a fresh clone.

use std::collections::HashSet;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    BinaryOperator, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, InTarget, JoinConstraint, JoinOperator, LimitClause, ObjectNamePart,
    OrderByKind, OrderBySort, Query, Select, SetExpr, Statement, TableFactor, Value as SqlValue,
};
use sqlparser::dialect::{GenericDialect, SQLiteDialect};
use sqlparser::parser::Parser;

/// Which edit produced a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighbourKind {
    /// `=`, `!=`, `<`, `<=`, `>`, `>=` replaced by another of them.
    ComparisonOp,
    /// A number changed by one, or a literal replaced by another value of its column.
    Literal,
    /// A column replaced by another column of compatible type in the same table.
    Column,
    /// `MIN`/`MAX`/`SUM`/`AVG` replaced by another aggregate.
    Aggregate,
    /// `DISTINCT` added or removed (in `SELECT` or inside an aggregate).
    Distinct,
    /// An `ORDER BY` key's direction flipped.
    OrderDirection,
    /// `LIMIT n` changed to `n ± 1` or dropped.
    Limit,
    /// A `WHERE`/`HAVING` clause or one side of an `AND`/`OR` dropped.
    DropPredicate,
    /// `AND` swapped with `OR`.
    AndOr,
    /// `IN`/`NOT IN`, `EXISTS`/`NOT EXISTS` negated.
    Negation,
    /// An inner join made a `LEFT JOIN`.
    JoinType,
}

impl NeighbourKind {
    /// Snake-case name, as in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            NeighbourKind::ComparisonOp => "comparison_op",
            NeighbourKind::Literal => "literal",
            NeighbourKind::Column => "column",
            NeighbourKind::Aggregate => "aggregate",
            NeighbourKind::Distinct => "distinct",
            NeighbourKind::OrderDirection => "order_direction",
            NeighbourKind::Limit => "limit",
            NeighbourKind::DropPredicate => "drop_predicate",
            NeighbourKind::AndOr => "and_or",
            NeighbourKind::Negation => "negation",
            NeighbourKind::JoinType => "join_type",
        }
    }
}

/// One neighbour query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The neighbour's SQL text (sqlparser's rendering of the edited AST).
    pub sql: String,
    /// The edit that produced it.
    pub kind: NeighbourKind,
}

/// A literal value seen in a database column, used to replace literals of that column.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Integer(i64),
    Real(f64),
    Text(String),
}

impl Literal {
    fn to_expr(&self) -> Expr {
        let v = match self {
            Literal::Integer(i) => SqlValue::Number(i.to_string(), false),
            Literal::Real(f) => SqlValue::Number(format!("{f:?}"), false),
            Literal::Text(s) => SqlValue::SingleQuotedString(s.clone()),
        };
        Expr::Value(v.with_empty_span())
    }
}

/// A column of a [`SchemaInfo`] table.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// Column name as declared.
    pub name: String,
    /// Whether the declared type has numeric affinity (else text-like).
    pub numeric: bool,
    /// A few distinct values of the column in the original database (for literal swaps).
    pub values: Vec<Literal>,
}

/// A table of a [`SchemaInfo`].
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Table name as declared.
    pub name: String,
    pub columns: Vec<ColumnInfo>,
}

/// What neighbour generation knows about a database: tables, column types and sample values.
#[derive(Debug, Clone, Default)]
pub struct SchemaInfo {
    pub tables: Vec<TableInfo>,
}

impl SchemaInfo {
    fn table_index(&self, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }

    fn column_index(&self, table: usize, name: &str) -> Option<usize> {
        self.tables
            .get(table)?
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Whether any table has a column of this name (a double-quoted word that names no column is
    /// a string literal in SQLite).
    fn is_column_name(&self, name: &str) -> bool {
        self.tables
            .iter()
            .any(|t| t.columns.iter().any(|c| c.name.eq_ignore_ascii_case(name)))
    }
}

/// Parses one SQL statement the way kidbench's other modules do (SQLite dialect, generic
/// fallback). Returns `None` if neither parses it to exactly one query.
pub fn parse_query(sql: &str) -> Option<Query> {
    let text = sql.trim().trim_end_matches(';');
    let stmts = Parser::parse_sql(&SQLiteDialect {}, text)
        .or_else(|_| Parser::parse_sql(&GenericDialect {}, text))
        .ok()?;
    match <[Statement; 1]>::try_from(stmts) {
        Ok([Statement::Query(q)]) => Some(*q),
        _ => None,
    }
}

/// Tables in scope of a `SELECT`: (alias or name, lower-cased; table index in the schema).
type Scope = Vec<(String, usize)>;

/// One edit, fully computed in the collecting pass and applied on a clone.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace the expression at this site.
    Expr(Expr, NeighbourKind),
    /// Set `SELECT DISTINCT` on or off.
    SelectDistinct(bool),
    DropWhere,
    DropHaving,
    /// Make the `j`-th join of the `i`-th `FROM` item a `LEFT JOIN`.
    LeftJoin(usize, usize),
    /// Flip the direction of the `k`-th `ORDER BY` key.
    FlipOrder(usize),
    /// Replace the `LIMIT` expression (`None` drops it).
    Limit(Option<Expr>),
}

impl Edit {
    fn kind(&self) -> NeighbourKind {
        match self {
            Edit::Expr(_, k) => *k,
            Edit::SelectDistinct(_) => NeighbourKind::Distinct,
            Edit::DropWhere | Edit::DropHaving => NeighbourKind::DropPredicate,
            Edit::LeftJoin(..) => NeighbourKind::JoinType,
            Edit::FlipOrder(_) => NeighbourKind::OrderDirection,
            Edit::Limit(_) => NeighbourKind::Limit,
        }
    }
}

/// A node the walker stops at.
enum Site<'a> {
    Query(&'a mut Query),
    Select(&'a mut Select),
    Expr(&'a mut Expr, &'a Scope),
}

enum Mode {
    /// Gather the edits possible at every site.
    Collect(Vec<(usize, Edit)>),
    /// Apply `edit` at site number `target`.
    Apply { target: usize, edit: Box<Edit> },
    /// Gather (column name, literal) pairs the query compares.
    Literals(Vec<(String, Literal)>),
}

struct Walker<'s> {
    schema: &'s SchemaInfo,
    rng: ChaCha8Rng,
    mode: Mode,
    next_site: usize,
}

const COMPARISONS: [BinaryOperator; 6] = [
    BinaryOperator::Eq,
    BinaryOperator::NotEq,
    BinaryOperator::Lt,
    BinaryOperator::LtEq,
    BinaryOperator::Gt,
    BinaryOperator::GtEq,
];

const AGGREGATES: [&str; 4] = ["max", "min", "sum", "avg"];

impl<'s> Walker<'s> {
    fn visit(&mut self, site: Site<'_>) {
        let idx = self.next_site;
        self.next_site += 1;
        match &mut self.mode {
            Mode::Apply { target, edit } => {
                if *target == idx {
                    let edit = edit.clone();
                    apply(site, &edit);
                }
            }
            Mode::Collect(_) => {
                let edits = self.edits_at(site);
                if let Mode::Collect(out) = &mut self.mode {
                    out.extend(edits.into_iter().map(|e| (idx, e)));
                }
            }
            Mode::Literals(_) => {
                if let Site::Expr(e, _) = site {
                    let found = self.compared_literals(e);
                    if let Mode::Literals(out) = &mut self.mode {
                        out.extend(found);
                    }
                }
            }
        }
    }

    // ---- the walk -------------------------------------------------------------------------

    fn query(&mut self, q: &mut Query, outer: &Scope) {
        self.visit(Site::Query(q));
        if let Some(with) = &mut q.with {
            for cte in &mut with.cte_tables {
                self.query(&mut cte.query, outer);
            }
        }
        let scope = match q.body.as_ref() {
            SetExpr::Select(s) => self.scope_of(s, outer),
            _ => outer.clone(),
        };
        self.set_expr(&mut q.body, outer);
        if let Some(ob) = &mut q.order_by {
            if let OrderByKind::Expressions(items) = &mut ob.kind {
                for item in items {
                    self.expr(&mut item.expr, &scope);
                }
            }
        }
    }

    fn set_expr(&mut self, s: &mut SetExpr, outer: &Scope) {
        match s {
            SetExpr::Select(sel) => self.select(sel, outer),
            SetExpr::Query(q) => self.query(q, outer),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, outer);
                self.set_expr(right, outer);
            }
            _ => {}
        }
    }

    /// The tables a `SELECT` can name: its own `FROM` items first, then the outer ones.
    fn scope_of(&self, sel: &Select, outer: &Scope) -> Scope {
        let mut scope = Scope::new();
        let mut add = |f: &TableFactor| {
            if let TableFactor::Table { name, alias, .. } = f {
                let Some(ObjectNamePart::Identifier(last)) = name.0.last() else {
                    return;
                };
                if let Some(t) = self.schema.table_index(&last.value) {
                    let key = alias
                        .as_ref()
                        .map_or(&last.value, |a| &a.name.value)
                        .to_lowercase();
                    scope.push((key, t));
                }
            }
        };
        for twj in &sel.from {
            add(&twj.relation);
            for j in &twj.joins {
                add(&j.relation);
            }
        }
        scope.extend(outer.iter().cloned());
        scope
    }

    fn select(&mut self, sel: &mut Select, outer: &Scope) {
        let scope = self.scope_of(sel, outer);
        self.visit(Site::Select(sel));
        for twj in &mut sel.from {
            self.table_factor(&mut twj.relation, outer);
            for j in &mut twj.joins {
                self.table_factor(&mut j.relation, outer);
                if let Some(JoinConstraint::On(e)) = join_constraint_mut(&mut j.join_operator) {
                    self.expr(e, &scope);
                }
            }
        }
        for item in &mut sel.projection {
            match item {
                sqlparser::ast::SelectItem::UnnamedExpr(e)
                | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => self.expr(e, &scope),
                _ => {}
            }
        }
        if let Some(e) = &mut sel.selection {
            self.expr(e, &scope);
        }
        if let GroupByExpr::Expressions(exprs, _) = &mut sel.group_by {
            for e in exprs {
                self.expr(e, &scope);
            }
        }
        if let Some(e) = &mut sel.having {
            self.expr(e, &scope);
        }
    }

    fn table_factor(&mut self, f: &mut TableFactor, outer: &Scope) {
        if let TableFactor::Derived { subquery, .. } = f {
            self.query(subquery, outer);
        }
    }

    fn expr(&mut self, e: &mut Expr, scope: &Scope) {
        self.visit(Site::Expr(e, scope));
        match e {
            Expr::BinaryOp { left, right, .. } => {
                self.expr(left, scope);
                self.expr(right, scope);
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::Cast { expr, .. } => self.expr(expr, scope),
            Expr::Between {
                expr, low, high, ..
            } => {
                self.expr(expr, scope);
                self.expr(low, scope);
                self.expr(high, scope);
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                self.expr(expr, scope);
                self.expr(pattern, scope);
            }
            Expr::In { expr, target, .. } => {
                self.expr(expr, scope);
                match target {
                    InTarget::List(items) => {
                        for i in items {
                            self.expr(i, scope);
                        }
                    }
                    InTarget::Subquery(q) => self.query(q, scope),
                    _ => {}
                }
            }
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => self.query(q, scope),
            Expr::Function(f) => {
                if let FunctionArguments::List(list) = &mut f.args {
                    for a in &mut list.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                            self.expr(x, scope);
                        }
                    }
                }
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                if let Some(o) = operand {
                    self.expr(o, scope);
                }
                for c in conditions {
                    self.expr(&mut c.condition, scope);
                    self.expr(&mut c.result, scope);
                }
                if let Some(x) = else_result {
                    self.expr(x, scope);
                }
            }
            _ => {}
        }
    }

    // ---- the edits ------------------------------------------------------------------------

    /// The column an identifier refers to, if it is one of the schema's.
    fn resolve(&self, e: &Expr, scope: &Scope) -> Option<(usize, usize)> {
        match e {
            Expr::Identifier(id) => scope
                .iter()
                .find_map(|(_, t)| self.schema.column_index(*t, &id.value).map(|c| (*t, c))),
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                let q = parts[0].value.to_lowercase();
                let t = scope
                    .iter()
                    .find(|(k, _)| *k == q)
                    .map(|(_, t)| *t)
                    .or_else(|| self.schema.table_index(&parts[0].value))?;
                self.schema.column_index(t, &parts[1].value).map(|c| (t, c))
            }
            _ => None,
        }
    }

    /// Whether `e` is a literal: a number, a string, or a double-quoted word naming no column.
    fn literal_text(&self, e: &Expr) -> Option<Literal> {
        match e {
            Expr::Value(v) => match &v.value {
                SqlValue::Number(n, _) => n
                    .parse::<i64>()
                    .map(Literal::Integer)
                    .or_else(|_| n.parse::<f64>().map(Literal::Real))
                    .ok(),
                SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                    Some(Literal::Text(s.clone()))
                }
                _ => None,
            },
            Expr::Identifier(Ident {
                value,
                quote_style: Some('"'),
                ..
            }) if !self.schema.is_column_name(value) => Some(Literal::Text(value.clone())),
            _ => None,
        }
    }

    /// The last part of a column reference (`T1.age` -> `age`), if `e` is one.
    fn column_name(&self, e: &Expr) -> Option<String> {
        match e {
            Expr::Identifier(id) if self.literal_text(e).is_none() => Some(id.value.to_lowercase()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.to_lowercase()),
            _ => None,
        }
    }

    /// `col <op> literal`, `col BETWEEN a AND b`, `col IN (a, b)`, `col LIKE 'p'` at this node.
    fn compared_literals(&self, e: &Expr) -> Vec<(String, Literal)> {
        let mut out = Vec::new();
        match e {
            Expr::BinaryOp { left, right, .. } => {
                for (c, l) in [(left, right), (right, left)] {
                    if let (Some(c), Some(l)) = (self.column_name(c), self.literal_text(l)) {
                        out.push((c, l));
                    }
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                if let Some(c) = self.column_name(expr) {
                    for x in [low, high] {
                        if let Some(l) = self.literal_text(x) {
                            out.push((c.clone(), l));
                        }
                    }
                }
            }
            Expr::In {
                expr,
                target: InTarget::List(items),
                ..
            } => {
                if let Some(c) = self.column_name(expr) {
                    out.extend(
                        items
                            .iter()
                            .filter_map(|x| self.literal_text(x))
                            .map(|l| (c.clone(), l)),
                    );
                }
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                if let (Some(c), Some(Literal::Text(p))) =
                    (self.column_name(expr), self.literal_text(pattern))
                {
                    let core: String = p.chars().filter(|ch| *ch != '%' && *ch != '_').collect();
                    out.push((c.clone(), Literal::Text(core.clone())));
                    out.push((c, Literal::Text(format!("x{core}y"))));
                }
            }
            _ => {}
        }
        out
    }

    fn edits_at(&mut self, site: Site<'_>) -> Vec<Edit> {
        let mut out = Vec::new();
        match site {
            Site::Query(q) => {
                if let Some(ob) = &q.order_by {
                    if let OrderByKind::Expressions(items) = &ob.kind {
                        out.extend((0..items.len()).map(Edit::FlipOrder));
                    }
                }
                if let Some(LimitClause::LimitOffset {
                    limit: Some(lim), ..
                }) = &q.limit_clause
                {
                    if let Some(Literal::Integer(n)) = self.literal_text(lim) {
                        out.push(Edit::Limit(Some(Literal::Integer(n + 1).to_expr())));
                        if n > 1 {
                            out.push(Edit::Limit(Some(Literal::Integer(n - 1).to_expr())));
                        }
                    }
                    out.push(Edit::Limit(None));
                }
            }
            Site::Select(sel) => {
                out.push(Edit::SelectDistinct(sel.distinct.is_none()));
                if sel.selection.is_some() {
                    out.push(Edit::DropWhere);
                }
                if sel.having.is_some() {
                    out.push(Edit::DropHaving);
                }
                for (i, twj) in sel.from.iter().enumerate() {
                    for (j, join) in twj.joins.iter().enumerate() {
                        if matches!(
                            join.join_operator,
                            JoinOperator::Join(JoinConstraint::On(_))
                                | JoinOperator::Inner(JoinConstraint::On(_))
                        ) {
                            out.push(Edit::LeftJoin(i, j));
                        }
                    }
                }
            }
            Site::Expr(e, scope) => self.expr_edits(e, scope, &mut out),
        }
        out
    }

    fn expr_edits(&mut self, e: &Expr, scope: &Scope, out: &mut Vec<Edit>) {
        let ex = |x: Expr, k| Edit::Expr(x, k);
        match e {
            Expr::BinaryOp { left, op, right } if COMPARISONS.contains(op) => {
                for other in COMPARISONS.iter().filter(|o| *o != op) {
                    out.push(ex(
                        Expr::BinaryOp {
                            left: left.clone(),
                            op: other.clone(),
                            right: right.clone(),
                        },
                        NeighbourKind::ComparisonOp,
                    ));
                }
                // Another value of the compared column in place of the literal.
                for (col_side, lit_side, lit_is_right) in
                    [(left, right, true), (right, left, false)]
                {
                    let (Some((t, c)), Some(lit)) =
                        (self.resolve(col_side, scope), self.literal_text(lit_side))
                    else {
                        continue;
                    };
                    let others: Vec<&Literal> = self.schema.tables[t].columns[c]
                        .values
                        .iter()
                        .filter(|v| !literal_eq(v, &lit))
                        .collect();
                    for v in others.choose_multiple(&mut self.rng, 2) {
                        let new_lit = Box::new(v.to_expr());
                        let (l, r) = if lit_is_right {
                            (left.clone(), new_lit)
                        } else {
                            (new_lit, right.clone())
                        };
                        out.push(ex(
                            Expr::BinaryOp {
                                left: l,
                                op: op.clone(),
                                right: r,
                            },
                            NeighbourKind::Literal,
                        ));
                    }
                }
            }
            Expr::BinaryOp { left, op, right }
                if matches!(op, BinaryOperator::And | BinaryOperator::Or) =>
            {
                let swapped = if *op == BinaryOperator::And {
                    BinaryOperator::Or
                } else {
                    BinaryOperator::And
                };
                out.push(ex(
                    Expr::BinaryOp {
                        left: left.clone(),
                        op: swapped,
                        right: right.clone(),
                    },
                    NeighbourKind::AndOr,
                ));
                out.push(ex((**left).clone(), NeighbourKind::DropPredicate));
                out.push(ex((**right).clone(), NeighbourKind::DropPredicate));
            }
            Expr::Value(_) => {
                if let Some(lit) = self.literal_text(e) {
                    match lit {
                        Literal::Integer(n) => {
                            for d in [-1, 1] {
                                out.push(ex(
                                    Literal::Integer(n.saturating_add(d)).to_expr(),
                                    NeighbourKind::Literal,
                                ));
                            }
                        }
                        Literal::Real(f) => {
                            for d in [-1.0, 1.0] {
                                out.push(ex(
                                    Literal::Real(f + d).to_expr(),
                                    NeighbourKind::Literal,
                                ));
                            }
                        }
                        Literal::Text(_) => {}
                    }
                }
            }
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                if let Some((t, c)) = self.resolve(e, scope) {
                    let table = &self.schema.tables[t];
                    let numeric = table.columns[c].numeric;
                    let alts: Vec<&str> = table
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(i, col)| *i != c && col.numeric == numeric)
                        .map(|(_, col)| col.name.as_str())
                        .collect();
                    for name in alts.choose_multiple(&mut self.rng, 2) {
                        let new = match e {
                            Expr::CompoundIdentifier(parts) => {
                                let mut parts = parts.clone();
                                if let Some(last) = parts.last_mut() {
                                    *last = Ident::new(*name);
                                }
                                Expr::CompoundIdentifier(parts)
                            }
                            _ => Expr::Identifier(Ident::new(*name)),
                        };
                        out.push(ex(new, NeighbourKind::Column));
                    }
                }
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_lowercase();
                if let FunctionArguments::List(list) = &f.args {
                    if AGGREGATES.contains(&name.as_str()) {
                        for other in AGGREGATES.iter().filter(|a| **a != name) {
                            let mut g = f.clone();
                            g.name = sqlparser::ast::ObjectName::from(vec![Ident::new(*other)]);
                            out.push(ex(Expr::Function(g), NeighbourKind::Aggregate));
                        }
                    }
                    let is_count_star = list
                        .args
                        .iter()
                        .any(|a| matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Wildcard)));
                    if (AGGREGATES.contains(&name.as_str()) || name == "count") && !is_count_star {
                        let mut g = f.clone();
                        if let FunctionArguments::List(l) = &mut g.args {
                            l.duplicate_treatment = match l.duplicate_treatment {
                                Some(DuplicateTreatment::Distinct) => None,
                                _ => Some(DuplicateTreatment::Distinct),
                            };
                        }
                        out.push(ex(Expr::Function(g), NeighbourKind::Distinct));
                    }
                }
            }
            Expr::In {
                expr,
                target,
                negated,
                global,
            } => out.push(ex(
                Expr::In {
                    expr: expr.clone(),
                    target: target.clone(),
                    negated: !negated,
                    global: *global,
                },
                NeighbourKind::Negation,
            )),
            Expr::Exists { subquery, negated } => out.push(ex(
                Expr::Exists {
                    subquery: subquery.clone(),
                    negated: !negated,
                },
                NeighbourKind::Negation,
            )),
            _ => {}
        }
    }
}

fn literal_eq(a: &Literal, b: &Literal) -> bool {
    match (a, b) {
        (Literal::Integer(x), Literal::Integer(y)) => x == y,
        (Literal::Real(x), Literal::Real(y)) => x == y,
        (Literal::Integer(x), Literal::Real(y)) | (Literal::Real(y), Literal::Integer(x)) => {
            *x as f64 == *y
        }
        (Literal::Text(x), Literal::Text(y)) => x == y,
        _ => false,
    }
}

fn join_constraint_mut(op: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c) => Some(c),
        _ => None,
    }
}

fn apply(site: Site<'_>, edit: &Edit) {
    match (site, edit) {
        (Site::Expr(e, _), Edit::Expr(new, _)) => *e = new.clone(),
        (Site::Select(sel), Edit::SelectDistinct(on)) => {
            sel.distinct = on.then_some(sqlparser::ast::Distinct::Distinct);
        }
        (Site::Select(sel), Edit::DropWhere) => sel.selection = None,
        (Site::Select(sel), Edit::DropHaving) => sel.having = None,
        (Site::Select(sel), Edit::LeftJoin(i, j)) => {
            if let Some(join) = sel.from.get_mut(*i).and_then(|t| t.joins.get_mut(*j)) {
                let c = std::mem::replace(
                    &mut join.join_operator,
                    JoinOperator::CrossJoin(JoinConstraint::None),
                );
                join.join_operator = match c {
                    JoinOperator::Join(c) | JoinOperator::Inner(c) => JoinOperator::Left(c),
                    other => other,
                };
            }
        }
        (Site::Query(q), Edit::FlipOrder(k)) => {
            if let Some(ob) = &mut q.order_by {
                if let OrderByKind::Expressions(items) = &mut ob.kind {
                    if let Some(item) = items.get_mut(*k) {
                        item.options.sort = match item.options.sort {
                            Some(OrderBySort::Desc) => Some(OrderBySort::Asc),
                            _ => Some(OrderBySort::Desc),
                        };
                    }
                }
            }
        }
        (Site::Query(q), Edit::Limit(new)) => {
            if let Some(LimitClause::LimitOffset { limit, .. }) = &mut q.limit_clause {
                *limit = new.clone();
            }
            if let Some(LimitClause::LimitOffset {
                limit: None,
                offset: None,
                limit_by,
            }) = &q.limit_clause
            {
                if limit_by.is_empty() {
                    q.limit_clause = None;
                }
            }
        }
        _ => {}
    }
}

/// FNV-1a, a stable 64-bit hash for deriving seeds from names (std's hasher is not guaranteed
/// stable across Rust versions).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Generates the neighbours of `gold` (at most `max`, sampled deterministically when there are
/// more), without duplicates and without the gold query itself. A gold query sqlparser cannot
/// parse has no neighbours.
pub fn neighbours(gold: &str, schema: &SchemaInfo, seed: u64, max: usize) -> Vec<Neighbour> {
    let Some(query) = parse_query(gold) else {
        return Vec::new();
    };
    let rng = ChaCha8Rng::seed_from_u64(seed ^ stable_hash(&[gold.as_bytes()]));
    let mut walker = Walker {
        schema,
        rng,
        mode: Mode::Collect(Vec::new()),
        next_site: 0,
    };
    walker.query(&mut query.clone(), &Scope::new());
    let Mode::Collect(mut edits) = std::mem::replace(&mut walker.mode, Mode::Collect(Vec::new()))
    else {
        return Vec::new();
    };
    if edits.len() > max.saturating_mul(2) {
        // Keep the work bounded before rendering; the final cap is applied after dedup.
        edits.shuffle(&mut walker.rng);
        edits.truncate(max.saturating_mul(2));
        edits.sort_by_key(|(i, _)| *i);
    }
    let original = query.to_string();
    let mut seen: HashSet<String> = HashSet::from([original]);
    let mut out = Vec::new();
    for (target, edit) in edits {
        let kind = edit.kind();
        let mut q = query.clone();
        walker.mode = Mode::Apply {
            target,
            edit: Box::new(edit),
        };
        walker.next_site = 0;
        walker.query(&mut q, &Scope::new());
        let sql = q.to_string();
        if seen.insert(sql.clone()) {
            out.push(Neighbour { sql, kind });
        }
    }
    if out.len() > max {
        let mut idx: Vec<usize> = (0..out.len()).collect();
        idx.shuffle(&mut walker.rng);
        idx.truncate(max);
        idx.sort_unstable();
        out = idx.into_iter().map(|i| out[i].clone()).collect();
    }
    out
}

/// The literals `gold` compares columns with, as (lower-cased column name, literal) pairs in
/// query order. Fuzzed databases draw from them so that `WHERE` clauses select rows.
pub fn gold_literals(gold: &str, schema: &SchemaInfo) -> Vec<(String, Literal)> {
    let Some(mut query) = parse_query(gold) else {
        return Vec::new();
    };
    let mut walker = Walker {
        schema,
        rng: ChaCha8Rng::seed_from_u64(0),
        mode: Mode::Literals(Vec::new()),
        next_site: 0,
    };
    walker.query(&mut query, &Scope::new());
    match walker.mode {
        Mode::Literals(v) => v,
        _ => Vec::new(),
    }
}

/// The text two queries are compared by to decide that the comparison rules make them equal by
/// construction: the text EX executes ([`kidbench_sql::eval::prepare_queries`], e.g. DISTINCT
/// removed in test-suite mode), then sqlparser's canonical rendering.
pub fn rule_key(sql: &str, opts: &kidbench_sql::eval::EvalOptions) -> String {
    let n = kidbench_sql::eval::prepare_queries(sql, "", opts).0;
    match parse_query(&n) {
        Some(q) => q.to_string(),
        None => n.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> SchemaInfo {
        let col = |name: &str, numeric: bool, values: Vec<Literal>| ColumnInfo {
            name: name.into(),
            numeric,
            values,
        };
        SchemaInfo {
            tables: vec![
                TableInfo {
                    name: "singer".into(),
                    columns: vec![
                        col("singer_id", true, vec![]),
                        col("name", false, vec![Literal::Text("Joe".into())]),
                        col(
                            "country",
                            false,
                            vec![
                                Literal::Text("France".into()),
                                Literal::Text("Japan".into()),
                            ],
                        ),
                        col("age", true, vec![Literal::Integer(30)]),
                    ],
                },
                TableInfo {
                    name: "concert".into(),
                    columns: vec![
                        col("concert_id", true, vec![]),
                        col("singer_id", true, vec![]),
                        col("year", false, vec![]),
                    ],
                },
            ],
        }
    }

    #[test]
    fn makes_the_expected_kinds_of_neighbours() {
        let gold = "SELECT DISTINCT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id \
                    WHERE T1.age > 20 AND T1.country = 'France' ORDER BY T1.age DESC LIMIT 3";
        let ns = neighbours(gold, &schema(), 7, 1000);
        let kinds: HashSet<NeighbourKind> = ns.iter().map(|n| n.kind).collect();
        for k in [
            NeighbourKind::ComparisonOp,
            NeighbourKind::Literal,
            NeighbourKind::Column,
            NeighbourKind::Distinct,
            NeighbourKind::OrderDirection,
            NeighbourKind::Limit,
            NeighbourKind::DropPredicate,
            NeighbourKind::AndOr,
            NeighbourKind::JoinType,
        ] {
            assert!(kinds.contains(&k), "no {k:?} neighbour in {ns:#?}");
        }
        let sqls: Vec<&str> = ns.iter().map(|n| n.sql.as_str()).collect();
        assert!(sqls.iter().any(|s| s.contains("T1.age >= 20")), "{sqls:#?}");
        assert!(
            sqls.iter().any(|s| s.contains("T1.country = 'Japan'")),
            "{sqls:#?}"
        );
        assert!(
            sqls.iter().any(|s| s.contains("ORDER BY T1.age ASC")),
            "{sqls:#?}"
        );
        assert!(sqls.iter().any(|s| s.contains("LIMIT 4")), "{sqls:#?}");
        assert!(sqls.iter().any(|s| s.contains("LEFT JOIN")), "{sqls:#?}");
        assert!(!sqls.contains(&parse_query(gold).unwrap().to_string().as_str()));
    }

    #[test]
    fn aggregates_and_double_quoted_literals() {
        let ns = neighbours(
            "SELECT max(age) FROM singer WHERE country = \"France\"",
            &schema(),
            1,
            1000,
        );
        let sqls: Vec<&str> = ns.iter().map(|n| n.sql.as_str()).collect();
        assert!(
            sqls.iter().any(|s| s.starts_with("SELECT min(age)")),
            "{sqls:#?}"
        );
        assert!(sqls.iter().any(|s| s.contains("'Japan'")), "{sqls:#?}");
    }

    #[test]
    fn deterministic_for_a_seed_and_capped() {
        let g = "SELECT name, country, age FROM singer WHERE age > 20 AND age < 50 ORDER BY age";
        let a = neighbours(g, &schema(), 3, 10);
        let b = neighbours(g, &schema(), 3, 10);
        assert_eq!(a, b);
        assert_eq!(a.len(), 10);
    }

    #[test]
    fn distinct_toggle_is_equal_by_rule() {
        let ts = kidbench_sql::eval::EvalOptions::default();
        let keep = kidbench_sql::eval::EvalOptions {
            keep_distinct: true,
            ..ts.clone()
        };
        assert_eq!(
            rule_key("SELECT DISTINCT name FROM singer", &ts),
            rule_key("select name  from singer", &ts)
        );
        assert_ne!(
            rule_key("SELECT DISTINCT name FROM singer", &keep),
            rule_key("select name from singer", &keep)
        );
    }
}
