//! `c360 explain` and the Customers screen's "why": why records are one
//! customer, read from what the resolve step wrote. Every value from the
//! data is escaped (a newline in an id shows as `\n`), so the text's own
//! lines are the only lines.

use crate::pipeline::identity::steward::{self, CandidateDetail};
use crate::safe_text::escape as esc;
use anyhow::Result;
use rusqlite::{Connection, OptionalExtension};
use std::fmt::Write as _;

/// Why records are one customer: the customer's records and, for each
/// identifier they carry, its kind, value, status and how many of the
/// customer's records share it; the fuzzy pairs inside and across, the
/// steward decisions and the id's lineage. `who` is a customer360_id or a
/// record key (`system:source:record_id`).
pub fn explain(conn: &Connection, who: &str) -> Result<String> {
    let id: Option<String> = conn
        .query_row(
            "SELECT customer360_id FROM customer360_id_map WHERE customer360_id = ?1
             UNION ALL SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1
             LIMIT 1",
            [who],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else {
        anyhow::bail!(
            "{who:?} is neither a customer360_id nor a record key (system:source:record_id); run `c360 run --step resolve` first"
        );
    };
    let mut out = String::new();
    records(conn, &id, &mut out)?;
    identifiers(conn, &id, &mut out)?;
    fuzzy_pairs(conn, &id, &mut out)?;
    decisions(conn, &id, &mut out)?;
    lineage(conn, &id, &mut out)?;
    Ok(out)
}

/// The customer's records (the first 50).
fn records(conn: &Connection, id: &str, out: &mut String) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT record_key FROM customer360_id_map WHERE customer360_id = ?1 ORDER BY record_key",
    )?;
    let records: Vec<String> = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    writeln!(out, "{}: {} records", esc(id), records.len())?;
    for r in records.iter().take(50) {
        writeln!(out, "  {}", esc(r))?;
    }
    if records.len() > 50 {
        writeln!(out, "  … and {} more", records.len() - 50)?;
    }
    Ok(())
}

/// The identifiers the records share, and what each did.
fn identifiers(conn: &Connection, id: &str, out: &mut String) -> Result<()> {
    writeln!(out, "\nWhy they are one customer (identifiers they share):")?;
    let mut stmt = conn.prepare(
        "SELECT i.kind, i.value, i.status, coalesce(i.customers, 0), count(*) AS n
         FROM customer360_id_map m
         JOIN identity_links l ON l.record_key = m.record_key
         JOIN identifiers i ON i.identifier_id = l.identifier_id
         WHERE m.customer360_id = ?1
         GROUP BY i.identifier_id ORDER BY n DESC, i.kind, i.value",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (kind, value, status, customers, n) = row?;
        let why = match status.as_str() {
            "linked" if n > 1 => format!("links {n} of these records"),
            "linked" => "on one record only".to_string(),
            "blocked" => "blocked junk value: links nobody".to_string(),
            "shared" => format!(
                "shared device of {customers} customers: merges nobody; its anonymous events went to the user logged in nearest in time"
            ),
            _ => format!("shared by {customers} customers, over its limit: links nobody"),
        };
        writeln!(out, "  {:<12} {:<40} {why}", esc(&kind), esc(&value))?;
    }
    let attributed: i64 = conn.query_row(
        "SELECT count(*) FROM customer360_id_map m
         JOIN identity_links l ON l.record_key = m.record_key
         WHERE m.customer360_id = ?1 AND l.via_record IS NOT NULL",
        [id],
        |r| r.get(0),
    )?;
    if attributed > 0 {
        writeln!(
            out,
            "  {attributed} anonymous record(s) given to this customer by the nearest login on a shared device"
        )?;
    }
    Ok(())
}

/// Fuzzy pairs touching the records: the merges that hold the customer
/// together, and pairs with other customers still open.
fn fuzzy_pairs(conn: &Connection, id: &str, out: &mut String) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT c.candidate_id FROM customer360_id_map m
           JOIN match_candidates c ON c.left_key = m.record_key WHERE m.customer360_id = ?1
         UNION
         SELECT c.candidate_id FROM customer360_id_map m
           JOIN match_candidates c ON c.right_key = m.record_key WHERE m.customer360_id = ?1",
    )?;
    let ids: Vec<i64> = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut inside = Vec::new();
    let mut across = Vec::new();
    for cid in ids {
        let d = steward::candidate(conn, cid)?;
        if d.left_customer == d.right_customer {
            inside.push(d);
        } else {
            across.push(d);
        }
    }
    let by_p =
        |a: &CandidateDetail, b: &CandidateDetail| b.row.probability.total_cmp(&a.row.probability);
    inside.sort_by(by_p);
    across.sort_by(by_p);
    if !inside.is_empty() {
        writeln!(
            out,
            "\nFuzzy matches between these records (weights in bits, log2 m/u):"
        )?;
        pair_lines(out, &inside)?;
    }
    if !across.is_empty() {
        writeln!(out, "\nPairs with other customers, not merged:")?;
        pair_lines(out, &across)?;
    }
    Ok(())
}

/// The first 20 pairs of `list`: how each was decided and its weights.
fn pair_lines(out: &mut String, list: &[CandidateDetail]) -> std::fmt::Result {
    for d in list.iter().take(20) {
        let how = match (d.row.decision.as_deref(), d.row.band.as_str()) {
            (Some("approve"), _) => "approved by a steward",
            (Some(_), _) => "rejected by a steward",
            (None, "auto_merge") => "auto-merged",
            _ => "to review",
        };
        writeln!(
            out,
            "  #{} {} ~ {}  p {:.3} ({:+.2} bits) {how}{}; blocking: {}",
            d.row.candidate_id,
            esc(&d.row.left_key),
            esc(&d.row.right_key),
            d.row.probability,
            d.row.match_weight,
            if d.row.flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", esc(&d.row.flags))
            },
            esc(&d.blocking)
        )?;
        let parts: Vec<String> = d
            .comparisons
            .iter()
            .map(|c| format!("{} {} {:+.2}", esc(&c.name), esc(&c.level), c.weight))
            .collect();
        writeln!(out, "      prior {:+.2} · {}", d.prior, parts.join(" · "))?;
    }
    if list.len() > 20 {
        writeln!(out, "  … and {} more", list.len() - 20)?;
    }
    Ok(())
}

/// Steward decisions on any of the records.
fn decisions(conn: &Connection, id: &str, out: &mut String) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT d.decision_id, d.at, d.actor, d.action, coalesce(d.pair_left, ''),
                coalesce(d.pair_right, ''), d.reason, d.undone_at
         FROM customer360_id_map m
         JOIN decision_members dm ON dm.record_key = m.record_key
         JOIN steward_decisions d ON d.decision_id = dm.decision_id
         WHERE m.customer360_id = ?1 ORDER BY d.decision_id",
    )?;
    let lines: Vec<String> = stmt
        .query_map([id], |r| {
            let (did, at, actor, action): (i64, String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let (left, right, reason): (String, String, String) = (r.get(4)?, r.get(5)?, r.get(6)?);
            let undone: Option<String> = r.get(7)?;
            let pair = if right.is_empty() {
                esc(&left).into_owned()
            } else {
                format!("{} + {}", esc(&left), esc(&right))
            };
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(": \"{}\"", esc(&reason))
            };
            let state = undone.map_or(String::new(), |u| format!(" (undone {})", esc(&u)));
            Ok(format!(
                "  #{did} {} {} {} {pair}{reason}{state}",
                esc(&at),
                esc(&actor),
                esc(&action)
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if !lines.is_empty() {
        writeln!(out, "\nSteward decisions:")?;
        for line in lines {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// The merges and splits the id went through.
fn lineage(conn: &Connection, id: &str, out: &mut String) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT old_id, new_id, reason, at FROM customer360_id_lineage
         WHERE old_id = ?1 OR new_id = ?1 ORDER BY lineage_id",
    )?;
    let lineage: Vec<(String, String, String, String)> = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if !lineage.is_empty() {
        writeln!(out, "\nLineage:")?;
        for (old, new, reason, at) in lineage {
            writeln!(
                out,
                "  {}  {} -> {} ({})",
                esc(&at),
                esc(&old),
                esc(&new),
                esc(&reason)
            )?;
        }
    }
    Ok(())
}
