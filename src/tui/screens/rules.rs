//! The Rules screen: what each standardise rule did (seen, changed,
//! flagged), its examples before and after (all, or the flagged ones), and
//! the values no rule maps. `/` narrows rules and examples as you type.

use crate::pipeline::standardise::{self, ExampleRow, RuleRow};
use crate::tui::app::InputKind;
use crate::tui::format;
use crate::tui::keymap::{Action, Scope};
use crate::tui::screen::{Ctx, Screen, View};
use crate::tui::text::clean;
use crate::tui::widgets::{ACCENT, Grid, WARN, block, draw_table, scroll_window};
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Stylize};
use ratatui::widgets::{Paragraph, Row, Wrap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RulesPane {
    #[default]
    Rules,
    Examples,
}

#[derive(Default)]
pub struct RulesView {
    /// Every rule; `shown` indexes the ones the search keeps.
    pub rules: Vec<RuleRow>,
    pub shown: Vec<usize>,
    /// Selection within `shown`.
    pub sel: usize,
    pub pane: RulesPane,
    pub show_unmapped: bool,
    /// Examples: flagged ones only.
    pub flagged_only: bool,
    pub examples: Vec<ExampleRow>,
    pub unmapped: Vec<(String, u64)>,
    /// The examples / unmapped values the filters keep (indices).
    pub items: Vec<usize>,
    pub item_sel: usize,
    /// Text narrowing rules and examples (case-insensitive).
    pub query: Option<String>,
}

fn has(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(needle)
}

impl RulesView {
    /// The selected rule.
    pub fn rule(&self) -> Option<&RuleRow> {
        self.shown.get(self.sel).and_then(|i| self.rules.get(*i))
    }

    fn needle(&self) -> Option<String> {
        self.query.as_ref().map(|q| q.to_lowercase())
    }

    fn example_matches(&self, e: &ExampleRow, needle: &Option<String>) -> bool {
        let (source, record, field, before, after, flagged) = e;
        (!self.flagged_only || *flagged)
            && needle.as_ref().is_none_or(|n| {
                has(source, n)
                    || has(record, n)
                    || has(field, n)
                    || before.as_deref().is_some_and(|b| has(b, n))
                    || after.as_deref().is_some_and(|a| has(a, n))
            })
    }

    /// Recompute what the filters keep.
    fn narrow(&mut self) {
        let needle = self.needle();
        self.shown = (0..self.rules.len())
            .filter(|i| {
                let r = &self.rules[*i];
                needle
                    .as_ref()
                    .is_none_or(|n| has(&r.rule, n) || has(&r.target, n) || has(&r.description, n))
            })
            .collect();
        // A search that names no rule may still name values of the selected one.
        if self.shown.is_empty() {
            self.shown = (0..self.rules.len()).collect();
        }
        self.sel = self.sel.min(self.shown.len().saturating_sub(1));
        self.narrow_items();
    }

    fn narrow_items(&mut self) {
        let needle = self.needle();
        self.items = if self.show_unmapped {
            (0..self.unmapped.len())
                .filter(|i| needle.as_ref().is_none_or(|n| has(&self.unmapped[*i].0, n)))
                .collect()
        } else {
            let rule_named = self
                .rule()
                .zip(needle.as_ref())
                .is_some_and(|(r, n)| has(&r.rule, n) || has(&r.target, n));
            let n = if rule_named { None } else { needle };
            (0..self.examples.len())
                .filter(|i| self.example_matches(&self.examples[*i], &n))
                .collect()
        };
        self.item_sel = self.item_sel.min(self.items.len().saturating_sub(1));
    }

    fn load_details(&mut self, cx: &mut Ctx) -> Result<()> {
        self.item_sel = 0;
        match self.rule().map(|r| r.rule.clone()) {
            Some(rule) => {
                self.examples = standardise::examples(cx.conn, &rule)?;
                self.unmapped = standardise::unmapped(cx.conn, &rule, 1000)?;
            }
            None => {
                self.examples.clear();
                self.unmapped.clear();
            }
        }
        self.narrow_items();
        Ok(())
    }

    fn open_item(&self, cx: &mut Ctx) {
        let Some(rule) = self.rule() else {
            return;
        };
        let Some(&i) = self.items.get(self.item_sel) else {
            return;
        };
        let empty = crate::tui::widgets::NONE;
        let body = if self.show_unmapped {
            let (value, n) = &self.unmapped[i];
            format!(
                "rule:   {}\nvalue:  {value}\ncount:  {}\n\nNo rule maps this value. Add an alias to the rule file to map it.",
                rule.rule,
                format::count(*n)
            )
        } else {
            let (source, record, field, before, after, flagged) = &self.examples[i];
            format!(
                "rule:    {}\nsource:  {source}\nrecord:  {record}\nfield:   {field}\nflagged: {}\n\nbefore:\n{}\n\nafter:\n{}",
                rule.rule,
                if *flagged {
                    "yes (kept as written)"
                } else {
                    "no"
                },
                before.as_deref().unwrap_or(empty),
                after.as_deref().unwrap_or(empty)
            )
        };
        cx.detail(format!("Rule {}", rule.rule), body);
    }

    fn move_in(sel: &mut usize, len: usize, action: &Action, page: usize) -> bool {
        let last = len.saturating_sub(1);
        *sel = match action {
            Action::Down => (*sel + 1).min(last),
            Action::Up => sel.saturating_sub(1),
            Action::PageDown => (*sel + page).min(last),
            Action::PageUp => sel.saturating_sub(page),
            Action::Top => 0,
            Action::Bottom => last,
            _ => return false,
        };
        true
    }
}

impl Screen for RulesView {
    fn scope(&self) -> Scope {
        Scope::Rules
    }

    fn update(&mut self, action: Action, cx: &mut Ctx) {
        let page = cx.viewport.max(1);
        match (self.pane, action) {
            (_, Action::Left) => self.pane = RulesPane::Rules,
            (_, Action::Right) => self.pane = RulesPane::Examples,
            (_, Action::ToggleUnmapped) => {
                self.show_unmapped = !self.show_unmapped;
                self.item_sel = 0;
                self.narrow_items();
            }
            (_, Action::CycleFilter) => {
                self.flagged_only = !self.flagged_only;
                self.item_sel = 0;
                self.narrow_items();
                cx.flash(if self.flagged_only {
                    format!(
                        "{} flagged examples",
                        format::count(self.items.len() as u64)
                    )
                } else {
                    "all examples".to_string()
                });
            }
            (_, Action::Search) => {
                cx.input(InputKind::RulesSearch, self.query.as_deref().unwrap_or(""))
            }
            (RulesPane::Rules, Action::Open) => self.pane = RulesPane::Examples,
            (RulesPane::Rules, a) => {
                let before = self.sel;
                Self::move_in(&mut self.sel, self.shown.len(), &a, page);
                if self.sel != before {
                    let result = self.load_details(cx);
                    cx.report(result);
                }
            }
            (RulesPane::Examples, Action::Open) => self.open_item(cx),
            (RulesPane::Examples, a) => {
                Self::move_in(&mut self.item_sel, self.items.len(), &a, page);
            }
        }
    }

    fn typed(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        if kind != InputKind::RulesSearch {
            return;
        }
        let t = text.trim();
        let before = self.rule().map(|r| r.rule.clone());
        self.query = (!t.is_empty()).then(|| t.to_string());
        self.narrow();
        if self.rule().map(|r| r.rule.clone()) != before {
            let result = self.load_details(cx);
            cx.report(result);
        }
    }

    fn submit(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        self.typed(kind, text, cx);
    }

    fn clear(&mut self, cx: &mut Ctx) -> bool {
        if self.query.is_none() && !self.flagged_only {
            return false;
        }
        self.query = None;
        self.flagged_only = false;
        self.typed(InputKind::RulesSearch, "", cx);
        true
    }

    fn refresh(&mut self, cx: &mut Ctx) -> Result<()> {
        let selected = self.rule().map(|r| r.rule.clone());
        self.rules = standardise::rule_rows(cx.conn)?;
        self.narrow();
        if let Some(name) = selected
            && let Some(i) = self.shown.iter().position(|i| self.rules[*i].rule == name)
        {
            self.sel = i;
        }
        let item = self.item_sel;
        self.load_details(cx)?;
        self.item_sel = item.min(self.items.len().saturating_sub(1));
        Ok(())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, _view: &View) {
        if self.rules.is_empty() {
            frame.render_widget(
                Paragraph::new(
                    "Standardise has not run yet.\n\nPress 1 for the Pipeline screen and R to run the steps that are out of date.",
                )
                .wrap(Wrap { trim: true })
                .block(block("Rules", true)),
                area,
            );
            return;
        }
        let top_height = (self.shown.len() as u16 + 3).min(area.height / 2);
        let [top, bottom] =
            Layout::vertical([Constraint::Length(top_height), Constraint::Min(4)]).areas(area);
        self.draw_rules(frame, top);
        if self.show_unmapped {
            self.draw_unmapped(frame, bottom);
        } else {
            self.draw_examples(frame, bottom);
        }
    }
}

impl RulesView {
    fn draw_rules(&self, frame: &mut Frame, area: Rect) {
        let g = Grid::new(
            area.width,
            &[
                Constraint::Length(15),
                Constraint::Length(22),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(9),
                Constraint::Min(20),
            ],
        );
        let (offset, fit) = scroll_window(area.height, self.sel, true);
        let rows: Vec<Row> = self
            .shown
            .iter()
            .skip(offset)
            .take(fit)
            .map(|i| {
                let r = &self.rules[*i];
                Row::new(vec![
                    g.text(0, &r.rule),
                    g.text(1, &r.target),
                    g.count(2, r.seen),
                    g.count(3, r.changed)
                        .fg(if r.changed > 0 { ACCENT } else { Color::Reset }),
                    g.count(4, r.flagged)
                        .fg(if r.flagged > 0 { WARN } else { Color::Reset }),
                    g.text(5, &r.description),
                ])
            })
            .collect();
        let focused = self.pane == RulesPane::Rules;

        let title = match &self.query {
            Some(q) => format!(
                "Rules · {} of {} match {:?} · Esc: all",
                self.shown.len(),
                self.rules.len(),
                clean(q)
            ),
            None => format!("Rules · {} · what standardise changed", self.rules.len()),
        };
        draw_table(
            frame,
            area,
            &g,
            g.header(
                &[
                    "rule",
                    "fields",
                    "seen",
                    "changed",
                    "flagged",
                    "what it does",
                ],
                &[2, 3, 4],
            ),
            rows,
            &title,
            focused,
            Some(self.sel - offset),
        );
    }

    fn draw_unmapped(&self, frame: &mut Frame, area: Rect) {
        let rule = self.rule().map_or("", |r| r.rule.as_str());
        let focused = self.pane == RulesPane::Examples;
        let (offset, fit) = scroll_window(area.height, self.item_sel, true);
        let g = Grid::new(area.width, &[Constraint::Length(10), Constraint::Min(10)]);
        let rows: Vec<Row> = self
            .items
            .iter()
            .skip(offset)
            .take(fit)
            .map(|i| {
                let (value, n) = &self.unmapped[*i];
                Row::new(vec![g.count(0, *n), g.text(1, value)])
            })
            .collect();
        let title = format!(
            "{} unmapped values of {} · u shows examples",
            format::count(self.items.len() as u64),
            clean(rule)
        );
        let header = g.header(&["count", "value"], &[0]);
        let sel = focused.then_some(self.item_sel - offset);
        draw_table(frame, area, &g, header, rows, &title, focused, sel);
    }

    fn draw_examples(&self, frame: &mut Frame, area: Rect) {
        let rule = self.rule().map_or("", |r| r.rule.as_str());
        let focused = self.pane == RulesPane::Examples;
        let (offset, fit) = scroll_window(area.height, self.item_sel, true);
        let g = Grid::new(
            area.width,
            &[
                Constraint::Length(12),
                Constraint::Length(12),
                Constraint::Length(14),
                Constraint::Fill(1),
                Constraint::Fill(1),
            ],
        );
        let rows: Vec<Row> = self
            .items
            .iter()
            .skip(offset)
            .take(fit)
            .map(|i| {
                let (source, record, field, before, after, flagged) = &self.examples[*i];
                let row = Row::new(vec![
                    g.text(0, source),
                    g.text(1, record),
                    g.text(2, field),
                    g.text(3, before.as_deref().unwrap_or_default()),
                    g.text(4, after.as_deref().unwrap_or_default()),
                ]);
                if *flagged { row.fg(WARN) } else { row }
            })
            .collect();
        let flagged = self.examples.iter().filter(|e| e.5).count() as u64;
        let title = format!(
            "{} {}examples of {} ({} flagged, in orange) · f {} · u unmapped",
            format::count(self.items.len() as u64),
            if self.flagged_only { "flagged " } else { "" },
            clean(rule),
            format::count(flagged),
            if self.flagged_only {
                "all"
            } else {
                "flagged only"
            },
        );
        let header = g.header(&["source", "record", "field", "before", "after"], &[]);
        let sel = focused.then_some(self.item_sel - offset);
        draw_table(frame, area, &g, header, rows, &title, focused, sel);
    }
}
