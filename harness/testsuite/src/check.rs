//! Running a (gold, prediction) pair on one database with kidbench-sql's rules.
//!
//! This module owns no execution, preprocessing or comparison logic. Verdicts go through
//! [`kidbench_sql::eval::exec_match`], the function EX uses; the builder, which runs one gold
//! against many neighbours, executes the gold once and reuses
//! [`kidbench_sql::eval::prepare_queries`] (normalisation and `order_matters`),
//! [`kidbench_sql::exec::SafeConnection::query`] and [`kidbench_sql::compare::results_match`].

use kidbench_sql::compare::results_match;
use kidbench_sql::eval::{exec_match, prepare_queries, EvalOptions};
use kidbench_sql::exec::{ExecError, SafeConnection};
use kidbench_sql::{Cause, ResultSet};

/// A gold query prepared once: its executed text and whether row order matters.
#[derive(Debug, Clone)]
pub struct PreparedGold {
    pub sql: String,
    pub order_matters: bool,
}

/// The outcome of one pair on one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Same result under the comparison rule.
    Match,
    /// Both ran; the results differ.
    Mismatch,
    /// The prediction failed (any cause counts as wrong, as in EX).
    PredError(Cause),
    /// The gold query failed: this database cannot judge the pair.
    GoldError(Cause),
}

/// The gold text EX executes for `opts`, and whether order matters.
pub fn prepare_gold(gold: &str, opts: &EvalOptions) -> PreparedGold {
    let (sql, _, order_matters) = prepare_queries(gold, "", opts);
    PreparedGold { sql, order_matters }
}

/// The prediction text EX executes for `opts`.
pub fn prepare_pred(pred: &str, opts: &EvalOptions) -> String {
    prepare_queries("", pred, opts).1
}

/// Runs an already prepared prediction on `conn` and compares it with the gold result.
pub fn run_with_gold(
    conn: &SafeConnection,
    gold: &PreparedGold,
    gold_rs: &ResultSet,
    pred_sql: &str,
    opts: &EvalOptions,
) -> Outcome {
    match conn.query(pred_sql) {
        Ok(p) if results_match(gold_rs, &p, opts.mode, gold.order_matters) => Outcome::Match,
        Ok(_) => Outcome::Mismatch,
        Err(ExecError { cause, .. }) => Outcome::PredError(cause),
    }
}

/// EX on one database: [`exec_match`], reduced to an [`Outcome`].
pub fn run(conn: &SafeConnection, gold: &str, pred: &str, opts: &EvalOptions) -> Outcome {
    let out = exec_match(conn, gold, pred, opts);
    match (&out.gold, &out.pred) {
        (Err(e), _) => Outcome::GoldError(e.cause),
        (Ok(_), Err(e)) => Outcome::PredError(e.cause),
        (Ok(_), Ok(_)) if out.matched => Outcome::Match,
        (Ok(_), Ok(_)) => Outcome::Mismatch,
    }
}
