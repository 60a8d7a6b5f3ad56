//! The Audit screen: every steward decision, bulk, split, undo and pipeline
//! run, newest first, with who, when, what, why and what changed; filtered
//! by kind (`f`) and by text as you type (`/`), paged by position so a long
//! trail stays instant.

use crate::read::audit::{self, AuditFilter, AuditRow, KINDS};
use crate::tui::app::InputKind;
use crate::tui::format;
use crate::tui::keymap::{Action, Scope};
use crate::tui::paged::Window;
use crate::tui::screen::{Ctx, Screen, View};
use crate::tui::text::clean;
use crate::tui::widgets::{ACCENT, BAD, GOOD, Grid, WARN, block, draw_table};
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Stylize};
use ratatui::widgets::{Paragraph, Row, Wrap};

/// Entries fetched at a time.
const CHUNK: usize = 200;

pub struct AuditView {
    pub filter: AuditFilter,
    pub list: Window<AuditRow>,
}

impl AuditView {
    pub fn new(viewport: usize) -> AuditView {
        AuditView {
            filter: AuditFilter::default(),
            list: Window::new(viewport, CHUNK),
        }
    }

    fn reset(&mut self, cx: &mut Ctx) {
        let result = (|| -> Result<()> {
            let total = audit::count(cx.conn, &self.filter)?;
            let filter = &self.filter;
            self.list.reset(total, &mut |off, n| {
                audit::list(cx.conn, filter, off, n as u64)
            })
        })();
        cx.report(result);
    }

    fn kind_label(&self) -> String {
        match self.filter.kinds.as_slice() {
            [] => "all".into(),
            kinds => kinds.join(", "),
        }
    }

    fn open(&self, cx: &mut Ctx) {
        let Some(r) = self.list.selected_row() else {
            return;
        };
        let mut body = format!(
            "when:    {} (UTC {})\nwho:     {}\nwhat:    {}\nsubject: {}\nwhy:     {}\nchange:  {}\n",
            format::time(&r.at),
            r.at,
            r.actor,
            r.kind,
            r.subject,
            if r.reason.is_empty() {
                "—"
            } else {
                &r.reason
            },
            r.change
        );
        if let Some(d) = r.decision_id {
            body.push_str(&format!(
                "decision: {d} (c360 review undo --decision {d} undoes it)\n"
            ));
        }
        if let Some(b) = r.bulk_id {
            body.push_str(&format!("bulk:    {b}\n"));
        }
        cx.detail(format!("Audit {}", r.id), body);
    }
}

fn kind_colour(kind: &str) -> Color {
    match kind {
        "approve" => GOOD,
        "reject" | "split" => BAD,
        "undo" | "bulk" => WARN,
        _ => ACCENT,
    }
}

impl Screen for AuditView {
    fn scope(&self) -> Scope {
        Scope::Audit
    }

    fn update(&mut self, action: Action, cx: &mut Ctx) {
        let moved = {
            let filter = &self.filter;
            self.list.apply(&action, &mut |off, n| {
                audit::list(cx.conn, filter, off, n as u64)
            })
        };
        match moved {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => return cx.report(Err(e)),
        }
        match action {
            Action::Open => self.open(cx),
            Action::Search => cx.input(
                InputKind::AuditSearch,
                self.filter.text.as_deref().unwrap_or(""),
            ),
            Action::CycleFilter => {
                // all → approve → reject → … → run → all
                let next = match self.filter.kinds.as_slice() {
                    [] => Some(0),
                    [k] => KINDS.iter().position(|x| x == k).map(|i| i + 1),
                    _ => None,
                };
                self.filter.kinds = match next.and_then(|i| KINDS.get(i)) {
                    Some(k) => vec![k.to_string()],
                    None => Vec::new(),
                };
                self.reset(cx);
                cx.flash(format!("kind: {}", self.kind_label()));
            }
            _ => {}
        }
    }

    fn typed(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        if kind == InputKind::AuditSearch {
            let t = text.trim();
            self.filter.text = (!t.is_empty()).then(|| t.to_string());
            self.reset(cx);
        }
    }

    fn submit(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        self.typed(kind, text, cx);
    }

    fn clear(&mut self, cx: &mut Ctx) -> bool {
        if self.filter == AuditFilter::default() {
            return false;
        }
        self.filter = AuditFilter::default();
        self.reset(cx);
        true
    }

    fn refresh(&mut self, cx: &mut Ctx) -> Result<()> {
        let total = audit::count(cx.conn, &self.filter)?;
        let filter = &self.filter;
        self.list.reload(total, &mut |off, n| {
            audit::list(cx.conn, filter, off, n as u64)
        })
    }

    fn resize(&mut self, cx: &mut Ctx) {
        let filter = &self.filter;
        let result = self.list.set_viewport(cx.viewport, &mut |off, n| {
            audit::list(cx.conn, filter, off, n as u64)
        });
        cx.report(result);
    }

    fn draw(&self, frame: &mut Frame, area: Rect, _view: &View) {
        if self.list.total == 0 {
            let msg = if self.filter == AuditFilter::default() {
                "Nothing in the trail yet.\n\nEvery decision, undo and pipeline run is listed here."
            } else {
                "Nothing matches.\n\nEsc clears the filter."
            };
            frame.render_widget(
                Paragraph::new(msg)
                    .wrap(Wrap { trim: true })
                    .block(block("Audit", true)),
                area,
            );
            return;
        }
        let g = Grid::new(
            area.width,
            &[
                Constraint::Length(16),
                Constraint::Length(9),
                Constraint::Length(8),
                Constraint::Fill(2),
                Constraint::Fill(2),
                Constraint::Fill(3),
            ],
        );
        let (rows, sel) = self.list.visible();
        let fit_rows = (area.height.saturating_sub(3) as usize).max(1);
        let skip = (sel + 1).saturating_sub(fit_rows).min(rows.len());
        let table_rows: Vec<Row> = rows[skip..]
            .iter()
            .take(fit_rows)
            .map(|r| {
                Row::new(vec![
                    g.text(0, &format::time(&r.at)),
                    g.text(1, &r.actor),
                    g.text(2, &r.kind).fg(kind_colour(&r.kind)).bold(),
                    g.text(3, &r.subject),
                    g.text(4, &r.reason),
                    g.text(5, &r.change),
                ])
            })
            .collect();

        let title = format!(
            "Audit · {} of {} · kind {} (f){} · Enter: all of it",
            format::count(self.list.pos + 1),
            format::count(self.list.total),
            self.kind_label(),
            self.filter
                .text
                .as_ref()
                .map_or(String::new(), |t| format!(" · matching {:?}", clean(t)))
        );
        draw_table(
            frame,
            area,
            &g,
            g.header(&["when", "who", "what", "subject", "why", "change"], &[]),
            table_rows,
            &title,
            true,
            Some(sel - skip),
        );
    }
}
