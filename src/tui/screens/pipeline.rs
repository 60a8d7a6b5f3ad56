//! The Pipeline screen: the sources with their last load, and the steps
//! with what their tables hold now, whether they are out of date, and which
//! run (running, queued) while a job runs.

use crate::pipeline::{self, STEPS, Step};
use crate::store;
use crate::tui::format;
use crate::tui::jobs::{self, Job, JobKind};
use crate::tui::keymap::{Action, Scope};
use crate::tui::screen::{Ctx, Screen, View};
use crate::tui::text::clean;
use crate::tui::widgets::{ACCENT, BAD, GOOD, Grid, NONE, WARN, block, draw_table};
use crate::workspace::{Source, Workspace};
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::widgets::{Gauge, Row};

/// One source row.
#[derive(Debug, Clone)]
pub struct SourceRow {
    pub source: Source,
    pub last: Option<store::Batch>,
    pub batches: usize,
}

/// What a step's tables hold and whether they lag their inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    NotRun,
    Done,
    /// Its inputs (or an earlier step's) changed since it ran.
    OutOfDate,
    /// The last run failed / was cancelled; the earlier results are kept.
    Failed,
    Cancelled,
    NotAvailable,
}

/// One step row.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub step: Step,
    pub state: StepState,
    /// As of the last successful run (what the tables hold).
    pub rows_in: Option<u64>,
    pub rows_out: Option<u64>,
    pub seconds: Option<f64>,
    pub last_run: Option<String>,
    pub message: Option<String>,
}

impl StepRow {
    /// The status as drawn, given the running job.
    pub fn status(&self, job: Option<&Job>) -> String {
        if let Some(j) = job.and_then(|j| job_state(j, self.step.name)) {
            return j.into();
        }
        match self.state {
            StepState::NotRun => "not run".into(),
            StepState::Done => "done".into(),
            StepState::OutOfDate => "out of date".into(),
            StepState::Failed => "failed · kept".into(),
            StepState::Cancelled => "cancelled · kept".into(),
            StepState::NotAvailable => "not available".into(),
        }
    }
}

/// "running" / "queued" for the steps a job covers.
fn job_state(job: &Job, step: &str) -> Option<&'static str> {
    let name = pipeline::run_name(step);
    let index = jobs::RUN_STEPS.iter().position(|s| *s == name)?;
    match &job.kind {
        JobKind::All => match jobs::step_of(&job.phase) {
            Some(now) if now == index => Some("running"),
            Some(now) if now > index => None,
            _ if job.phase.is_empty() && index == 0 => Some("running"),
            _ => Some("queued"),
        },
        JobKind::Source(_) if name == "load" => Some("running"),
        JobKind::Step(s) if pipeline::run_name(s) == name => Some("running"),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelinePane {
    Sources,
    Steps,
}

pub struct PipelineView {
    pub sources: Vec<SourceRow>,
    pub steps: Vec<StepRow>,
    pub pane: PipelinePane,
    pub source_sel: usize,
    pub step_sel: usize,
}

impl Default for PipelineView {
    fn default() -> Self {
        PipelineView {
            sources: Vec::new(),
            steps: Vec::new(),
            pane: PipelinePane::Steps,
            source_sel: 0,
            step_sel: 0,
        }
    }
}

impl Screen for PipelineView {
    fn scope(&self) -> Scope {
        Scope::Pipeline
    }

    fn update(&mut self, action: Action, cx: &mut Ctx) {
        let (sel, len) = match self.pane {
            PipelinePane::Sources => (&mut self.source_sel, self.sources.len()),
            PipelinePane::Steps => (&mut self.step_sel, self.steps.len()),
        };
        let last = len.saturating_sub(1);
        match action {
            Action::Down => *sel = (*sel + 1).min(last),
            Action::Up => *sel = sel.saturating_sub(1),
            Action::Top | Action::PageUp => *sel = 0,
            Action::Bottom | Action::PageDown => *sel = last,
            Action::Left => self.pane = PipelinePane::Sources,
            Action::Right => self.pane = PipelinePane::Steps,
            Action::Open => self.open_detail(cx),
            Action::RunStep if self.pane == PipelinePane::Sources => {
                self.update(Action::ReloadSource, cx)
            }
            Action::RunStep => {
                if let Some(row) = self.steps.get(self.step_sel) {
                    if row.step.available {
                        cx.start(JobKind::Step(row.step.name.to_string()));
                    } else {
                        cx.flash(format!(
                            "{} is not available in this build yet",
                            row.step.title
                        ));
                    }
                }
            }
            Action::ReloadSource => {
                if let Some(row) = self.sources.get(self.source_sel) {
                    cx.start(JobKind::Source(row.source.name.clone()));
                }
            }
            _ => {}
        }
    }

    fn refresh(&mut self, cx: &mut Ctx) -> Result<()> {
        let mut sources = Vec::new();
        for s in &cx.ws.sources {
            let batches = store::batches(cx.conn, Some(&s.name))?;
            sources.push(SourceRow {
                source: s.clone(),
                last: batches.first().cloned(),
                batches: batches.len(),
            });
        }
        self.sources = sources;
        self.steps = step_rows(cx.conn, cx.ws)?;
        self.source_sel = self.source_sel.min(self.sources.len().saturating_sub(1));
        Ok(())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, view: &View) {
        let job_height = if view.job.is_some() { 3 } else { 0 };
        let [src_area, steps_area, job_area] = Layout::vertical([
            Constraint::Length(self.sources.len() as u16 + 3),
            Constraint::Min(6),
            Constraint::Length(job_height),
        ])
        .areas(area);
        self.draw_sources(frame, src_area);
        self.draw_steps(frame, steps_area, view.job);
        if let Some(job) = view.job {
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
                    .label(format::fit(
                        &label,
                        job_area.width.saturating_sub(2) as usize,
                    )),
                job_area,
            );
        }
    }
}

impl PipelineView {
    fn draw_sources(&self, frame: &mut Frame, area: Rect) {
        let g = Grid::new(
            area.width,
            &[
                Constraint::Length(14),
                Constraint::Length(12),
                Constraint::Length(8),
                Constraint::Min(12),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(9),
                Constraint::Length(16),
            ],
        );
        let header = g.header(
            &[
                "source",
                "system",
                "format",
                "location",
                "read",
                "staged",
                "rejected",
                "last load",
            ],
            &[4, 5, 6],
        );
        let rows: Vec<Row> = self
            .sources
            .iter()
            .map(|s| {
                let b = s.last.as_ref();
                let rejected = b.map_or(0, |b| b.rows_rejected);
                Row::new(vec![
                    g.text(0, &s.source.name),
                    g.text(1, s.source.system.as_str()),
                    g.text(2, s.source.format.as_str()),
                    g.text(3, &s.source.location),
                    g.opt_count(4, b.map(|b| b.rows_read)),
                    g.opt_count(5, b.map(|b| b.rows_staged)).fg(GOOD),
                    g.opt_count(6, b.map(|b| b.rows_rejected))
                        .fg(if rejected > 0 {
                            WARN
                        } else {
                            ratatui::style::Color::Reset
                        }),
                    g.text(
                        7,
                        &match b {
                            Some(b) => b.finished_at.as_deref().map_or(NONE.into(), format::time),
                            None => "not loaded".into(),
                        },
                    ),
                ])
            })
            .collect();
        let focused = self.pane == PipelinePane::Sources;

        draw_table(
            frame,
            area,
            &g,
            header,
            rows,
            "Sources · L reload",
            focused,
            focused.then_some(self.source_sel),
        );
    }

    fn draw_steps(&self, frame: &mut Frame, area: Rect, job: Option<&Job>) {
        let g = Grid::new(
            area.width,
            &[
                Constraint::Length(2),
                Constraint::Length(14),
                Constraint::Length(16),
                Constraint::Length(11),
                Constraint::Length(11),
                Constraint::Length(8),
                Constraint::Min(16),
            ],
        );
        let header = g.header(
            &[
                "#", "step", "status", "rows in", "rows out", "seconds", "last run",
            ],
            &[3, 4, 5],
        );
        let rows: Vec<Row> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let status = s.status(job);
                let style = match status.as_str() {
                    "done" => Style::new().fg(GOOD),
                    "running" => Style::new().fg(ACCENT).add_modifier(Modifier::BOLD),
                    "queued" => Style::new().fg(ACCENT),
                    "out of date" => Style::new().fg(WARN).add_modifier(Modifier::BOLD),
                    s if s.starts_with("failed") || s.starts_with("cancelled") => {
                        Style::new().fg(BAD)
                    }
                    "not available" => Style::new().add_modifier(Modifier::DIM),
                    _ => Style::new(),
                };
                let row = Row::new(vec![
                    g.right(0, &(i + 1).to_string()),
                    g.text(1, s.step.title),
                    g.text(2, &status).style(style),
                    g.opt_count(3, s.rows_in),
                    g.opt_count(4, s.rows_out),
                    g.right(5, &s.seconds.map_or(NONE.into(), |x| format!("{x:.2}"))),
                    g.text(6, &s.last_run.as_deref().map_or(NONE.into(), format::time)),
                ]);
                if s.step.available {
                    row
                } else {
                    row.style(Style::new().add_modifier(Modifier::DIM))
                }
            })
            .collect();
        let stale = self
            .steps
            .iter()
            .filter(|s| s.state == StepState::OutOfDate)
            .count();
        let title = if stale > 0 {
            format!("Steps · {stale} out of date: R runs them · Space runs the selected one")
        } else {
            "Steps · Space runs the selected one · R runs what is out of date".into()
        };
        let focused = self.pane == PipelinePane::Steps;

        draw_table(
            frame,
            area,
            &g,
            header,
            rows,
            &title,
            focused,
            focused.then_some(self.step_sel),
        );
    }

    fn open_detail(&self, cx: &mut Ctx) {
        let (title, body) = match self.pane {
            PipelinePane::Sources => {
                let Some(row) = self.sources.get(self.source_sel) else {
                    return;
                };
                (format!("Source {}", row.source.name), source_text(row, cx))
            }
            PipelinePane::Steps => {
                let Some(row) = self.steps.get(self.step_sel) else {
                    return;
                };
                (format!("Step {}", row.step.title), step_text(row, cx.job))
            }
        };
        cx.detail(title, body);
    }
}

fn source_text(row: &SourceRow, cx: &mut Ctx) -> String {
    let s = &row.source;
    let mut body = format!(
        "system:    {}\nformat:    {}\nlocation:  {}\nraw table: {}\ntimezone:  {}\n\nload batches ({}):\n",
        s.system,
        s.format,
        s.location,
        s.raw_table(),
        s.timezone,
        row.batches
    );
    match store::batches(cx.conn, Some(&s.name)) {
        Ok(batches) => {
            for b in batches {
                body.push_str(&format!(
                    "  batch {:>4}  read {:>9}  staged {:>9}  rejected {:>7}  {:>7.2}s  {}  {}\n",
                    b.batch_id,
                    format::count(b.rows_read),
                    format::count(b.rows_staged),
                    format::count(b.rows_rejected),
                    b.seconds,
                    b.finished_at.as_deref().map_or(NONE.into(), format::time),
                    &b.content_hash[..12.min(b.content_hash.len())]
                ));
            }
        }
        Err(e) => body.push_str(&format!("  cannot read batches: {e:#}\n")),
    }
    body
}

fn step_text(row: &StepRow, job: Option<&JobKind>) -> String {
    if !row.step.available {
        return format!("{} is not available in this build yet.", row.step.title);
    }
    let what_to_do = match row.state {
        StepState::OutOfDate => {
            "\n\nIts inputs changed since it ran: R runs the steps that are out of date."
        }
        StepState::Failed | StepState::Cancelled => {
            "\n\nThe last run did not finish; its work was rolled back and the tables hold the last successful run's results (the counts above)."
        }
        StepState::NotRun => "\n\nSpace runs it; R runs every step that is out of date.",
        _ => "",
    };
    let opt = |n: Option<u64>| n.map_or(NONE.into(), format::count);
    format!(
        "status:    {}\nrows in:   {}\nrows out:  {}\nseconds:   {}\nlast run:  {}{}{}\n\n{}",
        row.status(None),
        opt(row.rows_in),
        opt(row.rows_out),
        row.seconds.map_or(NONE.into(), |s| format!("{s:.2}")),
        row.last_run.as_deref().map_or("never".into(), format::time),
        if job.is_some() {
            " (a job is running)"
        } else {
            ""
        },
        what_to_do,
        row.message.as_deref().unwrap_or("")
    )
}

/// The steps' rows: counts as of their last successful run; a step is out
/// of date when its inputs changed since then, or an earlier step's did.
pub fn step_rows(conn: &rusqlite::Connection, ws: &Workspace) -> Result<Vec<StepRow>> {
    let (read, staged, rejected) = store::load_totals(conn)?;
    let mut rows = Vec::new();
    let mut upstream_lags = false;
    for step in STEPS {
        if !step.available {
            rows.push(StepRow {
                step: *step,
                state: StepState::NotAvailable,
                rows_in: None,
                rows_out: None,
                seconds: None,
                last_run: None,
                message: None,
            });
            continue;
        }
        let is_load = matches!(step.name, "extract" | "stage");
        let last = pipeline::last_run(conn, step.name)?;
        let ok = pipeline::last_ok_run(conn, step.name)?;
        let (rows_in, rows_out) = match (step.name, &ok) {
            ("extract", _) if read > 0 => (None, Some(read)),
            ("stage", _) if read > 0 => (Some(read), Some(staged)),
            (_, Some(l)) if !is_load => (Some(l.rows_in as u64), Some(l.rows_out as u64)),
            _ => (None, None),
        };
        let ran = ok.is_some() || (is_load && read > 0);
        let stale = !is_load && crate::pipeline::fingerprint::is_stale(conn, ws, step.name)?;
        let state = match &last {
            Some(l) if l.status == "failed" => StepState::Failed,
            Some(l) if l.status == "cancelled" => StepState::Cancelled,
            _ if !ran => StepState::NotRun,
            _ if stale || upstream_lags => StepState::OutOfDate,
            _ => StepState::Done,
        };
        upstream_lags |= !is_load && state != StepState::Done;
        let mut message = last
            .as_ref()
            .and_then(|l| l.message.clone())
            .unwrap_or_default();
        if is_load {
            message.push_str(&format!(
                "\n\nAll loads so far: {} read = {} staged + {} rejected.",
                format::count(read),
                format::count(staged),
                format::count(rejected)
            ));
        }
        rows.push(StepRow {
            step: *step,
            state,
            rows_in,
            rows_out,
            seconds: ok.as_ref().map(|l| l.seconds),
            last_run: last.as_ref().and_then(|l| l.finished_at.clone()),
            message: Some(message),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_every_step_shows_the_later_ones_queued() {
        let row = |name: &'static str| StepRow {
            step: *pipeline::step(name).unwrap(),
            state: StepState::Done,
            rows_in: None,
            rows_out: None,
            seconds: None,
            last_run: None,
            message: None,
        };
        let mut job = Job::spawn_with(JobKind::All, |_| Ok(String::new()));
        job.phase = "resolve: read crm".into();
        assert_eq!(row("standardise").status(Some(&job)), "done");
        assert_eq!(row("resolve").status(Some(&job)), "running");
        assert_eq!(row("unify").status(Some(&job)), "queued");
        assert_eq!(row("analyse").status(Some(&job)), "queued");
        assert_eq!(row("unify").status(None), "done");
    }
}
