//! Real export shapes (`tests/fixtures/exports/`: HubSpot contacts, a
//! Google Form's responses, Segment calls, a Square items export), each
//! loaded with its `c360.toml` alone: the values parsed, the links made and
//! the revenue. Then c360's own exports for BI tools read back: every table
//! of the data dictionary, the same types in CSV and Parquet, UTC
//! timestamps, lists as lists, the formula guard.

mod common;
use common::*;

use c360::pipeline::progress::NoProgress;
use c360::pipeline::{self};
use c360::store;
use c360::workspace::Workspace;
use rusqlite::Connection;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/exports");

/// A workspace with the fixtures' files and `config` (the fixtures' own
/// `c360.toml` when None), through every step.
fn workspace(config: Option<&str>) -> (tempfile::TempDir, Workspace, Connection) {
    let dir = tempfile::tempdir().unwrap();
    c360::workspace::init(dir.path()).unwrap();
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    if let Some(config) = config {
        std::fs::write(dir.path().join("c360.toml"), config).unwrap();
    }
    let ws = Workspace::open(dir.path()).unwrap();
    let mut conn = store::open(&ws.db_path()).unwrap();
    pipeline::run_all(&mut conn, &ws, &NoProgress).unwrap();
    (dir, ws, conn)
}

fn one(conn: &Connection, sql: &str) -> String {
    conn.query_row(sql, [], |r| r.get::<_, String>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The record keys of every customer, sorted, each customer's keys sorted.
fn customers(conn: &Connection) -> Vec<String> {
    strings(
        conn,
        "SELECT group_concat(record_key, ' ') FROM
           (SELECT customer360_id, record_key FROM customer360_id_map ORDER BY record_key)
         GROUP BY customer360_id ORDER BY 1",
    )
}

#[test]
fn every_row_is_read_and_staged() {
    let (_d, _ws, conn) = workspace(None);
    let batches = strings(
        &conn,
        "SELECT source || ' ' || rows_read || '=' || rows_staged || '+' || rows_rejected
         FROM load_batches ORDER BY batch_id",
    );
    assert_eq!(
        batches,
        [
            "hubspot 6=6+0",
            "signups 3=3+0",
            "segment 13=13+0",
            "square 4=4+0",
            "woo 5=5+0",
            "shopify 5=5+0"
        ]
    );
    // The walk-in has Square's own customer id (no CRM reference id).
    assert_eq!(int(&conn, "SELECT count(*) FROM rejects"), 0);
}

#[test]
fn dates_phones_and_lifecycle_stages_as_the_crm_wrote_them() {
    let (_d, _ws, conn) = workspace(None);
    let crm = strings(
        &conn,
        "SELECT customer_id || ' ' || coalesce(birth_date, '-') || ' ' || coalesce(lifecycle_status, '-')
                || ' ' || coalesce(phone, '-')
         FROM clean_crm_customers WHERE source = 'hubspot' ORDER BY customer_id",
    );
    assert_eq!(
        crm,
        [
            // "May 23, 1959"; customer
            "101 1959-05-23 active +12067951850",
            // "20 Sep 1975"; marketingqualifiedlead; "(415) 555-0134" in the US
            "102 1975-09-20 lead +14155550134",
            // "05-Mar-1980"; "Sales Qualified Lead"
            "103 1980-03-05 prospect -",
            // "19820414"; evangelist
            "104 1982-04-14 active -",
            "105 - lead -",
            // "3/5/1990" month first; opportunity; a German number
            "106 1990-03-05 prospect +49301234567",
        ]
    );
    // HubSpot's "2023-11-02 09:15" and the form's "3/5/2024 14:22:05".
    assert_eq!(
        one(
            &conn,
            "SELECT created_at FROM clean_crm_customers WHERE customer_id = '101'"
        ),
        "2023-11-02T09:15:00.000Z"
    );
    assert_eq!(
        one(
            &conn,
            "SELECT created_at FROM clean_crm_customers
             WHERE source = 'signups' AND email = 'alice.martin@example.com'"
        ),
        "2024-03-05T14:22:05.000Z"
    );
}

#[test]
fn a_salesforce_report_with_locale_dates_and_account_types() {
    let salesforce = std::fs::read_to_string(Path::new(FIXTURES).join("salesforce.toml")).unwrap();
    let (_d, _ws, conn) = workspace(Some(&(config_with("", "") + "\n" + &salesforce)));
    let contacts = strings(
        &conn,
        "SELECT customer_id || ' ' || coalesce(birth_date, '-') || ' ' || lifecycle_status || ' '
                || created_at || ' ' || coalesce(phone, '-') || ' ' || coalesce(country, '-')
         FROM clean_crm_customers WHERE source = 'salesforce' ORDER BY customer_id",
    );
    assert_eq!(
        contacts,
        [
            // "4/14/1982"; Customer - Direct; "3/5/2024, 2:22 PM"
            "0035e00000AbCdEAA1 1982-04-14 active 2024-03-05T14:22:00.000Z +35315550101 IE",
            // Former Customer; "1/15/2023, 9:05 AM"; "(212) 555-0199" in the US
            "0035e00000AbCdFAA1 1990-12-01 churned 2023-01-15T09:05:00.000Z +12125550199 US",
            // Prospect; "2/29/2024, 11:59 PM"
            "0035e00000AbCdGAA1 - prospect 2024-02-29T23:59:00.000Z - FR",
        ]
    );
    // Dan in HubSpot and in Salesforce: one e-mail (in capitals there).
    assert_eq!(
        int(
            &conn,
            "SELECT count(DISTINCT customer360_id) FROM customer360_id_map
             WHERE record_key IN ('crm:hubspot:104', 'crm:salesforce:0035e00000AbCdEAA1')"
        ),
        1
    );
}

#[test]
fn a_list_without_ids_gets_ids_derived_from_the_email() {
    let (_d, _ws, conn) = workspace(None);
    let ids = strings(
        &conn,
        "SELECT customer_id FROM clean_crm_customers WHERE source = 'signups' ORDER BY customer_id",
    );
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert!(
            id.len() == 17 && id.starts_with('h') && id[1..].chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
    // " Alice.Martin@Example.com " hashes as the folded address: the same
    // person re-submitting keeps the id.
    let alice = one(
        &conn,
        "SELECT customer_id FROM clean_crm_customers WHERE source = 'signups' AND email = 'alice.martin@example.com'",
    );
    let expected = blake3::hash(b"alice.martin@example.com").to_hex();
    assert_eq!(alice, format!("h{}", &expected[..16]));
}

#[test]
fn event_names_of_segment_and_ga4_map_to_the_canonical_set() {
    let (_d, _ws, conn) = workspace(None);
    let names = strings(
        &conn,
        "SELECT event_id || ' ' || event_name_raw || ' -> ' || event_name || ' ' || event_mapped
         FROM clean_web_events ORDER BY CAST(substr(event_id, 2) AS INTEGER)",
    );
    assert_eq!(
        names,
        [
            "s1 identify -> identify 1",
            "s2 Product Viewed -> view_item 1",
            "s3 page -> page_view 1",
            "s4 alias -> alias 1",
            "s5 identify -> identify 1",
            "s6 begincheckout -> begin_checkout 1",
            "s7 productview -> view_item 1",
            "s8 appopen -> session_start 1",
            "s9 user_login -> login 1",
            "s10 identify -> identify 1",
            "s11 Checkout Started -> begin_checkout 1",
            "s12 screenview -> screen_view 1",
            "s13 Order Completed -> purchase 1",
        ]
    );
}

#[test]
fn a_naive_event_time_is_read_in_the_events_own_zone() {
    let (_d, _ws, conn) = workspace(None);
    // "2024-03-05 09:30:00" with context.timezone America/New_York (EST).
    assert_eq!(
        one(
            &conn,
            "SELECT event_time FROM clean_web_events WHERE event_id = 's7'"
        ),
        "2024-03-05T14:30:00.000Z"
    );
}

#[test]
fn identify_traits_and_alias_reach_the_crm_profile() {
    let (_d, _ws, conn) = workspace(None);
    let traits = strings(
        &conn,
        "SELECT event_id || ' ' || coalesce(email, '-') || ' ' || coalesce(phone, '-') || ' ' || coalesce(previous_id, '-')
         FROM clean_web_events WHERE event_name IN ('identify', 'alias') ORDER BY event_id",
    );
    assert_eq!(
        traits,
        [
            "s1 bob.chen@example.org +14155550134 -",
            "s10 carla.diaz@example.es - -",
            "s4 - - anon-2",
            "s5 - +12067951850 -",
        ]
    );
    let sig = one(
        &conn,
        "SELECT customer_id FROM clean_crm_customers WHERE source = 'signups' AND email = 'alice.martin@example.com'",
    );
    let eve = one(
        &conn,
        "SELECT customer_id FROM clean_crm_customers WHERE source = 'signups' AND email = 'eve.stone@example.com'",
    );
    let frank = one(
        &conn,
        "SELECT customer_id FROM clean_crm_customers WHERE source = 'signups' AND email = 'frank.new@example.net'",
    );
    let mut want = vec![
        // Alice: the form (same e-mail), her Square purchase (reference id
        // 101), and app user app-9002: its identify call's phone matches
        // hers; its alias call joins the anonymous anon-2 that checked out.
        format!(
            "crm:hubspot:101 crm:signups:{sig} transactions:shopify:#1001:purchase transactions:square:T-1:purchase web:segment:s4 web:segment:s5 web:segment:s6"
        ),
        // Bob: identify traits e-mail (app id app-9001), then anon-1's
        // anonymous views; his Square purchase and its web Order Completed.
        "crm:hubspot:102 transactions:shopify:#1003:purchase transactions:square:T-2:purchase web:segment:s1 web:segment:s13 web:segment:s2 web:segment:s3".to_string(),
        // Carla: identify e-mail of app-9003, whose cookie anon-3 had the
        // legacy events before the login; her WooCommerce orders by e-mail.
        "crm:hubspot:103 transactions:woo:W-1:purchase transactions:woo:W-2:purchase web:segment:s10 web:segment:s11 web:segment:s7 web:segment:s8 web:segment:s9".to_string(),
        "crm:hubspot:104 transactions:woo:W-3:purchase transactions:woo:W-4:void".to_string(),
        format!("crm:hubspot:105 crm:signups:{eve} transactions:woo:W-5:purchase"),
        // Björn: his Square purchase names "Bjorn Bohm" with a national
        // number: fuzzy matching, not an identifier, joins them.
        "crm:hubspot:106 transactions:square:T-4:purchase".to_string(),
        "transactions:square:T-3:purchase".to_string(),
        format!("crm:signups:{frank} transactions:shopify:#1002:purchase"),
        "web:segment:s12".to_string(),
    ];
    want.sort();
    assert_eq!(customers(&conn), want);
}

#[test]
fn money_dates_and_zones_of_a_square_export() {
    let (_d, _ws, conn) = workspace(None);
    let orders = strings(
        &conn,
        "SELECT order_id || ' ' || order_time || ' ' || original_revenue || ' ' || original_currency
                || ' -> ' || revenue || ' ' || currency || ' ' || quantity
         FROM clean_transactions WHERE source = 'square' ORDER BY order_id",
    );
    // Reported in EUR (rules/orders.toml: 1 USD = 0.96256 EUR).
    assert_eq!(
        orders,
        [
            // "2024-03-05" + "14:22:05" Eastern Time (US & Canada), "$4.50"
            "T-1 2024-03-05T19:22:05.000Z 4.5 USD -> 4.33152 EUR 1",
            // "03/06/2024" + "9:10 AM" Pacific Time, "$1,000.00"
            "T-2 2024-03-06T17:10:00.000Z 1000.0 USD -> 962.56 EUR 2",
            // 18:00 Eastern Time on 7 March (EST, UTC-5)
            "T-3 2024-03-07T23:00:00.000Z 3.0 USD -> 2.88768 EUR 1",
            // 12:00 Eastern Time on 8 March
            "T-4 2024-03-08T17:00:00.000Z 4.5 USD -> 4.33152 EUR 1",
        ]
    );
    let revenue = strings(
        &conn,
        "SELECT printf('%.2f', p.revenue) FROM customer360_profiles p
         JOIN customer360_id_map m ON m.customer360_id = p.customer360_id
         WHERE m.record_key IN ('crm:hubspot:101', 'crm:hubspot:102') ORDER BY m.record_key",
    );
    // With their Shopify orders (59 and 100 - 25 USD).
    assert_eq!(revenue, ["61.12", "1034.75"]);
}

#[test]
fn an_order_that_names_its_buyer_is_compared_with_the_crm() {
    let (_d, _ws, conn) = workspace(None);
    assert_eq!(
        one(
            &conn,
            "SELECT full_name || ' / ' || first_name || ' / ' || last_name || ' / ' || phone
             FROM clean_transactions WHERE order_id = 'T-4'"
        ),
        "Bjorn Bohm / Bjorn / Bohm / 030 1234567"
    );
    // Accents folded, the phone's last 7 digits in one block, the trunk
    // zero and country code the same number: merged, and explained.
    assert_eq!(
        strings(
            &conn,
            "SELECT left_key || ' ~ ' || right_key || ' ' || band FROM match_candidates
             WHERE right_key LIKE 'transactions:%' OR left_key LIKE 'transactions:%'"
        ),
        ["crm:hubspot:106 ~ transactions:square:T-4:purchase auto_merge"]
    );
    // Orders that name nobody (the Shopify export maps no names) take no
    // part in fuzzy matching.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM match_candidates WHERE left_key LIKE '%shopify%' OR right_key LIKE '%shopify%'"
        ),
        0
    );
}

#[test]
fn a_web_purchase_and_its_order_are_one_fact() {
    let (_d, _ws, conn) = workspace(None);
    // The order row carries the revenue; the web Order Completed with the
    // same order id none (its own figure stays in its properties).
    assert_eq!(
        strings(
            &conn,
            "SELECT system || ' ' || event_name || ' '
                    || CASE WHEN revenue IS NULL THEN '-' ELSE printf('%.2f', revenue) END
                    || ' ' || coalesce(json_extract(properties, '$.revenue'), '-')
             FROM customer360_events WHERE order_id = 'T-2' ORDER BY system"
        ),
        ["transactions purchase 962.56 -", "web purchase - 1000.0"]
    );
    assert_eq!(
        one(
            &conn,
            "SELECT printf('%.2f', sum(revenue)) FROM customer360_events WHERE order_id IN ('T-1', 'T-2')"
        ),
        "966.89"
    );
    // One customer: the order id links the web user to the order's.
    assert_eq!(
        int(
            &conn,
            "SELECT count(DISTINCT customer360_id) FROM customer360_events WHERE order_id = 'T-2'"
        ),
        1
    );
}

#[test]
fn order_statuses_net_refunds_once_and_currencies_never_mix() {
    let (_d, _ws, conn) = workspace(None);
    let orders = strings(
        &conn,
        "SELECT order_id || ' ' || transaction_type || ' ' || printf('%.2f', revenue) || ' ' || currency
                || ' (' || original_revenue || ' ' || original_currency || ') ' || coalesce(flags, '-')
         FROM clean_transactions WHERE source = 'woo' ORDER BY order_id",
    );
    assert_eq!(
        orders,
        [
            // Completed, "€49,90"
            "W-1 purchase 49.90 EUR (49.9 EUR) -",
            // Refunded in full: counts 0, not minus its total
            "W-2 purchase 0.00 EUR (0.0 EUR) -",
            // Partially Refunded, £100 less £25, at 1.20601 EUR per GBP
            "W-3 purchase 90.45 EUR (75.0 GBP) -",
            // Cancelled: no sale
            "W-4 void 0.00 EUR (0.0 EUR) -",
            // No CHF rate: never added to the euros
            "W-5 purchase 0.00 EUR (30.0 CHF) no_rate",
        ]
    );
    let profiles = strings(
        &conn,
        "SELECT m.record_key || ' ' || p.orders || ' ' || printf('%.2f', p.revenue)
         FROM customer360_profiles p JOIN customer360_id_map m ON m.customer360_id = p.customer360_id
         WHERE m.record_key IN ('crm:hubspot:103', 'crm:hubspot:104', 'crm:hubspot:105')
         ORDER BY m.record_key",
    );
    assert_eq!(
        profiles,
        [
            "crm:hubspot:103 2 49.90",
            // W-4 was cancelled: one order
            "crm:hubspot:104 1 90.45",
            "crm:hubspot:105 1 0.00",
        ]
    );
}

#[test]
fn a_shopify_line_item_export_loads_as_orders_with_their_lines() {
    let (_d, _ws, conn) = workspace(None);
    // Every line staged (nothing rejected for the order fields its later
    // lines lack); one order each, with its lines.
    let orders = strings(
        &conn,
        "SELECT order_id || ' ' || transaction_type || ' ' || original_revenue || ' ' || original_currency
                || ' ' || coalesce(email, '-') || ' ' || order_time || ' '
                || (SELECT group_concat(json_extract(l.value, '$.quantity') || 'x ' || json_extract(l.value, '$.product_name'), ', ')
                    FROM json_each(lines) l)
         FROM clean_transactions WHERE source = 'shopify' ORDER BY order_id",
    );
    assert_eq!(
        orders,
        [
            "#1001 purchase 59.0 USD alice.martin@example.com 2024-03-05T19:22:05.000Z 2x Blue Mug, 1x Teapot",
            // refunded in full: 0, not minus its total
            "#1002 purchase 0.0 USD frank.new@example.net 2024-03-06T14:00:00.000Z 1x Tea Sampler",
            // partly refunded: 100 less 25; the second line has the
            // order's e-mail and time from the first
            "#1003 purchase 75.0 USD bob.chen@example.org 2024-03-07T18:00:00.000Z 1x Kettle, 2x Filter",
        ]
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM stg_transactions WHERE source = 'shopify'"
        ),
        5
    );
    // Revenue counted once per order, in EUR.
    assert_eq!(
        one(
            &conn,
            "SELECT printf('%.2f', sum(revenue)) FROM customer360_events WHERE source = 'shopify'"
        ),
        format!("{:.2}", (59.0 + 75.0) * 0.96256)
    );
}

/// The fixtures' configuration with `from` replaced by `to` (once).
fn config_with(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("c360.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

/// A workspace of the fixtures with `config` as its `c360.toml` and other
/// contents for some files; loaded only (the load's result returned with
/// the connection).
fn loaded(
    config: &str,
    files: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    Connection,
    anyhow::Result<Vec<c360::pipeline::load::stage::LoadReport>>,
) {
    let dir = tempfile::tempdir().unwrap();
    c360::workspace::init(dir.path()).unwrap();
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(dir.path().join("c360.toml"), config).unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    let mut conn = store::open(&ws.db_path()).unwrap();
    let result = pipeline::load::stage::load_all(&mut conn, &ws, &NoProgress);
    (dir, conn, result)
}

fn signups_count(conn: &Connection) -> i64 {
    int(
        conn,
        "SELECT count(*) FROM stg_crm_customers WHERE source = 'signups'",
    )
}

#[test]
fn a_mapped_column_the_file_lacks_is_an_error_naming_the_closest() {
    let config = config_with("email = \"Email\"", "email = \"E-mail\"");
    let (_d, conn, result) = loaded(&config, &[]);
    let text = format!("{:#}", result.unwrap_err());
    assert!(text.contains("mapping.email"), "{text}");
    assert!(text.contains("\"E-mail\" is not in the file"), "{text}");
    assert!(text.contains("closest columns: \"Email\""), "{text}");
    // Nothing of that source was loaded; the others were.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM stg_crm_customers WHERE source = 'hubspot'"
        ),
        0
    );
    assert_eq!(signups_count(&conn), 3);
}

#[test]
fn a_bad_optional_value_can_be_flagged_instead_of_rejecting_the_row() {
    let signups = "Timestamp,Email Address,Full name,Phone number,How did you hear about us?\n\
                   yesterday,zoe@example.com,Zoe Quinn,,\n";
    // By default the row is rejected.
    let (_d, conn, result) = loaded(
        &config_with("", ""),
        &[("google_form_signups.csv", signups)],
    );
    result.unwrap();
    assert_eq!(signups_count(&conn), 0);
    assert_eq!(
        strings(&conn, "SELECT reason FROM rejects WHERE source = 'signups'"),
        ["bad_timestamp"]
    );
    // Flagged: staged, the value empty and kept in extra._invalid.
    let flagged = config_with(
        "created_at = \"Timestamp\"",
        "created_at = \"Timestamp\"\n[sources.fields.created_at]\non_error = \"flag\"",
    );
    let (_d, conn, result) = loaded(&flagged, &[("google_form_signups.csv", signups)]);
    result.unwrap();
    assert_eq!(signups_count(&conn), 1);
    assert_eq!(
        one(
            &conn,
            "SELECT coalesce(created_at, 'NULL') || ' ' || json_extract(extra, '$._invalid.created_at')
             FROM stg_crm_customers WHERE source = 'signups'"
        ),
        "NULL bad_timestamp: yesterday"
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM rejects WHERE source = 'signups'"
        ),
        0
    );
}

#[test]
fn explicit_formats_per_field_read_what_nothing_else_does() {
    // "2024.05.03 14h22" is no layout c360 knows; a format names it.
    let signups = "Timestamp,Email Address,Full name,Phone number,How did you hear about us?\n\
                   2024.05.03 14h22,zoe@example.com,Zoe Quinn,,\n";
    let config = config_with(
        "created_at = \"Timestamp\"",
        "created_at = \"Timestamp\"\n[sources.fields.created_at]\nformats = [\"%Y.%m.%d %Hh%M\"]",
    );
    let (_d, conn, result) = loaded(&config, &[("google_form_signups.csv", signups)]);
    result.unwrap();
    assert_eq!(
        one(
            &conn,
            "SELECT created_at FROM stg_crm_customers WHERE source = 'signups'"
        ),
        "2024-05-03T14:22:00.000Z"
    );
}

#[test]
fn a_zone_that_names_nothing_rejects_only_rows_whose_times_need_it() {
    let events = concat!(
        r#"{"type":"track","messageId":"z1","event":"Product Viewed","anonymousId":"a","timestamp":"2024-03-05T10:00:00Z","context":{"timezone":"Mars/Olympus"}}"#,
        "\n",
        r#"{"type":"track","messageId":"z2","event":"Product Viewed","anonymousId":"a","timestamp":"2024-03-05 10:00:00","context":{"timezone":"Mars/Olympus"}}"#,
        "\n",
    );
    let (_d, conn, result) = loaded(&config_with("", ""), &[("segment_events.ndjson", events)]);
    result.unwrap();
    // z1's time has its offset: staged, the zone flagged.
    assert_eq!(
        one(
            &conn,
            "SELECT event_id || ' ' || event_time || ' ' || json_extract(extra, '$._invalid.timezone')
             FROM stg_web_events"
        ),
        "z1 2024-03-05T10:00:00.000Z bad_timezone: Mars/Olympus"
    );
    // z2's naive time would be read in the wrong zone: rejected.
    assert_eq!(
        strings(
            &conn,
            "SELECT row_num || ' ' || reason FROM rejects WHERE source = 'segment'"
        ),
        ["2 bad_timezone"]
    );
}

#[test]
fn a_mapped_json_path_no_record_has_is_reported_with_the_closest() {
    let config = config_with(
        "format = \"segment\"\n",
        "format = \"segment\"\n[sources.mapping]\nemail = \"traits.e_mail\"\n",
    );
    let (_d, _conn, result) = loaded(&config, &[]);
    let reports = result.unwrap();
    let segment = reports.iter().find(|r| r.source == "segment").unwrap();
    assert_eq!(segment.warnings.len(), 1, "{:?}", segment.warnings);
    let w = &segment.warnings[0];
    assert!(w.contains("mapping.email"), "{w}");
    assert!(
        w.contains("\"traits.e_mail\" had no value in any of the 13 records"),
        "{w}"
    );
    assert!(w.contains("closest paths: \"traits.email\""), "{w}");
    // The other sources' mappings all found their values.
    assert!(
        reports
            .iter()
            .filter(|r| r.source != "segment")
            .all(|r| r.warnings.is_empty())
    );
}

// ---- c360's own exports for BI tools (export_all, export, segments) ----

use c360::read::dictionary::{self, Kind, Origin};
use c360::read::export::{self, ExportReport, Format};
use c360::read::segments::Segment;
use polars::prelude::{DataFrame, DataType, ParquetReader, SerReader, TimeUnit, TimeZone};
use std::collections::HashMap;

fn saved_segments() -> Vec<Segment> {
    vec![
        Segment {
            name: "at_risk".into(),
            filter: "churn_risk >= 0.6 and not anonymous".into(),
            description: "high churn risk".into(),
        },
        Segment {
            name: "buyers".into(),
            filter: "orders >= 1".into(),
            description: String::new(),
        },
    ]
}

fn parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The type pandas' `read_csv` infers for a column's cells (empty cells
/// are missing values and do not count): bool, int, float or string.
fn csv_type<'a>(cells: impl Iterator<Item = &'a str>) -> &'static str {
    let cells: Vec<&str> = cells.filter(|c| !c.is_empty()).collect();
    if cells.is_empty() {
        "empty"
    } else if cells.iter().all(|c| matches!(*c, "true" | "false")) {
        "bool"
    } else if cells.iter().all(|c| c.parse::<i64>().is_ok()) {
        "int"
    } else if cells.iter().all(|c| c.parse::<f64>().is_ok()) {
        "float"
    } else {
        "string"
    }
}

/// The same names for Parquet types.
fn parquet_type(d: &DataType) -> &'static str {
    match d {
        DataType::Boolean => "bool",
        DataType::Int64 => "int",
        DataType::Float64 => "float",
        DataType::String => "string",
        DataType::Datetime(..) => "time",
        DataType::List(_) => "list",
        _ => "other",
    }
}

/// A CSV file's header and its columns' cells.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let mut cols = vec![Vec::new(); headers.len()];
    for rec in reader.records() {
        let rec = rec.unwrap();
        for (i, cell) in rec.iter().enumerate() {
            cols[i].push(cell.to_string());
        }
    }
    (headers, cols)
}

fn report<'a>(reports: &'a [ExportReport], table: &str) -> &'a ExportReport {
    reports.iter().find(|r| r.table == table).unwrap()
}

/// The strings of a List(String) cell.
fn list_at(df: &DataFrame, column: &str, row: usize) -> Vec<String> {
    let s = df
        .column(column)
        .unwrap()
        .list()
        .unwrap()
        .get_as_series(row)
        .unwrap();
    let ca = s.str().unwrap();
    (0..ca.len())
        .filter_map(|i| ca.get(i).map(String::from))
        .collect()
}

/// A polars column's values in order (polars' own iterators are not
/// available with this crate's polars features).
fn values<T: polars::prelude::PolarsDataType>(
    ca: &polars::prelude::ChunkedArray<T>,
) -> Vec<Option<T::Physical<'_>>> {
    (0..ca.len()).map(|i| ca.get(i)).collect()
}

fn row_of(df: &DataFrame, key: &str, value: &str) -> usize {
    let ca = df.column(key).unwrap().str().unwrap().clone();
    values(&ca)
        .into_iter()
        .position(|v| v == Some(value))
        .unwrap_or_else(|| panic!("no {key} {value}"))
}

#[test]
fn export_all_writes_every_table_typed_alike_in_csv_and_parquet() {
    let (dir, _ws, conn) = common::demo();
    let out = dir.path().join("bi");
    let segments = saved_segments();
    let reports = export::export_all(&conn, &segments, &out, &NoProgress).unwrap();

    // Every documented table, with SQLite's row counts.
    let names: Vec<&str> = reports.iter().map(|r| r.table.as_str()).collect();
    for want in [
        "customer360_profiles",
        "customer360_events",
        "customer360_id_map",
        "identifiers",
        "identity_links",
        "match_candidates",
        "steward_decisions",
        "decision_members",
        "audit_log",
        "rejects",
        "analytics_lifecycle",
        "analytics_activity",
        "analytics_cohorts",
        "analytics_churn",
        "analytics_funnel",
        "segments",
        "segment_members",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert_eq!(names.len(), dictionary::TABLES.len());
    for r in &reports {
        let t = dictionary::table(&r.table).unwrap();
        if t.origin == Origin::Sqlite {
            let n = int(&conn, &format!("SELECT count(*) FROM {}", r.table));
            assert_eq!(r.rows as i64, n, "{}", r.table);
        }
    }
    assert_eq!(report(&reports, "segments").rows, 2);
    let members = int(
        &conn,
        "SELECT count(*) FROM customer360_profiles WHERE churn_risk >= 0.6 AND anonymous = 0",
    ) + int(
        &conn,
        "SELECT count(*) FROM customer360_profiles WHERE orders >= 1",
    );
    assert_eq!(report(&reports, "segment_members").rows as i64, members);

    // Parquet: the dictionary's types; CSV: the same types as pandas
    // infers them, list columns as child tables.
    for r in &reports {
        let t = dictionary::table(&r.table).unwrap();
        let pq = out.join("parquet").join(format!("{}.parquet", t.name));
        assert_eq!(r.path, pq);
        let df = parquet(&pq);
        assert_eq!(df.height() as u64, r.rows, "{}", t.name);
        let (headers, cells) = read_csv(&out.join("csv").join(format!("{}.csv", t.name)));
        assert_eq!(
            cells.first().map_or(0, Vec::len) as u64,
            r.rows,
            "{}",
            t.name
        );
        let mut want_headers = Vec::new();
        for c in t.exported() {
            let got = df.column(c.name).unwrap().dtype().clone();
            let want = match c.kind {
                Kind::Int => DataType::Int64,
                Kind::Real => DataType::Float64,
                Kind::Flag => DataType::Boolean,
                Kind::Time => DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
                Kind::List { .. } => DataType::List(Box::new(DataType::String)),
                _ => DataType::String,
            };
            assert_eq!(got, want, "{}.{}", t.name, c.name);
            if let Kind::List { .. } = c.kind {
                let (child, cols) = t.child(c).unwrap();
                let (h, _) = read_csv(&out.join("csv").join(format!("{child}.csv")));
                assert_eq!(h, cols, "{child}");
                assert!(
                    r.files
                        .contains(&out.join("csv").join(format!("{child}.csv")))
                );
                continue;
            }
            want_headers.push(c.name.to_string());
            let k = headers.iter().position(|h| h == c.name).unwrap();
            let column = &cells[k];
            let inferred = csv_type(column.iter().map(String::as_str));
            if inferred == "empty" {
                continue;
            }
            match c.kind {
                Kind::Time => {
                    assert_eq!(inferred, "string", "{}.{}", t.name, c.name);
                    // The same instants as the Parquet file's.
                    let ms = df
                        .column(c.name)
                        .unwrap()
                        .as_materialized_series()
                        .to_physical_repr()
                        .i64()
                        .unwrap()
                        .clone();
                    for (cell, ms) in column.iter().zip(values(&ms)) {
                        match ms {
                            None => assert_eq!(cell, "", "{}.{}", t.name, c.name),
                            Some(ms) => assert_eq!(
                                chrono::DateTime::parse_from_rfc3339(cell)
                                    .unwrap()
                                    .timestamp_millis(),
                                ms,
                                "{}.{} {cell}",
                                t.name,
                                c.name
                            ),
                        }
                        assert!(cell.is_empty() || cell.ends_with('Z'), "{cell}");
                    }
                }
                _ => assert_eq!(
                    inferred,
                    parquet_type(&want),
                    "{}.{}: CSV reads as {inferred}, Parquet as {want:?}",
                    t.name,
                    c.name
                ),
            }
        }
        assert_eq!(headers, want_headers, "{}", t.name);
    }

    // Flags and codes in particular.
    let profiles = parquet(&out.join("parquet/customer360_profiles.parquet"));
    let (headers, cells) = read_csv(&out.join("csv/customer360_profiles.csv"));
    let col = |name: &str| &cells[headers.iter().position(|h| h == name).unwrap()];
    assert!(col("anonymous").iter().all(|c| c == "true" || c == "false"));
    assert!(col("anonymous").iter().any(|c| c == "true"));
    let rfm = col("rfm_segment");
    let code = regex::Regex::new("^R[1-5]F[1-5]M[1-5]$").unwrap();
    assert!(rfm.iter().any(|c| !c.is_empty()));
    assert!(
        rfm.iter().all(|c| c.is_empty() || code.is_match(c)),
        "{rfm:?}"
    );
    let ids = profiles
        .column("customer360_id")
        .unwrap()
        .str()
        .unwrap()
        .clone();
    let segs = profiles
        .column("rfm_segment")
        .unwrap()
        .str()
        .unwrap()
        .clone();
    let csv_ids = col("customer360_id");
    for (i, (id, seg)) in values(&ids).into_iter().zip(values(&segs)).enumerate() {
        assert_eq!(id, Some(csv_ids[i].as_str()), "same row order");
        assert_eq!(seg.unwrap_or(""), rfm[i], "{id:?}");
        if let Some(seg) = seg {
            let digits: String = seg.chars().filter(char::is_ascii_digit).collect();
            let stored: String = conn
                .query_row(
                    "SELECT rfm_segment FROM customer360_profiles WHERE customer360_id = ?1",
                    [id.unwrap()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(digits, stored);
        }
    }

    // Parquet times are UTC-adjusted in the file's own schema.
    let mut reader = ParquetReader::new(
        std::fs::File::open(out.join("parquet/customer360_events.parquet")).unwrap(),
    );
    let meta = reader.get_metadata().unwrap().clone();
    let event_time = meta
        .schema_descr
        .columns()
        .iter()
        .find(|c| c.path_in_schema.iter().any(|p| p.as_str() == "event_time"))
        .unwrap();
    let logical = format!("{:?}", event_time.descriptor.primitive_type);
    assert!(logical.contains("is_adjusted_to_utc: true"), "{logical}");
    assert!(logical.contains("Milliseconds"), "{logical}");

    // A known customer's CRM ids: a list in Parquet, rows in CSV.
    let (id, packed): (String, String) = conn
        .query_row(
            "SELECT customer360_id, crm_ids FROM customer360_profiles WHERE crm_ids LIKE '%,%'
             ORDER BY customer360_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let want = strings(
        &conn,
        &format!(
            "SELECT DISTINCT record_id FROM customer360_id_map
             WHERE customer360_id = '{id}' AND system = 'crm' ORDER BY record_id"
        ),
    );
    assert!(want.len() >= 2, "{packed}");
    assert_eq!(
        list_at(
            &profiles,
            "crm_ids",
            row_of(&profiles, "customer360_id", &id)
        ),
        want
    );
    let (h, child) = read_csv(&out.join("csv/customer360_profiles__crm_ids.csv"));
    assert_eq!(h, ["customer360_id", "position", "crm_id"]);
    let rows: Vec<(String, String)> = (0..child[0].len())
        .filter(|&i| child[0][i] == id)
        .map(|i| (child[1][i].clone(), child[2][i].clone()))
        .collect();
    let expected: Vec<(String, String)> = want
        .iter()
        .enumerate()
        .map(|(k, v)| ((k + 1).to_string(), v.clone()))
        .collect();
    assert_eq!(rows, expected);
    // Child rows: one per value of every profile.
    let values = int(
        &conn,
        "SELECT count(*) FROM
           (SELECT DISTINCT customer360_id, record_id FROM customer360_id_map WHERE system = 'crm')",
    );
    assert_eq!(child[0].len() as i64, values);
    // An anonymous visitor has an empty list, not a missing one.
    let anon: String = conn
        .query_row(
            "SELECT customer360_id FROM customer360_profiles WHERE anonymous = 1 LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        list_at(
            &profiles,
            "crm_ids",
            row_of(&profiles, "customer360_id", &anon)
        )
        .is_empty()
    );

    // Churn signals and blocking rules, the same way.
    let (id, signals): (String, String) = conn
        .query_row(
            "SELECT customer360_id, churn_signals FROM customer360_profiles
             WHERE churn_signals LIKE '%; %' ORDER BY customer360_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let got = list_at(
        &profiles,
        "churn_signals",
        row_of(&profiles, "customer360_id", &id),
    );
    assert_eq!(got, signals.split("; ").collect::<Vec<_>>());
    assert!(got.len() >= 2);
    let candidates = parquet(&out.join("parquet/match_candidates.parquet"));
    let first: String = one(
        &conn,
        "SELECT blocking FROM match_candidates ORDER BY candidate_id LIMIT 1",
    );
    assert_eq!(
        list_at(&candidates, "blocking", 0),
        first.split(", ").collect::<Vec<_>>()
    );

    // Segments: their members, and the saved list.
    let seg = parquet(&out.join("parquet/segments.parquet"));
    assert_eq!(
        seg.column("segment").unwrap().str().unwrap().get(0),
        Some("at_risk")
    );
    let (h, m) = read_csv(&out.join("csv/segment_members.csv"));
    assert_eq!(h, ["segment", "customer360_id"]);
    assert!(m[0].iter().any(|s| s == "buyers"));

    // DuckDB views over the Parquet files by relative path, the manifest.
    let sql = std::fs::read_to_string(out.join("duckdb.sql")).unwrap();
    for r in &reports {
        assert!(
            sql.contains(&format!(
                "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_parquet('parquet/{}.parquet');",
                r.table, r.table
            )),
            "{sql}"
        );
    }
    assert!(!sql.contains(&out.display().to_string()), "relative paths");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let rows: HashMap<String, u64> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    for r in &reports {
        assert_eq!(rows[&r.table], r.rows);
    }
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("| customer360_events | "), "{readme}");
    assert_eq!(
        std::fs::read_to_string(out.join("schema.md")).unwrap(),
        dictionary::markdown()
    );
    // Nothing half-written is left.
    for sub in ["", "csv", "parquet"] {
        for e in std::fs::read_dir(out.join(sub)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".part"), "{name}");
        }
    }

    duckdb_reads_the_file_set(&out, &reports);
}

/// A Python with the duckdb module, if the machine has one.
fn python_with_duckdb() -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        root.join(".venv/bin/python"),
        "/work/venv/bin/python".into(),
    ]
    .into_iter()
    .find(|p| {
        p.exists()
            && std::process::Command::new(p)
                .args(["-c", "import duckdb"])
                .output()
                .is_ok_and(|o| o.status.success())
    })
}

/// DuckDB (when a Python with it is at hand) opens the file set as it is:
/// `.read duckdb.sql` in the directory, the row counts, the types.
fn duckdb_reads_the_file_set(out: &Path, reports: &[ExportReport]) {
    let Some(python) = python_with_duckdb() else {
        eprintln!(
            "skipped the DuckDB check: no .venv/bin/python or /work/venv/bin/python with duckdb \
             (python3 -m venv .venv && .venv/bin/pip install duckdb)"
        );
        return;
    };
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute(open("duckdb.sql").read())
tables = sys.argv[1].split(",")
counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
types = {r[0]: r[1] for r in con.execute("DESCRIBE customer360_profiles").fetchall()}
csv = {r[0]: r[1] for r in con.execute(
    "DESCRIBE SELECT * FROM read_csv('csv/customer360_profiles.csv')").fetchall()}
print(json.dumps({"counts": counts, "types": types, "csv": csv}))
"#;
    let tables: Vec<&str> = reports.iter().map(|r| r.table.as_str()).collect();
    let o = std::process::Command::new(&python)
        .current_dir(out)
        .args(["-c", script, &tables.join(",")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for r in reports {
        assert_eq!(v["counts"][&r.table], r.rows, "{}", r.table);
    }
    let types = &v["types"];
    assert_eq!(types["first_seen"], "TIMESTAMP WITH TIME ZONE", "{types}");
    assert_eq!(types["anonymous"], "BOOLEAN");
    assert_eq!(types["crm_ids"], "VARCHAR[]");
    assert_eq!(types["rfm_segment"], "VARCHAR");
    assert_eq!(types["revenue"], "DOUBLE");
    let csv = &v["csv"];
    assert_eq!(csv["anonymous"], "BOOLEAN", "{csv}");
    assert_eq!(csv["rfm_segment"], "VARCHAR", "{csv}");
    assert_eq!(csv["revenue"], "DOUBLE", "{csv}");
    assert_eq!(csv["orders"], "BIGINT", "{csv}");
}

#[test]
fn single_table_and_segment_exports_keep_the_formula_guard_and_list_tables() {
    let (dir, _ws, conn) = common::demo();
    let ids = strings(
        &conn,
        "SELECT customer360_id FROM customer360_profiles WHERE anonymous = 0 AND crm_ids <> ''
         ORDER BY customer360_id LIMIT 2",
    );
    // Hostile values in a text column and inside a packed list.
    conn.execute(
        "UPDATE customer360_profiles SET city = '=2+2', crm_ids = '=HYPERLINK(\"x\"),@SUM(1)'
         WHERE customer360_id = ?1",
        [&ids[0]],
    )
    .unwrap();
    let out = dir.path().join("profiles.csv");
    let r = export::export(
        &conn,
        "customer360_profiles",
        Format::Csv,
        &out,
        &NoProgress,
    )
    .unwrap();
    let child = dir.path().join("profiles__crm_ids.csv");
    let signals = dir.path().join("profiles__churn_signals.csv");
    assert_eq!(r.files, [out.clone(), child.clone(), signals.clone()]);
    assert!(
        r.summary().contains("profiles__crm_ids.csv"),
        "{}",
        r.summary()
    );
    let (h, cells) = read_csv(&out);
    assert!(!h.iter().any(|c| c == "crm_ids" || c == "churn_signals"));
    let k = h.iter().position(|c| c == "customer360_id").unwrap();
    let city = h.iter().position(|c| c == "city").unwrap();
    let row = cells[k].iter().position(|v| *v == ids[0]).unwrap();
    assert_eq!(cells[city][row], "'=2+2");
    let (_, c) = read_csv(&child);
    let hostile: Vec<&str> = (0..c[0].len())
        .filter(|&i| c[0][i] == ids[0])
        .map(|i| c[2][i].as_str())
        .collect();
    assert_eq!(hostile, ["'=HYPERLINK(\"x\")", "'@SUM(1)"]);
    // Parquet keeps the values as they are.
    let pq = dir.path().join("profiles.parquet");
    export::export(
        &conn,
        "customer360_profiles",
        Format::Parquet,
        &pq,
        &NoProgress,
    )
    .unwrap();
    let df = parquet(&pq);
    assert_eq!(
        list_at(&df, "crm_ids", row_of(&df, "customer360_id", &ids[0])),
        ["=HYPERLINK(\"x\")", "@SUM(1)"]
    );

    // A segment's audience file, with its child tables beside it.
    let audience = dir.path().join("audience.csv");
    let r = export::export_segment(
        &conn,
        "city = \"=2+2\"",
        Format::Csv,
        &audience,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.rows, 1);
    assert!(dir.path().join("audience__crm_ids.csv").exists());
    let (_, c) = read_csv(&dir.path().join("audience__crm_ids.csv"));
    assert!(c[0].iter().all(|id| *id == ids[0]) && c[0].len() == 2);

    // Steward tables and rejects are exportable one by one; unknown
    // tables are refused and nothing is left behind.
    let rejects = dir.path().join("rejects.parquet");
    let r = export::export(&conn, "rejects", Format::Parquet, &rejects, &NoProgress).unwrap();
    assert_eq!(r.rows as i64, int(&conn, "SELECT count(*) FROM rejects"));
    let empty = dir.path().join("decisions.csv");
    let r = export::export(&conn, "steward_decisions", Format::Csv, &empty, &NoProgress).unwrap();
    assert_eq!(r.rows, 0);
    assert!(
        std::fs::read_to_string(&empty)
            .unwrap()
            .starts_with("decision_id,at,actor")
    );
    let bad = dir.path().join("x.parquet");
    let err = export::export(&conn, "nope", Format::Parquet, &bad, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("cannot export"), "{err}");
    assert!(!bad.exists());
    let err = export::export(&conn, "segment_members", Format::Csv, &bad, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("cannot export"), "{err}");
}
