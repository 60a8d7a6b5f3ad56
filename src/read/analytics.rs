//! The analyse step's tables as the Analytics screen reads them (small: one
//! row per period, cohort cell, band or step).

use anyhow::Result;
use rusqlite::Connection;

/// True once the analyse step has written its tables.
pub fn ready(conn: &Connection) -> bool {
    conn.query_row("SELECT 1 FROM analytics_activity LIMIT 1", [], |_| Ok(()))
        .is_ok()
}

/// The lifecycle mix now: (status, customers), lead → churned.
pub fn lifecycle_now(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT status, customers FROM analytics_lifecycle WHERE month = 'current'
         ORDER BY CASE status WHEN 'lead' THEN 1 WHEN 'prospect' THEN 2 WHEN 'active' THEN 3
                  WHEN 'lapsed' THEN 4 WHEN 'churned' THEN 5 ELSE 6 END",
    )?;
    Ok(stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The mix at one month's end: (month, [(status, customers)]).
pub type MonthMix = (String, Vec<(String, i64)>);

/// The mix at each month's end.
pub fn lifecycle_months(conn: &Connection) -> Result<Vec<MonthMix>> {
    let mut stmt = conn.prepare(
        "SELECT month, status, customers FROM analytics_lifecycle WHERE month <> 'current'
         ORDER BY month, status",
    )?;
    let rows: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out: Vec<MonthMix> = Vec::new();
    for (m, s, n) in rows {
        match out.last_mut() {
            Some((last, v)) if *last == m => v.push((s, n)),
            _ => out.push((m, vec![(s, n)])),
        }
    }
    Ok(out)
}

/// (period, revenue, orders, active customers) per period of `grain`.
pub fn activity(conn: &Connection, grain: &str) -> Result<Vec<(String, f64, i64, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT period, revenue, orders, active_customers FROM analytics_activity
         WHERE grain = ?1 ORDER BY period",
    )?;
    Ok(stmt
        .query_map([grain], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// (cohort, customers, share active k months later for k = 0, 1, …).
pub fn cohorts(conn: &Connection) -> Result<Vec<(String, i64, Vec<f64>)>> {
    let mut stmt = conn.prepare(
        "SELECT cohort, months_after, customers, share FROM analytics_cohorts ORDER BY cohort, months_after",
    )?;
    let rows: Vec<(String, i64, i64, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out: Vec<(String, i64, Vec<f64>)> = Vec::new();
    for (c, _, n, share) in rows {
        match out.last_mut() {
            Some((last, _, v)) if *last == c => v.push(share),
            _ => out.push((c, n, vec![share])),
        }
    }
    Ok(out)
}

/// Churn: (bands high → low, signals most customers first), each
/// (name, customers, revenue).
pub type Churn = (Vec<(String, i64, f64)>, Vec<(String, i64, f64)>);

pub fn churn(conn: &Connection) -> Result<Churn> {
    let mut stmt = conn.prepare(
        "SELECT kind, name, customers, revenue FROM analytics_churn ORDER BY kind, customers DESC",
    )?;
    let rows: Vec<(String, String, i64, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let pick = |kind: &str| -> Vec<(String, i64, f64)> {
        rows.iter()
            .filter(|r| r.0 == kind)
            .map(|r| (r.1.clone(), r.2, r.3))
            .collect()
    };
    let mut bands = pick("band");
    let rank = |b: &str| {
        ["high", "medium", "low"]
            .iter()
            .position(|p| b.starts_with(p))
    };
    bands.sort_by_key(|b| rank(&b.0));
    Ok((bands, pick("signal")))
}

/// (step, customers) of the funnel over `period`.
pub fn funnel(conn: &Connection, period: &str) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT step, customers FROM analytics_funnel WHERE period = ?1 ORDER BY step_no",
    )?;
    Ok(stmt
        .query_map([period], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The day the analytics were computed as of (the latest activity), used to
/// mark the current period as partial.
pub fn as_of(conn: &Connection) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT as_of FROM customer360_profiles LIMIT 1", [], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}
