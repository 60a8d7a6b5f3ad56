//! The Customers screen: a sorted, filtered (or searched) list of profiles
//! fetched a page at a time by keyset, and the selected customer's golden
//! record and timeline (also keyset-paged). Every read is one index walk
//! (`read::customers`), so the screen stays instant on a million profiles;
//! the 360 view opens as a scrollable text.

use crate::read::customers::{
    self, EventRow, ListFilter, ProfileRow, Sort, TimelineFilter, cursor_after,
};
use crate::tui::app::{InputKind, Tab};
use crate::tui::format::{self, fit};
use crate::tui::keymap::{Action, Scope};
use crate::tui::screen::{Ctx, Jump, Screen, View};
use crate::tui::text::clean;
use crate::tui::widgets::{
    ACCENT, BAD, GOOD, Grid, NONE, WARN, block, draw_table, scroll_window, title_in,
};
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Wrap};
use rusqlite::Connection;

/// Profiles and events fetched per page.
pub const CHUNK: usize = 200;

/// Rows `G` reads at most in one press to reach the true last row.
pub const TO_END_LIMIT: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    List,
    Timeline,
}

#[derive(Default)]
pub struct CustomersView {
    pub sort: Sort,
    pub filter: ListFilter,
    /// Lifecycle statuses to cycle through with `f`.
    pub lifecycles: Vec<String>,
    /// A search in force (its results replace the list).
    pub query: Option<String>,
    pub rows: Vec<ProfileRow>,
    pub sel: usize,
    /// No more rows after the last fetched one.
    pub exhausted: bool,
    pub pane: Pane,
    /// The selected customer's stored profile (column, value).
    pub profile: Option<Vec<(String, String)>>,
    pub timeline: Vec<EventRow>,
    pub tl_filter: TimelineFilter,
    pub tl_sel: usize,
    pub tl_exhausted: bool,
    /// The customer the detail was read for.
    pub detail_for: Option<String>,
    /// True when the step has not run (no profile table rows).
    pub empty: bool,
    /// The whole list's size under the filter (counted on a worker), and
    /// the count running: (filter counted, receiver).
    pub total: Option<u64>,
    pub counting: Option<(ListFilter, std::sync::mpsc::Receiver<Result<u64, String>>)>,
    /// The filter a count failed for (not tried again).
    pub count_failed: Option<ListFilter>,
}

impl CustomersView {
    pub fn selected(&self) -> Option<&ProfileRow> {
        self.rows.get(self.sel)
    }

    /// Read the list again from the top (after a sort, filter or search
    /// change, or when the screen opens).
    pub fn reload(&mut self, conn: &Connection) -> Result<()> {
        self.empty = !crate::read::records::profiles_exist(conn);
        if self.lifecycles.is_empty() {
            self.lifecycles = customers::lifecycle_statuses(conn)?;
        }
        self.rows = match &self.query {
            Some(q) => customers::search(conn, q, CHUNK)?,
            None => customers::list(conn, self.sort, &self.filter, None, CHUNK)?,
        };
        self.exhausted = self.query.is_some() || self.rows.len() < CHUNK;
        self.total = self.exhausted.then_some(self.rows.len() as u64);
        self.sel = 0;
        self.detail_for = None;
        self.load_detail(conn)
    }

    /// Read pages until the list ends or `limit` more rows were read.
    /// Returns how many were read.
    fn read_to_end(&mut self, conn: &Connection, limit: usize) -> Result<usize> {
        let before = self.rows.len();
        while !self.exhausted && self.rows.len() - before < limit {
            self.sel = self.rows.len().saturating_sub(1);
            let n = self.rows.len();
            self.more(conn)?;
            if self.rows.len() == n {
                break;
            }
        }
        if self.exhausted {
            self.total = Some(self.rows.len() as u64);
        }
        Ok(self.rows.len() - before)
    }

    /// Fetch the next page when the selection reaches the end.
    fn more(&mut self, conn: &Connection) -> Result<()> {
        if self.exhausted || self.sel + 1 < self.rows.len() {
            return Ok(());
        }
        let Some(last) = self.rows.last() else {
            return Ok(());
        };
        let cursor = cursor_after(conn, self.sort, last)?;
        let next = customers::list(conn, self.sort, &self.filter, Some(&cursor), CHUNK)?;
        self.exhausted = next.len() < CHUNK;
        self.rows.extend(next);
        Ok(())
    }

    /// The selected customer's profile and first page of events.
    pub fn load_detail(&mut self, conn: &Connection) -> Result<()> {
        let id = self.selected().map(|r| r.id.clone());
        if id == self.detail_for {
            return Ok(());
        }
        self.detail_for = id.clone();
        self.tl_sel = 0;
        match id {
            Some(id) => {
                self.profile = crate::pipeline::unify::profile_fields(conn, &id)?;
                self.timeline = customers::timeline(conn, &id, self.tl_filter, None, CHUNK)?;
                self.tl_exhausted = self.timeline.len() < CHUNK;
            }
            None => {
                self.profile = None;
                self.timeline.clear();
                self.tl_exhausted = true;
            }
        }
        Ok(())
    }

    fn more_events(&mut self, conn: &Connection) -> Result<()> {
        if self.tl_exhausted || self.tl_sel + 1 < self.timeline.len() {
            return Ok(());
        }
        let (Some(id), Some(last)) = (self.detail_for.clone(), self.timeline.last()) else {
            return Ok(());
        };
        let before = (last.time.clone(), last.seq);
        let next = customers::timeline(
            conn,
            &id,
            self.tl_filter,
            Some((&before.0, before.1)),
            CHUNK,
        )?;
        self.tl_exhausted = next.len() < CHUNK;
        self.timeline.extend(next);
        Ok(())
    }

    /// A profile field's stored value ("" when empty or unknown).
    pub fn field(&self, name: &str) -> &str {
        self.profile
            .as_ref()
            .and_then(|p| p.iter().find(|(n, _)| n == name))
            .map_or("", |(_, v)| v.as_str())
    }

    /// Start a search (empty text: back to the list).
    pub fn search(&mut self, conn: &Connection, text: &str) -> Result<()> {
        let t = text.trim();
        self.query = (!t.is_empty()).then(|| t.to_string());
        self.reload(conn)
    }

    /// Apply a key's action. Returns a flash message when there is one.
    pub fn apply(
        &mut self,
        conn: &Connection,
        action: &Action,
        viewport: usize,
    ) -> Result<Option<String>> {
        let page = viewport.max(1);
        match (self.pane, action) {
            (_, Action::Left) => self.pane = Pane::List,
            (_, Action::Right) => self.pane = Pane::Timeline,
            (_, Action::ToggleOrder) => {
                self.sort = self.sort.next();
                self.query = None;
                self.reload(conn)?;
                return Ok(Some(format!("sorted by {}", self.sort.label())));
            }
            (_, Action::CycleFilter) => {
                let next = match &self.filter.lifecycle {
                    None => self.lifecycles.first().cloned(),
                    Some(cur) => {
                        let i = self.lifecycles.iter().position(|l| l == cur);
                        i.and_then(|i| self.lifecycles.get(i + 1).cloned())
                    }
                };
                self.filter.lifecycle = next;
                self.query = None;
                self.reload(conn)?;
                return Ok(Some(match &self.filter.lifecycle {
                    Some(l) => format!("lifecycle: {l}"),
                    None => "all lifecycle statuses".into(),
                }));
            }
            (_, Action::ToggleAnonymous) => {
                self.filter.anonymous = !self.filter.anonymous;
                self.query = None;
                self.reload(conn)?;
                return Ok(Some(if self.filter.anonymous {
                    "anonymous visitors shown".into()
                } else {
                    "anonymous visitors hidden".into()
                }));
            }
            (_, Action::CycleTimeline) => {
                self.tl_filter = self.tl_filter.next();
                self.detail_for = None;
                self.load_detail(conn)?;
                return Ok(Some(format!("timeline: {}", self.tl_filter.label())));
            }
            (Pane::List, Action::Bottom) => {
                // The true last row: read the rest of the list first (a
                // keyset walk of the sort index), up to a bound.
                let read = self.read_to_end(conn, TO_END_LIMIT)?;
                self.sel = self.rows.len().saturating_sub(1);
                self.load_detail(conn)?;
                if !self.exhausted {
                    return Ok(Some(format!(
                        "read {} more; the list goes on: G again reads further",
                        read
                    )));
                }
            }
            (Pane::List, a) => {
                let last = self.rows.len().saturating_sub(1);
                match a {
                    Action::Down => self.sel = (self.sel + 1).min(last),
                    Action::Up => self.sel = self.sel.saturating_sub(1),
                    Action::PageDown => self.sel = (self.sel + page).min(last),
                    Action::PageUp => self.sel = self.sel.saturating_sub(page),
                    Action::Top => self.sel = 0,
                    Action::Bottom => self.sel = last,
                    _ => return Ok(None),
                }
                self.more(conn)?;
                if matches!(a, Action::PageDown | Action::Down) {
                    self.sel = self.sel.min(self.rows.len().saturating_sub(1));
                }
                self.load_detail(conn)?;
            }
            (Pane::Timeline, a) => {
                let last = self.timeline.len().saturating_sub(1);
                match a {
                    Action::Down => self.tl_sel = (self.tl_sel + 1).min(last),
                    Action::Up => self.tl_sel = self.tl_sel.saturating_sub(1),
                    Action::PageDown => self.tl_sel = (self.tl_sel + page).min(last),
                    Action::PageUp => self.tl_sel = self.tl_sel.saturating_sub(page),
                    Action::Top => self.tl_sel = 0,
                    Action::Bottom => self.tl_sel = last,
                    _ => return Ok(None),
                }
                self.more_events(conn)?;
            }
        }
        Ok(None)
    }
}

impl CustomersView {
    /// Count the whole list on a worker when a page does not hold it.
    fn start_count(&mut self, db: std::path::PathBuf) {
        if self.total.is_some() || self.empty {
            self.counting = None;
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let filter = self.filter.clone();
        let f = filter.clone();
        std::thread::spawn(move || {
            let result = crate::tui::jobs::catch(|| {
                (|| -> Result<u64> {
                    let conn = crate::store::open(&db)?;
                    customers::count(&conn, &f)
                })()
                .map_err(|e| format!("{e:#}"))
            });
            let _ = tx.send(result);
        });
        self.counting = Some((filter, rx));
    }
}

impl Screen for CustomersView {
    fn scope(&self) -> Scope {
        Scope::Customers
    }

    fn update(&mut self, action: Action, cx: &mut Ctx) {
        match action {
            Action::Open => {
                let Some(id) = self.selected().map(|r| r.id.clone()) else {
                    return;
                };
                match crate::read::customers::view_text(cx.conn, &id) {
                    Ok(body) => cx.detail(format!("Customer {id}"), body),
                    Err(e) => cx.flash(format!("{e:#}")),
                }
            }
            Action::Search => cx.input(
                InputKind::CustomerSearch,
                self.query.as_deref().unwrap_or_default(),
            ),
            Action::JumpPairs => match self.selected().map(|r| r.id.clone()) {
                Some(id) => cx.goto(Tab::Review, Some(Jump::PairsOf(id))),
                None => cx.flash("no customer selected"),
            },
            other => match self.apply(cx.conn, &other, cx.viewport) {
                Ok(Some(msg)) => cx.flash(msg),
                Ok(None) => {}
                Err(e) => cx.flash(format!("cannot read the database: {e:#}")),
            },
        }
    }

    fn submit(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        if kind != InputKind::CustomerSearch {
            return;
        }
        let result = self.search(cx.conn, text);
        cx.report(result);
        if let Some(q) = &self.query {
            cx.flash(format!(
                "{} match {q:?} · Esc shows the list again",
                format::plural(self.rows.len() as u64, "customer", "customers")
            ));
        }
    }

    fn clear(&mut self, cx: &mut Ctx) -> bool {
        if self.query.is_none() && self.filter == Default::default() {
            return false;
        }
        self.query = None;
        self.filter = Default::default();
        let result = self.reload(cx.conn);
        cx.report(result);
        true
    }

    fn refresh(&mut self, cx: &mut Ctx) -> Result<()> {
        self.lifecycles.clear();
        let (sel, id) = (self.sel, self.selected().map(|r| r.id.clone()));
        self.reload(cx.conn)?;
        // Keep the customer selected when it is still in the list.
        if let Some(id) = id
            && let Some(i) = self.rows.iter().position(|r| r.id == id)
        {
            self.sel = i;
        } else {
            self.sel = sel.min(self.rows.len().saturating_sub(1));
        }
        self.load_detail(cx.conn)
    }

    fn poll(&mut self, cx: &mut Ctx) -> bool {
        let Some((filter, rx)) = &self.counting else {
            // A list read again (sort, filter, search) is counted again.
            if self.total.is_none()
                && !self.empty
                && self.query.is_none()
                && self.count_failed.as_ref() != Some(&self.filter)
            {
                self.start_count(cx.ws.db_path());
            }
            return false;
        };
        let got = match rx.try_recv() {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => return false,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err("the count stopped".into()),
        };
        let current = *filter == self.filter && self.query.is_none();
        self.counting = None;
        match got {
            Ok(n) if current => self.total = Some(n),
            Ok(_) => {}
            Err(e) => {
                self.count_failed = Some(self.filter.clone());
                cx.flash(format!("cannot count the customers: {e}"))
            }
        }
        true
    }

    fn waiting(&self) -> bool {
        self.counting.is_some()
    }

    fn arrive(&mut self, jump: &Jump, cx: &mut Ctx) {
        match jump {
            Jump::Customer(id) => {
                let result = self.search(cx.conn, id);
                cx.report(result);
                if let Some(i) = self.rows.iter().position(|r| &r.id == id) {
                    self.sel = i;
                    let result = self.load_detail(cx.conn);
                    cx.report(result);
                } else {
                    cx.flash(format!("no profile {id} (unify has not run since?)"));
                }
            }
            Jump::Members(filter) => {
                self.filter.segment = Some(filter.clone());
                self.query = None;
                let result = self.reload(cx.conn);
                cx.report(result);
                cx.flash(format!("segment members: {filter} · Esc shows everyone"));
            }
            _ => {}
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, view: &View) {
        if self.empty {
            frame.render_widget(
                Paragraph::new(
                    "No profiles yet: the unify step has not run.\n\nR runs the steps that are out of date (or `c360 run --all`).",
                )
                .wrap(Wrap { trim: true })
                .block(block("Customers", true)),
                area,
            );
            return;
        }
        let wide = area.width >= 110;
        let (left, right) = if wide {
            let [l, r] =
                Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
                    .areas(area);
            (l, r)
        } else {
            let [l, r] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(area);
            (l, r)
        };
        self.draw_list(frame, left, view.currency);
        let Some(sel) = self.selected() else {
            frame.render_widget(
                Paragraph::new("No customer matches. Esc shows the whole list.")
                    .block(block("Customer", false)),
                right,
            );
            return;
        };
        let lines = self.golden_lines(view.currency, right.width);
        let golden_height = (lines.len() as u16 + 2).min(right.height / 2);
        let [top, bottom] =
            Layout::vertical([Constraint::Length(golden_height), Constraint::Min(3)]).areas(right);
        let title = format!(
            "{}{} · Enter: 360 view and why · p pending pairs",
            clean(&sel.id),
            if sel.anonymous { " (anonymous)" } else { "" }
        );
        frame.render_widget(
            Paragraph::new(lines).block(block(&title_in(&title, top.width), false)),
            top,
        );
        self.draw_timeline(frame, bottom, view.currency);
    }
}

impl CustomersView {
    fn list_title(&self) -> String {
        let count = match self.total {
            Some(t) if self.exhausted => format::count(t),
            Some(t) => format!(
                "{} of {} read",
                format::count(self.rows.len() as u64),
                format::count(t)
            ),
            None => format!("{}+ (counting…)", format::count(self.rows.len() as u64)),
        };
        match &self.query {
            Some(q) => format!(
                "Customers · {count} match {} · Esc: all",
                fit(&clean(q), 24)
            ),
            None => format!(
                "Customers · by {}{}{}{} · {count}",
                self.sort.label(),
                self.filter
                    .lifecycle
                    .as_ref()
                    .map_or(String::new(), |l| format!(" · {}", clean(l))),
                self.filter
                    .segment
                    .as_ref()
                    .map_or(String::new(), |s| format!(" · segment {}", clean(s))),
                if self.filter.anonymous {
                    " · with anonymous"
                } else {
                    ""
                },
            ),
        }
    }

    fn draw_list(&self, frame: &mut Frame, area: Rect, currency: &str) {
        // Columns give way from the right of the name as the pane narrows:
        // e-mail first, then the lifecycle; numbers are never cut.
        let with_email = area.width >= 84;
        let with_lifecycle = area.width >= 60;
        let mut cols = vec![(Constraint::Min(10), "name")];
        if with_email {
            cols.push((Constraint::Min(12), "email"));
        }
        if with_lifecycle {
            cols.push((Constraint::Length(9), "lifecycle"));
        }
        cols.extend([
            (Constraint::Length(6), "orders"),
            (Constraint::Length(11), "revenue"),
            (Constraint::Length(11), "last active"),
            (Constraint::Length(4), "risk"),
        ]);
        let constraints: Vec<Constraint> = cols.iter().map(|c| c.0).collect();
        let titles: Vec<&str> = cols.iter().map(|c| c.1).collect();
        let g = Grid::new(area.width, &constraints);
        let n = cols.len();
        let (offset, fit_rows) = scroll_window(area.height, self.sel, true);
        let rows: Vec<Row> = self
            .rows
            .iter()
            .skip(offset)
            .take(fit_rows)
            .map(|r| {
                let name = match (&r.name, r.anonymous) {
                    (Some(n), _) => n.clone(),
                    (None, true) => format!("(anonymous) {}", r.id),
                    (None, false) => r.id.clone(),
                };
                let mut cells = vec![g.text(0, &name)];
                if with_email {
                    cells.push(g.text(cells.len(), r.email.as_deref().unwrap_or_default()));
                }
                if with_lifecycle {
                    cells.push(g.text(cells.len(), r.lifecycle.as_deref().unwrap_or_default()));
                }
                cells.push(g.count(n - 4, r.orders.max(0) as u64));
                cells.push(g.money(n - 3, r.revenue, currency));
                cells.push(
                    g.text(
                        n - 2,
                        &r.last_activity
                            .as_deref()
                            .map_or(String::new(), format::date),
                    ),
                );
                cells.push(
                    g.right(n - 1, &format!("{:.2}", r.churn_risk))
                        .fg(risk_colour(r.churn_risk)),
                );
                Row::new(cells)
            })
            .collect();

        draw_table(
            frame,
            area,
            &g,
            g.header(&titles, &[n - 4, n - 3, n - 1]),
            rows,
            &self.list_title(),
            self.pane == Pane::List,
            Some(self.sel - offset),
        );
    }

    /// The golden record with provenance, then the activity summary; a
    /// value the profile lacks shows the "no value" mark, never a gap.
    fn golden_lines(&self, currency: &str, width: u16) -> Vec<Line<'static>> {
        let w = width.saturating_sub(2) as usize;
        let f = |name: &str| clean(self.field(name));
        let or_none = |s: String| if s.is_empty() { NONE.to_string() } else { s };
        let mut lines: Vec<Line> = Vec::new();
        for (label, field, base) in crate::read::customers::GOLDEN_FIELDS {
            let value = fit(&or_none(f(field)), w.saturating_sub(10));
            let mut spans = vec![
                Span::raw(format!("{label:<10}")).bold(),
                Span::raw(value.clone()),
            ];
            let from = f(&format!("{base}_from"));
            let room = w.saturating_sub(10 + format::width(&value));
            if !from.is_empty() && room > 4 {
                let why = format!("  ← {from} · {}", f(&format!("{base}_rule")));
                spans.push(Span::raw(fit(&why, room)).fg(ACCENT));
            }
            lines.push(Line::from(spans));
        }
        let num = |name: &str| self.field(name).parse::<f64>().ok();
        let money_of = |name: &str| num(name).map_or(NONE.into(), |x| format::money(x, currency));
        lines.push(Line::from(fit(
            &format!(
                "orders {} · revenue {} · AOV {} · favourite {} · RFM {}",
                or_none(f("orders")),
                money_of("revenue"),
                money_of("aov"),
                or_none(f("favourite_category")),
                or_none(f("rfm_segment")),
            ),
            w,
        )));
        let last = match (
            self.field("last_activity_at"),
            self.field("days_since_last_activity"),
        ) {
            ("", _) => "no activity yet".to_string(),
            (t, "") => format!("last active {}", format::time(t)),
            (t, d) => format!("last active {} ({d} days ago)", format::time(t)),
        };
        lines.push(Line::from(fit(
            &format!(
                "30d/90d: sessions {}/{} · page views {}/{} · key events {}/{} · {}",
                or_none(f("sessions_30d")),
                or_none(f("sessions_90d")),
                or_none(f("page_views_30d")),
                or_none(f("page_views_90d")),
                or_none(f("key_events_30d")),
                or_none(f("key_events_90d")),
                clean(&last),
            ),
            w,
        )));
        let risk = num("churn_risk").unwrap_or(0.0);
        lines.push(Line::from(vec![
            Span::raw(format!("churn risk {risk:.2}")).fg(risk_colour(risk)),
            Span::raw(if f("churn_signals").is_empty() {
                String::new()
            } else {
                fit(&format!(": {}", f("churn_signals")), w.saturating_sub(15))
            }),
        ]));
        lines.push(Line::from(fit(
            &format!(
                "records: {} CRM · {} web · {} orders · {}",
                or_none(f("crm_records")),
                or_none(f("web_events")),
                or_none(f("transactions")),
                crate::read::display::identifiers(self.field("identifiers"))
            ),
            w,
        )));
        lines
    }

    fn draw_timeline(&self, frame: &mut Frame, area: Rect, currency: &str) {
        let g = Grid::new(
            area.width,
            &[
                Constraint::Length(16),
                Constraint::Fill(1),
                Constraint::Length(6),
                Constraint::Length(10),
                Constraint::Fill(1),
            ],
        );
        let (offset, fit_rows) = scroll_window(area.height, self.tl_sel, true);
        let rows: Vec<Row> = self
            .timeline
            .iter()
            .skip(offset)
            .take(fit_rows)
            .map(|e| {
                Row::new(vec![
                    g.text(0, &format::time(&e.time)),
                    g.text(1, &e.name),
                    g.text(2, system_label(&e.system)),
                    match e.revenue {
                        Some(r) => g.money(3, r, currency),
                        None => g.right(3, ""),
                    },
                    g.text(4, &e.detail),
                ])
            })
            .collect();
        let focused = self.pane == Pane::Timeline;

        let title = format!(
            "Timeline · {} · {}{} · t filter",
            self.tl_filter.label(),
            format::count(self.timeline.len() as u64),
            if self.tl_exhausted { "" } else { "+" }
        );
        draw_table(
            frame,
            area,
            &g,
            g.header(
                &["time (local)", "event", "system", "revenue", "detail"],
                &[3],
            ),
            rows,
            &title,
            focused,
            focused.then_some(self.tl_sel - offset),
        );
    }
}

/// A system in six cells.
fn system_label(system: &str) -> &str {
    match system {
        "transactions" => "orders",
        s => s,
    }
}

fn risk_colour(risk: f64) -> Color {
    if risk >= 0.6 {
        BAD
    } else if risk >= 0.3 {
        WARN
    } else {
        GOOD
    }
}
