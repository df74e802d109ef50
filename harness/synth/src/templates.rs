//! Question/SQL templates. Each template picks tables, columns and literals from the generated
//! rows (so WHERE clauses select rows and every literal is in the question), builds a
//! [`Query`], and words the question with one of several paraphrases.
//!
//! Every template has a declared Spider level; `Query::hardness` recomputes it from the
//! structure and the tests check that the two agree for every generated pair.

use std::cmp::Ordering;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::{Db, Rel, Val};
use crate::sql::{Agg, Cond, Expr, Join, Lit, Op, Pred, Query, SetOp};
use crate::Hardness;

/// A generated (question, query) candidate, not yet validated against the database.
pub(crate) struct Cand {
    pub question: String,
    pub query: Query,
}

type Build = fn(&Db, &mut ChaCha8Rng) -> Option<Cand>;

/// One template: name (the `template` field of a pair), family, declared level, builder.
pub(crate) struct Template {
    pub name: &'static str,
    pub family: &'static str,
    pub level: Hardness,
    pub build: Build,
}

/// Template families (every one is used by some template).
pub const FAMILIES: &[&str] = &[
    "select",
    "where",
    "aggregate",
    "distinct",
    "order",
    "group",
    "having",
    "like",
    "between",
    "join",
    "nested",
    "set_op",
];

macro_rules! t {
    ($name:ident, $family:literal, $level:ident) => {
        Template {
            name: stringify!($name),
            family: $family,
            level: Hardness::$level,
            build: $name,
        }
    };
}

/// Every template, grouped by declared level.
pub(crate) const TEMPLATES: &[Template] = &[
    // easy
    t!(select_label, "select", Easy),
    t!(count_all, "aggregate", Easy),
    t!(where_cat, "where", Easy),
    t!(where_ne, "where", Easy),
    t!(where_num, "where", Easy),
    t!(where_label, "where", Easy),
    t!(count_where, "aggregate", Easy),
    t!(agg_col, "aggregate", Easy),
    t!(agg_where, "aggregate", Easy),
    t!(distinct_cat, "distinct", Easy),
    t!(distinct_where, "distinct", Easy),
    t!(count_distinct, "distinct", Easy),
    t!(order_label, "order", Easy),
    t!(between, "between", Easy),
    t!(having_cat, "having", Easy),
    // medium
    t!(select_two, "select", Medium),
    t!(lookup_two, "where", Medium),
    t!(where_and, "where", Medium),
    t!(where_or, "where", Medium),
    t!(agg_two, "aggregate", Medium),
    t!(group_count, "group", Medium),
    t!(group_agg, "group", Medium),
    t!(superlative, "order", Medium),
    t!(top_k, "order", Medium),
    t!(order_where, "order", Medium),
    t!(like_contains, "like", Medium),
    t!(like_prefix, "like", Medium),
    t!(join_where, "join", Medium),
    t!(join_pair, "join", Medium),
    t!(join_count, "join", Medium),
    t!(group_fk_count, "group", Medium),
    t!(having_fk, "having", Medium),
    // hard
    t!(above_avg, "nested", Hard),
    t!(not_in, "nested", Hard),
    t!(in_sub, "nested", Hard),
    t!(intersect_cat, "set_op", Hard),
    t!(union_label, "set_op", Hard),
    t!(except_cat, "set_op", Hard),
    t!(group_top, "group", Hard),
    t!(join3, "join", Hard),
    t!(join_order, "join", Hard),
    t!(multi_agg_where, "aggregate", Hard),
    // extra
    t!(fk_top, "group", Extra),
    t!(fk_avg_top, "group", Extra),
    t!(group_where_top, "group", Extra),
    t!(above_avg_and, "nested", Extra),
    t!(not_in_where, "nested", Extra),
    t!(join_above_avg, "nested", Extra),
    t!(intersect_join, "set_op", Extra),
    t!(order_multi, "order", Extra),
];

// ---------------------------------------------------------------- vocabulary helpers

/// English plural of the last word of a phrase.
pub(crate) fn plural(s: &str) -> String {
    let (head, last) = match s.rsplit_once(' ') {
        Some((h, l)) => (format!("{h} "), l),
        None => (String::new(), s),
    };
    let p = if let Some(stem) = last.strip_suffix('y') {
        if stem.ends_with(['a', 'e', 'i', 'o', 'u']) {
            format!("{last}s")
        } else {
            format!("{stem}ies")
        }
    } else if last.ends_with('s')
        || last.ends_with('x')
        || last.ends_with("ch")
        || last.ends_with("sh")
    {
        format!("{last}es")
    } else {
        format!("{last}s")
    };
    format!("{head}{p}")
}

fn article(s: &str) -> String {
    let an = s.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']);
    format!("{} {s}", if an { "an" } else { "a" })
}

/// Named substitutions for a paraphrase pattern (`{ts}` is replaced by `vars["ts"]`).
#[derive(Default)]
struct Vars(Vec<(&'static str, String)>);

impl Vars {
    fn set(&mut self, k: &'static str, v: impl Into<String>) -> &mut Self {
        self.0.push((k, v.into()));
        self
    }
    /// `t`, `ts`, `a_t` for table `t`, with an optional key prefix (`c`/`p`).
    fn table(&mut self, db: &Db, t: usize, prefix: &'static str) -> &mut Self {
        let spec = db.table(t);
        let (k1, k2, k3) = match prefix {
            "c" => ("ct", "cts", "a_ct"),
            "p" => ("p", "ps", "a_p"),
            "x" => ("xt", "xts", "a_xt"),
            _ => ("t", "ts", "a_t"),
        };
        self.set(k1, spec.singular.clone());
        self.set(k2, spec.plural.clone());
        self.set(k3, article(&spec.singular));
        self
    }
    /// Paraphrase: pick a pattern, substitute, capitalize.
    fn say(&self, rng: &mut ChaCha8Rng, pats: &[&str]) -> String {
        let mut s = pats[rng.random_range(0..pats.len())].to_owned();
        for (k, v) in &self.0 {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        let mut c = s.chars();
        match c.next() {
            Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
            None => s,
        }
    }
}

fn pick<T: Clone>(rng: &mut ChaCha8Rng, xs: &[T]) -> Option<T> {
    if xs.is_empty() {
        None
    } else {
        Some(xs[rng.random_range(0..xs.len())].clone())
    }
}

fn pick_table(db: &Db, rng: &mut ChaCha8Rng, ok: impl Fn(usize) -> bool) -> Option<usize> {
    let ts: Vec<usize> = (0..db.spec.tables.len()).filter(|t| ok(*t)).collect();
    pick(rng, &ts)
}

fn pick_rel(db: &Db, rng: &mut ChaCha8Rng, ok: impl Fn(&Rel) -> bool) -> Option<Rel> {
    let rs: Vec<Rel> = db.rels().into_iter().filter(|r| ok(r)).collect();
    pick(rng, &rs)
}

fn cname(db: &Db, t: usize, c: usize) -> &str {
    &db.table(t).columns[c].name
}

fn nat(db: &Db, t: usize, c: usize) -> &str {
    &db.table(t).columns[c].natural
}

fn tname(db: &Db, t: usize) -> &str {
    &db.table(t).name
}

fn pk(db: &Db, t: usize) -> &str {
    cname(db, t, 0)
}

/// Qualified column (`T1.name`) or bare (`name`) when `alias` is empty.
fn qc(alias: &str, col: &str) -> String {
    if alias.is_empty() {
        col.to_owned()
    } else {
        format!("{alias}.{col}")
    }
}

fn cmp_val(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Real(x), Val::Real(y)) => x.total_cmp(y),
        (Val::Text(x), Val::Text(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

fn any_val(db: &Db, rng: &mut ChaCha8Rng, t: usize, c: usize) -> Lit {
    let rows = &db.rows[t];
    Lit::from(&rows[rng.random_range(0..rows.len())][c])
}

/// A value between the `lo` and `hi` quantiles of the column (so both sides are non-empty).
fn quantile_val(db: &Db, rng: &mut ChaCha8Rng, t: usize, c: usize, lo: f64, hi: f64) -> Lit {
    let mut vals: Vec<&Val> = db.rows[t].iter().map(|r| &r[c]).collect();
    vals.sort_by(|a, b| cmp_val(a, b));
    let n = vals.len();
    let a = ((n as f64) * lo) as usize;
    let b = (((n as f64) * hi) as usize).clamp(a, n.saturating_sub(1));
    let i = rng.random_range(a.min(b)..=b);
    Lit::from(vals[i])
}

fn is_date(db: &Db, t: usize, c: usize) -> bool {
    matches!(db.table(t).columns[c].kind, crate::spec::Kind::Date(..))
}

fn op_words(op: Op, date: bool) -> &'static [&'static str] {
    match (op, date) {
        (Op::Gt, false) => &["greater than", "more than", "above", "over", "higher than"],
        (Op::Lt, false) => &["less than", "below", "under", "lower than", "smaller than"],
        (Op::Ge, false) => &["at least", "no less than"],
        (Op::Le, false) => &["at most", "no more than"],
        (Op::Gt, true) => &["after", "later than"],
        (Op::Lt, true) => &["before", "earlier than"],
        (Op::Ge, true) => &["on or after"],
        (Op::Le, true) => &["on or before"],
        (Op::Eq, _) => &["equal to"],
        (Op::Ne, _) => &["different from"],
    }
}

/// A filter condition with its two wordings: `with` ("genre Fantasy", "price above 20") and
/// `whose` ("whose genre is Fantasy", "whose price is above 20").
struct Filter {
    cond: Cond,
    with: String,
    whose: String,
}

fn cat_filter(db: &Db, rng: &mut ChaCha8Rng, t: usize, alias: &str) -> Option<Filter> {
    let c = pick(rng, &db.cats(t))?;
    let v = any_val(db, rng, t, c);
    let n = nat(db, t, c);
    Some(Filter {
        with: format!("{n} {}", v.text()),
        whose: format!("whose {n} is {}", v.text()),
        cond: Cond::cmp(Expr::col(qc(alias, cname(db, t, c))), Op::Eq, v),
    })
}

fn num_filter_on(db: &Db, rng: &mut ChaCha8Rng, t: usize, c: usize, alias: &str) -> Filter {
    let op = pick(rng, &[Op::Gt, Op::Gt, Op::Lt, Op::Lt, Op::Ge, Op::Le]).unwrap_or(Op::Gt);
    let v = quantile_val(db, rng, t, c, 0.2, 0.8);
    let date = is_date(db, t, c);
    let w = pick(rng, op_words(op, date)).unwrap_or("above");
    let n = nat(db, t, c);
    Filter {
        with: format!("{n} {w} {}", v.text()),
        whose: format!("whose {n} is {w} {}", v.text()),
        cond: Cond::cmp(Expr::col(qc(alias, cname(db, t, c))), op, v),
    }
}

/// A comparison on a measure or date column.
fn num_filter(db: &Db, rng: &mut ChaCha8Rng, t: usize, alias: &str) -> Option<Filter> {
    let mut cols = db.measures(t);
    cols.extend(db.dates(t));
    let c = pick(rng, &cols)?;
    Some(num_filter_on(db, rng, t, c, alias))
}

fn any_filter(db: &Db, rng: &mut ChaCha8Rng, t: usize, alias: &str) -> Option<Filter> {
    if rng.random_bool(0.5) {
        cat_filter(db, rng, t, alias).or_else(|| num_filter(db, rng, t, alias))
    } else {
        num_filter(db, rng, t, alias).or_else(|| cat_filter(db, rng, t, alias))
    }
}

fn agg_words(a: Agg) -> &'static [&'static str] {
    match a {
        Agg::Avg => &["average", "mean"],
        Agg::Max => &["maximum", "highest", "largest"],
        Agg::Min => &["minimum", "lowest", "smallest"],
        Agg::Sum => &["total", "combined"],
        Agg::Count => &["number of"],
    }
}

/// A random aggregate for measure `m` of table `t`; no `sum` of years, ages, ratings and
/// other non-additive quantities.
fn pick_agg(db: &Db, rng: &mut ChaCha8Rng, t: usize, m: usize) -> Agg {
    const NON_ADDITIVE: &[&str] = &[
        "year",
        "age",
        "rating",
        "score",
        "grade",
        "floor",
        "stars",
        "rate",
        "gpa",
        "position",
        "index",
        "level",
        "elevation",
        "voltage",
    ];
    let name = cname(db, t, m);
    if NON_ADDITIVE.iter().any(|w| name.contains(w)) {
        pick(rng, &[Agg::Avg, Agg::Max, Agg::Min]).unwrap_or(Agg::Avg)
    } else {
        pick(rng, &[Agg::Avg, Agg::Max, Agg::Min, Agg::Sum]).unwrap_or(Agg::Avg)
    }
}

fn agg(a: Agg, col: String) -> Expr {
    Expr::Agg(a, false, col)
}

/// Label-bearing table with at least one column matching the extra requirement.
fn labeled(db: &Db, t: usize) -> bool {
    db.label(t).is_some()
}

/// `FROM child AS T1 JOIN parent AS T2 ON T1.fk = T2.pk`.
fn join_child_parent(db: &Db, r: &Rel, select: Vec<Expr>) -> Query {
    let mut q = Query::select(select, tname(db, r.child));
    q.alias = Some("T1".into());
    q.joins.push(Join {
        table: tname(db, r.parent).to_owned(),
        alias: "T2".into(),
        left: qc("T1", cname(db, r.child, r.fk_col)),
        right: qc("T2", pk(db, r.parent)),
    });
    q
}

/// Vars for a relation: child `ct/cts/a_ct`, parent `p/ps/a_p`, `role`, `roles`, parent
/// label `pl/pls` (when the parent has one).
fn rel_vars(db: &Db, r: &Rel) -> Vars {
    let mut v = Vars::default();
    v.table(db, r.child, "c").table(db, r.parent, "p");
    let role = nat(db, r.child, r.fk_col).to_owned();
    let roles = if role == db.table(r.parent).singular {
        db.table(r.parent).plural.clone()
    } else {
        plural(&role)
    };
    v.set("role", role).set("roles", roles);
    if let Some(l) = db.label(r.parent) {
        v.set("pl", nat(db, r.parent, l))
            .set("pls", plural(nat(db, r.parent, l)));
    }
    if let Some(l) = db.label(r.child) {
        v.set("cl", nat(db, r.child, l))
            .set("cls", plural(nat(db, r.child, l)));
    }
    v
}

/// A filter on the parent of a relation (its label or one of its categories), worded from the
/// child's point of view: "whose author is X" / "whose author's nationality is Y".
fn parent_filter(db: &Db, rng: &mut ChaCha8Rng, r: &Rel, alias: &str) -> Option<(Cond, String)> {
    let role = nat(db, r.child, r.fk_col);
    let cats = db.cats(r.parent);
    let use_label = cats.is_empty() || rng.random_bool(0.6);
    let c = if use_label {
        db.label(r.parent)?
    } else {
        pick(rng, &cats)?
    };
    // Take the value from a referenced parent row so the join selects rows.
    let child_rows = &db.rows[r.child];
    let fk = match &child_rows[rng.random_range(0..child_rows.len())][r.fk_col] {
        Val::Int(i) => *i,
        _ => return None,
    };
    let prow = db.rows[r.parent].get(usize::try_from(fk - 1).ok()?)?;
    let v = Lit::from(&prow[c]);
    let text = if use_label {
        format!("whose {role} is {}", v.text())
    } else {
        format!("whose {role}'s {} is {}", nat(db, r.parent, c), v.text())
    };
    Some((
        Cond::cmp(Expr::col(qc(alias, cname(db, r.parent, c))), Op::Eq, v),
        text,
    ))
}

// ---------------------------------------------------------------- easy

fn select_label(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t))?;
    let l = db.label(t)?;
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("ls", plural(nat(db, t, l)));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {ls} of all {ts}.",
                "What are the {ls} of the {ts}?",
                "Show the {l} of every {t}.",
                "Give me the {ls} of all {ts}.",
                "What is the {l} of each {t}?",
                "Return the {ls} of the {ts}.",
            ],
        ),
        query: Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t)),
    })
}

fn count_all(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |_| true)?;
    let mut v = Vars::default();
    v.table(db, t, "");
    Some(Cand {
        question: v.say(
            rng,
            &[
                "How many {ts} are there?",
                "Count the number of {ts}.",
                "What is the total number of {ts}?",
                "How many {ts} do we have?",
                "Find the number of {ts} in the database.",
            ],
        ),
        query: Query::select(vec![Expr::CountStar], tname(db, t)),
    })
}

fn where_cat(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t) && !db.cats(t).is_empty())?;
    let l = db.label(t)?;
    let f = cat_filter(db, rng, t, "")?;
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(f.cond);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("ls", plural(nat(db, t, l)))
        .set("with", f.with)
        .set("whose", f.whose);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} have {with}? List their {ls}.",
                "List the {ls} of {ts} {whose}.",
                "What are the {ls} of the {ts} with {with}?",
                "Give the {l} of every {t} {whose}.",
                "Show the {ls} of all {ts} {whose}.",
            ],
        ),
        query: q,
    })
}

fn where_ne(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t) && !db.cats(t).is_empty())?;
    let l = db.label(t)?;
    let c = pick(rng, &db.cats(t))?;
    let val = any_val(db, rng, t, c);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("ls", plural(nat(db, t, l)))
        .set("c", nat(db, t, c))
        .set("v", val.text());
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_
        .push(Cond::cmp(Expr::col(cname(db, t, c)), Op::Ne, val));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {ls} of {ts} whose {c} is not {v}.",
                "Which {ts} do not have {c} {v}? Give their {ls}.",
                "What are the {ls} of all {ts} with a {c} other than {v}?",
                "Show the {l} of every {t} whose {c} is different from {v}.",
            ],
        ),
        query: q,
    })
}

fn where_num(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        labeled(db, t) && !(db.measures(t).is_empty() && db.dates(t).is_empty())
    })?;
    let l = db.label(t)?;
    let f = num_filter(db, rng, t, "")?;
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(f.cond);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("ls", plural(nat(db, t, l)))
        .set("with", f.with)
        .set("whose", f.whose);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} have {with}? List their {ls}.",
                "List the {ls} of {ts} {whose}.",
                "What are the {ls} of the {ts} with {with}?",
                "Find the {l} of each {t} {whose}.",
            ],
        ),
        query: q,
    })
}

fn where_label(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t))?;
    let l = db.label(t)?;
    let mut cols = db.cats(t);
    cols.extend(db.measures(t));
    cols.extend(db.dates(t));
    let c = pick(rng, &cols)?;
    let val = any_val(db, rng, t, l);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("c", nat(db, t, c))
        .set("v", val.text());
    let mut q = Query::select(vec![Expr::col(cname(db, t, c))], tname(db, t));
    q.where_
        .push(Cond::cmp(Expr::col(cname(db, t, l)), Op::Eq, val));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What is the {c} of the {t} {v}?",
                "Find the {c} of the {t} whose {l} is {v}.",
                "Show the {c} of {t} {v}.",
                "What {c} does the {t} named {v} have?",
                "Give me the {c} of the {t} with {l} {v}.",
            ],
        ),
        query: q,
    })
}

fn count_where(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |_| true)?;
    let f = any_filter(db, rng, t, "")?;
    let mut q = Query::select(vec![Expr::CountStar], tname(db, t));
    q.where_.push(f.cond);
    let mut v = Vars::default();
    v.table(db, t, "").set("with", f.with).set("whose", f.whose);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "How many {ts} have {with}?",
                "Count the {ts} {whose}.",
                "What is the number of {ts} {whose}?",
                "How many {ts} are there with {with}?",
            ],
        ),
        query: q,
    })
}

fn agg_col(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| !db.measures(t).is_empty())?;
    let m = pick(rng, &db.measures(t))?;
    let a = pick_agg(db, rng, t, m);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("m", nat(db, t, m))
        .set("agg", pick(rng, agg_words(a)).unwrap_or("average"));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What is the {agg} {m} of all {ts}?",
                "Find the {agg} {m} among the {ts}.",
                "Compute the {agg} {m} over every {t}.",
                "What is the {agg} {m} of the {ts}?",
            ],
        ),
        query: Query::select(vec![agg(a, cname(db, t, m).to_owned())], tname(db, t)),
    })
}

fn agg_where(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        !db.measures(t).is_empty() && !db.cats(t).is_empty()
    })?;
    let m = pick(rng, &db.measures(t))?;
    let f = cat_filter(db, rng, t, "")?;
    let a = pick_agg(db, rng, t, m);
    let mut q = Query::select(vec![agg(a, cname(db, t, m).to_owned())], tname(db, t));
    q.where_.push(f.cond);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("m", nat(db, t, m))
        .set("agg", pick(rng, agg_words(a)).unwrap_or("average"))
        .set("with", f.with)
        .set("whose", f.whose);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What is the {agg} {m} of {ts} with {with}?",
                "Find the {agg} {m} of the {ts} {whose}.",
                "For {ts} {whose}, what is the {agg} {m}?",
            ],
        ),
        query: q,
    })
}

fn distinct_cat(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| !db.cats(t).is_empty())?;
    let c = pick(rng, &db.cats(t))?;
    let mut q = Query::select(vec![Expr::col(cname(db, t, c))], tname(db, t));
    q.distinct = true;
    let mut v = Vars::default();
    v.table(db, t, "").set("c", nat(db, t, c));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What are the distinct {c} values of the {ts}?",
                "List the different {c} values among {ts}.",
                "Which {c} values appear among the {ts}? List each once.",
                "Show all unique {c} values of {ts}.",
            ],
        ),
        query: q,
    })
}

fn distinct_where(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let c = pick(rng, &db.cats(t))?;
    let f = num_filter(db, rng, t, "")?;
    let mut q = Query::select(vec![Expr::col(cname(db, t, c))], tname(db, t));
    q.distinct = true;
    q.where_.push(f.cond);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("c", nat(db, t, c))
        .set("with", f.with)
        .set("whose", f.whose);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What are the distinct {c} values of {ts} {whose}?",
                "List the different {c} values of {ts} with {with}.",
                "Which {c} values occur among {ts} {whose}? List each once.",
            ],
        ),
        query: q,
    })
}

fn count_distinct(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| !db.cats(t).is_empty())?;
    let c = pick(rng, &db.cats(t))?;
    let mut v = Vars::default();
    v.table(db, t, "").set("c", nat(db, t, c));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "How many different {c} values do the {ts} have?",
                "Count the distinct {c} values among {ts}.",
                "How many distinct {c} values are there for {ts}?",
            ],
        ),
        query: Query::select(
            vec![Expr::Agg(Agg::Count, true, cname(db, t, c).to_owned())],
            tname(db, t),
        ),
    })
}

fn order_label(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t) && !db.measures(t).is_empty())?;
    let l = db.label(t)?;
    let m = pick(rng, &db.measures(t))?;
    let desc = rng.random_bool(0.5);
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.order_by.push((Expr::col(cname(db, t, m)), desc));
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("ls", plural(nat(db, t, l)))
        .set("m", nat(db, t, m))
        .set("dir", if desc { "descending" } else { "ascending" })
        .set(
            "fromto",
            if desc {
                "from highest to lowest"
            } else {
                "from lowest to highest"
            },
        );
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {ls} of all {ts} ordered by {m} in {dir} order.",
                "Show the {ls} of the {ts} sorted by {m} {fromto}.",
                "Sort the {ts} by {m} in {dir} order and list their {ls}.",
            ],
        ),
        query: q,
    })
}

fn between(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t) && !db.measures(t).is_empty())?;
    let l = db.label(t)?;
    let m = pick(rng, &db.measures(t))?;
    let a = quantile_val(db, rng, t, m, 0.1, 0.45);
    let b = quantile_val(db, rng, t, m, 0.55, 0.9);
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(Cond {
        lhs: Expr::col(cname(db, t, m)),
        pred: Pred::Between(a.clone(), b.clone()),
    });
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("ls", plural(nat(db, t, l)))
        .set("m", nat(db, t, m))
        .set("a", a.text())
        .set("b", b.text());
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} have a {m} between {a} and {b}? List their {ls}.",
                "List the {ls} of {ts} whose {m} is between {a} and {b}.",
                "Find the {ls} of the {ts} with {m} from {a} to {b}.",
            ],
        ),
        query: q,
    })
}

fn having_cat(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| !db.cats(t).is_empty())?;
    let c = pick(rng, &db.cats(t))?;
    let k = rng.random_range(2..=12);
    let col = cname(db, t, c).to_owned();
    let mut q = Query::select(vec![Expr::col(&col)], tname(db, t));
    q.group_by.push(col);
    q.having
        .push(Cond::cmp(Expr::CountStar, Op::Ge, Lit::Int(k)));
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("c", nat(db, t, c))
        .set("k", k.to_string());
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {c} values are shared by at least {k} {ts}?",
                "List the {c} values that have {k} or more {ts}.",
                "Find every {c} with at least {k} {ts}.",
            ],
        ),
        query: q,
    })
}

// ---------------------------------------------------------------- medium

fn select_two(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t))?;
    let l = db.label(t)?;
    let mut cols = db.cats(t);
    cols.extend(db.measures(t));
    cols.extend(db.dates(t));
    let c = pick(rng, &cols)?;
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("c", nat(db, t, c));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {l} and {c} of every {t}.",
                "What are the {l} and the {c} of each {t}?",
                "Show each {t}'s {l} together with its {c}.",
                "Give the {l} and {c} of all {ts}.",
            ],
        ),
        query: Query::select(
            vec![Expr::col(cname(db, t, l)), Expr::col(cname(db, t, c))],
            tname(db, t),
        ),
    })
}

fn lookup_two(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t))?;
    let l = db.label(t)?;
    let mut cols = db.cats(t);
    cols.extend(db.measures(t));
    cols.extend(db.dates(t));
    if cols.len() < 2 {
        return None;
    }
    let i = rng.random_range(0..cols.len());
    let mut j = rng.random_range(0..cols.len() - 1);
    if j >= i {
        j += 1;
    }
    let (a, b) = (cols[i], cols[j]);
    let val = any_val(db, rng, t, l);
    let mut q = Query::select(
        vec![Expr::col(cname(db, t, a)), Expr::col(cname(db, t, b))],
        tname(db, t),
    );
    q.where_
        .push(Cond::cmp(Expr::col(cname(db, t, l)), Op::Eq, val.clone()));
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("a", nat(db, t, a))
        .set("b", nat(db, t, b))
        .set("v", val.text());
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What are the {a} and {b} of the {t} {v}?",
                "Show the {a} and the {b} of the {t} whose {l} is {v}.",
                "Find the {a} and {b} of {t} {v}.",
            ],
        ),
        query: q,
    })
}

fn where_and(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        labeled(db, t) && !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let l = db.label(t)?;
    let f1 = cat_filter(db, rng, t, "")?;
    let f2 = num_filter(db, rng, t, "")?;
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(f1.cond);
    q.where_.push(f2.cond);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("ls", plural(nat(db, t, l)))
        .set("w1", f1.with)
        .set("w2", f2.with);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} have {w1} and {w2}? List their {ls}.",
                "List the {ls} of {ts} with {w1} and {w2}.",
                "Find the {ls} of all {ts} that have both {w1} and {w2}.",
            ],
        ),
        query: q,
    })
}

fn where_or(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t) && !db.cats(t).is_empty())?;
    let l = db.label(t)?;
    let c = pick(rng, &db.cats(t))?;
    let vals: Vec<Lit> = db.distinct(t, c).into_iter().map(Lit::from).collect();
    if vals.len() < 2 {
        return None;
    }
    let i = rng.random_range(0..vals.len());
    let mut j = rng.random_range(0..vals.len() - 1);
    if j >= i {
        j += 1;
    }
    let (a, b) = (vals[i].clone(), vals[j].clone());
    let col = cname(db, t, c);
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(Cond::cmp(Expr::col(col), Op::Eq, a.clone()));
    q.where_.push(Cond::cmp(Expr::col(col), Op::Eq, b.clone()));
    q.where_or = true;
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("ls", plural(nat(db, t, l)))
        .set("c", nat(db, t, c))
        .set("a", a.text())
        .set("b", b.text());
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {ls} of {ts} whose {c} is {a} or {b}.",
                "Which {ts} have {c} {a} or {c} {b}? Give their {ls}.",
                "Find the {ls} of all {ts} with {c} either {a} or {b}.",
            ],
        ),
        query: q,
    })
}

fn agg_two(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| !db.measures(t).is_empty())?;
    let m = pick(rng, &db.measures(t))?;
    let pairs = [
        (Agg::Max, Agg::Min, "maximum", "minimum"),
        (Agg::Avg, Agg::Max, "average", "maximum"),
        (Agg::Min, Agg::Avg, "minimum", "average"),
        (Agg::Avg, Agg::Sum, "average", "total"),
    ];
    let (a, b, wa, wb) = pick(rng, &pairs)?;
    let col = cname(db, t, m).to_owned();
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("m", nat(db, t, m))
        .set("a", wa)
        .set("b", wb);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What are the {a} and {b} {m} of all {ts}?",
                "Find the {a} and the {b} {m} of the {ts}.",
                "Show the {a} {m} and the {b} {m} across all {ts}.",
            ],
        ),
        query: Query::select(vec![agg(a, col.clone()), agg(b, col)], tname(db, t)),
    })
}

fn group_count(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| !db.cats(t).is_empty())?;
    let c = pick(rng, &db.cats(t))?;
    let col = cname(db, t, c).to_owned();
    let mut q = Query::select(vec![Expr::col(&col), Expr::CountStar], tname(db, t));
    q.group_by.push(col);
    let mut v = Vars::default();
    v.table(db, t, "").set("c", nat(db, t, c));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "How many {ts} are there for each {c}?",
                "Count the {ts} per {c}.",
                "For each {c}, show the number of {ts}.",
                "List every {c} and how many {ts} have it.",
            ],
        ),
        query: q,
    })
}

fn group_agg(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let c = pick(rng, &db.cats(t))?;
    let m = pick(rng, &db.measures(t))?;
    let a = pick_agg(db, rng, t, m);
    let col = cname(db, t, c).to_owned();
    let mut q = Query::select(
        vec![Expr::col(&col), agg(a, cname(db, t, m).to_owned())],
        tname(db, t),
    );
    q.group_by.push(col);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("c", nat(db, t, c))
        .set("m", nat(db, t, m))
        .set("agg", pick(rng, agg_words(a)).unwrap_or("average"));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What is the {agg} {m} of {ts} for each {c}?",
                "For each {c}, find the {agg} {m} of the {ts}.",
                "Show each {c} with the {agg} {m} of its {ts}.",
            ],
        ),
        query: q,
    })
}

fn superlative(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t) && !db.measures(t).is_empty())?;
    let l = db.label(t)?;
    let m = pick(rng, &db.measures(t))?;
    let desc = rng.random_bool(0.5);
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.order_by.push((Expr::col(cname(db, t, m)), desc));
    q.limit = Some(1);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("m", nat(db, t, m))
        .set("most", if desc { "highest" } else { "lowest" })
        .set("est", if desc { "largest" } else { "smallest" });
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {t} has the {most} {m}?",
                "What is the {l} of the {t} with the {est} {m}?",
                "Find the {l} of the {t} whose {m} is the {most}.",
                "Give the {l} of the {t} that has the {most} {m}.",
            ],
        ),
        query: q,
    })
}

fn top_k(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t) && !db.measures(t).is_empty())?;
    let l = db.label(t)?;
    let m = pick(rng, &db.measures(t))?;
    let desc = rng.random_bool(0.6);
    let k = rng.random_range(2..=5);
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.order_by.push((Expr::col(cname(db, t, m)), desc));
    q.limit = Some(k);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("ls", plural(nat(db, t, l)))
        .set("m", nat(db, t, m))
        .set("k", k.to_string())
        .set("most", if desc { "highest" } else { "lowest" })
        .set("top", if desc { "top" } else { "bottom" });
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {ls} of the {top} {k} {ts} by {m}.",
                "What are the {ls} of the {k} {ts} with the {most} {m}?",
                "Show the {k} {ts} with the {most} {m}. Give their {ls}.",
            ],
        ),
        query: q,
    })
}

fn order_where(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        labeled(db, t) && !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let l = db.label(t)?;
    let m = pick(rng, &db.measures(t))?;
    let f = cat_filter(db, rng, t, "")?;
    let desc = rng.random_bool(0.5);
    let mut q = Query::select(
        vec![Expr::col(cname(db, t, l)), Expr::col(cname(db, t, m))],
        tname(db, t),
    );
    q.where_.push(f.cond);
    q.order_by.push((Expr::col(cname(db, t, m)), desc));
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("m", nat(db, t, m))
        .set("whose", f.whose)
        .set("with", f.with)
        .set("dir", if desc { "descending" } else { "ascending" });
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {l} and {m} of {ts} {whose}, sorted by {m} in {dir} order.",
                "For {ts} with {with}, show the {l} and {m} ordered by {m} {dir}.",
            ],
        ),
        query: q,
    })
}

/// A word of a random label value for LIKE (4+ letters, so matches are meaningful).
fn like_word(db: &Db, rng: &mut ChaCha8Rng, t: usize, l: usize) -> Option<String> {
    let Val::Text(s) = &db.rows[t][rng.random_range(0..db.rows[t].len())][l] else {
        return None;
    };
    let words: Vec<&str> = s
        .split(' ')
        .filter(|w| w.len() >= 4 && w.chars().all(char::is_alphabetic))
        .collect();
    pick(rng, &words).map(str::to_owned)
}

fn like_contains(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t))?;
    let l = db.label(t)?;
    let w = like_word(db, rng, t, l)?;
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(Cond {
        lhs: Expr::col(cname(db, t, l)),
        pred: Pred::Like(format!("%{w}%"), false),
    });
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("ls", plural(nat(db, t, l)))
        .set("w", w);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} have a {l} containing the word {w}?",
                "List the {ls} of {ts} whose {l} contains {w}.",
                "Find all {ts} with {w} in their {l}.",
            ],
        ),
        query: q,
    })
}

fn like_prefix(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t))?;
    let l = db.label(t)?;
    let Val::Text(s) = &db.rows[t][rng.random_range(0..db.rows[t].len())][l] else {
        return None;
    };
    let w = s.split(' ').next()?.to_owned();
    if w.len() < 2 || !w.chars().all(char::is_alphanumeric) {
        return None;
    }
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(Cond {
        lhs: Expr::col(cname(db, t, l)),
        pred: Pred::Like(format!("{w}%"), false),
    });
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("ls", plural(nat(db, t, l)))
        .set("w", w);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} have a {l} starting with {w}?",
                "List the {ls} of {ts} whose {l} begins with {w}.",
                "Find the {ts} whose {l} starts with {w}.",
            ],
        ),
        query: q,
    })
}

fn join_where(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| labeled(db, r.child))?;
    let cl = db.label(r.child)?;
    let (cond, text) = parent_filter(db, rng, &r, "T2")?;
    let mut q = join_child_parent(db, &r, vec![Expr::col(qc("T1", cname(db, r.child, cl)))]);
    q.where_.push(cond);
    let mut v = rel_vars(db, &r);
    v.set("f", text);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "What are the {cls} of the {cts} {f}?",
                "List the {cls} of all {cts} {f}.",
                "Which {cts} are there {f}? Give their {cls}.",
                "Find the {cl} of every {ct} {f}.",
            ],
        ),
        query: q,
    })
}

fn join_pair(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| labeled(db, r.child) && labeled(db, r.parent))?;
    let cl = db.label(r.child)?;
    let pl = db.label(r.parent)?;
    let q = join_child_parent(
        db,
        &r,
        vec![
            Expr::col(qc("T1", cname(db, r.child, cl))),
            Expr::col(qc("T2", cname(db, r.parent, pl))),
        ],
    );
    let v = rel_vars(db, &r);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {cl} of each {ct} together with the {pl} of its {role}.",
                "Show every {ct}'s {cl} and its {role}'s {pl}.",
                "For each {ct}, give its {cl} and the {pl} of the {role}.",
            ],
        ),
        query: q,
    })
}

fn join_count(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |_| true)?;
    let (cond, text) = parent_filter(db, rng, &r, "T2")?;
    let mut q = join_child_parent(db, &r, vec![Expr::CountStar]);
    q.where_.push(cond);
    let mut v = rel_vars(db, &r);
    v.set("f", text);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "How many {cts} are there {f}?",
                "Count the {cts} {f}.",
                "What is the number of {cts} {f}?",
            ],
        ),
        query: q,
    })
}

fn group_fk_count(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| labeled(db, r.parent))?;
    let pl = db.label(r.parent)?;
    let mut q = join_child_parent(
        db,
        &r,
        vec![
            Expr::col(qc("T2", cname(db, r.parent, pl))),
            Expr::CountStar,
        ],
    );
    q.group_by.push(qc("T1", cname(db, r.child, r.fk_col)));
    let v = rel_vars(db, &r);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "How many {cts} does each {role} have? Show the {role}'s {pl} and the count.",
                "For each {role}, list the {pl} and the number of {cts}.",
                "Show the {pl} of every {role} together with the number of their {cts}.",
            ],
        ),
        query: q,
    })
}

fn having_fk(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| labeled(db, r.parent))?;
    let pl = db.label(r.parent)?;
    let k = rng.random_range(2..=8);
    let mut q = join_child_parent(db, &r, vec![Expr::col(qc("T2", cname(db, r.parent, pl)))]);
    q.group_by.push(qc("T1", cname(db, r.child, r.fk_col)));
    q.having
        .push(Cond::cmp(Expr::CountStar, Op::Ge, Lit::Int(k)));
    let mut v = rel_vars(db, &r);
    v.set("k", k.to_string());
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {roles} have at least {k} {cts}? Give their {pls}.",
                "List the {pls} of {roles} with {k} or more {cts}.",
                "Find the {pl} of every {role} that has at least {k} {cts}.",
            ],
        ),
        query: q,
    })
}

// ---------------------------------------------------------------- hard

fn avg_sub(table: &str, col: &str) -> Box<Query> {
    Box::new(Query::select(vec![agg(Agg::Avg, col.to_owned())], table))
}

fn above_avg(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| labeled(db, t) && !db.measures(t).is_empty())?;
    let l = db.label(t)?;
    let m = pick(rng, &db.measures(t))?;
    let above = rng.random_bool(0.6);
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(Cond {
        lhs: Expr::col(cname(db, t, m)),
        pred: Pred::CmpSub(
            if above { Op::Gt } else { Op::Lt },
            avg_sub(tname(db, t), cname(db, t, m)),
        ),
    });
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("ls", plural(nat(db, t, l)))
        .set("m", nat(db, t, m))
        .set("cmp", if above { "above" } else { "below" })
        .set("er", if above { "higher" } else { "lower" });
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} have a {m} {cmp} the average? List their {ls}.",
                "List the {ls} of {ts} whose {m} is {er} than the average {m} of all {ts}.",
                "Find the {ls} of the {ts} with a {m} {cmp} average.",
            ],
        ),
        query: q,
    })
}

fn not_in_query(db: &Db, r: &Rel) -> Option<Query> {
    let pl = db.label(r.parent)?;
    let mut q = Query::select(
        vec![Expr::col(cname(db, r.parent, pl))],
        tname(db, r.parent),
    );
    q.where_.push(Cond {
        lhs: Expr::col(pk(db, r.parent)),
        pred: Pred::In(
            Box::new(Query::select(
                vec![Expr::col(cname(db, r.child, r.fk_col))],
                tname(db, r.child),
            )),
            true,
        ),
    });
    Some(q)
}

const NOT_IN_UNIQUE: &[&str] = &[
    "Which {ps} have no {cts}? List their {pls}.",
    "List the {pls} of {ps} that do not have any {ct}.",
    "Find the {pls} of the {ps} without any {cts}.",
];
const NOT_IN_ROLE: &[&str] = &[
    "List the {pls} of {ps} that are not the {role} of any {ct}.",
    "Which {ps} never appear as the {role} of a {ct}? Give their {pls}.",
];

fn not_in(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| labeled(db, r.parent))?;
    let q = not_in_query(db, &r)?;
    let v = rel_vars(db, &r);
    let pats = if r.unique && rng.random_bool(0.7) {
        NOT_IN_UNIQUE
    } else {
        NOT_IN_ROLE
    };
    Some(Cand {
        question: v.say(rng, pats),
        query: q,
    })
}

fn in_sub(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| {
        labeled(db, r.parent) && !db.cats(r.child).is_empty()
    })?;
    let pl = db.label(r.parent)?;
    let f = cat_filter(db, rng, r.child, "")?;
    let mut sub = Query::select(
        vec![Expr::col(cname(db, r.child, r.fk_col))],
        tname(db, r.child),
    );
    sub.where_.push(f.cond);
    let mut q = Query::select(
        vec![Expr::col(cname(db, r.parent, pl))],
        tname(db, r.parent),
    );
    q.where_.push(Cond {
        lhs: Expr::col(pk(db, r.parent)),
        pred: Pred::In(Box::new(sub), false),
    });
    let mut v = rel_vars(db, &r);
    v.set("with", f.with);
    let pats: &[&str] = if r.unique {
        &[
            "Which {ps} have at least one {ct} with {with}? List their {pls}.",
            "List the {pls} of {ps} that have some {ct} with {with}.",
            "Find the {pls} of all {ps} that are the {role} of a {ct} with {with}.",
        ]
    } else {
        &[
            "Find the {pls} of all {ps} that are the {role} of a {ct} with {with}.",
            "Which {ps} are the {role} of at least one {ct} with {with}? Give their {pls}.",
        ]
    };
    Some(Cand {
        question: v.say(rng, pats),
        query: q,
    })
}

fn intersect_cat(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let c = pick(rng, &db.cats(t))?;
    let m = pick(rng, &db.measures(t))?;
    let hi = quantile_val(db, rng, t, m, 0.6, 0.85);
    let lo = quantile_val(db, rng, t, m, 0.15, 0.4);
    let col = cname(db, t, c);
    let mut a = Query::select(vec![Expr::col(col)], tname(db, t));
    a.where_
        .push(Cond::cmp(Expr::col(cname(db, t, m)), Op::Gt, hi.clone()));
    let mut b = Query::select(vec![Expr::col(col)], tname(db, t));
    b.where_
        .push(Cond::cmp(Expr::col(cname(db, t, m)), Op::Lt, lo.clone()));
    a.set_op = Some((SetOp::Intersect, Box::new(b)));
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("c", nat(db, t, c))
        .set("m", nat(db, t, m))
        .set("hi", hi.text())
        .set("lo", lo.text());
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {c} values have both {ts} with {m} above {hi} and {ts} with {m} below {lo}?",
                "Find the {c} values shared by {ts} whose {m} is greater than {hi} and {ts} whose {m} is less than {lo}.",
            ],
        ),
        query: a,
    })
}

fn union_label(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        labeled(db, t) && !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let l = db.label(t)?;
    let f1 = cat_filter(db, rng, t, "")?;
    let f2 = num_filter(db, rng, t, "")?;
    let mut a = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    a.where_.push(f1.cond);
    let mut b = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    b.where_.push(f2.cond);
    a.set_op = Some((SetOp::Union, Box::new(b)));
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("ls", plural(nat(db, t, l)))
        .set("w1", f1.with)
        .set("w2", f2.with);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {ls} of {ts} that have {w1} or {w2}.",
                "Which {ts} have either {w1} or {w2}? Give their {ls}.",
                "Find the {ls} of all {ts} with {w1}, together with those with {w2}.",
            ],
        ),
        query: a,
    })
}

fn except_cat(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let c = pick(rng, &db.cats(t))?;
    let m = pick(rng, &db.measures(t))?;
    let x = quantile_val(db, rng, t, m, 0.6, 0.92);
    let col = cname(db, t, c);
    let mut a = Query::select(vec![Expr::col(col)], tname(db, t));
    let mut b = Query::select(vec![Expr::col(col)], tname(db, t));
    b.where_
        .push(Cond::cmp(Expr::col(cname(db, t, m)), Op::Gt, x.clone()));
    a.set_op = Some((SetOp::Except, Box::new(b)));
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("c", nat(db, t, c))
        .set("m", nat(db, t, m))
        .set("x", x.text());
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {c} values have no {t} with {m} above {x}?",
                "List the {c} values of {ts}, except those that have some {t} whose {m} is greater than {x}.",
            ],
        ),
        query: a,
    })
}

fn group_top(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| !db.cats(t).is_empty())?;
    let c = pick(rng, &db.cats(t))?;
    let most = rng.random_bool(0.7);
    let col = cname(db, t, c).to_owned();
    let mut q = Query::select(vec![Expr::col(&col)], tname(db, t));
    q.group_by.push(col);
    q.order_by.push((Expr::CountStar, most));
    q.limit = Some(1);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("c", nat(db, t, c))
        .set("most", if most { "most" } else { "least" })
        .set("er", if most { "largest" } else { "smallest" });
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {c} is the {most} common among {ts}?",
                "What is the {most} frequent {c} of the {ts}?",
                "Which {c} has the {er} number of {ts}?",
            ],
        ),
        query: q,
    })
}

fn join3(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    // A <- B -> C: rows of A linked through junction B to a given C.
    let rels = db.rels();
    let mut triples = Vec::new();
    for ra in &rels {
        for rc in &rels {
            if ra.child == rc.child
                && ra.fk_col != rc.fk_col
                && ra.parent != rc.parent
                && ra.unique
                && labeled(db, ra.parent)
            {
                triples.push((*ra, *rc));
            }
        }
    }
    let (ra, rc) = pick(rng, &triples)?;
    let (a, b, c) = (ra.parent, ra.child, rc.parent);
    let la = db.label(a)?;
    let (cond, text) = parent_filter(db, rng, &rc, "T3")?;
    let mut q = Query::select(vec![Expr::col(qc("T1", cname(db, a, la)))], tname(db, a));
    q.distinct = true;
    q.alias = Some("T1".into());
    q.joins.push(Join {
        table: tname(db, b).to_owned(),
        alias: "T2".into(),
        left: qc("T1", pk(db, a)),
        right: qc("T2", cname(db, b, ra.fk_col)),
    });
    q.joins.push(Join {
        table: tname(db, c).to_owned(),
        alias: "T3".into(),
        left: qc("T2", cname(db, b, rc.fk_col)),
        right: qc("T3", pk(db, c)),
    });
    q.where_.push(cond);
    let mut v = Vars::default();
    v.table(db, a, "").table(db, b, "x");
    v.set("ls", plural(nat(db, a, la))).set("f", text);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} have {a_xt} {f}? List their {ls}.",
                "List the distinct {ls} of {ts} with at least one {xt} {f}.",
                "Find the {ls} of the {ts} that have {a_xt} {f}.",
            ],
        ),
        query: q,
    })
}

fn join_order(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| {
        labeled(db, r.child) && !db.measures(r.child).is_empty()
    })?;
    let cl = db.label(r.child)?;
    let m = pick(rng, &db.measures(r.child))?;
    let (cond, text) = parent_filter(db, rng, &r, "T2")?;
    let desc = rng.random_bool(0.5);
    let mut q = join_child_parent(db, &r, vec![Expr::col(qc("T1", cname(db, r.child, cl)))]);
    q.where_.push(cond);
    q.order_by
        .push((Expr::col(qc("T1", cname(db, r.child, m))), desc));
    let mut v = rel_vars(db, &r);
    v.set("f", text)
        .set("m", nat(db, r.child, m))
        .set("dir", if desc { "descending" } else { "ascending" })
        .set(
            "fromto",
            if desc {
                "from highest to lowest"
            } else {
                "from lowest to highest"
            },
        );
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {cls} of {cts} {f}, ordered by {m} in {dir} order.",
                "Show the {cls} of all {cts} {f}, sorted by {m} {fromto}.",
            ],
        ),
        query: q,
    })
}

fn multi_agg_where(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let m = pick(rng, &db.measures(t))?;
    let f1 = cat_filter(db, rng, t, "")?;
    let f2 = num_filter(db, rng, t, "")?;
    let a = pick_agg(db, rng, t, m);
    let mut q = Query::select(
        vec![Expr::CountStar, agg(a, cname(db, t, m).to_owned())],
        tname(db, t),
    );
    q.where_.push(f1.cond);
    q.where_.push(f2.cond);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("m", nat(db, t, m))
        .set("agg", pick(rng, agg_words(a)).unwrap_or("average"))
        .set("w1", f1.with)
        .set("w2", f2.with);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "For {ts} with {w1} and {w2}, how many are there and what is their {agg} {m}?",
                "Count the {ts} with {w1} and {w2}, and find their {agg} {m}.",
            ],
        ),
        query: q,
    })
}

// ---------------------------------------------------------------- extra

fn fk_top(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| labeled(db, r.parent))?;
    let pl = db.label(r.parent)?;
    let most = rng.random_bool(0.75);
    let mut q = join_child_parent(db, &r, vec![Expr::col(qc("T2", cname(db, r.parent, pl)))]);
    q.group_by.push(qc("T1", cname(db, r.child, r.fk_col)));
    q.order_by.push((Expr::CountStar, most));
    q.limit = Some(1);
    let mut v = rel_vars(db, &r);
    v.set("most", if most { "most" } else { "fewest" })
        .set("er", if most { "largest" } else { "smallest" });
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {role} has the {most} {cts}? Give the {pl}.",
                "What is the {pl} of the {role} with the {er} number of {cts}?",
                "Find the {pl} of the {role} that has the {most} {cts}.",
            ],
        ),
        query: q,
    })
}

fn fk_avg_top(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| {
        labeled(db, r.parent) && !db.measures(r.child).is_empty()
    })?;
    let pl = db.label(r.parent)?;
    let m = pick(rng, &db.measures(r.child))?;
    let desc = rng.random_bool(0.6);
    let mut q = join_child_parent(db, &r, vec![Expr::col(qc("T2", cname(db, r.parent, pl)))]);
    q.group_by.push(qc("T1", cname(db, r.child, r.fk_col)));
    q.order_by
        .push((agg(Agg::Avg, qc("T1", cname(db, r.child, m))), desc));
    q.limit = Some(1);
    let mut v = rel_vars(db, &r);
    v.set("m", nat(db, r.child, m))
        .set("most", if desc { "highest" } else { "lowest" });
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {role} has the {most} average {m} of {cts}? Give the {pl}.",
                "Find the {pl} of the {role} whose {cts} have the {most} average {m}.",
            ],
        ),
        query: q,
    })
}

fn group_where_top(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let c = pick(rng, &db.cats(t))?;
    let f = num_filter(db, rng, t, "")?;
    let col = cname(db, t, c).to_owned();
    let mut q = Query::select(vec![Expr::col(&col)], tname(db, t));
    q.where_.push(f.cond);
    q.group_by.push(col);
    q.order_by.push((Expr::CountStar, true));
    q.limit = Some(1);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("c", nat(db, t, c))
        .set("with", f.with)
        .set("whose", f.whose);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Among {ts} with {with}, which {c} is the most common?",
                "Which {c} has the most {ts} {whose}?",
                "For {ts} {whose}, what is the most frequent {c}?",
            ],
        ),
        query: q,
    })
}

fn above_avg_and(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        labeled(db, t) && !db.measures(t).is_empty() && !db.cats(t).is_empty()
    })?;
    let l = db.label(t)?;
    let m = pick(rng, &db.measures(t))?;
    let f = cat_filter(db, rng, t, "")?;
    let mut q = Query::select(vec![Expr::col(cname(db, t, l))], tname(db, t));
    q.where_.push(Cond {
        lhs: Expr::col(cname(db, t, m)),
        pred: Pred::CmpSub(Op::Gt, avg_sub(tname(db, t), cname(db, t, m))),
    });
    q.where_.push(f.cond);
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("ls", plural(nat(db, t, l)))
        .set("m", nat(db, t, m))
        .set("with", f.with)
        .set("whose", f.whose);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ts} with {with} have a {m} above the average {m} of all {ts}? List their {ls}.",
                "List the {ls} of {ts} {whose} and whose {m} is higher than the overall average.",
            ],
        ),
        query: q,
    })
}

fn not_in_where(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| labeled(db, r.parent) && r.unique)?;
    let mut q = not_in_query(db, &r)?;
    let f = any_filter(db, rng, r.parent, "")?;
    q.where_.insert(0, f.cond);
    let mut v = rel_vars(db, &r);
    v.set("with", f.with).set("whose", f.whose);
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {ps} with {with} have no {cts}? List their {pls}.",
                "List the {pls} of {ps} {whose} that do not have any {ct}.",
            ],
        ),
        query: q,
    })
}

fn join_above_avg(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| {
        labeled(db, r.parent) && !db.measures(r.child).is_empty()
    })?;
    let pl = db.label(r.parent)?;
    let m = pick(rng, &db.measures(r.child))?;
    let mut q = join_child_parent(db, &r, vec![Expr::col(qc("T2", cname(db, r.parent, pl)))]);
    q.distinct = true;
    q.where_.push(Cond {
        lhs: Expr::col(qc("T1", cname(db, r.child, m))),
        pred: Pred::CmpSub(Op::Gt, avg_sub(tname(db, r.child), cname(db, r.child, m))),
    });
    let mut v = rel_vars(db, &r);
    v.set("m", nat(db, r.child, m));
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {roles} have {a_ct} whose {m} is above the average {m} of all {cts}? Give their {pls}.",
                "List the distinct {pls} of {roles} of {cts} with a {m} higher than the average.",
            ],
        ),
        query: q,
    })
}

fn intersect_join(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let r = pick_rel(db, rng, |r| {
        labeled(db, r.parent) && !db.cats(r.child).is_empty()
    })?;
    let pl = db.label(r.parent)?;
    let c = pick(rng, &db.cats(r.child))?;
    let vals: Vec<Lit> = db.distinct(r.child, c).into_iter().map(Lit::from).collect();
    if vals.len() < 2 {
        return None;
    }
    let i = rng.random_range(0..vals.len());
    let mut j = rng.random_range(0..vals.len() - 1);
    if j >= i {
        j += 1;
    }
    let (va, vb) = (vals[i].clone(), vals[j].clone());
    let sel = || vec![Expr::col(qc("T2", cname(db, r.parent, pl)))];
    let col = qc("T1", cname(db, r.child, c));
    let mut a = join_child_parent(db, &r, sel());
    a.where_
        .push(Cond::cmp(Expr::col(&col), Op::Eq, va.clone()));
    let mut b = join_child_parent(db, &r, sel());
    b.where_
        .push(Cond::cmp(Expr::col(&col), Op::Eq, vb.clone()));
    a.set_op = Some((SetOp::Intersect, Box::new(b)));
    let mut v = rel_vars(db, &r);
    v.set("c", nat(db, r.child, c))
        .set("a", va.text())
        .set("b", vb.text());
    Some(Cand {
        question: v.say(
            rng,
            &[
                "Which {roles} have both {cts} with {c} {a} and {cts} with {c} {b}? Give their {pls}.",
                "Find the {pls} of {roles} that have {cts} whose {c} is {a} as well as {cts} whose {c} is {b}.",
            ],
        ),
        query: a,
    })
}

fn order_multi(db: &Db, rng: &mut ChaCha8Rng) -> Option<Cand> {
    let t = pick_table(db, rng, |t| {
        labeled(db, t) && !db.cats(t).is_empty() && !db.measures(t).is_empty()
    })?;
    let l = db.label(t)?;
    let m = pick(rng, &db.measures(t))?;
    let f1 = cat_filter(db, rng, t, "")?;
    let f2 = num_filter(db, rng, t, "")?;
    let desc = rng.random_bool(0.5);
    let mut q = Query::select(
        vec![Expr::col(cname(db, t, l)), Expr::col(cname(db, t, m))],
        tname(db, t),
    );
    q.where_.push(f1.cond);
    q.where_.push(f2.cond);
    q.order_by.push((Expr::col(cname(db, t, m)), desc));
    let mut v = Vars::default();
    v.table(db, t, "")
        .set("l", nat(db, t, l))
        .set("m", nat(db, t, m))
        .set("w1", f1.with)
        .set("w2", f2.with)
        .set("dir", if desc { "descending" } else { "ascending" });
    Some(Cand {
        question: v.say(
            rng,
            &[
                "List the {l} and {m} of {ts} with {w1} and {w2}, sorted by {m} in {dir} order.",
                "For {ts} with {w1} and {w2}, show the {l} and {m} ordered by {m} {dir}.",
            ],
        ),
        query: q,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural("name"), "names");
        assert_eq!(plural("city"), "cities");
        assert_eq!(plural("address"), "addresses");
        assert_eq!(plural("flight number"), "flight numbers");
        assert_eq!(plural("fitness class"), "fitness classes");
        assert_eq!(plural("day"), "days");
    }

    #[test]
    fn families_all_used_and_names_unique() {
        for f in FAMILIES {
            assert!(
                TEMPLATES.iter().any(|t| t.family == *f),
                "family {f} unused"
            );
        }
        let mut names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TEMPLATES.len());
    }
}
