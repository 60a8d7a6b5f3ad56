//! Standardise as SQL: `stg_*` to `clean_*` with the rules SQL can express,
//! driven by the seed tables (countries, events, lifecycle, e-mail domains,
//! order statuses, currency rates).
//!
//! Simpler than the local step, on purpose:
//! - phone numbers: digits with the country's calling code and trunk
//!   prefix from `seed_calling_codes`, not libphonenumber's validation (a
//!   number of a plausible length is kept as valid);
//! - regions are tidied, not mapped to ISO 3166-2 codes;
//! - name case: DuckDB capitalises after spaces, hyphens and apostrophes,
//!   the other engines use INITCAP (Spark: after spaces only);
//! - `order_lines` sources (one row per line of an order) are not merged
//!   into one order; text is not NFC-normalised.

use super::{Dialect, Script, times};
use crate::workspace::Workspace;

/// Runs of whitespace to one space, trimmed, NULL when empty.
fn tidy(d: Dialect, x: &str) -> String {
    format!("NULLIF(trim({}), '')", d.re_replace(x, r"\s+", " "))
}

/// Title case when the value is all upper or all lower case (`JOHN` →
/// `John`); mixed case kept (`McDonald`).
fn name(d: Dialect, x: &str) -> String {
    let t = tidy(d, x);
    let title = match d {
        Dialect::DuckDb => format!(
            "array_to_string(list_transform(string_split(lower({t}), ' '), lambda w: array_to_string(list_transform(string_split(w, '-'), lambda h: array_to_string(list_transform(string_split(h, ''''), lambda a: upper(a[1]) || a[2:]), '''')), '-')), ' ')"
        ),
        _ => format!("INITCAP(lower({t}))"),
    };
    format!("CASE WHEN {t} = upper({t}) OR {t} = lower({t}) THEN {title} ELSE {t} END")
}

/// Lower case, letters and digits only (status and vocabulary values).
fn fold_alnum(d: Dialect, x: &str) -> String {
    d.re_replace(&format!("lower({x})"), r"[^\p{L}\p{N}]", "")
}

/// Country fold: accents stripped, then as [`fold_alnum`].
fn fold_country(d: Dialect, x: &str) -> String {
    fold_alnum(d, &d.strip_accents(x))
}

/// An event name folded as `events::fold`: camelCase split, lower case,
/// runs of other characters to one `_`, no `_` at either end.
fn fold_event(d: Dialect, x: &str) -> String {
    let split = d.re_replace(
        &format!("trim({x})"),
        r"([\p{Ll}\p{N}])(\p{Lu})",
        &format!("{}_{}", d.group_ref(1), d.group_ref(2)),
    );
    let under = d.re_replace(&format!("lower({split})"), r"[^\p{L}\p{N}]+", "_");
    d.re_replace(&under, r"^_+|_+$", "")
}

/// The e-mail rule: `e` a CTE column of the lowered value without spaces,
/// `dom` the seed row of its domain. (value, valid) expressions.
fn email_parts(d: Dialect, e: &str) -> (String, String) {
    let valid = format!(
        "({} AND NOT {} AND {})",
        d.re_match(
            e,
            r"^[\p{L}\p{N}!#$%&*+/=?^_`{|}~-]([\p{L}\p{N}!#$%&*+/=?^_`{|}~.-]{0,62}[\p{L}\p{N}!#$%&*+/=?^_`{|}~-])?@"
        ),
        d.re_match(e, r"\.\.[^@]*@"),
        d.re_match(
            e,
            r"@([\p{L}\p{N}]([\p{L}\p{N}-]*[\p{L}\p{N}])?\.)+[\p{L}]{2,}\.?$"
        ),
    );
    (e.to_string(), valid)
}

/// SELECT of the normalised e-mail: a subquery over `src` (a table with
/// `email`) adding `email_n` and `email_ok`.
fn email_select(d: Dialect, alias: &str) -> (String, String) {
    let lowered = format!(
        "replace(lower({}), ' ', '')",
        tidy(d, &format!("{alias}.email"))
    );
    let (_, valid) = email_parts(d, &lowered);
    let local = format!(
        "substr({lowered}, 1, length({lowered}) - length({}) - 1)",
        domain(d, &lowered)
    );
    let dom = domain(d, &lowered);
    let plus = format!(
        "CASE WHEN ed.drop_plus_tag = 1 AND {plus_at} > 1 THEN substr({local}, 1, {plus_at} - 1) ELSE {local} END",
        plus_at = d.strpos(&local, "'+'")
    );
    let dots =
        format!("CASE WHEN ed.ignore_dots = 1 THEN replace({plus}, '.', '') ELSE {plus} END");
    let value = format!(
        "CASE WHEN {lowered} IS NULL THEN NULL WHEN {valid} THEN {dots} || '@' || COALESCE(NULLIF(ed.canonical_domain, ''), {dom}) ELSE {lowered} END"
    );
    let ok = format!("CASE WHEN {lowered} IS NULL THEN NULL WHEN {valid} THEN 1 ELSE 0 END");
    (value, ok)
}

/// The domain of a lowered e-mail (after the last `@`, trailing dots off).
fn domain(d: Dialect, e: &str) -> String {
    d.re_replace(&d.re_group(e, r"@([^@]*)$", 1), r"\.+$", "")
}

/// The phone rule: (value, valid) from `p` (a phone text column) and the
/// joined calling code row `cc` of the record's country.
fn phone(d: Dialect, p: &str) -> (String, String) {
    let t = tidy(d, p);
    let digits = d.re_replace(&d.re_replace(&t, r"\(0\)", ""), r"[^0-9]", "");
    let intl = format!(
        "CASE WHEN substr({t}, 1, 1) = '+' THEN '+' || {digits} WHEN substr({digits}, 1, 2) = '00' THEN '+' || substr({digits}, 3) END"
    );
    let national = format!(
        "CASE WHEN cc.code IS NULL THEN NULL \
WHEN cc.national_prefix <> '' AND substr({digits}, 1, length(cc.national_prefix)) = cc.national_prefix THEN '+' || cc.code || substr({digits}, length(cc.national_prefix) + 1) \
WHEN substr({digits}, 1, length(cc.code)) = cc.code AND length({digits}) - length(cc.code) >= 9 THEN '+' || {digits} \
ELSE '+' || cc.code || {digits} END"
    );
    let e164 = format!("COALESCE({intl}, {national})");
    let ok = format!(
        "({e164} IS NOT NULL AND length({digits}) >= 6 AND {} AND length({e164}) BETWEEN 8 AND 16)",
        d.re_match(&digits, "[1-9]")
    );
    (
        format!("CASE WHEN {t} IS NULL THEN NULL WHEN {ok} THEN {e164} ELSE {t} END"),
        format!("CASE WHEN {t} IS NULL THEN NULL WHEN {ok} THEN 1 ELSE 0 END"),
    )
}

/// Flags joined by commas, NULL when none.
fn flags(d: Dialect, parts: &[(String, &str)]) -> String {
    let items: Vec<String> = parts
        .iter()
        .map(|(cond, flag)| format!("CASE WHEN {cond} THEN '{flag}' END"))
        .collect();
    format!("NULLIF({}, '')", d.join_non_null(",", &items))
}

/// The first and last name, filled from the full name when missing
/// ("Last, First" or "First Last").
fn split_names(d: Dialect, t: &str) -> [String; 5] {
    let full = name(d, &format!("{t}.full_name"));
    let comma = d.strpos(&full, "','");
    let space = d.strpos(&full, "' '");
    let last_space = format!(
        "length({full}) - {} + 1",
        d.strpos(&format!("reverse({full})"), "' '")
    );
    let first_of_full = format!(
        "CASE WHEN {comma} > 0 THEN NULLIF(trim(substr({full}, {comma} + 1)), '') WHEN {space} > 0 THEN substr({full}, 1, {last_space} - 1) ELSE {full} END"
    );
    let last_of_full = format!(
        "CASE WHEN {comma} > 0 THEN NULLIF(trim(substr({full}, 1, {comma} - 1)), '') WHEN {space} > 0 THEN substr({full}, {last_space} + 1) END"
    );
    [
        format!(
            "COALESCE({}, {first_of_full})",
            name(d, &format!("{t}.first_name"))
        ),
        format!(
            "COALESCE({}, {last_of_full})",
            name(d, &format!("{t}.last_name"))
        ),
        full,
        String::new(),
        String::new(),
    ]
}

fn crm_script(d: Dialect, ws: &Workspace) -> Script {
    let order = ws.settings.date_order;
    let (email, email_ok) = email_select(d, "s");
    let (phone, phone_ok) = phone(d, "s.phone");
    let [first, last, full, ..] = split_names(d, "s");
    let country_raw = tidy(d, "s.country");
    let bd_raw = tidy(d, "s.birth_date");
    let bd = times::date(d, &bd_raw, order);
    let life_raw = tidy(d, "s.lifecycle_status");
    let select = format!(
        "WITH s AS (
  SELECT *, row_number() OVER (PARTITION BY source, customer_id ORDER BY batch_id DESC, row_num DESC) AS nth
  FROM stg_crm_customers
), c AS (
  SELECT s.*, ca.code AS country_code, (cn.value IS NOT NULL) AS country_none
  FROM s
  LEFT JOIN seed_country_aliases ca ON ca.alias = {fc}
  LEFT JOIN seed_country_nulls cn ON cn.value = {fc}
  WHERE s.nth = 1
), e AS (
  SELECT s.*, {email} AS email_n, {email_ok} AS email_ok, lm.status AS life_n, {bd} AS birth_n
  FROM c s
  LEFT JOIN seed_email_domains ed ON ed.domain = {dom}
  LEFT JOIN seed_lifecycle_map lm ON lm.value = {fl}
)
SELECT s.source, s.batch_id, s.row_num, s.customer_id,
  {first} AS first_name, {last} AS last_name, {full} AS full_name,
  s.email_n AS email, s.email_ok AS email_valid,
  {phone} AS phone, {phone_ok} AS phone_valid,
  COALESCE(s.birth_n, {bd_raw}) AS birth_date,
  {addr} AS address, {city} AS city, upper({pc}) AS postcode, {region} AS region,
  CASE WHEN s.country_none THEN NULL ELSE COALESCE(s.country_code, {country_raw}) END AS country,
  CASE WHEN {country_raw} IS NULL OR s.country_none THEN NULL WHEN s.country_code IS NOT NULL THEN 1 ELSE 0 END AS country_valid,
  COALESCE(s.life_n, lower({life_raw})) AS lifecycle_status,
  s.created_at, s.updated_at, s.extra,
  {flags} AS flags
FROM e s
LEFT JOIN seed_calling_codes cc ON cc.country = COALESCE(s.country_code, {region_default})",
        fc = fold_country(d, &country_raw),
        dom = domain(d, &format!("replace(lower({}), ' ', '')", tidy(d, "s.email"))),
        fl = fold_alnum(d, "s.lifecycle_status"),
        addr = tidy(d, "s.address"),
        city = name(d, "s.city"),
        pc = tidy(d, "s.postcode"),
        region = tidy(d, "s.region"),
        region_default = region_lit(d, ws),
        flags = flags(
            d,
            &[
                ("s.email_ok = 0".into(), "invalid_email"),
                (format!("({phone_ok}) = 0"), "invalid_phone"),
                (format!("{country_raw} IS NOT NULL AND NOT s.country_none AND s.country_code IS NULL"), "unknown_country"),
                (format!("{bd_raw} IS NOT NULL AND s.birth_n IS NULL"), "invalid_birth_date"),
                (format!("{life_raw} IS NOT NULL AND s.life_n IS NULL"), "unknown_lifecycle"),
            ]
        ),
    );
    Script::new(
        "20_standardise_crm.sql",
        "standardise",
        "stg_crm_customers → clean_crm_customers: latest row per id; names, e-mail, phone, country, birth date, lifecycle",
        d.create_as("clean_crm_customers", &select),
    )
}

/// The default region of phones without a country (`settings.default_region`).
fn region_lit(d: Dialect, ws: &Workspace) -> String {
    ws.sources
        .first()
        .and_then(|s| s.default_region.clone())
        .map_or_else(|| format!("CAST(NULL AS {})", d.text()), |r| d.lit(&r))
}

fn web_script(d: Dialect, ws: &Workspace, patterns: &[(&str, &str)]) -> Script {
    let (email, email_ok) = email_select(d, "s");
    let _ = email_ok;
    let (phone, _) = phone(d, "s.phone");
    let folded = fold_event(d, "s.event_name");
    let pattern_arms: Vec<String> = patterns
        .iter()
        .map(|(p, n)| format!("WHEN {} THEN {}", d.re_match("f.folded", p), d.lit(n)))
        .collect();
    let by_pattern = if pattern_arms.is_empty() {
        "NULL".to_string()
    } else {
        format!("CASE {} END", pattern_arms.join(" "))
    };
    let select = format!(
        "WITH s AS (
  SELECT *, row_number() OVER (PARTITION BY source, event_id ORDER BY batch_id, row_num) AS nth
  FROM stg_web_events
), f AS (
  SELECT s.*, {folded} AS folded, {ftype} AS folded_type FROM s WHERE nth = 1
), m AS (
  SELECT f.*, COALESCE(et.canonical, ea.canonical, {by_pattern}) AS canonical
  FROM f
  LEFT JOIN seed_event_types et ON et.event_type = f.folded_type
  LEFT JOIN seed_event_aliases ea ON ea.alias = f.folded
)
SELECT s.source, s.batch_id, s.row_num, s.event_id,
  COALESCE(s.canonical, s.event_name) AS event_name, s.event_name AS event_name_raw,
  CASE WHEN s.canonical IS NULL THEN 0 ELSE 1 END AS event_mapped,
  s.event_time, s.event_type, s.user_id, s.cookie_id, s.device_id, s.session_id, s.page_url,
  s.order_id, s.properties, s.extra,
  {email} AS email, {phone} AS phone, s.previous_id
FROM m s
LEFT JOIN seed_email_domains ed ON ed.domain = {dom}
LEFT JOIN seed_calling_codes cc ON cc.country = {region}",
        ftype = fold_event(d, "s.event_type"),
        dom = domain(
            d,
            &format!("replace(lower({}), ' ', '')", tidy(d, "s.email"))
        ),
        region = region_lit(d, ws),
    );
    Script::new(
        "21_standardise_web.sql",
        "standardise",
        "stg_web_events → clean_web_events: first row per event id; event names to the canonical set",
        d.create_as("clean_web_events", &select),
    )
}

fn tx_script(d: Dialect, ws: &Workspace, reporting: Option<&str>) -> Script {
    let (email, email_ok) = email_select(d, "s");
    let (phone, _) = phone(d, "s.phone");
    let [first, last, full, ..] = split_names(d, "s");
    let cur = format!("upper({})", tidy(d, "s.currency"));
    let cur_ok = format!("({cur} IS NOT NULL AND {})", d.re_match(&cur, "^[A-Z]{3}$"));
    let total = "COALESCE(s.revenue, 0)";
    let net = format!(
        "CASE s.kind WHEN 'refund' THEN -abs({total}) WHEN 'refunded' THEN 0 WHEN 'void' THEN 0 \
WHEN 'partial' THEN CASE WHEN s.refunded_amount IS NULL THEN {total} ELSE {total} - abs(s.refunded_amount) END ELSE {total} END"
    );
    let (revenue, currency, unit, no_rate) = match reporting {
        Some(rep) => (
            "CASE WHEN s.rate IS NULL THEN 0 ELSE round(s.net * s.rate * 1000000) / 1000000 END"
                .to_string(),
            d.lit(rep),
            "CASE WHEN s.rate IS NULL THEN s.unit_price ELSE s.unit_price * s.rate END".to_string(),
            "s.rate IS NULL".to_string(),
        ),
        None => (
            "s.net".to_string(),
            "s.currency_n".to_string(),
            "s.unit_price".to_string(),
            "FALSE".to_string(),
        ),
    };
    let rep = reporting.map_or_else(|| format!("CAST(NULL AS {})", d.text()), |r| d.lit(r));
    let select = format!(
        "WITH k AS (
  SELECT s.*, COALESCE(os.kind, CASE WHEN {status} IS NULL THEN 'purchase' END, 'purchase') AS kind,
    (os.kind IS NULL AND {status} IS NOT NULL) AS unknown_status,
    CASE WHEN {cur_ok} THEN {cur} END AS currency_n, {cur} AS currency_t
  FROM stg_transactions s
  LEFT JOIN seed_order_statuses os ON os.status = {status}
), s AS (
  SELECT k.*, CASE kind WHEN 'refund' THEN 'refund' WHEN 'void' THEN 'void' ELSE 'purchase' END AS ttype,
    row_number() OVER (PARTITION BY source, order_id, CASE kind WHEN 'refund' THEN 'refund' WHEN 'void' THEN 'void' ELSE 'purchase' END ORDER BY batch_id, row_num) AS nth
  FROM k
), j AS (
  SELECT s.*, {net} AS net,
    CASE WHEN s.kind = 'refund' THEN -abs(s.quantity) ELSE s.quantity END AS qty,
    cr.rate AS rate,
    row_number() OVER (PARTITION BY s.source, s.order_id, s.ttype ORDER BY cr.from_date DESC) AS rate_nth
  FROM s s
  LEFT JOIN seed_currency_rates cr ON cr.currency = COALESCE(s.currency_n, {rep})
    AND (cr.from_date = '' OR cr.from_date <= substr(s.order_time, 1, 10))
  WHERE s.nth = 1
), r AS (
  SELECT * FROM j WHERE rate_nth = 1
)
SELECT s.source, s.batch_id, s.row_num, s.order_id, s.ttype AS transaction_type, s.customer_id,
  {email} AS email, {email_ok} AS email_valid, s.order_time, s.product_id, s.product_name, s.category,
  s.qty AS quantity, {unit} AS unit_price, {currency} AS currency, {revenue} AS revenue, s.extra,
  {flags} AS flags, s.net AS original_revenue, COALESCE(s.currency_n, s.currency_t) AS original_currency,
  CAST(NULL AS {text}) AS lines,
  {first} AS first_name, {last} AS last_name, {full} AS full_name, {phone} AS phone
FROM r s
LEFT JOIN seed_email_domains ed ON ed.domain = {dom}
LEFT JOIN seed_calling_codes cc ON cc.country = {region}",
        status = fold_alnum(d, "s.transaction_type"),
        text = d.text(),
        dom = domain(d, &format!("replace(lower({}), ' ', '')", tidy(d, "s.email"))),
        region = region_lit(d, ws),
        flags = flags(
            d,
            &[
                (format!("({email_ok}) = 0"), "invalid_email"),
                ("s.unknown_status".into(), "unknown_status"),
                ("s.kind = 'partial' AND s.refunded_amount IS NULL".into(), "refund_amount_unknown"),
                ("s.currency_t IS NOT NULL AND s.currency_n IS NULL".into(), "invalid_currency"),
                (no_rate, "no_rate"),
            ]
        ),
    );
    Script::new(
        "22_standardise_transactions.sql",
        "standardise",
        "stg_transactions → clean_transactions: first row per order and type; statuses, refunds, currency to the reporting currency",
        d.create_as("clean_transactions", &select),
    )
}

/// The standardise scripts.
pub fn scripts(
    d: Dialect,
    ws: &Workspace,
    rules: &crate::pipeline::standardise::rules::Rules,
) -> Vec<Script> {
    let (_, _, patterns) = rules.events.entries();
    vec![
        crm_script(d, ws),
        web_script(d, ws, &patterns),
        tx_script(d, ws, rules.orders.reporting.as_deref()),
    ]
}
