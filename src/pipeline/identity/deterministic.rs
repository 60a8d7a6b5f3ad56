//! Deterministic linking: records that share an identifier value are one
//! customer, within guardrails (issue 5, in progress; not wired as a step).
//!
//! Guardrails, as CDP users learnt them: blocked junk values (regexes) link
//! nobody, and an identifier value carried by more distinct customers than
//! its kind allows links nobody either. With a limit of 1 for devices and
//! cookies, a device used by several logged-in people merges nobody.

use super::UnionFind;
use super::fuzzy::FuzzyRules;
use crate::pipeline::schema::System;
use crate::workspace::{ConfigError, line_of};
use rayon::prelude::*;
use regex::Regex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// One identifier kind and the fields that carry it.
#[derive(Debug, Clone)]
pub struct IdentifierKind {
    pub kind: String,
    /// (system, core field).
    pub fields: Vec<(System, String)>,
    /// Most distinct customers one value may connect (None: no limit).
    pub max_customers: Option<usize>,
    /// Over its limit, give each anonymous record to the customer logged in
    /// nearest in time on the same value (devices, cookies).
    pub nearest_login: bool,
    /// Most distinct customers one value may connect among the records of
    /// one system (`max_per_system = { crm = 1 }`: a phone two CRM records
    /// share is a household line; it links nobody).
    pub max_per_system: Vec<(System, usize)>,
    /// Fuzzy comparisons (by name) in which two CRM records sharing a
    /// value may all differ only if they are two people: such a value
    /// links nobody and the pair goes to review (a couple sharing an
    /// e-mail: different first names and birth dates).
    pub review_if_differ: Vec<String>,
}

/// The deterministic rules of `rules/identity.toml`.
#[derive(Debug, Clone)]
pub struct IdentityRules {
    /// The kind whose value names a customer (counts for the limits).
    pub anchor: String,
    pub kinds: Vec<IdentifierKind>,
    pub blocked: Vec<Regex>,
    /// The same patterns, matched in one pass.
    pub blocked_set: regex::RegexSet,
    /// Fuzzy matching (`[fuzzy]`), if configured.
    pub fuzzy: Option<FuzzyRules>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    anchor: String,
    #[serde(default)]
    blocked: Vec<Spanned<String>>,
    identifiers: Vec<RawKind>,
    fuzzy: Option<RawFuzzy>,
}

/// `[fuzzy]` as written; checked by [`FuzzyRules::from_raw`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFuzzy {
    pub systems: Vec<Spanned<String>>,
    pub auto_merge: Spanned<f64>,
    pub review: Spanned<f64>,
    pub weak_bridge: Option<Spanned<f64>>,
    pub max_block_size: Option<usize>,
    pub random_pairs: Option<usize>,
    pub em_iterations: Option<usize>,
    #[serde(default)]
    pub nicknames: Vec<Vec<String>>,
    /// A CSV of (name, relationship, nickname) rows in `rules/`.
    pub nicknames_file: Option<String>,
    pub compare: Vec<RawCompare>,
    pub blocking: Vec<RawBlocking>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompare {
    pub name: String,
    pub field: Spanned<String>,
    pub method: Spanned<String>,
    pub thresholds: Option<Vec<f64>>,
    #[serde(default)]
    pub tf: bool,
    pub group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlocking {
    pub name: String,
    pub keys: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    kind: String,
    fields: Vec<Spanned<String>>,
    max_customers: Option<usize>,
    #[serde(default)]
    shared: Option<Spanned<String>>,
    #[serde(default)]
    max_per_system: BTreeMap<Spanned<String>, usize>,
    #[serde(default)]
    review_if_differ: Vec<Spanned<String>>,
}

impl IdentityRules {
    /// Parse the text of an identity rules file; errors name file and line.
    pub fn parse(text: &str, file: &str) -> Result<IdentityRules, ConfigError> {
        let err = |offset: usize, message: String| ConfigError {
            file: file.to_string(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawRules = toml::from_str(text).map_err(|e| {
            err(
                e.span().map_or(0, |s| s.start),
                e.message().trim_end().to_string(),
            )
        })?;
        let mut blocked = Vec::new();
        for b in &raw.blocked {
            blocked.push(Regex::new(b.get_ref()).map_err(|e| {
                err(
                    b.span().start,
                    format!(
                        "field `blocked`: invalid regular expression {:?}: {}",
                        b.get_ref(),
                        e.to_string().lines().last().unwrap_or("")
                    ),
                )
            })?);
        }
        // review_if_differ names fuzzy comparisons.
        let compared: Vec<&str> = raw.fuzzy.as_ref().map_or_else(Vec::new, |f| {
            f.compare.iter().map(|c| c.name.as_str()).collect()
        });
        for k in &raw.identifiers {
            if let Some(n) = k
                .review_if_differ
                .iter()
                .find(|n| !compared.contains(&n.get_ref().as_str()))
            {
                return Err(err(
                    n.span().start,
                    format!(
                        "field `identifiers.review_if_differ` of kind {:?}: {:?} is not a [[fuzzy.compare]] name ({})",
                        k.kind,
                        n.get_ref(),
                        compared.join(", ")
                    ),
                ));
            }
        }
        let kinds = raw
            .identifiers
            .into_iter()
            .map(|k| parse_kind(k, &err))
            .collect::<Result<Vec<_>, _>>()?;
        if !kinds.iter().any(|k| k.kind == raw.anchor) {
            return Err(err(
                0,
                format!(
                    "field `anchor`: {:?} is not one of the [[identifiers]] kinds",
                    raw.anchor
                ),
            ));
        }
        let fuzzy = match raw.fuzzy {
            Some(f) => Some(FuzzyRules::from_raw(f, text, file)?),
            None => None,
        };
        let blocked_set = blocked_set(&raw.blocked).map_err(|(i, e)| {
            let (at, pattern) = raw
                .blocked
                .get(i)
                .map_or((0, ""), |b| (b.span().start, b.get_ref().as_str()));
            err(
                at,
                format!(
                    "field `blocked`: regular expression {pattern:?} is too big together with the patterns before it: {}",
                    e.to_string().lines().last().unwrap_or("")
                ),
            )
        })?;
        Ok(IdentityRules {
            anchor: raw.anchor,
            kinds,
            blocked,
            blocked_set,
            fuzzy,
        })
    }
}

/// One `[[identifiers]]` table, checked.
fn parse_kind(
    k: RawKind,
    err: &impl Fn(usize, String) -> ConfigError,
) -> Result<IdentifierKind, ConfigError> {
    let mut fields = Vec::new();
    for f in &k.fields {
        let parsed = f.get_ref().split_once('.').and_then(|(sys, field)| {
            let system = System::ALL.into_iter().find(|s| s.as_str() == sys)?;
            system.field(field)?;
            Some((system, field.to_string()))
        });
        match parsed {
            Some(p) => fields.push(p),
            None => {
                return Err(err(
                    f.span().start,
                    format!(
                        "field `identifiers.fields` of kind {:?}: {:?} is not <system>.<core field> (e.g. \"crm.email\", \"web.user_id\")",
                        k.kind,
                        f.get_ref()
                    ),
                ));
            }
        }
    }
    let nearest_login = match &k.shared {
        None => false,
        Some(s) if s.get_ref() == "nearest_login" => true,
        Some(s) => {
            return Err(err(
                s.span().start,
                format!(
                    "field `identifiers.shared` of kind {:?}: {:?} is not \"nearest_login\"",
                    k.kind,
                    s.get_ref()
                ),
            ));
        }
    };
    let mut max_per_system = Vec::new();
    for (sys, max) in &k.max_per_system {
        let Some(system) = System::ALL
            .into_iter()
            .find(|s| s.as_str() == sys.get_ref())
        else {
            return Err(err(
                sys.span().start,
                format!(
                    "field `identifiers.max_per_system` of kind {:?}: {:?} is not a system (crm, web, transactions)",
                    k.kind,
                    sys.get_ref()
                ),
            ));
        };
        max_per_system.push((system, *max));
    }
    Ok(IdentifierKind {
        kind: k.kind,
        fields,
        max_customers: k.max_customers,
        nearest_login,
        max_per_system,
        review_if_differ: k
            .review_if_differ
            .iter()
            .map(|n| n.get_ref().clone())
            .collect(),
    })
}

/// The blocked patterns as one set. Each pattern compiled alone already,
/// but together they can still exceed the regex size limit; then the error
/// names the first pattern (index) the set fails at.
fn blocked_set(patterns: &[Spanned<String>]) -> Result<regex::RegexSet, (usize, regex::Error)> {
    let all = patterns.iter().map(|p| p.get_ref().as_str());
    match regex::RegexSet::new(all) {
        Ok(set) => Ok(set),
        Err(e) => {
            // Which pattern breaks it: the shortest prefix that fails.
            for i in 0..patterns.len() {
                let prefix = patterns[..=i].iter().map(|p| p.get_ref().as_str());
                if let Err(e) = regex::RegexSet::new(prefix) {
                    return Err((i, e));
                }
            }
            Err((patterns.len().saturating_sub(1), e))
        }
    }
}

impl IdentityRules {
    pub fn is_blocked(&self, value: &str) -> bool {
        let v = value.trim().to_lowercase();
        self.blocked_set.is_match(&v)
    }
}

/// What happened to one identifier value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Linked its records (or had only one).
    Linked,
    /// Matched a blocked pattern: links nobody.
    Blocked,
    /// Carried by more distinct customers than allowed: links nobody.
    OverLimit { customers: usize },
    /// Over the limit on a `nearest_login` kind: a shared device. Merges no
    /// customers; each anonymous record goes to the nearest login in time.
    Shared { customers: usize },
    /// Carried by CRM records that differ in every `review_if_differ`
    /// comparison: two people (a couple's e-mail). Links nobody; the pairs
    /// go to review.
    Conflict { customers: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierStat {
    pub kind: usize,
    pub value: String,
    pub records: usize,
    pub status: Status,
}

/// The links between records and what each identifier value did.
pub struct Linked {
    /// Record pairs to join (linear in the number of identifier carriers).
    pub edges: Vec<(u32, u32)>,
    pub identifiers: Vec<IdentifierStat>,
    /// Values carried by one record only (not in `identifiers`: they link
    /// nothing).
    pub singletons: u64,
    /// Anonymous records on shared devices and the login nearest in time:
    /// (record, kind, login record, distance in ms). Applied after `edges`
    /// by [`Linked::attribute`].
    pub attributed: Vec<(u32, usize, u32, i64)>,
    /// Per record: does it carry the anchor (a customer id)?
    pub has_anchor: Vec<bool>,
    /// CRM record pairs a `Conflict` value would have joined: for review.
    pub conflicts: Vec<(u32, u32)>,
}

/// Union-find-like structures the links can be applied to.
pub trait Join {
    fn find(&mut self, x: u32) -> u32;
    /// Join; false when refused or already joined.
    fn join(&mut self, a: u32, b: u32) -> bool;
}

impl Join for UnionFind {
    fn find(&mut self, x: u32) -> u32 {
        UnionFind::find(self, x)
    }
    fn join(&mut self, a: u32, b: u32) -> bool {
        self.union(a, b)
    }
}

impl Linked {
    /// Give anonymous records on shared devices to the nearest login, once
    /// the ordinary links are applied: nearest first, each record at most
    /// once, and never a record already tied to a customer by other
    /// evidence (so a shared device can never bridge two customers).
    /// Returns the attributions applied.
    pub fn attribute(&self, uf: &mut impl Join) -> Vec<(u32, usize, u32)> {
        let mut order: Vec<usize> = (0..self.attributed.len()).collect();
        order.sort_by_key(|&i| (self.attributed[i].3, i));
        let mut customer: FxHashSet<u32> = FxHashSet::default();
        for (r, &a) in self.has_anchor.iter().enumerate() {
            if a {
                customer.insert(uf.find(r as u32));
            }
        }
        let mut applied = Vec::new();
        for i in order {
            let (r, kind, login, _) = self.attributed[i];
            let root = uf.find(r);
            if customer.contains(&root) {
                continue;
            }
            if uf.join(r, login) {
                customer.insert(uf.find(r));
                applied.push((r, kind, login));
            }
        }
        applied
    }

    /// The clusters the links make (tests, tools).
    pub fn clusters(&self, n: usize) -> Vec<Vec<u32>> {
        let mut uf = UnionFind::new(n);
        for &(a, b) in &self.edges {
            uf.union(a, b);
        }
        self.attribute(&mut uf);
        uf.clusters()
    }
}

/// (kind, value, record) triples in order, and the runs of one value.
type Grouped<'a> = (Vec<(usize, &'a str, u32)>, Vec<(usize, usize)>);

/// Every (identifier kind, value, record) of the records, sorted, and the
/// runs of one value in it: the order a sort of the triples gives, but
/// only the distinct values are compared as strings. Each value is hashed
/// to its group (in first-seen order), the groups are sorted, and the
/// triples are placed by a counting sort on their group's rank, which keeps
/// the records of a group in ascending order.
fn group_by_value(records: &[Vec<(usize, String)>]) -> Grouped<'_> {
    let total: usize = records.iter().map(Vec::len).sum();
    let mut group_of: FxHashMap<(usize, &str), u32> = FxHashMap::default();
    let mut groups: Vec<(usize, &str)> = Vec::new();
    let mut member: Vec<(u32, u32)> = Vec::with_capacity(total);
    for (i, ids) in records.iter().enumerate() {
        for (k, v) in ids {
            let g = *group_of.entry((*k, v.as_str())).or_insert_with(|| {
                groups.push((*k, v.as_str()));
                (groups.len() - 1) as u32
            });
            member.push((g, i as u32));
        }
    }
    drop(group_of);
    let mut order: Vec<u32> = (0..groups.len() as u32).collect();
    order.par_sort_unstable_by(|&a, &b| groups[a as usize].cmp(&groups[b as usize]));
    let mut rank = vec![0u32; groups.len()];
    for (r, &g) in order.iter().enumerate() {
        rank[g as usize] = r as u32;
    }
    // Counting sort: where each rank's run starts.
    let mut start = vec![0usize; groups.len() + 1];
    for &(g, _) in &member {
        start[rank[g as usize] as usize + 1] += 1;
    }
    for r in 0..groups.len() {
        start[r + 1] += start[r];
    }
    let runs: Vec<(usize, usize)> = start.windows(2).map(|w| (w[0], w[1])).collect();
    let mut next = start;
    let mut flat: Vec<(usize, &str, u32)> = vec![(0, "", 0); total];
    for (g, rec) in member {
        let r = rank[g as usize] as usize;
        let (k, v) = groups[g as usize];
        flat[next[r]] = (k, v, rec);
        next[r] += 1;
    }
    (flat, runs)
}

/// The customers the links made so far: clusters of records, each a
/// customer once it holds a record with an anchor (a customer id).
struct SoFar {
    uf: UnionFind,
    /// Per root: does its cluster hold an anchor?
    anchored: Vec<bool>,
}

impl SoFar {
    fn join(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.uf.find(a), self.uf.find(b));
        if self.uf.union(ra, rb) {
            let root = self.uf.find(ra);
            self.anchored[root as usize] = self.anchored[ra as usize] || self.anchored[rb as usize];
        }
    }

    /// The record's customer (its cluster's root) if its cluster is one.
    fn customer(&mut self, r: u32) -> Option<u32> {
        let root = self.uf.find(r);
        self.anchored[root as usize].then_some(root)
    }

    /// The distinct customers among `recs` (those of `system` only, if given).
    fn customers(&mut self, recs: &[u32], systems: &[System], system: Option<System>) -> usize {
        let mut seen: FxHashSet<u32> = FxHashSet::default();
        for &r in recs {
            if system.is_some_and(|s| systems.get(r as usize) != Some(&s)) {
                continue;
            }
            if let Some(c) = self.customer(r) {
                seen.insert(c);
            }
        }
        seen.len()
    }
}

/// Link records by shared identifiers. `records[i]` lists record i's
/// identifiers as (index into `rules.kinds`, value); `times[i]` is its time
/// in ms (events), used to give anonymous records on a shared device to the
/// login nearest in time. `times` may be shorter than `records` (no time).
/// `systems[i]` is record i's system, for the per-system limits (records
/// past its end count for no system).
///
/// Kinds apply in priority order: the anchor (customer ids) first, then the
/// others in file order. A limit counts the customers a value would join
/// as the links of the kinds before it made them, so a device's limit sees
/// that its events reach two people through an order id or an e-mail, not
/// only through the user ids seen on it.
pub fn link(
    records: &[Vec<(usize, String)>],
    times: &[Option<i64>],
    systems: &[System],
    rules: &IdentityRules,
    differ: &dyn Fn(u32, u32, &[String]) -> bool,
) -> Linked {
    let anchor = rules.kinds.iter().position(|k| k.kind == rules.anchor);
    let (flat, runs) = group_by_value(records);
    let has_anchor: Vec<bool> = records
        .iter()
        .map(|ids| anchor.is_some_and(|a| ids.iter().any(|(k, _)| *k == a)))
        .collect();
    let time_of = |r: u32| times.get(r as usize).copied().flatten();
    let mut so_far = SoFar {
        uf: UnionFind::new(records.len()),
        anchored: has_anchor.clone(),
    };
    let mut edges = Vec::new();
    let mut attributed = Vec::new();
    let mut conflicts = Vec::new();
    // Junk checks (regexes) on every distinct value, in parallel.
    let junk: Vec<bool> = runs
        .par_iter()
        .map(|&(s, _)| rules.is_blocked(flat[s].1))
        .collect();
    // Runs are in (kind, value) order: the anchor's first, then the rest.
    let order = (0..runs.len())
        .filter(|&i| Some(flat[runs[i].0].0) == anchor)
        .chain((0..runs.len()).filter(|&i| Some(flat[runs[i].0].0) != anchor));
    let mut identifiers = Vec::new();
    let mut singletons = 0u64;
    for i in order {
        let ((s, e), junk) = (runs[i], junk[i]);
        if e - s == 1 && !junk {
            // One record: links nothing, limits cannot apply.
            singletons += 1;
            continue;
        }
        let recs: Vec<u32> = flat[s..e].iter().map(|x| x.2).collect();
        let (kind, value) = (flat[s].0, flat[s].1);
        let rule = &rules.kinds[kind];
        let status = if junk {
            Status::Blocked
        } else {
            let customers = so_far.customers(&recs, systems, None);
            let over_in_a_system = rule
                .max_per_system
                .iter()
                .any(|&(sys, max)| so_far.customers(&recs, systems, Some(sys)) > max);
            match rule.max_customers {
                _ if over_in_a_system => Status::OverLimit { customers },
                Some(max) if Some(kind) != anchor && customers > max => {
                    if rule.nearest_login {
                        attributed.extend(nearest_logins(&recs, kind, &mut so_far, &time_of));
                        Status::Shared { customers }
                    } else {
                        Status::OverLimit { customers }
                    }
                }
                _ => {
                    let pairs = differing_pairs(&recs, systems, rule, &mut so_far, differ);
                    if pairs.is_empty() {
                        for w in recs.windows(2) {
                            edges.push((w[0], w[1]));
                            so_far.join(w[0], w[1]);
                        }
                        Status::Linked
                    } else {
                        conflicts.extend(pairs);
                        Status::Conflict { customers }
                    }
                }
            }
        };
        identifiers.push(IdentifierStat {
            kind,
            value: value.to_string(),
            records: recs.len(),
            status,
        });
    }
    Linked {
        edges,
        identifiers,
        singletons,
        attributed,
        has_anchor,
        conflicts,
    }
}

/// The CRM records of a value's group, of different customers so far, that
/// differ in every `review_if_differ` comparison (at most 16 records looked
/// at: more than that is a limit's business).
fn differing_pairs(
    recs: &[u32],
    systems: &[System],
    rule: &IdentifierKind,
    so_far: &mut SoFar,
    differ: &dyn Fn(u32, u32, &[String]) -> bool,
) -> Vec<(u32, u32)> {
    if rule.review_if_differ.is_empty() {
        return Vec::new();
    }
    let crm: Vec<u32> = recs
        .iter()
        .copied()
        .filter(|&r| systems.get(r as usize) == Some(&System::Crm))
        .take(16)
        .collect();
    let mut out = Vec::new();
    for (i, &a) in crm.iter().enumerate() {
        for &b in &crm[i + 1..] {
            if so_far.uf.find(a) != so_far.uf.find(b) && differ(a, b, &rule.review_if_differ) {
                out.push((a, b));
            }
        }
    }
    out
}

/// On a shared value: each record not yet of a customer, with the record
/// of a customer nearest to it in time, (record, kind, login, distance).
fn nearest_logins(
    recs: &[u32],
    kind: usize,
    so_far: &mut SoFar,
    time_of: &impl Fn(u32) -> Option<i64>,
) -> Vec<(u32, usize, u32, i64)> {
    let mut logins: Vec<(i64, u32)> = Vec::new();
    let mut anonymous = Vec::new();
    for &r in recs {
        match (so_far.customer(r), time_of(r)) {
            (Some(_), Some(t)) => logins.push((t, r)),
            (None, Some(t)) => anonymous.push((r, t)),
            _ => {}
        }
    }
    logins.sort_unstable();
    let mut out = Vec::new();
    for (r, t) in anonymous {
        let at = logins.partition_point(|l| l.0 < t);
        let before = at.checked_sub(1).map(|i| logins[i]);
        let after = logins.get(at).copied();
        let nearest = match (before, after) {
            (Some(b), Some(a)) => Some(if t - b.0 <= a.0 - t { b } else { a }),
            (x, y) => x.or(y),
        };
        if let Some((lt, login)) = nearest {
            out.push((r, kind, login, (t - lt).abs()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_by_value_gives_the_order_of_a_sort_of_the_triples() {
        // Values repeated across and within records, kinds interleaved.
        let records: Vec<Vec<(usize, String)>> = (0..500u32)
            .map(|i| {
                let mut ids = vec![
                    (0, format!("v{}", (i * 7919) % 37)),
                    (1, format!("v{}", i % 11)),
                    (0, format!("w{}", i / 3)),
                ];
                if i % 5 == 0 {
                    ids.push((1, format!("v{}", i % 11)));
                }
                ids
            })
            .collect();
        let mut sorted: Vec<(usize, &str, u32)> = records
            .iter()
            .enumerate()
            .flat_map(|(i, ids)| ids.iter().map(move |(k, v)| (*k, v.as_str(), i as u32)))
            .collect();
        sorted.sort_unstable();
        let (flat, runs) = group_by_value(&records);
        assert_eq!(flat, sorted);
        assert_eq!(runs.first().map(|r| r.0), Some(0));
        assert_eq!(runs.last().map(|r| r.1), Some(flat.len()));
        for w in runs.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        for &(s, e) in &runs {
            assert!(
                flat[s..e]
                    .iter()
                    .all(|x| (x.0, x.1) == (flat[s].0, flat[s].1))
            );
            if e < flat.len() {
                assert_ne!((flat[e].0, flat[e].1), (flat[s].0, flat[s].1));
            }
        }
        assert_eq!(group_by_value(&[]), (Vec::new(), Vec::new()));
    }

    const RULES: &str = r#"
anchor = "customer_id"
blocked = ['^$', '^(null|none|unknown|n/?a)$', '^test@', '^0+$']

[[identifiers]]
kind = "customer_id"
fields = ["crm.customer_id", "web.user_id", "transactions.customer_id"]

[[identifiers]]
kind = "email"
fields = ["crm.email", "transactions.email"]
max_customers = 3

[[identifiers]]
kind = "device_id"
fields = ["web.device_id"]
max_customers = 1
"#;

    fn rules() -> IdentityRules {
        IdentityRules::parse(RULES, "identity.toml").unwrap()
    }

    fn rec(ids: &[(usize, &str)]) -> Vec<(usize, String)> {
        ids.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn shared_email_and_customer_id_across_systems_link() {
        let r = rules();
        let records = vec![
            rec(&[(0, "C1"), (1, "ann@x.com")]), // crm
            rec(&[(0, "C2"), (1, "ann@x.com")]), // crm duplicate, same email
            rec(&[(0, "C1")]),                   // web event of user C1
            rec(&[(0, "C9")]),                   // someone else
        ];
        let linked = link(&records, &[], &[], &r, &|_, _, _| false);
        assert_eq!(linked.clusters(records.len()), vec![vec![0, 1, 2], vec![3]]);
    }

    #[test]
    fn junk_values_link_nobody() {
        let r = rules();
        let records = vec![
            rec(&[(0, "C1"), (1, "test@test.com")]),
            rec(&[(0, "C2"), (1, "test@test.com")]),
            rec(&[(0, "C3"), (1, "unknown")]),
            rec(&[(0, "C4"), (1, "UNKNOWN")]),
        ];
        let linked = link(&records, &[], &[], &r, &|_, _, _| false);
        assert_eq!(linked.clusters(records.len()).len(), 4);
        assert!(
            linked
                .identifiers
                .iter()
                .filter(|i| i.kind == 1)
                .all(|i| i.status == Status::Blocked)
        );
    }

    #[test]
    fn an_identifier_over_its_limit_glues_nobody() {
        let r = rules();
        // One email shared by 4 customers (limit 3): a catch-all address.
        let mut records: Vec<_> = (0..4)
            .map(|i| rec(&[(0, &format!("C{i}")), (1, "info@shop.com")]))
            .collect();
        // A device used by two logged-in people (limit 1): shared.
        records.push(rec(&[(0, "C10"), (2, "dev-1")]));
        records.push(rec(&[(0, "C11"), (2, "dev-1")]));
        // A device used by one person, also anonymously: links.
        records.push(rec(&[(0, "C20"), (2, "dev-2")]));
        records.push(rec(&[(2, "dev-2")]));
        let linked = link(&records, &[], &[], &r, &|_, _, _| false);
        let clusters = linked.clusters(records.len());
        assert_eq!(clusters.len(), 7, "{clusters:?}");
        assert!(clusters.contains(&vec![6, 7]));
        let status = |v: &str| {
            linked
                .identifiers
                .iter()
                .find(|i| i.value == v)
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(status("info@shop.com"), Status::OverLimit { customers: 4 });
        assert_eq!(status("dev-1"), Status::OverLimit { customers: 2 });
        assert_eq!(status("dev-2"), Status::Linked);
    }

    #[test]
    fn anonymous_events_on_a_shared_device_go_to_the_nearest_login() {
        let text = RULES.replace(
            "fields = [\"web.device_id\"]\nmax_customers = 1",
            "fields = [\"web.device_id\"]\nmax_customers = 1\nshared = \"nearest_login\"",
        );
        let r = IdentityRules::parse(&text, "identity.toml").unwrap();
        assert!(r.kinds[2].nearest_login);
        let records = vec![
            rec(&[(0, "A"), (2, "tablet")]), // 0: A logs in at t=100
            rec(&[(0, "B"), (2, "tablet")]), // 1: B logs in at t=1000
            rec(&[(2, "tablet")]),           // 2: anonymous at t=150 -> A
            rec(&[(2, "tablet")]),           // 3: anonymous at t=900 -> B
            rec(&[(2, "tablet")]),           // 4: anonymous, no time: nobody
            rec(&[(0, "A")]),                // 5: A elsewhere
        ];
        let times = [Some(100), Some(1000), Some(150), Some(900), None, None];
        let linked = link(&records, &times, &[], &r, &|_, _, _| false);
        assert_eq!(
            linked.clusters(records.len()),
            vec![vec![0, 2, 5], vec![1, 3], vec![4]],
            "A and B never merge"
        );
        let tablet = linked
            .identifiers
            .iter()
            .find(|i| i.value == "tablet")
            .unwrap();
        assert_eq!(tablet.status, Status::Shared { customers: 2 });
    }

    #[test]
    fn the_default_rules_parse_and_block_junk() {
        let text = crate::workspace::DEFAULT_RULES
            .iter()
            .find(|(n, _)| *n == "identity.toml")
            .unwrap()
            .1;
        let r = IdentityRules::parse(text, "rules/identity.toml").unwrap();
        for junk in [
            "",
            " NULL ",
            "unknown",
            "N/A",
            "test@test.com",
            "000-000-0000",
            "0000",
        ] {
            assert!(r.is_blocked(junk), "{junk:?}");
        }
        for real in ["ann@x.com", "C1234567", "+14155550134", "dev-1"] {
            assert!(!r.is_blocked(real), "{real:?}");
        }
    }

    #[test]
    fn rule_file_errors_name_the_line() {
        let bad_field = RULES.replace("\"web.device_id\"", "\"web.devise_id\"");
        let e = IdentityRules::parse(&bad_field, "identity.toml")
            .err()
            .unwrap();
        let line = bad_field
            .lines()
            .position(|l| l.contains("devise"))
            .unwrap()
            + 1;
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains("web.devise_id"), "{e}");
        let bad_regex = RULES.replace("'^0+$'", "'^0+($'");
        let e = IdentityRules::parse(&bad_regex, "identity.toml")
            .err()
            .unwrap();
        assert!(e.message.contains("invalid regular expression"), "{e}");
        assert_eq!(e.line, 3);
    }
}
