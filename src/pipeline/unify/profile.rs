//! Phase "profiles": one profile row per customer from its activity and
//! golden candidates, RFM quintiles among buyers, churn signals.

use super::activity::{Activity, DAY_MS, KINDS, amount, earlier, hash_str, iso, metric_value};
use super::golden::{CrmRow, OrderEmail};
use super::rules::{Candidate, GOLDEN, Test, UnifyRules, choose};
use crate::pipeline::identity::fuzzy::fold;
use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::{Connection, Statement};
use std::hash::{DefaultHasher, Hash, Hasher};

pub(super) fn profile_columns() -> Vec<String> {
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

pub(super) fn hash_values(values: &[Value]) -> i64 {
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
pub(super) fn quintiles(values: &[f64]) -> Vec<u8> {
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

/// Revenue as a profile shows it (cents); RFM's monetary score uses it too,
/// so that scores computed from stored profiles agree with a full run.
pub(super) fn shown_revenue(a: &Activity) -> f64 {
    (amount(a.revenue) * 100.0).round() / 100.0
}

/// RFM quintile scores among buyers: (last order ms, orders, revenue) each.
pub(super) fn rfm_scores(buyers: &[(i64, u32, f64)], now: i64) -> Vec<(u8, u8, u8)> {
    // Recency: fewer days since the last order scores higher.
    let rec: Vec<f64> = buyers.iter().map(|b| -((now - b.0) as f64)).collect();
    let freq: Vec<f64> = buyers.iter().map(|b| f64::from(b.1)).collect();
    let mon: Vec<f64> = buyers.iter().map(|b| b.2).collect();
    let (r, f, m) = (quintiles(&rec), quintiles(&freq), quintiles(&mon));
    (0..buyers.len()).map(|k| (r[k], f[k], m[k])).collect()
}

/// What every profile row of one run shares.
pub(super) struct Context<'a> {
    pub rules: &'a UnifyRules,
    pub now: i64,
    pub as_of: &'a str,
    pub category_names: &'a [String],
}

/// One customer's inputs.
pub(super) struct Inputs<'a> {
    pub id: &'a str,
    pub activity: &'a Activity,
    pub crm: &'a [CrmRow],
    pub order_emails: &'a [OrderEmail],
    pub rfm: Option<(u8, u8, u8)>,
}

/// A profile row (every column but row_hash and updated_at), its hash and
/// whether it is anonymous.
pub(super) struct Row {
    pub values: Vec<Value>,
    pub hash: i64,
    pub anonymous: bool,
}

fn name_of(r: &CrmRow) -> Option<String> {
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
}

/// The candidates of each golden field, in [`GOLDEN`] order.
fn field_candidates(x: &Inputs) -> [Vec<Candidate>; 6] {
    let cand = |get: &dyn Fn(&CrmRow) -> Option<String>| -> Vec<Candidate> {
        x.crm
            .iter()
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
    let field = |i: usize| move |r: &CrmRow| r.get(i).map(str::to_string);
    let mut email = cand(&field(CrmRow::EMAIL));
    email.extend(x.order_emails.iter().map(|(value, time, seq)| Candidate {
        value: value.to_string(),
        // Placeholder until it wins: ordered after record keys.
        record: format!("~event {seq:020}"),
        system: "transactions".into(),
        source: "transactions".into(),
        time: *time,
    }));
    [
        cand(&name_of),
        email,
        cand(&field(CrmRow::PHONE)),
        cand(&field(CrmRow::COUNTRY)),
        cand(&field(CrmRow::CITY)),
        cand(&|r| r.get(CrmRow::LIFECYCLE).map(str::to_lowercase)),
    ]
}

/// The golden values (value, record, rule per field) pushed onto `values`;
/// returns the values and the index of the CRM record the name came from.
fn golden_values(
    ctx: &Context,
    x: &Inputs,
    cands: &[Vec<Candidate>; 6],
    record_of_event: &mut Statement,
    values: &mut Vec<Value>,
) -> Result<([Option<String>; 6], Option<usize>)> {
    let mut golden: [Option<String>; 6] = Default::default();
    let mut name_record = None;
    for (fi, cands) in cands.iter().enumerate() {
        let Some((w, rule)) = choose(&ctx.rules.fields[fi], cands) else {
            values.extend([Value::Null, Value::Null, Value::Null]);
            continue;
        };
        let record: String = match cands[w].record.strip_prefix("~event ") {
            Some(seq) => {
                record_of_event.query_row([seq.parse::<i64>().unwrap_or(0)], |r| r.get(0))?
            }
            None => cands[w].record.clone(),
        };
        golden[fi] = Some(cands[w].value.clone());
        if fi == 0 {
            name_record = x.crm.iter().position(|r| r.key() == record);
        }
        values.push(Value::Text(cands[w].value.clone()));
        values.push(Value::Text(record));
        values.push(Value::Text(rule));
    }
    Ok((golden, name_record))
}

/// Lifecycle history: each record's status at its time, oldest first,
/// repeats folded (JSON).
fn lifecycle_history(crm: &[CrmRow]) -> String {
    let mut hist: Vec<(i64, &str, &str)> = crm
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
    serde_json::Value::Array(history).to_string()
}

/// Distinct identifier values per kind (JSON object).
fn identifier_counts(x: &Inputs, emails: &[Candidate]) -> String {
    let mut ids = x.activity.ids.clone();
    let mut add = |e: (u8, u64)| {
        if !ids.contains(&e) {
            ids.push(e);
        }
    };
    for r in x.crm {
        add((0u8, hash_str(r.get(CrmRow::CUSTOMER_ID).unwrap_or(""))));
        if let Some(p) = r.get(CrmRow::PHONE) {
            add((2u8, hash_str(p)));
        }
    }
    for c in emails {
        add((1u8, hash_str(&c.value.trim().to_lowercase())));
    }
    let mut counts = serde_json::Map::new();
    for (k, kind) in KINDS.iter().enumerate() {
        let n = ids.iter().filter(|x| x.0 as usize == k).count();
        if n > 0 {
            counts.insert(kind.to_string(), n.into());
        }
    }
    serde_json::Value::Object(counts).to_string()
}

/// Seen, counts, identifiers, orders and revenue, sessions and events.
fn activity_values(ctx: &Context, x: &Inputs, emails: &[Candidate], values: &mut Vec<Value>) {
    let a = x.activity;
    // First seen: the earliest event or CRM creation.
    let mut first = a.first;
    for r in x.crm {
        if let Some(c) = r.created {
            earlier(&mut first, c);
        }
    }
    values.push(time_value(first));
    values.push(time_value(a.last));
    let mut crm_ids: Vec<&str> = x
        .crm
        .iter()
        .filter_map(|r| r.get(CrmRow::CUSTOMER_ID))
        .collect();
    crm_ids.sort_unstable();
    crm_ids.dedup();
    values.push(Value::Text(crm_ids.join(",")));
    values.push(Value::Integer(x.crm.len() as i64));
    values.push(Value::Integer(a.web as i64));
    values.push(Value::Integer(a.transactions as i64));
    values.push(Value::Text(identifier_counts(x, emails)));
    values.push(Value::Integer(a.orders as i64));
    values.push(Value::Integer(a.refunds as i64));
    values.push(Value::Real(shown_revenue(a)));
    values.push(if a.orders > 0 {
        Value::Real((amount(a.gross) / a.orders as f64 * 100.0).round() / 100.0)
    } else {
        Value::Null
    });
    values.push(time_value(a.first_order));
    values.push(time_value(a.last_order));
    // Favourite category: most revenue; equal revenue, the first name.
    let names = ctx.category_names;
    let favourite = a
        .categories
        .iter()
        .max_by(|x, y| {
            x.1.cmp(&y.1)
                .then_with(|| names[y.0 as usize].cmp(&names[x.0 as usize]))
        })
        .map(|x| names[x.0 as usize].as_str());
    values.push(text(favourite));
    values.push(Value::Integer(
        a.sessions.iter().filter(|s| s.1).count() as i64
    ));
    values.push(Value::Integer(a.sessions.len() as i64));
    values.push(Value::Integer(a.page_views_30 as i64));
    values.push(Value::Integer(a.page_views_90 as i64));
    values.push(Value::Integer(a.key_30 as i64));
    values.push(Value::Integer(a.key_90 as i64));
    values.push(time_value(a.last_activity));
    let days = a.last_activity.map(|t| (ctx.now - t).max(0) / DAY_MS);
    values.push(int(days));
}

/// RFM columns (scores and "rfm" text).
pub(super) fn rfm_values(rfm: Option<(u8, u8, u8)>) -> [Value; 4] {
    match rfm {
        Some((r, f, m)) => [
            Value::Integer(r as i64),
            Value::Integer(f as i64),
            Value::Integer(m as i64),
            Value::Text(format!("{r}{f}{m}")),
        ],
        None => [Value::Null, Value::Null, Value::Null, Value::Null],
    }
}

/// Churn risk (0..1) and the signals of rules/profiles.toml that fired.
fn churn(ctx: &Context, a: &Activity, lifecycle: Option<&String>) -> (f64, String) {
    let days = a.last_activity.map(|t| (ctx.now - t).max(0) / DAY_MS);
    let mut risk = 0.0;
    let mut fired: Vec<String> = Vec::new();
    for s in &ctx.rules.churn {
        let why = match &s.test {
            Test::Above(m, x) => metric_value(m, a, days, ctx.now)
                .filter(|v| v > x)
                .map(|v| format!("{} ({v:.2} > {x})", s.name)),
            Test::Below(m, x) => metric_value(m, a, days, ctx.now)
                .filter(|v| v < x)
                .map(|v| format!("{} ({v:.2} < {x})", s.name)),
            Test::LifecycleIn(list) => lifecycle
                .filter(|l| list.contains(l))
                .map(|l| format!("{} ({l})", s.name)),
        };
        if let Some(w) = why {
            risk += s.weight;
            fired.push(w.replace(".00 ", " ").replace(".00)", ")"));
        }
    }
    (
        (risk.min(1.0_f64) * 100.0).round() / 100.0,
        fired.join("; "),
    )
}

/// Search keys (folded "first last", "last first") from the record the name
/// came from.
fn search_keys(name_record: Option<&CrmRow>, name: Option<&str>) -> (Value, Value) {
    let Some(r) = name_record else {
        return (Value::Null, Value::Null);
    };
    let f = r.get(CrmRow::FIRST).map(fold).unwrap_or_default();
    let l = r.get(CrmRow::LAST).map(fold).unwrap_or_default();
    if f.is_empty() && l.is_empty() {
        let full = name.map(fold).unwrap_or_default();
        return (Value::Text(full.clone()), Value::Text(full));
    }
    (
        Value::Text(format!("{f} {l}").trim().to_string()),
        Value::Text(format!("{l} {f}").trim().to_string()),
    )
}

/// One customer's profile row, in [`profile_columns`] order (without
/// row_hash and updated_at).
pub(super) fn build_row(ctx: &Context, x: &Inputs, record_of_event: &mut Statement) -> Result<Row> {
    let cands = field_candidates(x);
    let mut values: Vec<Value> = Vec::with_capacity(64);
    values.push(Value::Text(x.id.to_string()));
    let anonymous = x.crm.is_empty() && !x.activity.known && cands[1].is_empty();
    values.push(Value::Integer(i64::from(anonymous)));
    let (golden, name_record) = golden_values(ctx, x, &cands, record_of_event, &mut values)?;
    values.push(Value::Text(lifecycle_history(x.crm)));
    activity_values(ctx, x, &cands[1], &mut values);
    values.extend(rfm_values(x.rfm));
    let (risk, signals) = churn(ctx, x.activity, golden[5].as_ref());
    values.push(Value::Real(risk));
    values.push(Value::Text(signals));
    values.push(Value::Text(ctx.as_of.to_string()));
    let (key, rev) = search_keys(name_record.map(|i| &x.crm[i]), golden[0].as_deref());
    values.push(key);
    values.push(rev);
    let hash = hash_values(&values);
    Ok(Row {
        values,
        hash,
        anonymous,
    })
}

/// The statement that finds the record behind an order e-mail.
pub(super) fn record_of_event(tx: &Connection) -> Result<Statement<'_>> {
    Ok(tx.prepare("SELECT record_key FROM customer360_events WHERE event_seq = ?1")?)
}
