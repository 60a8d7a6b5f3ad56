//! Unify (pipeline step 5): `customer360_profiles` and `customer360_events`.
//!
//! - **Events**: every clean web event, every order and refund, and every
//!   CRM lifecycle status with a time, each with its `customer360_id`, are
//!   rebuilt into `customer360_events` in one statement per system; the
//!   counts must reconcile with the clean tables (a record without an id
//!   means the resolve step is out of date, and the step refuses).
//! - **Profiles**: one pass over the events table aggregates activity per
//!   customer; one pass over the CRM records (and order e-mails) gives the
//!   golden values by the survivorship rules of `rules/survivorship.toml`,
//!   each with the record and rule behind it; RFM quintiles and the churn
//!   signals of `rules/profiles.toml` follow. Every customer360_id gets
//!   exactly one profile; visitors with nothing but anonymous events get an
//!   anonymous one.
//! - **Incremental**: each profile carries a hash of its content; a re-run
//!   rewrites only the profiles that changed (new data, steward decisions),
//!   deletes those whose id is gone, and leaves the rest untouched.
//! - **Live**: a steward decision calls [`refresh`] inside its transaction:
//!   the affected customers' events move to their new ids and their profiles
//!   are rebuilt with the rules the profiles were built with; RFM scores of
//!   other customers that shift are updated too, so the result equals a full
//!   run's.
//!
//! Phases, one module each: [`events`] (rebuild or reassign), [`activity`]
//! (one pass over the events), [`golden`] (CRM records and order e-mails),
//! [`profile`] (one row per customer), [`write`] (insert, update, delete).

use crate::pipeline::progress::{Progress, check_cancelled};
use crate::pipeline::timeparse::{iso_ms, now_utc};
use crate::workspace::Workspace;
use anyhow::{Result, bail};
use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;
use std::time::Instant;

mod activity;
mod events;
mod golden;
mod profile;
pub mod rules;
mod write;

pub use rules::*;

// --------------------------------------------------------------- the step

#[derive(Debug, Clone, Default)]
pub struct UnifyReport {
    pub profiles: u64,
    pub anonymous: u64,
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub events: u64,
    pub web_events: u64,
    pub transactions: u64,
    pub lifecycle_events: u64,
    /// CRM records with a lifecycle status but no time (no event).
    pub lifecycle_untimed: u64,
    pub as_of: String,
    pub phases: Vec<(String, f64)>,
    /// An incremental run: (events added, customers whose profiles were
    /// rebuilt; None when "now" moved and every profile was).
    pub incremental: Option<(u64, Option<u64>)>,
}

impl UnifyReport {
    pub fn summary(&self) -> String {
        let scope = match self.incremental {
            None => String::new(),
            Some((added, Some(n))) => {
                format!("new data only: {added} events added, {n} customers rebuilt; ")
            }
            Some((added, None)) => format!(
                "new data only: {added} events added, every profile rebuilt (\"now\" moved, or many customers changed); "
            ),
        };
        format!(
            "{scope}{} profiles ({} anonymous): {} new, {} updated, {} unchanged, {} removed; {} events ({} web, {} orders and refunds, {} lifecycle changes); as of {}",
            self.profiles,
            self.anonymous,
            self.new,
            self.updated,
            self.unchanged,
            self.removed,
            self.events,
            self.web_events,
            self.transactions,
            self.lifecycle_events,
            self.as_of
        )
    }

    pub fn phase_list(&self) -> String {
        self.phases
            .iter()
            .map(|(n, s)| format!("{n} {s:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The step, incremental: see [`run_with`].
pub fn run(conn: &mut Connection, ws: &Workspace, progress: &dyn Progress) -> Result<UnifyReport> {
    run_with(conn, ws, progress, false)
}

/// The step. `full`: rebuild every event and profile. Otherwise, when the
/// last run used the same rules and the clean tables were only added to
/// since, only the events of newer clean rows are added, the events of
/// customers whose records changed id move, and only the profiles of the
/// customers so touched are rebuilt (all of them when "now", the latest
/// event in the data, moved: recency figures then change for everyone).
pub fn run_with(
    conn: &mut Connection,
    ws: &Workspace,
    progress: &dyn Progress,
    full: bool,
) -> Result<UnifyReport> {
    let (rules, survivorship, profiles) = load_rules_with_text(ws)?;
    let mapped: i64 =
        conn.query_row("SELECT count(*) FROM customer360_id_map", [], |r| r.get(0))?;
    if mapped == 0 {
        bail!("no customer360_id yet: run the resolve step first (`c360 run --step resolve`)");
    }
    // The events join every clean record with its id: a bigger page cache
    // for this step keeps the id map's pages in memory (restored after).
    let cache: i64 = conn.pragma_query_value(None, "cache_size", |r| r.get(0))?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let result = (|| {
        let tx = conn.transaction()?;
        let texts = (survivorship.as_str(), profiles.as_str());
        let report = step(&tx, &rules, texts, full, progress)?;
        tx.execute(
            "INSERT OR REPLACE INTO unify_rules (id, survivorship, profiles) VALUES (1, ?1, ?2)",
            params![survivorship, profiles],
        )?;
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'c360', 'unify', ?2)",
            params![
                now_utc(),
                format!(
                    "{}; seconds per phase: {}",
                    report.summary(),
                    report.phase_list()
                )
            ],
        )?;
        crate::store::versions::bump(&tx, crate::store::versions::PROFILES)?;
        tx.commit()?;
        Ok(report)
    })();
    conn.pragma_update(None, "cache_size", cache)?;
    progress.finish();
    result
}

/// After a steward decision, inside its transaction: move the events of
/// `customers` (their ids before and after the decision) to their records'
/// ids now and rebuild their profiles, with the rules the profiles were
/// built with. None when there is nothing to refresh (unify has not run).
pub fn refresh(tx: &Connection, customers: &[String]) -> Result<Option<UnifyReport>> {
    let stored: Option<(String, String)> = tx
        .query_row(
            "SELECT survivorship, profiles FROM unify_rules WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((survivorship, profiles)) = stored else {
        return Ok(None);
    };
    let any: Option<i64> = tx
        .query_row("SELECT 1 FROM customer360_profiles LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    if any.is_none() {
        return Ok(None);
    }
    let rules = UnifyRules::parse(
        &survivorship,
        "survivorship.toml",
        &profiles,
        "profiles.toml",
    )?;
    let mut ids: Vec<String> = customers.to_vec();
    ids.sort();
    ids.dedup();
    let mut report = UnifyReport::default();
    let mut laps = Laps {
        clock: Instant::now(),
    };
    report.events = events::reassign(tx, &ids)?;
    laps.lap("events", &mut report);
    build_profiles(
        tx,
        &rules,
        Some(&ids),
        true,
        &mut report,
        &mut laps,
        &crate::pipeline::progress::NoProgress,
    )?;
    Ok(Some(report))
}

/// The step's work in one transaction: the events phase (a rebuild, or
/// only what changed since the last run), then the profiles phase.
fn step(
    tx: &Connection,
    rules: &UnifyRules,
    texts: (&str, &str),
    full: bool,
    progress: &dyn Progress,
) -> Result<UnifyReport> {
    let mut report = UnifyReport::default();
    let mut laps = Laps {
        clock: Instant::now(),
    };
    let (counts, touched) = match incremental_base(tx, texts, full)? {
        None => (events::rebuild(tx, progress)?, None),
        Some(covered) => {
            progress.start("unify: events", 0);
            let mut ids = identity_changes(tx)?;
            events::reassign(tx, &ids)?;
            let (counts, appended) = events::append(tx, &covered)?;
            let before = covered.counts;
            let added = (counts.web - before.web) + (counts.orders - before.orders);
            report.incremental = Some((added, None));
            ids.extend(appended);
            ids.sort_unstable();
            ids.dedup();
            (counts, Some(ids))
        }
    };
    tx.execute("DELETE FROM identity_changes", [])?;
    events::Covered::now(tx, counts)?.write(tx)?;
    report.web_events = counts.web;
    report.transactions = counts.orders;
    report.lifecycle_events = counts.lifecycle;
    report.lifecycle_untimed = counts.lifecycle_untimed;
    report.events = counts.web + counts.orders + counts.lifecycle;
    progress.finish();
    laps.lap("events", &mut report);
    check_cancelled(progress, "unify")?;
    // Recency depends on "now": when it moved, every profile is rebuilt.
    // Many customers are rebuilt faster in one pass over everything.
    let all: i64 = tx.query_row("SELECT count(*) FROM customer360_profiles", [], |r| {
        r.get(0)
    })?;
    let only = match touched {
        Some(ids) if !now_moved(tx, rules)? && (ids.len() as i64) * 8 < all => {
            report.incremental = report.incremental.map(|(a, _)| (a, Some(ids.len() as u64)));
            Some(ids)
        }
        _ => None,
    };
    build_profiles(
        tx,
        rules,
        only.as_deref(),
        false,
        &mut report,
        &mut laps,
        progress,
    )?;
    Ok(report)
}

/// What the last run covered, when this one may build on it: not `full`,
/// same rules, the clean tables not rewritten since, profiles there.
fn incremental_base(
    tx: &Connection,
    (survivorship, profiles): (&str, &str),
    full: bool,
) -> Result<Option<events::Covered>> {
    if full {
        return Ok(None);
    }
    let Some(covered) = events::Covered::read(tx)? else {
        return Ok(None);
    };
    let same_rules: bool = tx
        .query_row(
            "SELECT survivorship = ?1 AND profiles = ?2 FROM unify_rules WHERE id = 1",
            params![survivorship, profiles],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false);
    let rebuilt = crate::store::versions::version(tx, crate::store::versions::CLEAN_REBUILT)?;
    let any: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM customer360_profiles)",
        [],
        |r| r.get(0),
    )?;
    Ok((same_rules && rebuilt == covered.clean_rebuilt && any).then_some(covered))
}

/// The customers whose records changed id since unify last ran.
fn identity_changes(tx: &Connection) -> Result<Vec<String>> {
    let mut stmt = tx.prepare("SELECT customer360_id FROM identity_changes")?;
    let ids = stmt.query_map([], |r| r.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}

/// Whether "now" for the recency figures differs from the one the stored
/// profiles were built with.
fn now_moved(tx: &Connection, rules: &UnifyRules) -> Result<bool> {
    if rules.now.is_some() {
        return Ok(false);
    }
    let stored: Option<String> = tx
        .query_row("SELECT as_of FROM customer360_profiles LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    let (_, now) = as_of(tx, rules, false)?;
    Ok(stored.as_deref() != Some(now.as_str()))
}

/// Phase timings (and, with C360_TRACE set, memory on stderr).
struct Laps {
    clock: Instant,
}

impl Laps {
    fn lap(&mut self, name: &str, report: &mut UnifyReport) {
        let secs = self.clock.elapsed().as_secs_f64();
        report.phases.push((name.to_string(), secs));
        if std::env::var_os("C360_TRACE").is_some() {
            let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let f = |k: &str| {
                st.lines()
                    .find(|l| l.starts_with(k))
                    .unwrap_or("")
                    .to_string()
            };
            eprintln!("TRACE {name} {secs:.2}s {} {}", f("VmRSS"), f("VmHWM"));
        }
        self.clock = Instant::now();
    }
}

/// The customers to build: every id of the map, or those of `only` that
/// still have records (sorted).
fn customers(tx: &Connection, only: Option<&[String]>) -> Result<Vec<String>> {
    match only {
        None => {
            let mut stmt = tx.prepare(
                "SELECT DISTINCT customer360_id FROM customer360_id_map ORDER BY customer360_id",
            )?;
            let ids = stmt.query_map([], |r| r.get(0))?;
            Ok(ids.collect::<rusqlite::Result<_>>()?)
        }
        Some(ids) => {
            let mut stmt =
                tx.prepare("SELECT 1 FROM customer360_id_map WHERE customer360_id = ?1 LIMIT 1")?;
            let mut out = Vec::new();
            for id in ids {
                if stmt.exists([id])? {
                    out.push(id.clone());
                }
            }
            Ok(out)
        }
    }
}

/// "Now" for the recency figures: the rules' fixed one, else (live) the one
/// the profiles were built with, else the latest event in the data.
fn as_of(tx: &Connection, rules: &UnifyRules, live: bool) -> Result<(i64, String)> {
    if let Some((ms, text)) = &rules.now {
        return Ok((*ms, text.clone()));
    }
    let stored: Option<String> = if live {
        tx.query_row("SELECT as_of FROM customer360_profiles LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?
    } else {
        tx.query_row(
            "SELECT max(t) FROM (SELECT max(event_time) AS t FROM clean_web_events
                                 UNION ALL SELECT max(order_time) FROM clean_transactions)",
            [],
            |r| r.get(0),
        )?
    };
    Ok(
        match stored
            .as_deref()
            .and_then(|t| iso_ms(t).map(|ms| (ms, t.to_string())))
        {
            Some(x) => x,
            None => (iso_ms(&now_utc()).unwrap_or(0), now_utc()),
        },
    )
}

/// The profiles phase over every customer (`only` None) or some; `live`:
/// after a decision, with the "now" the stored profiles have.
fn build_profiles(
    tx: &Connection,
    rules: &UnifyRules,
    only: Option<&[String]>,
    live: bool,
    report: &mut UnifyReport,
    laps: &mut Laps,
    progress: &dyn Progress,
) -> Result<()> {
    progress.start("unify: activity and golden values", 0);
    let customers = customers(tx, only)?;
    let index: FxHashMap<&str, u32> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let (now, as_of) = as_of(tx, rules, live)?;
    report.as_of = as_of.clone();
    let activity = activity::gather(tx, &index, only, rules, now)?;
    laps.lap("activity", report);
    check_cancelled(progress, "unify")?;
    let candidates = golden::gather(tx, &index, only)?;
    laps.lap("golden candidates", report);
    check_cancelled(progress, "unify")?;

    let rfm = write::rfm(tx, &activity.acts, only, now)?;
    let ctx = profile::Context {
        rules,
        now,
        as_of: &as_of,
        category_names: &activity.category_names,
    };
    let mut w = write::Writer::new(tx, only)?;
    progress.start("unify: profiles", customers.len() as u64);
    {
        let mut record_of_event = profile::record_of_event(tx)?;
        for (ci, id) in customers.iter().enumerate() {
            let row = profile::build_row(
                &ctx,
                &profile::Inputs {
                    id,
                    activity: &activity.acts[ci],
                    crm: &candidates.crm[ci],
                    order_emails: &candidates.order_emails[ci],
                    rfm: rfm.scores[ci],
                },
                &mut record_of_event,
            )?;
            w.put(row, report)?;
            if ci % 4096 == 0 {
                progress.update(ci as u64);
                check_cancelled(progress, "unify")?;
            }
        }
    }
    w.finish(&customers, only, report)?;
    write::ripple_rfm(tx, &rfm.changed_others)?;
    report.profiles = match only {
        None => customers.len() as u64,
        Some(_) => tx.query_row("SELECT count(*) FROM customer360_profiles", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    };
    laps.lap("profiles", report);
    progress.finish();
    Ok(())
}

/// Run `all` once, or `one` once per customer of `only`, calling `f` per row.
pub(super) fn each_row(
    tx: &Connection,
    all: &str,
    one: &str,
    only: Option<&[String]>,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
) -> Result<()> {
    match only {
        None => {
            let mut stmt = tx.prepare(all)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                f(r)?;
            }
        }
        Some(ids) => {
            let mut stmt = tx.prepare(one)?;
            for id in ids {
                let mut rows = stmt.query([id])?;
                while let Some(r) = rows.next()? {
                    f(r)?;
                }
            }
        }
    }
    Ok(())
}

/// The stored profile of one customer as (column, value text) pairs, for
/// the CLI; None when there is none.
pub fn profile_fields(conn: &Connection, id: &str) -> Result<Option<Vec<(String, String)>>> {
    let mut stmt = conn.prepare("SELECT * FROM customer360_profiles WHERE customer360_id = ?1")?;
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    stmt.query_row([id], |r| {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(x) => x.to_string(),
                rusqlite::types::ValueRef::Real(x) => x.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(_) => "(blob)".into(),
            };
            out.push((n.clone(), v));
        }
        Ok(out)
    })
    .optional()
    .map_err(Into::into)
}
