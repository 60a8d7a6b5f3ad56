//! What each step reads, as a fingerprint: the versions of its input tables
//! (see [`crate::store::versions`]), its rule files and the workspace
//! configuration. A step whose fingerprint equals the one its last
//! successful run recorded has nothing to do; its run is recorded as "up to
//! date" with the last run's counts.

use super::StepReport;
use crate::store::versions::{self, CLEAN, IDENTITY, PROFILES, STAGED};
use crate::workspace::Workspace;
use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use std::time::Instant;

/// Bump when a step's logic changes what it writes, so that workspaces built
/// by an older binary are redone once.
const LOGIC_VERSION: u32 = 2;

/// Inputs of a step: the table versions it reads and the rule files.
fn inputs(step: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match step {
        "standardise" => (
            &[STAGED],
            &[
                "countries.toml",
                "events.toml",
                "people.toml",
                "orders.toml",
            ],
        ),
        "resolve" => (&[CLEAN], &["identity.toml", "nicknames.csv"]),
        "unify" => (&[CLEAN, IDENTITY], &["survivorship.toml", "profiles.toml"]),
        "analyse" => (&[PROFILES], &["profiles.toml"]),
        _ => return None,
    })
}

/// The fingerprint of a step's inputs now; None for load, which recognises
/// its files by their content hash instead.
pub fn of_step(conn: &Connection, ws: &Workspace, step: &str) -> Result<Option<String>> {
    let Some((tables, rules)) = inputs(step) else {
        return Ok(None);
    };
    let mut h = blake3::Hasher::new();
    h.update(rules_hash(ws, step, rules, true).as_bytes());
    for t in tables {
        h.update(format!("{t}={}\0", versions::version(conn, t)?).as_bytes());
    }
    Ok(Some(h.finalize().to_hex().to_string()))
}

/// The fingerprint of a step's rule files alone (not the workspace
/// configuration), with `extra` (what of the configuration the step uses).
pub fn rule_files_of(ws: &Workspace, step: &str, extra: &str) -> String {
    let rules = inputs(step).map_or(&[][..], |(_, r)| r);
    let mut h = blake3::Hasher::new();
    h.update(rules_hash(ws, step, rules, false).as_bytes());
    h.update(extra.as_bytes());
    h.finalize().to_hex().to_string()
}

fn rules_hash(ws: &Workspace, step: &str, rules: &[&str], with_config: bool) -> String {
    let mut h = blake3::Hasher::new();
    h.update(format!("{step}\0{}\0{LOGIC_VERSION}\0", env!("CARGO_PKG_VERSION")).as_bytes());
    // A missing file hashes as missing.
    let config = with_config.then(|| ws.root.join("c360.toml"));
    let files = config
        .into_iter()
        .chain(rules.iter().map(|r| ws.rules_dir().join(r)));
    for path in files {
        // The file's name, not its folder: a workspace moved elsewhere is
        // the same workspace.
        h.update(path.file_name().unwrap_or_default().as_encoded_bytes());
        match std::fs::read(&path) {
            Ok(bytes) => h.update(b"\x01").update(&bytes),
            Err(_) => h.update(b"\x00"),
        };
    }
    h.finalize().to_hex().to_string()
}

/// Whether a step's inputs changed since its last successful run (a step
/// that never ran is not stale: it has nothing to show).
pub fn is_stale(conn: &Connection, ws: &Workspace, step: &str) -> Result<bool> {
    let Some(last) = versions::last_fingerprint(conn, step)? else {
        return Ok(false);
    };
    Ok(of_step(conn, ws, step)?.is_some_and(|now| now != last))
}

/// How an "up to date" run's message starts: the time and message of the
/// run that did the work follow (its counts are as of then).
const UP_TO_DATE: &str = "up to date (nothing changed since the run at ";

/// When the step's last successful run had this fingerprint, record an "up
/// to date" run (its counts carried over) and return its report.
pub fn up_to_date(
    conn: &Connection,
    step: &'static str,
    fingerprint: &str,
    started_at: &str,
    started: Instant,
) -> Result<Option<StepReport>> {
    if versions::last_fingerprint(conn, step)?.as_deref() != Some(fingerprint) {
        return Ok(None);
    }
    let last: Option<(i64, i64, String, String)> = conn
        .query_row(
            "SELECT rows_in, rows_out, coalesce(finished_at, ''), coalesce(message, '')
             FROM pipeline_runs WHERE step = ?1 AND status = 'ok' ORDER BY run_id DESC LIMIT 1",
            [step],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((rows_in, rows_out, at, message)) = last else {
        return Ok(None);
    };
    // Carried over from run to run: the last run that did the work.
    let (since_at, reported) = message
        .strip_prefix(UP_TO_DATE)
        .and_then(|m| m.strip_suffix(')'))
        .and_then(|m| m.split_once(", which reported: "))
        .unwrap_or((at.as_str(), message.as_str()));
    let message = format!("{UP_TO_DATE}{since_at}, which reported: {reported})");
    let seconds = started.elapsed().as_secs_f64();
    conn.execute(
        "INSERT INTO pipeline_runs (step, status, rows_in, rows_out, seconds, started_at, finished_at, message)
         VALUES (?1, 'ok', ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            step,
            rows_in,
            rows_out,
            seconds,
            started_at,
            crate::pipeline::timeparse::now_utc(),
            message
        ],
    )?;
    Ok(Some(StepReport {
        step,
        rows_in: rows_in as u64,
        rows_out: rows_out as u64,
        seconds,
        message,
        loads: Vec::new(),
        phases: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_date_runs_carry_the_working_runs_time_and_message_without_nesting() {
        let conn = crate::store::open_in_memory().unwrap();
        versions::record(&conn, "unify", "fp").unwrap();
        conn.execute(
            "INSERT INTO pipeline_runs (step, status, rows_in, rows_out, seconds, started_at, finished_at, message)
             VALUES ('unify', 'ok', 10, 3, 1.0, 't0', 'T1', '3 profiles')",
            [],
        )
        .unwrap();
        assert!(
            up_to_date(&conn, "unify", "other", "t", Instant::now())
                .unwrap()
                .is_none()
        );
        for _ in 0..2 {
            let r = up_to_date(&conn, "unify", "fp", "t", Instant::now())
                .unwrap()
                .unwrap();
            assert_eq!(
                r.message,
                "up to date (nothing changed since the run at T1, which reported: 3 profiles)"
            );
            assert_eq!((r.rows_in, r.rows_out), (10, 3));
        }
    }
}
