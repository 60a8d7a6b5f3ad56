//! Beyond one machine: the workspace's rules, trained match model and
//! steward decisions compiled into plain SQL scripts for a warehouse
//! (DuckDB, Spark, BigQuery, Snowflake), and a warehouse run's results
//! pulled back into the workspace for review.
//!
//! The scripts build the same tables the local pipeline does, with the
//! same columns: `stg_*` and `rejects` (stage), `clean_*` (standardise),
//! `customer360_id_map` and `match_candidates` (identity),
//! `customer360_profiles` and `customer360_events` (unify). Seed tables
//! (lookups, the model, the decisions) are written as CSV beside them.

pub mod clean;
pub mod compile;
pub mod dialect;
pub mod graph;
pub mod identity;
pub mod local;
pub mod pull;
pub mod seeds;
pub mod stage;
pub mod times;
pub mod unify;

pub use dialect::Dialect;

/// One generated script: its file name (numbered in run order) and text.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// `NN_step_what.sql`.
    pub file: String,
    /// stage | standardise | identity | unify.
    pub step: &'static str,
    /// What it builds, for the README.
    pub summary: String,
    pub sql: String,
}

impl Script {
    pub fn new(file: &str, step: &'static str, summary: &str, sql: String) -> Script {
        Script {
            file: file.to_string(),
            step,
            summary: summary.to_string(),
            sql,
        }
    }
}
