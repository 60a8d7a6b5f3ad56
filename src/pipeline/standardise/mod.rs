//! Step 3, standardise: staged rows -> `clean_crm_customers`,
//! `clean_web_events`, `clean_transactions`, driven by the rule files in the
//! workspace's `rules/`. Every rule's outcome goes to `rule_outcomes` (rows
//! seen / changed / flagged), `rule_examples` (before/after per record) and
//! `rule_unmapped` (values no rule knew), so a steward can see what it did.
//!
//! Rows are read in chunks, normalised on all cores (rayon) and written
//! through prepared statements in one transaction; the step rebuilds the
//! clean tables from staging each run, so re-running is idempotent.

pub mod country;
pub mod events;
pub mod orders;
pub mod people;
pub mod rules;

use crate::pipeline::progress::Progress;
use crate::pipeline::timeparse::{format_utc, now_utc};
use crate::workspace::{DateOrder, Workspace};
use anyhow::{Result, bail};
use rayon::prelude::*;
use rules::Rules;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, HashMap};

/// Examples kept per rule.
const EXAMPLES_PER_RULE: usize = 200;
const CHUNK: usize = 20_000;

/// The rules this step applies, in display order: (name, target, description).
pub const RULES: &[(&str, &str, &str)] = &[
    (
        "crm.dedup",
        "clean_crm_customers",
        "the same customer_id twice in a source: the latest row is kept",
    ),
    (
        "crm.name",
        "first_name, last_name, full_name",
        "trim, Unicode NFC, case; \"Last, First\" split into first and last name",
    ),
    (
        "crm.email",
        "email",
        "trim, lowercase, syntax check, per-domain rules (rules/people.toml)",
    ),
    (
        "crm.phone",
        "phone",
        "to E.164 using the record's country, else the source's default_region",
    ),
    (
        "crm.country",
        "country",
        "to ISO 3166-1 alpha-2 (rules/countries.toml); unknown values kept and flagged",
    ),
    (
        "crm.region",
        "region",
        "to ISO 3166-2 subdivision codes where the country is known",
    ),
    (
        "crm.address",
        "address, city, postcode",
        "whitespace, case, postcode upper case",
    ),
    (
        "crm.birth_date",
        "birth_date",
        "to YYYY-MM-DD: the source's formats, ISO and numeric layouts (day/month order from the source), dates in words",
    ),
    (
        "crm.lifecycle",
        "lifecycle_status",
        "to the lifecycle model (rules/people.toml: HubSpot and Salesforce stages); other values flagged",
    ),
    (
        "crm.timestamps",
        "created_at, updated_at",
        "to UTC ISO 8601 (at staging, per-source zone)",
    ),
    (
        "web.dedup",
        "clean_web_events",
        "the same event_id twice in a source: the first is kept",
    ),
    (
        "web.event_name",
        "event_name",
        "to the canonical set (rules/events.toml); unmapped names kept and listed",
    ),
    (
        "web.timestamps",
        "event_time",
        "to UTC ISO 8601 (at staging, per-source zone)",
    ),
    ("web.email", "email", "identify traits: as crm.email"),
    (
        "web.phone",
        "phone",
        "identify traits: to E.164 using the source's default_region",
    ),
    (
        "tx.dedup",
        "clean_transactions",
        "the same order_id and type twice in a source: the first is kept",
    ),
    ("tx.email", "email", "as crm.email"),
    (
        "tx.name",
        "first_name, last_name, full_name",
        "the buyer's name, as crm.name",
    ),
    (
        "tx.phone",
        "phone",
        "the buyer's phone, as crm.phone (the source's default_region)",
    ),
    (
        "tx.refund",
        "transaction_type, revenue, quantity",
        "by status (rules/orders.toml): refund rows negative; refunded orders 0, partly refunded netted once; voided / pending not revenue",
    ),
    (
        "tx.currency",
        "currency",
        "upper-case ISO 4217 code; other values flagged",
    ),
    (
        "tx.currency_rate",
        "revenue, unit_price, currency",
        "to the reporting currency with the rates of rules/orders.toml (original amount and currency kept); no rate: 0, flagged",
    ),
    (
        "tx.timestamps",
        "order_time",
        "to UTC ISO 8601 (at staging, per-source zone)",
    ),
];

/// What the step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardiseReport {
    pub rows_in: u64,
    pub rows_out: u64,
    pub crm: u64,
    pub web: u64,
    pub transactions: u64,
    pub unknown_countries: u64,
    pub unmapped_events: u64,
    /// Only the batches loaded since the last run were standardised.
    pub incremental: bool,
}

/// One before/after example.
#[derive(Debug, Clone)]
struct Example {
    source: String,
    record_id: String,
    field: String,
    before: Option<String>,
    after: Option<String>,
    flagged: bool,
}

#[derive(Debug, Default, Clone)]
struct RuleStat {
    seen: u64,
    changed: u64,
    flagged: u64,
    examples: Vec<Example>,
}

/// Outcomes of a chunk (merged across chunks).
#[derive(Debug, Default)]
struct Outcomes {
    rules: HashMap<&'static str, RuleStat>,
    unmapped: HashMap<(&'static str, String), u64>,
}

impl Outcomes {
    /// Record one application of `rule` to a field of a record.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        rule: &'static str,
        source: &str,
        record_id: &str,
        field: &'static str,
        before: Option<&str>,
        after: Option<&str>,
        flagged: bool,
    ) {
        let stat = self.rules.entry(rule).or_default();
        stat.seen += 1;
        let changed = before != after;
        if changed {
            stat.changed += 1;
        }
        if flagged {
            stat.flagged += 1;
        }
        if (changed || flagged) && stat.examples.len() < EXAMPLES_PER_RULE {
            stat.examples.push(Example {
                source: source.to_string(),
                record_id: record_id.to_string(),
                field: field.to_string(),
                before: before.map(str::to_string),
                after: after.map(str::to_string),
                flagged,
            });
        }
    }

    fn unmapped(&mut self, rule: &'static str, value: &str) {
        *self.unmapped.entry((rule, value.to_string())).or_default() += 1;
    }

    fn merge(&mut self, other: Outcomes) {
        for (rule, s) in other.rules {
            let t = self.rules.entry(rule).or_default();
            t.seen += s.seen;
            t.changed += s.changed;
            t.flagged += s.flagged;
            let room = EXAMPLES_PER_RULE.saturating_sub(t.examples.len());
            t.examples.extend(s.examples.into_iter().take(room));
        }
        for (k, n) in other.unmapped {
            *self.unmapped.entry(k).or_default() += n;
        }
    }
}

/// Per-source settings the normalisers need.
#[derive(Clone, Copy)]
struct SourceCtx<'w> {
    date_order: DateOrder,
    /// The country of phone numbers written without a country code, where
    /// the record has no country of its own.
    region: Option<&'w str>,
    /// `[sources.fields.birth_date] formats`.
    birth_formats: &'w [String],
    /// Transactions whose rows are order lines.
    order_lines: bool,
}

fn text(v: &Sql) -> Option<&str> {
    match v {
        Sql::Text(s) if !s.trim().is_empty() => Some(s.as_str()),
        _ => None,
    }
}

fn opt(s: Option<String>) -> Sql {
    s.map_or(Sql::Null, Sql::Text)
}

fn flag_value(valid: Option<bool>) -> Sql {
    valid.map_or(Sql::Null, |v| Sql::Integer(v as i64))
}

/// A normalised row: the values to insert, its source and its record id.
type CleanRow = (Vec<Sql>, String, String);

/// Read `sql` in chunks, normalise each chunk in parallel with `f`, write the
/// results with `insert` (one prepared statement), and return (rows read,
/// rows written, outcomes). `f` returns None for a row it drops.
#[allow(clippy::too_many_arguments)]
/// One clean table's pass over its staged rows.
struct Pass<'a> {
    phase: &'a str,
    staged_table: &'a str,
    /// Staged rows from rowid ?1 on.
    select: &'a str,
    /// A clean row (INSERT OR IGNORE: a key already there is a duplicate).
    insert: &'a str,
    dedup_rule: &'static str,
    /// Run when the row was a duplicate (an order's further lines join its
    /// `lines`), with the row's values at these indexes as ?1, ?2…
    merge: Option<(&'a str, &'a [usize])>,
}

fn process<F>(
    tx: &Connection,
    pass: &Pass,
    since_rowid: i64,
    progress: &dyn Progress,
    f: F,
) -> Result<(u64, u64, Outcomes)>
where
    F: Fn(&[Vec<Sql>], &mut Outcomes) -> Vec<CleanRow> + Sync,
{
    let Pass {
        phase,
        staged_table,
        select,
        insert,
        dedup_rule,
        merge,
    } = *pass;
    let total: i64 = tx.query_row(
        &format!("SELECT count(*) FROM {staged_table} WHERE rowid >= ?1"),
        [since_rowid],
        |r| r.get(0),
    )?;
    let total = total as u64;
    progress.start(phase, total);
    let mut outcomes = Outcomes::default();
    let mut read_stmt = tx.prepare(select)?;
    let ncols = read_stmt.column_count();
    let mut rows = read_stmt.query([since_rowid])?;
    let mut insert_stmt = tx.prepare(insert)?;
    let mut merge_stmt = merge
        .map(|(sql, at)| tx.prepare(sql).map(|s| (s, at)))
        .transpose()?;
    let (mut read, mut written) = (0u64, 0u64);
    loop {
        let mut chunk: Vec<Vec<Sql>> = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            match rows.next()? {
                Some(row) => {
                    let mut v = Vec::with_capacity(ncols);
                    for i in 0..ncols {
                        v.push(row.get::<_, Sql>(i)?);
                    }
                    chunk.push(v);
                }
                None => break,
            }
        }
        if chunk.is_empty() {
            break;
        }
        if progress.is_cancelled() {
            bail!("standardise cancelled; nothing was written");
        }
        read += chunk.len() as u64;
        let results: Vec<(Vec<CleanRow>, Outcomes)> = chunk
            .par_chunks(CHUNK / 4)
            .map(|rows| {
                let mut o = Outcomes::default();
                let out = f(rows, &mut o);
                (out, o)
            })
            .collect();
        for (out, o) in results {
            outcomes.merge(o);
            for (values, source, key) in out {
                let n = insert_stmt.execute(rusqlite::params_from_iter(values.iter()))?;
                let dup = n == 0;
                if let (true, Some((m, at))) = (dup, merge_stmt.as_mut()) {
                    m.execute(rusqlite::params_from_iter(at.iter().map(|&i| &values[i])))?;
                }
                outcomes.record(
                    dedup_rule,
                    &source,
                    &key,
                    "record",
                    Some("kept"),
                    Some(if dup {
                        "collapsed into an earlier row"
                    } else {
                        "kept"
                    }),
                    false,
                );
                if !dup {
                    written += 1;
                }
            }
        }
        progress.update(read.min(total));
    }
    progress.finish();
    Ok((read, written, outcomes))
}

/// What standardising a row depends on besides the data: the rule files
/// and the date orders (a source added later, or new data, leaves them as
/// they are), as a fingerprint; and each source's settings.
fn fingerprint_and_contexts(ws: &Workspace) -> (String, HashMap<String, SourceCtx<'_>>) {
    // What standardising a row depends on: the rule files, the date orders
    // and the phone regions (a source added later, or new data, leaves them
    // as they are).
    let settings = (
        ws.settings.date_order,
        ws.settings.default_region.as_deref(),
    );
    let birth_formats =
        |s: &crate::workspace::Source| s.fields.get("birth_date").map(|o| o.formats.clone());
    let date_orders: Vec<String> = std::iter::once(format!("{settings:?}"))
        .chain(
            ws.sources
                .iter()
                .filter(|s| {
                    (s.date_order, s.default_region.as_deref()) != settings
                        || birth_formats(s).is_some()
                        || s.order_lines
                })
                .map(|s| {
                    format!(
                        "{}={:?}/{:?}/{:?}/{}",
                        s.name,
                        s.date_order,
                        s.default_region,
                        birth_formats(s),
                        s.order_lines
                    )
                }),
        )
        .collect();
    let rules_fp =
        crate::pipeline::fingerprint::rule_files_of(ws, "standardise", &date_orders.join(","));
    let ctx: HashMap<String, SourceCtx> = ws
        .sources
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                SourceCtx {
                    date_order: s.date_order,
                    region: s.default_region.as_deref(),
                    birth_formats: s
                        .fields
                        .get("birth_date")
                        .map_or(&[][..], |o| &o.formats[..]),
                    order_lines: s.order_lines,
                },
            )
        })
        .collect();
    (rules_fp, ctx)
}

/// Clear what this run rebuilds: everything for a full run (`since` None),
/// else the rule outcomes (read back to add to) and the CRM records a new
/// batch replaces. Returns the outcomes so far and the first staged rowid
/// to standardise.
fn clear_for(tx: &Connection, since: Option<i64>) -> Result<(Outcomes, i64)> {
    let mut outcomes = match since {
        Some(_) => read_outcomes(tx)?,
        None => Outcomes::default(),
    };
    let since_rowid = match since {
        Some(batch) => crate::pipeline::load::stage::row_key(batch + 1, 0),
        None => {
            tx.execute_batch(
                "DELETE FROM clean_crm_customers; DELETE FROM clean_web_events; DELETE FROM clean_transactions;",
            )?;
            crate::store::versions::bump(tx, crate::store::versions::CLEAN_REBUILT)?;
            i64::MIN
        }
    };
    tx.execute_batch(
        "DELETE FROM rule_outcomes; DELETE FROM rule_examples; DELETE FROM rule_unmapped;",
    )?;
    if since.is_some() {
        // A CRM record in a new batch replaces its earlier version: the
        // latest row per id is the one kept, as in a full run.
        let replaced = tx.execute(
            "DELETE FROM clean_crm_customers WHERE (source, customer_id) IN
               (SELECT source, customer_id FROM stg_crm_customers WHERE rowid >= ?1)",
            [since_rowid],
        )? as u64;
        outcomes.rules.entry("crm.dedup").or_default().changed += replaced;
    }
    Ok((outcomes, since_rowid))
}

/// Run the step on a workspace (one transaction).
pub fn run(
    conn: &mut Connection,
    ws: &Workspace,
    progress: &dyn Progress,
    full: bool,
) -> Result<StandardiseReport> {
    let rules = Rules::load(&ws.rules_dir())?;
    let (rules_fp, ctx) = fingerprint_and_contexts(ws);
    let ctx_of = |source: &str| {
        ctx.get(source).copied().unwrap_or(SourceCtx {
            date_order: ws.settings.date_order,
            region: ws.settings.default_region.as_deref(),
            birth_formats: &[],
            order_lines: false,
        })
    };
    let tx = conn.transaction()?;
    // Incremental: with the same rules as the last run, only the batches
    // loaded since are standardised, on top of the clean rows already there.
    let through: i64 = tx.query_row(
        "SELECT coalesce(max(batch_id), 0) FROM load_batches",
        [],
        |r| r.get(0),
    )?;
    let since = if full {
        None
    } else {
        incremental_since(&tx, &rules_fp)?
    };
    let (mut outcomes, since_rowid) = clear_for(&tx, since)?;

    // Staged rows are read in rowid order (= batch, row: no sort needed).
    // CRM: latest first, so INSERT OR IGNORE keeps the latest row per id.
    let crm = Pass {
        phase: "standardise crm",
        staged_table: "stg_crm_customers",
        select: "SELECT source, batch_id, row_num, customer_id, first_name, last_name, full_name, email, phone,
                birth_date, address, city, postcode, region, country, lifecycle_status,
                created_at, created_at_raw, updated_at, updated_at_raw, extra
         FROM stg_crm_customers WHERE rowid >= ?1 ORDER BY rowid DESC",
        insert: "INSERT OR IGNORE INTO clean_crm_customers (source, batch_id, row_num, customer_id, first_name,
           last_name, full_name, email, email_valid, phone, phone_valid, birth_date, address, city,
           postcode, region, country, country_valid, lifecycle_status, created_at, updated_at, extra, flags)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23)",
        dedup_rule: "crm.dedup",
        merge: None,
    };
    let (crm_in, crm_out, o) = process(&tx, &crm, since_rowid, progress, |rows, o| {
        clean_crm_rows(rows, &rules, &ctx_of, o)
    })?;
    outcomes.merge(o);

    // Web events.
    let web = Pass {
        phase: "standardise web",
        staged_table: "stg_web_events",
        select: "SELECT source, batch_id, row_num, event_id, event_name, event_time, event_time_raw, event_type,
                user_id, cookie_id, device_id, session_id, page_url, order_id, properties, extra,
                email, phone, previous_id
         FROM stg_web_events WHERE rowid >= ?1 ORDER BY rowid",
        insert: "INSERT OR IGNORE INTO clean_web_events (source, batch_id, row_num, event_id, event_name,
           event_name_raw, event_mapped, event_time, event_type, user_id, cookie_id, device_id,
           session_id, page_url, order_id, properties, extra, email, phone, previous_id)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)",
        dedup_rule: "web.dedup",
        merge: None,
    };
    let (web_in, web_out, o) = process(&tx, &web, since_rowid, progress, |rows, o| {
        rows.iter()
            .map(|r| clean_web(r, &rules, ctx_of(text(&r[0]).unwrap_or("")), o))
            .collect()
    })?;
    outcomes.merge(o);

    // Transactions.
    let orders = Pass {
        phase: "standardise transactions",
        staged_table: "stg_transactions",
        select: "SELECT source, batch_id, row_num, order_id, customer_id, email, order_time, order_time_raw,
                product_id, product_name, category, quantity, unit_price, currency, revenue,
                transaction_type, extra, refunded_amount, first_name, last_name, full_name, phone
         FROM stg_transactions WHERE rowid >= ?1 ORDER BY rowid",
        insert: "INSERT OR IGNORE INTO clean_transactions (source, batch_id, row_num, order_id, transaction_type,
           customer_id, email, email_valid, order_time, product_id, product_name, category, quantity,
           unit_price, currency, revenue, extra, flags, original_revenue, original_currency, lines,
           first_name, last_name, full_name, phone)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25)",
        dedup_rule: "tx.dedup",
        // `order_lines` sources: a further line of an order already there.
        merge: Some((
            "UPDATE clean_transactions SET lines = json_insert(lines, '$[#]', json_extract(?1, '$[0]'))
             WHERE ?1 IS NOT NULL AND lines IS NOT NULL
               AND source = ?2 AND order_id = ?3 AND transaction_type = ?4",
            &[20, 0, 3, 4],
        )),
    };
    let (tx_in, tx_out, o) = process(&tx, &orders, since_rowid, progress, |rows, o| {
        rows.iter()
            .map(|r| clean_transaction(r, &rules, ctx_of(text(&r[0]).unwrap_or("")), o))
            .collect()
    })?;
    outcomes.merge(o);

    write_outcomes(&tx, &outcomes)?;
    tx.execute(
        "INSERT OR REPLACE INTO standardise_state (id, rules_fingerprint, through_batch) VALUES (1, ?1, ?2)",
        params![rules_fp, through],
    )?;
    crate::store::versions::bump(&tx, crate::store::versions::CLEAN)?;
    let (crm_out, web_out, tx_out) = if since.is_some() {
        (
            crate::store::count(&tx, "clean_crm_customers")?,
            crate::store::count(&tx, "clean_web_events")?,
            crate::store::count(&tx, "clean_transactions")?,
        )
    } else {
        (crm_out, web_out, tx_out)
    };
    tx.commit()?;
    let unmapped = |rule: &str| -> u64 {
        outcomes
            .unmapped
            .iter()
            .filter(|((r, _), _)| *r == rule)
            .map(|(_, n)| n)
            .sum()
    };
    let (unknown_countries, unmapped_events) =
        (unmapped("crm.country"), unmapped("web.event_name"));
    Ok(StandardiseReport {
        rows_in: crm_in + web_in + tx_in,
        rows_out: crm_out + web_out + tx_out,
        crm: crm_out,
        web: web_out,
        transactions: tx_out,
        unknown_countries,
        unmapped_events,
        incremental: since.is_some(),
    })
}

/// The last batch already standardised, when the last run used the same
/// rules (and so its clean rows can stay); None means a full run.
fn incremental_since(tx: &Connection, rules_fp: &str) -> Result<Option<i64>> {
    let state: Option<(String, i64)> = tx
        .query_row(
            "SELECT rules_fingerprint, through_batch FROM standardise_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(state.and_then(|(fp, through)| (fp == rules_fp).then_some(through)))
}

/// The outcomes stored by the last run, to add this run's to.
fn read_outcomes(tx: &Connection) -> Result<Outcomes> {
    let mut o = Outcomes::default();
    let mut stmt =
        tx.prepare("SELECT rule, rows_seen, rows_changed, rows_flagged FROM rule_outcomes")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let Some((rule, _, _)) = RULES.iter().find(|x| x.0 == name) else {
            continue;
        };
        let stat = o.rules.entry(rule).or_default();
        stat.seen = r.get::<_, i64>(1)? as u64;
        stat.changed = r.get::<_, i64>(2)? as u64;
        stat.flagged = r.get::<_, i64>(3)? as u64;
    }
    let mut stmt = tx.prepare(
        "SELECT rule, source, record_id, field, before, after, flagged FROM rule_examples ORDER BY rule, n",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let Some((rule, _, _)) = RULES.iter().find(|x| x.0 == name) else {
            continue;
        };
        o.rules.entry(rule).or_default().examples.push(Example {
            source: r.get(1)?,
            record_id: r.get(2)?,
            field: r.get(3)?,
            before: r.get(4)?,
            after: r.get(5)?,
            flagged: r.get::<_, i64>(6)? != 0,
        });
    }
    let mut stmt = tx.prepare("SELECT rule, value, count FROM rule_unmapped")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let Some((rule, _, _)) = RULES.iter().find(|x| x.0 == name) else {
            continue;
        };
        *o.unmapped.entry((rule, r.get(1)?)).or_default() += r.get::<_, i64>(2)? as u64;
    }
    Ok(o)
}

fn write_outcomes(tx: &Connection, outcomes: &Outcomes) -> Result<()> {
    let now = now_utc();
    let mut rule_stmt = tx.prepare(
        "INSERT INTO rule_outcomes (rule, ordinal, target, description, rows_seen, rows_changed, rows_flagged, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut ex_stmt = tx.prepare(
        "INSERT INTO rule_examples (rule, n, source, record_id, field, before, after, flagged)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (i, (rule, target, description)) in RULES.iter().enumerate() {
        let stat = outcomes.rules.get(rule).cloned().unwrap_or_default();
        rule_stmt.execute(params![
            rule,
            i as i64,
            target,
            description,
            stat.seen as i64,
            stat.changed as i64,
            stat.flagged as i64,
            now
        ])?;
        for (n, e) in stat.examples.iter().enumerate() {
            ex_stmt.execute(params![
                rule,
                n as i64,
                e.source,
                e.record_id,
                e.field,
                e.before,
                e.after,
                e.flagged as i64
            ])?;
        }
    }
    let mut un_stmt =
        tx.prepare("INSERT INTO rule_unmapped (rule, value, count) VALUES (?1, ?2, ?3)")?;
    let mut unmapped: Vec<_> = outcomes.unmapped.iter().collect();
    unmapped.sort();
    for ((rule, value), n) in unmapped {
        un_stmt.execute(params![rule, value, *n as i64])?;
    }
    Ok(())
}

/// The provenance columns every clean row starts with: source, batch_id,
/// row_num and the record's id (the first four staged columns).
fn provenance(r: &[Sql]) -> Vec<Sql> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&r[..4]);
    v
}

/// Record a timestamp's conversion. A value that was already UTC with a `Z`
/// (only written with fewer or more decimals) counts as unchanged.
fn record_timestamp(
    o: &mut Outcomes,
    rule: &'static str,
    source: &str,
    id: &str,
    field: &'static str,
    raw: Option<&str>,
    utc: Option<&str>,
) {
    let Some(raw) = raw else { return };
    let already_utc = raw.trim().ends_with('Z')
        && chrono::DateTime::parse_from_rfc3339(raw.trim())
            .is_ok_and(|t| Some(format_utc(&t.with_timezone(&chrono::Utc)).as_str()) == utc);
    let before = if already_utc { utc } else { Some(raw) };
    o.record(rule, source, id, field, before, utc, false);
}

/// Tidy an optional value (a normaliser that never flags) and record it.
fn tidy_field(
    o: &mut Outcomes,
    rule: &'static str,
    source: &str,
    id: &str,
    field: &'static str,
    raw: Option<&str>,
    f: impl FnOnce(&str) -> String,
) -> Option<String> {
    raw.map(|s| {
        let n = f(s);
        o.record(rule, source, id, field, Some(s), Some(&n), false);
        n
    })
}

/// Apply a text normaliser to an optional value and record the outcome.
#[allow(clippy::too_many_arguments)]
fn apply(
    o: &mut Outcomes,
    rule: &'static str,
    source: &str,
    id: &str,
    field: &'static str,
    raw: Option<&str>,
    norm: impl FnOnce(&str) -> people::Norm,
    flags: &mut Vec<&'static str>,
    flag: &'static str,
) -> (Option<String>, Option<bool>) {
    let Some(raw) = raw else {
        return (None, None);
    };
    let n = norm(raw);
    o.record(rule, source, id, field, Some(raw), Some(&n.value), !n.valid);
    if !n.valid {
        flags.push(flag);
    }
    (Some(n.value), Some(n.valid))
}

/// The ISO code of a record's country, if it has a known one.
fn iso_country<'r>(r: &[Sql], rules: &'r Rules) -> Option<&'r str> {
    let raw = text(&r[14])?;
    if rules.country_nulls.contains(&raw.trim().to_lowercase()) {
        return None;
    }
    rules.countries.code(raw)
}

/// A chunk of CRM rows. Phones are parsed grouped by country first: the
/// phone library keeps a small cache of compiled patterns shared by all
/// regions, and switching region on every row would recompile them.
fn clean_crm_rows<'w>(
    rows: &[Vec<Sql>],
    rules: &Rules,
    ctx_of: &(dyn for<'s> Fn(&'s str) -> SourceCtx<'w> + Sync),
    o: &mut Outcomes,
) -> Vec<CleanRow> {
    let ctxs: Vec<SourceCtx> = rows
        .iter()
        .map(|r| ctx_of(text(&r[0]).unwrap_or("")))
        .collect();
    // The record's own country, else its source's default region.
    let regions: Vec<Option<&str>> = rows
        .iter()
        .zip(&ctxs)
        .map(|(r, c)| iso_country(r, rules).or(c.region))
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| regions[i]);
    let mut phones: Vec<Option<people::Norm>> = vec![None; rows.len()];
    for i in order {
        phones[i] = text(&rows[i][8]).map(|p| people::phone(p, regions[i]));
    }
    rows.iter()
        .zip(phones)
        .zip(ctxs)
        .map(|((r, phone), ctx)| clean_crm(r, rules, ctx, phone, o))
        .collect()
}

fn clean_crm(
    r: &[Sql],
    rules: &Rules,
    ctx: SourceCtx,
    phone: Option<people::Norm>,
    o: &mut Outcomes,
) -> CleanRow {
    let source = text(&r[0]).unwrap_or("").to_string();
    let id = text(&r[3]).unwrap_or("").to_string();
    let mut flags: Vec<&'static str> = Vec::new();

    let (first, last, full) = crm_names(r, o, &source, &id);
    let (email, email_valid) = apply(
        o,
        "crm.email",
        &source,
        &id,
        "email",
        text(&r[7]),
        |s| people::email(s, &rules.email),
        &mut flags,
        "invalid_email",
    );

    // Country before phone: the phone is read in the record's country.
    let (country, country_valid) = crm_country(text(&r[14]), rules, o, &source, &id, &mut flags);
    let iso = country.as_deref().filter(|_| country_valid == Some(true));
    let (phone, phone_valid) = crm_phone(text(&r[8]), phone, o, &source, &id, &mut flags);
    let region = text(&r[13]).map(|raw| {
        let code = iso.and_then(|c| rules.countries.subdivision(c, raw));
        let after = code.map_or_else(|| people::tidy(raw), str::to_string);
        let flagged = iso.is_some() && code.is_none();
        o.record(
            "crm.region",
            &source,
            &id,
            "region",
            Some(raw),
            Some(&after),
            flagged,
        );
        after
    });
    let address = tidy_field(
        o,
        "crm.address",
        &source,
        &id,
        "address",
        text(&r[10]),
        people::tidy,
    );
    let city = tidy_field(o, "crm.address", &source, &id, "city", text(&r[11]), |s| {
        people::city(s).value
    });
    let postcode = tidy_field(
        o,
        "crm.address",
        &source,
        &id,
        "postcode",
        text(&r[12]),
        |s| people::postcode(s).value,
    );
    let (birth_date, _) = apply(
        o,
        "crm.birth_date",
        &source,
        &id,
        "birth_date",
        text(&r[9]),
        |s| people::birth_date(s, ctx.date_order, ctx.birth_formats),
        &mut flags,
        "invalid_birth_date",
    );
    let (lifecycle, _) = apply(
        o,
        "crm.lifecycle",
        &source,
        &id,
        "lifecycle_status",
        text(&r[15]),
        |s| people::lifecycle(s, &rules.lifecycle),
        &mut flags,
        "unknown_lifecycle",
    );
    for (utc, raw, field) in [(16, 17, "created_at"), (18, 19, "updated_at")] {
        record_timestamp(
            o,
            "crm.timestamps",
            &source,
            &id,
            field,
            text(&r[raw]),
            text(&r[utc]),
        );
    }
    let mut values = provenance(r);
    values.extend([
        opt(first),
        opt(last),
        opt(full),
        opt(email),
        flag_value(email_valid),
        opt(phone),
        flag_value(phone_valid),
        opt(birth_date),
        opt(address),
        opt(city),
        opt(postcode),
        opt(region),
        opt(country),
        flag_value(country_valid),
        opt(lifecycle),
        r[16].clone(),
        r[18].clone(),
        r[20].clone(),
        if flags.is_empty() {
            Sql::Null
        } else {
            Sql::Text(flags.join(","))
        },
    ]);
    (values, source, id)
}

/// A CRM record's names: each tidied; a full name split into the first
/// and last names the record lacks.
fn crm_names(
    r: &[Sql],
    o: &mut Outcomes,
    source: &str,
    id: &str,
) -> (Option<String>, Option<String>, Option<String>) {
    names(
        o,
        "crm.name",
        source,
        id,
        [text(&r[4]), text(&r[5]), text(&r[6])],
    )
}

/// First, last and full name, tidied; a missing first or last name taken
/// from the full name ("First Last", "Last, First"), recorded under `rule`.
fn names(
    o: &mut Outcomes,
    rule: &'static str,
    source: &str,
    id: &str,
    [first, last, full]: [Option<&str>; 3],
) -> (Option<String>, Option<String>, Option<String>) {
    let name = |s: &str| people::name(s).value;
    let mut first = tidy_field(o, rule, source, id, "first_name", first, name);
    let mut last = tidy_field(o, rule, source, id, "last_name", last, name);
    let full = full.map(|s| {
        let (f, l) = people::split_full_name(s);
        if first.is_none() && f.is_some() {
            o.record(rule, source, id, "first_name", None, f.as_deref(), false);
            first = f;
        }
        if last.is_none() && l.is_some() {
            o.record(rule, source, id, "last_name", None, l.as_deref(), false);
            last = l;
        }
        people::name(s).value
    });
    (first, last, full)
}

/// A CRM record's country: its ISO code, or the tidied value flagged as
/// unknown; (value, valid).
fn crm_country(
    raw: Option<&str>,
    rules: &Rules,
    o: &mut Outcomes,
    source: &str,
    id: &str,
    flags: &mut Vec<&'static str>,
) -> (Option<String>, Option<bool>) {
    match raw {
        None => (None, None),
        Some(raw) if rules.country_nulls.contains(&raw.trim().to_lowercase()) => {
            o.record("crm.country", source, id, "country", Some(raw), None, false);
            (None, None)
        }
        Some(raw) => match rules.countries.code(raw) {
            Some(code) => {
                o.record(
                    "crm.country",
                    source,
                    id,
                    "country",
                    Some(raw),
                    Some(code),
                    false,
                );
                (Some(code.to_string()), Some(true))
            }
            None => {
                let kept = people::tidy(raw);
                o.record(
                    "crm.country",
                    source,
                    id,
                    "country",
                    Some(raw),
                    Some(&kept),
                    true,
                );
                o.unmapped("crm.country", &kept);
                flags.push("unknown_country");
                (Some(kept), Some(false))
            }
        },
    }
}

/// A CRM record's phone as parsed (in its country), flagged when invalid.
fn crm_phone(
    raw: Option<&str>,
    parsed: Option<people::Norm>,
    o: &mut Outcomes,
    source: &str,
    id: &str,
    flags: &mut Vec<&'static str>,
) -> (Option<String>, Option<bool>) {
    match (raw, parsed) {
        (Some(raw), Some(n)) => {
            o.record(
                "crm.phone",
                source,
                id,
                "phone",
                Some(raw),
                Some(&n.value),
                !n.valid,
            );
            if !n.valid {
                flags.push("invalid_phone");
            }
            (Some(n.value), Some(n.valid))
        }
        _ => (None, None),
    }
}

fn clean_web(r: &[Sql], rules: &Rules, ctx: SourceCtx, o: &mut Outcomes) -> CleanRow {
    let source = text(&r[0]).unwrap_or("").to_string();
    let id = text(&r[3]).unwrap_or("").to_string();
    let raw_name = text(&r[4]).unwrap_or("").to_string();
    let event_type = text(&r[7]);
    let (name, mapped) = match rules.events.canonical(&raw_name, event_type) {
        Some((canonical, _)) => (canonical.to_string(), true),
        None => {
            o.unmapped("web.event_name", &raw_name);
            (raw_name.clone(), false)
        }
    };
    o.record(
        "web.event_name",
        &source,
        &id,
        "event_name",
        Some(&raw_name),
        Some(&name),
        !mapped,
    );
    record_timestamp(
        o,
        "web.timestamps",
        &source,
        &id,
        "event_time",
        text(&r[6]),
        text(&r[5]),
    );
    let mut values = provenance(r);
    values.extend([
        Sql::Text(name),
        Sql::Text(raw_name),
        Sql::Integer(mapped as i64),
        r[5].clone(),
        r[7].clone(),
        r[8].clone(),
        r[9].clone(),
        r[10].clone(),
        r[11].clone(),
        r[12].clone(),
        r[13].clone(),
        r[14].clone(),
        r[15].clone(),
    ]);
    values.extend(web_identities(r, rules, ctx, o, &source, &id));
    (values, source, id)
}

/// The e-mail and phone an event carries (identify traits), normalised as
/// the CRM's are, and its previous id (alias), trimmed.
fn web_identities(
    r: &[Sql],
    rules: &Rules,
    ctx: SourceCtx,
    o: &mut Outcomes,
    source: &str,
    id: &str,
) -> [Sql; 3] {
    let mut flags = Vec::new();
    let (email, _) = apply(
        o,
        "web.email",
        source,
        id,
        "email",
        text(&r[16]),
        |s| people::email(s, &rules.email),
        &mut flags,
        "invalid_email",
    );
    let (phone, _) = apply(
        o,
        "web.phone",
        source,
        id,
        "phone",
        text(&r[17]),
        |s| people::phone(s, ctx.region),
        &mut flags,
        "invalid_phone",
    );
    let previous = text(&r[18]).map(str::trim).filter(|s| !s.is_empty());
    [
        opt(email),
        opt(phone),
        previous.map_or(Sql::Null, |s| Sql::Text(s.to_string())),
    ]
}

fn clean_transaction(r: &[Sql], rules: &Rules, ctx: SourceCtx, o: &mut Outcomes) -> CleanRow {
    let source = text(&r[0]).unwrap_or("").to_string();
    let id = text(&r[3]).unwrap_or("").to_string();
    let mut flags: Vec<&'static str> = Vec::new();
    let (email, email_valid) = apply(
        o,
        "tx.email",
        &source,
        &id,
        "email",
        text(&r[5]),
        |s| people::email(s, &rules.email),
        &mut flags,
        "invalid_email",
    );
    let (kind, revenue, quantity) = order_status(r, rules, o, &source, &id, &mut flags);
    let (currency, _) = apply(
        o,
        "tx.currency",
        &source,
        &id,
        "currency",
        text(&r[13]),
        people::currency,
        &mut flags,
        "invalid_currency",
    );
    let time = text(&r[6]).unwrap_or("");
    let (revenue_out, currency_out, rate) = convert(
        revenue,
        currency.as_deref(),
        time,
        rules,
        o,
        &source,
        &id,
        &mut flags,
    );
    let unit_price = match (&r[12], rate) {
        (Sql::Real(p), Some(rate)) => Sql::Real(p * rate),
        (p, _) => p.clone(),
    };
    record_timestamp(
        o,
        "tx.timestamps",
        &source,
        &id,
        "order_time",
        text(&r[7]),
        text(&r[6]),
    );
    let mut values = provenance(r);
    values.extend([
        Sql::Text(kind.transaction_type().into()),
        r[4].clone(),
        opt(email),
        flag_value(email_valid),
        r[6].clone(),
        r[8].clone(),
        r[9].clone(),
        r[10].clone(),
        quantity.map_or(Sql::Null, Sql::Integer),
        unit_price,
        opt(currency_out),
        Sql::Real(revenue_out),
        r[16].clone(),
        if flags.is_empty() {
            Sql::Null
        } else {
            Sql::Text(flags.join(","))
        },
        Sql::Real(revenue),
        opt(currency.clone()),
    ]);
    // An order's lines (`order_lines` sources): this row's, as the first.
    let line = ctx.order_lines.then(|| {
        serde_json::json!([{
            "product_id": text(&r[8]),
            "product_name": text(&r[9]),
            "category": text(&r[10]),
            "quantity": quantity,
            "unit_price": match &values[13] { Sql::Real(p) => Some(*p), _ => None },
        }])
        .to_string()
    });
    values.push(opt(line));
    // The buyer, for fuzzy matching with the CRM.
    let (first, last, full) = names(
        o,
        "tx.name",
        &source,
        &id,
        [text(&r[18]), text(&r[19]), text(&r[20])],
    );
    let (phone, _) = apply(
        o,
        "tx.phone",
        &source,
        &id,
        "phone",
        text(&r[21]),
        |s| people::phone(s, ctx.region),
        &mut Vec::new(),
        "invalid_phone",
    );
    values.extend([opt(first), opt(last), opt(full), opt(phone)]);
    (values, source, id)
}

/// The order's kind by its status (`rules/orders.toml`), and its revenue
/// and quantity netted accordingly, in the order's own currency.
fn order_status(
    r: &[Sql],
    rules: &Rules,
    o: &mut Outcomes,
    source: &str,
    id: &str,
    flags: &mut Vec<&'static str>,
) -> (orders::OrderKind, f64, Option<i64>) {
    use orders::OrderKind::*;
    let number = |v: &Sql| match v {
        Sql::Real(x) => Some(*x),
        Sql::Integer(i) => Some(*i as f64),
        _ => None,
    };
    let status = text(&r[15]);
    let (kind, known) = rules.orders.kind(status);
    if !known {
        flags.push("unknown_status");
    }
    let total = number(&r[14]).unwrap_or(0.0);
    let quantity = match &r[11] {
        Sql::Integer(q) => Some(*q),
        _ => None,
    };
    let refunded = number(&r[17]);
    let (revenue, quantity) = match kind {
        Purchase => (total, quantity),
        Refund => (-total.abs(), quantity.map(|q| -q.abs())),
        Refunded => (0.0, quantity),
        Partial => match refunded {
            Some(x) => (total - x.abs(), quantity),
            None => {
                flags.push("refund_amount_unknown");
                (total, quantity)
            }
        },
        Void => (0.0, quantity),
    };
    o.record(
        "tx.refund",
        source,
        id,
        "revenue",
        Some(&format!("{} {total}", status.unwrap_or("-"))),
        Some(&format!("{} {revenue}", kind.transaction_type())),
        !known || (kind == Partial && refunded.is_none()),
    );
    (kind, revenue, quantity)
}

/// Revenue in the reporting currency (`rules/orders.toml` `[currency]`):
/// (revenue, currency, rate used). Without a rate the amount is never
/// added to the others: revenue 0, flagged `no_rate`.
#[allow(clippy::too_many_arguments)]
fn convert(
    revenue: f64,
    currency: Option<&str>,
    time: &str,
    rules: &Rules,
    o: &mut Outcomes,
    source: &str,
    id: &str,
    flags: &mut Vec<&'static str>,
) -> (f64, Option<String>, Option<f64>) {
    let Some(reporting) = rules.orders.reporting.as_deref() else {
        return (revenue, currency.map(str::to_string), None);
    };
    let from = currency.unwrap_or(reporting);
    let rate = rules.orders.rate(from, time);
    let out = rate.map_or(0.0, |r| (revenue * r * 1e6).round() / 1e6);
    if rate.is_none() {
        flags.push("no_rate");
    }
    o.record(
        "tx.currency_rate",
        source,
        id,
        "revenue",
        Some(&format!("{revenue} {from}")),
        Some(&match rate {
            Some(_) => format!("{out} {reporting}"),
            None => format!("no rate for {from}: 0 {reporting}"),
        }),
        rate.is_none(),
    );
    (out, Some(reporting.to_string()), rate)
}

/// Rule outcome rows for the Rules screen and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    pub rule: String,
    pub target: String,
    pub description: String,
    pub seen: u64,
    pub changed: u64,
    pub flagged: u64,
}

pub fn rule_rows(conn: &Connection) -> Result<Vec<RuleRow>> {
    let mut stmt = conn.prepare(
        "SELECT rule, target, description, rows_seen, rows_changed, rows_flagged FROM rule_outcomes ORDER BY ordinal",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(RuleRow {
            rule: r.get(0)?,
            target: r.get(1)?,
            description: r.get(2)?,
            seen: r.get::<_, i64>(3)? as u64,
            changed: r.get::<_, i64>(4)? as u64,
            flagged: r.get::<_, i64>(5)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Unmapped values of a rule, most frequent first.
pub fn unmapped(conn: &Connection, rule: &str, limit: usize) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT value, count FROM rule_unmapped WHERE rule = ?1 ORDER BY count DESC, value LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![rule, limit as i64], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Examples of a rule: (source, record_id, field, before, after, flagged).
pub type ExampleRow = (String, String, String, Option<String>, Option<String>, bool);

pub fn examples(conn: &Connection, rule: &str) -> Result<Vec<ExampleRow>> {
    let mut stmt = conn.prepare(
        "SELECT source, record_id, field, before, after, flagged FROM rule_examples WHERE rule = ?1 ORDER BY n",
    )?;
    let rows = stmt.query_map([rule], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get::<_, i64>(5)? != 0,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Counts used in summaries: per rule name -> (changed, flagged).
pub fn summary(conn: &Connection) -> Result<BTreeMap<String, (u64, u64)>> {
    Ok(rule_rows(conn)?
        .into_iter()
        .map(|r| (r.rule, (r.changed, r.flagged)))
        .collect())
}
