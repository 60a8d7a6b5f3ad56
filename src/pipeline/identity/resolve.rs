//! The resolve step, deterministic part: read the clean tables, link records
//! that share identifiers (within the guardrails of `rules/identity.toml`),
//! give every cluster a stable `customer360_id`, and write `identifiers`,
//! `identity_links`, `customer360_id_map`, `customer360_id_lineage` and
//! `audit_log` in one transaction.
//!
//! Not yet here (issue 5 goes on): fuzzy candidates and their weights,
//! steward decisions, anonymous events on shared devices attributed to the
//! nearest login.

use super::deterministic::{IdentityRules, Status, link};
use super::{assign_ids, eval};
use crate::pipeline::progress::Progress;
use crate::pipeline::schema::System;
use crate::pipeline::timeparse::now_utc;
use crate::workspace::Workspace;
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// What a resolve run did.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveReport {
    pub records: u64,
    pub identifiers: u64,
    pub blocked: u64,
    pub over_limit: u64,
    pub customers: u64,
    pub minted: u64,
    pub merges: u64,
    pub splits: u64,
}

/// The clean table of a system and the SQL for a record's id.
fn table_of(system: System) -> (&'static str, &'static str) {
    match system {
        System::Crm => ("clean_crm_customers", "customer_id"),
        System::Web => ("clean_web_events", "event_id"),
        System::Transactions => ("clean_transactions", "order_id"),
    }
}

/// A record's key: system, source, record id (and type for transactions).
fn record_key(system: System, source: &str, id: &str, extra: Option<&str>) -> String {
    match extra {
        Some(x) => format!("{system}:{source}:{id}:{x}"),
        None => format!("{system}:{source}:{id}"),
    }
}

pub fn run(
    conn: &mut Connection,
    ws: &Workspace,
    progress: &dyn Progress,
) -> Result<ResolveReport> {
    let path = ws.rules_dir().join("identity.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (every workspace needs it; copy it from the repository's rules/)",
            path.display()
        )
    })?;
    let rules = IdentityRules::parse(&text, &path.display().to_string())?;

    // Records and their identifiers.
    let mut keys: Vec<(String, System, String, String)> = Vec::new();
    let mut ids: Vec<Vec<(usize, String)>> = Vec::new();
    for system in System::ALL {
        let (table, id_col) = table_of(system);
        let wanted: Vec<(usize, &str)> = rules
            .kinds
            .iter()
            .enumerate()
            .flat_map(|(k, kind)| {
                kind.fields
                    .iter()
                    .filter(move |(s, _)| *s == system)
                    .map(move |(_, f)| (k, f.as_str()))
            })
            .collect();
        let type_col = if system == System::Transactions {
            "transaction_type"
        } else {
            "NULL"
        };
        let cols: Vec<&str> = wanted.iter().map(|(_, f)| *f).collect();
        let sql = format!(
            "SELECT source, {id_col}, {type_col}{}{} FROM {table} ORDER BY rowid",
            if cols.is_empty() { "" } else { ", " },
            cols.join(", ")
        );
        progress.start(&format!("resolve: read {system}"), 0);
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let source: String = row.get(0)?;
            let id: String = row.get(1)?;
            let kind: Option<String> = row.get(2)?;
            let mut mine = Vec::new();
            for (i, (k, _)) in wanted.iter().enumerate() {
                if let Some(v) = row.get::<_, Option<String>>(3 + i)? {
                    let v = v.trim();
                    if !v.is_empty() {
                        mine.push((*k, v.to_string()));
                    }
                }
            }
            keys.push((
                record_key(system, &source, &id, kind.as_deref()),
                system,
                source,
                id,
            ));
            ids.push(mine);
        }
        progress.finish();
    }

    progress.start("resolve: link", 0);
    let mut linked = link(&ids, &rules);
    let clusters: Vec<Vec<String>> = linked
        .uf
        .clusters()
        .into_iter()
        .map(|c| c.into_iter().map(|i| keys[i as usize].0.clone()).collect())
        .collect();
    let previous: HashMap<String, String> = {
        let mut stmt = conn.prepare("SELECT record_key, customer360_id FROM customer360_id_map")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let next_seq: i64 = conn
        .query_row(
            "SELECT next FROM id_sequence WHERE name = 'customer360_id'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(1);
    let assignment = assign_ids(&clusters, &previous, next_seq as u64);
    progress.finish();

    progress.start("resolve: write", 0);
    let now = now_utc();
    let tx = conn.transaction()?;
    tx.execute_batch(
        "DELETE FROM identity_links; DELETE FROM identifiers; DELETE FROM customer360_id_map;",
    )?;
    let (mut blocked, mut over_limit) = (0u64, 0u64);
    let mut identifier_ids: HashMap<(usize, &str), i64> = HashMap::new();
    {
        let mut ins = tx.prepare(
            "INSERT INTO identifiers (kind, value, records, status, customers) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for stat in &linked.identifiers {
            let (status, customers) = match stat.status {
                Status::Linked => ("linked", None),
                Status::Blocked => {
                    blocked += 1;
                    ("blocked", None)
                }
                Status::OverLimit { customers } => {
                    over_limit += 1;
                    ("over_limit", Some(customers as i64))
                }
            };
            ins.execute(params![
                rules.kinds[stat.kind].kind,
                stat.value,
                stat.records as i64,
                status,
                customers
            ])?;
            identifier_ids.insert((stat.kind, stat.value.as_str()), tx.last_insert_rowid());
        }
        let mut link_stmt = tx.prepare(
            "INSERT INTO identity_links (record_key, identifier_id, rule) VALUES (?1, ?2, ?3)",
        )?;
        for (i, mine) in ids.iter().enumerate() {
            for (k, v) in mine {
                if let Some(id) = identifier_ids.get(&(*k, v.as_str())) {
                    link_stmt.execute(params![keys[i].0, id, rules.kinds[*k].kind])?;
                }
            }
        }
        let mut map_stmt = tx.prepare(
            "INSERT INTO customer360_id_map (record_key, system, source, record_id, customer360_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let index: HashMap<&str, usize> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.0.as_str(), i))
            .collect();
        for (cluster, id) in clusters.iter().zip(&assignment.ids) {
            for key in cluster {
                let (_, system, source, record_id) = &keys[index[key.as_str()]];
                map_stmt.execute(params![key, system.as_str(), source, record_id, id])?;
            }
        }
        let mut lin = tx.prepare(
            "INSERT INTO customer360_id_lineage (old_id, new_id, reason, at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (old, new, reason) in &assignment.lineage {
            lin.execute(params![old, new, reason.as_str(), now])?;
        }
    }
    tx.execute(
        "INSERT INTO id_sequence (name, next) VALUES ('customer360_id', ?1)
         ON CONFLICT(name) DO UPDATE SET next = excluded.next",
        [assignment.next_seq as i64],
    )?;
    let merges = assignment
        .lineage
        .iter()
        .filter(|l| l.2 == super::LineageReason::Merge)
        .count() as u64;
    let splits = assignment.lineage.len() as u64 - merges;
    let report = ResolveReport {
        records: keys.len() as u64,
        identifiers: linked.identifiers.len() as u64,
        blocked,
        over_limit,
        customers: clusters.len() as u64,
        minted: assignment.next_seq - next_seq as u64,
        merges,
        splits,
    };
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'pipeline', 'resolve', ?2)",
        params![now, format!("{report:?}")],
    )?;
    tx.commit()?;
    progress.finish();
    Ok(report)
}

/// Score the workspace's `customer360_id_map` against a truth file with
/// columns `source,record_id,person_id` (source = crm / web / transactions).
pub fn eval_truth(conn: &Connection, truth_path: &std::path::Path) -> Result<eval::PairwiseScore> {
    let mut reader = csv::Reader::from_path(truth_path)
        .with_context(|| format!("cannot read {}", truth_path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: no column {name:?} (need source, record_id, person_id)",
                truth_path.display()
            )
        })
    };
    let (s, r, p) = (col("source")?, col("record_id")?, col("person_id")?);
    let mut truth: HashMap<(String, String), String> = HashMap::new();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.with_context(|| format!("{} line {}", truth_path.display(), n + 2))?;
        truth.insert((rec[s].to_string(), rec[r].to_string()), rec[p].to_string());
    }
    let mut predicted: HashMap<(String, String), String> = HashMap::new();
    let mut stmt =
        conn.prepare("SELECT system, record_id, customer360_id FROM customer360_id_map")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        predicted.insert((row.get(0)?, row.get(1)?), row.get(2)?);
    }
    Ok(eval::pairwise(&predicted, &truth))
}

/// Why records are one customer: the customer's records and, for each
/// identifier they carry, its kind, value, status and how many of the
/// customer's records share it. `who` is a customer360_id or a record key
/// (`system:source:record_id`).
pub fn explain(conn: &Connection, who: &str) -> Result<String> {
    use std::fmt::Write as _;
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
    let mut stmt = conn.prepare(
        "SELECT record_key FROM customer360_id_map WHERE customer360_id = ?1 ORDER BY record_key",
    )?;
    let records: Vec<String> = stmt
        .query_map([&id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    writeln!(out, "{id}: {} records", records.len())?;
    for r in records.iter().take(50) {
        writeln!(out, "  {r}")?;
    }
    if records.len() > 50 {
        writeln!(out, "  … and {} more", records.len() - 50)?;
    }
    writeln!(out, "\nWhy they are one customer (identifiers they share):")?;
    let mut stmt = conn.prepare(
        "SELECT i.kind, i.value, i.status, coalesce(i.customers, 0), count(*) AS n
         FROM customer360_id_map m
         JOIN identity_links l ON l.record_key = m.record_key
         JOIN identifiers i ON i.identifier_id = l.identifier_id
         WHERE m.customer360_id = ?1
         GROUP BY i.identifier_id ORDER BY n DESC, i.kind, i.value",
    )?;
    let rows = stmt.query_map([&id], |r| {
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
            _ => format!("shared by {customers} customers, over its limit: links nobody"),
        };
        writeln!(out, "  {kind:<12} {value:<40} {why}")?;
    }
    let mut stmt = conn.prepare(
        "SELECT old_id, new_id, reason, at FROM customer360_id_lineage
         WHERE old_id = ?1 OR new_id = ?1 ORDER BY lineage_id",
    )?;
    let lineage: Vec<(String, String, String, String)> = stmt
        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if !lineage.is_empty() {
        writeln!(out, "\nLineage:")?;
        for (old, new, reason, at) in lineage {
            writeln!(out, "  {at}  {old} -> {new} ({reason})")?;
        }
    }
    Ok(out)
}
