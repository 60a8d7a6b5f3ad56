//! Application state. Keys become [`Action`]s; [`App::update`] is the only
//! place state changes; drawing (`ui.rs`) only reads it.

use crate::pipeline::identity::steward::{
    self, CandidateDetail, QueueCounts, QueueFilter, QueueOrder, QueueRow,
};
use crate::pipeline::standardise::{self, ExampleRow, RuleRow};
use crate::pipeline::{STEPS, Step};
use crate::store::{self, Anchor, Reject, RejectFilter};
use crate::tui::analytics::AnalyticsView;
use crate::tui::customers::CustomersView;
use crate::tui::jobs::{Job, JobEvent, JobKind};
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::paged::{Paged, Window};
use crate::workspace::{Source, Workspace};
use anyhow::Result;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use rusqlite::Connection;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// The screens (tabs), in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Pipeline,
    Rejects,
    Rules,
    Review,
    Customers,
    Analytics,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::Pipeline,
        Tab::Rejects,
        Tab::Rules,
        Tab::Review,
        Tab::Customers,
        Tab::Analytics,
    ];
    pub fn title(self) -> &'static str {
        match self {
            Tab::Pipeline => "Pipeline",
            Tab::Rejects => "Rejects",
            Tab::Rules => "Rules",
            Tab::Review => "Review",
            Tab::Customers => "Customers",
            Tab::Analytics => "Analytics",
        }
    }
    fn scope(self) -> Scope {
        match self {
            Tab::Pipeline => Scope::Pipeline,
            Tab::Rejects => Scope::Rejects,
            Tab::Rules => Scope::Rules,
            Tab::Review => Scope::Review,
            Tab::Customers => Scope::Customers,
            Tab::Analytics => Scope::Analytics,
        }
    }
    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// What the keyboard is talking to.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    Help {
        scroll: u16,
    },
    Detail {
        title: String,
        body: String,
        scroll: u16,
    },
    Input {
        kind: InputKind,
        text: String,
    },
    Confirm {
        prompt: String,
        on_yes: Pending,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Search,
    /// Find a customer (Customers screen).
    CustomerSearch,
    /// A segment filter, counted as it is typed (Analytics screen).
    Segment,
    /// The name to save the segment under.
    SegmentName,
    Palette,
    /// The reason for approving / rejecting the selected pair.
    Reason {
        approve: bool,
    },
    /// A probability band and a verb for a bulk decision ("0.8-0.95 a").
    Band,
}

/// A risky action waiting for a yes.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    CancelJob,
    QuitDuringJob,
    Band(BandRequest),
}

/// A bulk decision: every pending pair with a probability in `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandRequest {
    pub lo: f64,
    pub hi: f64,
    pub approve: bool,
}

impl BandRequest {
    /// Read "0.8-0.95 a" (or "a 0.8..0.95", "0.8 to 0.95 reject", ...).
    pub fn parse(text: &str) -> Result<BandRequest, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let verb = |w: &str| match w.to_lowercase().as_str() {
            "a" | "approve" => Some(true),
            "r" | "reject" => Some(false),
            _ => None,
        };
        let (approve, band) = match words.as_slice() {
            [first, rest @ ..] if verb(first).is_some() => (verb(first), rest),
            [rest @ .., last] if verb(last).is_some() => (verb(last), rest),
            all => (None, all),
        };
        let band = band.join(" ").replace("..", "-").replace(['–', '—'], "-");
        let band = band.replace(" to ", "-");
        let nums: Vec<Result<f64, _>> = band.split('-').map(|x| x.trim().parse::<f64>()).collect();
        let (lo, hi) = match nums.as_slice() {
            [Ok(lo), Ok(hi)] => (*lo, *hi),
            _ => {
                return Err(format!(
                    "{:?} is not a band: write two probabilities and a or r, e.g. 0.80-0.95 a",
                    text.trim()
                ));
            }
        };
        if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo > hi {
            return Err(format!(
                "{lo}-{hi}: probabilities go from 0 to 1, low first"
            ));
        }
        let Some(approve) = approve else {
            return Err("add a (approve) or r (reject) after the band, e.g. 0.80-0.95 a".into());
        };
        Ok(BandRequest { lo, hi, approve })
    }

    fn verb(&self) -> &'static str {
        if self.approve { "Approve" } else { "Reject" }
    }
}

/// One source row of the Pipeline screen.
#[derive(Debug, Clone)]
pub struct SourceRow {
    pub source: Source,
    pub last: Option<store::Batch>,
    pub batches: usize,
}

/// One step row of the Pipeline screen.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub step: Step,
    pub status: String,
    pub rows_in: Option<u64>,
    pub rows_out: Option<u64>,
    pub seconds: Option<f64>,
    pub last_run: Option<String>,
    pub message: Option<String>,
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

/// A finished search: (rows matching, the first page) or an error.
pub type SearchResult = Result<(u64, Vec<Reject>), String>;

pub struct RejectsView {
    pub filter: RejectFilter,
    /// (source, reason, count) for the whole table.
    pub counts: Vec<(String, String, u64)>,
    /// Rows matching the filter.
    pub total: u64,
    /// The visible rows (keyset paged on reject_id).
    pub page: Paged<Reject>,
    /// The load state the counts were read at (max batch, rejected rows).
    pub version: Option<(i64, i64)>,
    /// A text search running on a worker thread: (total, first page).
    /// The filter it searches with: a result for an older filter is dropped.
    pub search: Option<(RejectFilter, Receiver<SearchResult>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesPane {
    Rules,
    Examples,
}

/// The Rules screen: what each standardise rule did.
pub struct RulesView {
    pub rules: Vec<RuleRow>,
    pub sel: usize,
    pub pane: RulesPane,
    /// Show unmapped values instead of examples.
    pub show_unmapped: bool,
    pub examples: Vec<ExampleRow>,
    pub unmapped: Vec<(String, u64)>,
    /// Selection (and scroll anchor) in the examples / unmapped list.
    pub item_sel: usize,
}

/// Rows of the review queue fetched at a time: moving through them costs no
/// query (the queue is sorted by a score, so it pages by position).
pub const REVIEW_CHUNK: usize = 200;

/// The Review screen: the match queue and the selected candidate.
pub struct ReviewView {
    pub filter: QueueFilter,
    pub order: QueueOrder,
    pub counts: QueueCounts,
    pub list: Window<QueueRow>,
    /// The selected candidate in detail: (candidate id, detail or error).
    pub detail: Option<(i64, Result<CandidateDetail, String>)>,
    /// A bulk decision whose pairs are being counted on a worker thread.
    pub counting: Option<(BandRequest, Receiver<Result<u64, String>>)>,
    /// The candidate a running decision is about.
    pub deciding: Option<i64>,
}

impl ReviewView {
    /// The selected candidate's details, when they loaded.
    pub fn candidate(&self) -> Option<&CandidateDetail> {
        match &self.detail {
            Some((_, Ok(d))) => Some(d),
            _ => None,
        }
    }
}

/// Rows of the queue under `filter`. `queue_counts` has every figure but
/// the decided pairs (it counts decisions, and a pair can have several).
fn filter_total(conn: &Connection, counts: &QueueCounts, filter: QueueFilter) -> Result<u64> {
    Ok(match filter {
        QueueFilter::Pending => counts.remaining,
        QueueFilter::AllReview => counts.reviewed + counts.remaining,
        QueueFilter::AutoMerged => counts.auto_merged,
        QueueFilter::Decided => conn.query_row(
            "SELECT count(*) FROM match_candidates WHERE decision IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64,
    })
}

pub struct App {
    pub ws: Workspace,
    conn: Connection,
    pub tab: Tab,
    pub mode: Mode,
    pub pipeline: PipelineView,
    pub rejects: RejectsView,
    pub rules: RulesView,
    pub review: ReviewView,
    pub customers: CustomersView,
    pub analytics: AnalyticsView,
    pub job: Option<Job>,
    /// The last finished job: (label, outcome).
    pub last_job: Option<(String, Result<String, String>)>,
    /// A short message for the status bar.
    pub flash: Option<String>,
    /// Table rows that fit on screen (kept in step with the terminal size).
    pub viewport: usize,
    pub quit: bool,
}

/// Rows of the rejects table for a terminal of `height` lines: tabs (1),
/// status bar (2), table borders and header (3), filter line (1).
pub fn viewport_for(height: u16) -> usize {
    (height as usize).saturating_sub(7).max(1)
}

impl App {
    pub fn new(ws: Workspace, height: u16) -> Result<App> {
        let conn = store::open(&ws.db_path())?;
        let mut app = App {
            ws,
            conn,
            tab: Tab::Pipeline,
            mode: Mode::Normal,
            pipeline: PipelineView {
                sources: Vec::new(),
                steps: Vec::new(),
                pane: PipelinePane::Steps,
                source_sel: 0,
                step_sel: 0,
            },
            rejects: RejectsView {
                filter: RejectFilter::default(),
                counts: Vec::new(),
                total: 0,
                page: Paged::new(viewport_for(height)),
                version: None,
                search: None,
            },
            rules: RulesView {
                rules: Vec::new(),
                sel: 0,
                pane: RulesPane::Rules,
                show_unmapped: false,
                examples: Vec::new(),
                unmapped: Vec::new(),
                item_sel: 0,
            },
            review: ReviewView {
                filter: QueueFilter::default(),
                order: QueueOrder::default(),
                counts: QueueCounts::default(),
                list: Window::new(viewport_for(height), REVIEW_CHUNK),
                detail: None,
                counting: None,
                deciding: None,
            },
            customers: CustomersView::default(),
            analytics: AnalyticsView::default(),
            job: None,
            last_job: None,
            flash: None,
            viewport: viewport_for(height),
            quit: false,
        };
        app.refresh()?;
        Ok(app)
    }

    pub fn scope(&self) -> Scope {
        self.tab.scope()
    }

    /// Turn a key into an action, given the current mode.
    pub fn key_to_action(&self, key: &KeyEvent) -> Option<Action> {
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        match &self.mode {
            Mode::Normal => keymap::action_for(self.scope(), key),
            Mode::Help { .. } | Mode::Detail { .. } => match key.code {
                _ if ctrl_c => Some(Action::Quit),
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::Enter => {
                    Some(Action::Back)
                }
                KeyCode::Char('j') | KeyCode::Down => Some(Action::Down),
                KeyCode::Char('k') | KeyCode::Up => Some(Action::Up),
                KeyCode::PageDown => Some(Action::PageDown),
                KeyCode::PageUp => Some(Action::PageUp),
                _ => None,
            },
            Mode::Input { .. } => match key.code {
                _ if ctrl_c => Some(Action::Back),
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::Submit),
                KeyCode::Backspace => Some(Action::Backspace),
                KeyCode::Char(c) => Some(Action::Char(c)),
                _ => None,
            },
            Mode::Confirm { .. } => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    Some(Action::Confirm(true))
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    Some(Action::Confirm(false))
                }
                _ => None,
            },
        }
    }

    /// Handle one key: map it and apply it. Returns true when state changed.
    pub fn handle_key(&mut self, key: KeyEvent) -> bool {
        match self.key_to_action(&key) {
            Some(action) => {
                self.update(action);
                true
            }
            None => false,
        }
    }

    /// The terminal was resized.
    pub fn resize(&mut self, height: u16) {
        let viewport = viewport_for(height);
        self.viewport = viewport;
        let (conn, filter) = (&self.conn, &self.rejects.filter);
        let result = self.rejects.page.set_viewport(viewport, &mut |a, n| {
            store::rejects_window(conn, filter, a, n)
        });
        self.report(result);
        let (f, o) = (self.review.filter, self.review.order);
        let result = self.review.list.set_viewport(viewport, &mut |off, n| {
            steward::queue(&self.conn, f, o, None, off, n as u64)
        });
        self.report(result);
        self.load_review_detail();
    }

    fn report(&mut self, result: Result<()>) {
        if let Err(e) = result {
            self.flash = Some(format!("cannot read the database: {e:#}"));
        }
    }

    /// Apply an action. The only place state changes.
    pub fn update(&mut self, action: Action) {
        self.flash = None;
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.update_normal(action),
            Mode::Help { scroll } => {
                self.mode = match action {
                    Action::Back | Action::Help => Mode::Normal,
                    Action::Quit => {
                        self.quit = true;
                        Mode::Normal
                    }
                    Action::Down => Mode::Help { scroll: scroll + 1 },
                    Action::Up => Mode::Help {
                        scroll: scroll.saturating_sub(1),
                    },
                    Action::PageDown => Mode::Help {
                        scroll: scroll + self.viewport as u16,
                    },
                    Action::PageUp => Mode::Help {
                        scroll: scroll.saturating_sub(self.viewport as u16),
                    },
                    _ => Mode::Help { scroll },
                }
            }
            Mode::Detail {
                title,
                body,
                scroll,
            } => {
                let page = self.viewport as u16;
                self.mode = match action {
                    Action::Back => Mode::Normal,
                    Action::Quit => {
                        self.quit = true;
                        Mode::Normal
                    }
                    Action::Down => Mode::Detail {
                        title,
                        body,
                        scroll: scroll + 1,
                    },
                    Action::Up => Mode::Detail {
                        title,
                        body,
                        scroll: scroll.saturating_sub(1),
                    },
                    Action::PageDown => Mode::Detail {
                        title,
                        body,
                        scroll: scroll + page,
                    },
                    Action::PageUp => Mode::Detail {
                        title,
                        body,
                        scroll: scroll.saturating_sub(page),
                    },
                    _ => Mode::Detail {
                        title,
                        body,
                        scroll,
                    },
                }
            }
            Mode::Input { kind, mut text } => match action {
                Action::Back => {}
                Action::Char(c) => {
                    text.push(c);
                    self.live_count(kind, &text);
                    self.mode = Mode::Input { kind, text };
                }
                Action::Backspace => {
                    text.pop();
                    self.live_count(kind, &text);
                    self.mode = Mode::Input { kind, text };
                }
                Action::Submit => match kind {
                    InputKind::Search => {
                        let t = text.trim();
                        self.rejects.filter.text = (!t.is_empty()).then(|| t.to_string());
                        self.start_search();
                    }
                    InputKind::CustomerSearch => {
                        let result = self.customers.search(&self.conn, &text);
                        self.report(result);
                        if let Some(q) = &self.customers.query {
                            self.flash = Some(format!(
                                "{} customer(s) match {q:?} · Esc shows the list again",
                                self.customers.rows.len()
                            ));
                        }
                    }
                    InputKind::Segment => {
                        let t = text.trim().to_string();
                        if t.is_empty() {
                            self.analytics.segment = None;
                        } else {
                            let n = self.analytics.count(&self.ws.db_path(), &t);
                            self.flash = Some(match &n {
                                Ok(n) => {
                                    format!("segment: {n} profiles · S saves it, E exports it")
                                }
                                Err(e) => format!("segment: {e}"),
                            });
                            self.analytics.segment = Some((t, n));
                        }
                    }
                    InputKind::SegmentName => self.save_segment(text.trim()),
                    InputKind::Palette => self.run_command(text.trim()),
                    InputKind::Reason { approve } => self.decide(approve, text.trim().to_string()),
                    InputKind::Band => match BandRequest::parse(&text) {
                        Ok(req) => self.start_band_count(req),
                        Err(e) => {
                            self.flash = Some(e);
                            self.mode = Mode::Input { kind, text };
                        }
                    },
                },
                _ => self.mode = Mode::Input { kind, text },
            },
            Mode::Confirm { prompt, on_yes } => match action {
                Action::Confirm(true) => match on_yes {
                    Pending::CancelJob => self.cancel_job(),
                    Pending::QuitDuringJob => {
                        self.cancel_job();
                        self.quit = true;
                    }
                    Pending::Band(req) => {
                        let BandRequest { lo, hi, approve } = req;
                        self.start_job(JobKind::DecideBand { lo, hi, approve });
                    }
                },
                Action::Confirm(false) => {}
                _ => self.mode = Mode::Confirm { prompt, on_yes },
            },
        }
    }

    fn update_normal(&mut self, action: Action) {
        match action {
            Action::Quit => {
                if self.job.is_some() {
                    self.mode = Mode::Confirm {
                        prompt: "A job is running. Quit and roll it back?".into(),
                        on_yes: Pending::QuitDuringJob,
                    };
                } else {
                    self.quit = true;
                }
            }
            Action::Help => self.mode = Mode::Help { scroll: 0 },
            Action::NextTab => self.set_tab(Tab::ALL[(self.tab.index() + 1) % Tab::ALL.len()]),
            Action::PrevTab => {
                self.set_tab(Tab::ALL[(self.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len()])
            }
            Action::Tab(i) => {
                if let Some(t) = Tab::ALL.get(i) {
                    self.set_tab(*t);
                }
            }
            Action::Palette => {
                self.mode = Mode::Input {
                    kind: InputKind::Palette,
                    text: String::new(),
                }
            }
            Action::Search if self.tab == Tab::Analytics => {
                let text = self
                    .analytics
                    .segment
                    .as_ref()
                    .map(|s| s.0.clone())
                    .unwrap_or_default();
                self.live_count(InputKind::Segment, &text);
                self.mode = Mode::Input {
                    kind: InputKind::Segment,
                    text,
                }
            }
            Action::Search if self.tab == Tab::Customers => {
                self.mode = Mode::Input {
                    kind: InputKind::CustomerSearch,
                    text: self.customers.query.clone().unwrap_or_default(),
                }
            }
            Action::Search => {
                self.mode = Mode::Input {
                    kind: InputKind::Search,
                    text: self.rejects.filter.text.clone().unwrap_or_default(),
                }
            }
            Action::Cancel => {
                if self.job.as_ref().is_some_and(|j| j.kind.is_decision()) {
                    self.flash = Some("a decision cannot be cancelled; u undoes it".into());
                } else if self.job.as_ref().is_some_and(|j| !j.cancelling()) {
                    self.mode = Mode::Confirm {
                        prompt: "Cancel the running job? Its work is rolled back.".into(),
                        on_yes: Pending::CancelJob,
                    };
                } else {
                    self.flash = Some("no job is running".into());
                }
            }
            Action::Refresh => {
                if let Err(e) = self.refresh() {
                    self.flash = Some(format!("refresh failed: {e:#}"));
                }
            }
            Action::Back => {
                if self.tab == Tab::Rejects && self.rejects.filter != RejectFilter::default() {
                    self.clear_filters();
                }
                if self.tab == Tab::Customers
                    && (self.customers.query.is_some()
                        || self.customers.filter != Default::default())
                {
                    self.customers.query = None;
                    self.customers.filter = Default::default();
                    let result = self.customers.reload(&self.conn);
                    self.report(result);
                }
                let r = &self.review;
                if self.tab == Tab::Review
                    && (r.filter, r.order) != (QueueFilter::default(), QueueOrder::default())
                {
                    self.review.filter = QueueFilter::default();
                    self.review.order = QueueOrder::default();
                    self.reset_review();
                }
            }
            other => match self.tab {
                Tab::Pipeline => self.update_pipeline(other),
                Tab::Rejects => self.update_rejects(other),
                Tab::Rules => self.update_rules(other),
                Tab::Review => self.update_review(other),
                Tab::Customers => self.update_customers(other),
                Tab::Analytics => self.update_analytics(other),
            },
        }
    }

    fn set_tab(&mut self, tab: Tab) {
        self.tab = tab;
        if let Err(e) = self.refresh() {
            self.flash = Some(format!("refresh failed: {e:#}"));
        }
    }

    fn update_pipeline(&mut self, action: Action) {
        let p = &mut self.pipeline;
        let (sel, len) = match p.pane {
            PipelinePane::Sources => (&mut p.source_sel, p.sources.len()),
            PipelinePane::Steps => (&mut p.step_sel, p.steps.len()),
        };
        match action {
            Action::Down => *sel = (*sel + 1).min(len.saturating_sub(1)),
            Action::Up => *sel = sel.saturating_sub(1),
            Action::Top | Action::PageUp => *sel = 0,
            Action::Bottom | Action::PageDown => *sel = len.saturating_sub(1),
            Action::Left => p.pane = PipelinePane::Sources,
            Action::Right => p.pane = PipelinePane::Steps,
            Action::Open => self.open_pipeline_detail(),
            Action::RunStep => match p.pane {
                PipelinePane::Steps => {
                    if let Some(row) = p.steps.get(p.step_sel) {
                        if row.step.available {
                            let name = row.step.name.to_string();
                            self.start_job(JobKind::Step(name));
                        } else {
                            self.flash = Some(format!(
                                "{} is not available in this build yet",
                                row.step.title
                            ));
                        }
                    }
                }
                PipelinePane::Sources => self.update_pipeline(Action::ReloadSource),
            },
            Action::RunAll => self.start_job(JobKind::All),
            Action::ReloadSource => {
                if let Some(row) = p.sources.get(p.source_sel) {
                    let name = row.source.name.clone();
                    self.start_job(JobKind::Source(name));
                }
            }
            _ => {}
        }
    }

    fn open_pipeline_detail(&mut self) {
        let p = &self.pipeline;
        let (title, body) = match p.pane {
            PipelinePane::Sources => {
                let Some(row) = p.sources.get(p.source_sel) else {
                    return;
                };
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
                match store::batches(&self.conn, Some(&s.name)) {
                    Ok(batches) => {
                        for b in batches {
                            body.push_str(&format!(
                                "  batch {:>4}  read {:>9}  staged {:>9}  rejected {:>7}  {:>7.2}s  {}  {}\n",
                                b.batch_id,
                                b.rows_read,
                                b.rows_staged,
                                b.rows_rejected,
                                b.seconds,
                                b.finished_at.as_deref().unwrap_or("-"),
                                &b.content_hash[..12.min(b.content_hash.len())]
                            ));
                        }
                    }
                    Err(e) => body.push_str(&format!("  cannot read batches: {e:#}\n")),
                }
                (format!("Source {}", s.name), body)
            }
            PipelinePane::Steps => {
                let Some(row) = p.steps.get(p.step_sel) else {
                    return;
                };
                let body = if row.step.available {
                    format!(
                        "status:    {}\nrows in:   {}\nrows out:  {}\nseconds:   {}\nlast run:  {}\n\n{}",
                        row.status,
                        row.rows_in.map_or("-".into(), |n| n.to_string()),
                        row.rows_out.map_or("-".into(), |n| n.to_string()),
                        row.seconds.map_or("-".into(), |s| format!("{s:.2}")),
                        row.last_run.as_deref().unwrap_or("never"),
                        row.message.as_deref().unwrap_or("")
                    )
                } else {
                    format!("{} is not available in this build yet.", row.step.title)
                };
                (format!("Step {}", row.step.title), body)
            }
        };
        self.mode = Mode::Detail {
            title,
            body,
            scroll: 0,
        };
    }

    fn update_rejects(&mut self, action: Action) {
        let (conn, filter) = (&self.conn, &self.rejects.filter);
        let moved = self.rejects.page.apply(&action, &mut |a, n| {
            store::rejects_window(conn, filter, a, n)
        });
        match moved {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => return self.report(Err(e)),
        }
        let r = &mut self.rejects;
        match action {
            Action::Open => {
                if let Some(row) = r.page.selected_row() {
                    self.mode = Mode::Detail {
                        title: format!("Reject #{}", row.reject_id),
                        body: format!(
                            "source:  {}\nbatch:   {}\nrow:     {}\nfield:   {}\nreason:  {}\ndetail:  {}\n\noriginal row:\n{}",
                            row.source,
                            row.batch_id,
                            row.row_num,
                            row.field.as_deref().unwrap_or("-"),
                            row.reason,
                            row.detail,
                            row.raw
                        ),
                        scroll: 0,
                    };
                }
            }
            Action::CycleReason => {
                let mut reasons: Vec<&String> = r.counts.iter().map(|c| &c.1).collect();
                reasons.sort();
                reasons.dedup();
                r.filter.reason = cycle(&reasons, r.filter.reason.as_ref());
                self.reload_rejects_filtered();
            }
            Action::CycleSource => {
                let mut sources: Vec<&String> = r.counts.iter().map(|c| &c.0).collect();
                sources.sort();
                sources.dedup();
                r.filter.source = cycle(&sources, r.filter.source.as_ref());
                self.reload_rejects_filtered();
            }
            Action::ClearFilters => self.clear_filters(),
            _ => {}
        }
    }

    fn update_rules(&mut self, action: Action) {
        let v = &mut self.rules;
        let items = if v.show_unmapped {
            v.unmapped.len()
        } else {
            v.examples.len()
        };
        let page = self.viewport.max(1);
        match (v.pane, action) {
            (_, Action::Left) => v.pane = RulesPane::Rules,
            (_, Action::Right) => v.pane = RulesPane::Examples,
            (_, Action::ToggleUnmapped) => {
                v.show_unmapped = !v.show_unmapped;
                v.item_sel = 0;
            }
            (RulesPane::Rules, a) => {
                let before = v.sel;
                let last = v.rules.len().saturating_sub(1);
                v.sel = match a {
                    Action::Down => (v.sel + 1).min(last),
                    Action::Up => v.sel.saturating_sub(1),
                    Action::PageDown => (v.sel + page).min(last),
                    Action::PageUp => v.sel.saturating_sub(page),
                    Action::Top => 0,
                    Action::Bottom => last,
                    Action::Open => {
                        v.pane = RulesPane::Examples;
                        v.sel
                    }
                    _ => v.sel,
                };
                if v.sel != before {
                    let result = self.load_rule_details();
                    self.report(result);
                }
            }
            (RulesPane::Examples, a) => {
                let last = items.saturating_sub(1);
                match a {
                    Action::Down => v.item_sel = (v.item_sel + 1).min(last),
                    Action::Up => v.item_sel = v.item_sel.saturating_sub(1),
                    Action::PageDown => v.item_sel = (v.item_sel + page).min(last),
                    Action::PageUp => v.item_sel = v.item_sel.saturating_sub(page),
                    Action::Top => v.item_sel = 0,
                    Action::Bottom => v.item_sel = last,
                    Action::Open => self.open_rule_item(),
                    _ => {}
                }
            }
        }
    }

    fn open_rule_item(&mut self) {
        let v = &self.rules;
        let Some(rule) = v.rules.get(v.sel) else {
            return;
        };
        let body = if v.show_unmapped {
            let Some((value, n)) = v.unmapped.get(v.item_sel) else {
                return;
            };
            format!(
                "rule:   {}
value:  {value}
count:  {n}

No rule maps this value. Add an alias to the rule file to map it.",
                rule.rule
            )
        } else {
            let Some((source, record, field, before, after, flagged)) = v.examples.get(v.item_sel)
            else {
                return;
            };
            format!(
                "rule:    {}
source:  {source}
record:  {record}
field:   {field}
flagged: {}

before:
{}

after:
{}",
                rule.rule,
                if *flagged {
                    "yes (kept as written)"
                } else {
                    "no"
                },
                before.as_deref().unwrap_or("(empty)"),
                after.as_deref().unwrap_or("(empty)")
            )
        };
        self.mode = Mode::Detail {
            title: format!("Rule {}", rule.rule),
            body,
            scroll: 0,
        };
    }

    fn load_rule_details(&mut self) -> Result<()> {
        let v = &mut self.rules;
        v.item_sel = 0;
        match v.rules.get(v.sel) {
            Some(rule) => {
                v.examples = standardise::examples(&self.conn, &rule.rule)?;
                v.unmapped = standardise::unmapped(&self.conn, &rule.rule, 1000)?;
            }
            None => {
                v.examples.clear();
                v.unmapped.clear();
            }
        }
        Ok(())
    }

    fn clear_filters(&mut self) {
        self.rejects.filter = RejectFilter::default();
        self.reload_rejects_filtered();
    }

    fn load_rejects(&mut self, anchor: Anchor) {
        let (conn, filter) = (&self.conn, &self.rejects.filter);
        let result = self.rejects.page.load(anchor, &mut |a, n| {
            store::rejects_window(conn, filter, a, n)
        });
        self.report(result);
    }

    fn reload_rejects_filtered(&mut self) {
        self.rejects.total = store::rejects_count(&self.conn, &self.rejects.filter).unwrap_or(0);
        self.load_rejects(Anchor::First);
    }

    /// Re-read what the screens show from SQLite (after jobs, on tab change).
    pub fn refresh(&mut self) -> Result<()> {
        let mut sources = Vec::new();
        for s in &self.ws.sources {
            let batches = store::batches(&self.conn, Some(&s.name))?;
            sources.push(SourceRow {
                source: s.clone(),
                last: batches.first().cloned(),
                batches: batches.len(),
            });
        }
        self.pipeline.sources = sources;
        self.pipeline.steps = self.step_rows()?;
        self.pipeline.source_sel = self
            .pipeline
            .source_sel
            .min(self.pipeline.sources.len().saturating_sub(1));
        if self.tab == Tab::Rules {
            self.rules.rules = standardise::rule_rows(&self.conn)?;
            self.rules.sel = self.rules.sel.min(self.rules.rules.len().saturating_sub(1));
            let item = self.rules.item_sel;
            self.load_rule_details()?;
            self.rules.item_sel = item;
        }
        if self.tab == Tab::Rejects || self.rejects.page.rows.is_empty() {
            // Counts per reason scan the whole table: re-read them only when
            // a load added rejects since the last time.
            let version: (i64, i64) = self.conn.query_row(
                "SELECT coalesce(max(batch_id), 0), coalesce(sum(rows_rejected), 0) FROM load_batches",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if self.rejects.version != Some(version) {
                self.rejects.counts = store::reject_counts(&self.conn, None)?;
                self.rejects.total = store::rejects_count(&self.conn, &self.rejects.filter)?;
                self.rejects.version = Some(version);
            }
            let (conn, filter) = (&self.conn, &self.rejects.filter);
            self.rejects
                .page
                .reload(&mut |a, n| store::rejects_window(conn, filter, a, n))?;
        }
        if self.tab == Tab::Review {
            self.refresh_review()?;
        }
        if self.tab == Tab::Customers {
            self.customers.lifecycles.clear();
            self.customers.reload(&self.conn)?;
        }
        if self.tab == Tab::Analytics {
            // Profiles may have changed since the columns were read.
            self.analytics.columns = None;
            self.analytics.loading = None;
            self.analytics.load(&self.conn)?;
            self.analytics.stale =
                crate::pipeline::fingerprint::is_stale(&self.conn, &self.ws, "analyse")?;
        }
        Ok(())
    }

    fn step_rows(&self) -> Result<Vec<StepRow>> {
        let (read, staged, rejected): (i64, i64, i64) = self.conn.query_row(
            "SELECT coalesce(sum(rows_read),0), coalesce(sum(rows_staged),0), coalesce(sum(rows_rejected),0) FROM load_batches",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        // Which steps the running job covers (extract and stage are one load).
        let runs = |name: &str| -> bool {
            let load = matches!(name, "extract" | "stage");
            match self.job.as_ref().map(|j| &j.kind) {
                None => false,
                Some(JobKind::All) => true,
                Some(JobKind::Source(_)) => load,
                Some(JobKind::Step(s)) => {
                    s == name || (load && matches!(s.as_str(), "extract" | "stage"))
                }
                Some(_) => false,
            }
        };
        let mut rows = Vec::new();
        for step in STEPS {
            if !step.available {
                rows.push(StepRow {
                    step: *step,
                    status: "not available".into(),
                    rows_in: None,
                    rows_out: None,
                    seconds: None,
                    last_run: None,
                    message: None,
                });
                continue;
            }
            let is_load = matches!(step.name, "extract" | "stage");
            let last = crate::pipeline::last_run(&self.conn, step.name)?;
            // Load counts are totals over all batches; other steps report
            // their last run.
            let (rows_in, rows_out) = match (step.name, &last) {
                ("extract", _) if read > 0 => (None, Some(read as u64)),
                ("stage", _) if read > 0 => (Some(read as u64), Some(staged as u64)),
                (_, Some(l)) if !is_load && l.status == "ok" => {
                    (Some(l.rows_in as u64), Some(l.rows_out as u64))
                }
                _ => (None, None),
            };
            let status = match &last {
                _ if runs(step.name) => "running".to_string(),
                Some(l) if l.status != "ok" => l.status.clone(),
                _ if is_load && read > 0 => "done".into(),
                Some(_) => "done".into(),
                None => "not run".into(),
            };
            let mut message = last
                .as_ref()
                .and_then(|l| l.message.clone())
                .unwrap_or_default();
            if is_load {
                message.push_str(&format!(
                    "\n\nAll loads so far: {read} read = {staged} staged + {rejected} rejected."
                ));
            }
            rows.push(StepRow {
                step: *step,
                status,
                rows_in,
                rows_out,
                seconds: last.as_ref().map(|l| l.seconds),
                last_run: last.as_ref().and_then(|l| l.finished_at.clone()),
                message: Some(message),
            });
        }
        Ok(rows)
    }

    /// Start a job unless one is running.
    fn start_job(&mut self, kind: JobKind) {
        if let Some(job) = &self.job {
            self.flash = Some(if job.kind.is_decision() {
                format!("{} is still being saved; try again", job.kind.label())
            } else {
                format!("{} is still running (x cancels it)", job.kind.label())
            });
            return;
        }
        let decision = kind.is_decision();
        self.flash = Some(if decision {
            format!("saving: {}…", kind.label())
        } else {
            format!("started: {}", kind.label())
        });
        self.job = Some(Job::spawn(self.ws.clone(), kind));
        if !decision {
            // Show the steps it runs as running.
            let _ = self.refresh();
        }
    }

    fn cancel_job(&mut self) {
        if let Some(job) = &self.job {
            job.request_cancel();
            self.flash = Some(format!("cancelling {}…", job.kind.label()));
        }
    }

    /// Run a text search off the UI thread: it scans the original rows, which
    /// can take a moment on millions of rejects. The screen keeps answering
    /// keys and shows the result when it arrives.
    fn start_search(&mut self) {
        if self.rejects.filter.text.is_none() {
            self.rejects.search = None;
            self.reload_rejects_filtered();
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let db = self.ws.db_path();
        let filter = self.rejects.filter.clone();
        let n = self.rejects.page.viewport;
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
        self.rejects.search = Some((self.rejects.filter.clone(), rx));
        self.flash = Some("searching…".into());
    }

    /// Take a finished search's result. Returns true when the screen changed.
    pub fn poll_search(&mut self, wait: Option<Duration>) -> bool {
        let Some((searched, rx)) = &self.rejects.search else {
            return false;
        };
        let current = *searched == self.rejects.filter;
        let received = match wait {
            Some(w) => rx.recv_timeout(w).ok(),
            None => rx.try_recv().ok(),
        };
        let Some(result) = received else {
            return false;
        };
        self.rejects.search = None;
        match result {
            // The filter changed meanwhile: the screen already shows the new one.
            _ if !current => return false,
            Ok((total, rows)) => {
                self.rejects.total = total;
                self.rejects.page.rows = rows;
                self.rejects.page.selected = 0;
                self.flash = Some(format!("{total} rows match"));
            }
            Err(e) => self.flash = Some(format!("search failed: {e}")),
        }
        true
    }

    /// Take job events (waiting up to `wait` for the first). Returns true when
    /// something changed on screen.
    pub fn poll_job(&mut self, wait: Option<Duration>) -> bool {
        let Some(job) = &mut self.job else {
            return false;
        };
        let events = job.poll(wait);
        if events.is_empty() {
            return false;
        }
        for e in events {
            match e {
                JobEvent::Message(m) => self.flash = Some(m),
                JobEvent::Done(result) => {
                    let Some(kind) = self.job.take().map(|j| j.kind) else {
                        break;
                    };
                    let label = kind.label();
                    self.flash = Some(match &result {
                        // A decision's outcome says what it did.
                        Ok(m) if kind.is_decision() => m.clone(),
                        Ok(m) => format!("{label}: {m}"),
                        Err(e) => format!("{label} failed: {e}"),
                    });
                    let decided = self.review.deciding.take().filter(|_| result.is_ok());
                    self.last_job = Some((label, result));
                    if kind.is_decision() {
                        // The queue, the counts and the customers changed.
                        self.review.detail = None;
                    }
                    if let Err(e) = self.refresh() {
                        self.flash = Some(format!("refresh failed: {e:#}"));
                    }
                    if let Some(id) = decided {
                        self.after_decision(id);
                    }
                    break;
                }
                _ => {}
            }
        }
        true
    }

    /// Block until the running job finishes (tests, quitting).
    pub fn wait_for_job(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.job.is_some() {
            if Instant::now() > deadline {
                return false;
            }
            self.poll_job(Some(Duration::from_millis(50)));
        }
        true
    }

    /// `:` commands.
    fn run_command(&mut self, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["q"] | ["quit"] => self.update_normal(Action::Quit),
            ["help"] => self.mode = Mode::Help { scroll: 0 },
            ["pipeline"] | ["1"] => self.set_tab(Tab::Pipeline),
            ["rejects"] | ["2"] => self.set_tab(Tab::Rejects),
            ["rules"] | ["3"] => self.set_tab(Tab::Rules),
            ["review"] | ["4"] => self.set_tab(Tab::Review),
            ["customers"] | ["5"] => self.set_tab(Tab::Customers),
            ["analytics"] | ["6"] => self.set_tab(Tab::Analytics),
            ["segment", "save", name @ ..] if !name.is_empty() => {
                self.save_segment(&name.join(" "))
            }
            ["segment", "export", file] => {
                self.export_segment(Some(std::path::PathBuf::from(file)))
            }
            ["segment", "export"] => self.export_segment(None),
            ["find", ..] => {
                self.set_tab(Tab::Customers);
                let query = words[1..].join(" ");
                let result = self.customers.search(&self.conn, &query);
                self.report(result);
            }
            ["export", table, rest @ ..] => {
                let table = match *table {
                    "profiles" => "customer360_profiles",
                    "events" => "customer360_events",
                    t => t,
                };
                if !crate::read::export::TABLES.contains(&table) {
                    self.flash = Some(format!(
                        "cannot export {table:?}: export profiles [FILE] or export events [FILE]"
                    ));
                    return;
                }
                let out = match rest {
                    [file] => std::path::PathBuf::from(file),
                    _ => self.ws.root.join(format!("{table}.parquet")),
                };
                self.start_job(JobKind::Export {
                    table: table.to_string(),
                    out,
                });
            }
            ["rejects", reason] => {
                self.set_tab(Tab::Rejects);
                self.rejects.filter.reason = Some(reason.to_string());
                self.reload_rejects_filtered();
            }
            ["load"] | ["run", "load"] => self.start_job(JobKind::Step("stage".into())),
            ["run", "all"] => self.start_job(JobKind::All),
            ["run", step] => match crate::pipeline::step(step) {
                Some(s) if s.available => self.start_job(JobKind::Step(s.name.into())),
                Some(s) => {
                    self.flash = Some(format!("{} is not available in this build yet", s.title))
                }
                None => self.flash = Some(format!("unknown step {step:?}")),
            },
            ["reload", source] => {
                if self.ws.source(source).is_some() {
                    self.start_job(JobKind::Source(source.to_string()));
                } else {
                    self.flash = Some(format!("no source named {source:?}"));
                }
            }
            ["cancel"] => self.update_normal(Action::Cancel),
            _ => {
                self.flash = Some(format!(
                    "unknown command {text:?} — try: load, run all, run <step>, reload <source>, rejects [reason], rules, review, customers, find <text>, export profiles|events [FILE], pipeline, help, quit"
                ))
            }
        }
    }
}

/// The Analytics screen.
impl App {
    /// While a segment filter is typed: its size (or the error) each key.
    fn live_count(&mut self, kind: InputKind, text: &str) {
        if kind != InputKind::Segment || text.trim().is_empty() {
            return;
        }
        let t = std::time::Instant::now();
        self.flash = Some(match self.analytics.count(&self.ws.db_path(), text) {
            Ok(n) => format!(
                "{n} profiles match ({:.0} ms)",
                t.elapsed().as_secs_f64() * 1000.0
            ),
            Err(e) => e,
        });
    }
    /// Columns a worker read for segment counts: count again with them.
    pub fn poll_analytics(&mut self) -> bool {
        let Some(result) = self.analytics.poll() else {
            return false;
        };
        if let Err(e) = result {
            self.flash = Some(format!("cannot read the profiles: {e}"));
            return true;
        }
        match &self.mode {
            Mode::Input {
                kind: InputKind::Segment,
                text,
            } => {
                let text = text.clone();
                self.live_count(InputKind::Segment, &text);
            }
            _ => {
                if let Some((f, Err(e))) = &self.analytics.segment
                    && e == crate::tui::analytics::LOADING
                {
                    let f = f.clone();
                    let n = self.analytics.count(&self.ws.db_path(), &f);
                    self.flash = Some(match &n {
                        Ok(n) => format!("segment: {n} profiles · S saves it, E exports it"),
                        Err(e) => format!("segment: {e}"),
                    });
                    self.analytics.segment = Some((f, n));
                }
            }
        }
        true
    }

    /// Wait for the segment columns being read (tests).
    pub fn wait_for_columns(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.analytics.loading.is_some() {
            if Instant::now() > deadline {
                return false;
            }
            if !self.poll_analytics() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        true
    }

    fn update_analytics(&mut self, action: Action) {
        let result = match action {
            Action::CycleGrain => {
                self.analytics.grain =
                    (self.analytics.grain + 1) % crate::tui::analytics::GRAINS.len();
                self.analytics.load_activity(&self.conn)
            }
            Action::ToggleLifecycle => {
                self.analytics.lifecycle_history = !self.analytics.lifecycle_history;
                Ok(())
            }
            Action::CyclePeriod => {
                self.analytics.period =
                    (self.analytics.period + 1) % crate::pipeline::analyse::PERIODS.len();
                self.analytics.load_funnel(&self.conn)
            }
            Action::SaveSegment => {
                if self.analytics.segment.is_some() {
                    self.mode = Mode::Input {
                        kind: InputKind::SegmentName,
                        text: String::new(),
                    };
                } else {
                    self.flash = Some("type a segment first: /".into());
                }
                Ok(())
            }
            Action::ExportSegment => {
                self.export_segment(None);
                Ok(())
            }
            Action::RunStep => {
                self.start_job(JobKind::Step("analyse".into()));
                Ok(())
            }
            _ => Ok(()),
        };
        self.report(result);
    }

    fn save_segment(&mut self, name: &str) {
        let Some((filter, _)) = self.analytics.segment.clone() else {
            self.flash = Some("type a segment first: /".into());
            return;
        };
        if name.is_empty() {
            self.flash = Some("a segment needs a name".into());
            return;
        }
        let seg = crate::read::segments::Segment {
            name: name.to_string(),
            filter,
            description: String::new(),
        };
        self.flash = Some(
            match crate::read::segments::save(&self.ws.rules_dir(), seg) {
                Ok(()) => format!("saved segment {name:?} in rules/segments.toml"),
                Err(e) => format!("{e:#}"),
            },
        );
    }

    fn export_segment(&mut self, out: Option<std::path::PathBuf>) {
        let Some((filter, Ok(_))) = self.analytics.segment.clone() else {
            self.flash = Some("type a valid segment first: /".into());
            return;
        };
        let out = out.unwrap_or_else(|| self.ws.root.join("segment.parquet"));
        self.start_job(JobKind::ExportSegment { filter, out });
    }
}

/// The Customers screen.
impl App {
    fn update_customers(&mut self, action: Action) {
        if action == Action::Open {
            let Some(id) = self.customers.selected().map(|r| r.id.clone()) else {
                return;
            };
            match crate::read::customers::view_text(&self.conn, &id) {
                Ok(body) => {
                    self.mode = Mode::Detail {
                        title: format!("Customer {id}"),
                        body,
                        scroll: 0,
                    }
                }
                Err(e) => self.flash = Some(format!("{e:#}")),
            }
            return;
        }
        match self.customers.apply(&self.conn, &action, self.viewport) {
            Ok(Some(msg)) => self.flash = Some(msg),
            Ok(None) => {}
            Err(e) => self.flash = Some(format!("cannot read the database: {e:#}")),
        }
    }
}

/// The Review screen.
impl App {
    fn fetch_queue(
        conn: &Connection,
        filter: QueueFilter,
        order: QueueOrder,
    ) -> impl FnMut(u64, usize) -> Result<Vec<QueueRow>> + '_ {
        move |offset, n| steward::queue(conn, filter, order, None, offset, n as u64)
    }

    fn update_review(&mut self, action: Action) {
        let moved = {
            let mut fetch = Self::fetch_queue(&self.conn, self.review.filter, self.review.order);
            self.review.list.apply(&action, &mut fetch)
        };
        match moved {
            Ok(true) => return self.load_review_detail(),
            Ok(false) => {}
            Err(e) => return self.report(Err(e)),
        }
        match action {
            Action::Approve => self.decide(true, String::new()),
            Action::Reject => self.decide(false, String::new()),
            Action::ApproveWithReason | Action::RejectWithReason => {
                if self.review.list.selected_row().is_some() {
                    self.mode = Mode::Input {
                        kind: InputKind::Reason {
                            approve: action == Action::ApproveWithReason,
                        },
                        text: String::new(),
                    };
                } else {
                    self.flash = Some("no pair selected".into());
                }
            }
            Action::Skip => {
                let before = self.review.list.pos;
                self.update_review(Action::Down);
                if self.review.list.pos == before {
                    self.flash = Some("that was the last pair of this list".into());
                }
            }
            Action::Undo => self.start_job(JobKind::Undo),
            Action::Bulk => {
                self.mode = Mode::Input {
                    kind: InputKind::Band,
                    text: String::new(),
                }
            }
            Action::CycleFilter => {
                let all = QueueFilter::ALL;
                let i = all
                    .iter()
                    .position(|f| *f == self.review.filter)
                    .unwrap_or(0);
                self.review.filter = all[(i + 1) % all.len()];
                self.reset_review();
            }
            Action::ToggleOrder => {
                self.review.order = match self.review.order {
                    QueueOrder::Uncertainty => QueueOrder::Score,
                    QueueOrder::Score => QueueOrder::Uncertainty,
                };
                self.reset_review();
            }
            Action::Open => self.open_review_detail(),
            _ => {}
        }
    }

    /// Approve or reject the selected pair: a job (it re-clusters).
    fn decide(&mut self, approve: bool, reason: String) {
        let Some(row) = self.review.list.selected_row() else {
            self.flash = Some("no pair selected".into());
            return;
        };
        let id = row.candidate_id;
        let kind = JobKind::Decide {
            left: row.left_key.clone(),
            right: row.right_key.clone(),
            approve,
            reason,
        };
        let free = self.job.is_none();
        self.start_job(kind);
        if free {
            self.review.deciding = Some(id);
        }
    }

    /// Where the cursor goes once candidate `id` is decided: in the "to
    /// review" list the pair has left and the next one took its place; in the
    /// other lists it stays, so move past it.
    fn after_decision(&mut self, id: i64) {
        let r = &mut self.review;
        if r.filter != QueueFilter::Pending
            && r.list.selected_row().is_some_and(|x| x.candidate_id == id)
        {
            self.update_review(Action::Down);
        }
    }

    /// Back to the first row (the filter or the order changed).
    fn reset_review(&mut self) {
        let result = (|| -> Result<()> {
            let total = filter_total(&self.conn, &self.review.counts, self.review.filter)?;
            let mut fetch = Self::fetch_queue(&self.conn, self.review.filter, self.review.order);
            self.review.list.reset(total, &mut fetch)
        })();
        self.report(result);
        self.load_review_detail();
    }

    /// Re-read the counts, the queue around the cursor and the candidate.
    fn refresh_review(&mut self) -> Result<()> {
        self.review.counts = steward::queue_counts(&self.conn)?;
        let total = filter_total(&self.conn, &self.review.counts, self.review.filter)?;
        {
            let mut fetch = Self::fetch_queue(&self.conn, self.review.filter, self.review.order);
            self.review.list.reload(total, &mut fetch)?;
        }
        self.review.detail = None;
        self.load_review_detail();
        Ok(())
    }

    /// Read the selected candidate's details when the selection changed
    /// (one lookup by primary key, and the two customers' sizes by index).
    fn load_review_detail(&mut self) {
        let Some(id) = self.review.list.selected_row().map(|r| r.candidate_id) else {
            self.review.detail = None;
            return;
        };
        if self.review.detail.as_ref().is_some_and(|(d, _)| *d == id) {
            return;
        }
        let detail = steward::candidate(&self.conn, id).map_err(|e| format!("{e:#}"));
        self.review.detail = Some((id, detail));
    }

    fn open_review_detail(&mut self) {
        let Some(d) = self.review.candidate() else {
            return;
        };
        let r = &d.row;
        let mut body = format!(
            "band:         {}{}\ndecision:     {}\nprobability:  {:.4}\nmatch weight: {:+.2} = prior {:+.2} + evidence {:+.2}\nblocking:     {}\n\n",
            r.band,
            if r.flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", r.flags)
            },
            r.decision.as_deref().unwrap_or("none yet"),
            r.probability,
            r.match_weight,
            d.prior,
            d.weight,
            d.blocking,
        );
        body.push_str(&format!(
            "{} is in {} ({})\n{} is in {} ({})\n{}\n\ncomparisons:\n",
            r.left_key,
            d.left_customer,
            records(d.left_records),
            r.right_key,
            d.right_customer,
            records(d.right_records),
            merge_preview(d)
        ));
        for c in &d.comparisons {
            body.push_str(&format!(
                "  {:<14} {:>+7.2}  {}{}\n",
                c.name,
                c.weight,
                c.level,
                if c.tf { " (term frequency)" } else { "" }
            ));
            for (field, level, left, right) in &c.members {
                body.push_str(&format!(
                    "      {field} · {level}\n        left:  {}\n        right: {}\n",
                    left.as_deref().unwrap_or("(empty)"),
                    right.as_deref().unwrap_or("(empty)")
                ));
            }
        }
        self.mode = Mode::Detail {
            title: format!("Candidate {}", r.candidate_id),
            body,
            scroll: 0,
        };
    }

    /// Count the pairs a bulk decision would decide, off the UI thread (it
    /// reads every pending pair of the band); the Confirm shows the count.
    fn start_band_count(&mut self, req: BandRequest) {
        let (tx, rx) = std::sync::mpsc::channel();
        let db = self.ws.db_path();
        std::thread::spawn(move || {
            let result = crate::tui::jobs::catch(|| {
                (|| -> Result<u64> {
                    let conn = store::open(&db)?;
                    let band = Some((req.lo, req.hi));
                    let rows = steward::queue(
                        &conn,
                        QueueFilter::Pending,
                        QueueOrder::Score,
                        band,
                        0,
                        u64::MAX >> 1,
                    )?;
                    Ok(rows.len() as u64)
                })()
                .map_err(|e| format!("{e:#}"))
            });
            let _ = tx.send(result);
        });
        self.review.counting = Some((req, rx));
        self.flash = Some(format!(
            "counting pending pairs with probability {:.2}–{:.2}…",
            req.lo, req.hi
        ));
    }

    /// Take a finished band count and ask for confirmation. Returns true when
    /// the screen changed.
    pub fn poll_review(&mut self, wait: Option<Duration>) -> bool {
        let Some((req, rx)) = &self.review.counting else {
            return false;
        };
        let req = *req;
        let received = match wait {
            Some(w) => rx.recv_timeout(w).map_err(|e| match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => TryRecvError::Empty,
                std::sync::mpsc::RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
            }),
            None => rx.try_recv(),
        };
        let result = match received {
            Ok(r) => r,
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => Err("the count stopped unexpectedly".into()),
        };
        self.review.counting = None;
        let band = format!("{:.2}–{:.2}", req.lo, req.hi);
        match result {
            Ok(0) => self.flash = Some(format!("no pending pair has a probability in {band}")),
            Ok(n) if self.mode == Mode::Normal => {
                self.flash = None;
                self.mode = Mode::Confirm {
                    prompt: format!(
                        "{} {n} pending pair(s) with probability {band}? Each is one decision; u undoes the latest.",
                        req.verb()
                    ),
                    on_yes: Pending::Band(req),
                };
            }
            Ok(_) => self.flash = Some("bulk decision dropped: another dialog was open".into()),
            Err(e) => self.flash = Some(format!("cannot count the band: {e}")),
        }
        true
    }
}

/// "1 record", "16 records".
pub fn records(n: u64) -> String {
    if n == 1 {
        "1 record".into()
    } else {
        format!("{n} records")
    }
}

/// What approving the pair does to the customers.
pub fn merge_preview(d: &CandidateDetail) -> String {
    if d.left_customer == d.right_customer {
        format!(
            "already one customer: {} ({})",
            d.left_customer,
            records(d.left_records)
        )
    } else {
        format!(
            "{} ({}) + {} ({}) → one customer of {}",
            d.left_customer,
            records(d.left_records),
            d.right_customer,
            records(d.right_records),
            records(d.left_records + d.right_records)
        )
    }
}

/// The next value after `current` in `values`, then back to none.
fn cycle(values: &[&String], current: Option<&String>) -> Option<String> {
    match current.and_then(|c| values.iter().position(|v| *v == c)) {
        None => values.first().map(|v| (*v).clone()),
        Some(i) => values.get(i + 1).map(|v| (*v).clone()),
    }
}
