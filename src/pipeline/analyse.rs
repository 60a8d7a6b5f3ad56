//! Analyse (pipeline step 6): lifecycle mix over time, revenue / orders /
//! active customers per day, week and month, retention cohorts, churn risk
//! by band and signal, and the page-view-to-purchase funnel, from
//! `customer360_events` and `customer360_profiles` (one pass over each),
//! into the `analytics_*` tables the Analytics screen draws.

use crate::pipeline::progress::Progress;
use crate::pipeline::timeparse::{iso_ms, now_utc};
use anyhow::{Result, bail};
use chrono::{DateTime, Datelike, Duration, Utc};
use rusqlite::{Connection, params};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;

/// Funnel steps, in order (canonical event names; purchases from orders
/// count too).
pub const FUNNEL: [&str; 5] = [
    "page_view",
    "product_view",
    "add_to_cart",
    "checkout",
    "purchase",
];

/// Funnel periods: (label, days before "now"; 0 = all time).
pub const PERIODS: [(&str, i64); 4] = [("30d", 30), ("90d", 90), ("365d", 365), ("all", 0)];

#[derive(Debug, Clone, Default)]
pub struct AnalyseReport {
    pub events: u64,
    pub profiles: u64,
    pub months: u64,
    pub cohorts: u64,
    pub at_risk: u64,
    pub revenue_at_risk: f64,
}

impl AnalyseReport {
    pub fn summary(&self) -> String {
        format!(
            "{} events and {} profiles analysed: {} months, {} cohorts; {} customers at high churn risk with {:.2} revenue",
            self.events,
            self.profiles,
            self.months,
            self.cohorts,
            self.at_risk,
            self.revenue_at_risk
        )
    }
}

fn month_index(t: &DateTime<Utc>) -> i64 {
    t.year() as i64 * 12 + t.month0() as i64
}

fn month_label(m: i64) -> String {
    format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1)
}

/// Monday of the ISO week, as a label.
fn week_label(t: &DateTime<Utc>) -> String {
    let monday = t.date_naive() - Duration::days(t.weekday().num_days_from_monday() as i64);
    monday.format("%Y-%m-%d").to_string()
}

fn dt(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[derive(Default, Clone, Copy)]
struct Period {
    revenue: f64,
    orders: i64,
    refunds: i64,
}

pub fn run(conn: &mut Connection, progress: &dyn Progress) -> Result<AnalyseReport> {
    let profiles: i64 = conn.query_row("SELECT count(*) FROM customer360_profiles", [], |r| {
        r.get(0)
    })?;
    if profiles == 0 {
        bail!("no profiles yet: run the unify step first (`c360 run --step unify`)");
    }
    progress.start("analyse", 0);
    let as_of: String =
        conn.query_row("SELECT as_of FROM customer360_profiles LIMIT 1", [], |r| {
            r.get(0)
        })?;
    let now = iso_ms(&as_of).unwrap_or(0);
    let mut report = AnalyseReport {
        profiles: profiles as u64,
        ..Default::default()
    };

    // Customers, and what the profiles say.
    let mut index: FxHashMap<String, u32> = FxHashMap::default();
    let mut first_order_month: Vec<Option<i64>> = Vec::new();
    let mut churn_band: BTreeMap<&'static str, (i64, f64)> = BTreeMap::new();
    let mut signals: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    let mut current: BTreeMap<String, i64> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT customer360_id, first_order_at, churn_risk, revenue, churn_signals,
                    lifecycle_status, anonymous
             FROM customer360_profiles",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            index.insert(id, first_order_month.len() as u32);
            let first: Option<String> = r.get(1)?;
            first_order_month.push(
                first
                    .as_deref()
                    .and_then(iso_ms)
                    .map(|ms| month_index(&dt(ms))),
            );
            let (risk, revenue): (f64, f64) = (r.get(2)?, r.get(3)?);
            let anonymous: i64 = r.get(6)?;
            if anonymous == 0 {
                let band = if risk >= 0.6 {
                    "high (≥ 0.6)"
                } else if risk >= 0.3 {
                    "medium (0.3–0.6)"
                } else {
                    "low (< 0.3)"
                };
                let e = churn_band.entry(band).or_default();
                e.0 += 1;
                e.1 += revenue;
                let fired: String = r.get(4)?;
                for s in fired.split("; ").filter(|s| !s.is_empty()) {
                    let name = s.split(" (").next().unwrap_or(s).to_string();
                    let e = signals.entry(name).or_default();
                    e.0 += 1;
                    e.1 += revenue;
                }
                let status: Option<String> = r.get(5)?;
                *current
                    .entry(status.unwrap_or_else(|| "(none)".into()))
                    .or_default() += 1;
            }
        }
    }
    let high = churn_band.get("high (≥ 0.6)").copied().unwrap_or_default();
    report.at_risk = high.0 as u64;
    report.revenue_at_risk = high.1;

    // One pass over the events.
    let mut days: BTreeMap<String, Period> = BTreeMap::new();
    let mut weeks: BTreeMap<String, Period> = BTreeMap::new();
    let mut months: BTreeMap<i64, Period> = BTreeMap::new();
    let mut active_day: FxHashSet<(u32, u32)> = FxHashSet::default();
    let mut day_ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut day_names: Vec<String> = Vec::new();
    let mut active_week: FxHashSet<(u32, u32)> = FxHashSet::default();
    let mut week_ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut week_names: Vec<String> = Vec::new();
    let mut active_month: FxHashSet<(i64, u32)> = FxHashSet::default();
    let mut funnel = vec![0u32; index.len()];
    let mut lifecycle: Vec<(u32, i64, String)> = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT customer360_id, event_time, event_name, system, revenue FROM customer360_events",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            report.events += 1;
            let Some(&c) = index.get(r.get_ref(0)?.as_str()?) else {
                continue;
            };
            let Some(ms) = iso_ms(r.get_ref(1)?.as_str()?) else {
                continue;
            };
            let name = r.get_ref(2)?.as_str()?;
            let system = r.get_ref(3)?.as_str()?;
            if system == "crm" {
                if let Some(status) = name.strip_prefix("lifecycle:") {
                    lifecycle.push((c, ms, status.to_string()));
                }
                continue;
            }
            let t = dt(ms);
            let day = t.format("%Y-%m-%d").to_string();
            let week = week_label(&t);
            let month = month_index(&t);
            if system == "transactions" {
                let revenue = match r.get_ref(4)? {
                    rusqlite::types::ValueRef::Real(x) => x,
                    rusqlite::types::ValueRef::Integer(i) => i as f64,
                    _ => 0.0,
                };
                for p in [
                    days.entry(day.clone()).or_default(),
                    weeks.entry(week.clone()).or_default(),
                    months.entry(month).or_default(),
                ] {
                    p.revenue += revenue;
                    if name == "refund" {
                        p.refunds += 1;
                    } else {
                        p.orders += 1;
                    }
                }
            }
            let intern = |ids: &mut FxHashMap<String, u32>, names: &mut Vec<String>, k: String| {
                *ids.entry(k.clone()).or_insert_with(|| {
                    names.push(k);
                    names.len() as u32 - 1
                })
            };
            let d = intern(&mut day_ids, &mut day_names, day);
            active_day.insert((d, c));
            let w = intern(&mut week_ids, &mut week_names, week);
            active_week.insert((w, c));
            active_month.insert((month, c));
            // Funnel bits: step s in period p.
            if let Some(s) = FUNNEL.iter().position(|f| *f == name) {
                let age = now - ms;
                for (p, (_, d)) in PERIODS.iter().enumerate() {
                    if *d == 0 || (0..=d * DAY_MS).contains(&age) {
                        funnel[c as usize] |= 1 << (p * FUNNEL.len() + s);
                    }
                }
            }
        }
    }
    progress.message("analyse: writing tables");

    let tx = conn.transaction()?;
    tx.execute_batch(
        "DELETE FROM analytics_lifecycle; DELETE FROM analytics_activity; DELETE FROM analytics_cohorts;
         DELETE FROM analytics_churn; DELETE FROM analytics_funnel;",
    )?;
    // Activity.
    {
        let count = |set: &FxHashSet<(u32, u32)>, n: usize| {
            let mut v = vec![0i64; n];
            for (p, _) in set {
                v[*p as usize] += 1;
            }
            v
        };
        let day_active = count(&active_day, day_names.len());
        let week_active = count(&active_week, week_names.len());
        let mut month_active: BTreeMap<i64, i64> = BTreeMap::new();
        for (m, _) in &active_month {
            *month_active.entry(*m).or_default() += 1;
        }
        // New customers: first order in the period.
        let mut new_month: BTreeMap<i64, i64> = BTreeMap::new();
        for m in first_order_month.iter().flatten() {
            *new_month.entry(*m).or_default() += 1;
        }
        let mut ins = tx.prepare(
            "INSERT INTO analytics_activity (grain, period, revenue, orders, refunds, active_customers, new_customers)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut all_days: Vec<(&String, u32)> = day_ids.iter().map(|(k, v)| (k, *v)).collect();
        all_days.sort();
        for (label, id) in all_days {
            let p = days.get(label).copied().unwrap_or_default();
            ins.execute(params![
                "day",
                label,
                p.revenue,
                p.orders,
                p.refunds,
                day_active[id as usize],
                0
            ])?;
        }
        let mut all_weeks: Vec<(&String, u32)> = week_ids.iter().map(|(k, v)| (k, *v)).collect();
        all_weeks.sort();
        for (label, id) in all_weeks {
            let p = weeks.get(label).copied().unwrap_or_default();
            ins.execute(params![
                "week",
                label,
                p.revenue,
                p.orders,
                p.refunds,
                week_active[id as usize],
                0
            ])?;
        }
        for (m, active) in &month_active {
            let p = months.get(m).copied().unwrap_or_default();
            ins.execute(params![
                "month",
                month_label(*m),
                p.revenue,
                p.orders,
                p.refunds,
                active,
                new_month.get(m).copied().unwrap_or(0)
            ])?;
        }
        report.months = month_active.len() as u64;
    }
    // Cohorts: by first-purchase month, active k months later.
    {
        let mut size: BTreeMap<i64, i64> = BTreeMap::new();
        for m in first_order_month.iter().flatten() {
            *size.entry(*m).or_default() += 1;
        }
        let last_month = month_index(&dt(now));
        let mut active: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        for (m, c) in &active_month {
            if let Some(cohort) = first_order_month[*c as usize]
                && *m >= cohort
            {
                *active.entry((cohort, m - cohort)).or_default() += 1;
            }
        }
        let mut ins = tx.prepare(
            "INSERT INTO analytics_cohorts (cohort, months_after, customers, active, share)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (cohort, n) in &size {
            for k in 0..=(last_month - cohort).max(0) {
                let a = active.get(&(*cohort, k)).copied().unwrap_or(0);
                ins.execute(params![month_label(*cohort), k, n, a, a as f64 / *n as f64])?;
            }
        }
        report.cohorts = size.len() as u64;
    }
    // Lifecycle mix at each month end, from the changes.
    {
        lifecycle.sort_by_key(|a| (a.0, a.1));
        let first_month = lifecycle.iter().map(|l| month_index(&dt(l.1))).min();
        let last_month = month_index(&dt(now));
        let mut mix: BTreeMap<(i64, String), i64> = BTreeMap::new();
        if let Some(first) = first_month {
            for run in lifecycle.chunk_by(|a, b| a.0 == b.0) {
                let mut k = 0;
                let mut status: Option<&str> = None;
                for m in first..=last_month {
                    // End of month m: the first instant of month m + 1.
                    let (y, mo) = ((m + 1).div_euclid(12), (m + 1).rem_euclid(12) + 1);
                    let end = chrono::NaiveDate::from_ymd_opt(y as i32, mo as u32, 1)
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map_or(i64::MAX, |d| d.and_utc().timestamp_millis());
                    while k < run.len() && run[k].1 < end {
                        status = Some(run[k].2.as_str());
                        k += 1;
                    }
                    if let Some(s) = status {
                        *mix.entry((m, s.to_string())).or_default() += 1;
                    }
                }
            }
        }
        let mut ins = tx.prepare(
            "INSERT INTO analytics_lifecycle (month, status, customers) VALUES (?1, ?2, ?3)",
        )?;
        for ((m, s), n) in &mix {
            ins.execute(params![month_label(*m), s, n])?;
        }
        for (s, n) in &current {
            ins.execute(params!["current", s, n])?;
        }
    }
    // Churn.
    {
        let mut ins = tx.prepare(
            "INSERT INTO analytics_churn (kind, name, customers, revenue) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (band, (n, rev)) in &churn_band {
            ins.execute(params!["band", band, n, (rev * 100.0).round() / 100.0])?;
        }
        for (name, (n, rev)) in &signals {
            ins.execute(params!["signal", name, n, (rev * 100.0).round() / 100.0])?;
        }
    }
    // Funnel.
    {
        let mut ins = tx.prepare(
            "INSERT INTO analytics_funnel (period, step_no, step, customers) VALUES (?1, ?2, ?3, ?4)",
        )?;
        // Among the customers who viewed a page in the period, how many
        // reached each step (a step nobody ever reached is not tracked in
        // this data and is left out).
        for (p, (label, _)) in PERIODS.iter().enumerate() {
            let entry = 1u32 << (p * FUNNEL.len());
            for (s, step) in FUNNEL.iter().enumerate() {
                let bit = 1u32 << (p * FUNNEL.len() + s);
                let ever = funnel
                    .iter()
                    .any(|f| f & (1 << ((PERIODS.len() - 1) * FUNNEL.len() + s)) != 0);
                if !ever {
                    continue;
                }
                let n = funnel
                    .iter()
                    .filter(|f| *f & bit != 0 && *f & entry != 0)
                    .count();
                ins.execute(params![label, s as i64, step, n as i64])?;
            }
        }
    }
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'c360', 'analyse', ?2)",
        params![now_utc(), report.summary()],
    )?;
    crate::store::versions::bump(&tx, crate::store::versions::ANALYTICS)?;
    tx.commit()?;
    progress.finish();
    Ok(report)
}
