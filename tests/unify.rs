//! The unify step on the bundled sample data: one profile per customer,
//! reconciled event counts, survivorship with provenance, incremental
//! re-runs, and exports read back.

mod common;
use c360::pipeline::identity::steward;
use c360::pipeline::progress::NoProgress;
use c360::pipeline::{self, unify};
use c360::read::export::{self, Format};
use common::*;
use polars::prelude::{DataType, ParquetReader, SerReader, TimeUnit};

#[test]
fn one_profile_per_customer_and_counts_reconcile() {
    let (_dir, _ws, conn) = demo();
    let ids = int(
        &conn,
        "SELECT count(DISTINCT customer360_id) FROM customer360_id_map",
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM customer360_profiles"), ids);
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM customer360_id_map m
             LEFT JOIN customer360_profiles p USING (customer360_id) WHERE p.customer360_id IS NULL"
        ),
        0,
        "every id has its profile"
    );
    // Every clean web event and order is an event of its customer.
    for (system, table) in [
        ("web", "clean_web_events"),
        ("transactions", "clean_transactions"),
    ] {
        let clean = int(&conn, &format!("SELECT count(*) FROM {table}"));
        let events = int(
            &conn,
            &format!("SELECT count(*) FROM customer360_events WHERE system = '{system}'"),
        );
        assert_eq!(clean, events, "{system}");
    }
    assert_eq!(
        int(&conn, "SELECT sum(web_events) FROM customer360_profiles"),
        int(&conn, "SELECT count(*) FROM clean_web_events")
    );
    assert_eq!(
        int(&conn, "SELECT sum(crm_records) FROM customer360_profiles"),
        int(&conn, "SELECT count(*) FROM clean_crm_customers")
    );
    // An event's customer is its record's customer.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM customer360_events e JOIN customer360_id_map m USING (record_key)
             WHERE m.customer360_id <> e.customer360_id"
        ),
        0
    );
    // Lifecycle changes come from the CRM records with a status and a time.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM customer360_events WHERE system = 'crm'"
        ),
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE lifecycle_status IS NOT NULL
             AND coalesce(updated_at, created_at) IS NOT NULL"
        )
    );
    // Orders and revenue add up.
    let (orders, revenue): (i64, f64) = conn
        .query_row(
            "SELECT sum(orders), sum(revenue) FROM customer360_profiles",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (clean_orders, clean_revenue): (i64, f64) = conn
        .query_row(
            "SELECT sum(transaction_type = 'purchase'), sum(revenue) FROM clean_transactions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(orders, clean_orders);
    assert!(
        (revenue - clean_revenue).abs() < 1.0,
        "{revenue} vs {clean_revenue}"
    );
    // Visitors with nothing but anonymous events are anonymous profiles.
    let anonymous = int(
        &conn,
        "SELECT count(*) FROM customer360_profiles WHERE anonymous = 1",
    );
    assert!(anonymous > 0);
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM customer360_profiles WHERE anonymous = 1
             AND (crm_records > 0 OR orders > 0 OR email IS NOT NULL)"
        ),
        0
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM customer360_events e JOIN customer360_profiles p USING (customer360_id)
             WHERE p.anonymous = 1 AND e.user_id IS NOT NULL"
        ),
        0
    );
}

#[test]
fn golden_values_name_their_record_and_rule() {
    let (_dir, _ws, conn) = demo();
    // Every golden value is the value of the record it names, and that
    // record belongs to the customer.
    for (field, column, from) in [
        ("email", "email", "email_from"),
        ("phone", "phone", "phone_from"),
        ("country", "country", "country_from"),
        ("city", "city", "city_from"),
    ] {
        let wrong = int(
            &conn,
            &format!(
                "SELECT count(*) FROM customer360_profiles p
                 JOIN customer360_id_map m ON m.record_key = p.{from}
                 LEFT JOIN clean_crm_customers c
                   ON m.system = 'crm' AND c.source = m.source AND c.customer_id = m.record_id
                 WHERE p.{field} IS NOT NULL
                   AND (m.customer360_id <> p.customer360_id
                        OR (m.system = 'crm' AND c.{column} IS NOT p.{field}))"
            ),
        );
        assert_eq!(wrong, 0, "{field}");
        let missing = int(
            &conn,
            &format!(
                "SELECT count(*) FROM customer360_profiles
                 WHERE {field} IS NOT NULL AND ({from} IS NULL OR {field}_rule IS NULL)"
            ),
        );
        assert_eq!(missing, 0, "{field} without provenance");
    }
    // Phone is most_frequent: recompute it for customers with 3+ CRM records.
    let mut stmt = conn
        .prepare(
            "SELECT customer360_id, phone, phone_rule FROM customer360_profiles
             WHERE crm_records >= 3 AND phone IS NOT NULL",
        )
        .unwrap();
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!rows.is_empty());
    for (id, phone, rule) in rows {
        assert!(rule.starts_with("most_frequent ("), "{rule}");
        let counts = strings(
            &conn,
            &format!(
                "SELECT p || '=' || n FROM (
                   SELECT lower(trim(c.phone)) AS p, count(*) AS n FROM clean_crm_customers c
                   JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id
                   WHERE m.customer360_id = '{id}' AND c.phone IS NOT NULL GROUP BY p) ORDER BY 1"
            ),
        );
        let best = counts
            .iter()
            .filter_map(|c| c.rsplit_once('=')?.1.parse::<usize>().ok())
            .max()
            .unwrap();
        let mine = counts
            .iter()
            .find(|c| c.starts_with(&format!("{}=", phone.trim().to_lowercase())))
            .and_then(|c| c.rsplit_once('=')?.1.parse::<usize>().ok())
            .unwrap();
        assert_eq!(mine, best, "{id}: {phone} in {counts:?}");
    }
    // Name: CRM first (source_priority).
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM customer360_profiles WHERE name IS NOT NULL
             AND name_rule NOT LIKE 'source_priority (crm%'"
        ),
        0
    );
}

#[test]
fn reruns_rewrite_only_what_changed() {
    let (_dir, ws, mut conn) = demo();
    // Full runs, which read every customer and write only changed profiles.
    let r = unify::run_with(&mut conn, &ws, &NoProgress, true).unwrap();
    assert_eq!((r.new, r.updated, r.removed), (0, 0, 0));
    assert_eq!(r.unchanged, r.profiles);

    // A steward merges two customers: one profile changes, one goes.
    let (left, right): (String, String) = conn
        .query_row(
            "SELECT c.left_key, c.right_key FROM match_candidates c
             JOIN customer360_id_map l ON l.record_key = c.left_key
             JOIN customer360_id_map r ON r.record_key = c.right_key
             WHERE c.band = 'review' AND l.customer360_id <> r.customer360_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let id_of = |conn: &rusqlite::Connection, k: &str| -> String {
        strings(
            conn,
            &format!("SELECT customer360_id FROM customer360_id_map WHERE record_key = '{k}'"),
        )
        .remove(0)
    };
    let (a, b) = (id_of(&conn, &left), id_of(&conn, &right));
    let before_rows = int(&conn, "SELECT count(*) FROM customer360_profiles");
    steward::decide_pair(&mut conn, &left, &right, true, "ann", "same person").unwrap();
    let survivor = id_of(&conn, &left);
    assert!(survivor == a || survivor == b);
    let gone = if survivor == a { &b } else { &a };
    // The decision refreshed the two customers' profiles at once: a full
    // unify afterwards finds nothing to change.
    assert_eq!(
        int(&conn, "SELECT count(*) FROM customer360_profiles"),
        before_rows - 1
    );
    let r = unify::run_with(&mut conn, &ws, &NoProgress, true).unwrap();
    assert_eq!((r.new, r.updated, r.removed), (0, 0, 0), "{r:?}");
    assert_eq!(r.unchanged, r.profiles, "{r:?}");
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM customer360_profiles WHERE customer360_id = '{gone}'")
        ),
        0
    );
    let records = int(
        &conn,
        &format!(
            "SELECT crm_records + web_events + transactions FROM customer360_profiles WHERE customer360_id = '{survivor}'"
        ),
    );
    assert!(records >= 2);
    // The run is in the pipeline log like every step.
    pipeline::run_step(&mut conn, &ws, "unify", &NoProgress).unwrap();
    assert!(
        int(
            &conn,
            "SELECT count(*) FROM pipeline_runs WHERE step = 'unify' AND status = 'ok'"
        ) >= 2
    );
}

#[test]
fn a_fixed_now_and_a_stale_resolve() {
    let (_dir, ws, mut conn) = demo();
    let days = |conn: &rusqlite::Connection| {
        int(
            conn,
            "SELECT max(days_since_last_activity) FROM customer360_profiles",
        )
    };
    let before = days(&conn);
    let rules = ws.rules_dir().join("profiles.toml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let as_of: String = strings(&conn, "SELECT as_of FROM customer360_profiles LIMIT 1").remove(0);
    assert!(as_of.starts_with("2025-07-20"), "latest event: {as_of}");
    std::fs::write(
        &rules,
        text.replace(
            "now = \"latest_event\"",
            "now = \"2025-08-19T20:17:40.000Z\"",
        ),
    )
    .unwrap();
    let r = unify::run(&mut conn, &ws, &NoProgress).unwrap();
    assert_eq!(r.as_of, "2025-08-19T20:17:40.000Z");
    assert_eq!(days(&conn), before + 30);

    // A clean record without an id (standardise ran after resolve): refused.
    conn.execute(
        "INSERT INTO clean_web_events (source, batch_id, row_num, event_id, event_name,
             event_name_raw, event_mapped, event_time)
         VALUES ('web', 1, 999999, 'late-event', 'page_view', 'page', 1, '2025-07-01T00:00:00Z')",
        [],
    )
    .unwrap();
    let err = unify::run(&mut conn, &ws, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 web events") && err.contains("run `c360 run --step resolve`"),
        "{err}"
    );
    // Nothing was half-written.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM customer360_events WHERE system = 'web'"
        ),
        int(&conn, "SELECT count(*) FROM clean_web_events") - 1
    );
}

#[test]
fn exports_read_back_with_their_types() {
    let (dir, _ws, conn) = demo();
    let out = dir.path().join("profiles.parquet");
    let r = export::export(
        &conn,
        "customer360_profiles",
        Format::Parquet,
        &out,
        &NoProgress,
    )
    .unwrap();
    let profiles = int(&conn, "SELECT count(*) FROM customer360_profiles");
    assert_eq!(r.rows as i64, profiles);
    let df = ParquetReader::new(std::fs::File::open(&out).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height() as i64, profiles);
    let dtype = |name: &str| df.column(name).unwrap().dtype().clone();
    assert_eq!(
        dtype("first_seen"),
        DataType::Datetime(TimeUnit::Milliseconds, Some(polars::prelude::TimeZone::UTC)),
        "times are UTC-adjusted"
    );
    assert_eq!(dtype("revenue"), DataType::Float64);
    assert_eq!(dtype("orders"), DataType::Int64);
    assert_eq!(dtype("anonymous"), DataType::Boolean);
    assert_eq!(dtype("email"), DataType::String);
    assert!(df.column("row_hash").is_err(), "internal columns stay out");
    // Values survive: total revenue, and one timestamp to the millisecond.
    let sum: f64 = df
        .column("revenue")
        .unwrap()
        .as_materialized_series()
        .sum()
        .unwrap();
    let sql: f64 = conn
        .query_row("SELECT sum(revenue) FROM customer360_profiles", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!((sum - sql).abs() < 1e-6);
    let (id, first_seen): (String, String) = conn
        .query_row(
            "SELECT customer360_id, first_seen FROM customer360_profiles ORDER BY customer360_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let ids = df.column("customer360_id").unwrap().str().unwrap().clone();
    assert_eq!(ids.get(0), Some(id.as_str()));
    let ms = df
        .column("first_seen")
        .unwrap()
        .as_materialized_series()
        .to_physical_repr()
        .i64()
        .unwrap()
        .get(0)
        .unwrap();
    let expected = chrono::DateTime::parse_from_rfc3339(&first_seen)
        .unwrap()
        .timestamp_millis();
    assert_eq!(ms, expected);

    // Events, as CSV: every row, ISO times, a header.
    let out = dir.path().join("events.csv");
    let r = export::export(&conn, "customer360_events", Format::Csv, &out, &NoProgress).unwrap();
    let events = int(&conn, "SELECT count(*) FROM customer360_events");
    assert_eq!(r.rows as i64, events);
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let headers = reader.headers().unwrap().clone();
    let t = headers.iter().position(|h| h == "event_time").unwrap();
    let mut n = 0;
    for rec in reader.records() {
        let rec = rec.unwrap();
        assert!(rec[t].ends_with('Z'), "{:?}", &rec[t]);
        n += 1;
    }
    assert_eq!(n, events);
    // A table outside the dictionary (internal bookkeeping) is refused, and
    // nothing is left behind.
    let bad = dir.path().join("x.parquet");
    let err =
        export::export(&conn, "pipeline_runs", Format::Parquet, &bad, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("cannot export"), "{err}");
    assert!(!bad.exists());
}

#[test]
fn customers_are_found_listed_and_explained() {
    use c360::read::customers::{self, ListFilter, Sort, TimelineFilter};
    let (_dir, _ws, conn) = demo();
    // A known customer with CRM records, orders and web events.
    let (id, email, phone, name_key, crm_id): (String, String, String, String, String) = conn
        .query_row(
            "SELECT customer360_id, email, phone, name_key, substr(crm_ids, 1, instr(crm_ids || ',', ',') - 1)
             FROM customer360_profiles
             WHERE orders > 0 AND web_events > 0 AND email IS NOT NULL AND phone LIKE '+%'
             ORDER BY customer360_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    let found = |q: &str| -> Vec<String> {
        customers::search(&conn, q, 20)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert!(found(&email).contains(&id), "email {email}");
    assert!(found(&email.to_uppercase()[..6]).contains(&id) || email.len() < 6);
    assert!(found(&phone).contains(&id), "phone {phone}");
    assert!(found(&phone[1..]).contains(&id), "phone without +");
    assert!(found(&name_key).contains(&id), "name {name_key}");
    let rev: Vec<&str> = name_key.split(' ').rev().collect();
    assert!(found(&rev.join(" ")).contains(&id), "last name first");
    assert_eq!(found(&crm_id).first(), Some(&id), "CRM id first");
    assert_eq!(found(&id), vec![id.clone()]);
    let order: String = strings(
        &conn,
        &format!("SELECT record_id FROM customer360_events WHERE customer360_id = '{id}' AND system = 'transactions' LIMIT 1"),
    )
    .remove(0);
    assert!(found(&order).contains(&id), "order id {order}");
    let device: String = strings(
        &conn,
        &format!("SELECT device_id FROM customer360_events WHERE customer360_id = '{id}' AND device_id IS NOT NULL LIMIT 1"),
    )
    .remove(0);
    assert!(found(&device).contains(&id), "device {device}");
    assert!(found("zzzz-nobody").is_empty());

    // Lists: sorted, keyset pages without overlap, filters applied.
    let filter = ListFilter::default();
    let page1 = customers::list(&conn, Sort::Revenue, &filter, None, 25).unwrap();
    assert_eq!(page1.len(), 25);
    assert!(page1.windows(2).all(|w| w[0].revenue >= w[1].revenue));
    assert!(page1.iter().all(|r| !r.anonymous));
    let cursor = customers::cursor_after(&conn, Sort::Revenue, page1.last().unwrap()).unwrap();
    let page2 = customers::list(&conn, Sort::Revenue, &filter, Some(&cursor), 25).unwrap();
    assert!(page2[0].revenue <= page1[24].revenue);
    assert!(page2.iter().all(|r| page1.iter().all(|p| p.id != r.id)));
    let top_sql = strings(
        &conn,
        "SELECT customer360_id FROM customer360_profiles WHERE anonymous = 0
         ORDER BY revenue DESC, customer360_id DESC LIMIT 50",
    );
    let both: Vec<String> = page1.iter().chain(&page2).map(|r| r.id.clone()).collect();
    assert_eq!(both, top_sql);
    let churned = ListFilter {
        anonymous: false,
        lifecycle: Some("churned".into()),
        segment: None,
    };
    let rows = customers::list(&conn, Sort::ChurnRisk, &churned, None, 50).unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r.lifecycle.as_deref() == Some("churned"))
    );
    let with_anon = ListFilter {
        anonymous: true,
        lifecycle: None,
        segment: None,
    };
    let rows = customers::list(&conn, Sort::LastActivity, &with_anon, None, 3000).unwrap();
    assert!(rows.iter().any(|r| r.anonymous));

    // Timeline: newest first, paged, filtered.
    let all = customers::timeline(&conn, &id, TimelineFilter::All, None, 1000).unwrap();
    assert!(all.len() >= 3);
    assert!(all.windows(2).all(|w| w[0].time >= w[1].time));
    let first = customers::timeline(&conn, &id, TimelineFilter::All, None, 2).unwrap();
    let last = first.last().unwrap();
    let next = customers::timeline(
        &conn,
        &id,
        TimelineFilter::All,
        Some((&last.time, last.seq)),
        1000,
    )
    .unwrap();
    let paged: Vec<i64> = first.iter().chain(&next).map(|e| e.seq).collect();
    assert_eq!(paged, all.iter().map(|e| e.seq).collect::<Vec<_>>());
    let orders = customers::timeline(&conn, &id, TimelineFilter::Orders, None, 100).unwrap();
    assert!(!orders.is_empty() && orders.iter().all(|e| e.system == "transactions"));

    // The 360 view: who, where each value came from, what they did, why.
    let text = customers::view_text(&conn, &id).unwrap();
    for part in [
        "Golden record",
        &email,
        "Source records",
        "Identifiers",
        "Latest events",
        "Why these records are one customer",
    ] {
        assert!(text.contains(part), "no {part:?} in\n{text}");
    }
    let email_from: String = strings(
        &conn,
        &format!("SELECT email_from FROM customer360_profiles WHERE customer360_id = '{id}'"),
    )
    .remove(0);
    assert!(text.contains(&email_from), "{text}");
}

/// Cells of `column` in a CSV file, keyed by the `key` column.
fn csv_cells(
    path: &std::path::Path,
    key: &str,
    column: &str,
) -> std::collections::HashMap<String, String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let k = headers.iter().position(|h| h == key).unwrap();
    let c = headers.iter().position(|h| h == column).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[k].to_string(), r[c].to_string())
        })
        .collect()
}

#[test]
fn csv_exports_neutralise_formula_injection_and_nul_bytes() {
    let (dir, _ws, conn) = demo();
    // Hostile text in a profile column (golden values come from source data).
    let hostile = [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("=2+2", "'=2+2"),
        ("@cat", "'@cat"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.5", "-12.5"),
        ("+4930123456", "+4930123456"),
        ("a\0b", "a\\0b"),
        ("Berlin", "Berlin"),
    ];
    let ids = strings(
        &conn,
        "SELECT customer360_id FROM customer360_profiles WHERE anonymous = 0
         ORDER BY customer360_id LIMIT 11",
    );
    for (id, (value, _)) in ids.iter().zip(hostile) {
        conn.execute(
            "UPDATE customer360_profiles SET city = ?2 WHERE customer360_id = ?1",
            (id, value),
        )
        .unwrap();
    }
    // A typed column keeps its numbers, negative ones included.
    conn.execute(
        "UPDATE customer360_profiles SET revenue = -12.5 WHERE customer360_id = ?1",
        [&ids[0]],
    )
    .unwrap();
    let out = dir.path().join("profiles.csv");
    export::export(
        &conn,
        "customer360_profiles",
        Format::Csv,
        &out,
        &NoProgress,
    )
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert!(!bytes.contains(&0), "no NUL byte is written");
    let city = csv_cells(&out, "customer360_id", "city");
    for (id, (value, written)) in ids.iter().zip(hostile) {
        assert_eq!(city[id], written, "{value:?}");
    }
    assert_eq!(
        csv_cells(&out, "customer360_id", "revenue")[&ids[0]],
        "-12.5"
    );

    // A segment's audience file, the same way.
    let out = dir.path().join("audience.csv");
    export::export_segment(&conn, "city = \"=2+2\"", Format::Csv, &out, &NoProgress).unwrap();
    let city = csv_cells(&out, "customer360_id", "city");
    assert_eq!(city.len(), 1);
    assert_eq!(city[&ids[1]], "'=2+2");

    // Events: web-event data is attacker-controlled.
    let key: String = conn
        .query_row(
            "SELECT record_key FROM customer360_events WHERE system = 'web' ORDER BY event_seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE customer360_events SET event_name = '@SUM(1+1)*cmd|'' /C calc''!A0',
                properties = '=HYPERLINK(\"http://evil\",\"x\")' WHERE record_key = ?1",
        [&key],
    )
    .unwrap();
    let out = dir.path().join("events.csv");
    export::export(&conn, "customer360_events", Format::Csv, &out, &NoProgress).unwrap();
    assert_eq!(
        csv_cells(&out, "record_key", "event_name")[&key],
        "'@SUM(1+1)*cmd|' /C calc'!A0"
    );
    assert_eq!(
        csv_cells(&out, "record_key", "properties")[&key],
        "'=HYPERLINK(\"http://evil\",\"x\")"
    );
}
