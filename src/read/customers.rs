//! Read-only queries behind the Customers screen: search, sorted lists, and
//! one customer's 360 view (golden record with provenance, source records,
//! identifiers, timeline). Every query walks an index: none scans the
//! profiles or events table, so each answers in milliseconds on a million
//! profiles and ten million events.

use crate::pipeline::identity::fuzzy::fold;
use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

/// The golden fields as (label, profile column, provenance column prefix).
pub const GOLDEN_FIELDS: [(&str, &str, &str); 6] = [
    ("name", "name", "name"),
    ("email", "email", "email"),
    ("phone", "phone", "phone"),
    ("country", "country", "country"),
    ("city", "city", "city"),
    ("lifecycle", "lifecycle_status", "lifecycle"),
];

/// One line of a customer list.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub lifecycle: Option<String>,
    pub orders: i64,
    pub revenue: f64,
    pub last_activity: Option<String>,
    pub churn_risk: f64,
    pub anonymous: bool,
}

const ROW_COLUMNS: &str = "customer360_id, name, email, phone, lifecycle_status, orders, revenue,
     last_activity_at, churn_risk, anonymous";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProfileRow> {
    Ok(ProfileRow {
        id: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        phone: r.get(3)?,
        lifecycle: r.get(4)?,
        orders: r.get(5)?,
        revenue: r.get(6)?,
        last_activity: r.get(7)?,
        churn_risk: r.get(8)?,
        anonymous: r.get::<_, i64>(9)? != 0,
    })
}

/// List orders, each backed by an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Revenue,
    LastActivity,
    ChurnRisk,
    Name,
}

impl Sort {
    pub const ALL: [Sort; 4] = [
        Sort::Revenue,
        Sort::LastActivity,
        Sort::ChurnRisk,
        Sort::Name,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Sort::Revenue => "revenue",
            Sort::LastActivity => "last activity",
            Sort::ChurnRisk => "churn risk",
            Sort::Name => "name",
        }
    }

    pub fn next(self) -> Sort {
        let i = Sort::ALL.iter().position(|s| *s == self).unwrap_or(0);
        Sort::ALL[(i + 1) % Sort::ALL.len()]
    }

    /// (column, descending).
    fn column(self) -> (&'static str, bool) {
        match self {
            Sort::Revenue => ("revenue", true),
            Sort::LastActivity => ("last_activity_at", true),
            Sort::ChurnRisk => ("churn_risk", true),
            Sort::Name => ("name_key", false),
        }
    }
}

/// Which profiles a list shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFilter {
    /// Show anonymous visitors too.
    pub anonymous: bool,
    /// Only this lifecycle status.
    pub lifecycle: Option<String>,
    /// Only the members of this segment filter.
    pub segment: Option<String>,
}

/// Where the next page starts: the last row's sort value and id.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub value: Value,
    pub id: String,
}

fn sort_value(conn: &Connection, sort: Sort, id: &str) -> Result<Value> {
    let (col, _) = sort.column();
    Ok(conn.query_row(
        &format!("SELECT {col} FROM customer360_profiles WHERE customer360_id = ?1"),
        [id],
        |r| r.get::<_, Value>(0),
    )?)
}

/// One page of profiles in `sort` order after `after` (keyset paging on the
/// sort column's index: the millionth row costs what the first does).
pub fn list(
    conn: &Connection,
    sort: Sort,
    filter: &ListFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<ProfileRow>> {
    // Profiles without a sort value (no activity yet, no name) come last,
    // in id order: a second keyset walk over the same index.
    if let Some(c) = after
        && c.value == Value::Null
    {
        return list_nulls(conn, sort, filter, Some(&c.id), limit);
    }
    let mut rows = list_values(conn, sort, filter, after, limit)?;
    if rows.len() < limit {
        rows.extend(list_nulls(conn, sort, filter, None, limit - rows.len())?);
    }
    Ok(rows)
}

fn filter_conds(
    conn: &Connection,
    filter: &ListFilter,
    conds: &mut Vec<String>,
    args: &mut Vec<Value>,
) -> Result<()> {
    if !filter.anonymous {
        conds.push("anonymous = 0".into());
    }
    if let Some(l) = &filter.lifecycle {
        conds.push(format!("lifecycle_status = ?{}", args.len() + 1));
        args.push(Value::Text(l.clone()));
    }
    if let Some(f) = &filter.segment {
        conds.push(crate::read::segments::condition_into(conn, f, args)?);
    }
    Ok(())
}

/// How many profiles a list shows under `filter` (the whole list, not a
/// page): its title's total.
pub fn count(conn: &Connection, filter: &ListFilter) -> Result<u64> {
    let mut conds: Vec<String> = vec!["1".into()];
    let mut args: Vec<Value> = Vec::new();
    filter_conds(conn, filter, &mut conds, &mut args)?;
    let sql = format!(
        "SELECT count(*) FROM customer360_profiles WHERE {}",
        conds.join(" AND ")
    );
    let n: i64 = conn.query_row(&sql, params_from_iter(args.iter()), |r| r.get(0))?;
    Ok(n as u64)
}

fn list_nulls(
    conn: &Connection,
    sort: Sort,
    filter: &ListFilter,
    after_id: Option<&str>,
    limit: usize,
) -> Result<Vec<ProfileRow>> {
    let (col, _) = sort.column();
    let mut conds: Vec<String> = vec![format!("{col} IS NULL")];
    let mut args: Vec<Value> = Vec::new();
    filter_conds(conn, filter, &mut conds, &mut args)?;
    if let Some(id) = after_id {
        conds.push(format!("customer360_id > ?{}", args.len() + 1));
        args.push(Value::Text(id.to_string()));
    }
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM customer360_profiles INDEXED BY {index}
         WHERE {} ORDER BY {col}, customer360_id LIMIT {limit}",
        conds.join(" AND "),
        index = index_of(sort)
    );
    profile_rows(conn, &sql, &args)
}

fn profile_rows(conn: &Connection, sql: &str, args: &[Value]) -> Result<Vec<ProfileRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn list_values(
    conn: &Connection,
    sort: Sort,
    filter: &ListFilter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<ProfileRow>> {
    let (col, desc) = sort.column();
    let mut conds: Vec<String> = vec![format!("{col} IS NOT NULL")];
    let mut args: Vec<Value> = Vec::new();
    filter_conds(conn, filter, &mut conds, &mut args)?;
    if let Some(c) = after {
        let (a, b) = (args.len() + 1, args.len() + 2);
        conds.push(if desc {
            format!("({col} < ?{a} OR ({col} = ?{a} AND customer360_id < ?{b}))")
        } else {
            format!("({col} > ?{a} OR ({col} = ?{a} AND customer360_id > ?{b}))")
        });
        args.push(c.value.clone());
        args.push(Value::Text(c.id.clone()));
    }
    let dir = if desc { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM customer360_profiles INDEXED BY {index}
         WHERE {} ORDER BY {col} {dir}, customer360_id {dir} LIMIT {limit}",
        conds.join(" AND "),
        index = index_of(sort)
    );
    profile_rows(conn, &sql, &args)
}

fn index_of(sort: Sort) -> &'static str {
    match sort {
        Sort::Revenue => "profiles_by_revenue",
        Sort::LastActivity => "profiles_by_last_activity",
        Sort::ChurnRisk => "profiles_by_churn",
        Sort::Name => "profiles_by_name",
    }
}

/// The cursor after `row` in `sort` order.
pub fn cursor_after(conn: &Connection, sort: Sort, row: &ProfileRow) -> Result<Cursor> {
    Ok(Cursor {
        value: sort_value(conn, sort, &row.id)?,
        id: row.id.clone(),
    })
}

/// A profile phone's digits, as indexed by `profiles_by_phone_digits`
/// (the same expression as the index, so SQLite uses it).
pub const PHONE_DIGITS: &str = "replace(replace(replace(replace(replace(replace(phone, '+', ''), ' ', ''), '-', ''), '(', ''), ')', ''), '.', '')";

/// Customers found so far, in order, each once, up to a limit.
struct Found<'c> {
    conn: &'c Connection,
    ids: Vec<String>,
    limit: usize,
}

impl Found<'_> {
    fn full(&self) -> bool {
        self.ids.len() >= self.limit
    }

    /// Add the customer ids `sql` returns for `args`; `?LIMIT` in the SQL
    /// is bound to how many are still wanted.
    fn add(&mut self, sql: &str, args: &[&str]) -> Result<()> {
        if self.full() {
            return Ok(());
        }
        let mut values: Vec<Value> = args.iter().map(|a| Value::Text(a.to_string())).collect();
        let sql = if sql.contains("?LIMIT") {
            values.push(Value::Integer((self.limit - self.ids.len()) as i64));
            sql.replace("?LIMIT", &format!("?{}", values.len()))
        } else {
            sql.to_string()
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(values.iter()), |r| r.get::<_, String>(0))?;
        for id in rows {
            let id = id?;
            if !self.ids.contains(&id) {
                self.ids.push(id);
            }
        }
        Ok(())
    }
}

/// Find customers as people type: by any id (a customer360_id or its
/// start, a record id such as a CRM customer id, order id or event id, an
/// identifier value such as a device or cookie), by phone in any format
/// (compared on digits, with or without the country code), by e-mail
/// (any record's, its start, or any part of the golden one: `gmail`), or
/// by name (accents and case folded, first or last name first). Exact id
/// matches come first. Every read walks an index; only a part of an e-mail
/// found nowhere else scans the e-mail index.
pub fn search(conn: &Connection, query: &str, limit: usize) -> Result<Vec<ProfileRow>> {
    let q = query.trim();
    if q.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let mut found = Found {
        conn,
        ids: Vec::new(),
        limit,
    };
    search_ids(&mut found, q)?;
    let digits: String = q.chars().filter(|c| c.is_ascii_digit()).collect();
    let phone_like = digits.len() >= 4
        && q.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if phone_like {
        search_phones(&mut found, &digits)?;
    } else if q.contains('@') {
        search_emails(&mut found, q)?;
    } else {
        search_names(&mut found, q)?;
        if q.len() >= 3 && !q.contains(char::is_whitespace) {
            search_email_parts(&mut found, q)?;
        }
    }
    let mut out = Vec::with_capacity(found.ids.len());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM customer360_profiles WHERE customer360_id = ?1"
    ))?;
    for id in found.ids {
        if let Some(r) = stmt.query_map([&id], row)?.next() {
            out.push(r?);
        }
    }
    Ok(out)
}

/// Phase 1: exact ids (a customer360_id, a record id, an identifier value),
/// a customer360_id's start, and any CRM record's exact e-mail or phone.
fn search_ids(found: &mut Found, q: &str) -> Result<()> {
    found.add(
        "SELECT customer360_id FROM customer360_profiles WHERE customer360_id = ?1",
        &[q],
    )?;
    found.add(
        "SELECT DISTINCT customer360_id FROM customer360_id_map WHERE record_id = ?1 LIMIT ?LIMIT",
        &[q],
    )?;
    found.add(
        "SELECT DISTINCT m.customer360_id FROM identifiers i
         JOIN identity_links l ON l.identifier_id = i.identifier_id
         JOIN customer360_id_map m ON m.record_key = l.record_key
         WHERE i.value = ?1 LIMIT ?LIMIT",
        &[q],
    )?;
    if q.to_ascii_uppercase().starts_with("C360-") {
        let p = q.to_ascii_uppercase();
        found.add(
            "SELECT customer360_id FROM customer360_profiles
             WHERE customer360_id >= ?1 AND customer360_id < ?2 ORDER BY customer360_id LIMIT ?LIMIT",
            &[&p, &prefix_end(&p)],
        )?;
    }
    let digits: String = q.chars().filter(|c| c.is_ascii_digit()).collect();
    found.add(
        "SELECT DISTINCT m.customer360_id FROM clean_crm_customers c
         JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id
         WHERE c.email = ?1 OR c.phone = ?1 OR c.phone = ?2 LIMIT ?LIMIT",
        &[&q.to_lowercase(), &format!("+{digits}")],
    )
}

/// The upper bound of a prefix range.
fn prefix_end(p: &str) -> String {
    format!("{p}\u{10ffff}")
}

/// Phase 2 (a phone): on digits, whatever the format stored or typed: the
/// digits as typed; then as (the start of) a national
/// number under each country calling code the profiles' phones use (with
/// its trunk 0 dropped: 0151 … is +49 151 …), and a number typed with its
/// country code (or 00 and the code) against phones stored without one.
fn search_phones(found: &mut Found, digits: &str) -> Result<()> {
    let by_digits = format!(
        "SELECT customer360_id FROM customer360_profiles INDEXED BY profiles_by_phone_digits
         WHERE {PHONE_DIGITS} >= ?1 AND {PHONE_DIGITS} < ?2 ORDER BY {PHONE_DIGITS} LIMIT ?LIMIT"
    );
    let mut probes: Vec<String> = vec![digits.to_string()];
    // 00 is the international prefix: 0049 … is +49 ….
    let international = digits.strip_prefix("00").filter(|d| d.len() >= 6);
    probes.extend(international.map(str::to_string));
    let national = digits.trim_start_matches('0');
    for code in calling_codes(found.conn)? {
        probes.push(format!("{code}{digits}"));
        if national != digits {
            probes.push(format!("{code}{national}"));
        }
    }
    let international = international.unwrap_or(digits);
    if let Some(code) = calling_code(international)
        && international.len() >= code.len() + 6
    {
        let rest = &international[code.len()..];
        probes.push(rest.to_string());
        probes.push(format!("0{rest}"));
    }
    for p in &probes {
        found.add(&by_digits, &[p, &prefix_end(p)])?;
        // Any CRM record's phone, not only the golden one.
        found.add(
            "SELECT DISTINCT m.customer360_id FROM clean_crm_customers c
             JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id
             WHERE c.phone = ?1 LIMIT ?LIMIT",
            &[&format!("+{p}")],
        )?;
        if found.full() {
            break;
        }
    }
    Ok(())
}

/// The country calling codes of the profiles' E.164 phones: a skip scan of
/// the phone index, one seek per code.
fn calling_codes(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT phone FROM customer360_profiles INDEXED BY profiles_by_phone
         WHERE phone > ?1 AND phone < '+:' ORDER BY phone LIMIT 1",
    )?;
    let mut codes = Vec::new();
    let mut from = "+".to_string();
    // Fewer than 300 codes exist.
    for _ in 0..300 {
        let Some(phone) = stmt
            .query_row([&from], |r| r.get::<_, String>(0))
            .optional()?
        else {
            break;
        };
        match calling_code(&phone[1..]) {
            Some(code) => {
                from = format!("+{code}:");
                codes.push(code.to_string());
            }
            None => from = phone,
        }
    }
    Ok(codes)
}

/// The country calling code at the start of an international number's
/// digits (ITU-T E.164: 1 and 7 alone, a fixed set of two-digit codes,
/// three digits for the rest).
fn calling_code(digits: &str) -> Option<&str> {
    const TWO: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if !digits.bytes().take(3).all(|b| b.is_ascii_digit()) {
        return None;
    }
    match digits.as_bytes().first()? {
        b'0' => None,
        b'1' | b'7' => Some(&digits[..1]),
        _ if TWO.contains(&digits.get(..2)?) => Some(&digits[..2]),
        _ => digits.get(..3),
    }
}

/// Phase 2 (an e-mail): its start, then any part of it (`@gmail`).
fn search_emails(found: &mut Found, q: &str) -> Result<()> {
    let p = q.to_lowercase();
    found.add(
        "SELECT customer360_id FROM customer360_profiles
         WHERE email >= ?1 AND email < ?2 ORDER BY email LIMIT ?LIMIT",
        &[&p, &prefix_end(&p)],
    )?;
    search_email_parts(found, q)
}

/// Any part of the golden e-mail (`gmail`, `lee@`): a scan of the e-mail
/// index, stopping at the limit.
fn search_email_parts(found: &mut Found, q: &str) -> Result<()> {
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    found.add(
        "SELECT customer360_id FROM customer360_profiles INDEXED BY profiles_by_email
         WHERE email LIKE ?1 ESCAPE '\\' ORDER BY email LIMIT ?LIMIT",
        &[&format!("%{escaped}%")],
    )
}

/// Phase 2 (a name): folded (accents and case: `bjorn bohm` is Björn
/// Böhm), as the start of "first last" or of "last first".
fn search_names(found: &mut Found, q: &str) -> Result<()> {
    let key = fold(q);
    if key.is_empty() {
        return Ok(());
    }
    for index in ["name_key", "name_key_rev"] {
        found.add(
            &format!(
                "SELECT customer360_id FROM customer360_profiles
                 WHERE {index} >= ?1 AND {index} < ?2 ORDER BY {index} LIMIT ?LIMIT"
            ),
            &[&key, &prefix_end(&key)],
        )?;
    }
    Ok(())
}

/// One of a customer's source records.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub key: String,
    pub system: String,
    pub source: String,
    pub record_id: String,
    /// A short description from the clean table.
    pub summary: String,
}

pub fn records(conn: &Connection, id: &str, limit: usize) -> Result<Vec<RecordRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.record_key, m.system, m.source, m.record_id,
            CASE m.system
              WHEN 'crm' THEN (SELECT coalesce(c.first_name || ' ', '') || coalesce(c.last_name, '')
                  || ' · ' || coalesce(c.email, '-') || ' · ' || coalesce(c.phone, '-')
                  || ' · ' || coalesce(c.city, '-') || ' ' || coalesce(c.country, '')
                  || ' · ' || coalesce(c.lifecycle_status, '-')
                  FROM clean_crm_customers c WHERE c.source = m.source AND c.customer_id = m.record_id)
              WHEN 'web' THEN (SELECT w.event_name || ' · ' || w.event_time
                  || coalesce(' · session ' || w.session_id, '')
                  FROM clean_web_events w WHERE w.source = m.source AND w.event_id = m.record_id)
              ELSE (SELECT t.transaction_type || ' · ' || t.order_time
                  || ' · ' || printf('%.2f', t.revenue) || coalesce(' · ' || t.product_name, '')
                  FROM clean_transactions t WHERE t.source = m.source AND t.order_id = m.record_id
                    AND m.record_key LIKE '%:' || t.transaction_type)
            END
         FROM customer360_id_map m WHERE m.customer360_id = ?1
         ORDER BY m.system, m.record_key LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![id, limit as i64], |r| {
        Ok(RecordRow {
            key: r.get(0)?,
            system: r.get(1)?,
            source: r.get(2)?,
            record_id: r.get(3)?,
            summary: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// An identifier of a customer's records: the identifiers graph, one edge
/// list per value.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifierRow {
    pub kind: String,
    pub value: String,
    pub status: String,
    /// Records of this customer carrying it / all records carrying it.
    pub here: i64,
    pub total: i64,
    /// Up to three of this customer's records carrying it.
    pub records: Vec<String>,
}

pub fn identifiers(conn: &Connection, id: &str) -> Result<Vec<IdentifierRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.kind, i.value, i.status, count(*), i.records, group_concat(l.record_key, ' ')
         FROM customer360_id_map m
         JOIN identity_links l ON l.record_key = m.record_key
         JOIN identifiers i ON i.identifier_id = l.identifier_id
         WHERE m.customer360_id = ?1
         GROUP BY i.identifier_id ORDER BY count(*) DESC, i.kind, i.value LIMIT 200",
    )?;
    let rows = stmt.query_map([id], |r| {
        let keys: String = r.get(5)?;
        Ok(IdentifierRow {
            kind: r.get(0)?,
            value: r.get(1)?,
            status: r.get(2)?,
            here: r.get(3)?,
            total: r.get(4)?,
            records: keys.split(' ').take(3).map(str::to_string).collect(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One event of a customer's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub time: String,
    pub name: String,
    pub system: String,
    pub source: String,
    pub record_id: String,
    pub revenue: Option<f64>,
    pub detail: String,
}

/// Which events a timeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimelineFilter {
    #[default]
    All,
    Web,
    Orders,
    Lifecycle,
}

impl TimelineFilter {
    pub fn label(self) -> &'static str {
        match self {
            TimelineFilter::All => "all events",
            TimelineFilter::Web => "web",
            TimelineFilter::Orders => "orders",
            TimelineFilter::Lifecycle => "lifecycle",
        }
    }

    pub fn next(self) -> TimelineFilter {
        match self {
            TimelineFilter::All => TimelineFilter::Web,
            TimelineFilter::Web => TimelineFilter::Orders,
            TimelineFilter::Orders => TimelineFilter::Lifecycle,
            TimelineFilter::Lifecycle => TimelineFilter::All,
        }
    }

    fn system(self) -> Option<&'static str> {
        match self {
            TimelineFilter::All => None,
            TimelineFilter::Web => Some("web"),
            TimelineFilter::Orders => Some("transactions"),
            TimelineFilter::Lifecycle => Some("crm"),
        }
    }
}

/// A page of a customer's events, newest first, before `before` (time,
/// seq) when given: keyset paging on the (customer, time) index.
pub fn timeline(
    conn: &Connection,
    id: &str,
    filter: TimelineFilter,
    before: Option<(&str, i64)>,
    limit: usize,
) -> Result<Vec<EventRow>> {
    let mut conds = vec!["customer360_id = ?1".to_string()];
    let mut args: Vec<Value> = vec![Value::Text(id.to_string())];
    if let Some(s) = filter.system() {
        conds.push(format!("system = ?{}", args.len() + 1));
        args.push(Value::Text(s.into()));
    } else {
        // One fact once: a web purchase whose order has its own row is
        // shown as the order.
        conds.push(
            "NOT (system = 'web' AND event_name = 'purchase' AND order_id IS NOT NULL
                  AND EXISTS (SELECT 1 FROM customer360_events o
                              WHERE o.customer360_id = ?1 AND o.system = 'transactions'
                                AND o.order_id = customer360_events.order_id))"
                .into(),
        );
    }
    if let Some((t, seq)) = before {
        let (a, b) = (args.len() + 1, args.len() + 2);
        conds.push(format!(
            "(event_time < ?{a} OR (event_time = ?{a} AND event_seq < ?{b}))"
        ));
        args.push(Value::Text(t.to_string()));
        args.push(Value::Integer(seq));
    }
    let sql = format!(
        "SELECT event_seq, event_time, event_name, system, source, record_id, revenue,
                trim(coalesce('session ' || session_id || ' ', '') || coalesce('order ' || order_id || ' ', '')
                     || coalesce('product ' || product_id || ' ', '') || coalesce(category, '')
                     || CASE WHEN anonymous = 1 THEN ' (anonymous)' ELSE '' END)
         FROM customer360_events INDEXED BY events_by_customer
         WHERE {} ORDER BY event_time DESC, event_seq DESC LIMIT {limit}",
        conds.join(" AND ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok(EventRow {
            seq: r.get(0)?,
            time: r.get(1)?,
            name: r.get(2)?,
            system: r.get(3)?,
            source: r.get(4)?,
            record_id: r.get(5)?,
            revenue: r.get(6)?,
            detail: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Lifecycle statuses present, most common first (for the list filter).
pub fn lifecycle_statuses(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT lifecycle_status FROM customer360_profiles INDEXED BY profiles_by_lifecycle
         WHERE lifecycle_status IS NOT NULL ORDER BY 1",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// "first seen … · last seen … · last activity … (N days ago, as of …)",
/// or "no activity yet" for a profile without any.
fn activity_line(fields: &[(String, String)]) -> String {
    let get = |name: &str| -> &str {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let t = |name: &str| {
        let v = get(name);
        (!v.is_empty()).then(|| crate::read::display::time(v))
    };
    let seen = format!(
        "first seen {} · last seen {}",
        t("first_seen").unwrap_or_else(|| "—".into()),
        t("last_seen").unwrap_or_else(|| "—".into())
    );
    match (t("last_activity_at"), get("days_since_last_activity")) {
        (None, _) => format!("{seen} · no activity yet"),
        (Some(at), "") => format!("{seen} · last activity {at}"),
        (Some(at), days) => format!(
            "{seen} · last activity {at} ({days} days ago, as of {})",
            t("as_of").unwrap_or_else(|| "—".into())
        ),
    }
}

/// The whole 360 view of a customer as text: golden record with
/// provenance, metrics, records, identifiers, the latest events, and why
/// the records are one customer.
pub fn view_text(conn: &Connection, id: &str) -> Result<String> {
    use std::fmt::Write as _;
    let Some(fields) = crate::pipeline::unify::profile_fields(conn, id)? else {
        anyhow::bail!("no profile {id:?}: run the unify step (`c360 run --step unify`)");
    };
    let get = |name: &str| -> &str {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let mut out = String::new();
    let anonymous = get("anonymous") == "1";
    writeln!(
        out,
        "{id}{}",
        if anonymous {
            "  (anonymous visitor)"
        } else {
            ""
        }
    )?;
    writeln!(out, "\nGolden record (value · from record · rule)")?;
    for (label, field, base) in GOLDEN_FIELDS {
        let v = get(field);
        if v.is_empty() {
            writeln!(out, "  {label:<10} -")?;
        } else {
            writeln!(
                out,
                "  {label:<10} {v}  · {} · {}",
                get(&format!("{base}_from")),
                get(&format!("{base}_rule"))
            )?;
        }
    }
    let history: serde_json::Value =
        serde_json::from_str(get("lifecycle_history")).unwrap_or_default();
    if let Some(h) = history.as_array().filter(|h| !h.is_empty()) {
        let steps: Vec<String> = h
            .iter()
            .map(|s| {
                format!(
                    "{} ({})",
                    s["status"].as_str().unwrap_or(""),
                    crate::read::display::date(s["at"].as_str().unwrap_or(""))
                )
            })
            .collect();
        writeln!(out, "  history    {}", steps.join(" → "))?;
    }
    writeln!(out, "\nActivity")?;
    writeln!(out, "  {}", activity_line(&fields))?;
    let or_none = |s: &str| {
        if s.is_empty() {
            "—".to_string()
        } else {
            s.to_string()
        }
    };
    let money = |name: &str| {
        get(name)
            .parse::<f64>()
            .map_or("—".to_string(), |x| format!("{x:.2}"))
    };
    let when = |name: &str| {
        let v = get(name);
        if v.is_empty() {
            "—".to_string()
        } else {
            crate::read::display::time(v)
        }
    };
    writeln!(
        out,
        "  orders {} · refunds {} · revenue {} · AOV {} · first order {} · last order {} · favourite category {}",
        or_none(get("orders")),
        or_none(get("refunds")),
        money("revenue"),
        money("aov"),
        when("first_order_at"),
        when("last_order_at"),
        or_none(get("favourite_category"))
    )?;
    writeln!(
        out,
        "  last 30 / 90 days: sessions {} / {} · page views {} / {} · key events {} / {}",
        or_none(get("sessions_30d")),
        or_none(get("sessions_90d")),
        or_none(get("page_views_30d")),
        or_none(get("page_views_90d")),
        or_none(get("key_events_30d")),
        or_none(get("key_events_90d"))
    )?;
    let rfm = if get("rfm_segment").is_empty() {
        "RFM — (no orders)".to_string()
    } else {
        format!(
            "RFM {} (recency {}, frequency {}, monetary {})",
            get("rfm_segment"),
            or_none(get("rfm_recency")),
            or_none(get("rfm_frequency")),
            or_none(get("rfm_monetary"))
        )
    };
    writeln!(
        out,
        "  {rfm} · churn risk {}{}",
        or_none(get("churn_risk")),
        if get("churn_signals").is_empty() {
            String::new()
        } else {
            format!(": {}", get("churn_signals"))
        }
    )?;
    writeln!(
        out,
        "  records: {} CRM ({}), {} web events, {} orders and refunds · {}",
        or_none(get("crm_records")),
        or_none(get("crm_ids")),
        or_none(get("web_events")),
        or_none(get("transactions")),
        crate::read::display::identifiers(get("identifiers"))
    )?;
    writeln!(out, "\nSource records")?;
    let recs = records(conn, id, 51)?;
    for r in recs.iter().take(50) {
        writeln!(out, "  {:<40} {}", r.key, r.summary)?;
    }
    if recs.len() > 50 {
        writeln!(out, "  … more in the timeline")?;
    }
    writeln!(
        out,
        "\nIdentifiers (value → this customer's records carrying it)"
    )?;
    for i in identifiers(conn, id)? {
        writeln!(
            out,
            "  {:<12} {:<34} {:<10} {} of {} records: {}{}",
            i.kind,
            i.value,
            i.status,
            i.here,
            i.total,
            i.records.join(", "),
            if i.here as usize > i.records.len() {
                ", …"
            } else {
                ""
            }
        )?;
    }
    writeln!(out, "\nLatest events")?;
    for e in timeline(conn, id, TimelineFilter::All, None, 20)? {
        writeln!(
            out,
            "  {}  {:<18} {:<12} {}{}",
            crate::read::display::time(&e.time),
            e.name,
            e.system,
            e.detail,
            e.revenue.map_or(String::new(), |r| format!(" · {r:.2}"))
        )?;
    }
    writeln!(out, "\nWhy these records are one customer")?;
    let why = crate::read::explain::explain(conn, id)?;
    for line in why.lines().skip_while(|l| !l.starts_with("Why")).skip(1) {
        writeln!(out, "{line}")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calling_codes_of_international_numbers() {
        assert_eq!(calling_code("12067951850"), Some("1"));
        assert_eq!(calling_code("4915112345678"), Some("49"));
        assert_eq!(calling_code("353861234567"), Some("353"));
        assert_eq!(calling_code("79161234567"), Some("7"));
        assert_eq!(calling_code("0151"), None);
        assert_eq!(calling_code("4"), None);
        assert_eq!(calling_code("4x1"), None);
    }

    /// No query of this module scans the profiles or events table.
    #[test]
    fn every_query_walks_an_index() {
        let conn = crate::store::open_in_memory().unwrap();
        let plans = [
            format!(
                "SELECT {ROW_COLUMNS} FROM customer360_profiles INDEXED BY profiles_by_revenue
                 WHERE revenue IS NOT NULL AND anonymous = 0 ORDER BY revenue DESC, customer360_id DESC LIMIT 50"
            ),
            "SELECT customer360_id FROM customer360_profiles WHERE email >= 'a' AND email < 'b' LIMIT 5".into(),
            "SELECT customer360_id FROM customer360_profiles WHERE name_key >= 'a' AND name_key < 'b' LIMIT 5".into(),
            "SELECT customer360_id FROM customer360_profiles WHERE phone >= '+1' AND phone < '+2' LIMIT 5".into(),
            "SELECT DISTINCT customer360_id FROM customer360_id_map WHERE record_id = 'x'".into(),
            format!(
                "SELECT customer360_id FROM customer360_profiles INDEXED BY profiles_by_phone_digits
                 WHERE {PHONE_DIGITS} >= '1206' AND {PHONE_DIGITS} < '1207' ORDER BY {PHONE_DIGITS} LIMIT 5"
            ),
            "SELECT phone FROM customer360_profiles INDEXED BY profiles_by_phone
             WHERE phone > '+1:' AND phone < '+:' ORDER BY phone LIMIT 1".into(),
            "SELECT event_seq FROM customer360_events INDEXED BY events_by_customer
             WHERE customer360_id = 'x' ORDER BY event_time DESC, event_seq DESC LIMIT 50".into(),
        ];
        for sql in plans {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let full_scan = plan.iter().any(|l| {
                l.starts_with("SCAN customer360_") && !l.contains(" USING ")
                    || l.contains("TEMP B-TREE") && l.contains("ORDER BY")
            });
            assert!(!full_scan, "{sql}\n{}", plan.join(" | "));
        }
    }
}
