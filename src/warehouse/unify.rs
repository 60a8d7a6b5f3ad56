//! Unify as SQL: `customer360_events` and `customer360_profiles` from the
//! clean tables and `customer360_id_map`, with the same columns, in the same
//! order, as the local tables, and the rules of the workspace's
//! `rules/survivorship.toml` and `rules/profiles.toml` compiled in.
//!
//! - `50_unify_events.sql`: every clean web event, every order, refund and
//!   void, and every CRM lifecycle status with a time, each with its
//!   record's `customer360_id`; the script stops when the counts do not
//!   reconcile with the clean tables (the identity scripts are out of date),
//!   as the local step refuses.
//! - `51_unify_profiles.sql`: one profile per `customer360_id` of the map:
//!   golden values chosen by the survivorship rules, each with the record it
//!   came from and the rule that chose it; activity and order figures over
//!   the events; RFM quintiles among buyers; the churn signals.
//!
//! Where the SQL differs from the local step:
//! - `event_seq` numbers the events as a full local run inserts them (web
//!   events, then transactions, by batch and row; CRM lifecycle events by
//!   batch and row, latest first). After incremental local runs (new
//!   batches appended, steward decisions) the local numbers differ; only
//!   the tie-break of order e-mails in survivorship depends on them.
//! - `customer360_events.properties` of orders: JSON written by string
//!   concatenation in the local key order. `unit_price` as SQLite prints a
//!   double on DuckDB and BigQuery (17 significant digits unless fewer
//!   read back, by SQLite's test); Spark and Snowflake have no C `printf`
//!   and print the shortest text that reads back (Spark in exponent form
//!   from 10^7), so a price such as `85.735250900000011` is written
//!   `85.73525090000001` there: the same number, other text.
//! - `product_id`, `currency` and `revenue` of web events: the JSON value
//!   at the path as text (numbers print as SQLite prints them); a JSON
//!   `true` / `false` is that text (SQLite: 1 / 0), and a revenue that is
//!   not a number (a string, `true`) is NULL where SQLite keeps the text
//!   or 1.
//! - Trimming (survivorship's "empty" test, `most_frequent`'s comparison,
//!   e-mail identifiers) removes spaces only, not every Unicode space; clean
//!   values are already tidied, so this only matters for raw exotic spaces.
//! - Lower case and character counts (`longest`) are the engine's Unicode
//!   functions rather than Rust's.
//! - `name_key` / `name_key_rev`: accents stripped by DuckDB's
//!   `strip_accents`, BigQuery's NFD normalisation, and on Spark and
//!   Snowflake (which have no Unicode normalisation) a table of the Latin
//!   letters NFD decomposes, so other scripts' accents stay there; runs of
//!   characters other than letters and digits (`\p{L}`, `\p{N}`) become
//!   one space, where the local fold uses Rust's alphanumeric test
//!   (Snowflake, whose regular expressions have no Unicode classes: runs
//!   of ASCII spaces and punctuation, so a symbol such as `©` or a curly
//!   apostrophe stays in the key there).
//! - `churn_signals`: values printed with two decimals by the engine
//!   (`%.2f`; Snowflake: a cast to `NUMBER(38, 2)`). Spark's Java formatter
//!   and Snowflake's cast round a value whose shortest text ends exactly
//!   halfway (`0.125`) up, where Rust rounds the binary value (`0.12`).
//! - `row_hash`: a hash of the row's columns by the engine's own function
//!   (DuckDB `hash`, Spark `xxhash64`, BigQuery `FARM_FINGERPRINT`,
//!   Snowflake `HASH`), not the local SipHash of the values: it changes
//!   when the content changes, but its values are not the local ones.
//! - `updated_at`: when the script ran (the local step: when the row was
//!   last rewritten).
//! - Times that do not read as `YYYY-MM-DD?HH:MM:SS` are skipped as the
//!   local step skips them, but the local reader accepts any digits in
//!   those places (a month 13 included).

use super::{Dialect, Script};
use crate::pipeline::unify::{GOLDEN, Metric, Rule, Test, UnifyRules, load_rules};
use crate::workspace::Workspace;
use anyhow::Result;

/// The columns of `customer360_events`, in table order.
pub const EVENT_COLUMNS: [&str; 19] = [
    "event_seq",
    "customer360_id",
    "event_time",
    "event_name",
    "system",
    "source",
    "record_id",
    "record_key",
    "session_id",
    "device_id",
    "cookie_id",
    "user_id",
    "order_id",
    "product_id",
    "category",
    "revenue",
    "currency",
    "anonymous",
    "properties",
];

/// The unify scripts, with the workspace's survivorship and profile rules.
pub fn scripts(d: Dialect, ws: &Workspace) -> Result<Vec<Script>> {
    let rules = load_rules(ws)?;
    Ok(vec![events_script(d), profiles_script(d, &rules)])
}

// ---------------------------------------------------------------- helpers

const DAY_MS: i64 = 86_400_000;

fn text_null(d: Dialect) -> String {
    format!("CAST(NULL AS {})", d.text())
}

fn as_text(d: Dialect, x: &str) -> String {
    format!("CAST({x} AS {})", d.text())
}

fn as_double(d: Dialect, x: &str) -> String {
    format!("CAST({x} AS {})", d.double())
}

fn as_int(d: Dialect, x: &str) -> String {
    format!("CAST({x} AS {})", d.int())
}

/// A text as a double, NULL when it does not read as one.
fn try_double(d: Dialect, x: &str) -> String {
    match d {
        Dialect::BigQuery => format!("SAFE_CAST({x} AS FLOAT64)"),
        _ => format!("TRY_CAST({x} AS {})", d.double()),
    }
}

/// Milliseconds since the epoch of a naive UTC timestamp.
fn epoch_ms(d: Dialect, ts: &str) -> String {
    match d {
        Dialect::DuckDb => format!("epoch_ms({ts})"),
        Dialect::Spark => format!("unix_millis({ts})"),
        Dialect::BigQuery => format!("UNIX_MILLIS(TIMESTAMP({ts}))"),
        Dialect::Snowflake => format!("DATE_PART(epoch_millisecond, {ts})"),
    }
}

/// An ISO UTC text as milliseconds since the epoch, to the second (as the
/// local step reads times), NULL when it does not read as a time.
fn ms_of(d: Dialect, iso: &str) -> String {
    let naive = format!("substr({iso}, 1, 10) || ' ' || substr({iso}, 12, 8)");
    epoch_ms(d, &d.try_strptime(&naive, "%Y-%m-%d %H:%M:%S"))
}

/// Milliseconds since the epoch as ISO UTC text with milliseconds.
fn iso_of(d: Dialect, ms: &str) -> String {
    d.iso_utc(&d.from_epoch_ms(ms))
}

/// Now, as ISO UTC text to the second (as the local step writes it).
fn now_iso(d: Dialect) -> String {
    let now = match d {
        Dialect::DuckDb => "timezone('UTC', current_timestamp)",
        Dialect::Spark => "current_timestamp()",
        Dialect::BigQuery => "CURRENT_DATETIME('UTC')",
        Dialect::Snowflake => "SYSDATE()",
    };
    format!("(substr({}, 1, 19) || 'Z')", d.iso_utc(now))
}

/// The smaller of two values, either of which may be NULL.
fn min_of(a: &str, b: &str) -> String {
    format!(
        "CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL THEN {a} WHEN {a} < {b} THEN {a} ELSE {b} END"
    )
}

/// `x IN (list)` (FALSE for an empty list).
fn in_list(d: Dialect, x: &str, list: &[String]) -> String {
    if list.is_empty() {
        return "FALSE".into();
    }
    let items: Vec<String> = list.iter().map(|v| d.lit(v)).collect();
    format!("{x} IN ({})", items.join(", "))
}

/// A JSON value of a text (`null` when NULL).
fn json_text_value(d: Dialect, x: &str) -> String {
    format!(
        "CASE WHEN {x} IS NULL THEN 'null' ELSE {} END",
        d.json_string(x)
    )
}

/// A JSON value of an integer.
fn json_int_value(d: Dialect, x: &str) -> String {
    format!(
        "CASE WHEN {x} IS NULL THEN 'null' ELSE {} END",
        as_text(d, x)
    )
}

/// A JSON value of a double, as SQLite's `json_object` writes one: 17
/// significant digits (`85.735250900000011`), unless the 15th and 16th are
/// `99` or the 14th to 16th `000` and at most 14 digits read back (then
/// the shortest text that does: `19.99`, not `19.989999999999998`); a
/// whole number keeps `.0` (`20.0`, `1.0e+20`). Spark and Snowflake have no
/// C `printf`: the shortest text, as the engine prints it.
fn json_real_value(d: Dialect, x: &str) -> String {
    let shortest = as_text(d, x);
    let printf = |f: &str, v: &str| match d {
        Dialect::BigQuery => format!("FORMAT('{f}', {v})"),
        _ => format!("printf('{f}', {v})"),
    };
    let text = match d {
        Dialect::DuckDb | Dialect::BigQuery => {
            // The 17 significant digits, at fixed places of `d.dddde+XX`.
            let e = printf("%.16e", &format!("abs({x})"));
            let digits = format!("(substr({e}, 1, 1) || substr({e}, 3, 16))");
            let short_reads_back = format!("{} = {x}", as_double(d, &printf("%.14g", x)));
            format!(
                "CASE WHEN (substr({digits}, 15, 2) = '99' OR substr({digits}, 14, 3) = '000') AND {short_reads_back} THEN {shortest} ELSE {} END",
                printf("%.17g", x)
            )
        }
        Dialect::Spark | Dialect::Snowflake => shortest,
    };
    let fixed = d.re_replace(
        &text,
        "^(-?[0-9]+)([eE]|$)",
        &format!("{}.0{}", d.group_ref(1), d.group_ref(2)),
    );
    format!("CASE WHEN {x} IS NULL THEN 'null' ELSE {fixed} END")
}

/// A JSON object from (key, JSON value expression) pairs, keys in order.
fn json_object(d: Dialect, fields: &[(&str, String)]) -> String {
    let mut parts = Vec::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        let open = if i == 0 { "{" } else { "," };
        parts.push(d.lit(&format!("{open}\"{k}\":")));
        parts.push(v.clone());
    }
    parts.push(d.lit("}"));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    d.concat(&refs)
}

/// A number with two decimals (`75.00`).
fn fixed2(d: Dialect, x: &str) -> String {
    match d {
        Dialect::DuckDb => format!("printf('%.2f', {x})"),
        Dialect::Spark => format!("format_string('%.2f', {x})"),
        Dialect::BigQuery => format!("FORMAT('%.2f', {x})"),
        Dialect::Snowflake => format!("CAST(CAST({x} AS NUMBER(38, 2)) AS VARCHAR)"),
    }
}

/// The identity step's fold of a name: accents off (NFD, combining marks
/// dropped), lower case, runs of other characters than letters and digits
/// to one space, trimmed.
fn fold(d: Dialect, x: &str) -> String {
    let plain = match d {
        Dialect::DuckDb => format!("strip_accents({x})"),
        Dialect::BigQuery => format!("REGEXP_REPLACE(NORMALIZE({x}, NFD), r'\\p{{M}}', '')"),
        // No Unicode normalisation: the Latin letters NFD decomposes.
        Dialect::Spark | Dialect::Snowflake => format!(
            "translate({x}, {}, {})",
            d.lit(NFD_ACCENTED),
            d.lit(NFD_BASE)
        ),
    };
    // Snowflake documents POSIX classes, not Unicode properties: ASCII
    // spaces and punctuation separate words there.
    let other = match d {
        Dialect::Snowflake => "[[:space:][:punct:]]+",
        _ => r"[^\p{L}\p{N}]+",
    };
    format!(
        "trim({})",
        d.re_replace(&format!("lower({plain})"), other, " ")
    )
}

/// Latin letters that NFD splits into a base letter and accents (not ø
/// or ł, which it keeps), and their base letters.
const NFD_ACCENTED: &str = "àáâãäåāăąçćčďèéêëēėęěìíîïīįñńňòóôõöōőŕřśšşťùúûüūůűųýÿźžżÀÁÂÃÄÅĀĂĄÇĆČĎÈÉÊËĒĖĘĚÌÍÎÏĪĮÑŃŇÒÓÔÕÖŌŐŔŘŚŠŞŤÙÚÛÜŪŮŰŲÝŸŹŽŻ";
const NFD_BASE: &str = "aaaaaaaaacccdeeeeeeeeiiiiiinnnooooooorrssstuuuuuuuuyyzzzAAAAAAAAACCCDEEEEEEEEIIIIIINNNOOOOOOORRSSSTUUUUUUUUYYZZZ";

/// A 64-bit hash of the values.
fn row_hash(d: Dialect, cols: &[String]) -> String {
    let list = cols.join(", ");
    match d {
        Dialect::DuckDb => format!("CAST(hash({list}) >> 1 AS BIGINT)"),
        Dialect::Spark => format!("xxhash64({list})"),
        Dialect::BigQuery => format!("FARM_FINGERPRINT(TO_JSON_STRING(STRUCT({list})))"),
        Dialect::Snowflake => format!("HASH({list})"),
    }
}

/// A double literal.
fn num(d: Dialect, x: f64) -> String {
    as_double(d, &format!("{x:?}"))
}

/// `SELECT expr AS name, ...` lines.
fn select_list(cols: &[(String, String)]) -> String {
    cols.iter()
        .map(|(name, expr)| format!("  {expr} AS {name}"))
        .collect::<Vec<_>>()
        .join(",\n")
}

// ----------------------------------------------------------------- events

fn events_script(d: Dialect) -> Script {
    let tn = text_null(d);
    let dn = format!("CAST(NULL AS {})", d.double());
    let prop = |p: &str| d.json_text("w.properties", p);
    let tx_props = json_object(
        d,
        &[
            ("product_name", json_text_value(d, "t.product_name")),
            ("quantity", json_int_value(d, "t.quantity")),
            ("unit_price", json_real_value(d, "t.unit_price")),
            ("email", json_text_value(d, "t.email")),
        ],
    );
    let crm_props = json_object(
        d,
        &[("lifecycle_status", json_text_value(d, "c.lifecycle_status"))],
    );
    let select = format!(
        "WITH ordered AS (
  SELECT DISTINCT order_id FROM clean_transactions
), ev AS (
  SELECT 1 AS part, w.batch_id AS k1, w.row_num AS k2,
    m.customer360_id, w.event_time, w.event_name, 'web' AS system, w.source,
    w.event_id AS record_id, m.record_key, w.session_id, w.device_id, w.cookie_id, w.user_id,
    w.order_id, {product} AS product_id, {tn} AS category,
    CASE WHEN o.order_id IS NOT NULL THEN {dn} ELSE {revenue} END AS revenue,
    {currency} AS currency, CASE WHEN w.user_id IS NULL THEN 1 ELSE 0 END AS anonymous,
    w.properties
  FROM clean_web_events w
  JOIN customer360_id_map m ON m.record_key = 'web:' || w.source || ':' || w.event_id
  LEFT JOIN ordered o ON o.order_id = w.order_id
  UNION ALL
  SELECT 2, t.batch_id, t.row_num,
    m.customer360_id, t.order_time, t.transaction_type, 'transactions', t.source,
    t.order_id, m.record_key, {tn}, {tn}, {tn}, t.customer_id,
    t.order_id, t.product_id, t.category, {rev_t}, t.currency, 0,
    {tx_props}
  FROM clean_transactions t
  JOIN customer360_id_map m
    ON m.record_key = 'transactions:' || t.source || ':' || t.order_id || ':' || t.transaction_type
  UNION ALL
  SELECT 3, -c.batch_id, -c.row_num,
    m.customer360_id, COALESCE(c.updated_at, c.created_at), 'lifecycle:' || c.lifecycle_status, 'crm', c.source,
    c.customer_id, m.record_key, {tn}, {tn}, {tn}, c.customer_id,
    {tn}, {tn}, {tn}, {dn}, {tn}, 0,
    {crm_props}
  FROM clean_crm_customers c
  JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id
  WHERE c.lifecycle_status IS NOT NULL AND COALESCE(c.updated_at, c.created_at) IS NOT NULL
)
SELECT {seq} AS event_seq, customer360_id, event_time, event_name, system, source, record_id,
  record_key, session_id, device_id, cookie_id, user_id, order_id, product_id, category,
  revenue, currency, anonymous, properties
FROM ev",
        product = as_text(d, &prop("$.product_id")),
        revenue = try_double(d, &prop("$.revenue")),
        currency = as_text(d, &prop("$.currency")),
        rev_t = as_double(d, "t.revenue"),
        seq = as_int(d, "row_number() OVER (ORDER BY part, k1, k2, record_key)"),
    );
    let check = d.fail_if(
        "(SELECT count(*) FROM customer360_events WHERE system = 'web') <> (SELECT count(*) FROM clean_web_events)
   OR (SELECT count(*) FROM customer360_events WHERE system = 'transactions') <> (SELECT count(*) FROM clean_transactions)
   OR (SELECT count(*) FROM clean_crm_customers) > (SELECT count(*) FROM customer360_id_map WHERE system = 'crm')",
        "customer360_events: clean web events, transactions or CRM records without a customer360_id: the identity scripts are out of date, run them first",
    );
    Script::new(
        "50_unify_events.sql",
        "unify",
        "clean tables + customer360_id_map → customer360_events: web events, orders and refunds, CRM lifecycle changes, each with its customer",
        format!("{}{check};\n", d.create_as("customer360_events", &select)),
    )
}

// --------------------------------------------------------------- profiles

/// The ORDER BY of a survivorship rule among candidates (`pr` the source
/// priority rank, already first).
fn rule_order(rule: &Rule) -> String {
    const RECENT: &str = "t DESC NULLS LAST, rec_sort ASC";
    match rule {
        Rule::MostRecent => RECENT.to_string(),
        Rule::FirstNonEmpty => "t ASC NULLS FIRST, rec_sort ASC".to_string(),
        Rule::Longest => format!("length(trim(value)) DESC, {RECENT}"),
        Rule::MostFrequent => format!("freq DESC, {RECENT}"),
        Rule::SourcePriority(_, then) => rule_order(then),
    }
}

fn rule_name(rule: &Rule) -> &'static str {
    match rule {
        Rule::SourcePriority(..) => "source_priority",
        Rule::MostRecent => "most_recent",
        Rule::MostFrequent => "most_frequent",
        Rule::Longest => "longest",
        Rule::FirstNonEmpty => "first_non_empty",
    }
}

/// The rule text of the winner, as the local step writes it.
fn rule_text(d: Dialect, rule: &Rule) -> String {
    match rule {
        Rule::MostFrequent => d.concat(&[
            "'most_frequent ('",
            &as_text(d, "freq"),
            "' of '",
            &as_text(d, "pool_n"),
            "' records)'",
        ]),
        Rule::SourcePriority(sources, then) => {
            let inner = rule_name(then);
            let arms: Vec<String> = sources
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "WHEN {i} THEN {}",
                        d.lit(&format!("source_priority ({s}, then {inner})"))
                    )
                })
                .collect();
            format!(
                "CASE pr {} ELSE {} END",
                arms.join(" "),
                d.lit(&format!("source_priority (none listed, then {inner})"))
            )
        }
        other => d.lit(rule_name(other)),
    }
}

/// The source priority rank of a candidate: the first listed source (or
/// system) it belongs to, the number of sources when none.
fn priority(d: Dialect, rule: &Rule) -> String {
    let Rule::SourcePriority(sources, _) = rule else {
        return "0".into();
    };
    let arms: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| format!("WHEN source = {l} OR system = {l} THEN {i}", l = d.lit(s)))
        .collect();
    format!("CASE {} ELSE {} END", arms.join(" "), sources.len())
}

/// The CTEs choosing golden field `fi` (`g<fi>`: customer360_id, value,
/// record, rule).
fn golden_ctes(d: Dialect, fi: usize, rule: &Rule) -> String {
    format!(
        "g{fi}a AS (
  SELECT p.*, {pr} AS pr FROM pool p WHERE field = {fi}
), g{fi}b AS (
  SELECT a.*, count(*) OVER (PARTITION BY customer360_id, pr) AS pool_n,
    count(*) OVER (PARTITION BY customer360_id, pr, norm) AS freq
  FROM g{fi}a a
), g{fi} AS (
  SELECT customer360_id, value, record, rule FROM (
    SELECT b.*, {text} AS rule,
      row_number() OVER (PARTITION BY customer360_id ORDER BY pr, {order}) AS nth
    FROM g{fi}b b
  ) x WHERE nth = 1
)",
        pr = priority(d, rule),
        text = rule_text(d, rule),
        order = rule_order(rule),
    )
}

/// A metric of rules/profiles.toml over the columns of `b` (a double, NULL
/// when it has no value).
fn metric(d: Dialect, m: &Metric) -> String {
    let day = as_double(d, &DAY_MS.to_string());
    match m {
        Metric::DaysSinceLastActivity => as_double(d, "b.days_since_last_activity"),
        Metric::DaysSinceLastOrder => {
            let q = format!("{} / {day}", as_double(d, "k.now_ms - b.last_order_ms"));
            // Whole days, toward zero (a fixed "now" may be before it).
            as_double(
                d,
                &format!(
                    "CASE WHEN b.last_order_ms IS NULL THEN NULL WHEN {q} >= 0 THEN floor({q}) ELSE ceil({q}) END"
                ),
            )
        }
        Metric::ActivityDrop => format!(
            "CASE WHEN b.events_31_90 > 0 THEN LEAST({one}, GREATEST({zero}, {one} - {e30} / ({e90} / {two}))) END",
            one = num(d, 1.0),
            zero = num(d, 0.0),
            two = num(d, 2.0),
            e30 = as_double(d, "b.events_30"),
            e90 = as_double(d, "b.events_31_90"),
        ),
        Metric::RefundShare => format!(
            "CASE WHEN b.orders > 0 THEN {} / {} END",
            as_double(d, "b.refunds"),
            as_double(d, "b.orders")
        ),
        Metric::Sessions30d => as_double(d, "COALESCE(b.sessions_30d, 0)"),
        Metric::Orders => as_double(d, "COALESCE(b.orders, 0)"),
        Metric::OrderGapRatio => format!(
            "CASE WHEN b.orders >= 2 AND b.last_order_ms > b.first_order_ms THEN {} / ({} / {}) END",
            as_double(d, "k.now_ms - b.last_order_ms"),
            as_double(d, "b.last_order_ms - b.first_order_ms"),
            as_double(d, "b.orders - 1"),
        ),
    }
}

/// (churn_risk, churn_signals) expressions over `b`, `k` and the golden
/// lifecycle status `g5.value`.
fn churn(d: Dialect, rules: &UnifyRules) -> (String, String) {
    let mut weights = vec![num(d, 0.0)];
    let mut texts = Vec::new();
    for s in &rules.churn {
        let (fired, why) = match &s.test {
            Test::Above(m, x) | Test::Below(m, x) => {
                let op = if matches!(s.test, Test::Above(..)) {
                    ">"
                } else {
                    "<"
                };
                let v = metric(d, m);
                (
                    format!("{v} {op} {}", num(d, *x)),
                    d.concat(&[
                        &d.lit(&format!("{} (", s.name)),
                        &fixed2(d, &v),
                        &d.lit(&format!(" {op} {x})")),
                    ]),
                )
            }
            Test::LifecycleIn(list) => (
                in_list(d, "g5.value", list),
                d.concat(&[&d.lit(&format!("{} (", s.name)), "g5.value", "')'"]),
            ),
        };
        weights.push(format!(
            "CASE WHEN {fired} THEN {} ELSE {} END",
            num(d, s.weight),
            num(d, 0.0)
        ));
        texts.push(format!(
            "CASE WHEN {fired} THEN replace(replace({why}, '.00 ', ' '), '.00)', ')') END"
        ));
    }
    let risk = format!(
        "round(LEAST({}, {}) * 100) / 100",
        weights.join(" + "),
        num(d, 1.0)
    );
    let signals = if texts.is_empty() {
        "''".to_string()
    } else {
        format!("COALESCE({}, '')", d.join_non_null("; ", &texts))
    };
    (risk, signals)
}

/// The columns of `customer360_profiles` (all but row_hash and updated_at)
/// as (name, expression over the final join).
fn profile_select(d: Dialect, rules: &UnifyRules) -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> = Vec::new();
    let mut push = |name: &str, expr: String| cols.push((name.to_string(), expr));
    push("customer360_id", "c.customer360_id".into());
    push(
        "anonymous",
        "CASE WHEN ca.customer360_id IS NULL AND COALESCE(b.known, 0) = 0 AND ec.customer360_id IS NULL THEN 1 ELSE 0 END".into(),
    );
    for (fi, g) in GOLDEN.iter().enumerate() {
        let base = if *g == "lifecycle_status" {
            "lifecycle"
        } else {
            g
        };
        push(g, format!("g{fi}.value"));
        push(&format!("{base}_from"), format!("g{fi}.record"));
        push(&format!("{base}_rule"), format!("g{fi}.rule"));
    }
    push("lifecycle_history", "COALESCE(lh.history, '[]')".into());
    push(
        "first_seen",
        iso_of(d, &min_of("b.first_ms", "ca.created_ms")),
    );
    push("last_seen", iso_of(d, "b.last_ms"));
    push("crm_ids", "COALESCE(ci.crm_ids, '')".into());
    push("crm_records", as_int(d, "COALESCE(ca.records, 0)"));
    push("web_events", as_int(d, "COALESCE(b.web, 0)"));
    push("transactions", as_int(d, "COALESCE(b.transactions, 0)"));
    push("identifiers", "COALESCE(ij.identifiers, '{}')".into());
    push("orders", as_int(d, "COALESCE(b.orders, 0)"));
    push("refunds", as_int(d, "COALESCE(b.refunds, 0)"));
    push("revenue", "COALESCE(b.revenue, 0.0)".into());
    push("aov", "b.aov".into());
    push("first_order_at", iso_of(d, "b.first_order_ms"));
    push("last_order_at", iso_of(d, "b.last_order_ms"));
    push("favourite_category", "fc.category".into());
    for n in [
        "sessions_30d",
        "sessions_90d",
        "page_views_30d",
        "page_views_90d",
        "key_events_30d",
        "key_events_90d",
    ] {
        push(n, as_int(d, &format!("COALESCE(b.{n}, 0)")));
    }
    push("last_activity_at", iso_of(d, "b.last_activity_ms"));
    push(
        "days_since_last_activity",
        "b.days_since_last_activity".into(),
    );
    push("rfm_recency", "r.r".into());
    push("rfm_frequency", "r.f".into());
    push("rfm_monetary", "r.m".into());
    push(
        "rfm_segment",
        d.concat(&[&as_text(d, "r.r"), &as_text(d, "r.f"), &as_text(d, "r.m")]),
    );
    let (risk, signals) = churn(d, rules);
    push("churn_risk", risk);
    push("churn_signals", signals);
    push("as_of", "k.as_of".into());
    let (f, l) = (
        format!("COALESCE({}, '')", fold(d, "nr.first_name")),
        format!("COALESCE({}, '')", fold(d, "nr.last_name")),
    );
    let full = fold(d, "g0.value");
    push(
        "name_key",
        format!(
            "CASE WHEN nr.record_key IS NULL THEN NULL WHEN {f} = '' AND {l} = '' THEN {full} ELSE trim({f} || ' ' || {l}) END"
        ),
    );
    push(
        "name_key_rev",
        format!(
            "CASE WHEN nr.record_key IS NULL THEN NULL WHEN {f} = '' AND {l} = '' THEN {full} ELSE trim({l} || ' ' || {f}) END"
        ),
    );
    cols
}

/// The column names of `customer360_profiles`, in table order.
pub fn profile_columns() -> Vec<String> {
    let rules =
        UnifyRules::parse("", "survivorship.toml", "", "profiles.toml").expect("empty rules parse");
    let mut names: Vec<String> = profile_select(Dialect::DuckDb, &rules)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.push("row_hash".into());
    names.push("updated_at".into());
    names
}

fn profiles_script(d: Dialect, rules: &UnifyRules) -> Script {
    let clock = match &rules.now {
        Some((ms, iso)) => format!("SELECT {} AS as_of, {} AS now_ms", d.lit(iso), as_int(d, &ms.to_string())),
        None => format!(
            "SELECT a.as_of, {} AS now_ms FROM (
    SELECT COALESCE((SELECT max(t) FROM (SELECT max(event_time) AS t FROM clean_web_events
                                         UNION ALL SELECT max(order_time) AS t FROM clean_transactions) x), {now}) AS as_of
  ) a",
            ms_of(d, "a.as_of"),
            now = now_iso(d),
        ),
    };
    let nn = |x: &str| format!("NULLIF({x}, '')");
    let (first, last, full) = (nn("c.first_name"), nn("c.last_name"), nn("c.full_name"));
    let email = d.json_text("e.properties", "$.email");
    let seq_key = d.concat(&[
        "'~event '",
        &format!("lpad({}, 20, '0')", as_text(d, "e.event_seq")),
    ]);
    let in30 = format!("age BETWEEN 0 AND {}", 30 * DAY_MS);
    let in90 = format!("age BETWEEN 0 AND {}", 90 * DAY_MS);
    let page_view = in_list(d, "event_name", &rules.page_views);
    let key_event = in_list(d, "event_name", &rules.key_events);
    let json_pair = |k: &str, v: &str| d.concat(&[&d.lit(&format!("\"{k}\":")), v]);
    let history_item = d.concat(&[
        "'{'",
        &json_pair("at", &d.json_string(&iso_of(d, "t"))),
        "','",
        &json_pair("record", &d.json_string("record_key")),
        "','",
        &json_pair("status", &d.json_string("status")),
        "'}'",
    ]);
    let id_item = d.concat(&["'\"'", "kind", "'\":'", &as_text(d, "n")]);
    let goldens: Vec<String> = rules
        .fields
        .iter()
        .enumerate()
        .map(|(fi, r)| golden_ctes(d, fi, r))
        .collect();
    let cols = profile_select(d, rules);
    let names: Vec<String> = cols.iter().map(|(n, _)| n.clone()).collect();
    // Whole days since the last web event or order (none before "now").
    let days = format!(
        "CASE WHEN a.last_activity_ms IS NULL THEN NULL ELSE {} END",
        as_int(
            d,
            &format!(
                "floor({} / {})",
                as_double(
                    d,
                    "CASE WHEN k.now_ms > a.last_activity_ms THEN k.now_ms - a.last_activity_ms ELSE 0 END"
                ),
                as_double(d, &DAY_MS.to_string())
            )
        )
    );
    let micros =
        "CASE WHEN e.revenue IS NULL THEN 0 ELSE CAST(round(e.revenue * 1000000) AS BIGINT) END";
    let select = format!(
        "WITH clock AS (
  {clock}
), customers AS (
  SELECT DISTINCT customer360_id FROM customer360_id_map
), crm AS (
  SELECT m.customer360_id, m.record_key, c.source, c.customer_id,
    {first} AS first_name, {last} AS last_name, {full} AS full_name,
    {email_c} AS email, {phone} AS phone, {country} AS country, {city} AS city,
    {life} AS lifecycle_status,
    {created} AS created_ms, COALESCE({updated}, {created}) AS t
  FROM clean_crm_customers c
  JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id
), ev AS (
  SELECT e.customer360_id, e.event_name, e.system, e.session_id, e.device_id, e.cookie_id,
    e.user_id, e.order_id, e.category, e.ms, k.now_ms - e.ms AS age,
    CASE WHEN e.system NOT IN ('crm', 'web') THEN 1 ELSE 0 END AS is_tx,
    CASE WHEN e.system NOT IN ('crm', 'web') AND e.event_name NOT IN ('void', 'refund') THEN 1 ELSE 0 END AS is_order,
    CASE WHEN e.system NOT IN ('crm', 'web') AND e.event_name <> 'void' THEN {micros} ELSE 0 END AS net_micros,
    CASE WHEN e.system NOT IN ('crm', 'web') AND e.event_name NOT IN ('void', 'refund') THEN {micros} ELSE 0 END AS order_micros
  FROM (SELECT x.*, {ev_ms} AS ms FROM customer360_events x) e
  CROSS JOIN clock k
  WHERE e.ms IS NOT NULL
), act AS (
  SELECT customer360_id,
    min(ms) AS first_ms, max(ms) AS last_ms,
    max(CASE WHEN user_id IS NOT NULL THEN 1 ELSE 0 END) AS known,
    max(CASE WHEN system <> 'crm' THEN ms END) AS last_activity_ms,
    sum(CASE WHEN system = 'web' THEN 1 ELSE 0 END) AS web,
    sum(is_tx) AS transactions,
    sum(is_order) AS orders,
    sum(CASE WHEN is_tx = 1 AND event_name = 'refund' THEN 1 ELSE 0 END) AS refunds,
    sum(net_micros) AS net_micros,
    sum(order_micros) AS gross_micros,
    min(CASE WHEN is_order = 1 THEN ms END) AS first_order_ms,
    max(CASE WHEN is_order = 1 THEN ms END) AS last_order_ms,
    count(DISTINCT CASE WHEN system = 'web' AND {in30} THEN session_id END) AS sessions_30d,
    count(DISTINCT CASE WHEN system = 'web' AND {in90} THEN session_id END) AS sessions_90d,
    sum(CASE WHEN system = 'web' AND {in30} AND {page_view} THEN 1 ELSE 0 END) AS page_views_30d,
    sum(CASE WHEN system = 'web' AND {in90} AND {page_view} THEN 1 ELSE 0 END) AS page_views_90d,
    sum(CASE WHEN {in30} AND ((system = 'web' AND {key_event}) OR is_order = 1) THEN 1 ELSE 0 END) AS key_events_30d,
    sum(CASE WHEN {in90} AND ((system = 'web' AND {key_event}) OR is_order = 1) THEN 1 ELSE 0 END) AS key_events_90d,
    sum(CASE WHEN system <> 'crm' AND {in30} THEN 1 ELSE 0 END) AS events_30,
    sum(CASE WHEN system <> 'crm' AND {in90} AND NOT ({in30}) THEN 1 ELSE 0 END) AS events_31_90
  FROM ev GROUP BY customer360_id
), b AS (
  SELECT a.*,
    round({net} / 1000000 * 100) / 100 AS revenue,
    CASE WHEN a.orders > 0 THEN round({gross} / 1000000 / {orders} * 100) / 100 END AS aov,
    {days} AS days_since_last_activity
  FROM act a CROSS JOIN clock k
), cats AS (
  SELECT customer360_id, category, sum(order_micros) AS micros
  FROM ev WHERE is_order = 1 AND category IS NOT NULL GROUP BY customer360_id, category
), fc AS (
  SELECT customer360_id, category FROM (
    SELECT cats.*, row_number() OVER (PARTITION BY customer360_id ORDER BY micros DESC, category ASC) AS nth FROM cats
  ) x WHERE nth = 1
), cand AS (
  SELECT customer360_id, 0 AS field, CASE WHEN first_name IS NOT NULL AND last_name IS NOT NULL THEN first_name || ' ' || last_name
      WHEN full_name IS NOT NULL THEN full_name WHEN first_name IS NOT NULL THEN first_name ELSE last_name END AS value,
    record_key AS record, record_key AS rec_sort, 'crm' AS system, source, t FROM crm
  UNION ALL SELECT customer360_id, 1, email, record_key, record_key, 'crm', source, t FROM crm
  UNION ALL SELECT e.customer360_id, 1, {email}, e.record_key, {seq_key}, 'transactions', 'transactions', {ev_ms}
    FROM customer360_events e WHERE e.system = 'transactions' AND {email} IS NOT NULL
  UNION ALL SELECT customer360_id, 2, phone, record_key, record_key, 'crm', source, t FROM crm
  UNION ALL SELECT customer360_id, 3, country, record_key, record_key, 'crm', source, t FROM crm
  UNION ALL SELECT customer360_id, 4, city, record_key, record_key, 'crm', source, t FROM crm
  UNION ALL SELECT customer360_id, 5, lower(lifecycle_status), record_key, record_key, 'crm', source, t FROM crm
), pool AS (
  SELECT cand.*, lower(trim(value)) AS norm FROM cand WHERE value IS NOT NULL AND trim(value) <> ''
), {goldens}, ec AS (
  SELECT DISTINCT customer360_id FROM cand WHERE field = 1 AND value IS NOT NULL
), ca AS (
  SELECT customer360_id, count(*) AS records, min(created_ms) AS created_ms FROM crm GROUP BY customer360_id
), ci AS (
  SELECT customer360_id, {crm_ids} AS crm_ids
  FROM (SELECT DISTINCT customer360_id, customer_id FROM crm WHERE NULLIF(customer_id, '') IS NOT NULL) x
  GROUP BY customer360_id
), lh0 AS (
  SELECT customer360_id, t, record_key, lower(lifecycle_status) AS status,
    LAG(lower(lifecycle_status)) OVER (PARTITION BY customer360_id ORDER BY t, record_key) AS prev,
    row_number() OVER (PARTITION BY customer360_id ORDER BY t, record_key) AS k
  FROM crm WHERE t IS NOT NULL AND lifecycle_status IS NOT NULL
), lh AS (
  SELECT customer360_id, '[' || {history} || ']' AS history
  FROM lh0 WHERE prev IS NULL OR prev <> status GROUP BY customer360_id
), ids AS (
  SELECT customer360_id, 'customer_id' AS kind, user_id AS v FROM ev WHERE user_id IS NOT NULL
  UNION ALL SELECT customer360_id, 'customer_id', customer_id FROM crm
  UNION ALL SELECT customer360_id, 'email', lower(trim(value)) FROM cand WHERE field = 1 AND value IS NOT NULL
  UNION ALL SELECT customer360_id, 'phone', phone FROM crm WHERE phone IS NOT NULL
  UNION ALL SELECT customer360_id, 'device_id', device_id FROM ev WHERE system = 'web' AND device_id IS NOT NULL
  UNION ALL SELECT customer360_id, 'cookie_id', cookie_id FROM ev WHERE system = 'web' AND cookie_id IS NOT NULL
  UNION ALL SELECT customer360_id, 'order_id', order_id FROM ev WHERE is_tx = 1 AND order_id IS NOT NULL
), idn AS (
  SELECT customer360_id, kind, count(DISTINCT v) AS n FROM ids GROUP BY customer360_id, kind
), ij AS (
  SELECT customer360_id, '{{' || {id_list} || '}}' AS identifiers FROM idn GROUP BY customer360_id
), r AS (
  SELECT customer360_id,
    {score_r} AS r, {score_f} AS f, {score_m} AS m
  FROM b WHERE orders > 0
), p AS (
SELECT
{cols}
FROM customers c
CROSS JOIN clock k
LEFT JOIN b ON b.customer360_id = c.customer360_id
LEFT JOIN ca ON ca.customer360_id = c.customer360_id
LEFT JOIN ci ON ci.customer360_id = c.customer360_id
LEFT JOIN ec ON ec.customer360_id = c.customer360_id
LEFT JOIN lh ON lh.customer360_id = c.customer360_id
LEFT JOIN ij ON ij.customer360_id = c.customer360_id
LEFT JOIN fc ON fc.customer360_id = c.customer360_id
LEFT JOIN r ON r.customer360_id = c.customer360_id
{golden_joins}
LEFT JOIN crm nr ON nr.customer360_id = c.customer360_id AND nr.record_key = g0.record
)
SELECT p.*, {hash} AS row_hash, {now} AS updated_at
FROM p",
        email_c = nn("c.email"),
        phone = nn("c.phone"),
        country = nn("c.country"),
        city = nn("c.city"),
        life = nn("c.lifecycle_status"),
        created = ms_of(d, "c.created_at"),
        updated = ms_of(d, "c.updated_at"),
        ev_ms = ms_of(d, "event_time"),
        net = as_double(d, "a.net_micros"),
        gross = as_double(d, "a.gross_micros"),
        orders = as_double(d, "a.orders"),
        goldens = goldens.join(", "),
        crm_ids = d.string_agg("customer_id", ",", "customer_id"),
        history = d.string_agg(&history_item, ",", "k"),
        id_list = d.string_agg(&id_item, ",", "kind"),
        score_r = quintile(d, "last_order_ms"),
        score_f = quintile(d, "orders"),
        score_m = quintile(d, "revenue"),
        cols = select_list(&cols),
        golden_joins = (0..GOLDEN.len())
            .map(|fi| format!("LEFT JOIN g{fi} ON g{fi}.customer360_id = c.customer360_id"))
            .collect::<Vec<_>>()
            .join("\n"),
        hash = row_hash(d, &names.iter().map(|n| format!("p.{n}")).collect::<Vec<_>>()),
        now = now_iso(d),
    );
    Script::new(
        "51_unify_profiles.sql",
        "unify",
        "customer360_events + clean CRM records → customer360_profiles: golden values with their record and rule, activity, orders, RFM, churn",
        d.create_as("customer360_profiles", &select),
    )
}

/// The quintile score 1..5 of `x` among the rows (higher value, higher
/// score; equal values, equal score).
fn quintile(d: Dialect, x: &str) -> String {
    as_int(
        d,
        &format!(
            "LEAST(5, 1 + floor(5 * (rank() OVER (ORDER BY {x}) - 1) / {}))",
            as_double(d, "count(*) OVER ()")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        crate::workspace::init(dir.path()).unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        (dir, ws)
    }

    fn table_columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn every_dialect_yields_both_scripts() {
        let (_dir, ws) = workspace();
        for d in Dialect::ALL {
            let s = scripts(d, &ws).unwrap();
            let files: Vec<&str> = s.iter().map(|s| s.file.as_str()).collect();
            assert_eq!(
                files,
                ["50_unify_events.sql", "51_unify_profiles.sql"],
                "{d}"
            );
            assert!(s.iter().all(|s| s.step == "unify"));
            assert!(s[0].sql.contains("customer360_events"), "{d}");
            assert!(s[1].sql.contains("customer360_profiles"), "{d}");
        }
    }

    #[test]
    fn columns_are_the_local_tables() {
        let conn = crate::store::open_in_memory().unwrap();
        assert_eq!(table_columns(&conn, "customer360_events"), EVENT_COLUMNS);
        assert_eq!(
            table_columns(&conn, "customer360_profiles"),
            profile_columns()
        );
        // The events SELECT lists them in this order.
        let sql = events_script(Dialect::DuckDb).sql;
        let tail = &sql[sql.rfind("AS event_seq").unwrap()..];
        let mut at = 0;
        for c in &EVENT_COLUMNS[1..] {
            at += tail[at..].find(c).unwrap_or_else(|| panic!("{c} missing"));
        }
    }

    #[test]
    fn the_workspace_rules_are_compiled_in() {
        let (_dir, ws) = workspace();
        let surv = ws.rules_dir().join("survivorship.toml");
        std::fs::write(
            &surv,
            "[fields.city]\nrule = \"longest\"\n[fields.name]\nrule = \"source_priority\"\nsources = [\"web\", \"crm\"]\nthen = \"first_non_empty\"\n",
        )
        .unwrap();
        let prof = ws.rules_dir().join("profiles.toml");
        std::fs::write(
            &prof,
            "now = \"2025-07-01T00:00:00Z\"\npage_views = [\"screen\"]\n[[churn]]\nname = \"quiet\"\nmetric = \"sessions_30d\"\nbelow = 1\nweight = 0.5\n",
        )
        .unwrap();
        let sql = &scripts(Dialect::DuckDb, &ws).unwrap()[1].sql;
        assert!(sql.contains("'longest'"), "{sql}");
        assert!(sql.contains("'source_priority (web, then first_non_empty)'"));
        assert!(sql.contains("'2025-07-01T00:00:00Z' AS as_of"));
        assert!(sql.contains("event_name IN ('screen')"));
        assert!(sql.contains("'quiet ('"));
        assert!(sql.contains("t ASC NULLS FIRST"));
        assert!(!sql.contains("lapsing"));
    }

    #[test]
    fn accent_tables_pair_up() {
        assert_eq!(NFD_ACCENTED.chars().count(), NFD_BASE.chars().count());
        for (a, b) in NFD_ACCENTED.chars().zip(NFD_BASE.chars()) {
            assert_eq!(
                crate::pipeline::identity::fuzzy::fold(&a.to_string()),
                b.to_lowercase().to_string()
            );
        }
    }

    #[test]
    fn json_numbers_keep_a_decimal_point() {
        let e = json_real_value(Dialect::DuckDb, "x");
        assert!(e.contains(r"'^(-?[0-9]+)([eE]|$)', '\1.0\2', 'g'"), "{e}");
        let e = json_real_value(Dialect::Spark, "x");
        assert!(e.contains("'$1.0$2'"), "{e}");
    }

    /// Writes the scripts of the workspace in `C360_UNIFY_WS` (default
    /// `/tmp/unify-demo/ws`) to `/tmp/unify_<dialect>.sql`, for checking them
    /// with DuckDB and sqlglot.
    #[test]
    #[ignore]
    fn write_scripts_for_checking() {
        let root = std::env::var("C360_UNIFY_WS").unwrap_or_else(|_| "/tmp/unify-demo/ws".into());
        let ws = Workspace::open(std::path::Path::new(&root)).unwrap();
        for d in Dialect::ALL {
            let sql: String = scripts(d, &ws)
                .unwrap()
                .iter()
                .map(|s| format!("-- {}\n{}\n", s.file, s.sql))
                .collect();
            std::fs::write(format!("/tmp/unify_{}.sql", d.name()), sql).unwrap();
        }
    }
}
