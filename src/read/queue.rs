//! Counts of the review queue the screens need beside `steward::queue_counts`.

use anyhow::Result;
use rusqlite::Connection;

/// Candidate pairs a steward decided (a pair counts once, however many
/// decisions it had).
pub fn decided_pairs(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM match_candidates WHERE decision IS NOT NULL",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}
