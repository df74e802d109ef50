//! Running a (gold, prediction) pair on one database with kidbench-sql's rules.
//!
//! This module owns no execution or comparison logic: it chains
//! [`kidbench_sql::normalize::normalize`] (the reference preprocessing),
//! [`kidbench_sql::exec::SafeConnection::query`] (safe read-only execution with timeout and caps)
//! and [`kidbench_sql::compare::results_match`] (the test-suite comparison), exactly as EX does
//! on the original database, so a TS verdict is an EX verdict repeated on more databases.

use kidbench_sql::compare::{results_match, CompareMode};
use kidbench_sql::exec::{ExecError, SafeConnection};
use kidbench_sql::normalize::{normalize, order_matters};
use kidbench_sql::{Cause, ResultSet};

/// How pairs are compared: kidbench-sql's normalisation and comparison settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    /// Keep `DISTINCT` (the reference removes it from both queries by default).
    pub keep_distinct: bool,
    /// Result comparison rule.
    pub compare: CompareMode,
}

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

impl Rules {
    /// Normalises the gold query and decides whether order matters.
    pub fn prepare_gold(&self, gold: &str) -> PreparedGold {
        let sql = normalize(gold, self.keep_distinct);
        PreparedGold {
            order_matters: order_matters(&sql),
            sql,
        }
    }

    /// Normalises a prediction (or neighbour) the same way.
    pub fn prepare_pred(&self, pred: &str) -> String {
        normalize(pred, self.keep_distinct)
    }

    /// Compares a prediction result with a gold result.
    pub fn same(&self, gold: &PreparedGold, gold_rs: &ResultSet, pred_rs: &ResultSet) -> bool {
        results_match(gold_rs, pred_rs, self.compare, gold.order_matters)
    }

    /// Runs both (already prepared) queries on `conn` and compares them.
    pub fn run(&self, conn: &SafeConnection, gold: &PreparedGold, pred_sql: &str) -> Outcome {
        let g = match conn.query(&gold.sql) {
            Ok(g) => g,
            Err(ExecError { cause, .. }) => return Outcome::GoldError(cause),
        };
        self.run_with_gold(conn, gold, &g, pred_sql)
    }

    /// Like [`run`](Self::run) with the gold result already computed on `conn`.
    pub fn run_with_gold(
        &self,
        conn: &SafeConnection,
        gold: &PreparedGold,
        gold_rs: &ResultSet,
        pred_sql: &str,
    ) -> Outcome {
        match conn.query(pred_sql) {
            Ok(p) if self.same(gold, gold_rs, &p) => Outcome::Match,
            Ok(_) => Outcome::Mismatch,
            Err(ExecError { cause, .. }) => Outcome::PredError(cause),
        }
    }
}
