//! Extract + stage (`c360 load`) on small hand-made files: every format, every
//! reject reason, idempotent reloads, reconciling counts, atomic loads and the
//! REST source against a server on 127.0.0.1.

mod common;
use common::*;

use c360::pipeline::load::stage::{self, LoadReport};
use c360::pipeline::progress::{CancelFlag, NoProgress};
use c360::store;
use c360::workspace::Workspace;
use rusqlite::Connection;
use std::path::Path;

/// A workspace in a temp dir with the given config and files.
fn workspace(config: &str, files: &[(&str, &[u8])]) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c360.toml"), config).unwrap();
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let ws = Workspace::open(dir.path()).unwrap();
    (dir, ws)
}

fn load(ws: &Workspace) -> (Connection, Vec<LoadReport>) {
    let mut conn = store::open(&ws.db_path()).unwrap();
    let reports = stage::load_all(&mut conn, ws, &NoProgress).unwrap();
    (conn, reports)
}

/// (row_num, field, reason) of every reject of a source, in row order.
fn rejects(conn: &Connection, source: &str) -> Vec<(i64, Option<String>, String)> {
    let mut stmt = conn
        .prepare("SELECT row_num, field, reason FROM rejects WHERE source = ?1 ORDER BY row_num")
        .unwrap();
    stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn assert_reconciles(conn: &Connection, r: &LoadReport) {
    assert_eq!(r.rows_read, r.rows_staged + r.rows_rejected, "{r:?}");
    let raw: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM raw_{} WHERE batch_id = ?1", r.source),
            [r.batch_id],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(raw as u64, r.rows_read, "raw rows of {}", r.source);
    let rej: i64 = conn
        .query_row(
            "SELECT count(*) FROM rejects WHERE batch_id = ?1",
            [r.batch_id],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(rej as u64, r.rows_rejected);
}

const CRM_CSV: &[u8] = b"customer_id,first_name,last_name,email,street,created_at,loyalty_tier\n\
C1,Ann,Lee,ann@example.com,1 Main St,2024-03-05T10:15:00Z,gold\n\
C2,Bob,\"Smith, Jr.\",bob@example.com,\"2 High St\nFlat 3\",03/05/2024 10:15,\n\
,Nobody,Here,x@example.com,,2024-01-01,\n\
C4,Dan,Bad,dan@example.com,,not a date,\n\
C5,Eve,Extra,eve@example.com,,2024-01-01,silver,surplus\n\
C6,Few\n";

const CRM_CONFIG: &str = r#"
[[sources]]
name = "crm"
system = "crm"
location = "crm.csv"
format = "csv"
[sources.mapping]
address = "street"
"#;

#[test]
fn csv_rows_are_staged_or_rejected_with_their_reason() {
    let mut bytes = CRM_CSV.to_vec();
    // Row 7: Latin-1 "Müller" (0xFC) is not UTF-8.
    bytes.extend_from_slice(b"C7,Mia,M\xfcller,mia@example.com,,2024-01-01,\n");
    let (_dir, ws) = workspace(CRM_CONFIG, &[("crm.csv", &bytes)]);
    let (conn, reports) = load(&ws);
    let r = &reports[0];
    assert_eq!((r.rows_read, r.rows_staged, r.rows_rejected), (7, 2, 5));
    assert_reconciles(&conn, r);
    assert_eq!(
        rejects(&conn, "crm"),
        vec![
            (3, Some("customer_id".into()), "missing_value".into()),
            (4, Some("created_at".into()), "bad_timestamp".into()),
            (5, None, "ragged_row".into()),
            (6, None, "ragged_row".into()),
            (7, None, "invalid_utf8".into()),
        ]
    );
    // Staged rows are typed: the quoted comma and newline survive, the
    // timestamp is UTC, the unmapped column is an extra attribute.
    let staged = strings(
        &conn,
        "SELECT customer_id || '|' || last_name || '|' || address || '|' || created_at || '|' || coalesce(extra, '-')
         FROM stg_crm_customers ORDER BY row_num",
    );
    assert_eq!(
        staged,
        vec![
            "C1|Lee|1 Main St|2024-03-05T10:15:00.000Z|{\"loyalty_tier\":\"gold\"}",
            "C2|Smith, Jr.|2 High St\nFlat 3|2024-03-05T10:15:00.000Z|-",
        ]
    );
    // The raw table keeps the original text, and the invalid bytes exactly.
    let raw2: String = conn
        .query_row("SELECT raw FROM raw_crm WHERE row_num = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        raw2,
        "C2,Bob,\"Smith, Jr.\",bob@example.com,\"2 High St\nFlat 3\",03/05/2024 10:15,"
    );
    let raw7: Vec<u8> = conn
        .query_row("SELECT raw FROM rejects WHERE row_num = 7", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        raw7,
        b"C7,Mia,M\xfcller,mia@example.com,,2024-01-01,".to_vec()
    );
}

#[test]
fn reloading_the_same_file_adds_nothing() {
    let (_dir, ws) = workspace(CRM_CONFIG, &[("crm.csv", CRM_CSV)]);
    let (conn, first) = load(&ws);
    drop(conn);
    let (conn, second) = load(&ws);
    assert!(!first[0].already_loaded);
    assert!(second[0].already_loaded);
    assert_eq!(second[0].batch_id, first[0].batch_id);
    assert_eq!(store::count(&conn, "raw_crm").unwrap(), 6);
    assert_eq!(store::count(&conn, "stg_crm_customers").unwrap(), 2);
    assert_eq!(store::count(&conn, "rejects").unwrap(), 4);
    assert_eq!(store::count(&conn, "load_batches").unwrap(), 1);

    // Changed content is a new batch.
    let mut more = CRM_CSV.to_vec();
    more.extend_from_slice(b"C9,New,Row,new@example.com,,2024-02-02,\n");
    std::fs::write(ws.root.join("crm.csv"), more).unwrap();
    let (conn, third) = load(&ws);
    assert!(!third[0].already_loaded);
    assert_eq!(third[0].rows_read, 7);
    assert_eq!(store::count(&conn, "load_batches").unwrap(), 2);
}

#[test]
fn csv_options_delimiter_quote_and_no_header() {
    let config = r#"
[settings]
date_order = "dmy"
timezone = "Europe/Berlin"

[[sources]]
name = "orders"
system = "transactions"
location = "orders.txt"
format = "csv"
[sources.csv]
delimiter = ";"
quote = "'"
has_header = false
columns = ["id", "cust", "when", "amount", "qty"]
[sources.mapping]
order_id = "id"
customer_id = "cust"
order_time = "when"
revenue = "amount"
quantity = "qty"
"#;
    let body = b"O1;C1;03/04/2024 12:00;'1,234.50';2\n\
O2;;04/04/2024;10;1\n\
O3;C3;05/04/2024;ten;1\n\
O4;C4;05/04/2024;10;1.5\n";
    let (_dir, ws) = workspace(config, &[("orders.txt", body)]);
    let (conn, reports) = load(&ws);
    assert_reconciles(&conn, &reports[0]);
    let staged = strings(
        &conn,
        "SELECT order_id || '|' || order_time || '|' || revenue || '|' || quantity FROM stg_transactions",
    );
    // Day-first, and noon in Berlin (CEST) is 10:00 UTC.
    assert_eq!(staged, vec!["O1|2024-04-03T10:00:00.000Z|1234.5|2"]);
    assert_eq!(
        rejects(&conn, "orders"),
        vec![
            (
                2,
                Some("customer_id|email".into()),
                "missing_identifier".into()
            ),
            (3, Some("revenue".into()), "bad_number".into()),
            (4, Some("quantity".into()), "bad_integer".into()),
        ]
    );
}

#[test]
fn segment_ndjson_loads_with_no_mapping() {
    let config = r#"
[[sources]]
name = "web"
system = "web"
location = "events.ndjson"
format = "segment"
"#;
    let body = concat!(
        r#"{"messageId":"m1","type":"track","event":"Order Completed","anonymousId":"ck1","userId":"C1","timestamp":"2024-05-01T12:00:00+02:00","context":{"device":{"id":"d1"},"page":{"url":"https://x/p"}},"properties":{"order_id":"O1","session_id":"s1"},"sentAt":"2024-05-01T10:00:01Z"}"#,
        "\n",
        r#"{"messageId":"m2","type":"page","name":"Home","anonymousId":"ck1","timestamp":1714557600123}"#,
        "\n\n",
        r#"{"messageId":"m3","type":"track","event":"Click","anonymousId":"ck1","timestamp":"yesterday"}"#,
        "\n",
        r#"{"messageId":"m4","type":"track","event":"Click","anony"#,
        "\n",
        r#"{"type":"track","event":"Click","timestamp":"2024-05-01T10:00:00Z"}"#,
        "\n",
        r#"{"messageId":"m6","type":"track","event":"Click","timestamp":"2024-05-01T10:00:00Z","properties":"oops"}"#,
        "\n",
        r#"["not","an","object"]"#,
        "\n",
    );
    let (_dir, ws) = workspace(config, &[("events.ndjson", body.as_bytes())]);
    let (conn, reports) = load(&ws);
    assert_eq!(reports[0].rows_read, 7, "blank lines are not rows");
    assert_reconciles(&conn, &reports[0]);
    let staged = strings(
        &conn,
        "SELECT event_id || '|' || event_name || '|' || event_time || '|' || coalesce(user_id,'-') || '|' ||
                cookie_id || '|' || coalesce(device_id,'-') || '|' || coalesce(order_id,'-') || '|' ||
                coalesce(session_id,'-') || '|' || coalesce(page_url,'-') || '|' || coalesce(extra,'-')
         FROM stg_web_events ORDER BY row_num",
    );
    assert_eq!(
        staged,
        vec![
            "m1|Order Completed|2024-05-01T10:00:00.000Z|C1|ck1|d1|O1|s1|https://x/p|{\"sentAt\":\"2024-05-01T10:00:01Z\"}",
            "m2|Home|2024-05-01T10:00:00.123Z|-|ck1|-|-|-|-|-",
        ]
    );
    assert_eq!(
        rejects(&conn, "web"),
        vec![
            (3, Some("event_time".into()), "bad_timestamp".into()),
            (4, None, "malformed_json".into()),
            (5, Some("event_id".into()), "missing_value".into()),
            (6, Some("properties".into()), "bad_json".into()),
            (7, None, "not_an_object".into()),
        ]
    );
}

#[test]
fn ndjson_line_with_invalid_utf8_is_rejected_and_kept_byte_for_byte() {
    let config = r#"
[[sources]]
name = "web"
system = "web"
location = "e.ndjson"
format = "segment"
"#;
    let mut body =
        br#"{"messageId":"m1","event":"Login","timestamp":"2024-05-01T10:00:00Z"}"#.to_vec();
    body.push(b'\n');
    let bad =
        b"{\"messageId\":\"m2\",\"event\":\"M\xfcller\",\"timestamp\":\"2024-05-01T10:00:00Z\"}";
    body.extend_from_slice(bad);
    body.push(b'\n');
    let (_dir, ws) = workspace(config, &[("e.ndjson", &body)]);
    let (conn, reports) = load(&ws);
    assert_eq!((reports[0].rows_staged, reports[0].rows_rejected), (1, 1));
    assert_eq!(
        rejects(&conn, "web"),
        vec![(2, None, "invalid_utf8".into())]
    );
    let raw: Vec<u8> = conn
        .query_row("SELECT raw FROM rejects WHERE row_num = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(raw, bad.to_vec());
}

#[test]
fn json_array_with_nested_mapping() {
    let config = r#"
[[sources]]
name = "crm_json"
system = "crm"
location = "customers.json"
format = "json"
[sources.mapping]
customer_id = "id"
email = "contact.email"
"#;
    let body = br#"[
  {"id": "C1", "contact": {"email": "a@x.com"}, "first_name": "Ann", "vip": true},
  {"id": 2, "contact": {"email": null}},
  {"contact": {"email": "b@x.com"}},
  42
]"#;
    let (_dir, ws) = workspace(config, &[("customers.json", body)]);
    let (conn, reports) = load(&ws);
    assert_eq!(
        (
            reports[0].rows_read,
            reports[0].rows_staged,
            reports[0].rows_rejected
        ),
        (4, 2, 2)
    );
    let staged = strings(
        &conn,
        "SELECT customer_id || '|' || coalesce(email,'-') || '|' || coalesce(extra,'-') FROM stg_crm_customers ORDER BY row_num",
    );
    // A key that gave no core field a value stays as an extra attribute.
    assert_eq!(
        staged,
        vec![
            "C1|a@x.com|{\"vip\":true}",
            "2|-|{\"contact\":{\"email\":null}}"
        ]
    );
    let raw: String = conn
        .query_row("SELECT raw FROM raw_crm_json WHERE row_num = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(raw, r#"{"id": 2, "contact": {"email": null}}"#);
}

#[test]
fn malformed_json_array_is_refused_whole() {
    let config = r#"
[[sources]]
name = "crm"
system = "crm"
location = "c.json"
format = "json"
"#;
    let (_dir, ws) = workspace(
        config,
        &[("c.json", b"[{\"customer_id\": \"C1\"},\n{oops}]")],
    );
    let mut conn = store::open(&ws.db_path()).unwrap();
    let err = stage::load_all(&mut conn, &ws, &NoProgress).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(msg.contains("nothing was loaded"), "{msg}");
    assert_eq!(store::count(&conn, "load_batches").unwrap(), 0);
}

#[test]
fn parquet_source() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let mut df = df!(
        "order_id" => [Some("O1"), Some("O2"), None],
        "customer_id" => [Some("C1"), None, Some("C3")],
        "email" => [None, Some("b@x.com"), None],
        "order_time" => ["2024-05-01 10:00:00", "1714557600", "2024-05-01"],
        "revenue" => [Some(12.5), Some(-3.0), Some(1.0)],
        "quantity" => [1i64, -1, 1],
        "channel" => ["web", "store", "app"]
    )
    .unwrap();
    let path = dir.path().join("t.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let config = r#"
[[sources]]
name = "transactions"
system = "transactions"
location = "t.parquet"
format = "parquet"
"#;
    let (_d, ws) = workspace(config, &[("t.parquet", &bytes)]);
    let (conn, reports) = load(&ws);
    assert_reconciles(&conn, &reports[0]);
    let staged = strings(
        &conn,
        "SELECT order_id || '|' || order_time || '|' || revenue || '|' || quantity || '|' || extra FROM stg_transactions ORDER BY row_num",
    );
    assert_eq!(
        staged,
        vec![
            "O1|2024-05-01T10:00:00.000Z|12.5|1|{\"channel\":\"web\"}",
            "O2|2024-05-01T10:00:00.000Z|-3.0|-1|{\"channel\":\"store\"}",
        ]
    );
    assert_eq!(
        rejects(&conn, "transactions"),
        vec![(3, Some("order_id".into()), "missing_value".into())]
    );
    let raw: String = conn
        .query_row(
            "SELECT raw FROM raw_transactions WHERE row_num = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["revenue"], serde_json::json!(12.5));
    assert_eq!(v["email"], serde_json::Value::Null);
}

#[test]
fn missing_required_column_names_source_file_and_column_and_writes_nothing() {
    let (_dir, ws) = workspace(
        CRM_CONFIG,
        &[("crm.csv", b"id,first_name\nC1,Ann\n" as &[u8])],
    );
    let mut conn = store::open(&ws.db_path()).unwrap();
    let err = stage::load_all(&mut conn, &ws, &NoProgress).unwrap_err();
    let msg = format!("{err:#}");
    for needle in [
        "\"crm\"",
        "crm.csv",
        "\"customer_id\"",
        "Nothing of this source was loaded",
        "committed: none; not committed: crm",
    ] {
        assert!(msg.contains(needle), "{needle} not in: {msg}");
    }
    assert_eq!(store::count(&conn, "load_batches").unwrap(), 0);
    assert!(!store::table_exists(&conn, "raw_crm").unwrap());
}

#[test]
fn a_cancelled_load_leaves_the_database_as_it_was() {
    let mut body = b"customer_id,email\n".to_vec();
    for i in 0..20_000 {
        body.extend_from_slice(format!("C{i},c{i}@example.com\n").as_bytes());
    }
    let (_dir, ws) = workspace(
        &CRM_CONFIG.replace("address = \"street\"", ""),
        &[("crm.csv", &body)],
    );
    let mut conn = store::open(&ws.db_path()).unwrap();
    let cancel = CancelFlag::default();
    cancel.cancel();
    let err = stage::load_all(&mut conn, &ws, &cancel).unwrap_err();
    assert!(format!("{err:#}").contains("cancelled"), "{err:#}");
    for table in ["load_batches", "stg_crm_customers", "rejects", "raw_crm"] {
        assert_eq!(store::count(&conn, table).unwrap(), 0, "{table}");
    }
    // And a normal load afterwards works.
    let reports = stage::load_all(&mut conn, &ws, &NoProgress).unwrap();
    assert_eq!(reports[0].rows_staged, 20_000);
}

#[test]
fn empty_csv_is_an_error() {
    let (_dir, ws) = workspace(CRM_CONFIG, &[("crm.csv", b"" as &[u8])]);
    let mut conn = store::open(&ws.db_path()).unwrap();
    let err = stage::load_all(&mut conn, &ws, &NoProgress).unwrap_err();
    assert!(format!("{err:#}").contains("empty"), "{err:#}");
}

#[test]
fn missing_file_names_the_source_and_path() {
    let (_dir, ws) = workspace(CRM_CONFIG, &[]);
    let mut conn = store::open(&ws.db_path()).unwrap();
    let err = stage::load_all(&mut conn, &ws, &NoProgress).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("\"crm\"") && msg.contains("crm.csv"), "{msg}");
}

/// The demo's CRM header and a few of its rows, with `lines` edited.
fn crm_slice(rows: usize) -> Vec<String> {
    // The sample has a line of invalid UTF-8 further down, on purpose.
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/crm.csv")).unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .take(rows + 1)
        .map(str::to_string)
        .collect()
}

const SAMPLE_CRM_CONFIG: &str = r#"
[[sources]]
name = "crm"
system = "crm"
location = "crm.csv"
format = "csv"
[sources.mapping]
address = "street"
"#;

/// (row_num, reason, detail) of every reject of a source.
fn reject_details(conn: &Connection, source: &str) -> Vec<(i64, String, String)> {
    let mut stmt = conn
        .prepare("SELECT row_num, reason, detail FROM rejects WHERE source = ?1 ORDER BY row_num")
        .unwrap();
    stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Put a quote at the start of the `city` field (column 8) of a CSV line.
fn quote_city(line: &str) -> String {
    let mut fields: Vec<&str> = line.split(',').collect();
    let city = format!("\"{}", fields[7]);
    fields[7] = &city;
    fields.join(",")
}

#[test]
fn stray_quote_costs_only_its_own_lines() {
    // Two stray quotes 90 lines apart in the same column: before, the 89
    // rows between them became one staged `city`, with no reject.
    let mut lines = crm_slice(120);
    lines[10] = quote_city(&lines[10]); // line 11 of the file
    lines[100] = quote_city(&lines[100]); // line 101
    let body = lines.join("\n") + "\n";
    let (_dir, ws) = workspace(SAMPLE_CRM_CONFIG, &[("crm.csv", body.as_bytes())]);
    let (conn, reports) = load(&ws);
    let r = &reports[0];
    assert_reconciles(&conn, r);
    assert_eq!((r.rows_read, r.rows_rejected), (120, 2), "{r:?}");
    let rej = reject_details(&conn, "crm");
    assert_eq!(
        rej.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        vec![(10, "malformed_csv"), (100, "malformed_csv")]
    );
    assert!(rej[0].2.starts_with("line 11: "), "{}", rej[0].2);
    assert!(rej[1].2.starts_with("line 101: "), "{}", rej[1].2);
    // The rejected line is kept as it was; every other city is short.
    let raw: String = conn
        .query_row("SELECT raw FROM raw_crm WHERE row_num = 10", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(raw, lines[10]);
    let longest = int(&conn, "SELECT max(length(city)) FROM stg_crm_customers");
    assert!(longest < 40, "{longest}");
}

#[test]
fn stray_quotes_on_adjacent_lines_cost_two_lines() {
    let mut lines = crm_slice(20);
    lines[5] = quote_city(&lines[5]);
    lines[6] = quote_city(&lines[6]);
    let body = lines.join("\n") + "\n";
    let (_dir, ws) = workspace(SAMPLE_CRM_CONFIG, &[("crm.csv", body.as_bytes())]);
    let (conn, reports) = load(&ws);
    assert_reconciles(&conn, &reports[0]);
    assert_eq!((reports[0].rows_read, reports[0].rows_rejected), (20, 2));
    let rows: Vec<i64> = reject_details(&conn, "crm").iter().map(|r| r.0).collect();
    assert_eq!(rows, vec![5, 6]);
}

#[test]
fn unterminated_quote_costs_only_its_line() {
    // Before: the 2,468 rows after it became one `ragged_row` reject.
    let mut lines = crm_slice(50);
    lines[3] = quote_city(&lines[3]); // data row 3, line 4
    let body = lines.join("\n") + "\n";
    let (_dir, ws) = workspace(SAMPLE_CRM_CONFIG, &[("crm.csv", body.as_bytes())]);
    let (conn, reports) = load(&ws);
    assert_reconciles(&conn, &reports[0]);
    assert_eq!(
        (
            reports[0].rows_read,
            reports[0].rows_staged,
            reports[0].rows_rejected
        ),
        (50, 49, 1)
    );
    let rej = reject_details(&conn, "crm");
    assert_eq!((rej[0].0, rej[0].1.as_str()), (3, "malformed_csv"));
    assert!(
        rej[0]
            .2
            .starts_with("line 4: a quoted field opened on this line is never closed"),
        "{}",
        rej[0].2
    );
}

#[test]
fn multi_line_quoted_fields_that_fit_the_header_still_load() {
    let body = "customer_id,note,email\n\
                \"C1\nsecond line\",a,a@x.com\n\
                C2,\"three\nline, with a comma\nnote\",b@x.com\n\
                C3,\"He said \"\"hi\"\"\nthen left\",c@x.com\n";
    let (_dir, ws) = workspace(
        &SAMPLE_CRM_CONFIG.replace("address = \"street\"", ""),
        &[("crm.csv", body.as_bytes())],
    );
    let (conn, reports) = load(&ws);
    assert_eq!((reports[0].rows_read, reports[0].rows_staged), (3, 3));
    assert_eq!(
        strings(
            &conn,
            "SELECT customer_id FROM stg_crm_customers ORDER BY row_num"
        ),
        vec!["C1\nsecond line", "C2", "C3"]
    );
    assert_eq!(
        strings(&conn, "SELECT raw FROM raw_crm WHERE row_num = 2"),
        vec!["C2,\"three\nline, with a comma\nnote\",b@x.com"]
    );
}

#[test]
fn ndjson_with_cr_only_line_ends_reads_every_line() {
    // Before: a file with `\r` line ends was one `malformed_json` reject.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/web_events.ndjson"),
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().take(40).collect();
    for sep in ["\r", "\r\n", "\n"] {
        let body = lines.join(sep) + sep;
        let cfg = "[[sources]]\nname = \"web\"\nsystem = \"web\"\nlocation = \"w.ndjson\"\nformat = \"segment\"\n";
        let (_dir, ws) = workspace(cfg, &[("w.ndjson", body.as_bytes())]);
        let (conn, reports) = load(&ws);
        assert_reconciles(&conn, &reports[0]);
        assert_eq!(reports[0].rows_read, 40, "{sep:?}");
        let bad = int(
            &conn,
            "SELECT count(*) FROM rejects WHERE reason = 'malformed_json'",
        );
        assert_eq!(bad, 0, "{sep:?}");
        let raws = strings(&conn, "SELECT raw FROM raw_web ORDER BY row_num");
        assert_eq!(raws, lines, "{sep:?}");
    }
}

#[test]
fn crlf_rows_are_stored_byte_for_byte_without_their_line_end() {
    // Before: every raw row after the first started with "\n".
    let body = "customer_id,email,street\r\nC1,a@x.com,1 Main\r\nC2,b@x.com,\"2 High St\r\nFlat 3\"\r\n\r\nC3,c@x.com,\r\n";
    let (_dir, ws) = workspace(
        &SAMPLE_CRM_CONFIG.replace("location = \"crm.csv\"", "location = \"crm.csv\"\n"),
        &[("crm.csv", body.as_bytes())],
    );
    let (conn, reports) = load(&ws);
    assert_reconciles(&conn, &reports[0]);
    assert_eq!((reports[0].rows_read, reports[0].rows_staged), (3, 3));
    assert_eq!(
        strings(&conn, "SELECT raw FROM raw_crm ORDER BY row_num"),
        vec![
            "C1,a@x.com,1 Main",
            "C2,b@x.com,\"2 High St\r\nFlat 3\"",
            "C3,c@x.com,"
        ]
    );
    assert_eq!(
        strings(
            &conn,
            "SELECT address FROM stg_crm_customers WHERE customer_id = 'C2'"
        ),
        vec!["2 High St\r\nFlat 3"]
    );
}

/// Three sources where the second cannot load (a required column is missing).
fn three_sources_one_broken() -> (tempfile::TempDir, Workspace) {
    let config = r#"
[[sources]]
name = "crm"
system = "crm"
location = "crm.csv"
format = "csv"

[[sources]]
name = "web"
system = "web"
location = "web.csv"
format = "csv"

[[sources]]
name = "crm_b"
system = "crm"
location = "crm_b.csv"
format = "csv"
"#;
    workspace(
        config,
        &[
            ("crm.csv", b"customer_id,email\nC1,a@x.com\n" as &[u8]),
            ("web.csv", b"nothing,useful\n1,2\n"),
            (
                "crm_b.csv",
                b"customer_id,email\n,no-id@x.com\n,other@x.com\n",
            ),
        ],
    )
}

#[test]
fn one_failing_source_does_not_hide_what_the_others_committed() {
    let (_dir, ws) = three_sources_one_broken();
    let mut conn = store::open(&ws.db_path()).unwrap();
    let err = stage::load_all(&mut conn, &ws, &NoProgress).unwrap_err();
    let summary = err.downcast_ref::<stage::LoadAllError>().unwrap();
    assert_eq!(
        summary
            .loaded
            .iter()
            .map(|r| r.source.as_str())
            .collect::<Vec<_>>(),
        vec!["crm", "crm_b"]
    );
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].0, "web");
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with("1 of 3 source(s) failed to load\n  web: source \"web\""),
        "{msg}"
    );
    assert!(msg.contains("Nothing of this source was loaded"), "{msg}");
    assert!(!msg.contains("Nothing was loaded"), "{msg}");
    assert!(
        msg.ends_with("committed: crm (batch 1), crm_b (batch 2); not committed: web"),
        "{msg}"
    );
    assert_eq!(
        strings(&conn, "SELECT source FROM load_batches ORDER BY batch_id"),
        vec!["crm", "crm_b"]
    );
}

#[test]
fn cli_load_exits_non_zero_when_a_source_failed_and_says_what_committed() {
    let (dir, _ws) = three_sources_one_broken();
    let out = assert_cmd::Command::cargo_bin("c360")
        .unwrap()
        .args(["load", "--workspace"])
        .arg(dir.path())
        .assert()
        .failure()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stdout.contains("crm ") && stdout.contains("crm_b "),
        "{stdout}"
    );
    assert!(!stdout.contains("web "), "{stdout}");
    assert!(
        stderr.contains("committed: crm (batch 1), crm_b (batch 2); not committed: web"),
        "{stderr}"
    );
    // crm_b's two rows were both rejected: a warning.
    assert!(
        stderr.contains("warning: every row of source crm_b was rejected (2 rows)"),
        "{stderr}"
    );
    // `run --all` stops at the failed load too.
    assert_cmd::Command::cargo_bin("c360")
        .unwrap()
        .args(["run", "--all", "--workspace"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicates::str::contains("not committed: web"));
}

#[test]
fn strict_fails_when_every_row_of_a_source_was_rejected() {
    let config =
        "[[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"crm.csv\"\nformat = \"csv\"\n";
    let (dir, _ws) = workspace(
        config,
        &[(
            "crm.csv",
            b"customer_id,email\n,a@x.com\n,b@x.com\n" as &[u8],
        )],
    );
    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("c360")
            .unwrap()
            .args(args)
            .arg("--workspace")
            .arg(dir.path())
            .assert()
    };
    // Without --strict: a warning, exit 0.
    run(&["load"]).success().stderr(predicates::str::contains(
        "warning: every row of source crm was rejected (2 rows)",
    ));
    // With --strict: the same warning and a non-zero exit (also when the
    // content was already loaded).
    run(&["load", "--strict"])
        .failure()
        .stderr(predicates::str::contains(
            "warning: every row of source crm was rejected",
        ));
    run(&["run", "--step", "stage", "--strict"]).failure();
    run(&["run", "--step", "stage"]).success();
}

/// Truncated and byte-flipped copies of the demo's Parquet file.
fn corrupt_parquets() -> Vec<(String, Vec<u8>)> {
    let good = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/transactions.parquet"),
    )
    .unwrap();
    let mut cases = Vec::new();
    for keep in [good.len() / 2, good.len() - 9, 100] {
        cases.push((format!("truncated to {keep}"), good[..keep].to_vec()));
    }
    // Flip bytes across the file (a data page's header, the footer...).
    for pos in [
        4,
        8,
        16,
        64,
        200,
        good.len() / 3,
        good.len() - 12,
        good.len() - 200,
    ] {
        let mut bad = good.clone();
        bad[pos] ^= 0xff;
        cases.push((format!("byte {pos} flipped"), bad));
    }
    cases
}

#[test]
fn corrupt_parquet_is_an_error_naming_source_and_file_never_a_panic() {
    let config = "[[sources]]\nname = \"transactions\"\nsystem = \"transactions\"\nlocation = \"t.parquet\"\nformat = \"parquet\"\n";
    let mut errors = 0;
    for (what, bytes) in corrupt_parquets() {
        let (_dir, ws) = workspace(config, &[("t.parquet", &bytes)]);
        let mut conn = store::open(&ws.db_path()).unwrap();
        match stage::load_all(&mut conn, &ws, &NoProgress) {
            Err(e) => {
                errors += 1;
                let msg = format!("{e:#}");
                for needle in ["transactions", "t.parquet", "corrupt Parquet"] {
                    assert!(msg.contains(needle), "{what}: {needle} not in {msg}");
                }
                assert!(!msg.contains("reader thread panicked"), "{what}: {msg}");
                // Rolled back: nothing of the batch.
                assert_eq!(store::count(&conn, "load_batches").unwrap(), 0, "{what}");
                assert_eq!(
                    store::count(&conn, "stg_transactions").unwrap(),
                    0,
                    "{what}"
                );
            }
            // A flip inside a value can still be a readable file.
            Ok(reports) => assert_reconciles(&conn, &reports[0]),
        }
    }
    assert!(errors >= 4, "only {errors} corrupt files were refused");
}

#[cfg(unix)]
#[test]
fn fifo_location_is_refused_not_waited_on() {
    let (dir, ws) = workspace(CRM_CONFIG, &[]);
    let fifo = dir.path().join("crm.csv");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let mut conn = store::open(&ws.db_path()).unwrap();
    let msg = format!(
        "{:#}",
        stage::load_all(&mut conn, &ws, &NoProgress).unwrap_err()
    );
    assert!(
        msg.contains("source \"crm\": location ") && msg.contains("crm.csv is not a regular file"),
        "{msg}"
    );
}

#[test]
fn folder_location_says_it_is_a_folder() {
    let (dir, ws) = workspace(CRM_CONFIG, &[]);
    std::fs::create_dir(dir.path().join("crm.csv")).unwrap();
    let mut conn = store::open(&ws.db_path()).unwrap();
    let msg = format!(
        "{:#}",
        stage::load_all(&mut conn, &ws, &NoProgress).unwrap_err()
    );
    assert!(
        msg.contains("source \"crm\": location ")
            && msg.contains("crm.csv is a folder, not a file"),
        "{msg}"
    );
    assert!(!msg.contains("os error 19"), "{msg}");
}

#[test]
fn batch_size_zero_is_reported_at_its_own_line() {
    let text = "[settings]\ndatabase = \"c360.db\"\n\nbatch_size = 0\n";
    let e = c360::workspace::parse_config(text, "c360.toml").unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert_eq!(
        e.to_string(),
        "c360.toml:4: field `settings.batch_size`: must be at least 1"
    );
}

/// Every fixture in tests/fixtures/invalid_configs has a `# expect:` line
/// with the message the config must produce.
#[test]
fn invalid_config_fixtures_give_their_expected_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid_configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect:' line", path.display()));
        let err = c360::workspace::parse_config(&text, "c360.toml").unwrap_err();
        assert_eq!(err.to_string(), expect, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} fixtures");
}

mod http {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A tiny HTTP/1.1 server on 127.0.0.1 that answers each request with
    /// `route(path_and_query)`, for up to `max` requests, then stops.
    fn serve(max: usize, route: fn(&str) -> (u16, String)) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_string();
                let (status, body) = route(&path);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}")
    }

    fn config(url: &str, extra: &str) -> String {
        format!(
            "[[sources]]\nname = \"api\"\nsystem = \"crm\"\nlocation = \"{url}\"\nformat = \"json\"\n[sources.http]\n{extra}\n"
        )
    }

    #[test]
    fn follows_next_links() {
        let base = serve(10, |path| {
            match path {
            "/customers" => (
                200,
                r#"{"data":[{"customer_id":"C1"},{"customer_id":"C2"}],"links":{"next":"/customers?cursor=2"}}"#.into(),
            ),
            "/customers?cursor=2" => (
                200,
                r#"{"data":[{"customer_id":""},{"customer_id":"C4"}],"links":{"next":null}}"#.into(),
            ),
            _ => (404, "{}".into()),
        }
        });
        let (_dir, ws) = workspace(
            &config(
                &format!("{base}/customers"),
                "records_field = \"data\"\nnext_field = \"links.next\"",
            ),
            &[],
        );
        let (conn, reports) = load(&ws);
        assert_eq!((reports[0].rows_read, reports[0].rows_staged), (4, 3));
        assert_eq!(
            rejects(&conn, "api"),
            vec![(3, Some("customer_id".into()), "missing_value".into())]
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT customer_id FROM stg_crm_customers ORDER BY row_num"
            ),
            vec!["C1", "C2", "C4"]
        );
    }

    #[test]
    fn pages_by_number_until_an_empty_page() {
        let base = serve(10, |path| match path {
            "/c?page=1&size=2" => (200, r#"[{"customer_id":"C1"},{"customer_id":"C2"}]"#.into()),
            "/c?page=2&size=2" => (200, r#"[{"customer_id":"C3"}]"#.into()),
            "/c?page=3&size=2" => (200, "[]".into()),
            _ => (404, "{}".into()),
        });
        let (_dir, ws) = workspace(
            &config(
                &format!("{base}/c"),
                "page_param = \"page\"\npage_size_param = \"size\"\npage_size = 2",
            ),
            &[],
        );
        let (conn, reports) = load(&ws);
        assert_eq!(reports[0].rows_staged, 3);
        assert_eq!(
            strings(
                &conn,
                "SELECT customer_id FROM stg_crm_customers ORDER BY row_num"
            ),
            vec!["C1", "C2", "C3"]
        );
    }

    #[test]
    fn ndjson_over_http_and_server_errors() {
        let base = serve(10, |path| {
            match path {
            "/events" => (
                200,
                "{\"messageId\":\"m1\",\"event\":\"Login\",\"timestamp\":\"2024-05-01T10:00:00Z\"}\n{broken\n".into(),
            ),
            _ => (500, "{}".into()),
        }
        });
        let cfg = format!(
            "[[sources]]\nname = \"events\"\nsystem = \"web\"\nlocation = \"{base}/events\"\nformat = \"segment\"\n"
        );
        let (_dir, ws) = workspace(&cfg, &[]);
        let (conn, reports) = load(&ws);
        assert_eq!((reports[0].rows_staged, reports[0].rows_rejected), (1, 1));
        assert_eq!(
            rejects(&conn, "events"),
            vec![(2, None, "malformed_json".into())]
        );

        let cfg = format!(
            "[[sources]]\nname = \"broken\"\nsystem = \"web\"\nlocation = \"{base}/missing\"\nformat = \"ndjson\"\n"
        );
        let (_dir, ws) = workspace(&cfg, &[]);
        let mut conn = store::open(&ws.db_path()).unwrap();
        let err = stage::load_all(&mut conn, &ws, &NoProgress).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("HTTP 500") && msg.contains("/missing"),
            "{msg}"
        );
    }

    fn load_error(ws: &Workspace) -> String {
        let mut conn = store::open(&ws.db_path()).unwrap();
        let err = stage::load_all(&mut conn, ws, &NoProgress).unwrap_err();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM load_batches", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "nothing of a refused source is committed");
        format!("{err:#}")
    }

    /// Issue 12, item 14: a `next` link to another host was followed.
    #[test]
    fn next_link_to_another_host_is_not_followed() {
        let base = serve(10, |path| match path {
            "/c" => (
                200,
                r#"{"data":[{"customer_id":"C1"}],"next":"http://elsewhere.invalid/steal"}"#.into(),
            ),
            _ => (404, "{}".into()),
        });
        let (_dir, ws) = workspace(
            &config(
                &format!("{base}/c"),
                "records_field = \"data\"\nnext_field = \"next\"",
            ),
            &[],
        );
        let msg = load_error(&ws);
        assert!(
            msg.contains(
                "goes to another host (elsewhere.invalid), not followed; add it to http.allow_hosts"
            ),
            "{msg}"
        );
    }

    /// Issue 12, item 14: pages of up to 4 GiB were held in memory.
    #[test]
    fn a_page_over_max_page_bytes_is_refused() {
        let base = serve(10, |_| {
            (200, format!(r#"[{{"customer_id":"{}"}}]"#, "x".repeat(500)))
        });
        let (_dir, ws) = workspace(&config(&format!("{base}/c"), "max_page_bytes = 100"), &[]);
        let msg = load_error(&ws);
        assert!(
            msg.contains("is larger than http.max_page_bytes = 100 bytes"),
            "{msg}"
        );
    }

    /// Issue 12, item 14: a token in the URL was stored in load_batches and
    /// shown by `status` and the workbench.
    #[test]
    fn a_token_in_the_url_is_never_stored_or_shown() {
        let base = serve(10, |path| {
            if path.starts_with("/c?") && path.contains("api_token=SECRET123") {
                (200, r#"[{"customer_id":"C1"}]"#.into())
            } else {
                (401, "{}".into())
            }
        });
        let (dir, ws) = workspace(
            &config(&format!("{base}/c?api_token=SECRET123&limit=5"), ""),
            &[],
        );
        let (conn, reports) = load(&ws);
        assert_eq!(reports[0].rows_staged, 1, "the token was sent");
        let stored: String = conn
            .query_row("SELECT location FROM load_batches", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains("SECRET123"), "{stored}");
        assert!(
            stored.contains("limit=5"),
            "other parameters stay: {stored}"
        );
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_c360"))
            .args(["status", "--workspace"])
            .arg(dir.path())
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&status.stdout);
        assert!(status.status.success());
        assert!(!shown.contains("SECRET123"), "{shown}");
    }

    /// Issue 12, item 14: headers come from the environment; a missing
    /// variable is an error naming the file, line and field.
    #[test]
    fn a_header_from_a_missing_environment_variable_names_its_field() {
        let (_dir, ws) = workspace(
            &config(
                "http://127.0.0.1:9/c",
                "headers = { Authorization = \"env:C360_TEST_SURELY_UNSET_TOKEN\" }",
            ),
            &[],
        );
        let msg = load_error(&ws);
        assert!(
            msg.contains("c360.toml:7: source \"api\"")
                && msg.contains("field `http.headers.Authorization`: environment variable C360_TEST_SURELY_UNSET_TOKEN"),
            "{msg}"
        );
    }

    /// Issue 12, item 10: a REST timeout said only "timeout: global".
    #[test]
    fn a_rest_timeout_names_source_url_and_setting() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            // Accept and never answer.
            let held: Vec<_> = listener.incoming().take(3).collect();
            std::thread::sleep(std::time::Duration::from_secs(10));
            drop(held);
        });
        let (_dir, ws) = workspace(
            &config(&format!("http://{addr}/slow"), "timeout_seconds = 1"),
            &[],
        );
        let msg = load_error(&ws);
        assert!(
            msg.contains(&format!("source \"api\": GET http://{addr}/slow timed out"))
                && msg.contains("http.timeout_seconds = 1"),
            "{msg}"
        );
    }
}
