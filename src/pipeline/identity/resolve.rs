//! The resolve step: read the clean tables, link records that share
//! identifiers (within the guardrails of `rules/identity.toml`), find and
//! score fuzzy candidates, cluster under the steward's decisions, give every
//! cluster a stable `customer360_id`, and write `identifiers`,
//! `identity_links`, `match_candidates`, `match_model`, `customer360_id_map`,
//! `customer360_id_lineage`, `refused_unions` and `audit_log` in one
//! transaction.

use super::cluster::{Apart, Clusterer, weak_bridges};
use super::deterministic::{IdentityRules, Linked, Status, link};
use super::fuzzy::{self, Columns, FieldRef, FuzzyRules, Scored};
use super::steward;
use super::{Assignment, UnionFind, assign_ids, eval};
use crate::pipeline::progress::{Progress, check_cancelled};
use crate::pipeline::schema::System;
use crate::pipeline::timeparse::{iso_ms, now_utc};
use crate::store::BulkInsert;
use crate::workspace::Workspace;
use anyhow::{Context, Result};
use rayon::prelude::*;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Instant;

/// What a resolve run did.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveReport {
    pub records: u64,
    pub identifiers: u64,
    pub blocked: u64,
    pub over_limit: u64,
    pub shared: u64,
    /// Values carried by two people (CRM records that differ in every
    /// `review_if_differ` comparison): they link nobody.
    pub conflicts: u64,
    pub fuzzy_records: u64,
    /// Candidate pairs compared (after the blocking rules, deduplicated).
    pub comparisons: u64,
    pub auto_merged: u64,
    pub review: u64,
    pub auto_rejected: u64,
    pub weak_bridges: u64,
    pub must_links: u64,
    pub refused: u64,
    pub customers: u64,
    pub minted: u64,
    pub merges: u64,
    pub splits: u64,
    /// Probability that two random records are one person (the prior).
    pub lambda: f64,
    /// Seconds per phase.
    pub phases: Vec<(String, f64)>,
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

/// Read `rules/identity.toml` of a workspace.
pub fn load_rules(ws: &Workspace) -> Result<IdentityRules> {
    let path = ws.rules_dir().join("identity.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (every workspace needs it; copy it from the repository's rules/)",
            path.display()
        )
    })?;
    let mut rules = IdentityRules::parse(&text, &path.display().to_string())?;
    if let Some(fuzzy) = rules.fuzzy.as_mut()
        && let Some(name) = fuzzy.nicknames_file.clone()
    {
        let path = ws.rules_dir().join(&name);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (named by `fuzzy.nicknames_file` in identity.toml)",
                path.display()
            )
        })?;
        fuzzy.add_nicknames(&text, &path.display().to_string())?;
    }
    Ok(rules)
}

/// One record of the step.
struct Record {
    key: String,
    system: System,
    source: String,
    id: String,
}

/// Seconds per named phase of a run.
struct Laps {
    phases: Vec<(String, f64)>,
    clock: Instant,
}

impl Laps {
    fn new() -> Self {
        Laps {
            phases: Vec::new(),
            clock: Instant::now(),
        }
    }

    /// Close the phase that started at the last lap.
    fn lap(&mut self, name: &str) {
        self.phases
            .push((name.to_string(), self.clock.elapsed().as_secs_f64()));
        self.clock = Instant::now();
    }
}

/// Run the step: read and score outside the write lock, then cluster under
/// the steward's decisions, assign ids and write, all in one transaction.
/// The step, writing only what changed since the last run: see [`run_with`].
pub fn run(
    conn: &mut Connection,
    ws: &Workspace,
    progress: &dyn Progress,
) -> Result<ResolveReport> {
    run_with(conn, ws, progress, false)
}

/// The step. Every record is read and clustered again; identifiers, links
/// and the id map are then written as the difference from the last run's
/// (ids kept), or from scratch with `full`.
pub fn run_with(
    conn: &mut Connection,
    ws: &Workspace,
    progress: &dyn Progress,
    full: bool,
) -> Result<ResolveReport> {
    let rules = load_rules(ws)?;
    let mut laps = Laps::new();

    let Gathered {
        records,
        ids,
        times,
        cols,
    } = read_records(conn, &rules, progress)?;
    laps.lap("read");
    check_cancelled(progress, "resolve")?;

    progress.start("resolve: deterministic links", 0);
    let systems: Vec<System> = records.iter().map(|r| r.system).collect();
    let differ = differ_by(&rules, cols.as_ref());
    let linked = link(&ids, &times, &systems, &rules, &differ);
    drop(differ);
    drop(systems);
    drop(times);
    laps.lap("deterministic links");
    progress.finish();
    check_cancelled(progress, "resolve")?;

    progress.start("resolve: fuzzy matching", 0);
    let scored: Option<Scored> = match (&rules.fuzzy, &cols) {
        (Some(f), Some(c)) if c.len() >= 2 => Some(fuzzy::score_keeping(
            f,
            c,
            42,
            &fuzzy_pairs(&linked.conflicts, c),
        )),
        _ => None,
    };
    if let Some(s) = &scored {
        for (name, secs) in &s.phases {
            laps.phases.push((format!("fuzzy: {name}"), *secs));
        }
    }
    laps.clock = Instant::now();
    progress.finish();
    check_cancelled(progress, "resolve")?;

    // From here on the step holds the write lock: the steward decisions,
    // the previous ids and the id sequence are read inside the transaction
    // that writes the results, so a decision committed while the step read
    // and scored is applied, and one made from now on waits for the commit
    // (it then re-clusters on top of these results).
    progress.start("resolve: wait for the write lock", 0);
    let tx = conn.transaction()?;
    laps.lap("wait for the write lock");
    progress.finish();

    progress.start("resolve: cluster", 0);
    let decisions = steward::active(&tx)?;
    let mut clustering = cluster_records(
        &decisions,
        &records,
        &linked,
        scored.as_ref().zip(cols.as_ref()),
        &rules,
    );
    laps.lap("cluster");
    check_cancelled(progress, "resolve")?;
    let previous: FxHashMap<String, String> = {
        let mut stmt = tx.prepare("SELECT record_key, customer360_id FROM customer360_id_map")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let next_seq = super::next_id_seq(&tx)?;
    laps.lap("read previous ids");
    let keys: Vec<Vec<&str>> = clustering
        .clusters
        .iter()
        .map(|c| {
            c.iter()
                .map(|&i| records[i as usize].key.as_str())
                .collect()
        })
        .collect();
    let assignment = assign_ids(&keys, &previous, next_seq);
    drop(keys);
    progress.finish();
    laps.lap("assign ids");

    progress.start("resolve: clear previous results", 0);
    if full {
        tx.execute_batch("DELETE FROM identity_links; DELETE FROM identifiers;")?;
    }
    let now = now_utc();
    let mut candidate_ids = CandidateIds::read(&tx)?;
    tx.execute_batch(
        "DELETE FROM match_candidates; DELETE FROM match_model; DELETE FROM refused_unions;",
    )?;
    laps.lap("clear previous results");
    progress.start("resolve: write identifiers and links", 0);
    let statuses = write_identifiers(&tx, &rules, &linked, &clustering.attributed, &ids, &records)?;
    laps.lap("write identifiers");
    check_cancelled(progress, "resolve")?;
    progress.start("resolve: write the id map", 0);
    write_id_map(&tx, &records, &clustering.clusters, &assignment, &previous)?;
    laps.lap("write id map");
    check_cancelled(progress, "resolve")?;
    progress.start("resolve: write lineage and candidates", 0);
    write_lineage_and_refusals(&tx, &records, &assignment, &clustering.refused, &now)?;
    let mut review = 0u64;
    if let (Some(f), Some(s), Some(c)) = (&rules.fuzzy, &scored, &cols) {
        let pair_decisions = decisions.pair_actions();
        review = write_candidates(
            &tx,
            f,
            s,
            c,
            &Marks {
                records: &records,
                decisions: &pair_decisions,
                weak: &clustering.weak,
                refused: &clustering.pair_refused,
                conflicts: &linked
                    .conflicts
                    .iter()
                    .map(|&(a, b)| (a.min(b), a.max(b)))
                    .collect(),
            },
            &mut clustering.base,
            &mut candidate_ids,
        )?;
    }
    candidate_ids.save(&tx)?;
    tx.execute(
        "INSERT INTO id_sequence (name, next) VALUES ('customer360_id', ?1)
         ON CONFLICT(name) DO UPDATE SET next = excluded.next",
        [assignment.next_seq as i64],
    )?;
    laps.lap("write candidates, lineage");
    let merges = assignment
        .lineage
        .iter()
        .filter(|l| l.2 == super::LineageReason::Merge)
        .count() as u64;
    let report = ResolveReport {
        records: records.len() as u64,
        identifiers: linked.identifiers.len() as u64 + linked.singletons,
        blocked: statuses.blocked,
        over_limit: statuses.over_limit,
        shared: statuses.shared,
        conflicts: statuses.conflict,
        fuzzy_records: cols.as_ref().map_or(0, |c| c.len() as u64),
        comparisons: scored.as_ref().map_or(0, |s| s.comparisons),
        auto_merged: clustering.auto_merged,
        review,
        auto_rejected: scored.as_ref().map_or(0, |s| s.auto_rejected),
        weak_bridges: clustering.weak.len() as u64,
        must_links: clustering.must_links,
        refused: clustering.refused.len() as u64,
        customers: clustering.clusters.len() as u64,
        minted: assignment.next_seq - next_seq,
        merges,
        splits: assignment.lineage.len() as u64 - merges,
        lambda: scored.as_ref().map_or(0.0, |s| s.model.lambda),
        phases: laps.phases,
    };
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'pipeline', 'resolve', ?2)",
        params![
            now,
            format!(
                "{}; seconds per phase: {}",
                report.summary(),
                report.phase_list()
            )
        ],
    )?;
    crate::store::versions::bump(&tx, crate::store::versions::IDENTITY)?;
    tx.commit()?;
    progress.finish();
    Ok(report)
}

/// What the read phase gathers: every record, the identifier values it
/// holds (by kind), web events' times (for the nearest-login rule) and the
/// fuzzy fields of the records fuzzy matching covers.
struct Gathered {
    records: Vec<Record>,
    ids: Vec<Vec<(usize, String)>>,
    times: Vec<Option<i64>>,
    cols: Option<Columns>,
}

/// Read the records of every clean table, reporting done / total and
/// checking for cancellation as it goes.
fn read_records(
    conn: &Connection,
    rules: &IdentityRules,
    progress: &dyn Progress,
) -> Result<Gathered> {
    let mut g = Gathered {
        records: Vec::new(),
        ids: Vec::new(),
        times: Vec::new(),
        cols: rules.fuzzy.as_ref().map(Columns::new),
    };
    for system in System::ALL {
        read_system(conn, rules, system, &mut g, progress)?;
    }
    if let Some(c) = g.cols.as_mut() {
        c.seal(|v| rules.is_blocked(v));
    }
    Ok(g)
}

/// The identifier fields of a system, as (kind index, column).
fn identifier_fields(rules: &IdentityRules, system: System) -> Vec<(usize, &str)> {
    rules
        .kinds
        .iter()
        .enumerate()
        .flat_map(|(k, kind)| {
            kind.fields
                .iter()
                .filter(move |(s, _)| *s == system)
                .map(move |(_, f)| (k, f.as_str()))
        })
        .collect()
}

/// The SQL of a system's fuzzy fields (NULL where it has no such field).
fn fuzzy_columns(rules: &IdentityRules, system: System) -> Vec<String> {
    let Some(f) = rules.fuzzy.as_ref().filter(|f| f.systems.contains(&system)) else {
        return Vec::new();
    };
    f.fields
        .iter()
        .map(|fr| match fr {
            FieldRef::Core(name) if system.field(name).is_some() => name.clone(),
            FieldRef::Core(_) => "NULL".to_string(),
            FieldRef::Extra(key) => format!(
                "json_extract(extra, '$.\"{}\"')",
                key.replace('\'', "''").replace('"', "")
            ),
        })
        .collect()
}

/// Read one system's clean table: (source, id, type, time, identifier
/// fields…, fuzzy fields…) per row, in rowid order.
fn read_system(
    conn: &Connection,
    rules: &IdentityRules,
    system: System,
    g: &mut Gathered,
    progress: &dyn Progress,
) -> Result<()> {
    let (table, id_col) = table_of(system);
    let wanted = identifier_fields(rules, system);
    let fuzzy_on = rules
        .fuzzy
        .as_ref()
        .is_some_and(|f| f.systems.contains(&system));
    let fuzzy_cols = fuzzy_columns(rules, system);
    // Orders take part in fuzzy matching only when they name the buyer
    // (guest checkouts, Square's Customer Name): an order with an e-mail
    // alone is linked by the e-mail, and comparing every order would
    // multiply the pairs.
    let name_cols: Vec<usize> = match (&rules.fuzzy, system) {
        (Some(f), System::Transactions) => f
            .fields
            .iter()
            .enumerate()
            .filter(|(_, fr)| {
                matches!(fr, FieldRef::Core(n) if ["first_name", "last_name", "full_name"].contains(&n.as_str()))
            })
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    };
    let type_col = if system == System::Transactions {
        "transaction_type"
    } else {
        "NULL"
    };
    let time_col = if system == System::Web {
        "event_time"
    } else {
        "NULL"
    };
    let mut cols_sql: Vec<String> = wanted.iter().map(|(_, f)| f.to_string()).collect();
    cols_sql.extend(fuzzy_cols.iter().cloned());
    let sql = format!(
        "SELECT source, {id_col}, {type_col}, {time_col}{}{} FROM {table} ORDER BY rowid",
        if cols_sql.is_empty() { "" } else { ", " },
        cols_sql.join(", ")
    );
    let total: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    progress.start(&format!("resolve: read {system}"), total as u64);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut fuzzy_vals: Vec<String> = vec![String::new(); fuzzy_cols.len()];
    let mut done = 0u64;
    while let Some(row) = rows.next()? {
        done += 1;
        if done.is_multiple_of(65_536) {
            progress.update(done);
            check_cancelled(progress, "resolve")?;
        }
        let source: String = row.get(0)?;
        let id: String = row.get(1)?;
        let kind: Option<String> = row.get(2)?;
        if system == System::Web {
            let t: Option<String> = row.get(3)?;
            g.times.resize(g.records.len(), None);
            g.times.push(t.as_deref().and_then(iso_ms));
        }
        let mut mine = Vec::new();
        for (i, (k, _)) in wanted.iter().enumerate() {
            if let Some(v) = row.get_ref(4 + i)?.as_str_or_null()? {
                let v = v.trim();
                if !v.is_empty() {
                    mine.push((*k, v.to_string()));
                }
            }
        }
        if let Some(c) = g.cols.as_mut()
            && fuzzy_on
        {
            // One reused buffer per field: no allocation per value.
            for (j, buf) in fuzzy_vals.iter_mut().enumerate() {
                buf.clear();
                match row.get_ref(4 + wanted.len() + j)? {
                    rusqlite::types::ValueRef::Text(t) => buf.push_str(&String::from_utf8_lossy(t)),
                    rusqlite::types::ValueRef::Integer(i) => write!(buf, "{i}")?,
                    rusqlite::types::ValueRef::Real(x) => write!(buf, "{x}")?,
                    rusqlite::types::ValueRef::Null | rusqlite::types::ValueRef::Blob(_) => {}
                }
            }
            let named = system != System::Transactions
                || name_cols.iter().any(|&j| !fuzzy_vals[j].is_empty());
            if named {
                c.push(g.records.len() as u32, |f| {
                    Some(fuzzy_vals[f].as_str()).filter(|v| !v.is_empty())
                });
            }
        }
        g.records.push(Record {
            key: record_key(system, &source, &id, kind.as_deref()),
            system,
            source,
            id,
        });
        g.ids.push(mine);
    }
    progress.finish();
    Ok(())
}

/// Record pairs as fuzzy pairs (`a << 32 | b` of their indexes in `cols`,
/// a < b); records fuzzy matching does not read are left out.
fn fuzzy_pairs(pairs: &[(u32, u32)], cols: &Columns) -> FxHashSet<u64> {
    if pairs.is_empty() {
        return FxHashSet::default();
    }
    let index: FxHashMap<u32, u32> = cols
        .global
        .iter()
        .enumerate()
        .map(|(i, &g)| (g, i as u32))
        .collect();
    pairs
        .iter()
        .filter_map(|(a, b)| {
            let (x, y) = (*index.get(a)?, *index.get(b)?);
            let (lo, hi) = (x.min(y), x.max(y));
            Some(((lo as u64) << 32) | hi as u64)
        })
        .collect()
}

/// Whether two records differ in every named fuzzy comparison (the
/// `review_if_differ` of an identifier kind); false when fuzzy matching
/// does not read either record.
fn differ_by<'a>(
    rules: &'a IdentityRules,
    cols: Option<&'a Columns>,
) -> impl Fn(u32, u32, &[String]) -> bool + 'a {
    let index: FxHashMap<u32, u32> = cols.map_or_else(FxHashMap::default, |c| {
        c.global
            .iter()
            .enumerate()
            .map(|(i, &g)| (g, i as u32))
            .collect()
    });
    move |a, b, names| {
        let (Some(f), Some(c)) = (rules.fuzzy.as_ref(), cols) else {
            return false;
        };
        let (Some(&fa), Some(&fb)) = (index.get(&a), index.get(&b)) else {
            return false;
        };
        let comps: Vec<usize> = names
            .iter()
            .filter_map(|n| f.comparisons.iter().position(|c| &c.name == n))
            .collect();
        comps.len() == names.len() && fuzzy::all_differ(f, c, fa, fb, &comps)
    }
}

/// The clusters and what shaped them.
struct Clustering {
    /// Record indexes per customer.
    clusters: Vec<Vec<u32>>,
    /// Unions a keep-apart decision refused: (a, b, via, decision id).
    refused: Vec<(u32, u32, &'static str, i64)>,
    must_links: u64,
    /// Fuzzy pairs at or above the auto-merge probability.
    auto_merged: u64,
    /// Candidates (by index in `Scored::kept`) that are weak bridges.
    weak: HashSet<usize>,
    /// Candidates whose auto-merge a decision refused.
    pair_refused: HashSet<usize>,
    /// The clusters before fuzzy merges (decisions and identifiers only).
    base: UnionFind,
    /// Anonymous identifiers attributed to their nearest login:
    /// (record, kind, login record).
    attributed: Vec<(u32, usize, u32)>,
}

/// Cluster the records: steward approvals first, then shared identifiers,
/// then fuzzy auto-merges by falling probability, never across a steward's
/// keep-apart decision.
fn cluster_records(
    decisions: &steward::Decisions,
    records: &[Record],
    linked: &Linked,
    fuzzy: Option<(&Scored, &Columns)>,
    rules: &IdentityRules,
) -> Clustering {
    // One lookup per record (5M on the bench world): Fx, not SipHash.
    let wanted_keys: FxHashSet<&str> = decisions.keys().collect();
    let index: FxHashMap<&str, u32> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| wanted_keys.contains(r.key.as_str()))
        .map(|(i, r)| (r.key.as_str(), i as u32))
        .collect();
    let idx = |k: &str| index.get(k).copied();
    let apart: Vec<Apart> = decisions
        .apart
        .iter()
        .map(|d| Apart {
            decision_id: d.decision_id,
            a: d.a.iter().filter_map(|k| idx(k)).collect(),
            b: d.b.iter().filter_map(|k| idx(k)).collect(),
        })
        .collect();
    let mut clusterer = Clusterer::new(records.len(), &apart);
    let mut refused: Vec<(u32, u32, &'static str, i64)> = Vec::new();
    let mut must_links = 0u64;
    for m in &decisions.must {
        if let (Some(a), Some(b)) = (idx(&m.left), idx(&m.right)) {
            match clusterer.union(a, b) {
                Ok(_) => must_links += 1,
                Err(d) => refused.push((a, b, "steward approval", d)),
            }
        }
    }
    for &(a, b) in &linked.edges {
        if let Err(d) = clusterer.union(a, b) {
            refused.push((a, b, "shared identifier", d));
        }
    }
    let attributed = linked.attribute(&mut clusterer);
    let mut base = clusterer.uf.clone();
    // Fuzzy auto-merges, most probable first.
    let auto_merge = rules.fuzzy.as_ref().map_or(1.0, |f| f.auto_merge);
    let conflicts: FxHashSet<(u32, u32)> = linked
        .conflicts
        .iter()
        .map(|&(a, b)| (a.min(b), a.max(b)))
        .collect();
    let mut accepted: Vec<(u32, u32, f64)> = Vec::new();
    let mut accepted_idx: Vec<usize> = Vec::new();
    let mut pair_refused: HashSet<usize> = HashSet::new();
    let mut auto_merged = 0u64;
    if let Some((s, c)) = fuzzy {
        let mut order: Vec<usize> = (0..s.kept.len()).collect();
        order.sort_by(|&x, &y| s.kept[y].probability.total_cmp(&s.kept[x].probability));
        for ci in order {
            let cand = &s.kept[ci];
            if cand.probability < auto_merge {
                continue;
            }
            let (a, b) = (c.global[cand.a as usize], c.global[cand.b as usize]);
            // Two people sharing an identifier: only a steward merges them.
            if conflicts.contains(&(a.min(b), a.max(b))) {
                continue;
            }
            auto_merged += 1;
            match clusterer.union(a, b) {
                Ok(true) => {
                    accepted.push((a, b, cand.probability));
                    accepted_idx.push(ci);
                }
                Ok(false) => {}
                Err(d) => {
                    refused.push((a, b, "fuzzy auto-merge", d));
                    pair_refused.insert(ci);
                }
            }
        }
    }
    let weak_threshold = rules.fuzzy.as_ref().map_or(1.0, |f| f.weak_bridge);
    let weak: HashSet<usize> = weak_bridges(&mut base, &accepted, weak_threshold)
        .into_iter()
        .map(|e| accepted_idx[e])
        .collect();
    Clustering {
        clusters: clusterer.uf.clusters(),
        refused,
        must_links,
        auto_merged,
        weak,
        pair_refused,
        base,
        attributed,
    }
}

/// How many identifier values each guardrail stopped.
struct Statuses {
    blocked: u64,
    over_limit: u64,
    shared: u64,
    conflict: u64,
}

/// Write `identifiers` and `identity_links`. Identifiers worth explaining
/// are stored: those that link two or more records, and every blocked,
/// over-limit or shared value (a value on one record only links nothing).
/// Both tables are written as a difference from what the last run left:
/// an identifier keeps its id while its value is seen, and only links that
/// appeared, changed or went are written.
fn write_identifiers(
    tx: &Connection,
    rules: &IdentityRules,
    linked: &Linked,
    attributed: &[(u32, usize, u32)],
    ids: &[Vec<(usize, String)>],
    records: &[Record],
) -> Result<Statuses> {
    let (statuses, keep) = write_identifier_rows(tx, rules, linked)?;
    let via: FxHashMap<(u32, usize), u32> = attributed
        .iter()
        .map(|&(r, k, login)| ((r, k), login))
        .collect();
    let links_of = |i: usize| -> Vec<Link> {
        let mut out: Vec<Link> = ids[i]
            .iter()
            .filter_map(|(k, v)| {
                let &id = keep.get(&(*k, v.as_str()))?;
                let via_record = via
                    .get(&(i as u32, *k))
                    .map(|&login| records[login as usize].key.as_str());
                Some(Link {
                    identifier_id: id,
                    kind: &rules.kinds[*k].kind,
                    via_record,
                })
            })
            .collect();
        out.sort_by_key(|l| l.identifier_id);
        out.dedup_by_key(|l| l.identifier_id);
        out
    };
    write_links(tx, records, links_of)?;
    Ok(statuses)
}

/// One wanted row of `identity_links` (its record aside).
struct Link<'a> {
    identifier_id: i64,
    /// The identifier kind that read it (the rule).
    kind: &'a str,
    /// The login record an anonymous identifier was attributed to.
    via_record: Option<&'a str>,
}

const NEAREST_LOGIN: &str = " (nearest login)";

impl Link<'_> {
    /// The rule as stored: the kind, "(nearest login)" when attributed.
    fn rule(&self) -> String {
        match self.via_record {
            Some(_) => format!("{}{NEAREST_LOGIN}", self.kind),
            None => self.kind.to_string(),
        }
    }

    /// Whether a stored row (rule, via record) is this link.
    fn is(&self, rule: &str, via_record: Option<&str>) -> bool {
        let rule_matches = match self.via_record {
            Some(_) => rule.strip_suffix(NEAREST_LOGIN) == Some(self.kind),
            None => rule == self.kind,
        };
        rule_matches && via_record == self.via_record
    }
}

/// (kind, value) -> identifier id.
type IdOfValue<'l> = FxHashMap<(usize, &'l str), i64>;

/// The `identifiers` rows: kept ids for values seen before, new ids for new
/// ones, updates where counts or status changed, deletes (with their links)
/// for values gone. Returns the statuses and (kind, value) -> id of every
/// identifier that links records.
fn write_identifier_rows<'l>(
    tx: &Connection,
    rules: &IdentityRules,
    linked: &'l Linked,
) -> Result<(Statuses, IdOfValue<'l>)> {
    let mut statuses = Statuses {
        blocked: 0,
        over_limit: 0,
        shared: 0,
        conflict: 0,
    };
    type Stored = (i64, i64, String, Option<i64>);
    // The stored identifiers by kind (as the rules number them) and value;
    // those of a kind the rules no longer have are deleted.
    let kind_index: FxHashMap<&str, usize> = rules
        .kinds
        .iter()
        .enumerate()
        .map(|(i, k)| (k.kind.as_str(), i))
        .collect();
    let mut existing: Vec<FxHashMap<String, Stored>> =
        vec![FxHashMap::default(); rules.kinds.len()];
    let mut orphans: Vec<i64> = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT identifier_id, kind, value, records, status, customers FROM identifiers",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            match kind_index.get(r.get_ref(1)?.as_str()?) {
                Some(&k) => {
                    existing[k].insert(r.get(2)?, (r.get(0)?, r.get(3)?, r.get(4)?, r.get(5)?));
                }
                None => orphans.push(r.get(0)?),
            }
        }
    }
    let mut next_id: i64 = tx.query_row(
        "SELECT coalesce(max(identifier_id), 0) + 1 FROM identifiers",
        [],
        |r| r.get(0),
    )?;
    let first_run = existing.iter().all(FxHashMap::is_empty) && orphans.is_empty();
    let columns = [
        "identifier_id",
        "kind",
        "value",
        "records",
        "status",
        "customers",
    ]
    .map(String::from);
    let mut ins = BulkInsert::new(tx, "identifiers", &columns);
    let mut update = tx.prepare(
        "UPDATE identifiers SET records = ?2, status = ?3, customers = ?4 WHERE identifier_id = ?1",
    )?;
    let mut keep: FxHashMap<(usize, &str), i64> = FxHashMap::default();
    for stat in &linked.identifiers {
        let (status, customers) = match stat.status {
            Status::Linked => ("linked", None),
            Status::Blocked => {
                statuses.blocked += 1;
                ("blocked", None)
            }
            Status::OverLimit { customers } => {
                statuses.over_limit += 1;
                ("over_limit", Some(customers as i64))
            }
            Status::Shared { customers } => {
                statuses.shared += 1;
                ("shared", Some(customers as i64))
            }
            Status::Conflict { customers } => {
                statuses.conflict += 1;
                ("conflict", Some(customers as i64))
            }
        };
        if status == "linked" && stat.records < 2 {
            continue;
        }
        let kind = &rules.kinds[stat.kind].kind;
        let wanted = (stat.records as i64, status, customers);
        let id = match existing[stat.kind].remove(stat.value.as_str()) {
            Some((id, records, st, cu)) => {
                if (records, st.as_str(), cu) != wanted {
                    update.execute(params![id, wanted.0, wanted.1, wanted.2])?;
                }
                id
            }
            None => {
                ins.push([
                    Value::Integer(next_id),
                    Value::Text(kind.clone()),
                    Value::Text(stat.value.clone()),
                    Value::Integer(wanted.0),
                    Value::Text(status.into()),
                    customers.map_or(Value::Null, Value::Integer),
                ])?;
                next_id += 1;
                next_id - 1
            }
        };
        keep.insert((stat.kind, stat.value.as_str()), id);
    }
    ins.finish()?;
    if !first_run {
        let mut del_links = tx.prepare("DELETE FROM identity_links WHERE identifier_id = ?1")?;
        let mut del = tx.prepare("DELETE FROM identifiers WHERE identifier_id = ?1")?;
        let gone = existing.iter().flat_map(|m| m.values().map(|v| v.0));
        for id in gone.chain(orphans) {
            del_links.execute([id])?;
            del.execute([id])?;
        }
    }
    Ok((statuses, keep))
}

/// Bring `identity_links` to the wanted links of every record
/// (`links_of`). A first run inserts them all in the table's key order
/// (record, identifier) and builds the by-identifier index after. A later
/// run reads the stored rows (grouped by record, in key order), compares
/// each record's with its wanted ones and writes only the difference.
fn write_links<'a>(
    tx: &Connection,
    records: &'a [Record],
    links_of: impl Fn(usize) -> Vec<Link<'a>>,
) -> Result<()> {
    let stored: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM identity_links)", [], |r| {
        r.get(0)
    })?;
    if !stored {
        let mut order: Vec<u32> = (0..records.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| records[a as usize].key.cmp(&records[b as usize].key));
        tx.execute_batch("DROP INDEX IF EXISTS identity_links_by_identifier")?;
        let columns = ["record_key", "identifier_id", "rule", "via_record"].map(String::from);
        let mut links = BulkInsert::new(tx, "identity_links", &columns);
        for &r in &order {
            let key = &records[r as usize].key;
            for l in links_of(r as usize) {
                links.push([
                    Value::Text(key.clone()),
                    Value::Integer(l.identifier_id),
                    Value::Text(l.rule()),
                    l.via_record.map_or(Value::Null, |v| Value::Text(v.into())),
                ])?;
            }
        }
        links.finish()?;
        tx.execute_batch(
            "CREATE INDEX identity_links_by_identifier ON identity_links(identifier_id)",
        )?;
        return Ok(());
    }
    let index: FxHashMap<&str, u32> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key.as_str(), i as u32))
        .collect();
    let mut had_rows = vec![false; records.len()];
    // The difference, gathered while reading, written after.
    let mut upserts: Vec<(u32, Link)> = Vec::new();
    let mut deletes: Vec<(String, i64)> = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT record_key, identifier_id, rule, via_record FROM identity_links
             ORDER BY record_key, identifier_id",
        )?;
        let mut rows = stmt.query([])?;
        // The record whose stored rows are being read, and its wanted
        // links not yet matched (by identifier, ascending).
        let mut group: Option<(String, Option<u32>)> = None;
        let mut wanted: std::iter::Peekable<std::vec::IntoIter<Link>> =
            Vec::new().into_iter().peekable();
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?.as_str()?;
            if group.as_ref().is_none_or(|(k, _)| k != key) {
                if let Some((_, Some(r))) = group {
                    upserts.extend(wanted.by_ref().map(|w| (r, w)));
                }
                let r = index.get(key).copied();
                if let Some(r) = r {
                    had_rows[r as usize] = true;
                    wanted = links_of(r as usize).into_iter().peekable();
                }
                group = Some((key.to_string(), r));
            }
            let id: i64 = row.get(1)?;
            let Some((_, Some(r))) = &group else {
                deletes.push((key.to_string(), id));
                continue;
            };
            while wanted.peek().is_some_and(|w| w.identifier_id < id) {
                upserts.push((*r, wanted.next().expect("peeked")));
            }
            match wanted.peek() {
                Some(w) if w.identifier_id == id => {
                    let w = wanted.next().expect("peeked");
                    if !w.is(row.get_ref(2)?.as_str()?, row.get_ref(3)?.as_str_or_null()?) {
                        upserts.push((*r, w));
                    }
                }
                _ => deletes.push((key.to_string(), id)),
            }
        }
        if let Some((_, Some(r))) = group {
            upserts.extend(wanted.map(|w| (r, w)));
        }
    }
    // Records with no stored row yet: all their links are new.
    for (r, had) in had_rows.iter().enumerate() {
        if !had {
            upserts.extend(links_of(r).into_iter().map(|w| (r as u32, w)));
        }
    }
    let mut del =
        tx.prepare("DELETE FROM identity_links WHERE record_key = ?1 AND identifier_id = ?2")?;
    for (k, id) in &deletes {
        del.execute(params![k, id])?;
    }
    let mut put = tx.prepare(
        "INSERT OR REPLACE INTO identity_links (record_key, identifier_id, rule, via_record)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (r, l) in &upserts {
        put.execute(params![
            records[*r as usize].key,
            l.identifier_id,
            l.rule(),
            l.via_record
        ])?;
    }
    Ok(())
}

/// Write the id map: on a first run every row in key order (the primary
/// key) with the indexes built afterwards; later runs write only the rows
/// whose id changed and delete those of records gone from the clean tables.
fn write_id_map(
    tx: &Connection,
    records: &[Record],
    clusters: &[Vec<u32>],
    assignment: &Assignment,
    previous: &FxHashMap<String, String>,
) -> Result<()> {
    let mut id_of: Vec<u32> = vec![0; records.len()];
    for (ci, c) in clusters.iter().enumerate() {
        for &r in c {
            id_of[r as usize] = ci as u32;
        }
    }
    if previous.is_empty() {
        let mut order: Vec<u32> = (0..records.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| records[a as usize].key.cmp(&records[b as usize].key));
        tx.execute_batch(
            "DELETE FROM customer360_id_map; DROP INDEX IF EXISTS id_map_by_customer;
             DROP INDEX IF EXISTS id_map_by_record_id",
        )?;
        let mut map = BulkInsert::new(
            tx,
            "customer360_id_map",
            &[
                "record_key",
                "system",
                "source",
                "record_id",
                "customer360_id",
            ]
            .map(String::from),
        );
        for &r in &order {
            let rec = &records[r as usize];
            map.push([
                Value::Text(rec.key.clone()),
                Value::Text(rec.system.as_str().into()),
                Value::Text(rec.source.clone()),
                Value::Text(rec.id.clone()),
                Value::Text(assignment.ids[id_of[r as usize] as usize].clone()),
            ])?;
        }
        map.finish()?;
        tx.execute_batch(
            "CREATE INDEX id_map_by_customer ON customer360_id_map(customer360_id);
             CREATE INDEX id_map_by_record_id ON customer360_id_map(record_id);
             DELETE FROM unify_state; DELETE FROM identity_changes;",
        )?;
        return Ok(());
    }
    // Unify moves the events and rebuilds the profiles of the customers
    // named here (ids before and after), instead of all of them.
    let mut changed =
        tx.prepare("INSERT OR IGNORE INTO identity_changes (customer360_id) VALUES (?1)")?;
    let mut upsert = tx.prepare(
        "INSERT INTO customer360_id_map (record_key, system, source, record_id, customer360_id)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(record_key) DO UPDATE SET customer360_id = excluded.customer360_id",
    )?;
    let mut kept = 0usize;
    for (r, rec) in records.iter().enumerate() {
        let id = &assignment.ids[id_of[r] as usize];
        match previous.get(&rec.key) {
            Some(old) if old == id => kept += 1,
            seen => {
                kept += usize::from(seen.is_some());
                changed.execute([id])?;
                if let Some(old) = seen {
                    changed.execute([old])?;
                }
                upsert.execute(params![
                    rec.key,
                    rec.system.as_str(),
                    rec.source,
                    rec.id,
                    id
                ])?;
            }
        }
    }
    if kept < previous.len() {
        // Records gone from the clean tables lose their row.
        let current: FxHashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
        let mut del = tx.prepare("DELETE FROM customer360_id_map WHERE record_key = ?1")?;
        for key in previous.keys() {
            if !current.contains(key.as_str()) {
                del.execute([key])?;
                changed.execute([&previous[key]])?;
            }
        }
    }
    Ok(())
}

/// Write the id lineage (merges and splits) and the refused unions.
fn write_lineage_and_refusals(
    tx: &Connection,
    records: &[Record],
    assignment: &Assignment,
    refused: &[(u32, u32, &'static str, i64)],
    now: &str,
) -> Result<()> {
    let mut lin = tx.prepare(
        "INSERT INTO customer360_id_lineage (old_id, new_id, reason, at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (old, new, reason) in &assignment.lineage {
        lin.execute(params![old, new, reason.as_str(), now])?;
    }
    let mut refusals = tx.prepare(
        "INSERT INTO refused_unions (left_key, right_key, via, decision_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (a, b, via, d) in refused {
        refusals.execute(params![
            records[*a as usize].key,
            records[*b as usize].key,
            via,
            d,
            now
        ])?;
    }
    Ok(())
}

impl ResolveReport {
    /// "read 1.2, deterministic links 0.8, ..." (seconds).
    pub fn phase_list(&self) -> String {
        self.phases
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line for the pipeline screen and the audit log.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} records -> {} customers; {} identifiers ({} blocked, {} over their limit, {} shared devices)",
            self.records,
            self.customers,
            self.identifiers,
            self.blocked,
            self.over_limit,
            self.shared
        );
        if self.conflicts > 0 {
            s.push_str(&format!(
                "; {} shared by two people (not linked; their pairs to review)",
                self.conflicts
            ));
        }
        if self.fuzzy_records > 0 {
            s.push_str(&format!(
                "; fuzzy: {} records, {} comparisons, {} auto-merged, {} to review, {} rejected, {} weak bridges",
                self.fuzzy_records,
                self.comparisons,
                self.auto_merged,
                self.review,
                self.auto_rejected,
                self.weak_bridges
            ));
        }
        s.push_str(&format!(
            "; {} steward must-links, {} unions refused; {} new ids, {} merges, {} splits",
            self.must_links, self.refused, self.minted, self.merges, self.splits
        ));
        s
    }
}

/// What decides a stored candidate's flags and decision.
struct Marks<'a> {
    records: &'a [Record],
    decisions: &'a HashMap<(String, String), String>,
    weak: &'a HashSet<usize>,
    refused: &'a HashSet<usize>,
    /// Record pairs an identifier would have joined though they differ in
    /// every `review_if_differ` comparison: review, never auto-merge.
    conflicts: &'a FxHashSet<(u32, u32)>,
}

/// Candidate ids kept per pair across resolve runs (an id in a ticket
/// keeps pointing at its pair): the previous run's ids by (left, right), and
/// the next id for a new pair, above every id ever given (a dropped pair's
/// id is never reused).
struct CandidateIds {
    previous: FxHashMap<(String, String), i64>,
    next: i64,
}

impl CandidateIds {
    /// The ids of the candidates stored now (read before they are cleared).
    fn read(conn: &Connection) -> Result<CandidateIds> {
        let mut stmt =
            conn.prepare("SELECT left_key, right_key, candidate_id FROM match_candidates")?;
        let previous: FxHashMap<(String, String), i64> = stmt
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let seq: i64 = conn
            .query_row(
                "SELECT next FROM id_sequence WHERE name = 'candidate_id'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(1);
        let above = previous.values().max().map_or(1, |m| m + 1);
        Ok(CandidateIds {
            previous,
            next: seq.max(above),
        })
    }

    /// The id a pair had, if any.
    fn of(&self, left: &str, right: &str) -> Option<i64> {
        self.previous
            .get(&(left.to_string(), right.to_string()))
            .copied()
    }

    /// A new id.
    fn mint(&mut self) -> i64 {
        self.next += 1;
        self.next - 1
    }

    fn save(&self, tx: &Connection) -> Result<()> {
        tx.execute(
            "INSERT INTO id_sequence (name, next) VALUES ('candidate_id', ?1)
             ON CONFLICT(name) DO UPDATE SET next = max(next, excluded.next)",
            [self.next],
        )?;
        Ok(())
    }
}

/// Write `match_model` and the candidates worth a look: every pair in the
/// review band or above, except pairs the deterministic links (or a steward
/// approval) already joined and nobody decided on. A pair keeps its
/// candidate id from the last run; a new pair gets a new one. Returns how
/// many are in the review band.
fn write_candidates(
    tx: &rusqlite::Transaction,
    rules: &FuzzyRules,
    s: &Scored,
    cols: &Columns,
    marks: &Marks,
    base: &mut super::UnionFind,
    ids: &mut CandidateIds,
) -> Result<u64> {
    let base_root: Vec<u32> = (0..base.len() as u32).map(|x| base.find(x)).collect();
    let prior = s.model.prior_weight();
    {
        let mut model = tx.prepare(
            "INSERT INTO match_model (comparison, level, label, m, u, weight) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        model.execute(params![
            "(prior)",
            -1,
            "two random records match",
            s.model.lambda,
            1.0,
            prior
        ])?;
        for (ui, unit) in s.units.iter().enumerate() {
            for l in 0..unit.levels(rules) {
                if !unit.possible(l) {
                    continue;
                }
                let label = unit.label(rules, l as u8);
                model.execute(params![
                    unit.name,
                    l as i64,
                    label,
                    s.model.m[ui][l],
                    s.model.u[ui][l],
                    s.model.weight(ui, l as u8)
                ])?;
            }
        }
    }
    let mut ins = BulkInsert::new(
        tx,
        "match_candidates",
        &[
            "candidate_id",
            "left_key",
            "right_key",
            "weight",
            "match_weight",
            "probability",
            "band",
            "blocking",
            "comparisons",
            "flags",
            "decision",
        ]
        .map(String::from),
    );
    // Build the rows (explanations as JSON) in parallel, write in order.
    let rows: Vec<Option<(Option<i64>, [Value; 10])>> = s
        .kept
        .par_iter()
        .enumerate()
        .map(|(ci, cand)| {
            let (ga, gb) = (cols.global[cand.a as usize], cols.global[cand.b as usize]);
            let (ka, kb) = (
                &marks.records[ga as usize].key,
                &marks.records[gb as usize].key,
            );
            let (left, right, lr, rr) = if ka < kb {
                (ka, kb, cand.a, cand.b)
            } else {
                (kb, ka, cand.b, cand.a)
            };
            let decision = marks.decisions.get(&(left.clone(), right.clone()));
            if decision.is_none() && base_root[ga as usize] == base_root[gb as usize] {
                return None;
            }
            let conflict = marks.conflicts.contains(&(ga.min(gb), ga.max(gb)));
            let band = if cand.probability >= rules.auto_merge && !conflict {
                "auto_merge"
            } else {
                "review"
            };
            let mut flags = Vec::new();
            if conflict {
                flags.push("shared_identifier_differ");
            }
            if marks.weak.contains(&ci) {
                flags.push("weak_bridge");
            }
            if marks.refused.contains(&ci) {
                flags.push("refused");
            }
            let blocking: Vec<&str> = rules
                .blocking
                .iter()
                .enumerate()
                .filter(|(ri, _)| cand.rules & (1 << ri) != 0)
                .map(|(_, r)| r.name.as_str())
                .collect();
            let weights = fuzzy::unit_weights(rules, &s.units, cols, &s.model, lr, rr);
            let members = fuzzy::member_levels(rules, cols, lr, rr);
            let detail: Vec<serde_json::Value> = s
                .units
                .iter()
                .zip(&weights)
                .map(|(unit, &(level, weight, tf))| {
                    let parts: Vec<serde_json::Value> = unit
                        .members
                        .iter()
                        .map(|&m| {
                            let c = &rules.comparisons[m];
                            let level = if members[m] == fuzzy::NULL {
                                "no value".to_string()
                            } else {
                                c.method.labels()[members[m] as usize].clone()
                            };
                            serde_json::json!({
                                "name": c.name,
                                "level": level,
                                "left": cols.value(c.field, lr),
                                "right": cols.value(c.field, rr),
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "name": unit.name,
                        "level": unit.label(rules, level),
                        "weight": (weight * 100.0).round() / 100.0,
                        "tf": tf,
                        "members": parts,
                    })
                })
                .collect();
            let id = ids.of(left, right);
            Some((
                id,
                [
                    Value::Text(left.clone()),
                    Value::Text(right.clone()),
                    Value::Real(cand.weight),
                    Value::Real(cand.weight + prior),
                    Value::Real(cand.probability),
                    Value::Text(band.into()),
                    Value::Text(blocking.join(", ")),
                    Value::Text(serde_json::Value::Array(detail).to_string()),
                    Value::Text(flags.join(",")),
                    decision.map_or(Value::Null, |d| Value::Text(d.clone())),
                ],
            ))
        })
        .collect();
    let mut review = 0;
    for (id, row) in rows.into_iter().flatten() {
        if matches!(&row[5], Value::Text(b) if b == "review") {
            review += 1;
        }
        let id = id.unwrap_or_else(|| ids.mint());
        ins.push(std::iter::once(Value::Integer(id)).chain(row))?;
    }
    ins.finish()?;
    Ok(review)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_ids_stay_with_their_pair_and_new_ones_never_reuse_an_id() {
        let conn = crate::store::open_in_memory().unwrap();
        let add = |id: i64, l: &str, r: &str| {
            conn.execute(
                "INSERT INTO match_candidates (candidate_id, left_key, right_key, weight, match_weight,
                   probability, band, blocking, comparisons) VALUES (?1, ?2, ?3, 0, 0, 0.5, 'review', '', '[]')",
                params![id, l, r],
            )
            .unwrap();
        };
        add(4, "a", "b");
        add(9, "a", "c");
        let mut ids = CandidateIds::read(&conn).unwrap();
        assert_eq!(ids.of("a", "b"), Some(4));
        assert_eq!(ids.of("b", "c"), None);
        assert_eq!(ids.mint(), 10, "above every id stored");
        ids.save(&conn).unwrap();
        // Pair 9 dropped, the sequence remembers 10 was given.
        conn.execute_batch("DELETE FROM match_candidates WHERE candidate_id = 9")
            .unwrap();
        let mut again = CandidateIds::read(&conn).unwrap();
        assert_eq!(again.mint(), 11);
    }
}
