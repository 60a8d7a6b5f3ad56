//! Real export shapes (`tests/fixtures/exports/`: HubSpot contacts, a
//! Google Form's responses, Segment calls, a Square items export), each
//! loaded with its `c360.toml` alone: the values parsed, the links made and
//! the revenue.

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
