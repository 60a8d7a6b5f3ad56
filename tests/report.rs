//! `c360 report`: what a reader of the page sees, checked on the SVG and
//! HTML it writes — on the demo workspace and on small databases whose
//! analytics rows are written by hand (a negative month, a partial month,
//! known funnel counts, hostile values).

mod common;
use common::*;
use rusqlite::{Connection, params};

// The report's colours as plotters writes them (src/report/chart.rs).
const GREEN: &str = "#2E8B57";
/// GREEN lightened: the partial month's bar.
const GREEN_PARTIAL: &str = "#A1CBB3";
const NEGATIVE: &str = "#C0392B";
const ZERO: &str = "#111111";

/// The part of the page inside `<section id="{id}">`.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = html[start..].find("</section>").unwrap() + start;
    &html[start..end]
}

/// The SVG charts of a part of the page.
fn svgs(part: &str) -> Vec<&str> {
    part.match_indices("<svg")
        .map(|(i, _)| &part[i..i + part[i..].find("</svg>").unwrap()])
        .collect()
}

/// Every `<name …>` element's opening tag.
fn tags<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
    svg.match_indices(&format!("<{name} "))
        .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()])
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let i = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    &tag[i..i + tag[i..].find('"').unwrap()]
}

fn num(tag: &str, name: &str) -> f64 {
    attr(tag, name).parse().unwrap()
}

/// (x, y, text) of every `<text>` element.
fn texts(svg: &str) -> Vec<(f64, f64, String)> {
    svg.match_indices("<text ")
        .map(|(i, _)| {
            let open = &svg[i..i + svg[i..].find('>').unwrap()];
            let body_start = i + open.len() + 1;
            let body = &svg[body_start..body_start + svg[body_start..].find("</text>").unwrap()];
            (num(open, "x"), num(open, "y"), body.trim().to_string())
        })
        .collect()
}

/// Filled rectangles of a colour: (x, y, width, height).
fn rects(svg: &str, fill: &str) -> Vec<(f64, f64, f64, f64)> {
    tags(svg, "rect")
        .into_iter()
        .filter(|t| attr(t, "fill") == fill)
        .map(|t| (num(t, "x"), num(t, "y"), num(t, "width"), num(t, "height")))
        .collect()
}

/// The zero line's points: ((x1, y1), (x2, y2)).
fn zero_line(svg: &str) -> ((f64, f64), (f64, f64)) {
    let line = tags(svg, "polyline")
        .into_iter()
        .find(|t| attr(t, "stroke") == ZERO)
        .expect("a zero line");
    let pts: Vec<(f64, f64)> = attr(line, "points")
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    (pts[0], pts[1])
}

/// An empty workspace database with one profile computed `as_of`, and
/// months of (period, revenue, active customers) in `analytics_activity`.
fn db(as_of: &str, months: &[(&str, f64, i64)]) -> Connection {
    let conn = c360::store::open_in_memory().unwrap();
    conn.execute(
        "INSERT INTO customer360_profiles (customer360_id, anonymous, as_of, row_hash, updated_at)
         VALUES ('C1', 0, ?1, 0, 'x')",
        [as_of],
    )
    .unwrap();
    for (period, revenue, active) in months {
        conn.execute(
            "INSERT INTO analytics_activity (grain, period, revenue, orders, refunds, active_customers, new_customers)
             VALUES ('month', ?1, ?2, 10, 2, ?3, 1)",
            params![period, revenue, active],
        )
        .unwrap();
    }
    conn
}

fn order_in(conn: &Connection, currency: &str) {
    conn.execute(
        "INSERT INTO clean_transactions (source, batch_id, row_num, order_id, transaction_type, order_time, revenue, currency)
         VALUES ('shop', 1, 1, 'O1', 'purchase', '2025-01-01T00:00:00.000Z', 10, ?1)",
        [currency],
    )
    .unwrap();
}

#[test]
fn the_revenue_axis_has_currency_ticks_with_thousands_separators() {
    let (_dir, _ws, conn) = demo();
    let html = c360::report::render(&conn, "demo").unwrap();
    let revenue = section(&html, "revenue");
    let svg = svgs(revenue)[0];
    let labels: Vec<String> = texts(svg).into_iter().map(|t| t.2).collect();
    // The demo's months are about €25,000: ticks every €10,000 (or 5,000).
    for tick in ["€0", "€10,000", "€20,000"] {
        assert!(
            labels.iter().any(|l| l == tick),
            "no tick {tick}: {labels:?}"
        );
    }
    assert!(
        labels.iter().any(|l| l.contains("EUR")),
        "no unit: {labels:?}"
    );
    // Every month of the table has its label ("Jan", …) and years under them.
    let months = int(
        &conn,
        "SELECT count(*) FROM analytics_activity WHERE grain = 'month'",
    );
    let names = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let shown = labels
        .iter()
        .filter(|l| names.contains(&l.as_str()))
        .count();
    assert_eq!(shown as i64, months, "{labels:?}");
    assert!(labels.iter().any(|l| l == "2024") && labels.iter().any(|l| l == "2025"));
    // The best month's value is written on its bar, with its currency.
    let best: f64 = conn
        .query_row(
            "SELECT max(revenue) FROM analytics_activity WHERE grain = 'month'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let short = format!("€{:.1}k", best / 1000.0);
    assert!(labels.contains(&short), "no {short}: {labels:?}");
    // The figures table has the amounts in full.
    assert!(
        revenue.contains("Figures per month") && revenue.contains(",") && revenue.contains("€")
    );
}

#[test]
fn the_running_month_is_hatched_and_named_partial() {
    let months = [
        ("2025-01", 1200.0, 30),
        ("2025-02", 1500.0, 32),
        ("2025-03", 400.0, 12),
    ];
    let conn = db("2025-03-15T12:00:00.000Z", &months);
    order_in(&conn, "EUR");
    let html = c360::report::render(&conn, "ws").unwrap();
    let revenue = section(&html, "revenue");
    let svg = svgs(revenue)[0];
    // Two full months in the bar colour, the running one lighter, hatched.
    assert_eq!(rects(svg, GREEN).len(), 2, "{svg}");
    let partial = rects(svg, GREEN_PARTIAL);
    assert_eq!(partial.len(), 1);
    let hatch = tags(svg, "polyline")
        .into_iter()
        .filter(|t| attr(t, "stroke") == GREEN)
        .count();
    assert!(hatch >= 3, "no hatching");
    // Its bar is the last one (rightmost).
    let full = rects(svg, GREEN);
    assert!(full.iter().all(|r| r.0 < partial[0].0));
    assert!(revenue.contains("partial month: Mar 2025 (data to 15 Mar 2025, 12:00 UTC)"));
    assert!(revenue.contains("Mar 2025 (partial)"));
    // The last full month is February, in the key figures too.
    assert!(
        html.contains("net revenue in Feb 2025, +25.0% vs Jan 2025"),
        "{html}"
    );

    // On the month's last day nothing is partial.
    let conn = db("2025-03-31T23:00:00.000Z", &months);
    let html = c360::report::render(&conn, "ws").unwrap();
    let svg = svgs(section(&html, "revenue"))[0];
    assert_eq!(rects(svg, GREEN).len(), 3);
    assert!(rects(svg, GREEN_PARTIAL).is_empty());
    assert!(!html.contains("partial month"));
}

#[test]
fn a_negative_month_lies_below_the_zero_line() {
    let conn = db(
        "2025-04-30T23:00:00.000Z",
        &[
            ("2025-01", 1200.0, 30),
            ("2025-02", -1500.0, 8),
            ("2025-03", 2500.0, 40),
            ("2025-04", 900.0, 20),
        ],
    );
    // No currency in the orders: plain numbers, and the axis says so.
    let html = c360::report::render(&conn, "ws").unwrap();
    let revenue = section(&html, "revenue");
    let svg = svgs(revenue)[0];
    let ((x1, zy), (x2, zy2)) = zero_line(svg);
    assert_eq!(zy, zy2, "the zero line is horizontal");
    let neg = rects(svg, NEGATIVE);
    assert_eq!(neg.len(), 1, "one negative month");
    let (nx, ny, _, nh) = neg[0];
    assert!((ny - zy).abs() <= 1.0, "starts at zero: {ny} vs {zy}");
    assert!(nh > 10.0, "drawn downwards, not empty: {nh}");
    let pos = rects(svg, GREEN);
    assert_eq!(pos.len(), 3);
    for (_, y, _, h) in &pos {
        assert!((y + h - zy).abs() <= 1.0, "positive bars end at zero");
        assert!(*y < zy);
    }
    // February is the second bar, between January and March.
    let mut xs: Vec<f64> = pos.iter().map(|r| r.0).collect();
    xs.sort_by(f64::total_cmp);
    assert!(xs[0] < nx && nx < xs[1] && x1 < nx && nx < x2);
    let labels: Vec<String> = texts(svg).into_iter().map(|t| t.2).collect();
    assert!(labels.contains(&"-1,500".to_string()), "{labels:?}");
    assert!(
        labels.iter().any(|l| l.contains("no currency recorded")),
        "{labels:?}"
    );
    assert!(revenue.contains("below zero: refunds exceed orders"));
    // The axis goes below zero: its lowest tick label is under the line.
    let below = texts(svg)
        .into_iter()
        .filter(|t| t.1 > zy + 2.0 && t.2.starts_with('-'))
        .count();
    assert!(below >= 1, "the negative bar's label sits under it");
}

#[test]
fn month_labels_are_thinned_on_a_long_history() {
    let months: Vec<(String, f64, i64)> = (0..60)
        .map(|i| {
            (
                format!("{}-{:02}", 2020 + i / 12, i % 12 + 1),
                1000.0 + i as f64,
                10,
            )
        })
        .collect();
    let rows: Vec<(&str, f64, i64)> = months.iter().map(|m| (m.0.as_str(), m.1, m.2)).collect();
    let conn = db("2024-12-31T23:00:00.000Z", &rows);
    let html = c360::report::render(&conn, "ws").unwrap();
    let svg = svgs(section(&html, "revenue"))[0];
    let names = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut ticks: Vec<(f64, String)> = texts(svg)
        .into_iter()
        .filter(|t| names.contains(&t.2.as_str()))
        .map(|t| (t.0, t.2))
        .collect();
    ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        ticks.len() < 60 && ticks.len() >= 10,
        "{} labels",
        ticks.len()
    );
    // Evenly spaced, far enough apart for "Sep" at 13 px, and on the same
    // months every year (January among them).
    let gaps: Vec<f64> = ticks.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.iter().all(|g| *g >= 30.0), "{gaps:?}");
    assert!(
        ticks.iter().filter(|t| t.1 == "Jan").count() == 5,
        "{ticks:?}"
    );
    // Every year is named once.
    for y in 2020..2025 {
        let n = texts(svg).iter().filter(|t| t.2 == y.to_string()).count();
        assert_eq!(n, 1, "{y}");
    }
}

#[test]
fn churn_bands_come_in_risk_order_with_revenue_in_the_currency() {
    let conn = db("2025-03-31T23:00:00.000Z", &[("2025-03", 10.0, 1)]);
    order_in(&conn, "USD");
    for (kind, name, customers, revenue) in [
        ("band", "low (< 0.3)", 900, 50_000.0),
        ("band", "high (≥ 0.6)", 10, 1234.5),
        ("band", "medium (0.3–0.6)", 90, 8000.0),
        ("signal", "inactive", 95, 9000.0),
    ] {
        conn.execute(
            "INSERT INTO analytics_churn (kind, name, customers, revenue) VALUES (?1, ?2, ?3, ?4)",
            params![kind, name, customers, revenue],
        )
        .unwrap();
    }
    let html = c360::report::render(&conn, "ws").unwrap();
    let churn = section(&html, "churn");
    let table = &churn[churn.find("<table").unwrap()..];
    let at = |s: &str| {
        table
            .find(&format!("<td>{s}</td>"))
            .unwrap_or_else(|| panic!("no {s}"))
    };
    assert!(at("high (≥ 0.6)") < at("medium (0.3–0.6)"));
    assert!(at("medium (0.3–0.6)") < at("low (&lt; 0.3)"));
    assert!(
        table.contains("<td>high (≥ 0.6)</td><td>10</td><td>1.0%</td><td>$1,234.50</td>"),
        "{table}"
    );
    assert!(table.contains("<td>$59,234.50</td>"), "total");
    // The chart has the bands in the same order, top to bottom.
    let svg = svgs(churn)[0];
    let y = |s: &str| texts(svg).into_iter().find(|t| t.2 == s).unwrap().1;
    assert!(y("high (≥ 0.6)") < y("medium (0.3–0.6)"));
    assert!(y("medium (0.3–0.6)") < y("low (&lt; 0.3)"));
    // The key figure is the high band's revenue.
    assert!(html.contains("$1,235</div><div class=\"what\">revenue of the 10 customers at high"));
}

#[test]
fn funnel_percentages_are_of_the_first_and_the_previous_step() {
    let conn = db("2025-03-31T23:00:00.000Z", &[("2025-03", 10.0, 1)]);
    for (period, no, step, n) in [
        ("90d", 0, "page_view", 1000),
        ("90d", 2, "add_to_cart", 400),
        ("90d", 3, "begin_checkout", 200),
        ("90d", 4, "purchase", 150),
        ("all", 0, "page_view", 4000),
        ("all", 2, "add_to_cart", 1000),
        ("all", 3, "begin_checkout", 500),
        ("all", 4, "purchase", 600),
    ] {
        conn.execute(
            "INSERT INTO analytics_funnel (period, step_no, step, customers) VALUES (?1, ?2, ?3, ?4)",
            params![period, no, step, n],
        )
        .unwrap();
    }
    let html = c360::report::render(&conn, "ws").unwrap();
    let funnel = section(&html, "funnel");
    for row in [
        "<tr><td>page_view</td><td>1,000</td><td>100%</td><td>100%</td></tr>",
        "<tr><td>add_to_cart</td><td>400</td><td>40.0%</td><td>40.0%</td></tr>",
        "<tr><td>begin_checkout</td><td>200</td><td>20.0%</td><td>50.0%</td></tr>",
        "<tr><td>purchase</td><td>150</td><td>15.0%</td><td>75.0%</td></tr>",
    ] {
        assert!(funnel.contains(row), "no {row} in {funnel}");
    }
    // The other periods, and the step this data does not track.
    assert!(funnel.contains("<td>600 (15.0%)</td>"), "{funnel}");
    assert!(funnel.contains("view_item"));
    let labels: Vec<String> = texts(svgs(funnel)[0]).into_iter().map(|t| t.2).collect();
    assert!(
        labels.contains(&"200 · 20.0% of first step · 50.0% of previous".to_string()),
        "{labels:?}"
    );
}

#[test]
fn data_quality_figures_are_those_of_the_load_batches() {
    let (_dir, _ws, conn) = demo();
    let html = c360::report::render(&conn, "demo").unwrap();
    let quality = section(&html, "quality");
    let mut stmt = conn
        .prepare(
            "SELECT source, count(*), sum(rows_read), sum(rows_staged), sum(rows_rejected)
             FROM load_batches GROUP BY source",
        )
        .unwrap();
    let sources: Vec<(String, i64, i64, i64, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sources.len(), 3);
    let sep = |n: i64| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let (mut read, mut staged, mut rejected) = (0, 0, 0);
    for (source, batches, r, s, j) in &sources {
        assert_eq!(*r, s + j, "{source}: read = staged + rejected");
        let cells = format!(
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            sep(*batches),
            sep(*r),
            sep(*s),
            sep(*j)
        );
        let row = quality
            .split("<tr>")
            .find(|row| row.starts_with(&format!("<td>{source}</td>")))
            .unwrap_or_else(|| panic!("no row for {source}"));
        assert!(row.contains(&cells), "{source}: {row} lacks {cells}");
        read += r;
        staged += s;
        rejected += j;
    }
    assert!(read > 10_000, "the demo reads thousands: separators show");
    let total = format!(
        "<td>{}</td><td>{}</td><td>{}</td>",
        sep(read),
        sep(staged),
        sep(rejected)
    );
    assert!(quality.contains(&total), "no totals {total}");
    // Every (source, reason) of the rejects has its bar with its count.
    let labels: Vec<String> = texts(svgs(quality)[0]).into_iter().map(|t| t.2).collect();
    let mut stmt = conn
        .prepare("SELECT source, reason, count(*) FROM rejects GROUP BY 1, 2")
        .unwrap();
    let reasons: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!reasons.is_empty());
    for (source, reason, n) in reasons {
        assert!(
            labels.contains(&format!("{source}: {reason}")),
            "{source}: {reason}"
        );
        assert!(
            labels
                .iter()
                .any(|l| l.starts_with(&format!("{n} (")) && l.ends_with(&format!("of {source})"))),
            "{source} {reason} {n}: {labels:?}"
        );
    }
}

#[test]
fn the_identity_section_shows_merges_queue_guards_and_match_weights() {
    let (_dir, _ws, conn) = demo();
    let html = c360::report::render(&conn, "demo").unwrap();
    let identity = section(&html, "identity");
    let records = int(&conn, "SELECT count(*) FROM customer360_id_map");
    let customers = int(
        &conn,
        "SELECT count(DISTINCT customer360_id) FROM customer360_id_map",
    );
    let per = records as f64 / customers as f64;
    assert!(
        identity.contains(&format!(
            "resolved to {} customers: {per:.1} records per customer",
            {
                let c = customers.to_string();
                format!("{},{}", &c[..c.len() - 3], &c[c.len() - 3..])
            }
        )),
        "{identity}"
    );
    let pending = int(
        &conn,
        "SELECT count(*) FROM match_candidates WHERE band = 'review' AND decision IS NULL",
    );
    assert!(identity.contains(&format!("<td>pending review</td><td>{pending}</td>")));
    let blocked = int(
        &conn,
        "SELECT count(*) FROM identifiers WHERE kind = 'email' AND status = 'blocked'",
    );
    assert!(identity.contains("<td>email</td><td>blocked</td>"));
    assert!(identity.contains(&format!("<td>{blocked}</td>")));
    // The match weights: a bar per level, negative ones left of zero.
    let svg = *svgs(identity).last().unwrap();
    let ((zx, _), (zx2, _)) = zero_line(svg);
    assert_eq!(zx, zx2, "the zero line is vertical");
    let negative = int(&conn, "SELECT count(*) FROM match_model WHERE weight < 0");
    let positive = int(&conn, "SELECT count(*) FROM match_model WHERE weight > 0");
    let neg = rects(svg, NEGATIVE);
    let pos = rects(svg, GREEN);
    assert_eq!(neg.len() as i64, negative);
    assert_eq!(pos.len() as i64, positive);
    assert!(neg.iter().all(|r| (r.0 + r.2 - zx).abs() <= 1.0));
    assert!(pos.iter().all(|r| (r.0 - zx).abs() <= 1.0));
    let labels: Vec<String> = texts(svg).into_iter().map(|t| t.2).collect();
    for label in strings(&conn, "SELECT DISTINCT label FROM match_model") {
        let label = label
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(labels.contains(&label), "no level {label}");
    }
    assert!(labels.contains(&"prior (starting) match weight".to_string()));
}

#[test]
fn hostile_values_are_escaped_in_html_and_svg() {
    let evil = "<script>alert(1)</script>";
    let conn = db("2025-03-31T23:00:00.000Z", &[("2025-03", 10.0, 1)]);
    conn.execute_batch(&format!(
        "INSERT INTO sources (name, system, location, format, raw_table, updated_at)
           VALUES ('{evil}', 'crm', 'x.csv', 'csv', 'raw_x', 'now');
         INSERT INTO load_batches (batch_id, source, system, location, format, content_hash, bytes,
           rows_read, rows_staged, rows_rejected, seconds, status, started_at)
           VALUES (1, '{evil}', 'crm', 'x.csv', 'csv', 'h', 1, 3, 2, 1, 0, 'loaded', 'now');
         INSERT INTO rejects (batch_id, source, row_num, reason, detail)
           VALUES (1, '{evil}', 1, '<img src=x onerror=alert(2)>', 'd');
         INSERT INTO analytics_lifecycle (month, status, customers) VALUES ('current', '{evil}', 3);
         INSERT INTO analytics_churn (kind, name, customers, revenue) VALUES ('band', '{evil}', 3, 1);
         INSERT INTO identifiers (kind, value, records, status) VALUES ('email', '\"><svg onload=alert(3)>', 2, 'blocked');
         INSERT INTO match_model (comparison, level, label, m, u, weight) VALUES ('{evil}', 0, '{evil}', 0.9, 0.1, 3.2);
         INSERT INTO clean_transactions (source, batch_id, row_num, order_id, transaction_type, order_time, revenue, currency)
           VALUES ('s', 1, 1, 'O', 'purchase', 't', 1, '<b>');"
    ))
    .unwrap();
    let html = c360::report::render(&conn, "<i>ws</i>").unwrap();
    for raw in ["<script", "<img", "<svg onload", "<i>", "<b>", "<B>"] {
        assert!(!html.contains(raw), "{raw} is not escaped");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(html.contains("&lt;i&gt;ws&lt;/i&gt;"));
    // In the SVG charts too (plotters escapes text).
    let quality = section(&html, "quality");
    assert!(
        texts(svgs(quality)[0])
            .iter()
            .any(|t| t.2.contains("&lt;script&gt;") && t.2.contains("&lt;img")),
        "{quality}"
    );
}

#[test]
fn the_binary_writes_the_report() {
    let (dir, ws, conn) = demo();
    drop(conn);
    let out = dir.path().join("report.html");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_c360"))
        .args(["report", "--workspace"])
        .arg(&ws.root)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for id in [
        "revenue",
        "active",
        "lifecycle",
        "retention",
        "churn",
        "funnel",
        "quality",
        "identity",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "no {id}");
    }
    for banned in [
        "http://", "https://", "<script", "src=", "<link", "@import", "url(",
    ] {
        assert!(!html.contains(banned), "{banned}");
    }
}
