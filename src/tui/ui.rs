//! Drawing the frame around the screens: the tabs, the status bar, and the
//! popups (help, details, text inputs, confirmations). Each screen draws
//! its own body ([`crate::tui::screen::Screen::draw`]). Every data string
//! goes through [`clean`] so nothing from the data reaches the terminal raw.

use crate::tui::app::{App, InputKind, Mode, Tab};
use crate::tui::format::{self, fit};
use crate::tui::input::LineEdit;
use crate::tui::keymap::{self, Scope};
use crate::tui::palette::COMMANDS;
use crate::tui::screen::Screen;
use crate::tui::text::{self, clean, clean_multiline};
use crate::tui::widgets::{ACCENT, BAD, GOOD, WARN, block, centered};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Clear, Gauge, Paragraph, Tabs, Wrap};

/// Smallest terminal the workbench draws in.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 15;

/// Draw the workbench. Data strings are escaped where they are drawn
/// ([`clean`]); [`text::scrub`] then replaces any cell that still holds an
/// unsafe character, so none reaches the terminal.
pub fn draw(frame: &mut Frame, app: &App) {
    draw_frame(frame, app);
    text::scrub(frame.buffer_mut());
}

fn draw_frame(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "Terminal too small ({}×{}).\nc360 needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\nEnlarge the window, or press q to quit.",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(msg)
                .wrap(Wrap { trim: true })
                .style(Style::new().fg(WARN)),
            area,
        );
        return;
    }
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(2),
    ])
    .areas(area);
    draw_tabs(frame, app, tabs);
    let view = app.view();
    match app.tab {
        Tab::Pipeline => app.pipeline.draw(frame, body, &view),
        Tab::Rejects => app.rejects.draw(frame, body, &view),
        Tab::Rules => app.rules.draw(frame, body, &view),
        Tab::Review => app.review.draw(frame, body, &view),
        Tab::Customers => app.customers.draw(frame, body, &view),
        Tab::Analytics => app.analytics.draw(frame, body, &view),
        Tab::Audit => app.audit.draw(frame, body, &view),
    }
    draw_status(frame, app, status);
    match &app.mode {
        Mode::Normal => {}
        Mode::Help { scroll } => draw_help(frame, app.scope(), *scroll, area),
        Mode::Detail {
            title,
            body,
            scroll,
        } => draw_detail(frame, title, body, *scroll, area),
        Mode::Input { kind, edit } => draw_input(frame, *kind, edit, area),
        Mode::Confirm {
            prompt,
            body,
            scroll,
            ..
        } => draw_confirm(frame, prompt, body, *scroll, area),
    }
}

/// The tab titles that fit in `width`: " 1 Pipeline ", then "1 Pipeline",
/// then "1 Pip" (the number keys always show).
fn tab_titles(width: u16) -> Vec<String> {
    let full: Vec<String> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| format!(" {} {} ", i + 1, t.title()))
        .collect();
    let tight: Vec<String> = full.iter().map(|t| t.trim().to_string()).collect();
    let short: Vec<String> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{} {}",
                i + 1,
                t.title().chars().take(3).collect::<String>()
            )
        })
        .collect();
    let need =
        |ts: &[String]| -> u16 { ts.iter().map(|t| format::width(t) as u16 + 1).sum::<u16>() + 1 };
    [full, tight, short]
        .into_iter()
        .find(|ts| need(ts) <= width)
        .unwrap_or_else(|| (1..=Tab::ALL.len()).map(|i| i.to_string()).collect())
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let titles = tab_titles(area.width);
    let tabs_width: u16 = titles
        .iter()
        .map(|t| format::width(t) as u16 + 1)
        .sum::<u16>()
        + 1;
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    // The workspace name gives way to the tabs in narrow terminals.
    let name_width = 30.min(area.width.saturating_sub(tabs_width + 1));
    let name_width = if name_width < 12 { 0 } else { name_width };
    let [left, right] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(name_width)]).areas(area);
    frame.render_widget(
        Tabs::new(titles.into_iter().map(Line::from).collect::<Vec<_>>())
            .select(selected)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD))
            .divider("│")
            .padding("", ""),
        left,
    );
    let name = app
        .ws
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| app.ws.root.display().to_string());
    frame.render_widget(
        Paragraph::new(format!("c360 · {}", fit(&clean(&name), 22)))
            .right_aligned()
            .style(Style::new().fg(ACCENT)),
        right,
    );
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let [top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let w = area.width as usize;
    if let Some(job) = &app.job {
        let [label, bar] =
            Layout::horizontal([Constraint::Length(28), Constraint::Min(10)]).areas(top);
        frame.render_widget(
            Paragraph::new(format!(" ⏵ {}", fit(&clean(&job.kind.label()), 25))).fg(ACCENT),
            label,
        );
        // A job waiting for another writer (a CLI run in its write phase)
        // says for whom instead of sitting at its phase.
        let text = crate::store::lock::waiting_for().unwrap_or_else(|| job.progress_label());
        frame.render_widget(
            Gauge::default()
                .gauge_style(Style::new().fg(ACCENT))
                .ratio(job.bar_ratio())
                .label(fit(&clean(&text), bar.width.saturating_sub(2) as usize)),
            bar,
        );
    } else if let Some(msg) = &app.flash {
        frame.render_widget(
            Paragraph::new(fit(&format!(" {}", clean(msg)), w)).fg(WARN),
            top,
        );
    } else if let Some((label, result)) = &app.last_job {
        let (text, color) = match result {
            Ok(m) => (format!(" last job: {label}: {m}"), GOOD),
            Err(e) => (format!(" last job: {label} failed: {e}"), BAD),
        };
        frame.render_widget(Paragraph::new(fit(&clean(&text), w)).fg(color), top);
    }
    // While a job runs, its messages (and refusals) take the hints' line.
    if app.job.is_some()
        && let Some(msg) = &app.flash
    {
        frame.render_widget(
            Paragraph::new(fit(&format!(" {}", clean(msg)), w)).fg(WARN),
            bottom,
        );
        return;
    }
    frame.render_widget(Paragraph::new(hint_line(app, w)), bottom);
}

/// The key hints that fit in `width`: "? help" first, whole hints only.
fn hint_line(app: &App, width: usize) -> Line<'static> {
    let pairs: Vec<(String, String)> = match &app.mode {
        Mode::Normal => {
            let mut all: Vec<(String, String)> = vec![("?".into(), "help".into())];
            all.extend(
                keymap::hints(app.scope())
                    .into_iter()
                    .filter(|(k, _)| *k != "?")
                    .map(|(k, h)| (k.to_string(), h.to_string())),
            );
            all
        }
        Mode::Help { .. } | Mode::Detail { .. } => vec![
            ("j/k".into(), "scroll".into()),
            ("g/G".into(), "top / end".into()),
            ("Esc".into(), "close".into()),
        ],
        Mode::Input { kind, .. } => {
            let mut v = vec![
                ("Enter".into(), "apply".into()),
                ("Esc".into(), "cancel".into()),
                ("←/→".into(), "move".into()),
                ("↑".into(), "history".into()),
                ("C-u/C-w".into(), "delete".into()),
            ];
            if *kind == InputKind::Palette {
                v.insert(1, ("Tab".into(), "complete".into()));
            }
            v
        }
        Mode::Confirm { .. } => vec![
            ("y".into(), "yes".into()),
            ("n".into(), "no".into()),
            ("j/k".into(), "scroll".into()),
        ],
    };
    let mut spans = Vec::new();
    let mut used = 0;
    for (k, h) in pairs {
        let n = 1 + format::width(&k) + 1 + format::width(&h) + 1;
        if used + n > width {
            break;
        }
        used += n;
        spans.push(Span::raw(" "));
        spans.push(Span::raw(k).bold().fg(ACCENT));
        spans.push(Span::raw(format!(" {h} ")));
    }
    Line::from(spans)
}

/// The help text: the current screen's keys first, then the keys of every
/// screen, the other screens, and every palette command.
pub fn help_lines(first: Scope) -> Vec<Line<'static>> {
    help_lines_in(first, usize::MAX)
}

/// [`help_lines`] with each description cut to fit `width` cells.
fn help_lines_in(first: Scope, width: usize) -> Vec<Line<'static>> {
    let text = |s: &str, indent: usize| fit(s, width.saturating_sub(indent));
    let mut lines = vec![
        Line::from("Customer360 Workbench — keys").bold(),
        Line::from(""),
    ];
    let mut last_scope = None;
    for (scope, key, help) in keymap::help_rows(first) {
        if last_scope != Some(scope) {
            if last_scope.is_some() {
                lines.push(Line::from(""));
            }
            let title = if scope == first {
                format!("{} (this screen)", scope.title())
            } else {
                scope.title().to_string()
            };
            lines.push(Line::from(title).fg(ACCENT).bold());
            last_scope = Some(scope);
        }
        lines.push(Line::from(vec![
            Span::raw(format!("  {key:<10}")).bold(),
            Span::raw(text(help, 12)),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(
        Line::from("Commands (: then Tab completes)")
            .fg(ACCENT)
            .bold(),
    );
    for c in COMMANDS {
        let words = if c.args.is_empty() {
            c.words.to_string()
        } else {
            format!("{} {}", c.words, c.args)
        };
        lines.push(Line::from(vec![
            Span::raw(format!("  {words:<22}")).bold(),
            Span::raw(text(c.help, 24)),
        ]));
    }
    lines
}

fn draw_help(frame: &mut Frame, first: Scope, scroll: u16, area: Rect) {
    let n = help_lines(first).len() as u16;
    let popup = centered(area, 78, n + 2);
    let lines = help_lines_in(first, popup.width.saturating_sub(2) as usize);
    let max = (lines.len() as u16).saturating_sub(popup.height.saturating_sub(2));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll.min(max), 0))
            .block(block("Help · j/k scroll · Esc closes", true)),
        popup,
    );
}

fn draw_detail(frame: &mut Frame, title: &str, body: &str, scroll: u16, area: Rect) {
    let popup = centered(
        area,
        area.width.saturating_sub(8),
        area.height.saturating_sub(4),
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(Text::from(clean_multiline(body)))
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(block(&fit(&clean(title), popup.width as usize - 4), true)),
        popup,
    );
}

fn input_title(kind: InputKind) -> (&'static str, &'static str) {
    match kind {
        InputKind::Search => ("Search rejects (original row or detail)", "/"),
        InputKind::Segment => (
            "Segment filter, e.g. country = \"DE\" and orders >= 3 and last_order < 90d",
            "segment: ",
        ),
        InputKind::SegmentName => ("Save the segment as", "name: "),
        InputKind::CustomerSearch => (
            "Find a customer: name, e-mail, phone, customer360_id, record or device id",
            "/",
        ),
        InputKind::Palette => ("Command · Tab completes · ? lists them", ":"),
        InputKind::Reason { approve: true } => ("Reason for approving this merge", "reason: "),
        InputKind::Reason { approve: false } => ("Reason for rejecting this merge", "reason: "),
        InputKind::Band => (
            "Bulk decision: probability band and a (approve) or r (reject)",
            "band, e.g. 0.80-0.95 a: ",
        ),
        InputKind::RulesSearch => ("Narrow rules and examples (as you type)", "/"),
        InputKind::AuditSearch => ("Narrow the trail: who, what, why (as you type)", "/"),
        InputKind::ReviewSearch => (
            "Find pairs: record key, name, e-mail or any compared value (as you type)",
            "/",
        ),
    }
}

fn draw_input(frame: &mut Frame, kind: InputKind, edit: &LineEdit, area: Rect) {
    let (title, prefix) = input_title(kind);
    let popup = Rect::new(
        area.x + 1,
        area.height.saturating_sub(5),
        area.width.saturating_sub(2),
        3,
    );
    frame.render_widget(Clear, popup);
    let (before, after) = edit.split();
    let (before, after) = (clean(before), clean(after));
    let mut chars = after.chars();
    let at = chars.next().map_or(" ".to_string(), |c| c.to_string());
    let rest: String = chars.collect();
    // Keep the cursor in view: the line's tail when it is too long.
    let room = popup.width.saturating_sub(2) as usize;
    let head = format!("{prefix}{before}");
    let head_w = format::width(&head);
    let head = if head_w + 1 > room {
        let skip = head_w + 1 - room;
        format!("…{}", head.chars().skip(skip + 1).collect::<String>())
    } else {
        head
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw(head),
            Span::raw(at).add_modifier(Modifier::REVERSED),
            Span::raw(rest),
        ]))
        .block(block(&fit(title, room.saturating_sub(2)), true)),
        popup,
    );
}

fn draw_confirm(frame: &mut Frame, prompt: &str, body: &[String], scroll: u16, area: Rect) {
    let want_w = body
        .iter()
        .map(|l| format::width(l) as u16)
        .chain(std::iter::once(format::width(prompt) as u16))
        .max()
        .unwrap_or(30)
        + 4;
    let width = want_w.clamp(30, area.width.saturating_sub(4));
    let inner_w = width.saturating_sub(2).max(1) as usize;
    let prompt_h = format::width(prompt).div_ceil(inner_w).max(1) as u16;
    let height = (prompt_h + 3 + body.len() as u16 + if body.is_empty() { 0 } else { 1 })
        .min(area.height.saturating_sub(4));
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let list_h = popup
        .height
        .saturating_sub(2 + prompt_h + 2 + if body.is_empty() { 0 } else { 1 })
        as usize;
    let first = (scroll as usize).min(body.len().saturating_sub(list_h));
    let mut lines = vec![Line::from(clean(prompt)).bold()];
    if !body.is_empty() {
        lines.push(Line::from(""));
        for l in body.iter().skip(first).take(list_h) {
            lines.push(Line::from(fit(&clean(l), inner_w)));
        }
    }
    lines.push(Line::from(""));
    let more = if body.len() > list_h {
        format!(
            " · {}–{} of {} (j/k scroll)",
            first + 1,
            (first + list_h).min(body.len()),
            body.len()
        )
    } else {
        String::new()
    };
    lines.push(Line::from(format!("y yes · n no{more}")).fg(ACCENT));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(block("Confirm", true).border_style(Style::new().fg(WARN))),
        popup,
    );
}
