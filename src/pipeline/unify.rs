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

use crate::pipeline::identity::fuzzy::fold;
use crate::pipeline::progress::Progress;
use crate::pipeline::schema::System;
use crate::pipeline::timeparse::{iso_ms, now_utc};
use crate::store::BulkInsert;
use crate::workspace::{ConfigError, Workspace, line_of};
use anyhow::{Context, Result, bail};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;
use toml::Spanned;

const DAY_MS: i64 = 86_400_000;

// ------------------------------------------------------------------ rules

/// How one golden value is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The first of these sources (source names or systems) with a value;
    /// ties inside it by the inner rule.
    SourcePriority(Vec<String>, Box<Rule>),
    MostRecent,
    MostFrequent,
    Longest,
    FirstNonEmpty,
}

impl Rule {
    fn name(&self) -> &'static str {
        match self {
            Rule::SourcePriority(..) => "source_priority",
            Rule::MostRecent => "most_recent",
            Rule::MostFrequent => "most_frequent",
            Rule::Longest => "longest",
            Rule::FirstNonEmpty => "first_non_empty",
        }
    }
}

/// The golden fields, in the order of [`UnifyRules::fields`].
pub const GOLDEN: [&str; 6] = [
    "name",
    "email",
    "phone",
    "country",
    "city",
    "lifecycle_status",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    DaysSinceLastActivity,
    DaysSinceLastOrder,
    ActivityDrop,
    RefundShare,
    Sessions30d,
    Orders,
    OrderGapRatio,
}

impl Metric {
    const ALL: [(&'static str, Metric); 7] = [
        ("days_since_last_activity", Metric::DaysSinceLastActivity),
        ("days_since_last_order", Metric::DaysSinceLastOrder),
        ("activity_drop", Metric::ActivityDrop),
        ("refund_share", Metric::RefundShare),
        ("sessions_30d", Metric::Sessions30d),
        ("orders", Metric::Orders),
        ("order_gap_ratio", Metric::OrderGapRatio),
    ];
}

/// One churn signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Above(Metric, f64),
    Below(Metric, f64),
    LifecycleIn(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub name: String,
    pub test: Test,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnifyRules {
    /// One rule per [`GOLDEN`] field.
    pub fields: Vec<Rule>,
    /// Fixed "now" (ms since the epoch and its text), or None for the latest
    /// event in the data.
    pub now: Option<(i64, String)>,
    pub page_views: Vec<String>,
    pub key_events: Vec<String>,
    pub churn: Vec<Signal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSurvivorship {
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    rule: Spanned<String>,
    #[serde(default)]
    sources: Vec<String>,
    then: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    now: Option<Spanned<String>>,
    #[serde(default)]
    page_views: Vec<String>,
    #[serde(default)]
    key_events: Vec<String>,
    #[serde(default)]
    churn: Vec<RawSignal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    name: Spanned<String>,
    metric: Option<Spanned<String>>,
    above: Option<f64>,
    below: Option<f64>,
    lifecycle_in: Option<Vec<String>>,
    weight: Spanned<f64>,
}

fn config_err(file: &str, text: &str, offset: usize, message: String) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line: line_of(text, offset),
        message,
    }
}

fn toml_err(file: &str, text: &str, e: toml::de::Error) -> ConfigError {
    config_err(
        file,
        text,
        e.span().map_or(0, |s| s.start),
        e.message().trim_end().to_string(),
    )
}

fn simple_rule(name: &str) -> Option<Rule> {
    Some(match name {
        "most_recent" => Rule::MostRecent,
        "most_frequent" => Rule::MostFrequent,
        "longest" => Rule::Longest,
        "first_non_empty" => Rule::FirstNonEmpty,
        _ => return None,
    })
}

impl UnifyRules {
    /// Parse `survivorship.toml` and `profiles.toml` (texts and file names
    /// for errors).
    pub fn parse(
        surv_text: &str,
        surv_file: &str,
        prof_text: &str,
        prof_file: &str,
    ) -> Result<UnifyRules, ConfigError> {
        let raw: RawSurvivorship =
            toml::from_str(surv_text).map_err(|e| toml_err(surv_file, surv_text, e))?;
        let serr = |offset: usize, m: String| config_err(surv_file, surv_text, offset, m);
        let mut fields = vec![Rule::MostRecent; GOLDEN.len()];
        for (name, f) in &raw.fields {
            let Some(fi) = GOLDEN.iter().position(|g| g == name.get_ref()) else {
                return Err(serr(
                    name.span().start,
                    format!(
                        "field `fields.{}`: not a golden field (one of {})",
                        name.get_ref(),
                        GOLDEN.join(", ")
                    ),
                ));
            };
            let rule_of = |s: &Spanned<String>| {
                simple_rule(s.get_ref()).ok_or_else(|| {
                    serr(
                        s.span().start,
                        format!(
                            "field `fields.{}.rule`: unknown rule {:?} (source_priority, most_recent, most_frequent, longest, first_non_empty)",
                            name.get_ref(),
                            s.get_ref()
                        ),
                    )
                })
            };
            fields[fi] = if f.rule.get_ref() == "source_priority" {
                if f.sources.is_empty() {
                    return Err(serr(
                        f.rule.span().start,
                        format!(
                            "field `fields.{}.sources`: source_priority needs a list of sources or systems, best first",
                            name.get_ref()
                        ),
                    ));
                }
                let then = match &f.then {
                    Some(t) => rule_of(t)?,
                    None => Rule::MostRecent,
                };
                Rule::SourcePriority(f.sources.clone(), Box::new(then))
            } else {
                rule_of(&f.rule)?
            };
        }

        let raw: RawProfiles =
            toml::from_str(prof_text).map_err(|e| toml_err(prof_file, prof_text, e))?;
        let perr = |offset: usize, m: String| config_err(prof_file, prof_text, offset, m);
        let now = match &raw.now {
            None => None,
            Some(s) if s.get_ref() == "latest_event" => None,
            Some(s) => {
                let ms = chrono::DateTime::parse_from_rfc3339(s.get_ref())
                    .map(|t| t.timestamp_millis())
                    .map_err(|_| {
                        perr(
                            s.span().start,
                            format!(
                                "field `now`: {:?} is neither \"latest_event\" nor a time like \"2025-07-01T00:00:00Z\"",
                                s.get_ref()
                            ),
                        )
                    })?;
                Some((ms, s.get_ref().clone()))
            }
        };
        let mut churn = Vec::new();
        for s in raw.churn {
            let at = s.name.span().start;
            let test = match (&s.metric, s.above, s.below, &s.lifecycle_in) {
                (Some(m), above, below, None) if above.is_some() != below.is_some() => {
                    let metric = Metric::ALL
                        .iter()
                        .find(|(n, _)| n == m.get_ref())
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| {
                            perr(
                                m.span().start,
                                format!(
                                    "field `churn.metric`: unknown metric {:?} ({})",
                                    m.get_ref(),
                                    Metric::ALL.map(|(n, _)| n).join(", ")
                                ),
                            )
                        })?;
                    match (above, below) {
                        (Some(a), _) => Test::Above(metric, a),
                        (_, Some(b)) => Test::Below(metric, b),
                        _ => unreachable!("one of above / below"),
                    }
                }
                (None, None, None, Some(list)) => {
                    Test::LifecycleIn(list.iter().map(|v| v.to_lowercase()).collect())
                }
                _ => {
                    return Err(perr(
                        at,
                        format!(
                            "churn signal {:?}: give `metric` with one of `above` / `below`, or `lifecycle_in`",
                            s.name.get_ref()
                        ),
                    ));
                }
            };
            if !(0.0..=1.0).contains(s.weight.get_ref()) {
                return Err(perr(
                    s.weight.span().start,
                    format!(
                        "field `churn.weight` of {:?}: must be between 0 and 1",
                        s.name.get_ref()
                    ),
                ));
            }
            churn.push(Signal {
                name: s.name.get_ref().clone(),
                test,
                weight: *s.weight.get_ref(),
            });
        }
        Ok(UnifyRules {
            fields,
            now,
            page_views: raw.page_views,
            key_events: raw.key_events,
            churn,
        })
    }
}

pub fn load_rules(ws: &Workspace) -> Result<UnifyRules> {
    let read = |name: &str| -> Result<(String, String)> {
        let path = ws.rules_dir().join(name);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (copy it from the repository's rules/)",
                path.display()
            )
        })?;
        Ok((text, path.display().to_string()))
    };
    let (st, sf) = read("survivorship.toml")?;
    let (pt, pf) = read("profiles.toml")?;
    let rules = UnifyRules::parse(&st, &sf, &pt, &pf)?;
    let known: Vec<&str> = ws
        .sources
        .iter()
        .map(|s| s.name.as_str())
        .chain(System::ALL.iter().map(|s| s.as_str()))
        .collect();
    rules.check_sources(&known, &st, &sf)?;
    Ok(rules)
}

impl UnifyRules {
    /// Every source a `source_priority` rule lists must be a source of the
    /// workspace or a system: a misspelt name would silently never win.
    pub fn check_sources(&self, known: &[&str], text: &str, file: &str) -> Result<(), ConfigError> {
        for (field, rule) in GOLDEN.iter().zip(&self.fields) {
            let Rule::SourcePriority(sources, _) = rule else {
                continue;
            };
            if let Some(bad) = sources.iter().find(|s| !known.contains(&s.as_str())) {
                let offset = text.find(&format!("\"{bad}\"")).unwrap_or(0);
                return Err(config_err(
                    file,
                    text,
                    offset,
                    format!(
                        "field `fields.{field}.sources`: unknown source {bad:?} (sources and systems: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------ survivorship

/// One candidate for a golden value.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub value: String,
    pub record: String,
    pub system: String,
    pub source: String,
    /// Record time (ms), for recency.
    pub time: Option<i64>,
}

fn norm(v: &str) -> String {
    v.trim().to_lowercase()
}

/// Among `idx` (indices into `cands`), the most recent (ties: the smallest
/// record key, so the choice never depends on read order).
fn most_recent(cands: &[Candidate], idx: &[usize]) -> Option<usize> {
    idx.iter().copied().max_by(|&a, &b| {
        cands[a]
            .time
            .cmp(&cands[b].time)
            .then_with(|| cands[b].record.cmp(&cands[a].record))
    })
}

/// Pick the golden value: (index of the winning candidate, rule text).
pub fn choose(rule: &Rule, cands: &[Candidate]) -> Option<(usize, String)> {
    let all: Vec<usize> = (0..cands.len())
        .filter(|&i| !cands[i].value.trim().is_empty())
        .collect();
    choose_among(rule, cands, &all)
}

fn choose_among(rule: &Rule, cands: &[Candidate], idx: &[usize]) -> Option<(usize, String)> {
    if idx.is_empty() {
        return None;
    }
    match rule {
        Rule::MostRecent => most_recent(cands, idx).map(|i| (i, "most_recent".into())),
        Rule::FirstNonEmpty => idx
            .iter()
            .copied()
            .min_by(|&a, &b| {
                // Records without a time count as oldest.
                cands[a]
                    .time
                    .unwrap_or(i64::MIN)
                    .cmp(&cands[b].time.unwrap_or(i64::MIN))
                    .then_with(|| cands[a].record.cmp(&cands[b].record))
            })
            .map(|i| (i, "first_non_empty".into())),
        Rule::Longest => {
            let best = idx
                .iter()
                .map(|&i| cands[i].value.trim().chars().count())
                .max()?;
            let longest: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| cands[i].value.trim().chars().count() == best)
                .collect();
            most_recent(cands, &longest).map(|i| (i, "longest".into()))
        }
        Rule::MostFrequent => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for &i in idx {
                *counts.entry(norm(&cands[i].value)).or_default() += 1;
            }
            let top = *counts.values().max()?;
            let winners: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| counts[&norm(&cands[i].value)] == top)
                .collect();
            most_recent(cands, &winners)
                .map(|i| (i, format!("most_frequent ({top} of {} records)", idx.len())))
        }
        Rule::SourcePriority(order, then) => {
            for s in order {
                let here: Vec<usize> = idx
                    .iter()
                    .copied()
                    .filter(|&i| &cands[i].source == s || &cands[i].system == s)
                    .collect();
                if let Some((i, _)) = choose_among(then, cands, &here) {
                    return Some((i, format!("source_priority ({s}, then {})", then.name())));
                }
            }
            // No listed source has a value: fall back to the inner rule.
            choose_among(then, cands, idx).map(|(i, _)| {
                (
                    i,
                    format!("source_priority (none listed, then {})", then.name()),
                )
            })
        }
    }
}

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
}

impl UnifyReport {
    pub fn summary(&self) -> String {
        format!(
            "{} profiles ({} anonymous): {} new, {} updated, {} unchanged, {} removed; {} events ({} web, {} orders and refunds, {} lifecycle changes); as of {}",
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

/// Identifier kinds counted on a profile.
const KINDS: [&str; 6] = [
    "customer_id",
    "email",
    "phone",
    "device_id",
    "cookie_id",
    "order_id",
];

/// What one pass over the events gathers for one customer.
#[derive(Default)]
struct Activity {
    first: Option<i64>,
    last: Option<i64>,
    last_activity: Option<i64>,
    first_order: Option<i64>,
    last_order: Option<i64>,
    web: u32,
    transactions: u32,
    /// Session hashes seen in the last 90 days, and whether within 30.
    sessions: Vec<(u64, bool)>,
    page_views_30: u32,
    page_views_90: u32,
    key_30: u32,
    key_90: u32,
    events_30: u32,
    events_31_90: u32,
    orders: u32,
    refunds: u32,
    revenue: f64,
    gross: f64,
    /// (category, revenue); categories interned.
    categories: Vec<(u32, f64)>,
    /// (kind index, value hash), distinct.
    ids: Vec<(u8, u64)>,
    known: bool,
}

fn hash_str(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn earlier(slot: &mut Option<i64>, ms: i64) {
    if slot.is_none_or(|t| ms < t) {
        *slot = Some(ms);
    }
}

fn later(slot: &mut Option<i64>, ms: i64) {
    if slot.is_none_or(|t| ms > t) {
        *slot = Some(ms);
    }
}

/// UTC ISO 8601 with milliseconds, the form every time of a profile takes.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

impl Activity {
    fn add_id(&mut self, kind: usize, value: &str) {
        let e = (kind as u8, hash_str(value));
        if !self.ids.contains(&e) {
            self.ids.push(e);
        }
    }
}

/// An e-mail on an order: (e-mail, order time, event_seq).
type OrderEmail = (Box<str>, Option<i64>, i64);

/// One CRM record of a customer (the candidates of its golden values): its
/// texts back to back in one buffer, so a million records stay small.
struct CrmRow {
    text: Box<str>,
    ends: [u32; CrmRow::FIELDS],
    created: Option<i64>,
    /// updated_at, else created_at.
    time: Option<i64>,
}

impl CrmRow {
    const FIELDS: usize = 11;
    const KEY: usize = 0;
    const SOURCE: usize = 1;
    const CUSTOMER_ID: usize = 2;
    const FIRST: usize = 3;
    const LAST: usize = 4;
    const FULL: usize = 5;
    const EMAIL: usize = 6;
    const PHONE: usize = 7;
    const COUNTRY: usize = 8;
    const CITY: usize = 9;
    const LIFECYCLE: usize = 10;

    fn new(
        values: [Option<&str>; CrmRow::FIELDS],
        created: Option<i64>,
        time: Option<i64>,
    ) -> Self {
        let mut text = String::new();
        let mut ends = [0u32; CrmRow::FIELDS];
        for (i, v) in values.iter().enumerate() {
            text.push_str(v.unwrap_or(""));
            ends[i] = text.len() as u32;
        }
        CrmRow {
            text: text.into_boxed_str(),
            ends,
            created,
            time,
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let v = &self.text[start..self.ends[i] as usize];
        (!v.is_empty()).then_some(v)
    }

    fn key(&self) -> &str {
        self.get(CrmRow::KEY).unwrap_or("")
    }
}

fn profile_columns() -> Vec<String> {
    let mut cols = vec!["customer360_id".to_string(), "anonymous".to_string()];
    for g in GOLDEN {
        let base = if g == "lifecycle_status" {
            "lifecycle"
        } else {
            g
        };
        cols.push(g.to_string());
        cols.push(format!("{base}_from"));
        cols.push(format!("{base}_rule"));
    }
    for c in [
        "lifecycle_history",
        "first_seen",
        "last_seen",
        "crm_ids",
        "crm_records",
        "web_events",
        "transactions",
        "identifiers",
        "orders",
        "refunds",
        "revenue",
        "aov",
        "first_order_at",
        "last_order_at",
        "favourite_category",
        "sessions_30d",
        "sessions_90d",
        "page_views_30d",
        "page_views_90d",
        "key_events_30d",
        "key_events_90d",
        "last_activity_at",
        "days_since_last_activity",
        "rfm_recency",
        "rfm_frequency",
        "rfm_monetary",
        "rfm_segment",
        "churn_risk",
        "churn_signals",
        "as_of",
        "name_key",
        "name_key_rev",
        "row_hash",
        "updated_at",
    ] {
        cols.push(c.to_string());
    }
    cols
}

fn text(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::Text(s.to_string()))
}

fn time_value(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |t| Value::Text(iso(t)))
}

fn int(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Integer)
}

fn hash_values(values: &[Value]) -> i64 {
    let mut h = DefaultHasher::new();
    for v in values {
        match v {
            Value::Null => 0u8.hash(&mut h),
            Value::Integer(i) => (1u8, i).hash(&mut h),
            Value::Real(r) => (2u8, r.to_bits()).hash(&mut h),
            Value::Text(t) => (3u8, t).hash(&mut h),
            Value::Blob(b) => (4u8, b).hash(&mut h),
        }
    }
    h.finish() as i64
}

/// Quintile scores 1..=5 of `values` (higher value, higher score; equal
/// values, equal score).
fn quintiles(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut scores = vec![0u8; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let score = (1 + (5 * i) / n.max(1)).min(5) as u8;
        for &k in &order[i..=j] {
            scores[k] = score;
        }
        i = j + 1;
    }
    scores
}

fn metric_value(m: &Metric, a: &Activity, days_active: Option<i64>, now: i64) -> Option<f64> {
    match m {
        Metric::DaysSinceLastActivity => days_active.map(|d| d as f64),
        Metric::DaysSinceLastOrder => a.last_order.as_ref().map(|t| ((now - t) / DAY_MS) as f64),
        Metric::ActivityDrop => (a.events_31_90 > 0).then(|| {
            let before = a.events_31_90 as f64 / 2.0;
            (1.0 - a.events_30 as f64 / before).clamp(0.0, 1.0)
        }),
        Metric::RefundShare => (a.orders > 0).then(|| a.refunds as f64 / a.orders as f64),
        Metric::Sessions30d => Some(a.sessions.iter().filter(|s| s.1).count() as f64),
        Metric::Orders => Some(a.orders as f64),
        // Days since the last order over the customer's own average gap
        // between orders: 2 = twice as long as they usually wait.
        Metric::OrderGapRatio => match (a.first_order, a.last_order) {
            (Some(first), Some(last)) if a.orders >= 2 && last > first => {
                let gap = (last - first) as f64 / (a.orders - 1) as f64;
                Some((now - last) as f64 / gap)
            }
            _ => None,
        },
    }
}

fn clean_count(conn: &Connection, table: &str) -> Result<u64> {
    Ok(
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

pub fn run(conn: &mut Connection, ws: &Workspace, progress: &dyn Progress) -> Result<UnifyReport> {
    let rules = load_rules(ws)?;
    let mapped: i64 =
        conn.query_row("SELECT count(*) FROM customer360_id_map", [], |r| r.get(0))?;
    if mapped == 0 {
        bail!("no customer360_id yet: run the resolve step first (`c360 run --step resolve`)");
    }
    // The events join every clean record with its id: a bigger page cache
    // for this step keeps the id map's pages in memory (restored after).
    let cache: i64 = conn.pragma_query_value(None, "cache_size", |r| r.get(0))?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let result = build(conn, &rules, progress);
    conn.pragma_update(None, "cache_size", cache)?;
    result
}

fn build(
    conn: &mut Connection,
    rules: &UnifyRules,
    progress: &dyn Progress,
) -> Result<UnifyReport> {
    let mut report = UnifyReport::default();
    let mut clock = Instant::now();
    let mut lap = |name: &str, report: &mut UnifyReport| {
        report
            .phases
            .push((name.to_string(), clock.elapsed().as_secs_f64()));
        if std::env::var_os("C360_TRACE").is_some() {
            let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let f = |k: &str| {
                st.lines()
                    .find(|l| l.starts_with(k))
                    .unwrap_or("")
                    .to_string()
            };
            eprintln!(
                "TRACE {name} {:.2}s {} {}",
                clock.elapsed().as_secs_f64(),
                f("VmRSS"),
                f("VmHWM")
            );
        }
        clock = Instant::now();
    };
    let tx = conn.transaction()?;

    // ---- events
    progress.start("unify: events", 0);
    tx.execute_batch("DROP INDEX IF EXISTS events_by_customer; DELETE FROM customer360_events;")?;
    lap("events: clear", &mut report);
    let web = tx.execute(
        "INSERT INTO customer360_events (customer360_id, event_time, event_name, system, source,
             record_id, record_key, session_id, device_id, cookie_id, user_id, order_id,
             product_id, category, revenue, currency, anonymous, properties)
         SELECT m.customer360_id, w.event_time, w.event_name, 'web', w.source, w.event_id,
             m.record_key, w.session_id, w.device_id, w.cookie_id, w.user_id, w.order_id,
             json_extract(w.properties, '$.product_id'), NULL,
             json_extract(w.properties, '$.revenue'), json_extract(w.properties, '$.currency'),
             w.user_id IS NULL, w.properties
         FROM clean_web_events w
         JOIN customer360_id_map m ON m.record_key = 'web:' || w.source || ':' || w.event_id",
        [],
    )? as u64;
    lap("events: web", &mut report);
    let orders = tx.execute(
        "INSERT INTO customer360_events (customer360_id, event_time, event_name, system, source,
             record_id, record_key, user_id, order_id, product_id, category, revenue, currency,
             anonymous, properties)
         SELECT m.customer360_id, t.order_time, t.transaction_type, 'transactions', t.source,
             t.order_id, m.record_key, t.customer_id, t.order_id, t.product_id, t.category,
             t.revenue, t.currency, 0,
             json_object('product_name', t.product_name, 'quantity', t.quantity,
                         'unit_price', t.unit_price, 'email', t.email)
         FROM clean_transactions t
         JOIN customer360_id_map m
           ON m.record_key = 'transactions:' || t.source || ':' || t.order_id || ':' || t.transaction_type",
        [],
    )? as u64;
    lap("events: orders", &mut report);
    let lifecycle = tx.execute(
        "INSERT INTO customer360_events (customer360_id, event_time, event_name, system, source,
             record_id, record_key, user_id, anonymous, properties)
         SELECT m.customer360_id, coalesce(c.updated_at, c.created_at),
             'lifecycle:' || c.lifecycle_status, 'crm', c.source, c.customer_id, m.record_key,
             c.customer_id, 0, json_object('lifecycle_status', c.lifecycle_status)
         FROM clean_crm_customers c
         JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id
         WHERE c.lifecycle_status IS NOT NULL AND coalesce(c.updated_at, c.created_at) IS NOT NULL",
        [],
    )? as u64;
    // Reconcile: every clean event has its row.
    let clean_web = clean_count(&tx, "clean_web_events")?;
    let clean_tx = clean_count(&tx, "clean_transactions")?;
    let lifecycle_all: i64 = tx.query_row(
        "SELECT count(*) FROM clean_crm_customers WHERE lifecycle_status IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    let crm_mapped: i64 = tx.query_row(
        "SELECT (SELECT count(*) FROM clean_crm_customers) -
                (SELECT count(*) FROM customer360_id_map WHERE system = 'crm')",
        [],
        |r| r.get(0),
    )?;
    if web != clean_web || orders != clean_tx || crm_mapped > 0 {
        bail!(
            "the clean tables changed since the last resolve run: {} web events, {} orders and {} CRM records have no customer360_id; run `c360 run --step resolve` first",
            clean_web.saturating_sub(web),
            clean_tx.saturating_sub(orders),
            crm_mapped.max(0)
        );
    }
    lap("events: lifecycle, reconcile", &mut report);
    tx.execute_batch(
        "CREATE INDEX events_by_customer ON customer360_events(customer360_id, event_time)",
    )?;
    report.web_events = web;
    report.transactions = orders;
    report.lifecycle_events = lifecycle;
    report.lifecycle_untimed = lifecycle_all as u64 - lifecycle;
    report.events = web + orders + lifecycle;
    progress.finish();
    lap("events: index", &mut report);

    // ---- customers and "now"
    progress.start("unify: profiles", 0);
    let customers: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT DISTINCT customer360_id FROM customer360_id_map ORDER BY customer360_id",
        )?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let index: FxHashMap<&str, u32> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let (now, as_of) = match &rules.now {
        Some((ms, text)) => (*ms, text.clone()),
        None => {
            let latest: Option<String> = tx.query_row(
                "SELECT max(t) FROM (SELECT max(event_time) AS t FROM clean_web_events
                                     UNION ALL SELECT max(order_time) FROM clean_transactions)",
                [],
                |r| r.get(0),
            )?;
            match latest
                .as_deref()
                .and_then(|t| iso_ms(t).map(|ms| (ms, t.to_string())))
            {
                Some(x) => x,
                None => (iso_ms(&now_utc()).unwrap_or(0), now_utc()),
            }
        }
    };
    report.as_of = as_of.clone();

    // ---- activity: one pass over the events
    let mut acts: Vec<Activity> = (0..customers.len()).map(|_| Activity::default()).collect();
    let mut category_names: Vec<String> = Vec::new();
    let mut category_ids: FxHashMap<String, u32> = FxHashMap::default();
    {
        let kind_of = |k: &str| KINDS.iter().position(|x| *x == k).unwrap_or(0);
        let (k_customer, k_device, k_cookie, k_order) = (
            kind_of("customer_id"),
            kind_of("device_id"),
            kind_of("cookie_id"),
            kind_of("order_id"),
        );
        let mut stmt = tx.prepare(
            "SELECT customer360_id, event_time, event_name, system, session_id, device_id,
                    cookie_id, user_id, order_id, category, revenue
             FROM customer360_events",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let Some(&ci) = index.get(r.get_ref(0)?.as_str()?) else {
                continue;
            };
            let a = &mut acts[ci as usize];
            let time = r.get_ref(1)?.as_str()?;
            let Some(ms) = iso_ms(time) else { continue };
            let name = r.get_ref(2)?.as_str()?;
            let system = r.get_ref(3)?.as_str()?;
            earlier(&mut a.first, ms);
            later(&mut a.last, ms);
            if let Some(u) = r.get_ref(7)?.as_str_or_null()? {
                a.known = true;
                a.add_id(k_customer, u);
            }
            if system == "crm" {
                continue;
            }
            later(&mut a.last_activity, ms);
            let age = now - ms;
            let in30 = (0..=30 * DAY_MS).contains(&age);
            let in90 = (0..=90 * DAY_MS).contains(&age);
            if in30 {
                a.events_30 += 1;
            } else if in90 {
                a.events_31_90 += 1;
            }
            if system == "web" {
                a.web += 1;
                if let Some(d) = r.get_ref(5)?.as_str_or_null()? {
                    a.add_id(k_device, d);
                }
                if let Some(c) = r.get_ref(6)?.as_str_or_null()? {
                    a.add_id(k_cookie, c);
                }
                if in90 {
                    if let Some(s) = r.get_ref(4)?.as_str_or_null()? {
                        let h = hash_str(s);
                        match a.sessions.iter_mut().find(|x| x.0 == h) {
                            Some(x) => x.1 |= in30,
                            None => a.sessions.push((h, in30)),
                        }
                    }
                    if rules.page_views.iter().any(|p| p == name) {
                        a.page_views_90 += 1;
                        a.page_views_30 += u32::from(in30);
                    }
                    if rules.key_events.iter().any(|p| p == name) {
                        a.key_90 += 1;
                        a.key_30 += u32::from(in30);
                    }
                }
            } else {
                a.transactions += 1;
                if let Some(o) = r.get_ref(8)?.as_str_or_null()? {
                    a.add_id(k_order, o);
                }
                let revenue = match r.get_ref(10)? {
                    rusqlite::types::ValueRef::Real(x) => x,
                    rusqlite::types::ValueRef::Integer(i) => i as f64,
                    _ => 0.0,
                };
                a.revenue += revenue;
                if name == "refund" {
                    a.refunds += 1;
                } else {
                    a.orders += 1;
                    a.gross += revenue;
                    earlier(&mut a.first_order, ms);
                    later(&mut a.last_order, ms);
                    if in90 {
                        a.key_90 += 1;
                        a.key_30 += u32::from(in30);
                    }
                    if let Some(c) = r.get_ref(9)?.as_str_or_null()? {
                        let c = match category_ids.get(c) {
                            Some(&id) => id,
                            None => {
                                let id = category_names.len() as u32;
                                category_names.push(c.to_string());
                                category_ids.insert(c.to_string(), id);
                                id
                            }
                        };
                        match a.categories.iter_mut().find(|x| x.0 == c) {
                            Some(x) => x.1 += revenue,
                            None => a.categories.push((c, revenue)),
                        }
                    }
                }
            }
        }
    }
    lap("activity", &mut report);

    // ---- CRM records and order e-mails: the golden values' candidates
    let mut crm: Vec<Vec<CrmRow>> = (0..customers.len()).map(|_| Vec::new()).collect();
    {
        let mut stmt = tx.prepare(
            "SELECT m.customer360_id, m.record_key, c.source, c.customer_id, c.first_name,
                    c.last_name, c.full_name, c.email, c.phone, c.country, c.city,
                    c.lifecycle_status, c.created_at, c.updated_at
             FROM clean_crm_customers c
             JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let Some(&ci) = index.get(r.get_ref(0)?.as_str()?) else {
                continue;
            };
            let created = r.get_ref(12)?.as_str_or_null()?.and_then(iso_ms);
            let updated = r.get_ref(13)?.as_str_or_null()?.and_then(iso_ms);
            let mut f = [None; CrmRow::FIELDS];
            for (k, slot) in f.iter_mut().enumerate() {
                *slot = r.get_ref(1 + k)?.as_str_or_null()?;
            }
            crm[ci as usize].push(CrmRow::new(f, created, updated.or(created)));
        }
    }
    // Order e-mails: (e-mail, order time, event_seq); the record key of a
    // winning one is looked up by its event_seq.
    let mut order_emails: Vec<Vec<OrderEmail>> = (0..customers.len()).map(|_| Vec::new()).collect();
    {
        let mut stmt = tx.prepare(
            "SELECT customer360_id, json_extract(properties, '$.email'), event_time, event_seq
             FROM customer360_events
             WHERE system = 'transactions' AND json_extract(properties, '$.email') IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let Some(&ci) = index.get(r.get_ref(0)?.as_str()?) else {
                continue;
            };
            let value: String = r.get(1)?;
            let time = r.get_ref(2)?.as_str()?;
            order_emails[ci as usize].push((value.into_boxed_str(), iso_ms(time), r.get(3)?));
        }
    }
    lap("golden candidates", &mut report);

    // ---- RFM among customers with orders
    let buyers: Vec<usize> = (0..customers.len())
        .filter(|&i| acts[i].orders > 0)
        .collect();
    let mut rfm: Vec<Option<(u8, u8, u8)>> = vec![None; customers.len()];
    if !buyers.is_empty() {
        // Recency: fewer days since the last order scores higher.
        let rec: Vec<f64> = buyers
            .iter()
            .map(|&i| {
                -(acts[i]
                    .last_order
                    .as_ref()
                    .map_or(i64::MAX / 2, |t| now - t) as f64)
            })
            .collect();
        let freq: Vec<f64> = buyers.iter().map(|&i| acts[i].orders as f64).collect();
        let mon: Vec<f64> = buyers.iter().map(|&i| acts[i].revenue).collect();
        let (r, f, m) = (quintiles(&rec), quintiles(&freq), quintiles(&mon));
        for (k, &i) in buyers.iter().enumerate() {
            rfm[i] = Some((r[k], f[k], m[k]));
        }
    }

    // ---- profiles
    let updated_at = now_utc();
    let columns = profile_columns();
    let existing: FxHashMap<String, i64> = {
        let mut stmt = tx.prepare("SELECT customer360_id, row_hash FROM customer360_profiles")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let first_run = existing.is_empty();
    const INDEXES: &str = "
        CREATE INDEX profiles_by_name ON customer360_profiles(name_key);
        CREATE INDEX profiles_by_name_rev ON customer360_profiles(name_key_rev);
        CREATE INDEX profiles_by_email ON customer360_profiles(email);
        CREATE INDEX profiles_by_phone ON customer360_profiles(phone);
        CREATE INDEX profiles_by_revenue ON customer360_profiles(revenue);
        CREATE INDEX profiles_by_last_activity ON customer360_profiles(last_activity_at);
        CREATE INDEX profiles_by_churn ON customer360_profiles(churn_risk);
        CREATE INDEX profiles_by_lifecycle ON customer360_profiles(lifecycle_status);";
    if first_run {
        tx.execute_batch(
            "DROP INDEX IF EXISTS profiles_by_name; DROP INDEX IF EXISTS profiles_by_name_rev;
             DROP INDEX IF EXISTS profiles_by_email; DROP INDEX IF EXISTS profiles_by_phone;
             DROP INDEX IF EXISTS profiles_by_revenue; DROP INDEX IF EXISTS profiles_by_last_activity;
             DROP INDEX IF EXISTS profiles_by_churn; DROP INDEX IF EXISTS profiles_by_lifecycle;",
        )?;
    }
    {
        let mut bulk = BulkInsert::new(&tx, "customer360_profiles", &columns);
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let mut record_of_event =
            tx.prepare("SELECT record_key FROM customer360_events WHERE event_seq = ?1")?;
        let mut upsert = tx.prepare(&format!(
            "INSERT OR REPLACE INTO customer360_profiles ({}) VALUES ({})",
            columns.join(", "),
            placeholders.join(", ")
        ))?;
        for (ci, id) in customers.iter().enumerate() {
            let a = &acts[ci];
            let rows = &crm[ci];
            // Candidates per golden field.
            let cand = |get: &dyn Fn(&CrmRow) -> Option<String>| -> Vec<Candidate> {
                rows.iter()
                    .filter_map(|r| {
                        get(r).map(|value| Candidate {
                            value,
                            record: r.key().to_string(),
                            system: "crm".into(),
                            source: r.get(CrmRow::SOURCE).unwrap_or("").to_string(),
                            time: r.time,
                        })
                    })
                    .collect()
            };
            let name_of = |r: &CrmRow| -> Option<String> {
                match (
                    r.get(CrmRow::FIRST),
                    r.get(CrmRow::LAST),
                    r.get(CrmRow::FULL),
                ) {
                    (Some(f), Some(l), _) => Some(format!("{f} {l}")),
                    (_, _, Some(full)) => Some(full.to_string()),
                    (Some(f), None, None) => Some(f.to_string()),
                    (None, Some(l), None) => Some(l.to_string()),
                    _ => None,
                }
            };
            let field = |i: usize| move |r: &CrmRow| r.get(i).map(str::to_string);
            let mut email_c = cand(&field(CrmRow::EMAIL));
            email_c.extend(order_emails[ci].iter().map(|(value, time, seq)| Candidate {
                value: value.to_string(),
                // Placeholder until it wins: ordered after record keys.
                record: format!("~event {seq:020}"),
                system: "transactions".into(),
                source: "transactions".into(),
                time: *time,
            }));
            let field_cands: [Vec<Candidate>; 6] = [
                cand(&name_of),
                email_c,
                cand(&field(CrmRow::PHONE)),
                cand(&field(CrmRow::COUNTRY)),
                cand(&field(CrmRow::CITY)),
                cand(&|r| r.get(CrmRow::LIFECYCLE).map(str::to_lowercase)),
            ];
            let mut values: Vec<Value> = Vec::with_capacity(columns.len());
            values.push(Value::Text(id.clone()));
            let has_email = !field_cands[1].is_empty();
            let anonymous = rows.is_empty() && !a.known && !has_email;
            values.push(Value::Integer(i64::from(anonymous)));
            let mut golden: [Option<String>; 6] = Default::default();
            let mut name_record: Option<&CrmRow> = None;
            for (fi, cands) in field_cands.iter().enumerate() {
                match choose(&rules.fields[fi], cands) {
                    Some((w, rule)) => {
                        let record: String = match cands[w].record.strip_prefix("~event ") {
                            Some(seq) => record_of_event
                                .query_row([seq.parse::<i64>().unwrap_or(0)], |r| r.get(0))?,
                            None => cands[w].record.clone(),
                        };
                        golden[fi] = Some(cands[w].value.clone());
                        if fi == 0 {
                            name_record = rows.iter().find(|r| r.key() == record);
                        }
                        values.push(Value::Text(cands[w].value.clone()));
                        values.push(Value::Text(record));
                        values.push(Value::Text(rule));
                    }
                    None => values.extend([Value::Null, Value::Null, Value::Null]),
                }
            }
            // Lifecycle history: each record's status at its time, oldest
            // first, repeats folded.
            let mut hist: Vec<(i64, &str, &str)> = rows
                .iter()
                .filter_map(|r| Some((r.time?, r.get(CrmRow::LIFECYCLE)?, r.key())))
                .collect();
            hist.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.2.cmp(y.2)));
            let mut history: Vec<serde_json::Value> = Vec::new();
            let mut prev: Option<String> = None;
            for (t, status, key) in hist {
                let s = status.to_lowercase();
                if prev.as_deref() != Some(s.as_str()) {
                    history.push(serde_json::json!({"status": s, "at": iso(t), "record": key}));
                    prev = Some(s);
                }
            }
            values.push(Value::Text(serde_json::Value::Array(history).to_string()));
            // First seen: the earliest event or CRM creation.
            let mut first = a.first;
            for r in rows {
                if let Some(c) = r.created {
                    earlier(&mut first, c);
                }
            }
            values.push(time_value(first));
            values.push(time_value(a.last));
            let mut crm_ids: Vec<&str> = rows
                .iter()
                .filter_map(|r| r.get(CrmRow::CUSTOMER_ID))
                .collect();
            crm_ids.sort_unstable();
            crm_ids.dedup();
            values.push(Value::Text(crm_ids.join(",")));
            values.push(Value::Integer(rows.len() as i64));
            values.push(Value::Integer(a.web as i64));
            values.push(Value::Integer(a.transactions as i64));
            // Identifiers: distinct values per kind.
            let mut ids = a.ids.clone();
            for r in rows {
                let e = (0u8, hash_str(r.get(CrmRow::CUSTOMER_ID).unwrap_or("")));
                if !ids.contains(&e) {
                    ids.push(e);
                }
                if let Some(p) = r.get(CrmRow::PHONE) {
                    let e = (2u8, hash_str(p));
                    if !ids.contains(&e) {
                        ids.push(e);
                    }
                }
            }
            for c in &field_cands[1] {
                let e = (1u8, hash_str(&norm(&c.value)));
                if !ids.contains(&e) {
                    ids.push(e);
                }
            }
            let mut id_counts = serde_json::Map::new();
            for (k, kind) in KINDS.iter().enumerate() {
                let n = ids.iter().filter(|x| x.0 as usize == k).count();
                if n > 0 {
                    id_counts.insert(kind.to_string(), n.into());
                }
            }
            values.push(Value::Text(
                serde_json::Value::Object(id_counts).to_string(),
            ));
            values.push(Value::Integer(a.orders as i64));
            values.push(Value::Integer(a.refunds as i64));
            values.push(Value::Real((a.revenue * 100.0).round() / 100.0));
            values.push(if a.orders > 0 {
                Value::Real((a.gross / a.orders as f64 * 100.0).round() / 100.0)
            } else {
                Value::Null
            });
            values.push(time_value(a.first_order));
            values.push(time_value(a.last_order));
            let favourite = a
                .categories
                .iter()
                .max_by(|x, y| x.1.total_cmp(&y.1).then_with(|| y.0.cmp(&x.0)))
                .map(|x| category_names[x.0 as usize].as_str());
            values.push(text(favourite));
            let s30 = a.sessions.iter().filter(|s| s.1).count() as i64;
            values.push(Value::Integer(s30));
            values.push(Value::Integer(a.sessions.len() as i64));
            values.push(Value::Integer(a.page_views_30 as i64));
            values.push(Value::Integer(a.page_views_90 as i64));
            values.push(Value::Integer(a.key_30 as i64));
            values.push(Value::Integer(a.key_90 as i64));
            values.push(time_value(a.last_activity));
            let days = a.last_activity.map(|t| (now - t).max(0) / DAY_MS);
            values.push(int(days));
            match rfm[ci] {
                Some((r, f, m)) => values.extend([
                    Value::Integer(r as i64),
                    Value::Integer(f as i64),
                    Value::Integer(m as i64),
                    Value::Text(format!("{r}{f}{m}")),
                ]),
                None => values.extend([Value::Null, Value::Null, Value::Null, Value::Null]),
            }
            // Churn risk.
            let mut risk = 0.0;
            let mut fired: Vec<String> = Vec::new();
            for s in &rules.churn {
                let why = match &s.test {
                    Test::Above(m, x) => metric_value(m, a, days, now)
                        .filter(|v| v > x)
                        .map(|v| format!("{} ({v:.2} > {x})", s.name)),
                    Test::Below(m, x) => metric_value(m, a, days, now)
                        .filter(|v| v < x)
                        .map(|v| format!("{} ({v:.2} < {x})", s.name)),
                    Test::LifecycleIn(list) => golden[5]
                        .as_ref()
                        .filter(|l| list.contains(l))
                        .map(|l| format!("{} ({l})", s.name)),
                };
                if let Some(w) = why {
                    risk += s.weight;
                    fired.push(w.replace(".00 ", " ").replace(".00)", ")"));
                }
            }
            values.push(Value::Real((risk.min(1.0_f64) * 100.0).round() / 100.0));
            values.push(Value::Text(fired.join("; ")));
            values.push(Value::Text(as_of.clone()));
            // Search keys from the record the name came from.
            let (key, rev) = match name_record {
                Some(r) => {
                    let f = r.get(CrmRow::FIRST).map(fold).unwrap_or_default();
                    let l = r.get(CrmRow::LAST).map(fold).unwrap_or_default();
                    if f.is_empty() && l.is_empty() {
                        let full = golden[0].as_deref().map(fold).unwrap_or_default();
                        (Some(full.clone()), Some(full))
                    } else {
                        (
                            Some(format!("{f} {l}").trim().to_string()),
                            Some(format!("{l} {f}").trim().to_string()),
                        )
                    }
                }
                None => (None, None),
            };
            values.push(text(key.as_deref()));
            values.push(text(rev.as_deref()));
            let h = hash_values(&values);
            values.push(Value::Integer(h));
            values.push(Value::Text(updated_at.clone()));
            if anonymous {
                report.anonymous += 1;
            }
            match existing.get(id) {
                Some(&old) if old == h => report.unchanged += 1,
                Some(_) => {
                    report.updated += 1;
                    upsert.execute(rusqlite::params_from_iter(values.iter()))?;
                }
                None if first_run => {
                    report.new += 1;
                    bulk.push(values)?;
                }
                None => {
                    report.new += 1;
                    upsert.execute(rusqlite::params_from_iter(values.iter()))?;
                }
            }
        }
        bulk.finish()?;
    }
    // Customers whose id is gone (merged into another, or their records
    // left the data) lose their profile.
    if !first_run {
        let current: rustc_hash::FxHashSet<&str> = customers.iter().map(String::as_str).collect();
        let mut del = tx.prepare("DELETE FROM customer360_profiles WHERE customer360_id = ?1")?;
        for id in existing.keys() {
            if !current.contains(id.as_str()) {
                del.execute([id])?;
                report.removed += 1;
            }
        }
    } else {
        tx.execute_batch(INDEXES)?;
    }
    report.profiles = customers.len() as u64;
    lap("profiles", &mut report);
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
    tx.commit()?;
    progress.finish();
    Ok(report)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn c(value: &str, record: &str, source: &str, time: Option<i64>) -> Candidate {
        Candidate {
            value: value.into(),
            record: record.into(),
            system: if source.starts_with("shop") {
                "transactions".into()
            } else {
                "crm".into()
            },
            source: source.into(),
            time,
        }
    }

    #[test]
    fn survivorship_rules_choose_as_documented() {
        let cands = vec![
            c("ann@old.com", "crm:crm:1", "crm", Some(10)),
            c("ann@new.com", "crm:crm:2", "crm", Some(30)),
            c("ANN@old.com ", "crm:legacy:3", "legacy", Some(20)),
            c(
                "a.lee@shop.com",
                "transactions:shop:9:purchase",
                "shop",
                Some(40),
            ),
            c("", "crm:crm:4", "crm", Some(50)),
        ];
        let pick = |rule: Rule| {
            let (i, why) = choose(&rule, &cands).unwrap();
            (cands[i].record.clone(), why)
        };
        assert_eq!(pick(Rule::MostRecent).0, "transactions:shop:9:purchase");
        assert_eq!(pick(Rule::FirstNonEmpty).0, "crm:crm:1");
        // ann@old.com twice (case and spaces ignored): the more recent of them.
        let (rec, why) = pick(Rule::MostFrequent);
        assert_eq!(rec, "crm:legacy:3");
        assert_eq!(why, "most_frequent (2 of 4 records)");
        assert_eq!(pick(Rule::Longest).0, "transactions:shop:9:purchase");
        // Equal lengths: the more recent.
        let tie = [c("abc", "a", "crm", Some(1)), c("xyz", "b", "crm", Some(2))];
        assert_eq!(choose(&Rule::Longest, &tie).unwrap().0, 1);
        let (rec, why) = pick(Rule::SourcePriority(
            vec!["legacy".into(), "crm".into()],
            Box::new(Rule::MostRecent),
        ));
        assert_eq!(rec, "crm:legacy:3");
        assert_eq!(why, "source_priority (legacy, then most_recent)");
        // A system name works as a source; within it, the inner rule.
        let (rec, _) = pick(Rule::SourcePriority(
            vec!["crm".into()],
            Box::new(Rule::FirstNonEmpty),
        ));
        assert_eq!(rec, "crm:crm:1");
        // Nothing listed has a value: the inner rule over all.
        let (rec, why) = pick(Rule::SourcePriority(
            vec!["erp".into()],
            Box::new(Rule::MostRecent),
        ));
        assert_eq!(rec, "transactions:shop:9:purchase");
        assert!(why.contains("none listed"), "{why}");
        assert!(choose(&Rule::MostRecent, &[c("  ", "k", "crm", None)]).is_none());
    }

    #[test]
    fn order_gap_ratio_compares_with_the_customers_own_rhythm() {
        let a = Activity {
            orders: 3,
            first_order: Some(0),
            last_order: Some(20 * DAY_MS),
            ..Default::default()
        };
        // Usual gap 10 days; last order 40 days before now: 4x overdue.
        let r = metric_value(&Metric::OrderGapRatio, &a, None, 60 * DAY_MS).unwrap();
        assert!((r - 4.0).abs() < 1e-9, "{r}");
        let one = Activity {
            orders: 1,
            first_order: Some(0),
            last_order: Some(0),
            ..Default::default()
        };
        assert_eq!(
            metric_value(&Metric::OrderGapRatio, &one, None, DAY_MS),
            None
        );
    }

    #[test]
    fn quintiles_score_one_to_five_with_ties_equal() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quintiles(&v), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(quintiles(&[7.0, 7.0, 7.0]), vec![1, 1, 1]);
        assert_eq!(quintiles(&[1.0, 2.0]), vec![1, 3]);
    }

    #[test]
    fn unknown_survivorship_source_is_an_error_at_its_line() {
        let surv = "[fields.email]\nrule = \"source_priority\"\nsources = [\"crm\", \"legcay\"]\n";
        let rules = UnifyRules::parse(surv, "survivorship.toml", "", "profiles.toml").unwrap();
        let err = rules
            .check_sources(
                &["crm", "legacy", "web", "transactions"],
                surv,
                "survivorship.toml",
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "survivorship.toml:3: field `fields.email.sources`: unknown source \"legcay\" (sources and systems: crm, legacy, web, transactions)"
        );
        assert!(
            rules
                .check_sources(&["crm", "legcay"], surv, "survivorship.toml")
                .is_ok()
        );
    }

    #[test]
    fn rule_files_parse_and_errors_name_file_line_and_field() {
        let surv = include_str!("../../rules/survivorship.toml");
        let prof = include_str!("../../rules/profiles.toml");
        let r = UnifyRules::parse(surv, "survivorship.toml", prof, "profiles.toml").unwrap();
        assert_eq!(
            r.fields[0],
            Rule::SourcePriority(vec!["crm".into()], Box::new(Rule::MostRecent))
        );
        assert_eq!(r.fields[2], Rule::MostFrequent);
        assert!(r.now.is_none());
        assert!(r.churn.len() >= 5);

        let bad = "[fields.email]\nrule = \"newest\"\n";
        let e = UnifyRules::parse(bad, "s.toml", prof, "p.toml").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("s.toml", 2), "{e}");
        assert!(e.message.contains("fields.email.rule"), "{e}");
        let bad = "[fields.shoe_size]\nrule = \"longest\"\n";
        let e = UnifyRules::parse(bad, "s.toml", prof, "p.toml").unwrap_err();
        assert!(e.message.contains("not a golden field"), "{e}");
        let bad = "now = \"yesterday\"\n";
        let e = UnifyRules::parse(surv, "s.toml", bad, "p.toml").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("p.toml", 1), "{e}");
        let bad = "[[churn]]\nname = \"x\"\nmetric = \"mood\"\nabove = 1\nweight = 0.1\n";
        let e = UnifyRules::parse(surv, "s.toml", bad, "p.toml").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("unknown metric"), "{e}");
        let fixed = "now = \"2025-07-01T00:00:00Z\"\n";
        let r = UnifyRules::parse(surv, "s.toml", fixed, "p.toml").unwrap();
        assert_eq!(r.now.unwrap().1, "2025-07-01T00:00:00Z");
    }
}
