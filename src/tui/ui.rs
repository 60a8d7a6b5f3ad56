//! Drawing. Reads [`App`] state, never changes it. Every data string goes
//! through [`clean`] so nothing from the data reaches the terminal raw.

use crate::tui::app::{App, InputKind, Mode, PipelinePane, RulesPane, Tab};
use crate::tui::keymap::{self, Scope};
use crate::tui::text::{clean, clean_multiline, cut};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, BorderType, Borders, Cell, Clear, Gauge, Paragraph, Row, Table, TableState, Tabs, Wrap,
};

/// Smallest terminal the workbench draws in.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 15;

// Colours chosen to read on dark and light backgrounds: no white/black text,
// bold and reverse video for emphasis.
const ACCENT: Color = Color::Cyan;
const WARN: Color = Color::Yellow;
const BAD: Color = Color::Red;
const GOOD: Color = Color::Green;

pub fn draw(frame: &mut Frame, app: &App) {
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
    match app.tab {
        Tab::Pipeline => draw_pipeline(frame, app, body),
        Tab::Rejects => draw_rejects(frame, app, body),
        Tab::Rules => draw_rules(frame, app, body),
    }
    draw_status(frame, app, status);
    match &app.mode {
        Mode::Normal => {}
        Mode::Help { scroll } => draw_help(frame, *scroll, area),
        Mode::Detail {
            title,
            body,
            scroll,
        } => draw_detail(frame, title, body, *scroll, area),
        Mode::Input { kind, text } => draw_input(frame, *kind, text, area),
        Mode::Confirm { prompt, .. } => draw_confirm(frame, prompt, area),
    }
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let titles: Vec<Line> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| Line::from(format!(" {} {} ", i + 1, t.title())))
        .collect();
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    let [left, right] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(30)]).areas(area);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD))
            .divider("│"),
        left,
    );
    let name = app
        .ws
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| app.ws.root.display().to_string());
    frame.render_widget(
        Paragraph::new(format!("c360 · {}", cut(&clean(&name), 22)))
            .right_aligned()
            .style(Style::new().fg(ACCENT)),
        right,
    );
}

fn block(title: &str, focused: bool) -> Block<'_> {
    let b = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(format!(" {title} "));
    if focused {
        b.border_style(Style::new().fg(ACCENT))
            .title_style(Style::new().add_modifier(Modifier::BOLD))
    } else {
        b
    }
}

fn num(n: Option<u64>) -> String {
    n.map_or("-".into(), |n| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    })
}

fn when(ts: Option<&str>) -> String {
    ts.map_or("-".into(), |t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| {
                d.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_else(|_| clean(t))
    })
}

fn draw_pipeline(frame: &mut Frame, app: &App, area: Rect) {
    let p = &app.pipeline;
    let job_height = if app.job.is_some() { 3 } else { 0 };
    let [src_area, steps_area, job_area] = Layout::vertical([
        Constraint::Length(p.sources.len() as u16 + 3),
        Constraint::Min(6),
        Constraint::Length(job_height),
    ])
    .areas(area);

    let header = Row::new([
        "source",
        "system",
        "format",
        "location",
        "read",
        "staged",
        "rejected",
        "last load",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = p
        .sources
        .iter()
        .map(|s| {
            let b = s.last.as_ref();
            Row::new(vec![
                Cell::from(clean(&s.source.name)),
                Cell::from(s.source.system.as_str()),
                Cell::from(s.source.format.as_str()),
                Cell::from(clean(&s.source.location)),
                Cell::from(num(b.map(|b| b.rows_read))),
                Cell::from(num(b.map(|b| b.rows_staged))).fg(GOOD),
                Cell::from(num(b.map(|b| b.rows_rejected))).fg(
                    if b.is_some_and(|b| b.rows_rejected > 0) {
                        WARN
                    } else {
                        Color::Reset
                    },
                ),
                Cell::from(if b.is_some() {
                    when(b.and_then(|b| b.finished_at.as_deref()))
                } else {
                    "not loaded".into()
                }),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(14),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Min(12),
        Constraint::Length(11),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(16),
    ];
    let focused = p.pane == PipelinePane::Sources;
    let mut state = TableState::new().with_selected(focused.then_some(p.source_sel));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block("Sources · L reload", focused))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        src_area,
        &mut state,
    );

    let header = Row::new([
        "#", "step", "status", "rows in", "rows out", "seconds", "last run",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = p
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let status_style = match s.status.as_str() {
                "done" => Style::new().fg(GOOD),
                "running" => Style::new().fg(ACCENT).add_modifier(Modifier::BOLD),
                "failed" | "cancelled" => Style::new().fg(BAD),
                "not available" => Style::new().add_modifier(Modifier::DIM),
                _ => Style::new(),
            };
            let row = Row::new(vec![
                Cell::from((i + 1).to_string()),
                Cell::from(s.step.title),
                Cell::from(s.status.clone()).style(status_style),
                Cell::from(num(s.rows_in)),
                Cell::from(num(s.rows_out)),
                Cell::from(s.seconds.map_or("-".into(), |x| format!("{x:.2}"))),
                Cell::from(when(s.last_run.as_deref())),
            ]);
            if s.step.available {
                row
            } else {
                row.style(Style::new().add_modifier(Modifier::DIM))
            }
        })
        .collect();
    let widths = [
        Constraint::Length(2),
        Constraint::Length(18),
        Constraint::Length(14),
        Constraint::Length(11),
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Min(16),
    ];
    let focused = p.pane == PipelinePane::Steps;
    let mut state = TableState::new().with_selected(focused.then_some(p.step_sel));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block("Steps · r run · R run all", focused))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        steps_area,
        &mut state,
    );

    if let Some(job) = &app.job {
        let label = format!(
            "{} · {} · {:.0}% · {}s{}",
            job.kind.label(),
            clean(&job.phase),
            job.ratio() * 100.0,
            job.started.elapsed().as_secs(),
            if job.cancelling() {
                " · cancelling"
            } else {
                " · x cancels"
            }
        );
        frame.render_widget(
            Gauge::default()
                .block(block("Progress", false))
                .gauge_style(Style::new().fg(ACCENT))
                .ratio(job.ratio())
                .label(label),
            job_area,
        );
    }
}

fn draw_rejects(frame: &mut Frame, app: &App, area: Rect) {
    let r = &app.rejects;
    // The counts pane shows when there is room for it beside the table.
    let counts_width = if area.width >= 110 { 36 } else { 0 };
    let [left, right] =
        Layout::horizontal([Constraint::Length(counts_width), Constraint::Min(20)]).areas(area);

    // Counts per source and reason; the active filter is highlighted.
    let mut lines = vec![
        Line::from(format!(
            "{} rejected rows",
            num(Some(r.counts.iter().map(|c| c.2).sum()))
        ))
        .bold(),
    ];
    for (source, reason, n) in &r.counts {
        let active = r.filter.reason.as_deref().is_none_or(|f| f == reason)
            && r.filter.source.as_deref().is_none_or(|f| f == source);
        let style = if active && (r.filter.reason.is_some() || r.filter.source.is_some()) {
            Style::new().fg(ACCENT).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        lines.push(Line::styled(
            format!(
                "{:>7} {:<10} {}",
                num(Some(*n)),
                cut(&clean(source), 10),
                cut(&clean(reason), 15)
            ),
            style,
        ));
    }
    frame.render_widget(
        Paragraph::new(lines).block(block("By reason · e s c", false)),
        left,
    );

    let [filter_area, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(right);
    let mut spans = vec![Span::raw(format!(" {} match", num(Some(r.total))))];
    for (label, value) in [
        ("source", &r.filter.source),
        ("reason", &r.filter.reason),
        ("search", &r.filter.text),
    ] {
        if let Some(v) = value {
            spans.push(Span::raw("  "));
            spans.push(Span::styled(
                format!("{label}: {}", cut(&clean(v), 24)),
                Style::new().fg(ACCENT).add_modifier(Modifier::BOLD),
            ));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), filter_area);

    let header = Row::new([
        "id",
        "source",
        "row",
        "reason",
        "field",
        "detail / original row",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    // id, source, row, reason, field: fixed; the detail takes the rest.
    const FIXED: [u16; 5] = [7, 10, 7, 15, 12];
    let used: u16 = FIXED.iter().sum::<u16>() + FIXED.len() as u16 + 2;
    let detail_width = table_area.width.saturating_sub(used).max(8) as usize;
    let rows: Vec<Row> = r
        .page
        .rows
        .iter()
        .map(|x| {
            Row::new(vec![
                Cell::from(x.reject_id.to_string()),
                Cell::from(cut(&clean(&x.source), 10)),
                Cell::from(x.row_num.to_string()),
                Cell::from(cut(&clean(&x.reason), 15)).fg(WARN),
                Cell::from(cut(&clean(x.field.as_deref().unwrap_or("-")), 12)),
                Cell::from(cut(
                    &clean(&format!("{} · {}", x.detail, x.raw)),
                    detail_width,
                )),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(FIXED[0]),
        Constraint::Length(FIXED[1]),
        Constraint::Length(FIXED[2]),
        Constraint::Length(FIXED[3]),
        Constraint::Length(FIXED[4]),
        Constraint::Min(8),
    ];
    let empty = r.page.rows.is_empty();
    let mut state = TableState::new().with_selected((!empty).then_some(r.page.selected));
    let title = if empty {
        "Rejects · none match".to_string()
    } else {
        format!(
            "Rejects · ids {}–{} · Enter opens the row",
            r.page.rows.first().map_or(0, |x| x.reject_id),
            r.page.rows.last().map_or(0, |x| x.reject_id)
        )
    };
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(&title, true))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        table_area,
        &mut state,
    );
}

fn draw_rules(frame: &mut Frame, app: &App, area: Rect) {
    let v = &app.rules;
    if v.rules.is_empty() {
        frame.render_widget(
            Paragraph::new(
                "Standardise has not run yet.\n\nPress 1 for the Pipeline screen, select Standardise and press r (or R to run all).",
            )
            .wrap(Wrap { trim: true })
            .block(block("Rules", true)),
            area,
        );
        return;
    }
    let top_height = (v.rules.len() as u16 + 3).min(area.height / 2);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(top_height), Constraint::Min(4)]).areas(area);
    let header = Row::new([
        "rule",
        "fields",
        "seen",
        "changed",
        "flagged",
        "what it does",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = v
        .rules
        .iter()
        .map(|r| {
            Row::new(vec![
                Cell::from(clean(&r.rule)),
                Cell::from(cut(&clean(&r.target), 22)),
                Cell::from(num(Some(r.seen))),
                Cell::from(num(Some(r.changed))).fg(if r.changed > 0 {
                    ACCENT
                } else {
                    Color::Reset
                }),
                Cell::from(num(Some(r.flagged))).fg(if r.flagged > 0 {
                    WARN
                } else {
                    Color::Reset
                }),
                Cell::from(clean(&r.description)),
            ])
        })
        .collect();
    let focused = v.pane == RulesPane::Rules;
    let mut state = TableState::new().with_selected(Some(v.sel));
    frame.render_stateful_widget(
        Table::new(
            rows,
            [
                Constraint::Length(15),
                Constraint::Length(22),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(9),
                Constraint::Min(20),
            ],
        )
        .header(header)
        .block(block("Rules · what standardise changed", focused))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        top,
        &mut state,
    );

    let rule = v.rules.get(v.sel).map_or("", |r| r.rule.as_str());
    let focused = v.pane == RulesPane::Examples;
    let visible = bottom.height.saturating_sub(3) as usize;
    let offset = v.item_sel.saturating_sub(visible.saturating_sub(1));
    let mut state = TableState::new().with_selected(focused.then_some(v.item_sel - offset));
    if v.show_unmapped {
        let rows: Vec<Row> = v
            .unmapped
            .iter()
            .skip(offset)
            .take(visible)
            .map(|(value, n)| Row::new(vec![Cell::from(num(Some(*n))), Cell::from(clean(value))]))
            .collect();
        let title = format!(
            "{} unmapped values of {} · u shows examples",
            v.unmapped.len(),
            clean(rule)
        );
        frame.render_stateful_widget(
            Table::new(rows, [Constraint::Length(10), Constraint::Min(10)])
                .header(
                    Row::new(["count", "value"]).style(Style::new().add_modifier(Modifier::BOLD)),
                )
                .block(block(&title, focused))
                .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
            bottom,
            &mut state,
        );
    } else {
        let half = (bottom.width.saturating_sub(2 + 12 + 12 + 14 + 4) / 2).max(8) as usize;
        let rows: Vec<Row> = v
            .examples
            .iter()
            .skip(offset)
            .take(visible)
            .map(|(source, record, field, before, after, flagged)| {
                let row = Row::new(vec![
                    Cell::from(cut(&clean(source), 12)),
                    Cell::from(cut(&clean(record), 12)),
                    Cell::from(cut(&clean(field), 14)),
                    Cell::from(cut(&clean(before.as_deref().unwrap_or("∅")), half)),
                    Cell::from(cut(&clean(after.as_deref().unwrap_or("∅")), half)),
                ]);
                if *flagged { row.fg(WARN) } else { row }
            })
            .collect();
        let title = format!(
            "{} examples of {} (flagged in yellow) · u shows unmapped values",
            v.examples.len(),
            clean(rule)
        );
        frame.render_stateful_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(12),
                    Constraint::Length(12),
                    Constraint::Length(14),
                    Constraint::Fill(1),
                    Constraint::Fill(1),
                ],
            )
            .header(
                Row::new(["source", "record", "field", "before", "after"])
                    .style(Style::new().add_modifier(Modifier::BOLD)),
            )
            .block(block(&title, focused))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
            bottom,
            &mut state,
        );
    }
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let [top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    if let Some(job) = &app.job {
        let [label, bar] =
            Layout::horizontal([Constraint::Length(28), Constraint::Min(10)]).areas(top);
        frame.render_widget(
            Paragraph::new(format!(" ⏵ {}", cut(&job.kind.label(), 25))).fg(ACCENT),
            label,
        );
        frame.render_widget(
            Gauge::default()
                .gauge_style(Style::new().fg(ACCENT))
                .ratio(job.ratio())
                .label(format!(
                    "{} {:.0}%",
                    cut(&clean(&job.phase), 20),
                    job.ratio() * 100.0
                )),
            bar,
        );
    } else if let Some(msg) = &app.flash {
        frame.render_widget(Paragraph::new(format!(" {}", clean(msg))).fg(WARN), top);
    } else if let Some((label, result)) = &app.last_job {
        let (text, color) = match result {
            Ok(m) => (format!(" last job: {label}: {m}"), GOOD),
            Err(e) => (format!(" last job: {label} failed: {e}"), BAD),
        };
        frame.render_widget(Paragraph::new(clean(&text)).fg(color), top);
    }
    let scope = match app.mode {
        Mode::Normal => app.scope(),
        _ => Scope::Global,
    };
    let hints: Vec<Span> = match &app.mode {
        Mode::Normal => keymap::hints(scope)
            .into_iter()
            .flat_map(|(k, h)| {
                [
                    Span::raw(" "),
                    Span::raw(k).bold().fg(ACCENT),
                    Span::raw(format!(" {h} ")),
                ]
            })
            .collect(),
        Mode::Help { .. } | Mode::Detail { .. } => vec![Span::raw(" j/k scroll · Esc close")],
        Mode::Input { .. } => vec![Span::raw(" Enter apply · Esc cancel")],
        Mode::Confirm { .. } => vec![Span::raw(" y yes · n no")],
    };
    frame.render_widget(Paragraph::new(Line::from(hints)), bottom);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width.saturating_sub(2)).max(10);
    let h = height.min(area.height.saturating_sub(2)).max(3);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_help(frame: &mut Frame, scroll: u16, area: Rect) {
    let mut lines = vec![
        Line::from("Customer360 Workbench — keys").bold(),
        Line::from(""),
    ];
    let mut last_scope = None;
    for (scope, key, help) in keymap::help_rows() {
        if last_scope != Some(scope) {
            if last_scope.is_some() {
                lines.push(Line::from(""));
            }
            lines.push(Line::from(scope.title()).fg(ACCENT).bold());
            last_scope = Some(scope);
        }
        lines.push(Line::from(vec![
            Span::raw(format!("  {key:<8}")).bold(),
            Span::raw(help),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from("Commands (:)").fg(ACCENT).bold());
    for c in [
        "load · run all · run <step> · reload <source>",
        "rejects [reason] · rules · pipeline · cancel · help · quit",
    ] {
        lines.push(Line::from(format!("  {c}")));
    }
    let popup = centered(area, 64, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .block(block("Help · Esc closes", true)),
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
            .block(block(&clean(title), true)),
        popup,
    );
}

fn draw_input(frame: &mut Frame, kind: InputKind, text: &str, area: Rect) {
    let title = match kind {
        InputKind::Search => "Search rejects (original row or detail)",
        InputKind::Palette => "Command (load, run all, run <step>, reload <source>, rejects, quit)",
    };
    let prefix = match kind {
        InputKind::Search => "/",
        InputKind::Palette => ":",
    };
    let popup = Rect::new(area.x, area.height.saturating_sub(5), area.width, 3);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(format!("{prefix}{}█", clean(text))).block(block(title, true)),
        popup,
    );
}

fn draw_confirm(frame: &mut Frame, prompt: &str, area: Rect) {
    let popup = centered(area, (prompt.chars().count() as u16 + 6).max(30), 5);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(clean(prompt)),
            Line::from(""),
            Line::from("y yes · n no").fg(ACCENT),
        ])
        .wrap(Wrap { trim: true })
        .block(block("Confirm", true).border_style(Style::new().fg(WARN))),
        popup,
    );
}
