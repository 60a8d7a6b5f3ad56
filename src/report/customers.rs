//! Where the customers are: the lifecycle mix (`analytics_lifecycle`),
//! churn risk by band and signal with the revenue at risk
//! (`analytics_churn`) and the funnel (`analytics_funnel`).

use super::chart::{self, HBar};
use super::format;
use super::html::{self, Table};
use super::{Ctx, Section, rows};
use crate::pipeline::analyse::{FUNNEL, PERIODS};
use anyhow::Result;
use rusqlite::Connection;
use std::fmt::Write as _;

/// The lifecycle model's order; other statuses come after, by name.
const STATUSES: [&str; 5] = ["lead", "prospect", "active", "lapsed", "churned"];

fn status_rank(s: &str) -> usize {
    STATUSES
        .iter()
        .position(|x| *x == s)
        .unwrap_or(STATUSES.len())
}

pub struct Lifecycle {
    /// (status, customers) now, lifecycle order.
    pub now: Vec<(String, i64)>,
    /// (month, [(status, customers)]) at the last month ends, oldest first.
    pub months: Vec<(String, Vec<(String, i64)>)>,
}

pub fn read_lifecycle(conn: &Connection) -> Result<Lifecycle> {
    let mut now: Vec<(String, i64)> = rows(
        conn,
        "SELECT status, customers FROM analytics_lifecycle WHERE month = 'current'",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    now.sort_by(|a, b| (status_rank(&a.0), &a.0).cmp(&(status_rank(&b.0), &b.0)));
    let cells: Vec<(String, String, i64)> = rows(
        conn,
        "SELECT month, status, customers FROM analytics_lifecycle
         WHERE month IN (SELECT DISTINCT month FROM analytics_lifecycle WHERE month <> 'current'
                         ORDER BY month DESC LIMIT 7)
         ORDER BY month",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let months = cells
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| {
            (
                run[0].0.clone(),
                run.iter().map(|c| (c.1.clone(), c.2)).collect(),
            )
        })
        .collect();
    Ok(Lifecycle { now, months })
}

fn status_colour(s: &str) -> plotters::style::RGBColor {
    match s {
        "lead" => chart::lighten(chart::BLUE, 0.5),
        "prospect" => chart::lighten(chart::BLUE, 0.25),
        "active" => chart::GREEN,
        "lapsed" => chart::ORANGE,
        "churned" => chart::NEGATIVE,
        _ => chart::GREY,
    }
}

pub fn lifecycle(ctx: &Ctx, l: &Lifecycle) -> Result<Section> {
    let total: i64 = l.now.iter().map(|s| s.1).sum();
    let bars: Vec<HBar> = l
        .now
        .iter()
        .map(|(s, n)| HBar {
            label: s.clone(),
            value: *n as f64,
            text: format!(
                "{} · {}",
                format::count(*n),
                format::share(*n as f64, total as f64)
            ),
            colour: status_colour(s),
        })
        .collect();
    let axis = |v: f64| format::number(v);
    let svg = chart::hbars(&bars, "customers", &axis)?;
    let mut body = html::p(&format!(
        "{} known customers by lifecycle status now (from the CRM's stages, mapped to one model; \
         (none): no CRM status).",
        format::count(total)
    ));
    body.push_str(&html::figure("Lifecycle mix now", &svg, ""));
    if l.months.len() > 1 {
        let mut statuses: Vec<&str> = l
            .months
            .iter()
            .flat_map(|m| m.1.iter().map(|s| s.0.as_str()))
            .collect();
        statuses.sort_by_key(|s| (status_rank(s), *s));
        statuses.dedup();
        let mut head = vec!["month end".to_string()];
        head.extend(statuses.iter().map(|s| s.to_string()));
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head);
        for (m, mix) in &l.months {
            let mut label = format::month_long(m);
            if ctx.partial_month.as_deref() == Some(m.as_str()) {
                label.push_str(" (to date)");
            }
            let mut cells = vec![label];
            for s in &statuses {
                let n = mix.iter().find(|x| x.0 == *s).map_or(0, |x| x.1);
                cells.push(format::count(n));
            }
            t.row(&cells);
        }
        body.push_str(&html::figure(
            "Movement: customers by status at the end of the last months (from CRM stage changes)",
            &t.finish(),
            "",
        ));
    }
    Ok(Section {
        id: "lifecycle",
        title: "Lifecycle".into(),
        html: body,
    })
}

/// One row of `analytics_churn`.
pub struct Risk {
    pub name: String,
    pub customers: i64,
    pub revenue: f64,
}

pub struct Churn {
    /// Risk bands, highest risk first.
    pub bands: Vec<Risk>,
    /// Signals, most customers first.
    pub signals: Vec<Risk>,
}

/// A band's place in risk order: high, medium, low, then others by name.
pub fn band_rank(name: &str) -> usize {
    let n = name.to_ascii_lowercase();
    ["high", "medium", "low"]
        .iter()
        .position(|b| n.starts_with(b))
        .unwrap_or(3)
}

pub fn read_churn(conn: &Connection) -> Result<Churn> {
    let all: Vec<(String, Risk)> = rows(
        conn,
        "SELECT kind, name, customers, revenue FROM analytics_churn",
        |r| {
            Ok((
                r.get(0)?,
                Risk {
                    name: r.get(1)?,
                    customers: r.get(2)?,
                    revenue: r.get(3)?,
                },
            ))
        },
    )?;
    let (mut bands, mut signals): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.0 == "band");
    bands.sort_by(|a, b| (band_rank(&a.1.name), &a.1.name).cmp(&(band_rank(&b.1.name), &b.1.name)));
    signals.sort_by(|a, b| {
        b.1.customers
            .cmp(&a.1.customers)
            .then(a.1.name.cmp(&b.1.name))
    });
    Ok(Churn {
        bands: bands.into_iter().map(|r| r.1).collect(),
        signals: signals.into_iter().map(|r| r.1).collect(),
    })
}

pub fn churn(ctx: &Ctx, c: &Churn) -> Result<Section> {
    let cur = &ctx.currency;
    let customers: i64 = c.bands.iter().map(|b| b.customers).sum();
    let revenue: f64 = c.bands.iter().map(|b| b.revenue).sum();
    let mut body = html::p(&format!(
        "Known customers by churn risk (rules/profiles.toml: the signals that fired, weighted), with their \
         lifetime net revenue: the revenue at risk, in {}.",
        cur.unit()
    ));
    let colour = |name: &str| match band_rank(name) {
        0 => chart::NEGATIVE,
        1 => chart::ORANGE,
        2 => chart::GREEN,
        _ => chart::GREY,
    };
    let bars: Vec<HBar> = c
        .bands
        .iter()
        .map(|b| HBar {
            label: b.name.clone(),
            value: b.revenue,
            text: format!(
                "{} · {} customers",
                cur.whole(b.revenue),
                format::count(b.customers)
            ),
            colour: colour(&b.name),
        })
        .collect();
    let axis = |v: f64| cur.whole(v);
    if !bars.is_empty() {
        let svg = chart::hbars(&bars, &format!("revenue at risk ({})", cur.unit()), &axis)?;
        body.push_str(&html::figure(
            "Revenue at risk by churn-risk band",
            &svg,
            "",
        ));
    }
    let mut t = Table::new(&[
        "risk band",
        "customers",
        "share of customers",
        "revenue at risk",
        "share of revenue",
    ]);
    for b in &c.bands {
        t.row(&[
            b.name.clone(),
            format::count(b.customers),
            format::share(b.customers as f64, customers as f64),
            cur.cents(b.revenue),
            format::share(b.revenue, revenue),
        ]);
    }
    t.row_with(
        "total",
        &[
            "all known customers".to_string(),
            format::count(customers),
            format::share(customers as f64, customers as f64),
            cur.cents(revenue),
            format::share(revenue, revenue),
        ],
    );
    let mut s = Table::new(&["signal", "customers", "share of customers", "their revenue"]);
    for r in &c.signals {
        s.row(&[
            r.name.clone(),
            format::count(r.customers),
            format::share(r.customers as f64, customers as f64),
            cur.cents(r.revenue),
        ]);
    }
    let _ = write!(
        body,
        "<div class=\"cols\"><div><h3>By risk band</h3>{}</div><div><h3>By signal (a customer can have several)</h3>{}</div></div>",
        t.finish(),
        s.finish()
    );
    Ok(Section {
        id: "churn",
        title: "Churn risk".into(),
        html: body,
    })
}

/// (period, [(step, customers)]) in step order, `PERIODS` order.
pub type Funnel = Vec<(String, Vec<(String, i64)>)>;

pub fn read_funnel(conn: &Connection) -> Result<Funnel> {
    let cells: Vec<(String, String, i64)> = rows(
        conn,
        "SELECT period, step, customers FROM analytics_funnel ORDER BY period, step_no",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut out: Funnel = cells
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| {
            (
                run[0].0.clone(),
                run.iter().map(|c| (c.1.clone(), c.2)).collect(),
            )
        })
        .collect();
    let rank = |p: &str| {
        PERIODS
            .iter()
            .position(|x| x.0 == p)
            .unwrap_or(PERIODS.len())
    };
    out.sort_by_key(|p| rank(&p.0));
    Ok(out)
}

/// `90d` → "last 90 days", `all` → "all time".
fn period_name(p: &str) -> String {
    match p.strip_suffix('d').and_then(|d| d.parse::<u32>().ok()) {
        Some(d) => format!("last {d} days"),
        None if p == "all" => "all time".into(),
        None => p.to_string(),
    }
}

/// The funnel's figures: each step's customers, their share of the first
/// step and of the step before.
pub fn funnel_rows(steps: &[(String, i64)]) -> Vec<(String, i64, f64, f64)> {
    let first = steps.first().map_or(0, |s| s.1) as f64;
    let mut prev = first;
    steps
        .iter()
        .map(|(step, n)| {
            let n_f = *n as f64;
            let row = (
                step.clone(),
                *n,
                if first > 0.0 { n_f / first } else { f64::NAN },
                if prev > 0.0 { n_f / prev } else { f64::NAN },
            );
            prev = n_f;
            row
        })
        .collect()
}

pub fn funnel(f: &Funnel) -> Result<Section> {
    // The period shown as a chart: 90 days when there is one.
    let Some((period, steps)) = f.iter().find(|p| p.0 == "90d").or(f.first()) else {
        return Ok(Section {
            id: "funnel",
            title: "Funnel".into(),
            html: html::p("No page views: no funnel."),
        });
    };
    let figures = funnel_rows(steps);
    let bars: Vec<HBar> = figures
        .iter()
        .enumerate()
        .map(|(i, (step, n, of_first, of_prev))| HBar {
            label: step.clone(),
            value: *n as f64,
            text: if i == 0 {
                format!("{} · 100%", format::count(*n))
            } else {
                format!(
                    "{} · {} of first step · {} of previous",
                    format::count(*n),
                    format::percent(*of_first),
                    format::percent(*of_prev)
                )
            },
            colour: chart::lighten(chart::ORANGE, 0.12 * i as f64),
        })
        .collect();
    let axis = |v: f64| format::number(v);
    let svg = chart::hbars(&bars, "customers", &axis)?;
    let mut body = html::p(&format!(
        "Customers who viewed a page in the {} and how many of them reached each step in that time \
         (purchases from orders count too).",
        period_name(period)
    ));
    body.push_str(&html::figure(
        &format!("Funnel, {}", period_name(period)),
        &svg,
        "",
    ));
    let mut t = Table::new(&["step", "customers", "of first step", "of previous step"]);
    for (step, n, of_first, of_prev) in &figures {
        t.row(&[
            step.clone(),
            format::count(*n),
            format::percent(*of_first),
            format::percent(*of_prev),
        ]);
    }
    let mut notes = Vec::new();
    let missing: Vec<&str> = FUNNEL
        .iter()
        .copied()
        .filter(|s| !steps.iter().any(|x| x.0 == *s))
        .collect();
    if !missing.is_empty() {
        notes.push(format!(
            "Not tracked in this data (no event of the kind): {}.",
            missing.join(", ")
        ));
    }
    if figures.iter().any(|r| r.3 > 1.0) {
        notes.push(
            "Above 100% of the previous step: customers skip steps (an order without a tracked checkout)."
                .to_string(),
        );
    }
    let mut other = Table::new(&[
        "step",
        "last 30 days",
        "last 90 days",
        "last 365 days",
        "all time",
    ]);
    let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    for (k, step) in names.iter().enumerate() {
        let mut cells = vec![step.to_string()];
        for (p, _) in PERIODS {
            let cell = f
                .iter()
                .find(|x| x.0 == p)
                .map(|x| funnel_rows(&x.1))
                .and_then(|rows| rows.get(k).cloned())
                .map_or(String::new(), |r| {
                    format!("{} ({})", format::count(r.1), format::percent(r.2))
                });
            cells.push(cell);
        }
        other.row(&cells);
    }
    let _ = write!(
        body,
        "<div class=\"cols\"><div><h3>{}</h3>{}{}</div><div><h3>Every period (customers, share of the first step)</h3>{}</div></div>",
        format::esc(&format!("Funnel, {}", period_name(period))),
        t.finish(),
        notes.iter().map(|n| html::note(n)).collect::<String>(),
        other.finish()
    );
    Ok(Section {
        id: "funnel",
        title: "Funnel".into(),
        html: body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_go_in_risk_order() {
        let mut names = vec!["low (< 0.3)", "high (≥ 0.6)", "other", "medium (0.3–0.6)"];
        names.sort_by_key(|n| band_rank(n));
        assert_eq!(
            names,
            ["high (≥ 0.6)", "medium (0.3–0.6)", "low (< 0.3)", "other"]
        );
    }

    #[test]
    fn funnel_shares_of_the_first_and_the_previous_step() {
        let steps = vec![
            ("a".to_string(), 1000),
            ("b".into(), 500),
            ("c".into(), 100),
        ];
        let rows = funnel_rows(&steps);
        assert_eq!(rows[0].2, 1.0);
        assert_eq!(rows[1].2, 0.5);
        assert_eq!(rows[2].2, 0.1);
        assert_eq!(rows[2].3, 0.2);
        assert!(
            funnel_rows(&[("a".into(), 0), ("b".into(), 0)])[1]
                .2
                .is_nan()
        );
    }
}
