//! The Analytics screen's state: the `analytics_*` tables the analyse step
//! wrote (small: one row per period, cohort cell, band or step), and the
//! segment being built with its live count.

use crate::pipeline::analyse::PERIODS;
use crate::read::segments::{self, Columns, collect_fields as collect};
use anyhow::Result;
use rusqlite::Connection;

pub const GRAINS: [&str; 3] = ["month", "week", "day"];

#[derive(Default)]
pub struct AnalyticsView {
    /// The analyse step's tables lag the profiles (r refreshes them).
    pub stale: bool,
    /// False until the analyse step has run.
    pub ready: bool,
    pub lifecycle: Vec<(String, i64)>,
    /// (month, [(status, customers)]).
    pub lifecycle_months: Vec<(String, Vec<(String, i64)>)>,
    /// Show the lifecycle mix month by month instead of now.
    pub lifecycle_history: bool,
    pub grain: usize,
    /// (period, revenue, orders, active customers) for the grain.
    pub activity: Vec<(String, f64, i64, i64)>,
    /// (cohort, customers, share active k months later).
    pub cohorts: Vec<(String, i64, Vec<f64>)>,
    /// (band, customers, revenue).
    pub bands: Vec<(String, i64, f64)>,
    /// (signal, customers, revenue), most customers first.
    pub signals: Vec<(String, i64, f64)>,
    pub period: usize,
    /// (step, customers) for the period.
    pub funnel: Vec<(String, i64)>,
    /// The segment filter in force and its size (or the error).
    pub segment: Option<(String, Result<u64, String>)>,
    /// Profile columns loaded for live counts.
    pub columns: Option<Columns>,
    /// Columns being read on a worker thread.
    pub loading: Option<std::sync::mpsc::Receiver<Result<Columns, String>>>,
}

/// A count that cannot be answered yet: its columns are being read.
pub const LOADING: &str = "reading the profile columns this filter needs…";

impl AnalyticsView {
    pub fn grain(&self) -> &'static str {
        GRAINS[self.grain % GRAINS.len()]
    }

    pub fn period(&self) -> &'static str {
        PERIODS[self.period % PERIODS.len()].0
    }

    pub fn load(&mut self, conn: &Connection) -> Result<()> {
        self.ready = conn
            .query_row("SELECT 1 FROM analytics_activity LIMIT 1", [], |_| Ok(()))
            .is_ok();
        if !self.ready {
            return Ok(());
        }
        let mut stmt = conn.prepare(
            "SELECT status, customers FROM analytics_lifecycle WHERE month = 'current'
             ORDER BY CASE status WHEN 'lead' THEN 1 WHEN 'prospect' THEN 2 WHEN 'active' THEN 3
                      WHEN 'lapsed' THEN 4 WHEN 'churned' THEN 5 ELSE 6 END",
        )?;
        self.lifecycle = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare(
            "SELECT month, status, customers FROM analytics_lifecycle WHERE month <> 'current'
             ORDER BY month, status",
        )?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        self.lifecycle_months.clear();
        for (m, s, n) in rows {
            match self.lifecycle_months.last_mut() {
                Some((last, v)) if *last == m => v.push((s, n)),
                _ => self.lifecycle_months.push((m, vec![(s, n)])),
            }
        }
        self.load_activity(conn)?;
        let mut stmt = conn.prepare(
            "SELECT cohort, months_after, customers, share FROM analytics_cohorts ORDER BY cohort, months_after",
        )?;
        let rows: Vec<(String, i64, i64, f64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        self.cohorts.clear();
        for (c, _, n, share) in rows {
            match self.cohorts.last_mut() {
                Some((last, _, v)) if *last == c => v.push(share),
                _ => self.cohorts.push((c, n, vec![share])),
            }
        }
        let mut stmt = conn.prepare(
            "SELECT kind, name, customers, revenue FROM analytics_churn ORDER BY kind, customers DESC",
        )?;
        let rows: Vec<(String, String, i64, f64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        self.bands = rows
            .iter()
            .filter(|r| r.0 == "band")
            .map(|r| (r.1.clone(), r.2, r.3))
            .collect();
        let rank = |b: &str| {
            ["high", "medium", "low"]
                .iter()
                .position(|p| b.starts_with(p))
        };
        self.bands.sort_by_key(|b| rank(&b.0));
        self.signals = rows
            .iter()
            .filter(|r| r.0 == "signal")
            .map(|r| (r.1.clone(), r.2, r.3))
            .collect();
        self.load_funnel(conn)
    }

    pub fn load_activity(&mut self, conn: &Connection) -> Result<()> {
        let mut stmt = conn.prepare(
            "SELECT period, revenue, orders, active_customers FROM analytics_activity
             WHERE grain = ?1 ORDER BY period",
        )?;
        self.activity = stmt
            .query_map([self.grain()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(())
    }

    pub fn load_funnel(&mut self, conn: &Connection) -> Result<()> {
        let mut stmt = conn.prepare(
            "SELECT step, customers FROM analytics_funnel WHERE period = ?1 ORDER BY step_no",
        )?;
        self.funnel = stmt
            .query_map([self.period()], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(())
    }

    /// Count the profiles a filter selects: a pass over columns in memory.
    /// Columns not read yet are read on a worker thread (with its own
    /// connection); until they arrive the answer is [`LOADING`].
    pub fn count(&mut self, db: &std::path::Path, filter: &str) -> Result<u64, String> {
        let e = segments::parse(filter).map_err(|e| e.to_string())?;
        let missing = match &self.columns {
            Some(c) => c.missing(&e),
            None => {
                let mut all = Vec::new();
                collect(&e, &mut all);
                all
            }
        };
        if missing.is_empty()
            && let Some(c) = &self.columns
        {
            return Ok(c.count(&e));
        }
        if self.loading.is_none() {
            let (tx, rx) = std::sync::mpsc::channel();
            let db = db.to_path_buf();
            std::thread::spawn(move || {
                let result = crate::tui::jobs::catch(|| {
                    (|| -> anyhow::Result<Columns> {
                        let conn = crate::store::open(&db)?;
                        let mut cols = Columns::new(&conn)?;
                        cols.load_fields(&conn, &missing)?;
                        Ok(cols)
                    })()
                    .map_err(|e| format!("{e:#}"))
                });
                let _ = tx.send(result);
            });
            self.loading = Some(rx);
        }
        Err(LOADING.into())
    }

    /// Take columns a worker finished reading. True when some arrived.
    pub fn poll(&mut self) -> Option<Result<(), String>> {
        let rx = self.loading.as_ref()?;
        let got = match rx.try_recv() {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => return None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Err("the column reader stopped".into())
            }
        };
        self.loading = None;
        Some(got.map(|cols| match &mut self.columns {
            Some(c) => c.merge(cols),
            None => self.columns = Some(cols),
        }))
    }
}
