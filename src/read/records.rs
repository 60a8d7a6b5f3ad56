//! One source record's own values (as standardise wrote them, before the
//! matcher's folding), for showing beside the compared values.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension};

/// The clean table and key column of a system.
fn table_of(system: &str) -> Option<(&'static str, &'static str)> {
    Some(match system {
        "crm" => ("clean_crm_customers", "customer_id"),
        "web" => ("clean_web_events", "event_id"),
        "transactions" => ("clean_transactions", "order_id"),
        _ => return None,
    })
}

/// The non-empty columns of record `key`'s clean row, in table order
/// (empty when the record is unknown).
pub fn values(conn: &Connection, key: &str) -> Result<Vec<(String, String)>> {
    let found: Option<(String, String, String)> = conn
        .query_row(
            "SELECT system, source, record_id FROM customer360_id_map WHERE record_key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((system, source, id)) = found else {
        return Ok(Vec::new());
    };
    let Some((table, key_col)) = table_of(&system) else {
        return Ok(Vec::new());
    };
    // A transactions record is one row of its order: the key ends in its
    // type (`transactions:shop:O1:refund`).
    let (kind_cond, kind) = match system.as_str() {
        "transactions" => (
            "AND transaction_type = ?3",
            key.rsplit(':').next().unwrap_or_default(),
        ),
        _ => ("AND ?3 = ''", ""),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT * FROM {table} WHERE source = ?1 AND {key_col} = ?2 {kind_cond} LIMIT 1"
    ))?;
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([source.as_str(), id.as_str(), kind])?;
    let mut out = Vec::new();
    if let Some(row) = rows.next()? {
        for (i, name) in names.iter().enumerate() {
            let v: rusqlite::types::Value = row.get(i)?;
            let text = match v {
                rusqlite::types::Value::Null => continue,
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Real(x) => x.to_string(),
                rusqlite::types::Value::Text(t) => t,
                rusqlite::types::Value::Blob(_) => continue,
            };
            if !text.is_empty() {
                out.push((name.clone(), text));
            }
        }
    }
    Ok(out)
}

/// True once unify has written a profile.
pub fn profiles_exist(conn: &Connection) -> bool {
    conn.query_row("SELECT 1 FROM customer360_profiles LIMIT 1", [], |_| Ok(()))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crm_record_shows_its_own_columns() {
        let conn = crate::store::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO customer360_id_map (record_key, customer360_id, system, source, record_id)
             VALUES ('crm:crm:C1', 'C360-1', 'crm', 'crm', 'C1');
             INSERT INTO clean_crm_customers (source, batch_id, row_num, customer_id, first_name, city)
             VALUES ('crm', 1, 1, 'C1', 'Jürgen', 'Köln');",
        )
        .unwrap();
        let v = values(&conn, "crm:crm:C1").unwrap();
        assert!(v.contains(&("city".into(), "Köln".into())));
        assert!(v.contains(&("first_name".into(), "Jürgen".into())));
        assert!(values(&conn, "crm:crm:nobody").unwrap().is_empty());
    }

    #[test]
    fn an_order_record_shows_its_own_row_of_the_order() {
        let conn = crate::store::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO customer360_id_map (record_key, customer360_id, system, source, record_id) VALUES
               ('transactions:shop:O1:purchase', 'C360-1', 'transactions', 'shop', 'O1'),
               ('transactions:shop:O1:refund', 'C360-1', 'transactions', 'shop', 'O1');
             INSERT INTO clean_transactions (source, batch_id, row_num, order_id, transaction_type, order_time, revenue)
             VALUES ('shop', 1, 1, 'O1', 'purchase', '2024-01-01T00:00:00Z', 10.0),
                    ('shop', 1, 2, 'O1', 'refund', '2024-01-02T00:00:00Z', -10.0);",
        )
        .unwrap();
        let kind = |key: &str| {
            values(&conn, key)
                .unwrap()
                .into_iter()
                .find(|(c, _)| c == "transaction_type")
                .map(|(_, v)| v)
        };
        assert_eq!(
            kind("transactions:shop:O1:refund").as_deref(),
            Some("refund")
        );
        assert_eq!(
            kind("transactions:shop:O1:purchase").as_deref(),
            Some("purchase")
        );
    }
}
