//! `c360 report`: a one-page static HTML report to present: key figures,
//! revenue and active customers per month, the lifecycle mix, retention
//! cohorts, churn risk and the funnel, then how far the data can be trusted
//! (data quality: rows read, staged and rejected; identity: how records
//! became customers, the review queue, the guardrails, the match model).
//! Charts are SVG drawn with plotters, inline; no scripts and no network
//! resources, so it opens anywhere and can be mailed as one file. Every
//! value that comes from the data is escaped.
//!
//! Each section reads its tables itself (`read`) and writes its HTML
//! (`html`); [`render`] reads the common context, then the sections, then
//! lays out the page.

mod activity;
mod chart;
mod customers;
mod format;
mod html;
mod identity;
mod quality;

use anyhow::{Result, bail};
use format::{Currency, esc};
use rusqlite::{Connection, OptionalExtension};
use std::fmt::Write as _;

/// What every section needs to know: when the figures were computed, the
/// month still running then, and the currency.
pub(crate) struct Ctx {
    pub as_of: Option<String>,
    /// The `YYYY-MM` of `as_of` unless `as_of` is that month's last day.
    pub partial_month: Option<String>,
    pub currency: Currency,
}

impl Ctx {
    fn read(conn: &Connection) -> Result<Ctx> {
        let as_of: Option<String> = conn
            .query_row("SELECT as_of FROM customer360_profiles LIMIT 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        let partial_month = as_of.as_deref().and_then(running_month);
        Ok(Ctx {
            as_of,
            partial_month,
            currency: read_currency(conn)?,
        })
    }

    /// "the running month (Jul 2025: data to 20 Jul 2025, 20:17 UTC)".
    pub fn partial_note(&self) -> Option<String> {
        let m = self.partial_month.as_deref()?;
        Some(format!(
            "partial month: {} (data to {})",
            format::month_long(m),
            format::date_time(self.as_of.as_deref().unwrap_or(""))
        ))
    }
}

/// The month of `as_of` (ISO 8601) when it had not ended by then: any day
/// but the month's last.
fn running_month(as_of: &str) -> Option<String> {
    use chrono::{Datelike, Duration, NaiveDate};
    let day = NaiveDate::parse_from_str(as_of.get(..10)?, "%Y-%m-%d").ok()?;
    let next = day + Duration::days(1);
    (next.month() == day.month()).then(|| format!("{:04}-{:02}", day.year(), day.month()))
}

/// The currency the orders' revenue is in: clean orders in one currency
/// (the reporting currency when conversion is on) name it.
fn read_currency(conn: &Connection) -> Result<Currency> {
    let codes: Vec<String> = rows(
        conn,
        "SELECT DISTINCT upper(currency) FROM clean_transactions
         WHERE currency IS NOT NULL AND currency <> '' LIMIT 6",
        |r| r.get(0),
    )?;
    Ok(match codes.len() {
        0 => Currency::None,
        // Only an ISO 4217-shaped code labels the axes: a junk value the
        // standardise step flagged but kept would widen every tick label.
        1 if codes[0].len() == 3 && codes[0].bytes().all(|b| b.is_ascii_uppercase()) => {
            Currency::Code(codes[0].clone())
        }
        1 => Currency::None,
        _ => Currency::Mixed(codes),
    })
}

/// Every row of `sql`, mapped.
pub(crate) fn rows<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let v = stmt.query_map([], f)?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// The single number `sql` returns.
pub(crate) fn one(conn: &Connection, sql: &str) -> Result<i64> {
    Ok(conn
        .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(0))
}

/// A section of the page: its anchor, title and body.
pub(crate) struct Section {
    pub id: &'static str,
    pub title: String,
    pub html: String,
}

/// The report as one HTML document.
pub fn render(conn: &Connection, workspace: &str) -> Result<String> {
    // Phase 1: is there anything to report?
    let ready = one(conn, "SELECT count(*) FROM analytics_activity")?;
    if ready == 0 {
        bail!("no analytics yet: run the analyse step first (`c360 run --step analyse`)");
    }
    // Phase 2: what the sections show, read from their tables.
    let ctx = Ctx::read(conn)?;
    let months = activity::read_months(conn)?;
    let lifecycle = customers::read_lifecycle(conn)?;
    let cohorts = activity::read_cohorts(conn)?;
    let churn = customers::read_churn(conn)?;
    let funnel = customers::read_funnel(conn)?;
    let quality = quality::read(conn)?;
    let identity = identity::read(conn)?;
    // Phase 3: the sections, then the page around them.
    let summary = summary(conn, &ctx, &months, &churn, &quality, &identity)?;
    let sections = vec![
        activity::revenue(&ctx, &months)?,
        activity::active(&ctx, &months)?,
        customers::lifecycle(&ctx, &lifecycle)?,
        activity::retention(&ctx, &cohorts),
        customers::churn(&ctx, &churn)?,
        customers::funnel(&funnel)?,
        quality::html(&quality)?,
        identity::html(&identity)?,
    ];
    Ok(page(workspace, &ctx, &summary, &sections))
}

/// The key figures at the top: customers, the last full month's revenue
/// and active customers, revenue at risk, what the data lost and merged.
fn summary(
    conn: &Connection,
    ctx: &Ctx,
    months: &[activity::Month],
    churn: &customers::Churn,
    quality: &quality::Quality,
    identity: &identity::Identity,
) -> Result<String> {
    let known = one(
        conn,
        "SELECT count(*) FROM customer360_profiles WHERE anonymous = 0",
    )?;
    let anonymous = one(
        conn,
        "SELECT count(*) FROM customer360_profiles WHERE anonymous <> 0",
    )?;
    let mut cards = vec![(
        format::count(known),
        format!(
            "known customers (+{} anonymous visitors)",
            format::count(anonymous)
        ),
    )];
    let full: Vec<&activity::Month> = months
        .iter()
        .filter(|m| Some(&m.period) != ctx.partial_month.as_ref())
        .collect();
    if let Some(last) = full.last() {
        let change = full
            .len()
            .checked_sub(2)
            .map(|i| full[i])
            .filter(|prev| prev.revenue != 0.0)
            .map(|prev| {
                let d = (last.revenue - prev.revenue) / prev.revenue.abs();
                format!(
                    ", {}{} vs {}",
                    if d >= 0.0 { "+" } else { "" },
                    format::percent(d),
                    format::month_long(&prev.period)
                )
            })
            .unwrap_or_default();
        cards.push((
            ctx.currency.whole(last.revenue),
            format!(
                "net revenue in {}{change}",
                format::month_long(&last.period)
            ),
        ));
        cards.push((
            format::count(last.active),
            format!("active customers in {}", format::month_long(&last.period)),
        ));
    }
    if let Some(high) = churn.bands.first() {
        cards.push((
            ctx.currency.whole(high.revenue),
            format!(
                "revenue of the {} customers at {} churn risk",
                format::count(high.customers),
                high.name
            ),
        ));
    }
    cards.push((
        format::share(quality.rejected() as f64, quality.read() as f64),
        format!(
            "of {} rows read were rejected",
            format::count(quality.read())
        ),
    ));
    let (crm_records, crm_customers) = identity.crm_records();
    cards.push(if crm_records > 0 {
        (
            format::share((crm_records - crm_customers) as f64, crm_records as f64),
            format!(
                "of {} CRM records were duplicates, merged into {} customers",
                format::count(crm_records),
                format::count(crm_customers)
            ),
        )
    } else {
        (
            format::count(identity.customers),
            format!("customers from {} records", format::count(identity.records)),
        )
    });
    Ok(html::cards(&cards))
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1140px;margin:0 auto;padding:24px 28px 48px;color:#222;line-height:1.4;background:#fff}\
h1{font-size:28px;margin:0 0 4px}h2{font-size:21px;margin:40px 0 6px;padding-top:12px;border-top:2px solid #e6e6e6}\
h3{font-size:16px;margin:18px 0 6px}\
.sub{color:#555;margin:0 0 14px}\
nav{font-size:14px;margin:8px 0 18px;color:#555}nav a{color:#2a6eaa;margin-right:14px;text-decoration:none}\
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:10px;margin:10px 0 6px}\
.card{border:1px solid #e2e2e2;border-radius:6px;padding:10px 14px;background:#fafafa}\
.card .fig{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}.card .what{font-size:13px;color:#555}\
figure{margin:14px 0 18px}figcaption{font-weight:600;font-size:15px;margin-bottom:4px}\
svg{display:block;max-width:100%;height:auto}\
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px;font-variant-numeric:tabular-nums}\
th,td{padding:3px 9px;text-align:right;border-bottom:1px solid #e6e6e6;white-space:nowrap}\
th{font-weight:600;border-bottom:2px solid #ccc;background:#f7f7f7}\
th:first-child,td:first-child{text-align:left}\
table.l2 :is(td,th):nth-child(-n+2),table.l3 :is(td,th):nth-child(-n+3),table.l4 :is(td,th):nth-child(-n+4),\
table.l5 :is(td,th):nth-child(-n+5),table.l6 :is(td,th):nth-child(-n+6){text-align:left}\
tr.total td{font-weight:600;border-top:2px solid #ccc}tr.muted td{color:#777}\
.heat table{font-size:12px}.heat td.c{min-width:36px;padding:3px 4px;text-align:center}.heat td.partial{outline:1px dashed #666;outline-offset:-3px;font-style:italic}\
.legend{font-size:13px;color:#444;margin:4px 0}.legend .item{margin-right:18px;white-space:nowrap}\
.sw{display:inline-block;width:14px;height:11px;margin-right:5px;vertical-align:-1px}\
.note{font-size:13px;color:#555;margin:4px 0}\
.cols{display:flex;flex-wrap:wrap;gap:8px 48px;align-items:flex-start}\
details{margin:6px 0 10px;font-size:14px}summary{cursor:pointer;color:#2a6eaa}\
footer{margin-top:40px;font-size:12px;color:#777}\
@media print{h2{break-before:auto}figure,table{break-inside:avoid}}";

/// The page: title, key figures, contents, the sections.
fn page(workspace: &str, ctx: &Ctx, summary: &str, sections: &[Section]) -> String {
    let title = if workspace.is_empty() {
        "Customer360 report".to_string()
    } else {
        format!("Customer360 report · {workspace}")
    };
    let mut sub = String::new();
    if let Some(a) = &ctx.as_of {
        let _ = write!(sub, "Figures as of {}", format::date_time(a));
    }
    let unit = match &ctx.currency {
        Currency::Code(c) => format!("money in {c}"),
        other => other.unit(),
    };
    let sub = if sub.is_empty() {
        unit
    } else {
        format!("{sub} · {unit}")
    };
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\
         <h1>{t}</h1><p class=\"sub\">{s}</p>{summary}<nav>",
        t = esc(&title),
        s = esc(&sub)
    );
    for s in sections {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", s.id, esc(&s.title));
    }
    out.push_str("</nav>");
    for s in sections {
        let _ = write!(
            out,
            "<section id=\"{}\"><h2>{}</h2>{}</section>",
            s.id,
            esc(&s.title),
            s.html
        );
    }
    out.push_str(
        "<footer>Made by c360 (Customer360 Workbench): <code>c360 report</code>. \
         One file, no scripts, nothing loaded from the network.</footer></body></html>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::running_month;

    #[test]
    fn the_month_of_as_of_runs_until_its_last_day() {
        assert_eq!(
            running_month("2025-07-20T20:17:40.000Z").as_deref(),
            Some("2025-07")
        );
        assert_eq!(running_month("2025-06-30T23:00:00.000Z"), None);
        assert_eq!(
            running_month("2024-02-28T10:00:00Z").as_deref(),
            Some("2024-02")
        );
        assert_eq!(running_month("2024-02-29T10:00:00Z"), None);
        assert_eq!(running_month("garbage"), None);
    }
}
