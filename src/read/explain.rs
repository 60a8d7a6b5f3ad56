//! `c360 explain` and the Customers screen's "why": why records are one
//! customer, read from what the resolve step wrote. Every value from the
//! data is escaped (a newline in an id shows as `\n`), so the text's own
//! lines are the only lines.

use crate::pipeline::identity::steward::{self, CandidateDetail};
use crate::safe_text::escape as esc;
use anyhow::Result;
use rusqlite::{Connection, OptionalExtension};
use std::fmt::Write as _;

/// Everything `explain` says about a customer, as data (`--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    pub customer360_id: String,
    /// Every record of the customer, by key.
    pub records: Vec<String>,
    /// The identifiers the records carry, most shared first.
    pub identifiers: Vec<SharedIdentifier>,
    /// Anonymous records given to the customer by the nearest login on a
    /// shared device.
    pub attributed_anonymous: i64,
    /// Fuzzy pairs between the customer's records (most probable first).
    pub fuzzy_inside: Vec<CandidateDetail>,
    /// Fuzzy pairs with other customers, not merged.
    pub fuzzy_across: Vec<CandidateDetail>,
    pub decisions: Vec<Decision>,
    pub lineage: Vec<LineageStep>,
}

/// An identifier the customer's records carry and what it did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SharedIdentifier {
    pub kind: String,
    pub value: String,
    /// linked, blocked, shared or over_limit (as the resolve step wrote it).
    pub status: String,
    /// Customers holding the value (for shared and over-limit values).
    pub customers: i64,
    /// The customer's records that carry it.
    pub records: i64,
}

/// A steward decision on one of the customer's records.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    pub decision_id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub left: String,
    pub right: String,
    pub reason: String,
    pub undone_at: Option<String>,
}

/// A merge or split the id went through.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LineageStep {
    pub old_id: String,
    pub new_id: String,
    pub reason: String,
    pub at: String,
}

/// Why records are one customer: the customer's records and, for each
/// identifier they carry, its kind, value, status and how many of the
/// customer's records share it; the fuzzy pairs inside and across, the
/// steward decisions and the id's lineage. `who` is a customer360_id or a
/// record key (`system:source:record_id`).
pub fn explain(conn: &Connection, who: &str) -> Result<String> {
    Ok(render(&gather(conn, who)?)?)
}

/// [`explain`] as data.
pub fn gather(conn: &Connection, who: &str) -> Result<Explanation> {
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
    let (fuzzy_inside, fuzzy_across) = fuzzy_pairs(conn, &id)?;
    Ok(Explanation {
        records: records(conn, &id)?,
        identifiers: identifiers(conn, &id)?,
        attributed_anonymous: attributed(conn, &id)?,
        fuzzy_inside,
        fuzzy_across,
        decisions: decisions(conn, &id)?,
        lineage: lineage(conn, &id)?,
        customer360_id: id,
    })
}

/// The explanation as text, every value from the data escaped.
fn render(e: &Explanation) -> std::result::Result<String, std::fmt::Error> {
    let mut out = String::new();
    writeln!(
        out,
        "{}: {} records",
        esc(&e.customer360_id),
        e.records.len()
    )?;
    for r in e.records.iter().take(50) {
        writeln!(out, "  {}", esc(r))?;
    }
    if e.records.len() > 50 {
        writeln!(out, "  … and {} more", e.records.len() - 50)?;
    }
    writeln!(out, "\nWhy they are one customer (identifiers they share):")?;
    for i in &e.identifiers {
        let (n, customers) = (i.records, i.customers);
        let why = match i.status.as_str() {
            "linked" if n > 1 => format!("links {n} of these records"),
            "linked" => "on one record only".to_string(),
            "blocked" => "blocked junk value: links nobody".to_string(),
            "shared" => format!(
                "shared device of {customers} customers: merges nobody; its anonymous events went to the user logged in nearest in time"
            ),
            _ => format!("shared by {customers} customers, over its limit: links nobody"),
        };
        writeln!(out, "  {:<12} {:<40} {why}", esc(&i.kind), esc(&i.value))?;
    }
    if e.attributed_anonymous > 0 {
        writeln!(
            out,
            "  {} anonymous record(s) given to this customer by the nearest login on a shared device",
            e.attributed_anonymous
        )?;
    }
    if !e.fuzzy_inside.is_empty() {
        writeln!(
            out,
            "\nFuzzy matches between these records (weights in bits, log2 m/u):"
        )?;
        pair_lines(&mut out, &e.fuzzy_inside)?;
    }
    if !e.fuzzy_across.is_empty() {
        writeln!(out, "\nPairs with other customers, not merged:")?;
        pair_lines(&mut out, &e.fuzzy_across)?;
    }
    decision_lines(&mut out, &e.decisions)?;
    if !e.lineage.is_empty() {
        writeln!(out, "\nLineage:")?;
        for l in &e.lineage {
            writeln!(
                out,
                "  {}  {} -> {} ({})",
                esc(&l.at),
                esc(&l.old_id),
                esc(&l.new_id),
                esc(&l.reason)
            )?;
        }
    }
    Ok(out)
}

/// The customer's records.
fn records(conn: &Connection, id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT record_key FROM customer360_id_map WHERE customer360_id = ?1 ORDER BY record_key",
    )?;
    let records = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(records)
}

/// The identifiers the records share, and what each did.
fn identifiers(conn: &Connection, id: &str) -> Result<Vec<SharedIdentifier>> {
    let mut stmt = conn.prepare(
        "SELECT i.kind, i.value, i.status, coalesce(i.customers, 0), count(*) AS n
         FROM customer360_id_map m
         JOIN identity_links l ON l.record_key = m.record_key
         JOIN identifiers i ON i.identifier_id = l.identifier_id
         WHERE m.customer360_id = ?1
         GROUP BY i.identifier_id ORDER BY n DESC, i.kind, i.value",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(SharedIdentifier {
            kind: r.get(0)?,
            value: r.get(1)?,
            status: r.get(2)?,
            customers: r.get(3)?,
            records: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Anonymous records attributed to the customer through a shared device.
fn attributed(conn: &Connection, id: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM customer360_id_map m
         JOIN identity_links l ON l.record_key = m.record_key
         WHERE m.customer360_id = ?1 AND l.via_record IS NOT NULL",
        [id],
        |r| r.get(0),
    )?)
}

/// Fuzzy pairs touching the records: the merges that hold the customer
/// together, and pairs with other customers still open.
fn fuzzy_pairs(
    conn: &Connection,
    id: &str,
) -> Result<(Vec<CandidateDetail>, Vec<CandidateDetail>)> {
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
    Ok((inside, across))
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
fn decisions(conn: &Connection, id: &str) -> Result<Vec<Decision>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT d.decision_id, d.at, d.actor, d.action, coalesce(d.pair_left, ''),
                coalesce(d.pair_right, ''), d.reason, d.undone_at
         FROM customer360_id_map m
         JOIN decision_members dm ON dm.record_key = m.record_key
         JOIN steward_decisions d ON d.decision_id = dm.decision_id
         WHERE m.customer360_id = ?1 ORDER BY d.decision_id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(Decision {
            decision_id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            left: r.get(4)?,
            right: r.get(5)?,
            reason: r.get(6)?,
            undone_at: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The decisions as lines of text.
fn decision_lines(out: &mut String, decisions: &[Decision]) -> std::fmt::Result {
    if decisions.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nSteward decisions:")?;
    for d in decisions {
        let pair = if d.right.is_empty() {
            esc(&d.left).into_owned()
        } else {
            format!("{} + {}", esc(&d.left), esc(&d.right))
        };
        let reason = if d.reason.is_empty() {
            String::new()
        } else {
            format!(": \"{}\"", esc(&d.reason))
        };
        let state = d
            .undone_at
            .as_ref()
            .map_or(String::new(), |u| format!(" (undone {})", esc(u)));
        writeln!(
            out,
            "  #{} {} {} {} {pair}{reason}{state}",
            d.decision_id,
            esc(&d.at),
            esc(&d.actor),
            esc(&d.action)
        )?;
    }
    Ok(())
}

/// The merges and splits the id went through.
fn lineage(conn: &Connection, id: &str) -> Result<Vec<LineageStep>> {
    let mut stmt = conn.prepare(
        "SELECT old_id, new_id, reason, at FROM customer360_id_lineage
         WHERE old_id = ?1 OR new_id = ?1 ORDER BY lineage_id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(LineageStep {
            old_id: r.get(0)?,
            new_id: r.get(1)?,
            reason: r.get(2)?,
            at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
