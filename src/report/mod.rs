//! `c360 report`: a one-page static HTML report of the analytics tables,
//! charts as inline SVG, no scripts and no network resources, so it opens
//! anywhere and can be mailed as one file.

use anyhow::{Result, bail};
use rusqlite::Connection;
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Vertical bars with labels under them.
fn bar_chart(title: &str, data: &[(String, f64)], colour: &str) -> String {
    let (w, h, pad) = (720.0, 220.0, 30.0);
    let max = data.iter().map(|d| d.1).fold(0.0_f64, f64::max).max(1.0);
    let n = data.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for (i, (label, v)) in data.iter().enumerate() {
        let bh = (v.max(0.0) / max) * (h - 2.0 * pad);
        let x = pad + i as f64 * bw;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{}: {:.2}</title></rect>",
            x + bw * 0.1,
            h - pad - bh,
            bw * 0.8,
            bh,
            esc(label),
            v
        );
        if data.len() <= 24 || i % (data.len() / 12).max(1) == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                h - pad + 14.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{pad}\" y=\"14\" font-size=\"11\">max {max:.0}</text></svg></figure>"
    );
    svg
}

fn rows<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let v = stmt.query_map([], f)?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// The report as one HTML document.
pub fn render(conn: &Connection, workspace: &str) -> Result<String> {
    let ready: i64 = conn.query_row("SELECT count(*) FROM analytics_activity", [], |r| r.get(0))?;
    if ready == 0 {
        bail!("no analytics yet: run the analyse step first (`c360 run --step analyse`)");
    }
    let as_of: String = conn
        .query_row("SELECT as_of FROM customer360_profiles LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap_or_default();
    let profiles: i64 = conn.query_row(
        "SELECT count(*) FROM customer360_profiles WHERE anonymous = 0",
        [],
        |r| r.get(0),
    )?;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Customer360 report · {ws}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:800px;margin:2em auto;color:#222}}\
         figure{{margin:1.5em 0}}figcaption{{font-weight:bold;margin-bottom:.3em}}\
         table{{border-collapse:collapse;font-size:12px}}td,th{{padding:2px 6px;text-align:right;border:1px solid #ddd}}\
         th:first-child,td:first-child{{text-align:left}}svg{{width:100%;height:auto}}</style></head><body>\
         <h1>Customer360 report · {ws}</h1><p>{profiles} known customers · as of {as_of}</p>",
        ws = esc(workspace),
        as_of = esc(&as_of)
    );
    let life = rows(
        conn,
        "SELECT status, customers FROM analytics_lifecycle WHERE month = 'current' ORDER BY customers DESC",
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as f64)),
    )?;
    html.push_str(&bar_chart("Lifecycle mix", &life, "#2a7ab0"));
    let rev = rows(
        conn,
        "SELECT period, revenue FROM analytics_activity WHERE grain = 'month' ORDER BY period",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    html.push_str(&bar_chart("Revenue per month", &rev, "#3a9d5d"));
    let act = rows(
        conn,
        "SELECT period, active_customers FROM analytics_activity WHERE grain = 'month' ORDER BY period",
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as f64)),
    )?;
    html.push_str(&bar_chart("Active customers per month", &act, "#8a5ab0"));
    // Retention heat map.
    let cells = rows(
        conn,
        "SELECT cohort, months_after, customers, share FROM analytics_cohorts ORDER BY cohort, months_after",
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, f64>(3)?,
            ))
        },
    )?;
    let max_k = cells.iter().map(|c| c.1).max().unwrap_or(0).min(12);
    let _ = write!(
        html,
        "<figure><figcaption>Retention: customers by first-purchase month, share active k months later</figcaption><table><tr><th>cohort</th><th>size</th>"
    );
    for k in 1..=max_k {
        let _ = write!(html, "<th>+{k}</th>");
    }
    html.push_str("</tr>");
    for run in cells.chunk_by(|a, b| a.0 == b.0) {
        let _ = write!(html, "<tr><td>{}</td><td>{}</td>", esc(&run[0].0), run[0].2);
        for k in 1..=max_k {
            match run.iter().find(|c| c.1 == k) {
                Some(c) => {
                    let alpha = (c.3 * 2.0).min(1.0);
                    let _ = write!(
                        html,
                        "<td style=\"background:rgba(42,122,176,{alpha:.2})\">{:.0}%</td>",
                        c.3 * 100.0
                    );
                }
                None => html.push_str("<td></td>"),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></figure>");
    // Churn.
    let churn = rows(
        conn,
        "SELECT kind, name, customers, revenue FROM analytics_churn ORDER BY kind, customers DESC",
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, f64>(3)?,
            ))
        },
    )?;
    html.push_str("<figure><figcaption>Churn risk and revenue at risk</figcaption><table><tr><th></th><th>customers</th><th>revenue</th></tr>");
    for (kind, name, n, r) in &churn {
        let _ = write!(
            html,
            "<tr><td>{}{}</td><td>{n}</td><td>{r:.2}</td></tr>",
            if kind == "signal" { "signal: " } else { "" },
            esc(name)
        );
    }
    html.push_str("</table></figure>");
    let funnel = rows(
        conn,
        "SELECT step, customers FROM analytics_funnel WHERE period = '90d' ORDER BY step_no",
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as f64)),
    )?;
    html.push_str(&bar_chart(
        "Funnel, last 90 days: customers who viewed a page and reached each step",
        &funnel,
        "#c0702a",
    ));
    html.push_str("<p><small>Made by c360 (Customer360 Workbench).</small></p></body></html>\n");
    Ok(html)
}
