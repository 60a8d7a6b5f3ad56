//! Phase "events": `customer360_events` from the clean tables and the id
//! map. A full run rebuilds the table in one statement per system and checks
//! the counts against the clean tables; a live refresh after a steward
//! decision only moves the events whose record changed customer.

use crate::pipeline::progress::{Progress, check_cancelled};
use anyhow::{Result, bail};
use rusqlite::{Connection, OptionalExtension};

/// What the events phase wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct EventCounts {
    pub web: u64,
    pub orders: u64,
    pub lifecycle: u64,
    /// CRM records with a lifecycle status but no time (no event).
    pub lifecycle_untimed: u64,
}

fn count(conn: &Connection, sql: &str) -> Result<i64> {
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

/// Rebuild every event: web events, orders and refunds, CRM lifecycle
/// changes, each with its record's customer360_id. Refuses when a clean
/// record has no id (the resolve step is out of date).
pub(super) fn rebuild(tx: &Connection, progress: &dyn Progress) -> Result<EventCounts> {
    tx.execute_batch("DROP INDEX IF EXISTS events_by_customer; DELETE FROM customer360_events;")?;
    // In ranges of rows, so that progress moves and a cancel is seen.
    let max_web = count(tx, "SELECT coalesce(max(rowid), 0) FROM clean_web_events")?;
    let max_tx = count(tx, "SELECT coalesce(max(rowid), 0) FROM clean_transactions")?;
    progress.start("unify: events", (max_web + max_tx) as u64);
    let in_ranges = |sql: &str, max: i64, before: i64| -> Result<u64> {
        let (mut n, mut lo) = (0u64, 0i64);
        while lo < max {
            let hi = (lo + 262_144).min(max);
            n += tx.execute(sql, [lo, hi])? as u64;
            progress.update((before + hi) as u64);
            check_cancelled(progress, "unify")?;
            lo = hi;
        }
        Ok(n)
    };
    let web = in_ranges(WEB_EVENTS, max_web, 0)?;
    let orders = in_ranges(ORDER_EVENTS, max_tx, max_web)?;
    let lifecycle =
        tx.execute(&format!("{LIFECYCLE_INSERT} WHERE 1 {LIFECYCLE_TIMED}"), [])? as u64;
    // What unify saw of each CRM record, to tell a changed one later.
    tx.execute("DELETE FROM unify_crm_seen", [])?;
    crm_changes(tx, None)?;
    reconcile(tx, web, orders)?;
    let lifecycle_all = count(
        tx,
        "SELECT count(*) FROM clean_crm_customers WHERE lifecycle_status IS NOT NULL",
    )?;
    tx.execute_batch(
        "CREATE INDEX events_by_customer ON customer360_events(customer360_id, event_time);
         CREATE INDEX IF NOT EXISTS events_web_by_order ON customer360_events(order_id)
           WHERE system = 'web' AND order_id IS NOT NULL;
         CREATE INDEX IF NOT EXISTS events_crm_by_record ON customer360_events(record_key)
           WHERE system = 'crm';",
    )?;
    Ok(EventCounts {
        web,
        orders,
        lifecycle,
        lifecycle_untimed: lifecycle_all as u64 - lifecycle,
    })
}

/// The events of the clean web events with rowids in (?1, ?2]. A web
/// purchase whose order has its row in the transactions is one fact with
/// it: the order's event carries the revenue, the web event none (its own
/// figure stays in `properties.revenue`).
const WEB_EVENTS: &str = "INSERT INTO customer360_events (customer360_id, event_time, event_name,
         system, source, record_id, record_key, session_id, device_id, cookie_id, user_id,
         order_id, product_id, category, revenue, currency, anonymous, properties)
     SELECT m.customer360_id, w.event_time, w.event_name, 'web', w.source, w.event_id,
         m.record_key, w.session_id, w.device_id, w.cookie_id, w.user_id, w.order_id,
         json_extract(w.properties, '$.product_id'), NULL,
         CASE WHEN w.order_id IS NOT NULL
                   AND EXISTS (SELECT 1 FROM clean_transactions t WHERE t.order_id = w.order_id)
              THEN NULL ELSE json_extract(w.properties, '$.revenue') END,
         json_extract(w.properties, '$.currency'),
         w.user_id IS NULL, w.properties
     FROM clean_web_events w
     CROSS JOIN customer360_id_map m ON m.record_key = 'web:' || w.source || ':' || w.event_id
     WHERE w.rowid > ?1 AND w.rowid <= ?2";

/// The events (orders, refunds) of the clean transactions with rowids in
/// (?1, ?2].
const ORDER_EVENTS: &str = "INSERT INTO customer360_events (customer360_id, event_time, event_name,
         system, source, record_id, record_key, user_id, order_id, product_id, category, revenue,
         currency, anonymous, properties)
     SELECT m.customer360_id, t.order_time, t.transaction_type, 'transactions', t.source,
         t.order_id, m.record_key, t.customer_id, t.order_id, t.product_id, t.category,
         t.revenue, t.currency, 0,
         json_object('product_name', t.product_name, 'quantity', t.quantity,
                     'unit_price', t.unit_price, 'email', t.email)
     FROM clean_transactions t
     CROSS JOIN customer360_id_map m
       ON m.record_key = 'transactions:' || t.source || ':' || t.order_id || ':' || t.transaction_type
     WHERE t.rowid > ?1 AND t.rowid <= ?2";

/// The lifecycle event of CRM records (completed by a WHERE clause and
/// [`LIFECYCLE_TIMED`]).
const LIFECYCLE_INSERT: &str = "INSERT INTO customer360_events (customer360_id, event_time,
         event_name, system, source, record_id, record_key, user_id, anonymous, properties)
     SELECT m.customer360_id, coalesce(c.updated_at, c.created_at),
         'lifecycle:' || c.lifecycle_status, 'crm', c.source, c.customer_id, m.record_key,
         c.customer_id, 0, json_object('lifecycle_status', c.lifecycle_status)
     FROM clean_crm_customers c
     CROSS JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id";

/// Only records with a status and a time have a lifecycle event.
const LIFECYCLE_TIMED: &str =
    "AND c.lifecycle_status IS NOT NULL AND coalesce(c.updated_at, c.created_at) IS NOT NULL";

/// CRM records (all, or those of batches after `since`) whose content
/// differs from what unify last saw of them, as (source, customer id,
/// record key); `unify_crm_seen` is brought up to date (with `since` None,
/// the caller has emptied it).
fn crm_changes(tx: &Connection, since: Option<i64>) -> Result<Vec<(String, String, String)>> {
    let mut stmt = tx.prepare(
        "SELECT * FROM clean_crm_customers WHERE batch_id > ?1 ORDER BY source, customer_id",
    )?;
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let col = |n: &str| names.iter().position(|c| c == n).expect("clean CRM column");
    let (source, id) = (col("source"), col("customer_id"));
    // Where a row came from is not its content.
    let skip = [col("batch_id"), col("row_num")];
    let mut seen = tx.prepare_cached("SELECT content FROM unify_crm_seen WHERE record_key = ?1")?;
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO unify_crm_seen (record_key, content) VALUES (?1, ?2)",
    )?;
    let mut out = Vec::new();
    let mut rows = stmt.query([since.unwrap_or(i64::MIN)])?;
    while let Some(r) = rows.next()? {
        let mut h = blake3::Hasher::new();
        for i in (0..names.len()).filter(|i| !skip.contains(i)) {
            let v: rusqlite::types::Value = r.get(i)?;
            h.update(format!("{v:?}\u{1f}").as_bytes());
        }
        let content = i64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
        let (s, c): (String, String) = (r.get(source)?, r.get(id)?);
        let key = format!("crm:{s}:{c}");
        // A full rebuild has just cleared the table: nothing to look up.
        let old: Option<i64> = match since {
            Some(_) => seen.query_row([&key], |r| r.get(0)).optional()?,
            None => None,
        };
        if old != Some(content) {
            put.execute(rusqlite::params![key, content])?;
            out.push((s, c, key));
        }
    }
    Ok(out)
}

/// Every clean event has its row, every CRM record its id.
fn reconcile(tx: &Connection, web: u64, orders: u64) -> Result<()> {
    let clean_web = count(tx, "SELECT count(*) FROM clean_web_events")? as u64;
    let clean_tx = count(tx, "SELECT count(*) FROM clean_transactions")? as u64;
    let crm_unmapped = count(
        tx,
        "SELECT (SELECT count(*) FROM clean_crm_customers) -
                (SELECT count(*) FROM customer360_id_map WHERE system = 'crm')",
    )?;
    if web != clean_web || orders != clean_tx || crm_unmapped > 0 {
        bail!(
            "the clean tables changed since the last resolve run: {} web events, {} orders and {} CRM records have no customer360_id; run `c360 run --step resolve` first",
            clean_web.saturating_sub(web),
            clean_tx.saturating_sub(orders),
            crm_unmapped.max(0)
        );
    }
    Ok(())
}

/// Give the events of these customers the id their record has now (after a
/// merge, a split or an undo); returns how many events moved.
pub(super) fn reassign(tx: &Connection, customers: &[String]) -> Result<u64> {
    let mut stmt = tx.prepare_cached(
        "UPDATE customer360_events SET customer360_id = m.customer360_id
         FROM customer360_id_map m
         WHERE customer360_events.customer360_id = ?1
           AND m.record_key = customer360_events.record_key
           AND m.customer360_id <> ?1",
    )?;
    let mut moved = 0u64;
    for c in customers {
        moved += stmt.execute([c])? as u64;
    }
    Ok(moved)
}

/// What unify covered last time (see migration 0010), so that a later run
/// only adds the events of newer clean rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Covered {
    pub clean_rebuilt: i64,
    pub through_batch: i64,
    pub web_rowid: i64,
    pub transactions_rowid: i64,
    pub counts: EventCounts,
}

impl Covered {
    /// The state stored by the last run, if any.
    pub fn read(tx: &Connection) -> Result<Option<Covered>> {
        Ok(tx
            .query_row(
                "SELECT clean_rebuilt, through_batch, web_rowid, transactions_rowid,
                        web, orders, lifecycle, lifecycle_untimed FROM unify_state WHERE id = 1",
                [],
                |r| {
                    Ok(Covered {
                        clean_rebuilt: r.get(0)?,
                        through_batch: r.get(1)?,
                        web_rowid: r.get(2)?,
                        transactions_rowid: r.get(3)?,
                        counts: EventCounts {
                            web: r.get::<_, i64>(4)? as u64,
                            orders: r.get::<_, i64>(5)? as u64,
                            lifecycle: r.get::<_, i64>(6)? as u64,
                            lifecycle_untimed: r.get::<_, i64>(7)? as u64,
                        },
                    })
                },
            )
            .optional()?)
    }

    /// What the clean tables hold now, with these event counts.
    pub fn now(tx: &Connection, counts: EventCounts) -> Result<Covered> {
        Ok(Covered {
            clean_rebuilt: crate::store::versions::version(
                tx,
                crate::store::versions::CLEAN_REBUILT,
            )?,
            through_batch: count(
                tx,
                "SELECT coalesce((SELECT through_batch FROM standardise_state WHERE id = 1), 0)",
            )?,
            web_rowid: count(tx, "SELECT coalesce(max(rowid), 0) FROM clean_web_events")?,
            transactions_rowid: count(
                tx,
                "SELECT coalesce(max(rowid), 0) FROM clean_transactions",
            )?,
            counts,
        })
    }

    pub fn write(&self, tx: &Connection) -> Result<()> {
        let c = &self.counts;
        tx.execute(
            "INSERT OR REPLACE INTO unify_state (id, clean_rebuilt, through_batch, web_rowid,
                 transactions_rowid, web, orders, lifecycle, lifecycle_untimed)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                self.clean_rebuilt,
                self.through_batch,
                self.web_rowid,
                self.transactions_rowid,
                c.web as i64,
                c.orders as i64,
                c.lifecycle as i64,
                c.lifecycle_untimed as i64
            ],
        )?;
        Ok(())
    }
}

/// Add the events of clean rows newer than `covered` (web events and
/// transactions appended since, CRM records of newer batches, whose
/// lifecycle event replaces the earlier one). Every event gets its record's
/// id now; the ids of the customers these events belong to are returned.
/// Events of customers whose records changed id must be moved first
/// ([`reassign`]), so that every event already carries its current id.
pub(super) fn append(tx: &Connection, covered: &Covered) -> Result<(EventCounts, Vec<String>)> {
    let mut touched: Vec<String> = Vec::new();
    // CRM records of newer batches whose content changed (a re-export
    // repeats most records as they were): their lifecycle event is
    // replaced and their customer rebuilt.
    let changed = crm_changes(tx, Some(covered.through_batch))?;
    let (mut dropped, mut lifecycle) = (0u64, 0u64);
    {
        let mut del = tx.prepare_cached(
            "DELETE FROM customer360_events WHERE system = 'crm' AND record_key = ?1",
        )?;
        let mut ins = tx.prepare_cached(&format!(
            "{LIFECYCLE_INSERT} WHERE c.source = ?1 AND c.customer_id = ?2 {LIFECYCLE_TIMED}"
        ))?;
        let mut customer = tx.prepare_cached(
            "SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1",
        )?;
        for (source, id, key) in &changed {
            dropped += del.execute([key])? as u64;
            lifecycle += ins.execute([source, id])? as u64;
            if let Some(c) = customer
                .query_row([key], |r| r.get::<_, String>(0))
                .optional()?
            {
                touched.push(c);
            }
        }
    }
    let mut run = |sql: &str, since: i64| -> Result<u64> {
        let mut stmt = tx.prepare(sql)?;
        let mut rows = stmt.query([since, i64::MAX])?;
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            touched.push(r.get(0)?);
            n += 1;
        }
        Ok(n)
    };
    let web = run(
        &format!("{WEB_EVENTS} RETURNING customer360_id"),
        covered.web_rowid,
    )?;
    let orders = run(
        &format!("{ORDER_EVENTS} RETURNING customer360_id"),
        covered.transactions_rowid,
    )?;
    check_appended(tx, covered, web, orders)?;
    // Orders that arrived after their web purchase: the web event's
    // revenue is the order's now.
    tx.execute(
        "UPDATE customer360_events SET revenue = NULL
         WHERE system = 'web' AND order_id IS NOT NULL AND revenue IS NOT NULL
           AND order_id IN (SELECT order_id FROM clean_transactions WHERE rowid > ?1)",
        [covered.transactions_rowid],
    )?;
    let untimed = count(
        tx,
        "SELECT count(*) FROM clean_crm_customers WHERE lifecycle_status IS NOT NULL
           AND coalesce(updated_at, created_at) IS NULL",
    )? as u64;
    let before = covered.counts;
    touched.sort_unstable();
    touched.dedup();
    Ok((
        EventCounts {
            web: before.web + web,
            orders: before.orders + orders,
            lifecycle: (before.lifecycle + lifecycle).saturating_sub(dropped),
            lifecycle_untimed: untimed,
        },
        touched,
    ))
}

/// Every new clean web event and transaction has its event (else the id
/// map is behind the clean tables: resolve has to run first).
fn check_appended(tx: &Connection, covered: &Covered, web: u64, orders: u64) -> Result<()> {
    let new_web = tx.query_row(
        "SELECT count(*) FROM clean_web_events WHERE rowid > ?1",
        [covered.web_rowid],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let new_tx = tx.query_row(
        "SELECT count(*) FROM clean_transactions WHERE rowid > ?1",
        [covered.transactions_rowid],
        |r| r.get::<_, i64>(0),
    )? as u64;
    if web != new_web || orders != new_tx {
        bail!(
            "the clean tables changed since the last resolve run: {} web events and {} orders have no customer360_id; run `c360 run --step resolve` first",
            new_web.saturating_sub(web),
            new_tx.saturating_sub(orders)
        );
    }
    Ok(())
}
