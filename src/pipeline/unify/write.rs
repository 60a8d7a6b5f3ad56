//! Phase "write": profiles inserted (in bulk on a first run, indexes built
//! after), updated only when their content hash changed, deleted when their
//! id is gone; RFM scores, which rank every buyer, kept equal to a full
//! run's when only some customers were rebuilt.

use super::UnifyReport;
use super::activity::Activity;
use super::profile::{self, Row, hash_values, profile_columns, rfm_scores, shown_revenue};
use crate::pipeline::timeparse::{iso_ms, now_utc};
use crate::store::BulkInsert;
use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::{Connection, Statement, params};
use rustc_hash::{FxHashMap, FxHashSet};

const INDEXES: &str = "
    CREATE INDEX profiles_by_name ON customer360_profiles(name_key);
    CREATE INDEX profiles_by_name_rev ON customer360_profiles(name_key_rev);
    CREATE INDEX profiles_by_email ON customer360_profiles(email);
    CREATE INDEX profiles_by_phone ON customer360_profiles(phone);
    CREATE INDEX profiles_by_revenue ON customer360_profiles(revenue);
    CREATE INDEX profiles_by_last_activity ON customer360_profiles(last_activity_at);
    CREATE INDEX profiles_by_churn ON customer360_profiles(churn_risk);
    CREATE INDEX profiles_by_lifecycle ON customer360_profiles(lifecycle_status);
    CREATE INDEX profiles_by_phone_digits ON customer360_profiles(
      replace(replace(replace(replace(replace(replace(phone, '+', ''), ' ', ''), '-', ''), '(', ''), ')', ''), '.', ''));";

const DROP_INDEXES: &str = "
    DROP INDEX IF EXISTS profiles_by_name; DROP INDEX IF EXISTS profiles_by_name_rev;
    DROP INDEX IF EXISTS profiles_by_email; DROP INDEX IF EXISTS profiles_by_phone;
    DROP INDEX IF EXISTS profiles_by_revenue; DROP INDEX IF EXISTS profiles_by_last_activity;
    DROP INDEX IF EXISTS profiles_by_churn; DROP INDEX IF EXISTS profiles_by_lifecycle;
    DROP INDEX IF EXISTS profiles_by_phone_digits;";

/// Writes profile rows: bulk on a first run, else only what changed.
pub(super) struct Writer<'a> {
    tx: &'a Connection,
    existing: FxHashMap<String, i64>,
    first_run: bool,
    bulk: BulkInsert<'a>,
    upsert: Statement<'a>,
    updated_at: String,
}

impl<'a> Writer<'a> {
    /// `only`: the customers being rebuilt (their stored hashes are read).
    pub fn new(tx: &'a Connection, only: Option<&[String]>) -> Result<Self> {
        let mut existing = FxHashMap::default();
        match only {
            None => {
                let mut stmt =
                    tx.prepare("SELECT customer360_id, row_hash FROM customer360_profiles")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                for row in rows {
                    let (id, h) = row?;
                    existing.insert(id, h);
                }
            }
            Some(ids) => {
                let mut stmt = tx.prepare(
                    "SELECT row_hash FROM customer360_profiles WHERE customer360_id = ?1",
                )?;
                for id in ids {
                    let mut rows = stmt.query([id])?;
                    if let Some(r) = rows.next()? {
                        existing.insert(id.clone(), r.get(0)?);
                    }
                }
            }
        }
        let first_run = only.is_none() && existing.is_empty();
        if first_run {
            tx.execute_batch(DROP_INDEXES)?;
        }
        let columns = profile_columns();
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let upsert = tx.prepare(&format!(
            "INSERT OR REPLACE INTO customer360_profiles ({}) VALUES ({})",
            columns.join(", "),
            placeholders.join(", ")
        ))?;
        Ok(Writer {
            tx,
            existing,
            first_run,
            bulk: BulkInsert::new(tx, "customer360_profiles", &columns),
            upsert,
            updated_at: now_utc(),
        })
    }

    /// Write one row unless its stored hash is the same.
    pub fn put(&mut self, row: Row, report: &mut UnifyReport) -> Result<()> {
        let Row {
            mut values,
            hash,
            anonymous,
        } = row;
        report.anonymous += u64::from(anonymous);
        let id = match &values[0] {
            Value::Text(t) => t.clone(),
            _ => String::new(),
        };
        let old = self.existing.get(&id).copied();
        if old == Some(hash) {
            report.unchanged += 1;
            return Ok(());
        }
        values.push(Value::Integer(hash));
        values.push(Value::Text(self.updated_at.clone()));
        match old {
            Some(_) => {
                report.updated += 1;
                self.upsert
                    .execute(rusqlite::params_from_iter(values.iter()))?;
            }
            None if self.first_run => {
                report.new += 1;
                self.bulk.push(values)?;
            }
            None => {
                report.new += 1;
                self.upsert
                    .execute(rusqlite::params_from_iter(values.iter()))?;
            }
        }
        Ok(())
    }

    /// Flush, delete the profiles whose id is gone (of every id, or of
    /// `only`), and build the indexes after a first run.
    pub fn finish(
        self,
        customers: &[String],
        only: Option<&[String]>,
        report: &mut UnifyReport,
    ) -> Result<()> {
        let Writer {
            tx,
            existing,
            first_run,
            mut bulk,
            upsert,
            ..
        } = self;
        bulk.finish()?;
        drop(upsert);
        if first_run {
            tx.execute_batch(INDEXES)?;
            return Ok(());
        }
        let current: FxHashSet<&str> = customers.iter().map(String::as_str).collect();
        let mut del = tx.prepare("DELETE FROM customer360_profiles WHERE customer360_id = ?1")?;
        let gone: Vec<&String> = match only {
            None => existing.keys().collect(),
            Some(ids) => ids.iter().collect(),
        };
        for id in gone {
            if !current.contains(id.as_str()) && del.execute([id])? > 0 {
                report.removed += 1;
            }
        }
        Ok(())
    }
}

/// A customer not rebuilt whose RFM scores shift: (id, new scores).
pub(super) type Shifted = (String, Option<(u8, u8, u8)>);

/// RFM scores of the customers being built, and (when only some are) the
/// other buyers whose scores shift.
pub(super) struct Rfm {
    pub scores: Vec<Option<(u8, u8, u8)>>,
    pub changed_others: Vec<Shifted>,
}

/// Rank every buyer: those being built from their activity, the others (when
/// only some customers are rebuilt) from their stored profiles; a profile
/// of `only` that is not rebuilt is gone (its id merged away).
pub(super) fn rfm(
    tx: &Connection,
    acts: &[Activity],
    only: Option<&[String]>,
    now: i64,
) -> Result<Rfm> {
    let mut buyers: Vec<(i64, u32, f64)> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    for (i, a) in acts.iter().enumerate() {
        if a.orders > 0 {
            buyers.push((
                a.last_order.unwrap_or(i64::MIN / 4),
                a.orders,
                shown_revenue(a),
            ));
            owner.push(i);
        }
    }
    let mine = buyers.len();
    let mut others: Vec<Shifted> = Vec::new();
    if let Some(only) = only {
        let building: FxHashSet<&str> = only.iter().map(String::as_str).collect();
        let mut stmt = tx.prepare(
            "SELECT customer360_id, last_order_at, orders, revenue,
                    rfm_recency, rfm_frequency, rfm_monetary
             FROM customer360_profiles WHERE orders > 0",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            if building.contains(id.as_str()) {
                continue;
            }
            let last: Option<String> = r.get(1)?;
            let last = last.as_deref().and_then(iso_ms).unwrap_or(i64::MIN / 4);
            buyers.push((last, r.get(2)?, r.get(3)?));
            let stored = match (r.get(4)?, r.get(5)?, r.get(6)?) {
                (Some(a), Some(b), Some(c)) => Some((a, b, c)),
                _ => None,
            };
            others.push((id, stored));
        }
    }
    let scores = rfm_scores(&buyers, now);
    let mut out = vec![None; acts.len()];
    for (k, &i) in owner.iter().enumerate() {
        out[i] = Some(scores[k]);
    }
    let changed_others = others
        .into_iter()
        .zip(&scores[mine..])
        .filter(|((_, stored), now)| *stored != Some(**now))
        .map(|((id, _), now)| (id, Some(*now)))
        .collect();
    Ok(Rfm {
        scores: out,
        changed_others,
    })
}

/// Give other customers their shifted RFM scores: the stored row with the
/// four RFM columns replaced, re-hashed, written back.
pub(super) fn ripple_rfm(tx: &Connection, changed: &[Shifted]) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let columns = profile_columns();
    // Every column but row_hash and updated_at, as the hash covers them.
    let hashed = &columns[..columns.len() - 2];
    let at = |name: &str| hashed.iter().position(|c| c == name).unwrap_or(0);
    let first_rfm = at("rfm_recency");
    let mut read = tx.prepare(&format!(
        "SELECT {} FROM customer360_profiles WHERE customer360_id = ?1",
        hashed.join(", ")
    ))?;
    let mut update = tx.prepare(
        "UPDATE customer360_profiles SET rfm_recency = ?2, rfm_frequency = ?3, rfm_monetary = ?4,
             rfm_segment = ?5, row_hash = ?6, updated_at = ?7 WHERE customer360_id = ?1",
    )?;
    let now = now_utc();
    for (id, scores) in changed {
        let mut values: Vec<Value> = read.query_row([id], |r| {
            (0..hashed.len()).map(|i| r.get::<_, Value>(i)).collect()
        })?;
        let rfm = profile::rfm_values(*scores);
        for (k, v) in rfm.iter().enumerate() {
            values[first_rfm + k] = v.clone();
        }
        let [r, f, m, seg] = rfm;
        update.execute(params![id, r, f, m, seg, hash_values(&values), now])?;
    }
    Ok(())
}
