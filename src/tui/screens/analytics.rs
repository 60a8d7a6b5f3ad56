//! The Analytics screen: the analyse step's tables (lifecycle mix, revenue
//! and active customers per period, retention cohorts, churn risk, the
//! funnel) drawn so they do not mislead: bars proportional to their values
//! (in eighths of a cell), negative periods below a zero axis, a value
//! scale, the current partial period marked, money in its currency; and the
//! segment being built with its live count.

use crate::pipeline::analyse::PERIODS;
use crate::read::analytics as tables;
use crate::read::segments::{self, Columns, collect_fields as collect};
use crate::tui::app::{InputKind, Tab};
use crate::tui::format::{self, fit, money, percent};
use crate::tui::jobs::JobKind;
use crate::tui::keymap::{Action, Scope};
use crate::tui::screen::{Ctx, Jump, Screen, View};
use crate::tui::text::clean;
use crate::tui::widgets::{ACCENT, BAD, GOOD, Grid, WARN, block, bold, title_in};
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Sparkline, Table, Wrap};

pub const GRAINS: [&str; 3] = ["month", "week", "day"];

#[derive(Default)]
pub struct AnalyticsView {
    /// The analyse step's tables lag the profiles (R refreshes them).
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
    /// (band, customers, revenue), high → low.
    pub bands: Vec<(String, i64, f64)>,
    /// (signal, customers, revenue), most customers first.
    pub signals: Vec<(String, i64, f64)>,
    pub period: usize,
    /// (step, customers) for the period.
    pub funnel: Vec<(String, i64)>,
    /// When the profiles were computed (marks the partial period).
    pub as_of: Option<String>,
    /// The segment filter in force and its size (or the error).
    pub segment: Option<(String, Result<u64, String>)>,
    /// Profile columns loaded for live counts.
    pub columns: Option<Columns>,
    /// Columns being read on a worker thread.
    pub loading: Option<std::sync::mpsc::Receiver<Result<Columns, String>>>,
    /// The applied segment's lifecycle mix and churn bands (drawn instead
    /// of everyone's), and the worker reading them.
    pub mix: Option<tables::SegmentMix>,
    pub mixing: Option<std::sync::mpsc::Receiver<Result<tables::SegmentMix, String>>>,
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

    pub fn load(&mut self, conn: &rusqlite::Connection) -> Result<()> {
        self.ready = tables::ready(conn);
        if !self.ready {
            return Ok(());
        }
        self.lifecycle = tables::lifecycle_now(conn)?;
        self.lifecycle_months = tables::lifecycle_months(conn)?;
        self.load_activity(conn)?;
        self.cohorts = tables::cohorts(conn)?;
        (self.bands, self.signals) = tables::churn(conn)?;
        self.as_of = tables::as_of(conn)?;
        self.load_funnel(conn)
    }

    pub fn load_activity(&mut self, conn: &rusqlite::Connection) -> Result<()> {
        self.activity = tables::activity(conn, self.grain())?;
        Ok(())
    }

    pub fn load_funnel(&mut self, conn: &rusqlite::Connection) -> Result<()> {
        self.funnel = tables::funnel(conn, self.period())?;
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

    /// Take columns a worker finished reading.
    pub fn poll_columns(&mut self) -> Option<Result<(), String>> {
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

    /// Read the segment's lifecycle mix and churn bands on a worker.
    fn start_mix(&mut self, filter: &str, cx: &mut Ctx) {
        let (tx, rx) = std::sync::mpsc::channel();
        let db = cx.ws.db_path();
        let filter = filter.to_string();
        std::thread::spawn(move || {
            let result = crate::tui::jobs::catch(|| {
                (|| -> anyhow::Result<tables::SegmentMix> {
                    let conn = crate::store::open(&db)?;
                    tables::segment_mix(&conn, &filter)
                })()
                .map_err(|e| format!("{e:#}"))
            });
            let _ = tx.send(result);
        });
        self.mixing = Some(rx);
    }

    fn poll_mix(&mut self) -> Option<Result<(), String>> {
        let rx = self.mixing.as_ref()?;
        let got = match rx.try_recv() {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => return None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Err("the segment reader stopped".into())
            }
        };
        self.mixing = None;
        Some(got.map(|mix| {
            // A mix for a segment since replaced is dropped.
            if self.segment.as_ref().is_some_and(|s| s.0 == mix.filter) {
                self.mix = Some(mix);
            }
        }))
    }

    /// The lifecycle mix drawn: the segment's when one is applied.
    fn lifecycle_shown(&self) -> &[(String, i64)] {
        self.mix.as_ref().map_or(&self.lifecycle, |m| &m.lifecycle)
    }

    fn bands_shown(&self) -> &[(String, i64, f64)] {
        self.mix.as_ref().map_or(&self.bands, |m| &m.bands)
    }

    /// Say a segment's size (or why not) as it is typed.
    fn live_count(&mut self, text: &str, cx: &mut Ctx) {
        if text.trim().is_empty() {
            return;
        }
        let t = std::time::Instant::now();
        cx.flash(match self.count(&cx.ws.db_path(), text) {
            Ok(n) => format!(
                "{} profiles match ({:.0} ms)",
                format::count(n),
                t.elapsed().as_secs_f64() * 1000.0
            ),
            Err(e) => e,
        });
    }

    fn save_segment(&mut self, name: &str, overwrite: bool, cx: &mut Ctx) {
        let Some((filter, _)) = self.segment.clone() else {
            cx.flash("type a segment first: /");
            return;
        };
        if name.is_empty() {
            cx.flash("a segment needs a name");
            return;
        }
        let dir = cx.ws.rules_dir();
        if !overwrite
            && segments::load(&dir)
                .map(|all| all.iter().any(|s| s.name == name))
                .unwrap_or(false)
        {
            cx.open(crate::tui::app::Mode::confirm(
                format!("A segment named {name:?} exists. Replace its filter?"),
                vec![format!("new filter: {filter}")],
                crate::tui::app::Pending::SaveSegment(name.to_string()),
            ));
            return;
        }
        let seg = segments::Segment {
            name: name.to_string(),
            filter,
            description: String::new(),
        };
        cx.flash(match segments::save(&dir, seg) {
            Ok(()) => format!("saved segment {name:?} in rules/segments.toml"),
            Err(e) => format!("{e:#}"),
        });
    }

    /// Save over an existing segment (after the confirmation).
    pub fn save_confirmed(&mut self, name: &str, cx: &mut Ctx) {
        self.save_segment(name, true, cx);
    }

    /// Export the segment; a file in the way is replaced only after a yes.
    pub fn export_segment(
        &mut self,
        out: Option<std::path::PathBuf>,
        overwrite: bool,
        cx: &mut Ctx,
    ) {
        let Some(filter) = self
            .segment
            .as_ref()
            .map(|s| s.0.clone())
            .filter(|f| segments::parse(f).is_ok())
        else {
            cx.flash("type a valid segment first: /");
            return;
        };
        let out = out.unwrap_or_else(|| cx.ws.root.join("segment.parquet"));
        let job = JobKind::ExportSegment {
            filter,
            out: out.clone(),
        };
        if out.exists() && !overwrite {
            cx.open(crate::tui::app::Mode::confirm(
                format!("{} exists. Replace it?", out.display()),
                Vec::new(),
                crate::tui::app::Pending::Start(job),
            ));
            return;
        }
        cx.start(job);
    }
}

impl Screen for AnalyticsView {
    fn scope(&self) -> Scope {
        Scope::Analytics
    }

    fn update(&mut self, action: Action, cx: &mut Ctx) {
        let result = match action {
            Action::CycleGrain => {
                self.grain = (self.grain + 1) % GRAINS.len();
                self.load_activity(cx.conn)
            }
            Action::ToggleLifecycle => {
                self.lifecycle_history = !self.lifecycle_history;
                Ok(())
            }
            Action::CyclePeriod => {
                self.period = (self.period + 1) % PERIODS.len();
                self.load_funnel(cx.conn)
            }
            Action::Search => {
                let text = self
                    .segment
                    .as_ref()
                    .map(|s| s.0.clone())
                    .unwrap_or_default();
                self.live_count(&text, cx);
                cx.input(InputKind::Segment, &text);
                Ok(())
            }
            Action::SaveSegment => {
                if self.segment.is_some() {
                    cx.input(InputKind::SegmentName, "");
                } else {
                    cx.flash("type a segment first: /");
                }
                Ok(())
            }
            Action::ExportSegment => {
                self.export_segment(None, false, cx);
                Ok(())
            }
            Action::JumpPairs => {
                match &self.segment {
                    Some((f, _)) if segments::parse(f).is_ok() => {
                        cx.goto(Tab::Customers, Some(Jump::Members(f.clone())))
                    }
                    _ => cx.flash("type a valid segment first: /"),
                }
                Ok(())
            }
            _ => Ok(()),
        };
        cx.report(result);
    }

    fn typed(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        if kind == InputKind::Segment {
            self.live_count(text, cx);
        }
    }

    fn submit(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        match kind {
            InputKind::Segment => {
                let t = text.trim().to_string();
                self.mix = None;
                if t.is_empty() {
                    self.segment = None;
                    return;
                }
                let n = self.count(&cx.ws.db_path(), &t);
                if segments::parse(&t).is_ok() {
                    self.start_mix(&t, cx);
                }
                cx.flash(match &n {
                    Ok(n) => format!(
                        "segment: {} profiles · M lists them · S saves · E exports",
                        format::count(*n)
                    ),
                    Err(e) => format!("segment: {e}"),
                });
                self.segment = Some((t, n));
            }
            InputKind::SegmentName => self.save_segment(text.trim(), false, cx),
            _ => {}
        }
    }

    fn clear(&mut self, _cx: &mut Ctx) -> bool {
        self.mix = None;
        self.mixing = None;
        self.segment.take().is_some()
    }

    fn refresh(&mut self, cx: &mut Ctx) -> Result<()> {
        // Profiles may have changed since the columns were read.
        self.columns = None;
        self.loading = None;
        self.load(cx.conn)?;
        self.stale = crate::pipeline::fingerprint::is_stale(cx.conn, cx.ws, "analyse")?;
        Ok(())
    }

    fn poll(&mut self, cx: &mut Ctx) -> bool {
        if let Some(r) = self.poll_mix() {
            if let Err(e) = r {
                cx.flash(format!("cannot read the segment's mix: {e}"));
            }
            return true;
        }
        let Some(result) = self.poll_columns() else {
            return false;
        };
        if let Err(e) = result {
            cx.flash(format!("cannot read the profiles: {e}"));
            return true;
        }
        if let Some((f, Err(e))) = &self.segment
            && e == LOADING
        {
            let f = f.clone();
            let n = self.count(&cx.ws.db_path(), &f);
            cx.flash(match &n {
                Ok(n) => format!("segment: {} profiles · M lists them", format::count(*n)),
                Err(e) => format!("segment: {e}"),
            });
            self.segment = Some((f, n));
        }
        true
    }

    fn waiting(&self) -> bool {
        self.loading.is_some() || self.mixing.is_some()
    }

    fn draw(&self, frame: &mut Frame, area: Rect, view: &View) {
        if !self.ready {
            frame.render_widget(
                Paragraph::new(
                    "No analytics yet: the analyse step has not run.\n\nR runs the steps that are out of date (or `c360 run --all`).",
                )
                .wrap(Wrap { trim: true })
                .block(block("Analytics", true)),
                area,
            );
            return;
        }
        let [top, bottom, seg] = Layout::vertical([
            Constraint::Percentage(45),
            Constraint::Min(6),
            Constraint::Length(1),
        ])
        .areas(area);
        let [lc, rev] =
            Layout::horizontal([Constraint::Percentage(36), Constraint::Percentage(64)]).areas(top);
        self.draw_lifecycle(frame, lc);
        let [rv, act] =
            Layout::vertical([Constraint::Percentage(68), Constraint::Min(3)]).areas(rev);
        self.draw_revenue(frame, rv, view.currency);
        self.draw_active(frame, act);
        let [coh, right] =
            Layout::horizontal([Constraint::Percentage(52), Constraint::Percentage(48)])
                .areas(bottom);
        self.draw_cohorts(frame, coh);
        let [churn, funnel] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Min(4)]).areas(right);
        self.draw_churn(frame, churn, view.currency);
        self.draw_funnel(frame, funnel);
        frame.render_widget(Paragraph::new(self.segment_line(seg.width)), seg);
    }
}

/// Said first when the tables lag the profiles.
fn stale_note(v: &AnalyticsView) -> &'static str {
    if v.stale {
        "out of date: R refreshes · "
    } else {
        ""
    }
}

/// A horizontal bar `share` (0..1) of `width` cells, in eighths.
pub fn hbar(share: f64, width: usize) -> String {
    const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = (share.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    s.push_str(EIGHTHS[eighths % 8]);
    s
}

/// One bar row fitted to `width`: the label, a bar `share` long, then the
/// figures; when space is short the last figures go first, then the bar
/// shrinks, so no figure is ever cut.
fn bar_row(
    label: &str,
    label_w: usize,
    share: f64,
    colour: ratatui::style::Color,
    figures: &[String],
    width: usize,
) -> Line<'static> {
    let mut figures = figures.to_vec();
    let need = |f: &[String]| label_w + 1 + f.iter().map(|x| format::width(x) + 1).sum::<usize>();
    while figures.len() > 1 && width.saturating_sub(need(&figures)) < 4 {
        figures.pop();
    }
    let bar_w = width.saturating_sub(need(&figures));
    let mut spans = vec![
        Span::raw(format!("{:<label_w$} ", fit(&clean(label), label_w))),
        Span::styled(
            format!("{:<bar_w$}", hbar(share, bar_w)),
            Style::new().fg(colour),
        ),
    ];
    for f in figures {
        spans.push(Span::raw(format!(" {f}")));
    }
    Line::from(spans)
}

/// Whether `period` of `grain` is still running on `as_of` (its last day
/// not reached): drawn as partial.
pub fn is_partial(grain: &str, period: &str, as_of: &str) -> bool {
    use chrono::{Datelike, Duration, NaiveDate};
    let Some(day) = as_of
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    else {
        return false;
    };
    match grain {
        "month" => {
            let next = day + Duration::days(1);
            period == format!("{:04}-{:02}", day.year(), day.month()) && next.month() == day.month()
        }
        "week" => NaiveDate::parse_from_str(period, "%Y-%m-%d")
            .is_ok_and(|monday| day >= monday && day < monday + Duration::days(6)),
        _ => period == day.format("%Y-%m-%d").to_string() && as_of.get(11..16) != Some("23:59"),
    }
}

impl AnalyticsView {
    fn draw_lifecycle(&self, frame: &mut Frame, area: Rect) {
        let statuses = ["lead", "prospect", "active", "lapsed", "churned"];
        if self.lifecycle_history {
            let fit_rows = area.height.saturating_sub(3) as usize;
            let months =
                &self.lifecycle_months[self.lifecycle_months.len().saturating_sub(fit_rows)..];
            let mut cols = vec![Constraint::Length(8)];
            cols.extend(statuses.iter().map(|_| Constraint::Min(5)));
            let g = Grid::new(area.width, &cols);
            let rows: Vec<Row> = months
                .iter()
                .map(|(m, mix)| {
                    let mut cells = vec![g.text(0, m)];
                    cells.extend(statuses.iter().enumerate().map(|(i, s)| {
                        g.opt_count(i + 1, mix.iter().find(|x| x.0 == *s).map(|x| x.1 as u64))
                    }));
                    Row::new(cells)
                })
                .collect();
            let mut header = vec!["month"];
            header.extend(statuses);
            frame.render_widget(
                Table::new(rows, g.constraints())
                    .header(g.header(&header, &[1, 2, 3, 4, 5]))
                    .block(block(
                        &title_in(
                            &format!("{}Lifecycle at month end · L: now", stale_note(self)),
                            area.width,
                        ),
                        false,
                    )),
                area,
            );
            return;
        }
        // Now: one bar per status, proportional to the largest, with counts.
        let shown = self.lifecycle_shown();
        let max = shown.iter().map(|x| x.1).max().unwrap_or(0).max(1) as f64;
        let total: i64 = shown.iter().map(|x| x.1).sum();
        let inner_w = area.width.saturating_sub(2) as usize;
        let lines: Vec<Line> = shown
            .iter()
            .map(|(s, n)| {
                let colour = match s.as_str() {
                    "active" => GOOD,
                    "lapsed" => WARN,
                    "churned" => BAD,
                    _ => ACCENT,
                };
                let figures = [
                    format!("{:>6}", format::count_in(*n as u64, 6)),
                    format!("{:>4}", percent(*n as f64 / total.max(1) as f64)),
                ];
                bar_row(s, 9, *n as f64 / max, colour, &figures, inner_w)
            })
            .collect();
        let title = if self.mix.is_some() {
            format!(
                "Lifecycle now · segment: {} customers · Esc: everyone",
                format::count(total as u64)
            )
        } else {
            format!(
                "{}Lifecycle now · {} customers{} · L: by month",
                stale_note(self),
                format::count(total as u64),
                self.moved()
            )
        };
        frame.render_widget(
            Paragraph::new(lines).block(block(&title_in(&title, area.width), false)),
            area,
        );
    }

    /// " · 2025-08→2025-11: active +12, churned -3" over the last 3 months.
    fn moved(&self) -> String {
        let n = self.lifecycle_months.len();
        let (Some((last, now)), true) = (self.lifecycle_months.last(), n > 3) else {
            return String::new();
        };
        let (then_m, then) = &self.lifecycle_months[n - 4];
        let get =
            |list: &Vec<(String, i64)>, s: &str| list.iter().find(|x| x.0 == s).map_or(0, |x| x.1);
        format!(
            " · {}→{}: active {}, churned {}",
            clean(then_m),
            clean(last),
            format::signed(get(now, "active") - get(then, "active"), true),
            format::signed(get(now, "churned") - get(then, "churned"), true)
        )
    }

    fn draw_revenue(&self, frame: &mut Frame, area: Rect, currency: &str) {
        let total: f64 = self.activity.iter().map(|x| x.1).sum();
        let orders: i64 = self.activity.iter().map(|x| x.2).sum();
        let partial = self.as_of.as_deref().is_some_and(|a| {
            self.activity
                .last()
                .is_some_and(|p| is_partial(self.grain(), &p.0, a))
        });
        let title = format!(
            "Revenue per {} (m) · {} over {} {}s · {} orders{}",
            self.grain(),
            money(total, currency),
            format::count(self.activity.len() as u64),
            self.grain(),
            format::count(orders.max(0) as u64),
            if partial { " · ▒ partial" } else { "" }
        );
        let outer = block(&title_in(&title, area.width), false);
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let values: Vec<(String, f64)> = self.activity.iter().map(|x| (x.0.clone(), x.1)).collect();
        let lines = columns_chart(&values, inner, partial, currency);
        frame.render_widget(Paragraph::new(lines), inner);
    }

    fn draw_active(&self, frame: &mut Frame, area: Rect) {
        let fit_n = area.width.saturating_sub(2) as usize;
        let shown = &self.activity[self.activity.len().saturating_sub(fit_n)..];
        let actives: Vec<u64> = shown.iter().map(|x| x.3.max(0) as u64).collect();
        let (lo, hi) = (
            actives.iter().copied().min().unwrap_or(0),
            actives.iter().copied().max().unwrap_or(0),
        );
        let title = format!(
            "Active customers per {} · last {} · range {}–{}",
            self.grain(),
            actives.last().map_or("—".into(), |n| format::count(*n)),
            format::count(lo),
            format::count(hi)
        );
        frame.render_widget(
            Sparkline::default()
                .block(block(&title_in(&title, area.width), false))
                .data(&actives)
                .style(Style::new().fg(GOOD)),
            area,
        );
    }

    fn draw_cohorts(&self, frame: &mut Frame, area: Rect) {
        let cols_n = ((area.width.saturating_sub(18)) / 5).clamp(1, 13) as usize;
        let rows_fit = area.height.saturating_sub(3) as usize;
        let cohorts = &self.cohorts[self.cohorts.len().saturating_sub(rows_fit)..];
        let mut cols = vec![Constraint::Length(8), Constraint::Length(7)];
        cols.extend((0..cols_n).map(|_| Constraint::Length(4)));
        let g = Grid::new(area.width, &cols);
        let mut header: Vec<String> = vec!["cohort".into(), "size".into()];
        header.extend((1..=cols_n).map(|k| format!("+{k}")));
        let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
        let right: Vec<usize> = (1..cols_n + 2).collect();
        let rows: Vec<Row> = cohorts
            .iter()
            .map(|(c, n, shares)| {
                let mut cells = vec![g.text(0, c), g.count(1, *n as u64)];
                cells.extend((1..=cols_n).map(|k| match shares.get(k) {
                    Some(s) => g.right(k + 1, &percent(*s)).style(heat(*s)),
                    None => g.right(k + 1, ""),
                }));
                Row::new(cells)
            })
            .collect();
        frame.render_widget(
            Table::new(rows, g.constraints())
                .header(g.header(&header_refs, &right))
                .block(block(
                    &title_in(
                        "Retention: first-purchase cohorts, share active k months later",
                        area.width,
                    ),
                    false,
                )),
            area,
        );
    }

    fn draw_churn(&self, frame: &mut Frame, area: Rect, currency: &str) {
        let g = Grid::new(
            area.width,
            &[
                Constraint::Min(12),
                Constraint::Length(9),
                Constraint::Length(12),
            ],
        );
        let mut rows: Vec<Row> = self
            .bands_shown()
            .iter()
            .map(|(b, n, r)| {
                let style = if b.starts_with("high") {
                    Style::new().fg(BAD).add_modifier(Modifier::BOLD)
                } else if b.starts_with("medium") {
                    Style::new().fg(WARN)
                } else {
                    Style::new()
                };
                Row::new(vec![
                    g.text(0, b),
                    g.count(1, *n as u64),
                    g.money(2, *r, currency),
                ])
                .style(style)
            })
            .collect();
        let room = area.height.saturating_sub(4 + self.bands.len() as u16) as usize;
        if room > 1 && !self.signals.is_empty() && self.mix.is_none() {
            rows.push(Row::new(vec![g.text(0, "signals:")]).style(bold()));
            for (s, n, r) in self.signals.iter().take(room - 1) {
                rows.push(Row::new(vec![
                    g.text(0, &format!("  {s}")),
                    g.count(1, *n as u64),
                    g.money(2, *r, currency),
                ]));
            }
        }
        frame.render_widget(
            Table::new(rows, g.constraints())
                .header(g.header(&["churn risk", "customers", "revenue"], &[1, 2]))
                .block(block(
                    &title_in(
                        if self.mix.is_some() {
                            "Churn risk of the segment · revenue at risk, high first"
                        } else {
                            "Churn risk · revenue at risk, high first"
                        },
                        area.width,
                    ),
                    false,
                )),
            area,
        );
    }

    fn draw_funnel(&self, frame: &mut Frame, area: Rect) {
        let first = self.funnel.first().map_or(0, |x| x.1).max(1) as f64;
        let inner_w = area.width.saturating_sub(2) as usize;
        let label_w = 14.min(inner_w / 3);
        let mut prev: Option<i64> = None;
        let lines: Vec<Line> = self
            .funnel
            .iter()
            .map(|(s, n)| {
                let step = prev.map_or(format!("{:>5}", ""), |p| {
                    format!("{:>5}", percent(*n as f64 / p.max(1) as f64))
                });
                prev = Some(*n);
                let figures = [
                    format!("{:>6}", format::count_in(*n as u64, 6)),
                    format!("{:>4}", percent(*n as f64 / first)),
                    step,
                ];
                bar_row(s, label_w, *n as f64 / first, ACCENT, &figures, inner_w)
            })
            .collect();
        let title = format!(
            "Funnel · last {} (p) · customers, % of the first step, % of the step before",
            self.period()
        );
        frame.render_widget(
            Paragraph::new(lines).block(block(&title_in(&title, area.width), false)),
            area,
        );
    }

    fn segment_line(&self, width: u16) -> Line<'static> {
        let w = width as usize;
        match &self.segment {
            None => Line::from(fit(
                " segment: / to type a filter, e.g. country = \"DE\" and orders >= 3 and last_order < 90d",
                w,
            )),
            Some((f, Ok(n))) => Line::from(vec![
                Span::raw(" segment: ").bold(),
                Span::raw(fit(&clean(f), w / 2)),
                Span::raw(format!(
                    "  → {} profiles · M members · S save · E export · Esc clears",
                    format::count(*n)
                ))
                .fg(GOOD),
            ]),
            Some((f, Err(e))) => Line::from(vec![
                Span::raw(" segment: ").bold(),
                Span::raw(fit(&clean(f), w / 2)),
                Span::raw(format!("  ✗ {}", clean(e))).fg(BAD),
            ]),
        }
    }
}

/// A share 0..1 as a heat-map cell, readable on dark and light themes.
fn heat(share: f64) -> Style {
    if share >= 0.5 {
        Style::new().fg(GOOD).add_modifier(Modifier::BOLD)
    } else if share >= 0.25 {
        Style::new().fg(ACCENT).add_modifier(Modifier::BOLD)
    } else if share >= 0.1 {
        Style::new().fg(ACCENT)
    } else if share > 0.0 {
        Style::new().add_modifier(Modifier::DIM)
    } else {
        Style::new()
    }
}

/// Vertical bars of `values` (label, amount) in `area`: a value scale on
/// the left (compact money), the zero axis, positive bars above it and
/// negative ones below, the last bar hatched when `partial`, and labels
/// under every bar that has room (thinned to fit).
pub fn columns_chart(
    values: &[(String, f64)],
    area: Rect,
    partial: bool,
    currency: &str,
) -> Vec<Line<'static>> {
    const SCALE: usize = 8;
    let height = area.height.saturating_sub(1) as usize; // the labels' row
    let width = (area.width as usize).saturating_sub(SCALE + 1);
    if height < 2 || width < 2 || values.is_empty() {
        return vec![Line::from("no periods yet").dim()];
    }
    let bar = 2usize;
    let n = (width / (bar + 1)).min(values.len()).max(1);
    let shown = &values[values.len() - n..];
    let hi = shown.iter().map(|v| v.1).fold(0.0_f64, f64::max);
    let lo = shown.iter().map(|v| v.1).fold(0.0_f64, f64::min);
    let span = (hi - lo).max(1e-9);
    // Rows above the axis and below it, in proportion to the range.
    let up = ((hi / span) * (height - 1) as f64).round() as usize;
    let down = (height - 1) - up;
    let cell_value = span / (height - 1).max(1) as f64;
    let mut lines = Vec::new();
    for row in 0..height {
        let label = if row == 0 && hi > 0.0 {
            format::money_in(hi, currency, SCALE)
        } else if row == up {
            "0".to_string()
        } else if row + 1 == height && lo < 0.0 {
            format::money_in(lo, currency, SCALE)
        } else {
            String::new()
        };
        let mut spans = vec![
            Span::raw(format!("{label:>SCALE$}")).dim(),
            Span::raw("┤").dim(),
        ];
        for (i, (_, v)) in shown.iter().enumerate() {
            let last = i + 1 == shown.len();
            let style = if *v < 0.0 {
                Style::new().fg(BAD)
            } else {
                Style::new().fg(ACCENT)
            };
            let glyph = if last && partial { "▒" } else { "█" };
            let filled = if row < up {
                // Above the axis: filled when the bar reaches this row.
                *v > 0.0 && *v >= hi - (row as f64 + 0.5) * cell_value
            } else if row == up {
                false
            } else {
                *v < 0.0 && -*v >= ((row - up) as f64 - 0.5) * cell_value
            };
            let cell = if row == up {
                Span::raw("─".repeat(bar + 1)).dim()
            } else if filled {
                Span::styled(format!("{} ", glyph.repeat(bar)), style)
            } else {
                Span::raw(" ".repeat(bar + 1))
            };
            spans.push(cell);
        }
        lines.push(Line::from(spans));
    }
    let _ = down;
    // Labels: the period's tail, as many as fit without running together.
    let label_of = |p: &str| p.get(p.len().saturating_sub(5)..).unwrap_or(p).to_string();
    let label_w = label_of(&shown[0].0).chars().count() + 1;
    let every = label_w.div_ceil(bar + 1).max(1);
    let mut text = " ".repeat(SCALE + 1);
    let mut at = 0usize;
    for (i, (p, _)) in shown.iter().enumerate() {
        let x = i * (bar + 1);
        if i % every == 0 && x >= at {
            while text.chars().count() < SCALE + 1 + x {
                text.push(' ');
            }
            let l = label_of(p);
            at = x + l.chars().count() + 1;
            text.push_str(&l);
        }
    }
    lines.push(Line::from(fit(&text, area.width as usize)).dim());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_proportional_in_eighths() {
        // 60 %, 54 % and 52 % of 20 cells differ.
        let w = |s: f64| {
            let b = hbar(s, 20);
            let full = b.chars().filter(|c| *c == '█').count() * 8;
            let part = b
                .chars()
                .find_map(|c| "▏▎▍▌▋▊▉".chars().position(|x| x == c))
                .map_or(0, |i| i + 1);
            full + part
        };
        assert_eq!(w(1.0), 160);
        assert!(w(0.6) > w(0.54) && w(0.54) > w(0.52));
        assert_eq!(w(0.6), 96);
    }

    #[test]
    fn a_negative_period_is_drawn_below_the_axis() {
        let values = vec![
            ("2025-01".to_string(), 100.0),
            ("2025-02".to_string(), -50.0),
        ];
        let lines = columns_chart(&values, Rect::new(0, 0, 30, 7), false, "EUR");
        let text: Vec<String> = lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect();
        let axis = text.iter().position(|l| l.contains('─')).unwrap();
        // January's bar is above the axis, February's below it.
        assert!(text[..axis].iter().any(|l| l.chars().nth(9) == Some('█')));
        assert!(
            text[axis + 1..]
                .iter()
                .any(|l| l.chars().nth(12) == Some('█'))
        );
        assert!(
            !text[axis + 1..]
                .iter()
                .any(|l| l.chars().nth(9) == Some('█'))
        );
        assert!(text[0].contains("€100"));
    }

    #[test]
    fn the_running_period_is_partial() {
        assert!(is_partial("month", "2025-11", "2025-11-20T10:00:00Z"));
        assert!(!is_partial("month", "2025-11", "2025-11-30T10:00:00Z"));
        assert!(!is_partial("month", "2025-10", "2025-11-20T10:00:00Z"));
        assert!(is_partial("week", "2025-11-17", "2025-11-20T10:00:00Z"));
        assert!(is_partial("day", "2025-11-20", "2025-11-20T10:00:00Z"));
    }
}
