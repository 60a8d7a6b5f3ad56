//! Extract + stage (`c360 load`) on small hand-made files: every format, every
//! reject reason, idempotent reloads, reconciling counts, atomic loads and the
//! REST source against a server on 127.0.0.1.

mod common;
use common::*;

use c360::pipeline::progress::{CancelFlag, NoProgress};
use c360::pipeline::stage::{self, LoadReport};
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
        "Nothing was loaded",
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
}
