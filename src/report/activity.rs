//! Revenue and active customers per month, and retention by first-purchase
//! cohort (`analytics_activity`, grain `month`; `analytics_cohorts`).

use super::chart::{self, Column, Columns};
use super::format::{self, esc};
use super::html::{self, Swatch, Table};
use super::{Ctx, Section, rows};
use anyhow::Result;
use rusqlite::Connection;
use std::fmt::Write as _;

/// One calendar month of `analytics_activity`.
#[derive(Debug, Clone, Default)]
pub struct Month {
    pub period: String,
    /// Net: orders minus refunds, in the reporting currency.
    pub revenue: f64,
    pub orders: i64,
    pub refunds: i64,
    pub active: i64,
    pub new: i64,
}

/// Every month from the first to the last with activity; months without
/// any (the analyse step writes no row for them) are there with zeros, so
/// the time axis has no holes.
pub fn read_months(conn: &Connection) -> Result<Vec<Month>> {
    let stored: Vec<Month> = rows(
        conn,
        "SELECT period, revenue, orders, refunds, active_customers, new_customers
         FROM analytics_activity WHERE grain = 'month' ORDER BY period",
        |r| {
            Ok(Month {
                period: r.get(0)?,
                revenue: r.get(1)?,
                orders: r.get(2)?,
                refunds: r.get(3)?,
                active: r.get(4)?,
                new: r.get(5)?,
            })
        },
    )?;
    Ok(fill_gaps(stored))
}

fn fill_gaps(stored: Vec<Month>) -> Vec<Month> {
    let index = |m: &Month| format::parse_month(&m.period).map(format::month_index);
    let (Some(first), Some(last)) = (
        stored.first().and_then(index),
        stored.last().and_then(index),
    ) else {
        return stored;
    };
    if last - first > 1200 {
        return stored;
    }
    let mut out = Vec::with_capacity((last - first + 1) as usize);
    let mut it = stored.into_iter().peekable();
    for i in first..=last {
        let period = format::month_period(i);
        match it.peek() {
            Some(m) if m.period == period => out.extend(it.next()),
            _ => out.push(Month {
                period,
                ..Default::default()
            }),
        }
    }
    out
}

/// Tick labels for months: the month's short name, the year under each
/// January and under the first month.
fn month_columns(ctx: &Ctx, months: &[Month], value: impl Fn(&Month) -> f64) -> Vec<Column> {
    months
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (year, month) = format::parse_month(&m.period).unwrap_or((0, 1));
            Column {
                label: format::month_short(&m.period),
                group: (i == 0 || month == 1).then(|| year.to_string()),
                value: value(m),
                part: None,
                partial: ctx.partial_month.as_deref() == Some(m.period.as_str()),
            }
        })
        .collect()
}

/// Where month labels start counting: January, April, … get labels.
fn phase(months: &[Month]) -> usize {
    months
        .first()
        .and_then(|m| format::parse_month(&m.period))
        .map_or(0, |(_, m)| m as usize - 1)
}

/// The last full month and the one before it.
fn last_full<'a>(ctx: &Ctx, months: &'a [Month]) -> (Option<&'a Month>, Option<&'a Month>) {
    let mut full = months
        .iter()
        .rev()
        .filter(|m| ctx.partial_month.as_deref() != Some(m.period.as_str()));
    (full.next(), full.next())
}

fn partial_legend(
    ctx: &Ctx,
    months: &[Month],
    colour: plotters::style::RGBColor,
) -> Option<(Swatch, String)> {
    let m = ctx.partial_month.as_deref()?;
    months.iter().any(|x| x.period == m).then(|| {
        (
            Swatch::Hatched(colour),
            ctx.partial_note().unwrap_or_default(),
        )
    })
}

pub fn revenue(ctx: &Ctx, months: &[Month]) -> Result<Section> {
    let cur = &ctx.currency;
    let axis = |v: f64| cur.whole(v);
    let value = |v: f64| cur.short(v);
    let svg = chart::columns(&Columns {
        bars: month_columns(ctx, months, |m| m.revenue),
        colour: chart::GREEN,
        part_colour: chart::GREEN,
        y_desc: format!("net revenue ({})", cur.unit()),
        axis_label: &axis,
        value_label: &value,
        phase: phase(months),
        height: 380,
    })?;
    let mut items = vec![(
        Swatch::Solid(chart::GREEN),
        "net revenue (orders − refunds)".to_string(),
    )];
    if months.iter().any(|m| m.revenue < 0.0) {
        items.push((
            Swatch::Solid(chart::NEGATIVE),
            "below zero: refunds exceed orders".into(),
        ));
    }
    items.extend(partial_legend(ctx, months, chart::GREEN));
    let total: f64 = months.iter().map(|m| m.revenue).sum();
    let mut intro = format!(
        "Net revenue per calendar month, {}. {} over {} months",
        cur.unit(),
        cur.whole(total),
        months.len()
    );
    if let (Some(last), prev) = last_full(ctx, months) {
        let _ = write!(
            intro,
            "; {} (last full month): {} from {} orders",
            format::month_long(&last.period),
            cur.whole(last.revenue),
            format::count(last.orders)
        );
        if let Some(p) = prev.filter(|p| p.revenue != 0.0) {
            let d = (last.revenue - p.revenue) / p.revenue.abs();
            let _ = write!(
                intro,
                ", {}{} on {}",
                if d >= 0.0 { "+" } else { "" },
                format::percent(d),
                format::month_long(&p.period)
            );
        }
    }
    intro.push('.');
    let mut t = Table::new(&[
        "month",
        "net revenue",
        "orders",
        "refunds",
        "active customers",
        "new customers",
    ]);
    for m in months {
        let mut label = format::month_long(&m.period);
        if ctx.partial_month.as_deref() == Some(m.period.as_str()) {
            label.push_str(" (partial)");
        }
        t.row(&[
            label,
            cur.cents(m.revenue),
            format::count(m.orders),
            format::count(m.refunds),
            format::count(m.active),
            format::count(m.new),
        ]);
    }
    let body = format!(
        "{}{}{}",
        html::p(&intro),
        html::figure(
            "Revenue per month (net: orders − refunds)",
            &svg,
            &html::legend(&items)
        ),
        html::details("Figures per month", &t.finish())
    );
    Ok(Section {
        id: "revenue",
        title: "Revenue".into(),
        html: body,
    })
}

pub fn active(ctx: &Ctx, months: &[Month]) -> Result<Section> {
    let axis = |v: f64| format::number(v);
    let value = |v: f64| format::compact(v);
    let mut bars = month_columns(ctx, months, |m| m.active as f64);
    for (b, m) in bars.iter_mut().zip(months) {
        b.part = Some(m.new as f64);
    }
    let light = chart::lighten(chart::PURPLE, 0.45);
    let svg = chart::columns(&Columns {
        bars,
        colour: light,
        part_colour: chart::PURPLE,
        y_desc: "customers".into(),
        axis_label: &axis,
        value_label: &value,
        phase: phase(months),
        height: 360,
    })?;
    let mut items = vec![
        (
            Swatch::Solid(light),
            "active customers: any web event or order in the month".to_string(),
        ),
        (
            Swatch::Solid(chart::PURPLE),
            "of them new: first order that month".to_string(),
        ),
    ];
    items.extend(partial_legend(ctx, months, light));
    let intro = match last_full(ctx, months) {
        (Some(m), _) => format!(
            "{} customers were active in {}, {} of them placing their first order.",
            format::count(m.active),
            format::month_long(&m.period),
            format::count(m.new)
        ),
        _ => String::new(),
    };
    Ok(Section {
        id: "active",
        title: "Active customers".into(),
        html: format!(
            "{}{}",
            html::p(&intro),
            html::figure("Active customers per month", &svg, &html::legend(&items))
        ),
    })
}

/// One cohort: its first-purchase month, size and share active k months
/// later (index k).
pub struct Cohort {
    pub month: String,
    pub size: i64,
    pub shares: Vec<Option<(i64, f64)>>,
}

pub fn read_cohorts(conn: &Connection) -> Result<Vec<Cohort>> {
    let cells: Vec<(String, i64, i64, i64, f64)> = rows(
        conn,
        "SELECT cohort, months_after, customers, active, share FROM analytics_cohorts
         ORDER BY cohort, months_after",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let mut out: Vec<Cohort> = Vec::new();
    for run in cells.chunk_by(|a, b| a.0 == b.0) {
        let max = run.iter().map(|c| c.1).max().unwrap_or(0).clamp(0, 600) as usize;
        let mut shares = vec![None; max + 1];
        for c in run {
            if let Ok(k) = usize::try_from(c.1)
                && k <= max
            {
                shares[k] = Some((c.3, c.4));
            }
        }
        out.push(Cohort {
            month: run[0].0.clone(),
            size: run[0].2,
            shares,
        });
    }
    Ok(out)
}

/// The most months after the first purchase the heat map shows.
const MAX_K: usize = 18;

pub fn retention(ctx: &Ctx, cohorts: &[Cohort]) -> Section {
    let max_k = cohorts
        .iter()
        .map(|c| c.shares.len().saturating_sub(1))
        .max()
        .unwrap_or(0)
        .min(MAX_K);
    let mut head: Vec<String> = vec!["first purchase".into(), "customers".into()];
    head.extend((1..=max_k).map(|k| format!("+{k}")));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&head);
    let partial = ctx
        .partial_month
        .as_deref()
        .and_then(format::parse_month)
        .map(format::month_index);
    // Averages per k, weighted by cohort size, over the cohorts that have
    // a full month k.
    let mut avg = vec![(0i64, 0i64); max_k + 1];
    for c in cohorts {
        let start = format::parse_month(&c.month).map(format::month_index);
        let mut tds = format!(
            "<td>{}</td><td>{}</td>",
            esc(&format::month_long(&c.month)),
            format::count(c.size)
        );
        for (k, acc) in avg.iter_mut().enumerate().skip(1) {
            let running = matches!((start, partial), (Some(s), Some(p)) if s + k as i64 == p);
            match c.shares.get(k).copied().flatten() {
                Some((active, share)) => {
                    if !running {
                        acc.0 += active;
                        acc.1 += c.size;
                    }
                    let alpha = (share * 2.5).min(1.0);
                    let ink = if alpha > 0.55 { "#fff" } else { "#222" };
                    let _ = write!(
                        tds,
                        "<td class=\"c{}\" style=\"background:rgba(42,110,170,{alpha:.2});color:{ink}\">{}</td>",
                        if running { " partial" } else { "" },
                        whole_percent(share)
                    );
                }
                None => tds.push_str("<td class=\"c\"></td>"),
            }
        }
        t.raw_row(&tds);
    }
    let mut tds = String::from("<td><b>all cohorts</b></td><td></td>");
    for (active, size) in avg.iter().skip(1) {
        let cell = if *size > 0 {
            whole_percent(*active as f64 / *size as f64)
        } else {
            String::new()
        };
        let _ = write!(tds, "<td class=\"c\"><b>{cell}</b></td>");
    }
    t.raw_row(&tds);
    let mut note = String::from(
        "Customers by the month of their first order, and the share of them active (any web event or order) \
         1, 2, … months later. The bottom row averages the cohorts, weighted by their size.",
    );
    if ctx.partial_month.is_some() {
        note.push_str(
            " Dashed cells fall in the running (partial) month and are left out of the average.",
        );
    }
    if cohorts.iter().any(|c| c.shares.len() > MAX_K + 1) {
        let _ = write!(note, " Shown up to {MAX_K} months.");
    }
    let html = if cohorts.is_empty() {
        html::p("No customer has an order yet: no cohorts.")
    } else {
        format!(
            "{}<div class=\"heat\">{}</div>",
            html::note(&note),
            t.finish()
        )
    };
    Section {
        id: "retention",
        title: "Retention".into(),
        html,
    }
}

/// A heat-map cell: whole percentages, `<1%` for a few, `0%` for none.
fn whole_percent(share: f64) -> String {
    if share <= 0.0 {
        "0%".into()
    } else if share < 0.005 {
        "<1%".into()
    } else {
        format!("{}%", (share * 100.0).round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_without_activity_are_filled_in() {
        let m = |p: &str, r: f64| Month {
            period: p.into(),
            revenue: r,
            ..Default::default()
        };
        let filled = fill_gaps(vec![m("2024-11", 1.0), m("2025-02", 2.0)]);
        let periods: Vec<&str> = filled.iter().map(|m| m.period.as_str()).collect();
        assert_eq!(periods, ["2024-11", "2024-12", "2025-01", "2025-02"]);
        assert_eq!(filled[1].revenue, 0.0);
        assert_eq!(filled[3].revenue, 2.0);
    }

    #[test]
    fn heat_map_cells_are_whole_percentages() {
        assert_eq!(whole_percent(0.226), "23%");
        assert_eq!(whole_percent(0.125), "13%");
        assert_eq!(whole_percent(0.004), "<1%");
        assert_eq!(whole_percent(0.0), "0%");
    }
}
