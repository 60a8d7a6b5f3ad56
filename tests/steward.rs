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

/// The records of `key`'s customer.
fn members(conn: &Connection, key: &str) -> BTreeSet<String> {
    let id = id_of(conn, key);
    strings(
        conn,
        &format!("SELECT record_key FROM customer360_id_map WHERE customer360_id = '{id}'"),
    )
    .into_iter()
    .collect()
}

fn keys_of(side: &[steward::PreviewRecord]) -> BTreeSet<String> {
    side.iter().map(|r| r.key.clone()).collect()
}

/// An auto-merged pair of one customer that a rejection would split, and
/// its preview.
fn splittable_pair(conn: &Connection) -> steward::RejectPreview {
    let mut stmt = conn
        .prepare(
            "SELECT c.left_key, c.right_key FROM match_candidates c
             JOIN customer360_id_map l ON l.record_key = c.left_key
             JOIN customer360_id_map r ON r.record_key = c.right_key
             WHERE c.band = 'auto_merge' AND l.customer360_id = r.customer360_id
             ORDER BY c.candidate_id",
        )
        .unwrap();
    let pairs: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    pairs
        .iter()
        .map(|(l, r)| steward::reject_preview(conn, l, r).unwrap())
        .find(|p| p.together && !p.still_together && !p.left_side.is_empty())
        .expect("an auto-merged pair a rejection splits")
}

#[test]
fn the_reject_preview_is_what_the_reject_does_and_a_redone_reject_gets_its_id_back() {
    let (_dir, _ws, mut conn) = demo();
    let p = splittable_pair(&conn);
    let (left, right) = (p.left_key.clone(), p.right_key.clone());
    let customer = p.left_customer.clone();
    let before = members(&conn, &left);
    let decisions_before = int(&conn, "SELECT count(*) FROM steward_decisions");
    // The preview wrote nothing, and covers the whole customer.
    assert_eq!(
        int(&conn, "SELECT count(*) FROM steward_decisions"),
        decisions_before
    );
    assert_eq!(id_of(&conn, &left), id_of(&conn, &right));
    let mut all = keys_of(&p.left_side);
    all.extend(keys_of(&p.right_side));
    all.extend(keys_of(&p.others));
    assert_eq!(all, before);
    assert!(keys_of(&p.left_side).contains(&left));
    assert!(keys_of(&p.right_side).contains(&right));
    assert!(
        p.left_side
            .iter()
            .chain(&p.right_side)
            .all(|r| !r.system.is_empty() && !r.description.is_empty()),
        "{p:?}"
    );
    assert!(p.message.contains("would split"), "{}", p.message);

    // The real rejection does just that, with the ids foreseen.
    let o = steward::decide_pair(&mut conn, &left, &right, false, "ann", "two people").unwrap();
    assert_eq!(members(&conn, &left), keys_of(&p.left_side));
    assert_eq!(members(&conn, &right), keys_of(&p.right_side));
    assert_eq!(id_of(&conn, &left), p.left_id_after);
    assert_eq!(id_of(&conn, &right), p.right_id_after);
    assert!(o.message.contains("split"), "{}", o.message);
    // One side keeps the id, the other got a new one.
    let minted = if p.left_id_after == customer {
        p.right_id_after.clone()
    } else {
        p.left_id_after.clone()
    };
    assert_ne!(minted, customer);
    // Already apart now: the preview says so.
    let apart = steward::reject_preview(&conn, &left, &right).unwrap();
    assert!(!apart.together && apart.left_side.is_empty());
    assert!(apart.message.contains("already apart"), "{}", apart.message);

    // Undo: one customer again, the minted id gone.
    steward::undo(&mut conn, None, "ann", "").unwrap();
    assert_eq!(members(&conn, &left), before);
    assert_eq!(id_of(&conn, &left), customer);
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM customer360_id_map WHERE customer360_id = '{minted}'")
        ),
        0
    );
    // Re-doing the rejection gives the split-off side the same id back
    // (and the preview foresees it).
    let again = steward::reject_preview(&conn, &left, &right).unwrap();
    assert_eq!(
        (again.left_id_after.clone(), again.right_id_after.clone()),
        (p.left_id_after.clone(), p.right_id_after.clone())
    );
    let seq_before = int(
        &conn,
        "SELECT next FROM id_sequence WHERE name = 'customer360_id'",
    );
    steward::decide_pair(
        &mut conn,
        &left,
        &right,
        false,
        "ann",
        "two people after all",
    )
    .unwrap();
    assert_eq!(id_of(&conn, &left), p.left_id_after);
    assert_eq!(id_of(&conn, &right), p.right_id_after);
    assert_eq!(
        int(
            &conn,
            "SELECT next FROM id_sequence WHERE name = 'customer360_id'"
        ),
        seq_before,
        "nothing minted"
    );
}

#[test]
fn a_redone_split_gets_its_id_back() {
    let (_dir, _ws, mut conn) = demo();
    // A customer with a CRM record and an order: split the order off.
    let (customer, order): (String, String) = conn
        .query_row(
            "SELECT m.customer360_id, m.record_key FROM customer360_id_map m
             WHERE m.system = 'transactions' AND (SELECT count(*) FROM customer360_id_map o
                   WHERE o.customer360_id = m.customer360_id) >= 3
             ORDER BY m.record_key LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let before = members(&conn, &order);
    let part = vec![order.clone()];
    let first = steward::split(&mut conn, &part, "ann", "someone else's order").unwrap();
    let minted = id_of(&conn, &order);
    assert_ne!(minted, customer, "{}", first.message);
    steward::undo(&mut conn, None, "ann", "").unwrap();
    assert_eq!(members(&conn, &order), before);
    assert_eq!(id_of(&conn, &order), customer);
    let again = steward::split(&mut conn, &part, "ann", "someone else's order").unwrap();
    assert_eq!(id_of(&conn, &order), minted, "{}", again.message);
    assert_eq!(
        again.lineage,
        vec![(customer.clone(), minted.clone(), "split".to_string())]
    );
    // A split of other records mints a new id.
    steward::undo(&mut conn, None, "ann", "").unwrap();
    let other: String = conn
        .query_row(
            "SELECT record_key FROM customer360_id_map WHERE customer360_id = ?1
             AND record_key <> ?2 AND system <> 'crm' ORDER BY record_key LIMIT 1",
            [&customer, &order],
            |r| r.get(0),
        )
        .unwrap();
    steward::split(&mut conn, std::slice::from_ref(&other), "ann", "").unwrap();
    let fresh = id_of(&conn, &other);
    assert_ne!(fresh, minted);
    assert_ne!(fresh, customer);
}

/// (left, right) -> candidate_id.
fn candidate_ids(conn: &Connection) -> BTreeMap<(String, String), i64> {
    let mut stmt = conn
        .prepare("SELECT left_key, right_key, candidate_id FROM match_candidates")
        .unwrap();
    stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn candidate_ids_are_kept_per_pair_across_runs_and_never_reused() {
    use c360::pipeline::{self, Mode, progress::NoProgress};
    let (_dir, ws, mut conn) = demo();
    let first = candidate_ids(&conn);
    assert!(first.len() > 100, "{} candidates", first.len());
    let max_first = *first.values().max().unwrap();

    // A full re-run: every pair keeps its id.
    pipeline::run_step_with(&mut conn, &ws, "resolve", &NoProgress, Mode::Full).unwrap();
    let full = candidate_ids(&conn);
    assert_eq!(full, first, "same pairs, same ids");

    // New data: Klaus Dvořák again, under another customer id and e-mail.
    let crm = ws.root.join("data").join("crm.csv");
    let mut text = std::fs::read(&crm).unwrap();
    text.extend_from_slice(
        b"C0000001,Klaus,Dvorak,klaus.d@example.org,,1983-02-10,160 Main St,San Francisco,94134,US,active,2024-10-19T06:02:56Z,2024-10-19T06:02:56Z,Bronze,true\n",
    );
    std::fs::write(&crm, text).unwrap();
    pipeline::run_all(&mut conn, &ws, &NoProgress).unwrap();
    let after = candidate_ids(&conn);
    let mut kept = 0;
    let mut new = Vec::new();
    for (pair, id) in &after {
        match first.get(pair) {
            Some(old) => {
                assert_eq!(id, old, "{pair:?}");
                kept += 1;
            }
            None => new.push((pair.clone(), *id)),
        }
    }
    assert!(kept > 100);
    assert!(
        new.iter()
            .any(|((l, r), _)| l.ends_with(":C0000001") || r.ends_with(":C0000001")),
        "the new record has a candidate: {new:?}"
    );
    for (pair, id) in &new {
        assert!(*id > max_first, "{pair:?} got {id}, not above {max_first}");
    }
    // A pair dropped and new ones after it: ids only grow.
    let max_now = *after.values().max().unwrap();
    assert_eq!(
        int(
            &conn,
            "SELECT next FROM id_sequence WHERE name = 'candidate_id'"
        ),
        max_now + 1
    );
}

#[test]
fn a_pairs_decision_and_a_customers_pending_pairs() {
    let (_dir, _ws, mut conn) = demo();
    let (left, right) = review_pair(&conn);
    assert_eq!(steward::decision_of(&conn, &left, &right).unwrap(), None);
    let customer = id_of(&conn, &left);
    let records = members(&conn, &left);
    // What the customer's pending pairs are, by brute force over the queue.
    let expected = |conn: &Connection, records: &BTreeSet<String>| -> Vec<i64> {
        let mut ids: Vec<i64> = steward::queue(
            conn,
            QueueFilter::Pending,
            QueueOrder::Uncertainty,
            None,
            0,
            100_000,
        )
        .unwrap()
        .into_iter()
        .filter(|r| records.contains(&r.left_key) || records.contains(&r.right_key))
        .map(|r| r.candidate_id)
        .collect();
        ids.sort();
        ids
    };
    let pending = steward::pending_pairs_of(&conn, &customer).unwrap();
    let mut got: Vec<i64> = pending.iter().map(|r| r.candidate_id).collect();
    got.sort();
    assert_eq!(got, expected(&conn, &records));
    assert!(
        pending
            .iter()
            .any(|r| r.left_key == left && r.right_key == right)
    );
    assert!(pending.iter().all(|r| r.decision.is_none()));
    assert!(
        pending
            .windows(2)
            .all(|w| w[0].match_weight.abs() <= w[1].match_weight.abs()),
        "closest to a coin flip first"
    );

    // Approved: the decision is there (either order of the keys), the pair
    // no longer pending.
    let o = steward::decide_pair(&mut conn, &right, &left, true, "ann", "same phone").unwrap();
    let d = steward::decision_of(&conn, &right, &left)
        .unwrap()
        .expect("a decision");
    assert_eq!(d.decision_id, o.decision_id);
    assert_eq!(
        (d.action.as_str(), d.actor.as_str(), d.reason.as_str()),
        ("approve", "ann", "same phone")
    );
    assert_eq!(d.bulk_id, None);
    assert!(!d.at.is_empty());
    let now = id_of(&conn, &left);
    let after = steward::pending_pairs_of(&conn, &now).unwrap();
    assert!(
        after
            .iter()
            .all(|r| !(r.left_key == left && r.right_key == right))
    );
    let mut got: Vec<i64> = after.iter().map(|r| r.candidate_id).collect();
    got.sort();
    assert_eq!(got, expected(&conn, &members(&conn, &left)));

    // Undone: no decision in force.
    steward::undo(&mut conn, None, "ann", "").unwrap();
    assert_eq!(steward::decision_of(&conn, &left, &right).unwrap(), None);
    // Part of a bulk: the bulk id is given.
    let p: f64 = conn
        .query_row(
            "SELECT probability FROM match_candidates WHERE left_key = ?1 AND right_key = ?2",
            [&left, &right],
            |r| r.get(0),
        )
        .unwrap();
    let bulk = steward::decide_bulk(&mut conn, p, p, false, "bob", "band").unwrap();
    let d = steward::decision_of(&conn, &left, &right).unwrap().unwrap();
    assert_eq!((d.action.as_str(), d.bulk_id), ("reject", bulk.bulk_id));
    assert_eq!(
        steward::pending_pairs_of(&conn, "C360-99999999").unwrap(),
        vec![],
        "an unknown customer has none"
    );
}

/// Latency of the steward reads on a big workspace: `C360_STEWARD_WS=DIR
/// cargo test --release --test steward -- --ignored --nocapture`.
#[test]
#[ignore]
fn steward_reads_latency_on_a_big_workspace() {
    use c360::read::audit::{self, AuditFilter};
    let Ok(dir) = std::env::var("C360_STEWARD_WS") else {
        return;
    };
    let conn = c360::store::open(&std::path::Path::new(&dir).join("c360.db")).unwrap();
    let pairs: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare(
                "SELECT left_key, right_key FROM match_candidates WHERE band = 'auto_merge'
                 ORDER BY candidate_id LIMIT 20",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let time = |name: &str, f: &mut dyn FnMut(usize)| {
        let mut ms = Vec::new();
        for i in 0..pairs.len() {
            let t = std::time::Instant::now();
            f(i);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.2} ms, worst {:.2} ms",
            ms[ms.len() / 2],
            ms[ms.len() - 1]
        );
    };
    time("reject_preview", &mut |i| {
        steward::reject_preview(&conn, &pairs[i].0, &pairs[i].1).unwrap();
    });
    time("decision_of", &mut |i| {
        steward::decision_of(&conn, &pairs[i].0, &pairs[i].1).unwrap();
    });
    time("pending_pairs_of", &mut |i| {
        steward::pending_pairs_of(&conn, &id_of(&conn, &pairs[i].0)).unwrap();
    });
    let f = AuditFilter::default();
    time("audit list (first 50) + count", &mut |_| {
        audit::list(&conn, &f, 0, 50).unwrap();
        audit::count(&conn, &f).unwrap();
    });
    let f = AuditFilter {
        kinds: vec![],
        text: Some("C360-0000".into()),
    };
    time("audit list filtered by text", &mut |_| {
        audit::list(&conn, &f, 0, 50).unwrap();
    });
}
