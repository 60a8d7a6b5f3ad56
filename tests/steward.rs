//! The steward back end on the demo workspace: bulk decisions as one unit,
//! the reject preview, ids re-used when a split is re-done, stable
//! candidate ids across resolve runs, a pair's decision and a customer's
//! pending pairs.

mod common;
use common::*;

use c360::pipeline::identity::steward::{self, QueueFilter, QueueOrder};
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet};

/// How the records fall into customers (ids left out).
fn partition(conn: &Connection) -> BTreeSet<BTreeSet<String>> {
    let mut by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT customer360_id, record_key FROM customer360_id_map")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    for row in rows {
        let (c, k) = row.unwrap();
        by.entry(c).or_default().insert(k);
    }
    by.into_values().collect()
}

/// A probability band holding at least `n` pending pairs whose records are
/// apart now, and those pairs.
fn band_of(conn: &Connection, n: usize) -> ((f64, f64), Vec<steward::QueueRow>) {
    let pending = steward::queue(
        conn,
        QueueFilter::Pending,
        QueueOrder::Score,
        None,
        0,
        10_000,
    )
    .unwrap();
    assert!(pending.len() >= n, "{} pending pairs", pending.len());
    // The n highest: [p_n, 1].
    let lo = pending[n - 1].probability;
    let rows: Vec<_> = pending
        .into_iter()
        .filter(|r| r.probability >= lo)
        .collect();
    ((lo, 1.0), rows)
}

#[test]
fn a_bulk_is_decided_and_undone_as_one_unit() {
    let (_dir, _ws, mut conn) = demo();
    let before = partition(&conn);
    let ((lo, hi), rows) = band_of(&conn, 4);
    let bulk = steward::decide_bulk(&mut conn, lo, hi, true, "ann", "same people").unwrap();
    let bulk_id = bulk.bulk_id.expect("a bulk id");
    assert_eq!(bulk.decision_ids.len(), rows.len());
    // Every decision of the band carries the bulk id; every pair is one customer.
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM steward_decisions WHERE bulk_id = {bulk_id}")
        ),
        rows.len() as i64
    );
    for r in &rows {
        assert_eq!(id_of(&conn, &r.left_key), id_of(&conn, &r.right_key));
    }
    assert!(
        bulk.message
            .contains(&format!("approved {} pair(s)", rows.len())),
        "{}",
        bulk.message
    );
    // One audit entry for the bulk.
    assert_eq!(
        int(
            &conn,
            &format!(
                "SELECT count(*) FROM audit_log WHERE action = 'bulk' AND bulk_id = {bulk_id}"
            )
        ),
        1
    );

    // Undo the latest: the whole bulk goes, as one.
    let undone = steward::undo(&mut conn, None, "ann", "too hasty").unwrap();
    assert_eq!(undone.bulk_id, Some(bulk_id));
    assert_eq!(undone.decision_ids, bulk.decision_ids);
    assert!(
        undone
            .message
            .contains(&format!("undid bulk {bulk_id}: {} decision(s)", rows.len())),
        "{}",
        undone.message
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM steward_decisions WHERE undone_at IS NULL"
        ),
        0
    );
    assert_eq!(partition(&conn), before, "as before the bulk");
    // The pairs are pending again.
    let pending = steward::queue(
        &conn,
        QueueFilter::Pending,
        QueueOrder::Score,
        Some((lo, hi)),
        0,
        1000,
    )
    .unwrap();
    assert_eq!(pending.len(), rows.len());

    // A single decision of a bulk can still be undone by its id alone; the
    // next undo takes the rest of the bulk.
    let again = steward::decide_bulk(&mut conn, lo, hi, false, "ann", "not them").unwrap();
    let first = again.decision_ids[0];
    let one = steward::undo(&mut conn, Some(first), "ann", "this one is fine").unwrap();
    assert_eq!(one.decision_ids, vec![first]);
    assert_eq!(one.bulk_id, None);
    let rest = steward::undo(&mut conn, None, "ann", "").unwrap();
    assert_eq!(rest.decision_ids, again.decision_ids[1..].to_vec());
    assert!(
        rest.message
            .contains(&format!("{} decision(s)", rows.len() - 1)),
        "{}",
        rest.message
    );
    assert_eq!(partition(&conn), before);
    // An empty band writes nothing.
    let none = steward::decide_bulk(&mut conn, 2.0, 3.0, true, "ann", "").unwrap();
    assert_eq!(none.bulk_id, None);
    assert!(none.decision_ids.is_empty());
}
