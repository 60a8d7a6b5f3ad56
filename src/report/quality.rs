//! Data quality: rows read, staged and rejected per source (`load_batches`
//! with `sources`), rejects per reason (`rejects`), and what the
//! standardise rules flagged (`rule_outcomes`).

use super::chart::{self, HBar};
use super::format;
use super::html::{self, Table};
use super::{Section, rows};
use anyhow::Result;
use rusqlite::Connection;

/// One source's loads, summed over its batches.
pub struct SourceLoads {
    pub source: String,
    pub system: String,
    pub format: String,
    pub batches: i64,
    pub read: i64,
    pub staged: i64,
    pub rejected: i64,
    pub last: Option<String>,
}

pub struct Quality {
    pub sources: Vec<SourceLoads>,
    /// (source, reason, rows), most rows first within a source.
    pub rejects: Vec<(String, String, i64)>,
    /// (rule, target, rows seen, rows flagged), flagged ones only.
    pub flagged: Vec<(String, String, i64, i64)>,
}

impl Quality {
    pub fn read(&self) -> i64 {
        self.sources.iter().map(|s| s.read).sum()
    }
    pub fn rejected(&self) -> i64 {
        self.sources.iter().map(|s| s.rejected).sum()
    }
}

pub fn read(conn: &Connection) -> Result<Quality> {
    let sources = rows(
        conn,
        "SELECT b.source, coalesce(s.system, b.system), coalesce(s.format, b.format), count(*),
                sum(b.rows_read), sum(b.rows_staged), sum(b.rows_rejected), max(b.finished_at)
         FROM load_batches b LEFT JOIN sources s ON s.name = b.source
         GROUP BY b.source ORDER BY b.source",
        |r| {
            Ok(SourceLoads {
                source: r.get(0)?,
                system: r.get(1)?,
                format: r.get(2)?,
                batches: r.get(3)?,
                read: r.get(4)?,
                staged: r.get(5)?,
                rejected: r.get(6)?,
                last: r.get(7)?,
            })
        },
    )?;
    let rejects = rows(
        conn,
        "SELECT source, reason, count(*) AS n FROM rejects GROUP BY source, reason
         ORDER BY source, n DESC, reason",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let flagged = rows(
        conn,
        "SELECT rule, target, rows_seen, rows_flagged FROM rule_outcomes
         WHERE rows_flagged > 0 ORDER BY ordinal",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    Ok(Quality {
        sources,
        rejects,
        flagged,
    })
}

pub fn html(q: &Quality) -> Result<Section> {
    let (read, rejected) = (q.read(), q.rejected());
    let mut body = html::p(&format!(
        "{} rows read from {} sources: {} staged, {} rejected ({}). A rejected row is kept with its reason \
         (see c360 rejects) and goes no further.",
        format::count(read),
        q.sources.len(),
        format::count(read - rejected),
        format::count(rejected),
        format::share(rejected as f64, read as f64)
    ));
    let mut t = Table::new(&[
        "source",
        "system",
        "format",
        "batches",
        "rows read",
        "staged",
        "rejected",
        "rejected share",
        "last load",
    ])
    .left(3);
    for s in &q.sources {
        t.row(&[
            s.source.clone(),
            s.system.clone(),
            s.format.clone(),
            format::count(s.batches),
            format::count(s.read),
            format::count(s.staged),
            format::count(s.rejected),
            format::share(s.rejected as f64, s.read as f64),
            s.last.as_deref().map(format::date_time).unwrap_or_default(),
        ]);
    }
    let staged: i64 = q.sources.iter().map(|s| s.staged).sum();
    t.row_with(
        "total",
        &[
            "all sources".to_string(),
            String::new(),
            String::new(),
            format::count(q.sources.iter().map(|s| s.batches).sum()),
            format::count(read),
            format::count(staged),
            format::count(rejected),
            format::share(rejected as f64, read as f64),
            String::new(),
        ],
    );
    body.push_str(&html::figure("Rows per source", &t.finish(), ""));
    if q.rejects.is_empty() {
        body.push_str(&html::p("No row was rejected."));
    } else {
        let read_of = |source: &str| {
            q.sources
                .iter()
                .find(|s| s.source == source)
                .map_or(0, |s| s.read)
        };
        let bars: Vec<HBar> = q
            .rejects
            .iter()
            .map(|(source, reason, n)| HBar {
                label: format!("{source}: {reason}"),
                value: *n as f64,
                text: format!(
                    "{} ({} of {source})",
                    format::count(*n),
                    format::share(*n as f64, read_of(source) as f64)
                ),
                colour: chart::NEGATIVE,
            })
            .collect();
        let axis = |v: f64| format::number(v);
        let svg = chart::hbars(&bars, "rejected rows", &axis)?;
        body.push_str(&html::figure(
            "Rejected rows by source and reason",
            &svg,
            "",
        ));
    }
    if !q.flagged.is_empty() {
        let mut f = Table::new(&[
            "standardise rule",
            "fields",
            "rows seen",
            "flagged",
            "flagged share",
        ])
        .left(2);
        for (rule, target, seen, flagged) in &q.flagged {
            f.row(&[
                rule.clone(),
                target.clone(),
                format::count(*seen),
                format::count(*flagged),
                format::share(*flagged as f64, *seen as f64),
            ]);
        }
        body.push_str(&html::figure(
            "Values kept but flagged by the standardise rules (invalid or unmapped)",
            &f.finish(),
            "",
        ));
    }
    Ok(Section {
        id: "quality",
        title: "Data quality".into(),
        html: body,
    })
}
