//! Phase "events": `customer360_events` from the clean tables and the id
//! map. A full run rebuilds the table in one statement per system and checks
//! the counts against the clean tables; a live refresh after a steward
//! decision only moves the events whose record changed customer.

use anyhow::{Result, bail};
use rusqlite::Connection;

/// What the events phase wrote.
#[derive(Debug, Default, Clone, Copy)]
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
pub(super) fn rebuild(tx: &Connection) -> Result<EventCounts> {
    tx.execute_batch("DROP INDEX IF EXISTS events_by_customer; DELETE FROM customer360_events;")?;
    let web = tx.execute(
        "INSERT INTO customer360_events (customer360_id, event_time, event_name, system, source,
             record_id, record_key, session_id, device_id, cookie_id, user_id, order_id,
             product_id, category, revenue, currency, anonymous, properties)
         SELECT m.customer360_id, w.event_time, w.event_name, 'web', w.source, w.event_id,
             m.record_key, w.session_id, w.device_id, w.cookie_id, w.user_id, w.order_id,
             json_extract(w.properties, '$.product_id'), NULL,
             json_extract(w.properties, '$.revenue'), json_extract(w.properties, '$.currency'),
             w.user_id IS NULL, w.properties
         FROM clean_web_events w
         JOIN customer360_id_map m ON m.record_key = 'web:' || w.source || ':' || w.event_id",
        [],
    )? as u64;
    let orders = tx.execute(
        "INSERT INTO customer360_events (customer360_id, event_time, event_name, system, source,
             record_id, record_key, user_id, order_id, product_id, category, revenue, currency,
             anonymous, properties)
         SELECT m.customer360_id, t.order_time, t.transaction_type, 'transactions', t.source,
             t.order_id, m.record_key, t.customer_id, t.order_id, t.product_id, t.category,
             t.revenue, t.currency, 0,
             json_object('product_name', t.product_name, 'quantity', t.quantity,
                         'unit_price', t.unit_price, 'email', t.email)
         FROM clean_transactions t
         JOIN customer360_id_map m
           ON m.record_key = 'transactions:' || t.source || ':' || t.order_id || ':' || t.transaction_type",
        [],
    )? as u64;
    let lifecycle = tx.execute(
        "INSERT INTO customer360_events (customer360_id, event_time, event_name, system, source,
             record_id, record_key, user_id, anonymous, properties)
         SELECT m.customer360_id, coalesce(c.updated_at, c.created_at),
             'lifecycle:' || c.lifecycle_status, 'crm', c.source, c.customer_id, m.record_key,
             c.customer_id, 0, json_object('lifecycle_status', c.lifecycle_status)
         FROM clean_crm_customers c
         JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id
         WHERE c.lifecycle_status IS NOT NULL AND coalesce(c.updated_at, c.created_at) IS NOT NULL",
        [],
    )? as u64;
    reconcile(tx, web, orders)?;
    let lifecycle_all = count(
        tx,
        "SELECT count(*) FROM clean_crm_customers WHERE lifecycle_status IS NOT NULL",
    )?;
    tx.execute_batch(
        "CREATE INDEX events_by_customer ON customer360_events(customer360_id, event_time)",
    )?;
    Ok(EventCounts {
        web,
        orders,
        lifecycle,
        lifecycle_untimed: lifecycle_all as u64 - lifecycle,
    })
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
