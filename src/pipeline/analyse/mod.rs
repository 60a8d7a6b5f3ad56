//! Analyse (pipeline step 6): lifecycle mix over time, revenue / orders /
//! active customers per day, week and month, retention cohorts, churn risk
//! by band and signal, and the page-view-to-purchase funnel, from
//! `customer360_events` and `customer360_profiles` (one pass over each),
//! into the `analytics_*` tables the Analytics screen draws.

use crate::pipeline::progress::{Progress, check_cancelled};
use crate::pipeline::timeparse::{iso_ms, now_utc};
use anyhow::{Result, bail};
use chrono::{DateTime, Datelike, Utc};
use rusqlite::{Connection, params};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;

/// Funnel steps, in order (canonical event names, GA4's; purchases from
/// orders count too).
pub const FUNNEL: [&str; 5] = [
    "page_view",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "purchase",
];

/// The funnel step of a canonical event name: the step's own name, or the
/// name an earlier rule set gave it (`product_view`, `checkout`).
fn funnel_step(name: &str) -> Option<usize> {
    let name = match name {
        "product_view" => "view_item",
        "checkout" => "begin_checkout",
        n => n,
    };
    FUNNEL.iter().position(|f| *f == name)
}

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

fn dt(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[derive(Default, Clone, Copy)]
struct Period {
    revenue: f64,
    orders: i64,
    refunds: i64,
}

/// Days since 1970-01-01 (UTC) of a time in milliseconds.
fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The Monday (a day number) of the ISO week holding `day`
/// (1970-01-01 was a Thursday).
fn monday_of(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

fn day_label(day: i64) -> String {
    dt(day * DAY_MS).format("%Y-%m-%d").to_string()
}

/// What the profiles say: customers by index, their first-order month,
/// churn risk by band and by signal, the current lifecycle mix.
#[derive(Default)]
struct ProfileFacts {
    index: FxHashMap<String, u32>,
    first_order_month: Vec<Option<i64>>,
    churn_band: BTreeMap<&'static str, (i64, f64)>,
    signals: BTreeMap<String, (i64, f64)>,
    current: BTreeMap<String, i64>,
}

fn risk_band(risk: f64) -> &'static str {
    if risk >= 0.6 {
        "high (≥ 0.6)"
    } else if risk >= 0.3 {
        "medium (0.3–0.6)"
    } else {
        "low (< 0.3)"
    }
}

fn read_profiles(conn: &Connection) -> Result<ProfileFacts> {
    let mut f = ProfileFacts::default();
    let mut stmt = conn.prepare(
        "SELECT customer360_id, first_order_at, churn_risk, revenue, churn_signals,
                lifecycle_status, anonymous
         FROM customer360_profiles",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        f.index.insert(id, f.first_order_month.len() as u32);
        let first: Option<String> = r.get(1)?;
        f.first_order_month.push(
            first
                .as_deref()
                .and_then(iso_ms)
                .map(|ms| month_index(&dt(ms))),
        );
        let (risk, revenue): (f64, f64) = (r.get(2)?, r.get(3)?);
        let anonymous: i64 = r.get(6)?;
        if anonymous != 0 {
            continue;
        }
        let e = f.churn_band.entry(risk_band(risk)).or_default();
        e.0 += 1;
        e.1 += revenue;
        let fired: String = r.get(4)?;
        for s in fired.split("; ").filter(|s| !s.is_empty()) {
            let name = s.split(" (").next().unwrap_or(s).to_string();
            let e = f.signals.entry(name).or_default();
            e.0 += 1;
            e.1 += revenue;
        }
        let status: Option<String> = r.get(5)?;
        *f.current
            .entry(status.unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
    }
    Ok(f)
}

/// What one pass over the events gathers. Days and weeks are day numbers
/// (see [`day_of`], [`monday_of`]), months [`month_index`]es.
#[derive(Default)]
struct Scan {
    events: u64,
    days: BTreeMap<i64, Period>,
    weeks: BTreeMap<i64, Period>,
    months: BTreeMap<i64, Period>,
    active_day: FxHashSet<(i64, u32)>,
    active_week: FxHashSet<(i64, u32)>,
    active_month: FxHashSet<(i64, u32)>,
    /// Per customer: bit (period, step) of the funnel reached.
    funnel: Vec<u32>,
    /// (customer, time, status) of every lifecycle change.
    lifecycle: Vec<(u32, i64, String)>,
}

fn scan_events(
    conn: &Connection,
    index: &FxHashMap<String, u32>,
    now: i64,
    progress: &dyn Progress,
) -> Result<Scan> {
    // Event numbers start at 1 (deletes leave gaps): about the total.
    let total: i64 = conn.query_row(
        "SELECT coalesce(max(event_seq), 0) FROM customer360_events",
        [],
        |r| r.get(0),
    )?;
    progress.start("analyse: events", total as u64);
    let mut s = Scan {
        funnel: vec![0u32; index.len()],
        ..Default::default()
    };
    // The month of a day, remembered while days repeat (events come in
    // roughly time order per batch).
    let mut month_cache: (i64, i64) = (i64::MIN, 0);
    let mut stmt = conn.prepare(
        "SELECT customer360_id, event_time, event_name, system, revenue FROM customer360_events",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        s.events += 1;
        if s.events.is_multiple_of(65_536) {
            progress.update(s.events);
            check_cancelled(progress, "analyse")?;
        }
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
                s.lifecycle.push((c, ms, status.to_string()));
            }
            continue;
        }
        let day = day_of(ms);
        let week = monday_of(day);
        if month_cache.0 != day {
            month_cache = (day, month_index(&dt(ms)));
        }
        let month = month_cache.1;
        if system == "transactions" && name != "void" {
            let revenue = match r.get_ref(4)? {
                rusqlite::types::ValueRef::Real(x) => x,
                rusqlite::types::ValueRef::Integer(i) => i as f64,
                _ => 0.0,
            };
            for p in [
                s.days.entry(day).or_default(),
                s.weeks.entry(week).or_default(),
                s.months.entry(month).or_default(),
            ] {
                p.revenue += revenue;
                if name == "refund" {
                    p.refunds += 1;
                } else {
                    p.orders += 1;
                }
            }
        }
        s.active_day.insert((day, c));
        s.active_week.insert((week, c));
        s.active_month.insert((month, c));
        // Funnel bits: step k in period p.
        if let Some(k) = funnel_step(name) {
            let age = now - ms;
            for (p, (_, d)) in PERIODS.iter().enumerate() {
                if *d == 0 || (0..=d * DAY_MS).contains(&age) {
                    s.funnel[c as usize] |= 1 << (p * FUNNEL.len() + k);
                }
            }
        }
    }
    Ok(s)
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
    let facts = read_profiles(conn)?;
    let high = facts
        .churn_band
        .get("high (≥ 0.6)")
        .copied()
        .unwrap_or_default();
    report.at_risk = high.0 as u64;
    report.revenue_at_risk = high.1;
    let scan = scan_events(conn, &facts.index, now, progress)?;
    progress.finish();
    report.events = scan.events;
    progress.message("analyse: writing tables");

    let tx = conn.transaction()?;
    tx.execute_batch(
        "DELETE FROM analytics_lifecycle; DELETE FROM analytics_activity; DELETE FROM analytics_cohorts;
         DELETE FROM analytics_churn; DELETE FROM analytics_funnel;",
    )?;
    report.months = write_activity(&tx, &scan, &facts.first_order_month)?;
    report.cohorts = write_cohorts(&tx, &scan, &facts.first_order_month, now)?;
    write_lifecycle(&tx, scan.lifecycle, &facts.current, now)?;
    write_churn(&tx, &facts)?;
    write_funnel(&tx, &scan.funnel)?;
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'c360', 'analyse', ?2)",
        params![now_utc(), report.summary()],
    )?;
    crate::store::versions::bump(&tx, crate::store::versions::ANALYTICS)?;
    tx.commit()?;
    progress.finish();
    Ok(report)
}

/// Revenue, orders, refunds, active and new customers per day, week and
/// month; returns the number of months.
fn write_activity(tx: &Connection, scan: &Scan, first_order_month: &[Option<i64>]) -> Result<u64> {
    let count = |set: &FxHashSet<(i64, u32)>| {
        let mut m: BTreeMap<i64, i64> = BTreeMap::new();
        for (p, _) in set {
            *m.entry(*p).or_default() += 1;
        }
        m
    };
    // New customers: first order in the period.
    let mut new_month: BTreeMap<i64, i64> = BTreeMap::new();
    for m in first_order_month.iter().flatten() {
        *new_month.entry(*m).or_default() += 1;
    }
    let mut ins = tx.prepare(
        "INSERT INTO analytics_activity (grain, period, revenue, orders, refunds, active_customers, new_customers)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    type Grain<'s> = (&'static str, &'s BTreeMap<i64, Period>, BTreeMap<i64, i64>);
    let grains: [Grain; 3] = [
        ("day", &scan.days, count(&scan.active_day)),
        ("week", &scan.weeks, count(&scan.active_week)),
        ("month", &scan.months, count(&scan.active_month)),
    ];
    for (grain, periods, active) in &grains {
        for (k, n) in active {
            let p = periods.get(k).copied().unwrap_or_default();
            let (label, new) = match *grain {
                "month" => (month_label(*k), new_month.get(k).copied().unwrap_or(0)),
                _ => (day_label(*k), 0),
            };
            ins.execute(params![
                grain, label, p.revenue, p.orders, p.refunds, n, new
            ])?;
        }
    }
    Ok(grains[2].2.len() as u64)
}

/// Cohorts by first-purchase month: how many were active k months later;
/// returns the number of cohorts.
fn write_cohorts(
    tx: &Connection,
    scan: &Scan,
    first_order_month: &[Option<i64>],
    now: i64,
) -> Result<u64> {
    let active_month = &scan.active_month;
    let mut size: BTreeMap<i64, i64> = BTreeMap::new();
    for m in first_order_month.iter().flatten() {
        *size.entry(*m).or_default() += 1;
    }
    let last_month = month_index(&dt(now));
    let mut active: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for (m, c) in active_month {
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
    Ok(size.len() as u64)
}

/// The lifecycle mix at each month end, from the changes, and now.
fn write_lifecycle(
    tx: &Connection,
    mut lifecycle: Vec<(u32, i64, String)>,
    current: &BTreeMap<String, i64>,
    now: i64,
) -> Result<()> {
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
    for (s, n) in current {
        ins.execute(params!["current", s, n])?;
    }
    Ok(())
}

/// Customers and revenue by churn-risk band and by signal.
fn write_churn(tx: &Connection, facts: &ProfileFacts) -> Result<()> {
    let mut ins = tx.prepare(
        "INSERT INTO analytics_churn (kind, name, customers, revenue) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (band, (n, rev)) in &facts.churn_band {
        ins.execute(params!["band", band, n, (rev * 100.0).round() / 100.0])?;
    }
    for (name, (n, rev)) in &facts.signals {
        ins.execute(params!["signal", name, n, (rev * 100.0).round() / 100.0])?;
    }
    Ok(())
}

/// The funnel per period.
fn write_funnel(tx: &Connection, funnel: &[u32]) -> Result<()> {
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
    Ok(())
}
