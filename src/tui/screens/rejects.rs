//! The Rejects screen: every rejected row with its reason, filtered by
//! source, reason and text (the text search runs on a worker thread), paged
//! by key so it stays instant on millions of rows.

use crate::store::{self, Anchor, Reject, RejectFilter};
use crate::tui::app::InputKind;
use crate::tui::format;
use crate::tui::keymap::{Action, Scope};
use crate::tui::paged::Paged;
use crate::tui::screen::{Ctx, Screen, View};
use crate::tui::text::clean;
use crate::tui::widgets::{ACCENT, Grid, WARN, block, draw_table, title_in};
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use std::sync::mpsc::Receiver;

/// A finished search: (rows matching, the first page) or an error.
pub type SearchResult = Result<(u64, Vec<Reject>), String>;

pub struct RejectsView {
    pub filter: RejectFilter,
    /// (source, reason, count) for the whole table, largest first.
    pub counts: Vec<(String, String, u64)>,
    /// Rows matching the filter.
    pub total: u64,
    /// The visible rows (keyset paged on reject_id).
    pub page: Paged<Reject>,
    /// The load state the counts were read at.
    pub version: Option<(i64, i64)>,
    /// A text search running on a worker thread, with the filter it
    /// searches with: a result for an older filter is dropped.
    pub search: Option<(RejectFilter, Receiver<SearchResult>)>,
}

impl RejectsView {
    pub fn new(viewport: usize) -> RejectsView {
        RejectsView {
            filter: RejectFilter::default(),
            counts: Vec::new(),
            total: 0,
            page: Paged::new(viewport),
            version: None,
            search: None,
        }
    }

    /// The reasons in the order the counts list shows them (each once).
    pub fn reasons(&self) -> Vec<&String> {
        let mut out: Vec<&String> = Vec::new();
        for (_, reason, _) in &self.counts {
            if !out.contains(&reason) {
                out.push(reason);
            }
        }
        out
    }

    fn sources(&self) -> Vec<&String> {
        let mut out: Vec<&String> = Vec::new();
        for (source, _, _) in &self.counts {
            if !out.contains(&source) {
                out.push(source);
            }
        }
        out
    }

    fn load(&mut self, anchor: Anchor, cx: &mut Ctx) {
        let (conn, filter) = (cx.conn, &self.filter);
        let result = self.page.load(anchor, &mut |a, n| {
            store::rejects_window(conn, filter, a, n)
        });
        cx.report(result);
    }

    /// Count and show the rows of the current filter (text searches go to a
    /// worker: they scan the original rows).
    pub fn apply_filter(&mut self, cx: &mut Ctx) {
        if self.filter.text.is_some() {
            return self.start_search(cx);
        }
        self.search = None;
        self.total = store::rejects_count(cx.conn, &self.filter).unwrap_or(0);
        self.load(Anchor::First, cx);
    }

    /// Filter by `reason`, which must be one the table has.
    pub fn filter_reason(&mut self, reason: &str, cx: &mut Ctx) -> bool {
        let Some(known) = self
            .reasons()
            .into_iter()
            .find(|r| r.eq_ignore_ascii_case(reason))
            .cloned()
        else {
            let all: Vec<String> = self.reasons().into_iter().cloned().collect();
            cx.flash(if all.is_empty() {
                "no rows were rejected".to_string()
            } else {
                format!("no reject reason {reason:?}; reasons: {}", all.join(", "))
            });
            return false;
        };
        self.filter.reason = Some(known);
        self.apply_filter(cx);
        true
    }

    fn start_search(&mut self, cx: &mut Ctx) {
        let (tx, rx) = std::sync::mpsc::channel();
        let db = cx.ws.db_path();
        let filter = self.filter.clone();
        let n = self.page.viewport;
        std::thread::spawn(move || {
            let result = crate::tui::jobs::catch(|| {
                (|| -> Result<(u64, Vec<Reject>)> {
                    let conn = store::open(&db)?;
                    let rows = store::rejects_window(&conn, &filter, Anchor::First, n)?;
                    Ok((store::rejects_count(&conn, &filter)?, rows))
                })()
                .map_err(|e| format!("{e:#}"))
            });
            let _ = tx.send(result);
        });
        self.search = Some((self.filter.clone(), rx));
        cx.flash("searching…");
    }

    /// Take a finished search (waiting up to `wait`). True when it changed.
    pub fn poll_search(&mut self, wait: Option<std::time::Duration>, cx: &mut Ctx) -> bool {
        let Some((searched, rx)) = &self.search else {
            return false;
        };
        let current = *searched == self.filter;
        let received = match wait {
            Some(w) => rx.recv_timeout(w).ok(),
            None => rx.try_recv().ok(),
        };
        let Some(result) = received else {
            return false;
        };
        self.search = None;
        match result {
            _ if !current => return false,
            Ok((total, rows)) => {
                self.total = total;
                self.page.rows = rows;
                self.page.selected = 0;
                cx.flash(format!("{} rows match", format::count(total)));
            }
            Err(e) => cx.flash(format!("search failed: {e}")),
        }
        true
    }

    fn open_row(&self, cx: &mut Ctx) {
        if let Some(row) = self.page.selected_row() {
            cx.detail(
                format!("Reject #{}", row.reject_id),
                format!(
                    "source:  {}\nbatch:   {}\nrow:     {}\nfield:   {}\nreason:  {}\ndetail:  {}\n\noriginal row:\n{}",
                    row.source,
                    row.batch_id,
                    format::count(row.row_num),
                    row.field.as_deref().unwrap_or(crate::tui::widgets::NONE),
                    row.reason,
                    row.detail,
                    row.raw
                ),
            );
        }
    }
}

/// The next value after `current` in `values`, then back to none.
fn cycle(values: &[&String], current: Option<&String>) -> Option<String> {
    match current.and_then(|c| values.iter().position(|v| *v == c)) {
        None => values.first().map(|v| (*v).clone()),
        Some(i) => values.get(i + 1).map(|v| (*v).clone()),
    }
}

impl Screen for RejectsView {
    fn scope(&self) -> Scope {
        Scope::Rejects
    }

    fn update(&mut self, action: Action, cx: &mut Ctx) {
        let (conn, filter) = (cx.conn, &self.filter);
        let moved = self.page.apply(&action, &mut |a, n| {
            store::rejects_window(conn, filter, a, n)
        });
        match moved {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => return cx.report(Err(e)),
        }
        match action {
            Action::Open => self.open_row(cx),
            Action::Search => cx.input(
                InputKind::Search,
                self.filter.text.as_deref().unwrap_or_default(),
            ),
            Action::CycleReason => {
                self.filter.reason = cycle(&self.reasons(), self.filter.reason.as_ref());
                self.apply_filter(cx);
            }
            Action::CycleSource => {
                self.filter.source = cycle(&self.sources(), self.filter.source.as_ref());
                self.apply_filter(cx);
            }
            Action::ClearFilters => {
                self.clear(cx);
            }
            _ => {}
        }
    }

    fn clear(&mut self, cx: &mut Ctx) -> bool {
        if self.filter == RejectFilter::default() {
            return false;
        }
        self.filter = RejectFilter::default();
        self.apply_filter(cx);
        true
    }

    fn submit(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        if kind == InputKind::Search {
            let t = text.trim();
            self.filter.text = (!t.is_empty()).then(|| t.to_string());
            self.apply_filter(cx);
        }
    }

    fn refresh(&mut self, cx: &mut Ctx) -> Result<()> {
        // Counts per reason scan the whole table: re-read them only when a
        // load added rejects since the last time.
        let version = store::rejects_version(cx.conn)?;
        if self.version != Some(version) {
            self.counts = store::reject_counts(cx.conn, None)?;
            self.total = store::rejects_count(cx.conn, &self.filter)?;
            self.version = Some(version);
        }
        let (conn, filter) = (cx.conn, &self.filter);
        self.page
            .reload(&mut |a, n| store::rejects_window(conn, filter, a, n))
    }

    fn poll(&mut self, cx: &mut Ctx) -> bool {
        self.poll_search(None, cx)
    }

    fn waiting(&self) -> bool {
        self.search.is_some()
    }

    fn resize(&mut self, cx: &mut Ctx) {
        let (conn, filter) = (cx.conn, &self.filter);
        let result = self.page.set_viewport(cx.viewport, &mut |a, n| {
            store::rejects_window(conn, filter, a, n)
        });
        cx.report(result);
    }

    fn draw(&self, frame: &mut Frame, area: Rect, _view: &View) {
        // The counts pane shows when there is room for it beside the table.
        let counts_width = if area.width >= 110 { 38 } else { 0 };
        let [left, right] =
            Layout::horizontal([Constraint::Length(counts_width), Constraint::Min(20)]).areas(area);
        if counts_width > 0 {
            self.draw_counts(frame, left);
        }
        self.draw_table(frame, right);
    }
}

impl RejectsView {
    fn active_style() -> Style {
        Style::new()
            .fg(ACCENT)
            .add_modifier(Modifier::BOLD | Modifier::REVERSED)
    }

    fn draw_counts(&self, frame: &mut Frame, area: Rect) {
        let total: u64 = self.counts.iter().map(|c| c.2).sum();
        let g = Grid::new(
            area.width,
            &[
                Constraint::Length(7),
                Constraint::Length(10),
                Constraint::Min(8),
            ],
        );
        let filtered = self.filter.reason.is_some() || self.filter.source.is_some();
        let rows: Vec<Row> = self
            .counts
            .iter()
            .map(|(source, reason, n)| {
                let on = self.filter.reason.as_deref().is_none_or(|f| f == reason)
                    && self.filter.source.as_deref().is_none_or(|f| f == source);
                let row = Row::new(vec![g.count(0, *n), g.text(1, source), g.text(2, reason)]);
                if on && filtered {
                    row.style(Self::active_style())
                } else {
                    row
                }
            })
            .collect();
        frame.render_widget(
            Table::new(rows, g.constraints())
                .header(g.header(&["rows", "source", "reason"], &[0]))
                .block(block(
                    &title_in(
                        &format!("{} rejected · f s c", format::count(total)),
                        area.width,
                    ),
                    false,
                )),
            area,
        );
    }

    fn filter_line(&self) -> Line<'static> {
        let mut spans = vec![Span::raw(" filter: ")];
        let mut any = false;
        for (label, value) in [
            ("source", &self.filter.source),
            ("reason", &self.filter.reason),
            ("search", &self.filter.text),
        ] {
            if let Some(v) = value {
                any = true;
                spans.push(Span::styled(
                    format!(" {label}: {} ", format::fit(&clean(v), 28)),
                    Self::active_style(),
                ));
                spans.push(Span::raw(" "));
            }
        }
        if !any {
            spans.push(Span::raw("none · f reason · s source · / search").dim());
        } else {
            spans.push(Span::raw("c or Esc clears").dim());
        }
        Line::from(spans)
    }

    fn draw_table(&self, frame: &mut Frame, area: Rect) {
        let [filter_area, table_area] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
        frame.render_widget(Paragraph::new(self.filter_line()), filter_area);
        let g = Grid::new(
            table_area.width,
            &[
                Constraint::Length(7),
                Constraint::Length(10),
                Constraint::Length(7),
                Constraint::Length(15),
                Constraint::Length(12),
                Constraint::Min(8),
            ],
        );
        let rows: Vec<Row> = self
            .page
            .rows
            .iter()
            .map(|x| {
                Row::new(vec![
                    g.right(0, &x.reject_id.to_string()),
                    g.text(1, &x.source),
                    g.count(2, x.row_num),
                    g.text(3, &x.reason).fg(WARN),
                    g.text(4, x.field.as_deref().unwrap_or_default()),
                    g.text(5, &format!("{} · {}", x.detail, x.raw)),
                ])
            })
            .collect();
        let empty = self.page.rows.is_empty();

        let title = if self.search.is_some() {
            "Rejects · searching…".to_string()
        } else if empty {
            "Rejects · none match".to_string()
        } else {
            format!(
                "Rejects · {} match · ids {}–{} · Enter opens the row",
                format::count(self.total),
                self.page.rows.first().map_or(0, |x| x.reject_id),
                self.page.rows.last().map_or(0, |x| x.reject_id)
            )
        };
        draw_table(
            frame,
            table_area,
            &g,
            g.header(
                &[
                    "id",
                    "source",
                    "row",
                    "reason",
                    "field",
                    "detail · original row",
                ],
                &[0, 2],
            ),
            rows,
            &title,
            true,
            (!empty).then_some(self.page.selected),
        );
    }
}
