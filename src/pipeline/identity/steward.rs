//! Steward decisions: approve (must-link), reject (cannot-link), split and
//! undo. Each is committed to SQLite at once, in one transaction with its
//! effect on `customer360_id_map` (the customers involved are re-clustered
//! from the stored links), its lineage rows and its `audit_log` entry. Every
//! later resolve run reads the active decisions back ([`active`]) and honours
//! them.
//!
//! Also here: the review queue and a candidate's details, shared by the TUI
//! and `c360 review`.

use super::assign_ids;
use super::cluster::{Apart, Clusterer};
use crate::pipeline::timeparse::now_utc;
use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{BTreeSet, HashMap};

/// A must-link from an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MustLink {
    pub decision_id: i64,
    pub left: String,
    pub right: String,
}

/// Records to keep apart: a rejection (one record each side) or a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepApart {
    pub decision_id: i64,
    pub a: Vec<String>,
    pub b: Vec<String>,
}

/// The decisions in force (not undone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    pub must: Vec<MustLink>,
    pub apart: Vec<KeepApart>,
    /// (left, right) -> "approve" | "reject", the latest per pair.
    pub pairs: Vec<((String, String), String)>,
}

impl Decisions {
    /// Every record key a decision names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.must
            .iter()
            .flat_map(|m| [m.left.as_str(), m.right.as_str()])
            .chain(
                self.apart
                    .iter()
                    .flat_map(|k| k.a.iter().chain(&k.b).map(String::as_str)),
            )
    }

    pub fn pair_actions(&self) -> HashMap<(String, String), String> {
        self.pairs.iter().cloned().collect()
    }
}

/// Load the decisions in force, oldest first.
pub fn active(conn: &Connection) -> Result<Decisions> {
    let mut out = Decisions::default();
    let mut stmt = conn.prepare(
        "SELECT decision_id, action, pair_left, pair_right FROM steward_decisions
         WHERE undone_at IS NULL ORDER BY decision_id",
    )?;
    let rows: Vec<(i64, String, Option<String>, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut members = conn.prepare(
        "SELECT side, record_key FROM decision_members WHERE decision_id = ?1 ORDER BY side, record_key",
    )?;
    let mut latest: HashMap<(String, String), String> = HashMap::new();
    for (id, action, left, right) in rows {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for m in members.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (side, key) = m?;
            if side == "a" {
                a.push(key)
            } else {
                b.push(key)
            }
        }
        match action.as_str() {
            "approve" => {
                if let (Some(l), Some(r)) = (left.clone(), right.clone()) {
                    out.must.push(MustLink {
                        decision_id: id,
                        left: l,
                        right: r,
                    });
                }
            }
            _ => out.apart.push(KeepApart {
                decision_id: id,
                a,
                b,
            }),
        }
        if let (Some(l), Some(r)) = (left, right) {
            latest.insert((l, r), action);
        }
    }
    let mut pairs: Vec<_> = latest.into_iter().collect();
    pairs.sort();
    out.pairs = pairs;
    Ok(out)
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision_id: i64,
    /// customer360_id of the records named, after the decision.
    pub customers: Vec<String>,
    /// Lineage rows written: (old id, new id, reason).
    pub lineage: Lineage,
    /// Unions refused because of other decisions.
    pub refused: u64,
    pub message: String,
    /// Every decision written or undone (one, or all of a bulk's; none for
    /// a bulk with nothing to decide, whose `decision_id` is 0).
    pub decision_ids: Vec<i64>,
    /// The bulk the decisions belong to, if any.
    pub bulk_id: Option<i64>,
}

fn customer_of(tx: &Connection, key: &str) -> Result<String> {
    tx.query_row(
        "SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1",
        [key],
        |r| r.get(0),
    )
    .optional()?
    .with_context(|| {
        format!("no record {key:?} in customer360_id_map (run the resolve step first)")
    })
}

fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

fn audit(tx: &Connection, actor: &str, action: &str, detail: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now_utc(), actor, action, detail],
    )?;
    Ok(())
}

/// An `audit_log` entry in parts (the Audit trail reads them): what it is
/// about, why, what changed, and the decision or bulk it records.
struct Entry<'a> {
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    reason: &'a str,
    change: &'a str,
    decision_id: Option<i64>,
    bulk_id: Option<i64>,
    /// The one-line text of `detail` (what older entries hold alone).
    detail: String,
}

fn audit_entry(tx: &Connection, e: &Entry) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, detail, subject, reason, change, decision_id, bulk_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            now_utc(),
            e.actor,
            e.action,
            e.detail,
            e.subject,
            e.reason,
            e.change,
            e.decision_id,
            e.bulk_id
        ],
    )?;
    Ok(())
}

/// Write one pair decision (its row, its two members, the candidate's
/// decision) and return its id.
fn record_pair_decision(
    tx: &Connection,
    (left, right): (&str, &str),
    action: &str,
    actor: &str,
    reason: &str,
    bulk_id: Option<i64>,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO steward_decisions (at, actor, action, pair_left, pair_right, reason, bulk_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![now_utc(), actor, action, left, right, reason, bulk_id],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO decision_members (decision_id, side, record_key) VALUES (?1, 'a', ?2), (?1, 'b', ?3)",
        params![id, left, right],
    )?;
    tx.execute(
        "UPDATE match_candidates SET decision = ?3 WHERE left_key = ?1 AND right_key = ?2",
        params![left, right, action],
    )?;
    Ok(id)
}

/// Approve (must-link) or reject (cannot-link) a pair of records.
pub fn decide_pair(
    conn: &mut Connection,
    a: &str,
    b: &str,
    approve: bool,
    actor: &str,
    reason: &str,
) -> Result<Outcome> {
    crate::store::with_full_sync(conn, |c| {
        decide_pair_durably(c, a, b, approve, actor, reason)
    })
}

fn decide_pair_durably(
    conn: &mut Connection,
    a: &str,
    b: &str,
    approve: bool,
    actor: &str,
    reason: &str,
) -> Result<Outcome> {
    if a == b {
        bail!("a record cannot be matched with itself");
    }
    let (left, right) = ordered(a, b);
    let action = if approve { "approve" } else { "reject" };
    let tx = conn.transaction()?;
    let (cl, cr) = (customer_of(&tx, left)?, customer_of(&tx, right)?);
    let id = record_pair_decision(&tx, (left, right), action, actor, reason, None)?;
    let scopes = if approve {
        Vec::new()
    } else {
        vec![Scope::reject(left, right)]
    };
    let (lineage, refused) = recluster_scoped(&tx, &[cl.clone(), cr.clone()], &scopes, Some(id))?;
    let customers = vec![customer_of(&tx, left)?, customer_of(&tx, right)?];
    let message = match (approve, customers[0] == customers[1], cl == cr) {
        (true, true, true) => format!("approved: already one customer ({})", customers[0]),
        (true, true, false) => format!("approved: {cl} and {cr} are now {}", customers[0]),
        (true, false, _) => format!(
            "approved, but kept apart by an earlier rejection or split ({} unions refused)",
            refused
        ),
        (false, false, true) => format!(
            "rejected: {cl} split into {} and {}",
            customers[0], customers[1]
        ),
        (false, false, false) => {
            format!("rejected: {} and {} stay apart", customers[0], customers[1])
        }
        (false, true, _) => format!(
            "rejected, but the records are still one customer through a steward approval ({})",
            customers[0]
        ),
    };
    audit_entry(
        &tx,
        &Entry {
            actor,
            action,
            subject: &format!("{left} / {right}"),
            reason,
            change: &message,
            decision_id: Some(id),
            bulk_id: None,
            detail: format!("decision {id}: {left} / {right}; reason: {reason:?}; {message}"),
        },
    )?;
    tx.commit()?;
    Ok(Outcome {
        decision_id: id,
        customers,
        lineage,
        refused,
        message,
        decision_ids: vec![id],
        bulk_id: None,
    })
}

/// A record in a [`RejectPreview`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRecord {
    pub key: String,
    /// crm, web or transactions.
    pub system: String,
    /// A short description: a CRM record's name, e-mail, phone and place; an
    /// event's name and time; an order's type, time and amount.
    pub description: String,
}

/// What rejecting a pair would do, computed without writing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectPreview {
    /// The pair, ordered (left < right).
    pub left_key: String,
    pub right_key: String,
    /// Their customers now (the same id when they are one customer).
    pub left_customer: String,
    pub right_customer: String,
    /// Whether the two records are one customer now. When not, the sides
    /// below are empty: a rejection changes no customer.
    pub together: bool,
    /// Whether they would stay one customer all the same (held by a steward
    /// approval).
    pub still_together: bool,
    /// After the rejection: the customer's records that would go with the
    /// left record, and with the right one (each including that record).
    /// When `still_together`, every record is in `left_side`.
    pub left_side: Vec<PreviewRecord>,
    pub right_side: Vec<PreviewRecord>,
    /// Records that would form customers of their own, with neither.
    pub others: Vec<PreviewRecord>,
    /// The ids the two sides would have (a new one written as the id the
    /// rejection would mint).
    pub left_id_after: String,
    pub right_id_after: String,
    pub message: String,
}

/// What [`decide_pair`] rejecting `a` and `b` would do, without writing: the
/// customer's records re-clustered as the real rejection does (the same
/// evidence and decisions in force, plus the new cannot-link), and the ids
/// each side would get.
pub fn reject_preview(conn: &Connection, a: &str, b: &str) -> Result<RejectPreview> {
    if a == b {
        bail!("a record cannot be matched with itself");
    }
    let (left, right) = ordered(a, b);
    let (cl, cr) = (customer_of(conn, left)?, customer_of(conn, right)?);
    let mut preview = RejectPreview {
        left_key: left.to_string(),
        right_key: right.to_string(),
        left_customer: cl.clone(),
        right_customer: cr.clone(),
        together: cl == cr,
        still_together: false,
        left_side: Vec::new(),
        right_side: Vec::new(),
        others: Vec::new(),
        left_id_after: cl.clone(),
        right_id_after: cr.clone(),
        message: format!("already apart: {cl} and {cr} stay as they are"),
    };
    if cl != cr {
        return Ok(preview);
    }
    let (keys, previous) = members_of(conn, std::slice::from_ref(&cl))?;
    let mut decisions = active(conn)?;
    decisions.apart.push(KeepApart {
        decision_id: 0,
        a: vec![left.to_string()],
        b: vec![right.to_string()],
    });
    let (clusters, _) = cluster_keys(conn, &keys, &decisions)?;
    let clusters: Vec<Vec<&str>> = clusters
        .into_iter()
        .map(|c| c.into_iter().map(|i| keys[i as usize].as_str()).collect())
        .collect();
    let next_seq = super::next_id_seq(conn)?;
    let scopes = [Scope::reject(left, right)];
    let assignment = assign_with_memory(conn, &clusters, &previous, next_seq, &scopes)?;
    let holding = |key: &str| clusters.iter().position(|c| c.contains(&key));
    let (li, ri) = (
        holding(left).context("left record not clustered")?,
        holding(right).context("right record not clustered")?,
    );
    let described: HashMap<String, (String, String)> =
        crate::read::customers::records(conn, &cl, usize::MAX >> 1)?
            .into_iter()
            .map(|r| (r.key, (r.system, r.summary)))
            .collect();
    let record = |k: &str| {
        let (system, description) = described.get(k).cloned().unwrap_or_default();
        PreviewRecord {
            key: k.to_string(),
            system,
            description,
        }
    };
    for (ci, cluster) in clusters.iter().enumerate() {
        let side = if ci == li {
            &mut preview.left_side
        } else if ci == ri {
            &mut preview.right_side
        } else {
            &mut preview.others
        };
        side.extend(cluster.iter().map(|k| record(k)));
    }
    preview.still_together = li == ri;
    preview.left_id_after = assignment.ids[li].clone();
    preview.right_id_after = assignment.ids[ri].clone();
    let count = |side: &[PreviewRecord]| {
        let keys: Vec<&str> = side.iter().map(|r| r.key.as_str()).collect();
        describe_records(&keys)
    };
    preview.message = if preview.still_together {
        format!("{cl} stays one customer: a steward approval holds the records together")
    } else {
        format!(
            "{cl} would split: {} ({}) with {left}, {} ({}) with {right}{}",
            preview.left_id_after,
            count(&preview.left_side),
            preview.right_id_after,
            count(&preview.right_side),
            if preview.others.is_empty() {
                String::new()
            } else {
                format!(", and {} on their own", count(&preview.others))
            }
        )
    };
    Ok(preview)
}

/// Split `part` (record keys) off their customer: they never share a
/// customer with the customer's other records again.
pub fn split(conn: &mut Connection, part: &[String], actor: &str, reason: &str) -> Result<Outcome> {
    crate::store::with_full_sync(conn, |c| split_durably(c, part, actor, reason))
}

fn split_durably(
    conn: &mut Connection,
    part: &[String],
    actor: &str,
    reason: &str,
) -> Result<Outcome> {
    if part.is_empty() {
        bail!("name at least one record to split off");
    }
    let tx = conn.transaction()?;
    let customer = customer_of(&tx, &part[0])?;
    for k in part {
        let c = customer_of(&tx, k)?;
        if c != customer {
            bail!("{k} belongs to {c}, not {customer}: split one customer at a time");
        }
    }
    let all: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT record_key FROM customer360_id_map WHERE customer360_id = ?1 ORDER BY record_key",
        )?;
        stmt.query_map([&customer], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let part_set: BTreeSet<&str> = part.iter().map(String::as_str).collect();
    // The split-off side: the records named, and what hangs on them alone.
    let index: HashMap<&str, u32> = all
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as u32))
        .collect();
    let edges = evidence(&tx, &all, &index, &active(&tx)?)?;
    let side = split_side(&all, &part_set, &edges);
    let (mut moving, mut rest): (Vec<&String>, Vec<&String>) = (Vec::new(), Vec::new());
    for (i, k) in all.iter().enumerate() {
        if side.contains(&i) {
            moving.push(k);
        } else {
            rest.push(k);
        }
    }
    if rest.is_empty() {
        bail!("{customer} has no other records: nothing to split from");
    }
    tx.execute(
        "INSERT INTO steward_decisions (at, actor, action, reason) VALUES (?1, ?2, 'split', ?3)",
        params![now_utc(), actor, reason],
    )?;
    let id = tx.last_insert_rowid();
    {
        let mut ins = tx.prepare(
            "INSERT OR IGNORE INTO decision_members (decision_id, side, record_key) VALUES (?1, ?2, ?3)",
        )?;
        for k in &moving {
            ins.execute(params![id, "a", k])?;
        }
        for k in &rest {
            ins.execute(params![id, "b", k])?;
        }
    }
    let scope = Scope::split(part_set.iter().copied(), &all);
    let (lineage, refused) =
        recluster_scoped(&tx, std::slice::from_ref(&customer), &[scope], Some(id))?;
    // Every customer the records now form, the split-off one first.
    let mut result: Vec<(String, Vec<&str>)> = Vec::new();
    for k in moving.iter().chain(&rest) {
        let c = customer_of(&tx, k)?;
        match result.iter_mut().find(|(id, _)| *id == c) {
            Some((_, ks)) => ks.push(k.as_str()),
            None => result.push((c, vec![k.as_str()])),
        }
    }
    let customers: Vec<String> = result.iter().map(|(c, _)| c.clone()).collect();
    let with = moving.len() - part_set.len();
    let message = format!(
        "split {} of {} records of {customer}{}: now {}",
        part_set.len(),
        all.len(),
        if with > 0 {
            format!(" (with {with} record(s) linked only to them)")
        } else {
            String::new()
        },
        result
            .iter()
            .map(|(c, ks)| format!("{c} ({})", describe_records(ks)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    audit_entry(
        &tx,
        &Entry {
            actor,
            action: "split",
            subject: &format!(
                "{} of {customer}: {}",
                describe_records(&part_set.iter().copied().collect::<Vec<_>>()),
                part_set.iter().copied().collect::<Vec<_>>().join(", ")
            ),
            reason,
            change: &message,
            decision_id: Some(id),
            bulk_id: None,
            detail: format!("decision {id}: {message}; reason: {reason:?}"),
        },
    )?;
    tx.commit()?;
    Ok(Outcome {
        decision_id: id,
        customers,
        lineage,
        refused,
        message,
        decision_ids: vec![id],
        bulk_id: None,
    })
}

/// Undo a decision (the latest one in force when `decision_id` is None).
pub fn undo(
    conn: &mut Connection,
    decision_id: Option<i64>,
    actor: &str,
    reason: &str,
) -> Result<Outcome> {
    crate::store::with_full_sync(conn, |c| undo_durably(c, decision_id, actor, reason))
}

fn undo_durably(
    conn: &mut Connection,
    decision_id: Option<i64>,
    actor: &str,
    reason: &str,
) -> Result<Outcome> {
    let tx = conn.transaction()?;
    let (ids, bulk_id) = undo_targets(&tx, decision_id)?;
    let (actions, keys) = mark_undone(&tx, &ids, actor, reason)?;
    let mut customers: Vec<String> = Vec::new();
    for k in &keys {
        let c = customer_of(&tx, k)?;
        if !customers.contains(&c) {
            customers.push(c);
        }
    }
    let (lineage, refused) = recluster(&tx, &customers)?;
    let after: BTreeSet<String> = keys
        .iter()
        .map(|k| customer_of(&tx, k))
        .collect::<Result<_>>()?;
    let id = *ids.last().context("no decision to undo")?;
    let message = match bulk_id {
        Some(b) => format!(
            "undid bulk {b}: {} decision(s) ({}); their records now belong to {}",
            ids.len(),
            actions.iter().cloned().collect::<Vec<_>>().join(", "),
            list_some(&after, 5)
        ),
        None => format!(
            "undid decision {id} ({}); its records now belong to {}",
            actions.iter().cloned().collect::<Vec<_>>().join(", "),
            after.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    let subject = match bulk_id {
        Some(b) => format!("bulk {b} ({} decisions)", ids.len()),
        None => format!("decision {id}"),
    };
    audit_entry(
        &tx,
        &Entry {
            actor,
            action: "undo",
            subject: &subject,
            reason,
            change: &message,
            decision_id: bulk_id.is_none().then_some(id),
            bulk_id,
            detail: format!("{message}; reason: {reason:?}"),
        },
    )?;
    tx.commit()?;
    Ok(Outcome {
        decision_id: id,
        customers: after.into_iter().collect(),
        lineage,
        refused,
        message,
        decision_ids: ids,
        bulk_id,
    })
}

/// "a, b, c and 4 more".
fn list_some(items: &BTreeSet<String>, n: usize) -> String {
    let shown: Vec<&str> = items.iter().take(n).map(String::as_str).collect();
    match items.len().saturating_sub(n) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// The decisions an undo covers: the one named, or the latest one in force
/// with, when it belongs to a bulk, every decision of the bulk still in
/// force (oldest first).
fn undo_targets(tx: &Connection, decision_id: Option<i64>) -> Result<(Vec<i64>, Option<i64>)> {
    let Some(id) = decision_id.map_or_else(
        || {
            tx.query_row(
                "SELECT max(decision_id) FROM steward_decisions WHERE undone_at IS NULL",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
        },
        |id| Ok(Some(id)),
    )?
    else {
        bail!("no decision to undo");
    };
    let (undone, bulk): (Option<String>, Option<i64>) = tx
        .query_row(
            "SELECT undone_at, bulk_id FROM steward_decisions WHERE decision_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .with_context(|| format!("no decision {id}"))?;
    if let Some(at) = undone {
        bail!("decision {id} was already undone at {at}");
    }
    match (decision_id, bulk) {
        (None, Some(b)) => {
            let mut stmt = tx.prepare(
                "SELECT decision_id FROM steward_decisions
                 WHERE bulk_id = ?1 AND undone_at IS NULL ORDER BY decision_id",
            )?;
            let ids = stmt
                .query_map([b], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok((ids, Some(b)))
        }
        _ => Ok((vec![id], None)),
    }
}

/// Mark `ids` undone and give their pairs' candidates the decision now in
/// force. Returns the actions undone and every record they named.
fn mark_undone(
    tx: &Connection,
    ids: &[i64],
    actor: &str,
    reason: &str,
) -> Result<(BTreeSet<String>, Vec<String>)> {
    let now = now_utc();
    let mut actions = BTreeSet::new();
    let mut keys: Vec<String> = Vec::new();
    let mut members =
        tx.prepare("SELECT record_key FROM decision_members WHERE decision_id = ?1")?;
    let mut previous = tx.prepare(
        "SELECT action FROM steward_decisions WHERE pair_left = ?1 AND pair_right = ?2
         AND undone_at IS NULL ORDER BY decision_id DESC LIMIT 1",
    )?;
    for &id in ids {
        let (action, left, right): (String, Option<String>, Option<String>) = tx.query_row(
            "SELECT action, pair_left, pair_right FROM steward_decisions WHERE decision_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        tx.execute(
            "UPDATE steward_decisions SET undone_at = ?2, undone_by = ?3, undo_reason = ?4 WHERE decision_id = ?1",
            params![id, now, actor, reason],
        )?;
        for k in members.query_map([id], |r| r.get::<_, String>(0))? {
            keys.push(k?);
        }
        if let (Some(l), Some(r)) = (&left, &right) {
            // The pair's decision is now the latest one still in force, if any.
            let before: Option<String> = previous
                .query_row(params![l, r], |row| row.get(0))
                .optional()?;
            tx.execute(
                "UPDATE match_candidates SET decision = ?3 WHERE left_key = ?1 AND right_key = ?2",
                params![l, r, before],
            )?;
        }
        actions.insert(action);
    }
    keys.sort();
    keys.dedup();
    Ok((actions, keys))
}

/// The stored evidence joining records of `keys`, as groups of indices into
/// `keys` (the records one piece of evidence joins), in the order
/// clustering applies it: steward approvals, shared identifiers (every
/// record carrying one linked identifier), nearest-login attributions, then
/// auto-merged fuzzy candidates, most probable first. Records outside `keys`
/// are left out.
fn evidence(
    tx: &Connection,
    keys: &[String],
    index: &HashMap<&str, u32>,
    decisions: &Decisions,
) -> Result<Vec<Vec<u32>>> {
    let mut groups: Vec<Vec<u32>> = Vec::new();
    let pair = |a: &str, b: &str| match (index.get(a), index.get(b)) {
        (Some(&x), Some(&y)) => Some(vec![x, y]),
        _ => None,
    };
    groups.extend(
        decisions
            .must
            .iter()
            .filter_map(|m| pair(&m.left, &m.right)),
    );
    // Nearest-login attributions, and the carriers of each identifier.
    {
        let mut stmt = tx.prepare(
            "SELECT l.identifier_id, i.status, l.via_record FROM identity_links l
             JOIN identifiers i ON i.identifier_id = l.identifier_id WHERE l.record_key = ?1",
        )?;
        let mut carriers: Vec<(i64, Vec<u32>)> = Vec::new();
        let mut logins: Vec<Vec<u32>> = Vec::new();
        let mut slot: HashMap<i64, usize> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let rows: Vec<(i64, String, Option<String>)> = stmt
                .query_map([k], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (ident, status, via) in rows {
                if let Some(v) = via {
                    logins.extend(pair(k, &v));
                } else if status == "linked" {
                    let s = *slot.entry(ident).or_insert_with(|| {
                        carriers.push((ident, Vec::new()));
                        carriers.len() - 1
                    });
                    carriers[s].1.push(i as u32);
                }
            }
        }
        // As the resolve step does: identifiers first, then attributions.
        groups.extend(carriers.into_iter().map(|(_, c)| c).filter(|c| c.len() > 1));
        groups.extend(logins);
    }
    // Auto-merged fuzzy candidates, most probable first. (`+band`: by the
    // record's key indexes, not the band index, which would walk every
    // auto-merged pair for each record.)
    {
        let mut stmt = tx.prepare(
            "SELECT left_key, right_key, probability FROM match_candidates
             WHERE (left_key = ?1 OR right_key = ?1) AND +band = 'auto_merge'
               AND coalesce(decision, '') <> 'reject'",
        )?;
        let mut pairs: Vec<(String, String, f64)> = Vec::new();
        for k in keys {
            for row in stmt.query_map([k], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
                pairs.push(row?);
            }
        }
        pairs.sort_by(|x, y| {
            y.2.total_cmp(&x.2)
                .then_with(|| (&x.0, &x.1).cmp(&(&y.0, &y.1)))
        });
        pairs.dedup_by(|x, y| x.0 == y.0 && x.1 == y.1);
        groups.extend(pairs.iter().filter_map(|(a, b, _)| pair(a, b)));
    }
    Ok(groups)
}

/// "1 CRM record, 1 order, 5 web events".
fn describe_records(keys: &[&str]) -> String {
    let count = |prefix: &str| keys.iter().filter(|k| k.starts_with(prefix)).count();
    let parts = [
        (count("crm:"), "CRM record"),
        (count("transactions:"), "order"),
        (count("web:"), "web event"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which records of a customer go with `part` when it is split off: `part`
/// itself, and every group of records linked to the rest of the customer
/// only through `part` that holds no CRM record of its own (the split-off
/// CRM record's orders and web events go with it; another CRM record and
/// what hangs on it stay). When nothing in the rest holds a CRM record,
/// only `part` moves.
fn split_side(all: &[String], part: &BTreeSet<&str>, evidence: &[Vec<u32>]) -> BTreeSet<usize> {
    let in_part: Vec<bool> = all.iter().map(|k| part.contains(k.as_str())).collect();
    let mut uf = super::UnionFind::new(all.len());
    for group in evidence {
        let mut outside = group.iter().copied().filter(|&r| !in_part[r as usize]);
        if let Some(first) = outside.next() {
            for other in outside {
                uf.union(first, other);
            }
        }
    }
    let is_crm = |i: usize| all[i].starts_with("crm:");
    let mut owners: HashMap<u32, bool> = HashMap::new();
    for i in (0..all.len()).filter(|&i| !in_part[i]) {
        let root = uf.find(i as u32);
        *owners.entry(root).or_default() |= is_crm(i);
    }
    let rest_has_owner = owners.values().any(|&o| o);
    (0..all.len())
        .filter(|&i| in_part[i] || (rest_has_owner && !owners[&uf.find(i as u32)]))
        .collect()
}

/// Lineage rows (old id, new id, reason).
type Lineage = Vec<(String, String, String)>;

/// What a decision is about, for the ids it mints: a rejected pair, or the
/// records a split names. `keys` are the records whose new customers count
/// as the decision's (both records of a pair; every record of the customer
/// split).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    name: String,
    keys: Vec<String>,
}

impl Scope {
    fn reject(left: &str, right: &str) -> Scope {
        Scope {
            name: format!("reject\n{left}\n{right}"),
            keys: vec![left.to_string(), right.to_string()],
        }
    }

    fn split<'a>(part: impl IntoIterator<Item = &'a str>, all: &[String]) -> Scope {
        let part: Vec<&str> = part.into_iter().collect();
        Scope {
            name: format!("split\n{}", part.join("\n")),
            keys: all.to_vec(),
        }
    }
}

/// Re-cluster the records of `customers` from the stored evidence (shared
/// identifiers, nearest-login attributions, auto-merged candidates, steward
/// approvals) under the decisions in force, and update their ids with
/// lineage. Returns the lineage rows written and the unions refused.
fn recluster(tx: &Transaction, customers: &[String]) -> Result<(Lineage, u64)> {
    recluster_scoped(tx, customers, &[], None)
}

/// [`recluster`] for a decision of `scopes`: a part it splits off gets the
/// id the same decision minted for it before (when nobody holds that id
/// now), and an id minted now is remembered for the next time.
fn recluster_scoped(
    tx: &Transaction,
    customers: &[String],
    scopes: &[Scope],
    decision_id: Option<i64>,
) -> Result<(Lineage, u64)> {
    let (keys, previous) = members_of(tx, customers)?;
    let (clusters, refused) = cluster_keys(tx, &keys, &active(tx)?)?;
    let clusters: Vec<Vec<&str>> = clusters
        .into_iter()
        .map(|c| c.into_iter().map(|i| keys[i as usize].as_str()).collect())
        .collect();
    let next_seq = super::next_id_seq(tx)?;
    let assignment = assign_with_memory(tx, &clusters, &previous, next_seq, scopes)?;
    write_assignment(tx, &clusters, &assignment, &previous)?;
    remember_minted(
        tx,
        &clusters,
        &assignment.ids,
        next_seq,
        scopes,
        decision_id,
    )?;
    let mut affected: Vec<String> = customers.to_vec();
    affected.extend(assignment.ids.iter().cloned());
    refresh_affected(tx, &affected)?;
    let lineage = assignment
        .lineage
        .into_iter()
        .map(|(o, n, r)| (o, n, r.as_str().to_string()))
        .collect();
    Ok((lineage, refused))
}

/// The records of `customers` (each customer once) and the id each holds.
fn members_of(
    conn: &Connection,
    customers: &[String],
) -> Result<(Vec<String>, HashMap<String, String>)> {
    let mut keys: Vec<String> = Vec::new();
    let mut previous: HashMap<String, String> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT record_key, customer360_id FROM customer360_id_map WHERE customer360_id = ?1",
    )?;
    let mut seen = BTreeSet::new();
    for c in customers {
        if !seen.insert(c) {
            continue;
        }
        for row in stmt.query_map([c], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (k, id) = row?;
            keys.push(k.clone());
            previous.insert(k, id);
        }
    }
    Ok((keys, previous))
}

/// Cluster `keys` from their stored evidence under `decisions`: the
/// clusters (indices into `keys`, ordered by their smallest index) and the
/// unions refused. Reads only.
fn cluster_keys(
    conn: &Connection,
    keys: &[String],
    decisions: &Decisions,
) -> Result<(Vec<Vec<u32>>, u64)> {
    let index: HashMap<&str, u32> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as u32))
        .collect();
    let apart: Vec<Apart> = decisions
        .apart
        .iter()
        .map(|d| Apart {
            decision_id: d.decision_id,
            a: d.a
                .iter()
                .filter_map(|k| index.get(k.as_str()).copied())
                .collect(),
            b: d.b
                .iter()
                .filter_map(|k| index.get(k.as_str()).copied())
                .collect(),
        })
        .filter(|d| !d.a.is_empty() && !d.b.is_empty())
        .collect();
    let mut clusterer = Clusterer::new(keys.len(), &apart);
    let mut refused = 0u64;
    for group in evidence(conn, keys, &index, decisions)? {
        for &other in &group[1..] {
            if clusterer.union(group[0], other).is_err() {
                refused += 1;
            }
        }
    }
    Ok((clusterer.uf.clusters(), refused))
}

/// [`assign_ids`], then a cluster that got a new id takes back, instead,
/// the id a decision of `scopes` minted for it before: remembered by the
/// cluster's smallest record key, and only while nobody holds it.
fn assign_with_memory(
    conn: &Connection,
    clusters: &[Vec<&str>],
    previous: &HashMap<String, String>,
    next_seq: u64,
    scopes: &[Scope],
) -> Result<super::Assignment> {
    let mut assignment = assign_ids(clusters, previous, next_seq);
    if scopes.is_empty() {
        return Ok(assignment);
    }
    // Remembered ids by anchor record, over every scope.
    let mut by_anchor: HashMap<String, Vec<String>> = HashMap::new();
    {
        let mut remembered = conn
            .prepare_cached("SELECT anchor_key, customer360_id FROM minted_ids WHERE scope = ?1")?;
        for scope in scopes {
            for row in remembered.query_map([&scope.name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })? {
                let (anchor, id) = row?;
                by_anchor.entry(anchor).or_default().push(id);
            }
        }
    }
    if by_anchor.is_empty() {
        return Ok(assignment);
    }
    let mut held =
        conn.prepare_cached("SELECT 1 FROM customer360_id_map WHERE customer360_id = ?1 LIMIT 1")?;
    let mut taken: BTreeSet<String> = assignment.ids.iter().cloned().collect();
    for (ci, cluster) in clusters.iter().enumerate() {
        let minted = assignment.ids[ci].clone();
        let seq = super::seq_of(&minted);
        if seq < next_seq || seq == u64::MAX {
            continue;
        }
        let mut found: Option<String> = None;
        for id in cluster.iter().filter_map(|k| by_anchor.get(*k)).flatten() {
            if !taken.contains(id) && held.query_row([id], |_| Ok(())).optional()?.is_none() {
                found = Some(id.clone());
                break;
            }
        }
        if let Some(id) = found {
            for l in &mut assignment.lineage {
                if l.1 == minted {
                    l.1 = id.clone();
                }
            }
            taken.insert(id.clone());
            assignment.ids[ci] = id;
        }
    }
    assignment.lineage.sort();
    // Sequence numbers minted and then given back are not used again.
    assignment.next_seq = assignment
        .ids
        .iter()
        .map(|id| super::seq_of(id))
        .filter(|&q| q != u64::MAX && q >= next_seq)
        .map(|q| q + 1)
        .max()
        .unwrap_or(next_seq);
    Ok(assignment)
}

/// Remember, per scope, the ids minted now (from `next_seq` on) for the
/// clusters holding one of the scope's records, by the cluster's smallest
/// record key.
fn remember_minted(
    tx: &Connection,
    clusters: &[Vec<&str>],
    ids: &[String],
    next_seq: u64,
    scopes: &[Scope],
    decision_id: Option<i64>,
) -> Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT OR REPLACE INTO minted_ids (scope, anchor_key, customer360_id, decision_id, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let now = now_utc();
    // Record -> the scopes naming it.
    let mut scopes_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (si, scope) in scopes.iter().enumerate() {
        for k in &scope.keys {
            scopes_of.entry(k.as_str()).or_default().push(si);
        }
    }
    for (cluster, id) in clusters.iter().zip(ids) {
        let seq = super::seq_of(id);
        if seq < next_seq || seq == u64::MAX {
            continue;
        }
        let Some(anchor) = cluster.iter().min() else {
            continue;
        };
        let mut mine: Vec<usize> = cluster
            .iter()
            .filter_map(|k| scopes_of.get(k))
            .flatten()
            .copied()
            .collect();
        mine.sort_unstable();
        mine.dedup();
        for si in mine {
            ins.execute(params![scopes[si].name, anchor, id, decision_id, now])?;
        }
    }
    Ok(())
}

/// Write the ids that changed, the lineage and the id sequence.
fn write_assignment(
    tx: &Connection,
    clusters: &[Vec<&str>],
    assignment: &super::Assignment,
    previous: &HashMap<String, String>,
) -> Result<()> {
    let now = now_utc();
    let mut upd = tx.prepare_cached(
        "UPDATE customer360_id_map SET customer360_id = ?2 WHERE record_key = ?1",
    )?;
    for (cluster, id) in clusters.iter().zip(&assignment.ids) {
        for k in cluster {
            if previous.get(*k) != Some(id) {
                upd.execute(params![k, id])?;
            }
        }
    }
    let mut lin = tx.prepare_cached(
        "INSERT INTO customer360_id_lineage (old_id, new_id, reason, at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (old, new, reason) in &assignment.lineage {
        lin.execute(params![old, new, reason.as_str(), now])?;
    }
    tx.execute(
        "INSERT INTO id_sequence (name, next) VALUES ('customer360_id', ?1)
         ON CONFLICT(name) DO UPDATE SET next = max(next, excluded.next)",
        [assignment.next_seq as i64],
    )?;
    Ok(())
}

/// The affected customers' events and profiles follow at once (in this
/// transaction); analytics lag until analyse runs. Without profiles yet,
/// unify has the id map to catch up on. The decision commits whatever
/// happens to the refresh: a refresh that fails is rolled back and leaves
/// unify to catch up.
fn refresh_affected(tx: &Transaction, affected: &[String]) -> Result<()> {
    use crate::store::versions;
    tx.execute_batch("SAVEPOINT live_refresh")?;
    match crate::pipeline::unify::refresh(tx, affected) {
        Ok(refreshed) => {
            tx.execute_batch("RELEASE live_refresh")?;
            match refreshed {
                Some(_) => versions::bump(tx, versions::PROFILES)?,
                None => versions::bump(tx, versions::IDENTITY)?,
            };
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO live_refresh; RELEASE live_refresh")?;
            versions::bump(tx, versions::IDENTITY)?;
            // The next unify moves these customers' events and profiles.
            let mut changed =
                tx.prepare("INSERT OR IGNORE INTO identity_changes (customer360_id) VALUES (?1)")?;
            for id in affected {
                changed.execute([id])?;
            }
            audit(
                tx,
                "c360",
                "refresh",
                &format!("profiles not refreshed after the decision (run unify): {e:#}"),
            )?;
        }
    }
    Ok(())
}

// -------------------------------------------------------------- the queue

/// The columns [`queue_row`] reads, in its order.
const QUEUE_COLUMNS: &str = "candidate_id, left_key, right_key, probability, match_weight, band, flags, decision, comparisons";

/// Which candidates the queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueFilter {
    /// Review band and flagged weak bridges not yet decided.
    #[default]
    Pending,
    /// Review band and weak bridges, decided or not.
    AllReview,
    /// Auto-merged pairs (to audit the machine's work).
    AutoMerged,
    /// Pairs a steward decided on.
    Decided,
}

impl QueueFilter {
    pub const ALL: [QueueFilter; 4] = [
        QueueFilter::Pending,
        QueueFilter::AllReview,
        QueueFilter::AutoMerged,
        QueueFilter::Decided,
    ];

    pub fn label(self) -> &'static str {
        match self {
            QueueFilter::Pending => "to review",
            QueueFilter::AllReview => "review band",
            QueueFilter::AutoMerged => "auto-merged",
            QueueFilter::Decided => "decided",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            QueueFilter::Pending => {
                "(band = 'review' OR flags LIKE '%weak_bridge%') AND decision IS NULL"
            }
            QueueFilter::AllReview => "(band = 'review' OR flags LIKE '%weak_bridge%')",
            QueueFilter::AutoMerged => "band = 'auto_merge'",
            QueueFilter::Decided => "decision IS NOT NULL",
        }
    }
}

/// Queue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueOrder {
    /// Closest to a coin flip first.
    #[default]
    Uncertainty,
    /// Highest probability first.
    Score,
}

impl QueueOrder {
    fn sql(self) -> &'static str {
        match self {
            QueueOrder::Uncertainty => "abs(match_weight), candidate_id",
            QueueOrder::Score => "match_weight DESC, candidate_id",
        }
    }
}

/// One row of the queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueueRow {
    pub candidate_id: i64,
    pub left_key: String,
    pub right_key: String,
    pub probability: f64,
    pub match_weight: f64,
    pub band: String,
    pub flags: String,
    pub decision: Option<String>,
    pub left_name: String,
    pub right_name: String,
}

/// A page of the queue, optionally only pairs with a probability in
/// `[min_p, max_p]`.
pub fn queue(
    conn: &Connection,
    filter: QueueFilter,
    order: QueueOrder,
    band: Option<(f64, f64)>,
    offset: u64,
    limit: u64,
) -> Result<Vec<QueueRow>> {
    let (lo, hi) = band.unwrap_or((0.0, 1.0));
    let sql = format!(
        "SELECT {QUEUE_COLUMNS}
         FROM match_candidates WHERE {} AND probability BETWEEN ?1 AND ?2
         ORDER BY {} LIMIT ?3 OFFSET ?4",
        filter.sql(),
        order.sql()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![lo, hi, limit as i64, offset as i64], |r| {
        Ok(queue_row(r)?.0)
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A queue row from columns 0..=8 (candidate_id, left_key, right_key,
/// probability, match_weight, band, flags, decision, comparisons), and the
/// comparisons JSON.
fn queue_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(QueueRow, String)> {
    let comparisons: String = r.get(8)?;
    let (left_name, right_name) = names_of(&comparisons);
    Ok((
        QueueRow {
            candidate_id: r.get(0)?,
            left_key: r.get(1)?,
            right_key: r.get(2)?,
            probability: r.get(3)?,
            match_weight: r.get(4)?,
            band: r.get(5)?,
            flags: r.get(6)?,
            decision: r.get(7)?,
            left_name,
            right_name,
        },
        comparisons,
    ))
}

/// "first last" of each side from a candidate's comparisons JSON.
fn names_of(comparisons: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(comparisons).unwrap_or_default();
    let mut first = (String::new(), String::new());
    let mut last = (String::new(), String::new());
    for unit in v.as_array().into_iter().flatten() {
        for m in unit["members"].as_array().into_iter().flatten() {
            let side = |s: &str| m[s].as_str().unwrap_or("").to_string();
            match m["name"].as_str() {
                Some("first_name") => first = (side("left"), side("right")),
                Some("last_name") => last = (side("left"), side("right")),
                _ => {}
            }
        }
    }
    let join = |a: &str, b: &str| format!("{a} {b}").trim().to_string();
    (join(&first.0, &last.0), join(&first.1, &last.1))
}

/// The decision in force on a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionInfo {
    pub decision_id: i64,
    /// approve or reject.
    pub action: String,
    pub actor: String,
    /// When (UTC, RFC 3339).
    pub at: String,
    pub reason: String,
    /// The bulk it was part of, if any.
    pub bulk_id: Option<i64>,
}

/// The latest decision in force (not undone) on the pair `a`, `b` (either
/// order), if any.
pub fn decision_of(conn: &Connection, a: &str, b: &str) -> Result<Option<DecisionInfo>> {
    let (left, right) = ordered(a, b);
    let mut stmt = conn.prepare_cached(
        "SELECT decision_id, action, actor, at, reason, bulk_id FROM steward_decisions
         WHERE pair_left = ?1 AND pair_right = ?2 AND undone_at IS NULL
         ORDER BY decision_id DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row(params![left, right], |r| {
            Ok(DecisionInfo {
                decision_id: r.get(0)?,
                action: r.get(1)?,
                actor: r.get(2)?,
                at: r.get(3)?,
                reason: r.get(4)?,
                bulk_id: r.get(5)?,
            })
        })
        .optional()?)
}

/// The pending queue pairs (review band or flagged weak bridges, not
/// decided) with a record of customer `customer360_id` on either side,
/// closest to a coin flip first. Walks the id map's customer index and the
/// candidates' left and right key indexes.
pub fn pending_pairs_of(conn: &Connection, customer360_id: &str) -> Result<Vec<QueueRow>> {
    let sql = format!(
        "SELECT {QUEUE_COLUMNS}
         FROM match_candidates WHERE candidate_id IN (
             SELECT c.candidate_id FROM customer360_id_map m
               JOIN match_candidates c ON c.left_key = m.record_key WHERE m.customer360_id = ?1
             UNION
             SELECT c.candidate_id FROM customer360_id_map m
               JOIN match_candidates c ON c.right_key = m.record_key WHERE m.customer360_id = ?1)
           AND {}
         ORDER BY {}",
        QueueFilter::Pending.sql(),
        QueueOrder::Uncertainty.sql()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([customer360_id], |r| Ok(queue_row(r)?.0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Pairs of `filter` whose record keys or compared values contain `text`
/// (case-insensitive; accents as stored), in queue order, at most `limit`:
/// the Review screen's search. It reads the filter's pairs once (the review
/// queue is small next to the candidates).
pub fn find_pairs(
    conn: &Connection,
    filter: QueueFilter,
    order: QueueOrder,
    text: &str,
    limit: u64,
) -> Result<Vec<QueueRow>> {
    let needle = format!(
        "%{}%",
        text.trim()
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let sql = format!(
        "SELECT {QUEUE_COLUMNS}
         FROM match_candidates
         WHERE {} AND (lower(left_key) LIKE ?1 ESCAPE '\\' OR lower(right_key) LIKE ?1 ESCAPE '\\'
                       OR lower(comparisons) LIKE ?1 ESCAPE '\\' OR CAST(candidate_id AS TEXT) = ?2)
         ORDER BY {} LIMIT ?3",
        filter.sql(),
        order.sql()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![needle, text.trim(), limit as i64], |r| {
        Ok(queue_row(r)?.0)
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Counts for the queue header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct QueueCounts {
    pub reviewed: u64,
    pub remaining: u64,
    pub auto_merged: u64,
    pub decisions: u64,
}

/// One steward decision, as the decision log shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoggedDecision {
    pub decision_id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    /// The pair decided (none for a split).
    pub pair: Option<(String, String)>,
    pub reason: String,
    pub undone_at: Option<String>,
    /// The records a split moved.
    pub members: i64,
    /// The bulk the decision was part of.
    pub bulk_id: Option<i64>,
}

/// The latest `limit` steward decisions, newest first (undone ones too).
pub fn decision_log(conn: &Connection, limit: usize) -> Result<Vec<LoggedDecision>> {
    let mut stmt = conn.prepare(
        "SELECT d.decision_id, d.at, d.actor, d.action, d.pair_left, d.pair_right, d.reason,
                d.undone_at,
                (SELECT count(*) FROM decision_members m WHERE m.decision_id = d.decision_id),
                d.bulk_id
         FROM steward_decisions d ORDER BY d.decision_id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        let left: Option<String> = r.get(4)?;
        let right: Option<String> = r.get(5)?;
        Ok(LoggedDecision {
            decision_id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            pair: left.zip(right),
            reason: r.get(6)?,
            undone_at: r.get(7)?,
            members: r.get(8)?,
            bulk_id: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn queue_counts(conn: &Connection) -> Result<QueueCounts> {
    let one =
        |sql: &str| -> Result<u64> { Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
    Ok(QueueCounts {
        reviewed: one(
            "SELECT count(*) FROM match_candidates WHERE (band = 'review' OR flags LIKE '%weak_bridge%') AND decision IS NOT NULL",
        )?,
        remaining: one(
            "SELECT count(*) FROM match_candidates WHERE (band = 'review' OR flags LIKE '%weak_bridge%') AND decision IS NULL",
        )?,
        auto_merged: one("SELECT count(*) FROM match_candidates WHERE band = 'auto_merge'")?,
        decisions: one("SELECT count(*) FROM steward_decisions WHERE undone_at IS NULL")?,
    })
}

/// One comparison of a candidate, for the waterfall.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ComparisonDetail {
    pub name: String,
    pub level: String,
    pub weight: f64,
    pub tf: bool,
    /// (field, level, left value, right value).
    pub members: Vec<(String, String, Option<String>, Option<String>)>,
}

/// Everything the review screen shows about one candidate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CandidateDetail {
    pub row: QueueRow,
    pub weight: f64,
    pub prior: f64,
    pub blocking: String,
    pub comparisons: Vec<ComparisonDetail>,
    pub left_customer: String,
    pub right_customer: String,
    /// Records each customer holds now, and the merged size.
    pub left_records: u64,
    pub right_records: u64,
}

pub fn candidate(conn: &Connection, candidate_id: i64) -> Result<CandidateDetail> {
    let (row, weight, blocking, comparisons): (QueueRow, f64, String, String) = conn
        .query_row(
            "SELECT candidate_id, left_key, right_key, probability, match_weight, band, flags, decision,
                    comparisons, weight, blocking
             FROM match_candidates WHERE candidate_id = ?1",
            [candidate_id],
            |r| {
                let (row, comparisons) = queue_row(r)?;
                Ok((row, r.get(9)?, r.get(10)?, comparisons))
            },
        )
        .optional()?
        .with_context(|| format!("no candidate {candidate_id}"))?;
    let v: serde_json::Value = serde_json::from_str(&comparisons).unwrap_or_default();
    let text = |x: &serde_json::Value| x.as_str().map(str::to_string);
    let comparisons = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| ComparisonDetail {
            name: text(&u["name"]).unwrap_or_default(),
            level: text(&u["level"]).unwrap_or_default(),
            weight: u["weight"].as_f64().unwrap_or(0.0),
            tf: u["tf"].as_bool().unwrap_or(false),
            members: u["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    (
                        text(&m["name"]).unwrap_or_default(),
                        text(&m["level"]).unwrap_or_default(),
                        text(&m["left"]),
                        text(&m["right"]),
                    )
                })
                .collect(),
        })
        .collect();
    let left_customer = customer_of(conn, &row.left_key)?;
    let right_customer = customer_of(conn, &row.right_key)?;
    let size = |c: &str| -> Result<u64> {
        Ok(conn.query_row(
            "SELECT count(*) FROM customer360_id_map WHERE customer360_id = ?1",
            [c],
            |r| r.get::<_, i64>(0),
        )? as u64)
    };
    Ok(CandidateDetail {
        prior: row.match_weight - weight,
        weight,
        blocking,
        comparisons,
        left_records: size(&left_customer)?,
        right_records: size(&right_customer)?,
        left_customer,
        right_customer,
        row,
    })
}

/// Decide every pending candidate of the queue with a probability in
/// `[lo, hi]` (bulk approve or reject of a score band). Returns how many.
/// See [`decide_bulk`].
pub fn decide_band(
    conn: &mut Connection,
    lo: f64,
    hi: f64,
    approve: bool,
    actor: &str,
    reason: &str,
) -> Result<u64> {
    Ok(decide_bulk(conn, lo, hi, approve, actor, reason)?
        .decision_ids
        .len() as u64)
}

/// Decide every pending candidate with a probability in `[lo, hi]` as one
/// unit: one transaction, one bulk id shared by its decisions (an undo of
/// the latest decision undoes them all), one re-cluster of the customers
/// involved and one audit entry. With no pending pair in the band nothing
/// is written (`bulk_id` None).
pub fn decide_bulk(
    conn: &mut Connection,
    lo: f64,
    hi: f64,
    approve: bool,
    actor: &str,
    reason: &str,
) -> Result<Outcome> {
    crate::store::with_full_sync(conn, |c| {
        decide_bulk_durably(c, (lo, hi), approve, actor, reason)
    })
}

fn decide_bulk_durably(
    conn: &mut Connection,
    (lo, hi): (f64, f64),
    approve: bool,
    actor: &str,
    reason: &str,
) -> Result<Outcome> {
    let action = if approve { "approve" } else { "reject" };
    let tx = conn.transaction()?;
    let rows = queue(
        &tx,
        QueueFilter::Pending,
        QueueOrder::Score,
        Some((lo, hi)),
        0,
        u64::MAX >> 1,
    )?;
    if rows.is_empty() {
        return Ok(Outcome {
            decision_id: 0,
            customers: Vec::new(),
            lineage: Vec::new(),
            refused: 0,
            message: format!("no pending pair with probability {lo:.2}–{hi:.2}"),
            decision_ids: Vec::new(),
            bulk_id: None,
        });
    }
    let bulk_id: i64 = tx.query_row(
        "SELECT coalesce(max(bulk_id), 0) + 1 FROM steward_decisions",
        [],
        |r| r.get(0),
    )?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut before: BTreeSet<String> = BTreeSet::new();
    for r in &rows {
        before.insert(customer_of(&tx, &r.left_key)?);
        before.insert(customer_of(&tx, &r.right_key)?);
        let pair = ordered(&r.left_key, &r.right_key);
        ids.push(record_pair_decision(
            &tx,
            pair,
            action,
            actor,
            reason,
            Some(bulk_id),
        )?);
    }
    let customers: Vec<String> = before.iter().cloned().collect();
    let scopes: Vec<Scope> = if approve {
        Vec::new()
    } else {
        rows.iter()
            .map(|r| {
                let (l, rr) = ordered(&r.left_key, &r.right_key);
                Scope::reject(l, rr)
            })
            .collect()
    };
    let (lineage, refused) = recluster_scoped(&tx, &customers, &scopes, ids.last().copied())?;
    let mut after: BTreeSet<String> = BTreeSet::new();
    for r in &rows {
        after.insert(customer_of(&tx, &r.left_key)?);
        after.insert(customer_of(&tx, &r.right_key)?);
    }
    let verb = if approve { "approved" } else { "rejected" };
    let message = format!(
        "{verb} {} pair(s) with probability {lo:.2}–{hi:.2} (bulk {bulk_id}): {} customer(s) now {}{}",
        rows.len(),
        before.len(),
        after.len(),
        if refused > 0 {
            format!(" ({refused} unions refused by other decisions)")
        } else {
            String::new()
        }
    );
    audit_entry(
        &tx,
        &Entry {
            actor,
            action: "bulk",
            subject: &format!(
                "{} pair(s) with probability {lo:.2}–{hi:.2}, decisions {}–{}",
                rows.len(),
                ids[0],
                ids[ids.len() - 1]
            ),
            reason,
            change: &message,
            decision_id: None,
            bulk_id: Some(bulk_id),
            detail: format!("{message}; reason: {reason:?}"),
        },
    )?;
    tx.commit()?;
    Ok(Outcome {
        decision_id: *ids.last().unwrap_or(&0),
        customers: after.into_iter().collect(),
        lineage,
        refused,
        message,
        decision_ids: ids,
        bulk_id: Some(bulk_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_evidence_of_a_record_is_found_by_its_key() {
        let conn = crate::store::open_in_memory().unwrap();
        let mut stmt = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT left_key, right_key, probability FROM match_candidates
                 WHERE (left_key = 'x' OR right_key = 'x') AND +band = 'auto_merge'
                   AND coalesce(decision, '') <> 'reject'",
            )
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("(left_key=?)"))
                && plan.iter().any(|l| l.contains("(right_key=?)")),
            "{}",
            plan.join(" | ")
        );
    }

    #[test]
    fn a_customers_pending_pairs_walk_indexes() {
        let conn = crate::store::open_in_memory().unwrap();
        let sql = "EXPLAIN QUERY PLAN SELECT c.candidate_id FROM customer360_id_map m
               JOIN match_candidates c ON c.left_key = m.record_key WHERE m.customer360_id = 'x'
             UNION
             SELECT c.candidate_id FROM customer360_id_map m
               JOIN match_candidates c ON c.right_key = m.record_key WHERE m.customer360_id = 'x'";
        let mut stmt = conn.prepare(sql).unwrap();
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().all(|l| !l.starts_with("SCAN")),
            "{}",
            plan.join(" | ")
        );
    }

    #[test]
    fn a_new_cluster_takes_back_the_id_its_decision_minted_while_free() {
        let conn = crate::store::open_in_memory().unwrap();
        let scope = Scope::reject("crm:s:1", "crm:s:2");
        conn.execute(
            "INSERT INTO minted_ids (scope, anchor_key, customer360_id, at)
             VALUES (?1, 'crm:s:2', 'C360-00000007', 't')",
            [&scope.name],
        )
        .unwrap();
        let previous: HashMap<String, String> = ["crm:s:1", "crm:s:2", "web:s:3"]
            .iter()
            .map(|k| (k.to_string(), "C360-00000001".to_string()))
            .collect();
        let clusters = vec![vec!["crm:s:1", "web:s:3"], vec!["crm:s:2"]];
        let a = assign_with_memory(&conn, &clusters, &previous, 9, std::slice::from_ref(&scope))
            .unwrap();
        assert_eq!(a.ids, ["C360-00000001", "C360-00000007"]);
        assert_eq!(a.next_seq, 9, "nothing minted");
        assert_eq!(
            a.lineage,
            [(
                "C360-00000001".to_string(),
                "C360-00000007".to_string(),
                super::super::LineageReason::Split
            )]
        );
        // Without the scope, or while someone holds the id: a new one.
        let b = assign_with_memory(&conn, &clusters, &previous, 9, &[]).unwrap();
        assert_eq!(b.ids[1], "C360-00000009");
        conn.execute(
            "INSERT INTO customer360_id_map VALUES ('crm:s:9', 'crm', 's', '9', 'C360-00000007')",
            [],
        )
        .unwrap();
        let c = assign_with_memory(&conn, &clusters, &previous, 9, &[scope]).unwrap();
        assert_eq!(c.ids[1], "C360-00000009");
        assert_eq!(c.next_seq, 10);
    }

    #[test]
    fn names_come_from_the_comparisons() {
        let json = r#"[{"name":"first_name","members":[{"name":"first_name","left":"ann","right":"anne"}]},
                       {"name":"household","members":[{"name":"last_name","left":"lee","right":"lee"}]}]"#;
        assert_eq!(
            names_of(json),
            ("ann lee".to_string(), "anne lee".to_string())
        );
    }
}
