//! Drawing. Reads [`App`] state, never changes it. Every data string goes
//! through [`clean`] so nothing from the data reaches the terminal raw.

use crate::pipeline::identity::steward::{CandidateDetail, QueueOrder};
use crate::tui::app::{self as state, App, InputKind, Mode, PipelinePane, RulesPane, Tab};
use crate::tui::keymap::{self, Scope};
use crate::tui::text::{self, clean, clean_multiline, cut};
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
    match app.tab {
        Tab::Pipeline => draw_pipeline(frame, app, body),
        Tab::Rejects => draw_rejects(frame, app, body),
        Tab::Rules => draw_rules(frame, app, body),
        Tab::Review => draw_review(frame, app, body),
        Tab::Customers => draw_customers(frame, app, body),
        Tab::Analytics => draw_analytics(frame, app, body),
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
    // The workspace name gives way to the tabs in narrow terminals.
    let tabs_width: u16 = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| format!(" {} {} ", i + 1, t.title()).chars().count() as u16 + 3)
        .sum();
    let name_width = 30.min(area.width.saturating_sub(tabs_width + 1));
    let name_width = if name_width < 12 { 0 } else { name_width };
    let [left, right] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(name_width)]).areas(area);
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
    n.map_or("-".into(), super::jobs::thousands)
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
                Cell::from(clean(s.source.system.as_str())),
                Cell::from(clean(s.source.format.as_str())),
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
                Cell::from(clean(&s.status)).style(status_style),
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
            "{} · {} · {}s{}",
            clean(&job.kind.label()),
            clean(&job.progress_label()),
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
                .ratio(job.bar_ratio())
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

fn order_label(order: QueueOrder) -> &'static str {
    match order {
        QueueOrder::Uncertainty => "by uncertainty",
        QueueOrder::Score => "by score",
    }
}

/// Lines `text` takes when wrapped at `width` (roughly: by characters).
fn wrapped_height(text: &str, width: u16) -> u16 {
    let n = text.chars().count().max(1);
    n.div_ceil(width.max(1) as usize) as u16
}

fn draw_review(frame: &mut Frame, app: &App, area: Rect) {
    let v = &app.review;
    let c = &v.counts;
    let [head, main] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let counters = Line::from(vec![
        Span::raw(format!(
            " {} reviewed · {} to review",
            num(Some(c.reviewed)),
            num(Some(c.remaining))
        ))
        .bold(),
        Span::raw(format!(
            " · {} auto-merged · {} {} in force",
            num(Some(c.auto_merged)),
            num(Some(c.decisions)),
            if c.decisions == 1 {
                "decision"
            } else {
                "decisions"
            }
        )),
    ]);
    let mut list = format!("f {} · o {} ", v.filter.label(), order_label(v.order));
    if let Some((req, _)) = &v.counting {
        list = format!("counting {:.2}–{:.2}… · {list}", req.lo, req.hi);
    }
    let [left, right] = Layout::horizontal([
        Constraint::Min(10),
        Constraint::Length(list.chars().count() as u16 + 1),
    ])
    .areas(head);
    frame.render_widget(Paragraph::new(counters), left);
    frame.render_widget(
        Paragraph::new(list)
            .right_aligned()
            .style(Style::new().fg(ACCENT).add_modifier(Modifier::BOLD)),
        right,
    );

    // Side by side when there is room, else the queue above the candidate.
    let (list_area, detail_area) = if main.width >= 80 {
        let w = (main.width * 2 / 5).clamp(32, 56);
        let [l, r] = Layout::horizontal([Constraint::Length(w), Constraint::Min(30)]).areas(main);
        (l, r)
    } else {
        let h = (main.height / 3).max(5);
        let [t, b] = Layout::vertical([Constraint::Length(h), Constraint::Min(3)]).areas(main);
        (t, b)
    };
    draw_review_queue(frame, app, list_area);
    draw_candidate(frame, app, detail_area);
}

fn draw_review_queue(frame: &mut Frame, app: &App, area: Rect) {
    let v = &app.review;
    let list = &v.list;
    if list.total == 0 {
        let c = &v.counts;
        let msg = if c.reviewed + c.remaining + c.auto_merged == 0 {
            "No match candidates yet.\n\nThe Resolve step finds them: press 1, select Resolve and press r."
        } else {
            "Nothing in this list.\n\nf shows another list."
        };
        frame.render_widget(
            Paragraph::new(msg)
                .wrap(Wrap { trim: true })
                .block(block(&format!("Queue: {}", v.filter.label()), true)),
            area,
        );
        return;
    }
    // Only the visible rows are drawn. When fewer fit than the window holds
    // (the stacked layout), show the ones around the selection.
    let (rows, sel) = list.visible();
    let fit = (area.height.saturating_sub(3) as usize).max(1);
    let skip = (sel + 1).saturating_sub(fit).min(rows.len());
    let inner = area.width.saturating_sub(2);
    // probability, decision, flag: fixed; the two names share the rest.
    let name_w = (inner.saturating_sub(5 + 1 + 1 + 4) / 2).max(4) as usize;
    let table_rows: Vec<Row> = rows[skip..]
        .iter()
        .take(fit)
        .map(|r| {
            let (mark, color) = match r.decision.as_deref() {
                Some("approve") => ("✓", GOOD),
                Some("reject") => ("✗", BAD),
                Some(_) => ("?", WARN),
                None => (" ", Color::Reset),
            };
            let bridge = r.flags.contains("weak_bridge");
            Row::new(vec![
                Cell::from(format!("{:.3}", r.probability)),
                Cell::from(mark).fg(color).bold(),
                Cell::from(if bridge { "⚑" } else { " " }).fg(WARN),
                Cell::from(cut(&clean(&r.left_name), name_w)),
                Cell::from(cut(&clean(&r.right_name), name_w)),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(5),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ];
    let mut state = TableState::new().with_selected(Some(sel - skip));
    let title = format!(
        "Queue: {} · {} of {}",
        v.filter.label(),
        num(Some(list.pos + 1)),
        num(Some(list.total))
    );
    frame.render_stateful_widget(
        Table::new(table_rows, widths)
            .header(
                Row::new(["prob", "", "", "left", "right"])
                    .style(Style::new().add_modifier(Modifier::BOLD)),
            )
            .block(block(&title, true))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        area,
        &mut state,
    );
}

/// How a field's comparison level reads: agree, differ, missing, close.
fn level_style(level: &str) -> Style {
    match level {
        "exact" => Style::new().fg(GOOD),
        "different" => Style::new().fg(BAD),
        "no value" => Style::new().add_modifier(Modifier::DIM),
        _ => Style::new().fg(WARN),
    }
}

fn draw_candidate(frame: &mut Frame, app: &App, area: Rect) {
    let v = &app.review;
    let d = match &v.detail {
        Some((_, Ok(d))) => d,
        Some((id, Err(e))) => {
            frame.render_widget(
                Paragraph::new(format!("Cannot read candidate {id}: {}", clean(e)))
                    .wrap(Wrap { trim: true })
                    .fg(BAD)
                    .block(block("Candidate", false)),
                area,
            );
            return;
        }
        None => {
            frame.render_widget(
                Block::new()
                    .borders(Borders::ALL)
                    .border_type(BorderType::Rounded),
                area,
            );
            return;
        }
    };
    let r = &d.row;
    let mut title = format!(
        "Candidate {} · {}",
        r.candidate_id,
        if r.band == "auto_merge" {
            "auto-merged".to_string()
        } else {
            format!("{} band", clean(&r.band))
        }
    );
    if r.flags.contains("weak_bridge") {
        title.push_str(" · ⚑ weak bridge");
    }
    match r.decision.as_deref() {
        Some("approve") => title.push_str(" · approved"),
        Some("reject") => title.push_str(" · rejected"),
        _ => {}
    }
    title.push_str(" · Enter: all values");
    let outer = block(&title, false);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let w = inner.width;

    let merge = clean(&state::merge_preview(d));
    let blocking = format!("blocking: {}", clean(&d.blocking));
    let members: Vec<_> = d.comparisons.iter().flat_map(|c| &c.members).collect();
    let rec_full = members.len() as u16 + 1;
    let wf_full = d.comparisons.len() as u16 + 3;
    let block_full = wrapped_height(&blocking, w).min(2);
    let merge_h = if inner.height < 8 {
        1
    } else {
        wrapped_height(&format!("merge: {merge}"), w).min(3)
    };
    let avail = inner.height.saturating_sub(merge_h);
    // Everything when it fits; else the records come first (Enter shows
    // them all), then the waterfall without its title, then the blocking.
    let (rec_h, wf_h, block_h, titled) = if avail >= rec_full + wf_full + block_full {
        (rec_full, wf_full, block_full, true)
    } else {
        let wf_min = wf_full - 1;
        let rec_h = rec_full.min(avail.saturating_sub(wf_min + block_full).max(avail * 2 / 3));
        let wf_h = wf_min.min(avail - rec_h);
        (rec_h, wf_h, block_full.min(avail - rec_h - wf_h), false)
    };
    let spare = avail - rec_h - wf_h - block_h;
    // Blank lines between the parts when there is room for them.
    let (gap1, gap2, gap3) = match spare {
        0 => (0, 0, 0),
        1 => (0, 1, 0),
        2 => (1, 1, 0),
        _ => (1, 1, 1),
    };
    let [merge_area, _, rec_area, _, wf_area, _, block_area] = Layout::vertical([
        Constraint::Length(merge_h),
        Constraint::Length(gap1),
        Constraint::Length(rec_h),
        Constraint::Length(gap2),
        Constraint::Length(wf_h),
        Constraint::Length(gap3),
        Constraint::Length(block_h),
    ])
    .areas(inner);

    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw("merge: ").bold(),
            Span::raw(merge),
        ]))
        .wrap(Wrap { trim: true }),
        merge_area,
    );

    // The two records side by side, field by field.
    let level_w = (w / 5).clamp(8, 20);
    let value_w = (w.saturating_sub(12 + level_w + 3) / 2).max(4) as usize;
    let rows: Vec<Row> = members
        .iter()
        .map(|(field, level, left, right)| {
            let value = |x: &Option<String>| cut(&clean(x.as_deref().unwrap_or("∅")), value_w);
            Row::new(vec![
                Cell::from(cut(&clean(field), 12)),
                Cell::from(value(left)),
                Cell::from(value(right)),
                Cell::from(cut(&clean(level), level_w as usize)).style(level_style(level)),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(12),
                Constraint::Fill(1),
                Constraint::Fill(1),
                Constraint::Length(level_w),
            ],
        )
        .header(
            Row::new(vec![
                "field".to_string(),
                cut(&clean(&r.left_key), value_w),
                cut(&clean(&r.right_key), value_w),
                "level".to_string(),
            ])
            .style(Style::new().add_modifier(Modifier::BOLD)),
        ),
        rec_area,
    );

    let mut lines = waterfall(d, w);
    if !titled {
        lines.remove(0);
    }
    lines.truncate(wf_h as usize);
    frame.render_widget(Paragraph::new(lines), wf_area);
    frame.render_widget(
        Paragraph::new(blocking).wrap(Wrap { trim: true }),
        block_area,
    );
}

/// The weights as a waterfall: the prior, one bar per comparison (positive
/// green to the right of the axis, negative red to its left, scaled to the
/// largest one), and the total with its probability.
fn waterfall(d: &CandidateDetail, width: u16) -> Vec<Line<'static>> {
    const NAME: usize = 12;
    const VALUE: usize = 8;
    let width = width as usize;
    let note_w = (width / 4).clamp(6, 22);
    let half = (width.saturating_sub(NAME + 1 + VALUE + 1 + note_w + 1) / 2).max(2);
    let scale = d
        .comparisons
        .iter()
        .map(|c| c.weight.abs())
        .fold(0.0_f64, f64::max);
    let cells = |w: f64| -> usize {
        if w == 0.0 || scale == 0.0 {
            0
        } else {
            ((w.abs() / scale * half as f64).round() as usize).clamp(1, half)
        }
    };
    let line = |name: String, weight: f64, bar: bool, note: String, strong: bool| {
        let n = if bar { cells(weight) } else { 0 };
        let (neg, pos) = if weight < 0.0 { (n, 0) } else { (0, n) };
        let name_style = if strong {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        Line::from(vec![
            Span::styled(format!("{:<NAME$} ", cut(&name, NAME)), name_style),
            Span::raw(" ".repeat(half - neg)),
            Span::styled("█".repeat(neg), Style::new().fg(BAD)),
            Span::raw("│").add_modifier(Modifier::DIM),
            Span::styled("█".repeat(pos), Style::new().fg(GOOD)),
            Span::raw(" ".repeat(half - pos)),
            Span::styled(format!("{weight:>+VALUE$.2} "), name_style),
            Span::styled(cut(&note, note_w), name_style),
        ])
    };
    let mut lines = vec![Line::from("weights (bits: log2 m/u)").bold()];
    lines.push(line(
        "prior".into(),
        d.prior,
        false,
        "prior odds".into(),
        false,
    ));
    for c in &d.comparisons {
        let note = if c.tf {
            format!("{} · tf", clean(&c.level))
        } else {
            clean(&c.level)
        };
        lines.push(line(clean(&c.name), c.weight, true, note, false));
    }
    lines.push(line(
        "match weight".into(),
        d.row.match_weight,
        false,
        format!("p {:.3}", d.row.probability),
        true,
    ));
    lines
}

/// A share 0..1 as a heat-map cell: darker for more.
fn heat(share: f64) -> Style {
    let c = if share >= 0.5 {
        Color::Green
    } else if share >= 0.25 {
        Color::Cyan
    } else if share >= 0.1 {
        Color::Blue
    } else if share > 0.0 {
        Color::Magenta
    } else {
        Color::Reset
    };
    if share > 0.0 {
        Style::new().fg(c).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    }
}

/// Said first on the Analytics screen when its tables lag the profiles
/// (a steward decision or a new unify since the last analyse).
fn stale_note(v: &crate::tui::analytics::AnalyticsView) -> &'static str {
    if v.stale {
        "stale: r to refresh · "
    } else {
        ""
    }
}

fn draw_analytics(frame: &mut Frame, app: &App, area: Rect) {
    use ratatui::widgets::{Bar, BarChart, BarGroup, Sparkline};
    let v = &app.analytics;
    if !v.ready {
        frame.render_widget(
            Paragraph::new(
                "No analytics yet: the analyse step has not run.\n\nPress 1 for the Pipeline screen and R to run all steps (or `c360 run --all`).",
            )
            .wrap(Wrap { trim: true })
            .block(block("Analytics", true)),
            area,
        );
        return;
    }
    let [top, bottom, seg] = Layout::vertical([
        Constraint::Percentage(42),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(area);
    let [lc, rev] =
        Layout::horizontal([Constraint::Percentage(38), Constraint::Percentage(62)]).areas(top);
    // Lifecycle mix now, and its change over the last months.
    let bars: Vec<Bar> = v
        .lifecycle
        .iter()
        .map(|(s, n)| {
            let colour = match s.as_str() {
                "active" => GOOD,
                "lapsed" => WARN,
                "churned" => BAD,
                _ => ACCENT,
            };
            Bar::default()
                .label(Line::from(clean(s)))
                .value(*n as u64)
                .text_value(num(Some(*n as u64)))
                .style(Style::new().fg(colour))
        })
        .collect();
    let width = (lc.width.saturating_sub(2) / v.lifecycle.len().max(1) as u16).clamp(3, 12);
    let moved = match (v.lifecycle_months.len(), v.lifecycle_months.last()) {
        (n, Some((last, now))) if n > 3 => {
            let (then_m, then) = &v.lifecycle_months[n - 4];
            let get = |list: &Vec<(String, i64)>, s: &str| {
                list.iter().find(|x| x.0 == s).map_or(0, |x| x.1)
            };
            let active = get(now, "active") - get(then, "active");
            let churned = get(now, "churned") - get(then, "churned");
            format!(
                " · {}→{}: active {active:+}, churned {churned:+}",
                clean(then_m),
                clean(last)
            )
        }
        _ => String::new(),
    };
    if v.lifecycle_history {
        // Month by month: one row per month, one column per status.
        let statuses = ["lead", "prospect", "active", "lapsed", "churned"];
        let fit = lc.height.saturating_sub(3) as usize;
        let months = &v.lifecycle_months[v.lifecycle_months.len().saturating_sub(fit)..];
        let rows: Vec<Row> =
            months
                .iter()
                .map(|(m, mix)| {
                    let mut cells = vec![Cell::from(clean(m))];
                    cells.extend(statuses.iter().map(|s| {
                        Cell::from(num(mix.iter().find(|x| x.0 == *s).map(|x| x.1 as u64)))
                    }));
                    Row::new(cells)
                })
                .collect();
        let mut header = vec!["month"];
        header.extend(statuses);
        frame.render_widget(
            Table::new(
                rows,
                [Constraint::Length(8)]
                    .into_iter()
                    .chain(statuses.iter().map(|_| Constraint::Length(8))),
            )
            .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
            .block(block(
                &format!("{}Lifecycle mix by month end (L: now)", stale_note(v)),
                false,
            )),
            lc,
        );
    } else {
        frame.render_widget(
            BarChart::default()
                .block(block(
                    &format!("{}Lifecycle mix{moved} (L: by month)", stale_note(v)),
                    false,
                ))
                .data(BarGroup::default().bars(&bars))
                .bar_width(width)
                .bar_gap(1),
            lc,
        );
    }
    // Revenue per period (bars) and active customers (sparkline).
    let [rv, act] = Layout::vertical([Constraint::Percentage(65), Constraint::Min(3)]).areas(rev);
    let fit = (rv.width.saturating_sub(2) / 4).max(1) as usize;
    let shown = &v.activity[v.activity.len().saturating_sub(fit)..];
    let bars: Vec<Bar> = shown
        .iter()
        .map(|(p, revenue, _, _)| {
            Bar::default()
                .value(revenue.max(0.0) as u64)
                .text_value(String::new())
                .label(Line::from(clean(
                    p.get(p.len().saturating_sub(2)..).unwrap_or(""),
                )))
                .style(Style::new().fg(ACCENT))
        })
        .collect();
    let total: f64 = shown.iter().map(|x| x.1).sum();
    let orders: i64 = shown.iter().map(|x| x.2).sum();
    let title = format!(
        "Revenue per {} (m) · {} from {} · {} revenue, {} orders",
        v.grain(),
        shown.len(),
        clean(shown.first().map_or("-", |x| x.0.as_str())),
        num(Some(total.max(0.0) as u64)),
        num(Some(orders.max(0) as u64)),
    );
    frame.render_widget(
        BarChart::default()
            .block(block(&title, false))
            .data(BarGroup::default().bars(&bars))
            .bar_width(3)
            .bar_gap(1),
        rv,
    );
    let actives: Vec<u64> = shown.iter().map(|x| x.3.max(0) as u64).collect();
    frame.render_widget(
        Sparkline::default()
            .block(block(
                &format!(
                    "Active customers per {} · last {}",
                    v.grain(),
                    num(actives.last().copied())
                ),
                false,
            ))
            .data(&actives)
            .style(Style::new().fg(GOOD)),
        act,
    );
    // Retention cohorts (heat map), churn and funnel.
    let [coh, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom);
    let cols = ((coh.width.saturating_sub(16)) / 5).clamp(1, 13) as usize;
    let rows_fit = coh.height.saturating_sub(3) as usize;
    let cohorts = &v.cohorts[v.cohorts.len().saturating_sub(rows_fit)..];
    let mut header = vec![Cell::from("cohort"), Cell::from("size")];
    header.extend((1..=cols).map(|k| Cell::from(format!("+{k}"))));
    let rows: Vec<Row> = cohorts
        .iter()
        .map(|(c, n, shares)| {
            let mut cells = vec![Cell::from(clean(c)), Cell::from(num(Some(*n as u64)))];
            cells.extend((1..=cols).map(|k| match shares.get(k) {
                Some(s) => Cell::from(format!("{:>3.0}%", s * 100.0)).style(heat(*s)),
                None => Cell::from(""),
            }));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![Constraint::Length(8), Constraint::Length(6)];
    widths.extend((0..cols).map(|_| Constraint::Length(4)));
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
            .block(block(
                "Retention: first-purchase cohorts, share active k months later",
                false,
            )),
        coh,
    );
    let [churn, funnel] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(4)]).areas(right);
    let mut lines: Vec<Line> = v
        .bands
        .iter()
        .map(|(b, n, r)| {
            let style = if b.starts_with("high") {
                Style::new().fg(BAD).add_modifier(Modifier::BOLD)
            } else if b.starts_with("medium") {
                Style::new().fg(WARN)
            } else {
                Style::new()
            };
            Line::from(Span::styled(
                format!(
                    "{:<18} {:>8} customers  {:>12.2} revenue",
                    clean(b),
                    num(Some(*n as u64)),
                    r
                ),
                style,
            ))
        })
        .collect();
    lines.push(Line::from("signals:").bold());
    for (s, n, r) in v
        .signals
        .iter()
        .take(churn.height.saturating_sub(6) as usize)
    {
        lines.push(Line::from(format!(
            "  {:<20} {:>8}  {:>12.2}",
            cut(&clean(s), 20),
            num(Some(*n as u64)),
            r
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(block("Churn risk · revenue at risk", false)),
        churn,
    );
    let top_n = v.funnel.first().map_or(0, |x| x.1).max(1);
    let bars: Vec<Bar> = v
        .funnel
        .iter()
        .map(|(s, n)| {
            Bar::default()
                .value(*n as u64)
                .text_value(format!(
                    "{} {:.0}%",
                    clean(s),
                    *n as f64 * 100.0 / top_n as f64
                ))
                .style(Style::new().fg(ACCENT))
        })
        .collect();
    frame.render_widget(
        BarChart::default()
            .block(block(
                &format!("Funnel · last {} (p) · customers", v.period()),
                false,
            ))
            .direction(ratatui::layout::Direction::Horizontal)
            .data(BarGroup::default().bars(&bars))
            .bar_width(1)
            .bar_gap(0),
        funnel,
    );
    let seg_line = match &v.segment {
        None => Line::from(
            " segment: / to type a filter, e.g. country = \"DE\" and orders >= 3 and last_order < 90d",
        ),
        Some((f, Ok(n))) => Line::from(vec![
            Span::raw(" segment: ").bold(),
            Span::raw(clean(f)),
            Span::raw(format!(
                "  → {} profiles · S save · E export",
                num(Some(*n))
            ))
            .fg(GOOD),
        ]),
        Some((f, Err(e))) => Line::from(vec![
            Span::raw(" segment: ").bold(),
            Span::raw(clean(f)),
            Span::raw(format!("  ✗ {}", clean(e))).fg(BAD),
        ]),
    };
    frame.render_widget(Paragraph::new(seg_line), seg);
}

fn short_time(t: &str) -> String {
    clean(t.get(..16).unwrap_or(t)).replace('T', " ")
}

fn draw_customers(frame: &mut Frame, app: &App, area: Rect) {
    use crate::tui::customers::Pane;
    let v = &app.customers;
    if v.empty {
        frame.render_widget(
            Paragraph::new(
                "No profiles yet: the unify step has not run.\n\nPress 1 for the Pipeline screen and R to run all steps (or `c360 run --all`).",
            )
            .wrap(Wrap { trim: true })
            .block(block("Customers", true)),
            area,
        );
        return;
    }
    let wide = area.width >= 110;
    let (left, right) = if wide {
        let [l, r] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
            .areas(area);
        (l, r)
    } else {
        let [l, r] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
        (l, r)
    };
    // The list.
    let title = match &v.query {
        Some(q) => format!(
            "Customers · {} match {} · Esc: all",
            v.rows.len(),
            cut(&clean(q), 24)
        ),
        None => format!(
            "Customers · by {}{}{} · {}{}",
            v.sort.label(),
            v.filter
                .lifecycle
                .as_ref()
                .map_or(String::new(), |l| format!(" · {}", clean(l))),
            if v.filter.anonymous {
                " · with anonymous"
            } else {
                ""
            },
            num(Some(v.rows.len() as u64)),
            if v.exhausted { "" } else { "+" }
        ),
    };
    let header = Row::new([
        "name",
        "email",
        "lifecycle",
        "orders",
        "revenue",
        "last active",
        "risk",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let visible = left.height.saturating_sub(3) as usize;
    let offset = v.sel.saturating_sub(visible.saturating_sub(1));
    let rows: Vec<Row> = v
        .rows
        .iter()
        .skip(offset)
        .take(visible)
        .map(|r| {
            let name = match (&r.name, r.anonymous) {
                (Some(n), _) => clean(n),
                (None, true) => format!("(anonymous) {}", clean(&r.id)),
                (None, false) => clean(&r.id),
            };
            Row::new(vec![
                Cell::from(name),
                Cell::from(clean(r.email.as_deref().unwrap_or("-"))),
                Cell::from(clean(r.lifecycle.as_deref().unwrap_or("-"))),
                Cell::from(r.orders.to_string()),
                Cell::from(format!("{:.2}", r.revenue)),
                Cell::from(
                    r.last_activity
                        .as_deref()
                        .map_or("-".into(), |t| clean(t.get(..10).unwrap_or(t))),
                ),
                Cell::from(format!("{:.2}", r.churn_risk)).fg(if r.churn_risk >= 0.6 {
                    BAD
                } else if r.churn_risk >= 0.3 {
                    WARN
                } else {
                    Color::Reset
                }),
            ])
        })
        .collect();
    let mut state = TableState::new().with_selected(Some(v.sel - offset));
    frame.render_stateful_widget(
        Table::new(
            rows,
            [
                Constraint::Min(14),
                Constraint::Min(14),
                Constraint::Length(9),
                Constraint::Length(6),
                Constraint::Length(9),
                Constraint::Length(10),
                Constraint::Length(4),
            ],
        )
        .header(header)
        .block(block(&title, v.pane == Pane::List))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        left,
        &mut state,
    );
    // The selected customer: golden record with provenance, then timeline.
    let Some(sel) = v.selected() else {
        frame.render_widget(
            Paragraph::new("No customer matches. Esc shows the whole list.")
                .block(block("Customer", false)),
            right,
        );
        return;
    };
    let f = |name: &str| clean(v.field(name));
    let mut lines: Vec<Line> = Vec::new();
    for (label, field, base) in crate::read::customers::GOLDEN_FIELDS {
        let value = f(field);
        let mut spans = vec![
            Span::raw(format!("{label:<10}")).bold(),
            Span::raw(if value.is_empty() { "-".into() } else { value }),
        ];
        let from = f(&format!("{base}_from"));
        if !from.is_empty() {
            spans
                .push(Span::raw(format!("  ← {from} · {}", f(&format!("{base}_rule")))).fg(ACCENT));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(format!(
        "orders {} · revenue {} · AOV {} · favourite {} · RFM {}",
        f("orders"),
        f("revenue"),
        if f("aov").is_empty() {
            "-".into()
        } else {
            f("aov")
        },
        if f("favourite_category").is_empty() {
            "-".into()
        } else {
            f("favourite_category")
        },
        if f("rfm_segment").is_empty() {
            "-".into()
        } else {
            f("rfm_segment")
        },
    )));
    lines.push(Line::from(format!(
        "30d/90d: sessions {}/{} · page views {}/{} · key events {}/{} · last active {} ({} days)",
        f("sessions_30d"),
        f("sessions_90d"),
        f("page_views_30d"),
        f("page_views_90d"),
        f("key_events_30d"),
        f("key_events_90d"),
        short_time(v.field("last_activity_at")),
        f("days_since_last_activity"),
    )));
    let risk = v.field("churn_risk").parse::<f64>().unwrap_or(0.0);
    lines.push(Line::from(vec![
        Span::raw(format!("churn risk {risk:.2}")).fg(if risk >= 0.6 {
            BAD
        } else if risk >= 0.3 {
            WARN
        } else {
            GOOD
        }),
        Span::raw(if f("churn_signals").is_empty() {
            String::new()
        } else {
            format!(": {}", f("churn_signals"))
        }),
    ]));
    lines.push(Line::from(format!(
        "records: {} CRM · {} web · {} orders · identifiers {}",
        f("crm_records"),
        f("web_events"),
        f("transactions"),
        f("identifiers")
    )));
    let golden_height = (lines.len() as u16 + 2).min(right.height / 2);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(golden_height), Constraint::Min(3)]).areas(right);
    let title = format!(
        "{}{} · Enter: 360 view and why",
        clean(&sel.id),
        if sel.anonymous { " (anonymous)" } else { "" }
    );
    frame.render_widget(Paragraph::new(lines).block(block(&title, false)), top);
    let visible = bottom.height.saturating_sub(3) as usize;
    let offset = v.tl_sel.saturating_sub(visible.saturating_sub(1));
    let rows: Vec<Row> = v
        .timeline
        .iter()
        .skip(offset)
        .take(visible)
        .map(|e| {
            Row::new(vec![
                Cell::from(short_time(&e.time)),
                Cell::from(clean(&e.name)),
                Cell::from(clean(&e.system)),
                Cell::from(e.revenue.map_or(String::new(), |r| format!("{r:.2}"))),
                Cell::from(clean(&e.detail)),
            ])
        })
        .collect();
    let focused = v.pane == Pane::Timeline;
    let mut state = TableState::new().with_selected(focused.then_some(v.tl_sel - offset));
    frame.render_stateful_widget(
        Table::new(
            rows,
            [
                Constraint::Length(16),
                Constraint::Length(18),
                Constraint::Length(12),
                Constraint::Length(8),
                Constraint::Min(10),
            ],
        )
        .header(
            Row::new(["time (UTC)", "event", "system", "revenue", "detail"])
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(block(
            &format!(
                "Timeline · {} · {}{} · t filter",
                v.tl_filter.label(),
                num(Some(v.timeline.len() as u64)),
                if v.tl_exhausted { "" } else { "+" }
            ),
            focused,
        ))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        bottom,
        &mut state,
    );
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let [top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    if let Some(job) = &app.job {
        let [label, bar] =
            Layout::horizontal([Constraint::Length(28), Constraint::Min(10)]).areas(top);
        frame.render_widget(
            Paragraph::new(format!(" ⏵ {}", cut(&clean(&job.kind.label()), 25))).fg(ACCENT),
            label,
        );
        // A job waiting for another writer (a CLI run in its write phase)
        // says for whom instead of sitting at its phase.
        let label = match crate::store::lock::waiting_for() {
            Some(w) => cut(&clean(&w), bar.width.saturating_sub(2) as usize),
            None => cut(
                &clean(&job.progress_label()),
                bar.width.saturating_sub(2) as usize,
            ),
        };
        frame.render_widget(
            Gauge::default()
                .gauge_style(Style::new().fg(ACCENT))
                .ratio(job.bar_ratio())
                .label(label),
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
        "rejects [reason] · rules · review · pipeline · cancel · help · quit",
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
        InputKind::Segment => {
            "Segment filter, e.g. country = \"DE\" and orders >= 3 and last_order < 90d (size in the status line)"
        }
        InputKind::SegmentName => "Save the segment as",
        InputKind::CustomerSearch => {
            "Find a customer: name, e-mail, phone, customer360_id, record or device id"
        }
        InputKind::Palette => "Command (load, run all, run <step>, reload <source>, rejects, quit)",
        InputKind::Reason { approve: true } => "Reason for approving this merge",
        InputKind::Reason { approve: false } => "Reason for rejecting this merge",
        InputKind::Band => "Bulk decision: probability band and a (approve) or r (reject)",
    };
    let prefix = match kind {
        InputKind::Search | InputKind::CustomerSearch => "/",
        InputKind::Segment => "segment: ",
        InputKind::SegmentName => "name: ",
        InputKind::Palette => ":",
        InputKind::Reason { .. } => "reason: ",
        InputKind::Band => "band, e.g. 0.80-0.95 a: ",
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
