//! The pipeline's steps, one folder each: `load` (extract and stage),
//! `standardise`, `identity` (resolve), `unify`, `analyse`; plus what they
//! share (progress, schema, fingerprints, time parsing). No UI imports
//! here; the queries that serve screens and exports live in
//! [`crate::read`].
//!
//! Every step run, from the CLI or the TUI, goes through [`run_step`], which
//! records a `pipeline_runs` row (rows in / out, seconds, status).

pub mod analyse;
pub mod fingerprint;
pub mod identity;
pub mod load;
pub mod money;
pub mod progress;
pub mod schema;
pub mod standardise;
pub mod timeparse;
pub mod unify;
pub mod zones;

use crate::workspace::Workspace;
use anyhow::{Result, bail};
use progress::Progress;
use rusqlite::{Connection, OptionalExtension, params};
use std::time::Instant;

/// One pipeline step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub title: &'static str,
    /// False for steps this build does not have yet (shown, never faked).
    pub available: bool,
}

/// The six steps, in order. Extract and stage run together as `load`.
pub const STEPS: &[Step] = &[
    Step {
        name: "extract",
        title: "Extract",
        available: true,
    },
    Step {
        name: "stage",
        title: "Land & stage",
        available: true,
    },
    Step {
        name: "standardise",
        title: "Standardise",
        available: true,
    },
    Step {
        name: "resolve",
        title: "Resolve identity",
        available: true,
    },
    Step {
        name: "unify",
        title: "Unify",
        available: true,
    },
    Step {
        name: "analyse",
        title: "Analyse",
        available: true,
    },
];

pub fn step(name: &str) -> Option<&'static Step> {
    STEPS.iter().find(|s| s.name == name)
}

/// What a step run did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub step: &'static str,
    pub rows_in: u64,
    pub rows_out: u64,
    pub seconds: f64,
    pub message: String,
    pub loads: Vec<load::stage::LoadReport>,
    /// The phases as they ran (wall and CPU seconds); none when up to date.
    pub phases: Vec<progress::PhaseTime>,
}

/// Run every available step in order (extract and stage run once, as the
/// load). Stops at the first failure.
pub fn run_all(
    conn: &mut Connection,
    ws: &Workspace,
    progress: &dyn Progress,
) -> Result<Vec<StepReport>> {
    run_all_with(conn, ws, progress, Mode::Incremental)
}

/// [`run_all`], choosing how much each step redoes.
pub fn run_all_with(
    conn: &mut Connection,
    ws: &Workspace,
    progress: &dyn Progress,
    mode: Mode,
) -> Result<Vec<StepReport>> {
    // Held across the steps, so that no other run slips in between them.
    let _run = crate::store::lock::lock_run(&ws.db_path(), "run all", progress)?;
    let mut reports = Vec::new();
    for step in STEPS.iter().filter(|s| s.available && s.name != "extract") {
        reports.push(run_step_with(conn, ws, step.name, progress, mode)?);
    }
    Ok(reports)
}

/// Run one step (extract and stage both mean: load every source) and record
/// it in `pipeline_runs`. A failed or cancelled run is recorded as such.
/// Incremental: a step whose inputs did not change since its last
/// successful run is not redone (see [`fingerprint`]).
pub fn run_step(
    conn: &mut Connection,
    ws: &Workspace,
    name: &str,
    progress: &dyn Progress,
) -> Result<StepReport> {
    run_step_with(conn, ws, name, progress, Mode::Incremental)
}

/// How much a step run redoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Skip a step whose inputs did not change since its last run.
    Incremental,
    /// Redo every step's whole work (must give the same results).
    Full,
}

/// [`run_step`], choosing how much it redoes.
pub fn run_step_with(
    conn: &mut Connection,
    ws: &Workspace,
    name: &str,
    progress: &dyn Progress,
    mode: Mode,
) -> Result<StepReport> {
    let Some(step) = step(name) else {
        bail!(
            "unknown step {name:?}; steps: {}",
            STEPS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        );
    };
    if !step.available {
        bail!("step {:?} is not available in this build yet", step.name);
    }
    // Pipeline runs never interleave: a second one waits for the first.
    let run_name = run_name(step.name);
    let _run = crate::store::lock::lock_run(&ws.db_path(), &format!("run {run_name}"), progress)?;
    let started = Instant::now();
    let started_at = crate::pipeline::timeparse::now_utc();
    let fingerprint = fingerprint::of_step(conn, ws, step.name)?;
    if let (Some(fp), Mode::Incremental) = (&fingerprint, mode)
        && let Some(report) = fingerprint::up_to_date(conn, step.name, fp, &started_at, started)?
    {
        return Ok(report);
    }
    let timed = progress::StepProgress::with_plan(
        progress,
        previous_phases(conn, run_name),
        phase_plan(ws, run_name),
    );
    // A cancel interrupts the step's SQL at once (see interrupt_on_cancel).
    let handle = conn.get_interrupt_handle();
    let result = progress::interrupt_on_cancel(handle, progress, || {
        run_body(conn, ws, step.name, &timed, mode)
    })
    .map_err(|e| {
        // An interrupted statement says only "interrupted": say why.
        if progress::was_interrupted(&e) {
            anyhow::anyhow!("{} cancelled; nothing was written", step.name)
        } else {
            e
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let (status, rows_in, rows_out, message) = match &result {
        Ok((i, o, m, _)) => ("ok", *i, *o, m.clone()),
        Err(e) if progress.is_cancelled() => ("cancelled", 0, 0, format!("{e:#}")),
        Err(e) => ("failed", 0, 0, format!("{e:#}")),
    };
    let phases = timed.phases();
    conn.execute(
        "INSERT INTO pipeline_runs (step, status, rows_in, rows_out, seconds, started_at, finished_at, message, phases)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            run_name,
            status,
            rows_in as i64,
            rows_out as i64,
            seconds,
            started_at,
            crate::pipeline::timeparse::now_utc(),
            message,
            serde_json::to_string(&phases)?
        ],
    )?;
    let (_, _, _, loads) = result?;
    if let Some(fp) = &fingerprint {
        crate::store::versions::record(conn, step.name, fp)?;
    }
    Ok(StepReport {
        step: step.name,
        rows_in,
        rows_out,
        seconds,
        message,
        loads,
        phases,
    })
}

/// The name a step's runs have in `pipeline_runs` and the run lock:
/// `extract` and `stage` both mean the load.
pub fn run_name(step: &str) -> &str {
    if matches!(step, "extract" | "stage") {
        "load"
    } else {
        step
    }
}

/// A step's last run, as `pipeline_runs` records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LastRun {
    pub status: String,
    pub rows_in: i64,
    pub rows_out: i64,
    pub seconds: f64,
    pub finished_at: Option<String>,
    pub message: Option<String>,
}

/// The last run of a step (`extract` and `stage` both mean the load).
pub fn last_run(conn: &Connection, step: &str) -> Result<Option<LastRun>> {
    latest_run(conn, step, false)
}

/// The last successful run of a step: what its tables hold now, when a
/// later run failed or was cancelled (and rolled back).
pub fn last_ok_run(conn: &Connection, step: &str) -> Result<Option<LastRun>> {
    latest_run(conn, step, true)
}

fn latest_run(conn: &Connection, step: &str, only_ok: bool) -> Result<Option<LastRun>> {
    Ok(conn
        .query_row(
            "SELECT status, rows_in, rows_out, seconds, finished_at, message FROM pipeline_runs
             WHERE step = ?1 AND (?2 = 0 OR status = 'ok') ORDER BY run_id DESC LIMIT 1",
            rusqlite::params![run_name(step), only_ok as i64],
            |r| {
                Ok(LastRun {
                    status: r.get(0)?,
                    rows_in: r.get(1)?,
                    rows_out: r.get(2)?,
                    seconds: r.get(3)?,
                    finished_at: r.get(4)?,
                    message: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// The phases a step goes through, by name, for the share done of its
/// first run (later runs are estimated from the previous run's timings).
fn phase_plan(ws: &Workspace, run_name: &str) -> Vec<String> {
    let systems = || {
        let mut v: Vec<&str> = ws.sources.iter().map(|s| s.system.as_str()).collect();
        v.sort();
        v.dedup();
        v
    };
    match run_name {
        "load" => ws
            .sources
            .iter()
            .map(|s| format!("load {}", s.name))
            .collect(),
        "standardise" => systems()
            .into_iter()
            .map(|s| format!("standardise {s}"))
            .collect(),
        "resolve" => {
            let mut v: Vec<String> = systems()
                .into_iter()
                .map(|s| format!("resolve: read {s}"))
                .collect();
            v.extend(
                [
                    "deterministic links",
                    "fuzzy matching",
                    "cluster",
                    "clear previous results",
                    "write identifiers and links",
                    "write the id map",
                    "write lineage and candidates",
                ]
                .map(|p| format!("resolve: {p}")),
            );
            v
        }
        "unify" => [
            "unify: events",
            "unify: activity and golden values",
            "unify: profiles",
        ]
        .map(String::from)
        .to_vec(),
        "analyse" => ["analyse: events", "analyse"].map(String::from).to_vec(),
        _ => Vec::new(),
    }
}

/// The phases of a step's last successful run that did its work (none
/// before the first): what [`progress::StepProgress`] estimates from.
fn previous_phases(conn: &Connection, run_name: &str) -> Vec<progress::PhaseTime> {
    let json: Option<String> = conn
        .query_row(
            "SELECT phases FROM pipeline_runs
             WHERE step = ?1 AND status = 'ok' AND phases IS NOT NULL AND phases != '[]'
             ORDER BY run_id DESC LIMIT 1",
            [run_name],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    json.and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default()
}

/// One step's work: (rows in, rows out, message, load reports).
fn run_body(
    conn: &mut Connection,
    ws: &Workspace,
    name: &str,
    progress: &dyn Progress,
    mode: Mode,
) -> Result<(u64, u64, String, Vec<load::stage::LoadReport>)> {
    match name {
        "extract" | "stage" => load::stage::load_all(conn, ws, progress).map(|loads| {
            let fresh: Vec<_> = loads.iter().filter(|l| !l.already_loaded).collect();
            let read: u64 = fresh.iter().map(|l| l.rows_read).sum();
            let staged: u64 = fresh.iter().map(|l| l.rows_staged).sum();
            let rejected: u64 = fresh.iter().map(|l| l.rows_rejected).sum();
            let mut msg = format!(
                "{} source(s) loaded, {} unchanged; {read} read, {staged} staged, {rejected} rejected",
                fresh.len(),
                loads.len() - fresh.len()
            );
            // A source staged with other settings than c360.toml's now.
            let stale: Vec<&str> = loads
                .iter()
                .filter(|l| l.restage_hint.is_some())
                .map(|l| l.source.as_str())
                .collect();
            if !stale.is_empty() {
                msg.push_str(&format!(
                    "; mapping changed since staged: {} (c360 load --restage)",
                    stale.join(", ")
                ));
            }
            let unfound: usize = loads.iter().map(|l| l.warnings.len()).sum();
            if unfound > 0 {
                msg.push_str(&format!(
                    "; {unfound} mapped path(s) found in no record (see the load's messages)"
                ));
            }
            (read, staged, msg, loads)
        }),
        "standardise" => standardise::run(conn, ws, progress, mode == Mode::Full).map(|r| {
            let msg = format!(
                "{}{} rows in, {} clean ({} CRM, {} web, {} transactions); {} unknown countries, {} unmapped event names",
                if r.incremental { "new batches only: " } else { "" },
                r.rows_in, r.rows_out, r.crm, r.web, r.transactions, r.unknown_countries, r.unmapped_events
            );
            (r.rows_in, r.rows_out, msg, Vec::new())
        }),
        "resolve" => identity::resolve::run_with(conn, ws, progress, mode == Mode::Full)
            .map(|r| (r.records, r.customers, r.summary(), Vec::new())),
        "unify" => unify::run_with(conn, ws, progress, mode == Mode::Full)
            .map(|r| (r.events, r.profiles, r.summary(), Vec::new())),
        "analyse" => analyse::run(conn, progress)
            .map(|r| (r.events, r.profiles, r.summary(), Vec::new())),
        other => bail!("step {other:?} has no runner"),
    }
}
