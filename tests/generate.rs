//! Integration tests of `c360::generate`: determinism, the shape of the four
//! files, the kinds of mess they contain, and the ground truth.

use c360::generate::{GenerateOptions, GenerateSummary, generate};
use c360::pipeline::progress::{NoProgress, Progress};
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

const FILES: [&str; 4] = [
    "crm.csv",
    "web_events.ndjson",
    "transactions.parquet",
    "truth.csv",
];

fn options(dir: &Path, customers: u64, seed: u64) -> GenerateOptions {
    GenerateOptions {
        customers,
        out: dir.to_path_buf(),
        seed,
        ..GenerateOptions::default()
    }
}

fn run(dir: &Path, customers: u64, seed: u64) -> GenerateSummary {
    generate(&options(dir, customers, seed), &NoProgress).expect("generate")
}

/// `truth.csv` as (source, record_id) -> person_id.
fn read_truth(dir: &Path) -> BTreeMap<(String, String), String> {
    let mut reader = csv::Reader::from_path(dir.join("truth.csv")).expect("open truth");
    let headers = reader.headers().expect("truth header").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        ["source", "record_id", "person_id"]
    );
    let mut truth = BTreeMap::new();
    for row in reader.records() {
        let row = row.expect("truth row");
        let previous = truth.insert((row[0].to_string(), row[1].to_string()), row[2].to_string());
        assert!(previous.is_none(), "truth lists {:?} twice", &row);
    }
    truth
}

/// CRM rows as lossy text fields (the file has ragged and Latin-1 rows).
fn read_crm(dir: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(dir.join("crm.csv"))
        .expect("open crm");
    reader
        .byte_records()
        .map(|r| {
            r.expect("crm row")
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect()
        })
        .collect()
}

fn read_web_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("web_events.ndjson"))
        .expect("web events are UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn read_transactions(dir: &Path) -> DataFrame {
    let file = std::fs::File::open(dir.join("transactions.parquet")).expect("open parquet");
    ParquetReader::new(file).finish().expect("read parquet")
}

fn string_column(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name)
        .expect("column")
        .str()
        .expect("string column")
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

fn float_column(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name)
        .expect("column")
        .f64()
        .expect("f64 column")
        .iter()
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let summary_a = run(a.path(), 200, 7);
    let summary_b = run(b.path(), 200, 7);
    run(c.path(), 200, 8);
    assert_eq!(summary_a.crm_rows, summary_b.crm_rows);
    assert_eq!(summary_a.web_rows, summary_b.web_rows);
    for name in FILES {
        let bytes_a = std::fs::read(a.path().join(name)).unwrap();
        let bytes_b = std::fs::read(b.path().join(name)).unwrap();
        let bytes_c = std::fs::read(c.path().join(name)).unwrap();
        assert!(!bytes_a.is_empty(), "{name} is empty");
        assert!(
            bytes_a == bytes_b,
            "{name} differs between two runs with one seed"
        );
        assert!(bytes_a != bytes_c, "{name} is the same for two seeds");
    }
}

#[test]
fn summary_matches_files() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), 300, 11);
    assert_eq!(summary.people, 300);
    assert_eq!(
        summary.files,
        FILES.map(|f| dir.path().join(f)).to_vec(),
        "files, in order"
    );
    let crm_lines = std::fs::read(dir.path().join("crm.csv"))
        .unwrap()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    assert_eq!(summary.crm_rows + 1, crm_lines, "CRM rows plus header");
    assert_eq!(summary.web_rows, read_web_lines(dir.path()).len() as u64);
    assert_eq!(
        summary.transaction_rows,
        read_transactions(dir.path()).height() as u64
    );
    assert_eq!(summary.truth_rows, read_truth(dir.path()).len() as u64);
    // Only the four files.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn crm_is_messy_in_the_intended_ways() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 300, 1);
    let raw = std::fs::read(dir.path().join("crm.csv")).unwrap();
    let header_end = raw.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(
        &raw[..header_end],
        b"customer_id,first_name,last_name,email,phone,birth_date,street,city,postcode,country,lifecycle_status,created_at,updated_at,loyalty_tier,marketing_opt_in"
    );
    assert!(
        std::str::from_utf8(&raw).is_err(),
        "expected a Latin-1 (invalid UTF-8) row"
    );

    let rows = read_crm(dir.path());
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let emails: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.get(3))
        .map(String::as_str)
        .collect();
    let countries: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r.get(9))
        .map(String::as_str)
        .collect();
    assert!(
        emails
            .iter()
            .any(|e| e.contains('+') && e.to_lowercase().contains("@g")),
        "a gmail +tag"
    );
    assert!(
        countries.contains("Deutschland") || countries.contains("USA"),
        "countries: {countries:?}"
    );
    assert!(
        countries.len() >= 12,
        "many spellings of few countries: {countries:?}"
    );
    let phones: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.get(4))
        .map(String::as_str)
        .collect();
    assert!(phones.iter().any(|p| p.starts_with('+')));
    assert!(phones.iter().any(|p| p.starts_with("00")));
    assert!(phones.iter().any(|p| p.starts_with('(')));

    // Customer ids are unique (when present).
    let present: Vec<&&str> = ids.iter().filter(|id| !id.is_empty()).collect();
    let distinct: BTreeSet<&&str> = present.iter().copied().collect();
    assert_eq!(present.len(), distinct.len(), "customer ids are unique");

    // Truth: every present id, nothing else; some people have several records.
    let truth = read_truth(dir.path());
    let crm_truth: BTreeMap<&str, &str> = truth
        .iter()
        .filter(|((source, _), _)| source == "crm")
        .map(|((_, id), person)| (id.as_str(), person.as_str()))
        .collect();
    assert_eq!(crm_truth.len(), distinct.len());
    assert!(distinct.iter().all(|id| crm_truth.contains_key(**id)));
    let mut per_person: BTreeMap<&str, usize> = BTreeMap::new();
    for person in crm_truth.values() {
        *per_person.entry(person).or_default() += 1;
    }
    let duplicated = per_person.values().filter(|&&n| n >= 2).count();
    assert!(
        duplicated >= 10,
        "only {duplicated} people with duplicate CRM records"
    );
    assert!(
        per_person.len() >= 290,
        "nearly every person has a CRM record"
    );
}

#[test]
fn web_events_are_messy_in_the_intended_ways() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 300, 2);
    let lines = read_web_lines(dir.path());
    let mut parsed = Vec::new();
    let mut malformed = 0;
    for line in &lines {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => parsed.push(v),
            Err(_) => malformed += 1,
        }
    }
    assert!(malformed > 0, "some lines are not JSON");
    let mean = lines.len() as f64 / 300.0;
    assert!((6.0..16.0).contains(&mean), "{mean} events per customer");

    let page_views: BTreeSet<&str> = parsed
        .iter()
        .filter_map(|v| v["event"].as_str())
        .filter(|e| {
            [
                "Page View",
                "page_view",
                "pageview",
                "Page Viewed",
                "PAGE_VIEW",
            ]
            .contains(e)
        })
        .collect();
    assert!(page_views.len() >= 3, "page view spellings: {page_views:?}");
    let types: BTreeSet<&str> = parsed.iter().filter_map(|v| v["type"].as_str()).collect();
    assert!(
        types.contains("track") && types.contains("page"),
        "{types:?}"
    );

    // Anonymous cookies that also appear logged in.
    let anonymous: BTreeSet<&str> = parsed
        .iter()
        .filter(|v| v["userId"].is_null())
        .filter_map(|v| v["anonymousId"].as_str())
        .collect();
    let known: BTreeSet<&str> = parsed
        .iter()
        .filter(|v| v["userId"].is_string())
        .filter_map(|v| v["anonymousId"].as_str())
        .collect();
    assert!(anonymous.intersection(&known).count() > 0);

    // Mixed timestamp layouts, and numbers.
    assert!(parsed.iter().any(|v| v["timestamp"].is_number()));
    assert!(
        parsed
            .iter()
            .any(|v| v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
    assert!(
        parsed
            .iter()
            .any(|v| v["timestamp"].as_str().is_some_and(|t| t.contains(", ")))
    );

    // Exact duplicates share a message id; truth lists each id once.
    let ids: Vec<&str> = parsed
        .iter()
        .filter_map(|v| v["messageId"].as_str())
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    let truth = read_truth(dir.path());
    let web_truth: BTreeSet<&str> = truth
        .keys()
        .filter(|(source, _)| source == "web")
        .map(|(_, id)| id.as_str())
        .collect();
    assert_eq!(
        web_truth, distinct,
        "truth holds exactly the readable message ids"
    );

    // Purchases point at orders of the same person.
    let tx_truth: BTreeMap<&str, &str> = truth
        .iter()
        .filter(|((source, _), _)| source == "transactions")
        .map(|((_, id), person)| (id.as_str(), person.as_str()))
        .collect();
    let mut linked = 0;
    for v in &parsed {
        let (Some(order), Some(id)) = (
            v["properties"]["order_id"].as_str(),
            v["messageId"].as_str(),
        ) else {
            continue;
        };
        let event_person = truth.get(&("web".to_string(), id.to_string())).unwrap();
        if let Some(order_person) = tx_truth.get(order) {
            assert_eq!(event_person, order_person, "order {order}");
            linked += 1;
        }
    }
    assert!(linked > 50, "only {linked} events link to orders");
}

#[test]
fn transactions_parquet_has_schema_refunds_and_truth() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 300, 3);
    let df = read_transactions(dir.path());
    let schema: Vec<(String, DataType)> = df
        .schema()
        .iter()
        .map(|(name, dtype)| (name.to_string(), dtype.clone()))
        .collect();
    let expected: Vec<(String, DataType)> = [
        ("order_id", DataType::String),
        ("customer_id", DataType::String),
        ("email", DataType::String),
        ("order_time", DataType::String),
        ("product_id", DataType::String),
        ("product_name", DataType::String),
        ("category", DataType::String),
        ("quantity", DataType::Int64),
        ("unit_price", DataType::Float64),
        ("currency", DataType::String),
        ("revenue", DataType::Float64),
        ("transaction_type", DataType::String),
        ("channel", DataType::String),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    assert_eq!(schema, expected);
    assert!(df.height() > 300, "{} orders", df.height());

    let kinds = string_column(&df, "transaction_type");
    let revenue = float_column(&df, "revenue");
    let refunds: Vec<usize> = (0..df.height())
        .filter(|&i| kinds[i].as_deref() == Some("refund"))
        .collect();
    assert!(!refunds.is_empty());
    assert!(refunds.iter().all(|&i| revenue[i].is_none_or(|r| r < 0.0)));
    let order_ids = string_column(&df, "order_id");
    assert!(
        refunds
            .iter()
            .all(|&i| order_ids[i].as_deref().is_none_or(|id| id.starts_with('R')))
    );

    let customers = string_column(&df, "customer_id");
    let emails = string_column(&df, "email");
    let guests = (0..df.height())
        .filter(|&i| customers[i].is_none() && emails[i].is_some())
        .count();
    assert!(guests > 10, "{guests} orders by e-mail only");
    let currencies: BTreeSet<Option<String>> = string_column(&df, "currency").into_iter().collect();
    assert!(currencies.len() >= 2, "{currencies:?}");

    let present: BTreeSet<&str> = order_ids.iter().flatten().map(String::as_str).collect();
    let present_count = order_ids.iter().flatten().count();
    assert_eq!(present.len(), present_count, "order ids are unique");
    let truth = read_truth(dir.path());
    let tx_truth: BTreeSet<&str> = truth
        .keys()
        .filter(|(source, _)| source == "transactions")
        .map(|(_, id)| id.as_str())
        .collect();
    assert_eq!(tx_truth, present);
}

/// Records the progress calls.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn start(&self, phase: &str, total: u64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {phase} {total}"));
    }
    fn update(&self, done: u64) {
        self.0.lock().unwrap().push(format!("update {done}"));
    }
    fn message(&self, msg: &str) {
        self.0.lock().unwrap().push(format!("message {msg}"));
    }
    fn finish(&self) {
        self.0.lock().unwrap().push("finish".into());
    }
}

#[test]
fn reports_progress_and_handles_zero_customers() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    generate(&options(dir.path(), 2500, 5), &recorder).unwrap();
    let calls = recorder.0.into_inner().unwrap();
    assert_eq!(
        calls.first().map(String::as_str),
        Some("start generate 2500")
    );
    assert!(calls.contains(&"update 1000".to_string()));
    assert!(calls.contains(&"update 2500".to_string()));
    assert_eq!(calls.last().map(String::as_str), Some("finish"));

    let empty = tempfile::tempdir().unwrap();
    let summary = run(empty.path(), 0, 5);
    assert_eq!(
        summary.crm_rows + summary.web_rows + summary.transaction_rows,
        0
    );
    assert_eq!(read_transactions(empty.path()).height(), 0);
    assert!(read_truth(empty.path()).is_empty());
}

#[test]
fn cancellation_stops_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = c360::pipeline::progress::CancelFlag::default();
    cancel.cancel();
    assert!(generate(&options(dir.path(), 10, 1), &cancel).is_err());
}

/// Scale check: `cargo test --release --test generate -- --ignored --nocapture`.
#[test]
#[ignore]
fn scale_100k_customers() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let summary = run(dir.path(), 100_000, 42);
    let seconds = started.elapsed().as_secs_f64();
    println!("generated 100k customers in {seconds:.2} s: {summary:?}");
    for name in FILES {
        let bytes = std::fs::metadata(dir.path().join(name)).unwrap().len();
        println!("{name:>22}: {:>8.1} MB", bytes as f64 / 1e6);
    }
    println!(
        "{:.0} web events/s, {:.0} people/s",
        summary.web_rows as f64 / seconds,
        summary.people as f64 / seconds
    );
}
