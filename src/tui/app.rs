//! The app: it routes keys to the current screen (one component per tab, in
//! `screens/`), owns the popups (help, details, text inputs, confirmations),
//! the command palette, the running job and the trail of jumps between
//! screens. Keys become [`Action`]s; screens change their own state in
//! `update` and ask for effects; drawing (`ui.rs`) only reads state.
//!
//! No key is lost: keys pressed while a decision or an undo is being saved
//! wait in a queue and are applied in order once it is saved; a decision
//! asked for during a pipeline run is refused with a message; and no key
//! acts behind the "terminal too small" notice.

use crate::store;
use crate::tui::input::{Edit, History, LineEdit};
use crate::tui::jobs::{Job, JobEvent, JobKind};
use crate::tui::keymap::{self, Action, Scope};
use crate::tui::palette::{self, Completion};
use crate::tui::screen::{Ctx, Effect, Screen, View};
use crate::workspace::Workspace;
use anyhow::Result;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use rusqlite::Connection;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use crate::tui::screens::analytics::AnalyticsView;
pub use crate::tui::screens::audit::AuditView;
pub use crate::tui::screens::customers::CustomersView;
pub use crate::tui::screens::pipeline::{PipelinePane, PipelineView, SourceRow, StepRow};
pub use crate::tui::screens::rejects::RejectsView;
pub use crate::tui::screens::review::{BandRequest, REVIEW_CHUNK, ReviewView};
pub use crate::tui::screens::rules::{RulesPane, RulesView};

/// The screens (tabs), in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tab {
    Pipeline,
    Rejects,
    Rules,
    Review,
    Customers,
    Analytics,
    Audit,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Pipeline,
        Tab::Rejects,
        Tab::Rules,
        Tab::Review,
        Tab::Customers,
        Tab::Analytics,
        Tab::Audit,
    ];
    pub fn title(self) -> &'static str {
        match self {
            Tab::Pipeline => "Pipeline",
            Tab::Rejects => "Rejects",
            Tab::Rules => "Rules",
            Tab::Review => "Review",
            Tab::Customers => "Customers",
            Tab::Analytics => "Analytics",
            Tab::Audit => "Audit",
        }
    }
    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
    /// The tab a command word names ("review", "4").
    fn named(word: &str) -> Option<Tab> {
        Tab::ALL.iter().enumerate().find_map(|(i, t)| {
            (t.title().eq_ignore_ascii_case(word) || word == (i + 1).to_string()).then_some(*t)
        })
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
        edit: LineEdit,
    },
    /// A risky action waiting for a yes: the prompt, what it will do (a
    /// scrollable list) and the action.
    Confirm {
        prompt: String,
        body: Vec<String>,
        scroll: u16,
        on_yes: Pending,
    },
}

impl Mode {
    /// A text input holding `text`, the cursor at its end.
    pub fn input(kind: InputKind, text: &str) -> Mode {
        Mode::Input {
            kind,
            edit: LineEdit::new(text),
        }
    }

    pub fn confirm(prompt: String, body: Vec<String>, on_yes: Pending) -> Mode {
        Mode::Confirm {
            prompt,
            body,
            scroll: 0,
            on_yes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// Search the rejects (original rows and details).
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
    /// Narrow the rules and their examples.
    RulesSearch,
    /// Find pairs by record key, name or compared value (Review screen).
    ReviewSearch,
    /// Narrow the audit trail (as you type).
    AuditSearch,
}

impl InputKind {
    /// The screen whose input this is (None: the app's palette).
    fn tab(self) -> Option<Tab> {
        Some(match self {
            InputKind::Search => Tab::Rejects,
            InputKind::CustomerSearch => Tab::Customers,
            InputKind::Segment | InputKind::SegmentName => Tab::Analytics,
            InputKind::Reason { .. } | InputKind::Band | InputKind::ReviewSearch => Tab::Review,
            InputKind::RulesSearch => Tab::Rules,
            InputKind::AuditSearch => Tab::Audit,
            InputKind::Palette => return None,
        })
    }
}

/// What a confirmation does on yes.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    CancelJob,
    QuitDuringJob,
    /// Start this job (a split, a bulk decision, an export over a file).
    Start(JobKind),
    /// Save the segment over the one of this name.
    SaveSegment(String),
}

/// A screen context built from the app's fields (so a screen field can be
/// borrowed mutably beside it).
macro_rules! cx {
    ($app:ident) => {
        Ctx {
            conn: &$app.conn,
            ws: &$app.ws,
            viewport: $app.viewport,
            job: $app.job.as_ref().map(|j| &j.kind),
            currency: &$app.currency,
            effects: Vec::new(),
        }
    };
}

/// Keys waiting for a decision to be saved, at most.
const QUEUE_LIMIT: usize = 64;

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
    pub audit: AuditView,
    pub job: Option<Job>,
    /// The last finished job: (label, outcome).
    pub last_job: Option<(String, Result<String, String>)>,
    /// A short message for the status bar.
    pub flash: Option<String>,
    /// Table rows that fit on screen (kept in step with the terminal size).
    pub viewport: usize,
    /// The terminal's size (keys do nothing behind the too-small notice).
    pub size: (u16, u16),
    pub quit: bool,
    /// Keys pressed while a decision was being saved, to apply in order.
    pub queued: VecDeque<KeyEvent>,
    /// What each kind of input had typed into it this session.
    pub histories: HashMap<InputKind, History>,
    /// Screens left by a jump, to go back to with `b`.
    pub trail: Vec<Tab>,
    /// The reporting currency amounts are shown in.
    pub currency: String,
    /// The database's change counter when last read (another workbench or
    /// a CLI run changing it makes the screens refresh).
    data_version: i64,
    last_poll: Instant,
}

/// Rows of a table for a terminal of `height` lines: tabs (1), status bar
/// (2), table borders and header (3), filter line (1).
pub fn viewport_for(height: u16) -> usize {
    (height as usize).saturating_sub(7).max(1)
}

impl App {
    pub fn new(ws: Workspace, height: u16) -> Result<App> {
        let conn = store::open(&ws.db_path())?;
        let currency = crate::pipeline::standardise::orders::reporting_currency(&ws.rules_dir());
        let viewport = viewport_for(height);
        let mut app = App {
            ws,
            conn,
            tab: Tab::Pipeline,
            mode: Mode::Normal,
            pipeline: PipelineView::default(),
            rejects: RejectsView::new(viewport),
            rules: RulesView::default(),
            review: ReviewView::new(viewport),
            customers: CustomersView::default(),
            analytics: AnalyticsView::default(),
            audit: AuditView::new(viewport),
            job: None,
            last_job: None,
            flash: None,
            viewport,
            size: (u16::MAX, height),
            quit: false,
            queued: VecDeque::new(),
            histories: HashMap::new(),
            trail: Vec::new(),
            currency,
            data_version: 0,
            last_poll: Instant::now(),
        };
        app.data_version = store::data_version(&app.conn).unwrap_or(0);
        app.refresh()?;
        // The Rejects and Review screens keep their pages warm.
        app.with_screen(Tab::Rejects, |s, cx| s.refresh(cx))?;
        Ok(app)
    }

    pub fn scope(&self) -> Scope {
        self.screen(self.tab).scope()
    }

    fn screen(&self, tab: Tab) -> &dyn Screen {
        match tab {
            Tab::Pipeline => &self.pipeline,
            Tab::Rejects => &self.rejects,
            Tab::Rules => &self.rules,
            Tab::Review => &self.review,
            Tab::Customers => &self.customers,
            Tab::Analytics => &self.analytics,
            Tab::Audit => &self.audit,
        }
    }

    /// Run `f` on a screen with a context, then apply the effects it asked
    /// for.
    fn with_screen<T>(&mut self, tab: Tab, f: impl FnOnce(&mut dyn Screen, &mut Ctx) -> T) -> T {
        let mut cx = cx!(self);
        let screen: &mut dyn Screen = match tab {
            Tab::Pipeline => &mut self.pipeline,
            Tab::Rejects => &mut self.rejects,
            Tab::Rules => &mut self.rules,
            Tab::Review => &mut self.review,
            Tab::Customers => &mut self.customers,
            Tab::Analytics => &mut self.analytics,
            Tab::Audit => &mut self.audit,
        };
        let out = f(screen, &mut cx);
        let effects = std::mem::take(&mut cx.effects);
        for e in effects {
            self.apply(e);
        }
        out
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Flash(m) => self.flash = Some(m),
            Effect::Open(mode) => {
                if let Mode::Input { kind, .. } = &mode {
                    self.histories.entry(*kind).or_default().reset();
                }
                // A question replaces the message that led to it.
                if matches!(mode, Mode::Confirm { .. }) {
                    self.flash = None;
                }
                self.mode = mode;
            }
            Effect::Start(kind) => self.start_job(kind),
            Effect::Goto(tab, jump) => {
                if tab != self.tab {
                    self.trail.push(self.tab);
                }
                self.set_tab(tab);
                if let Some(j) = jump {
                    self.with_screen(tab, |s, cx| s.arrive(&j, cx));
                }
            }
        }
    }

    /// The view drawing reads.
    pub fn view(&self) -> View<'_> {
        View {
            ws: &self.ws,
            job: self.job.as_ref(),
            currency: &self.currency,
        }
    }

    /// Whether the terminal is too small to draw the workbench.
    pub fn too_small(&self) -> bool {
        self.size.0 < crate::tui::ui::MIN_WIDTH || self.size.1 < crate::tui::ui::MIN_HEIGHT
    }

    /// Turn a key into an action, given the current mode (text inputs
    /// handle their keys themselves: see [`App::handle_key`]).
    pub fn key_to_action(&self, key: &KeyEvent) -> Option<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let ctrl_c = ctrl && key.code == KeyCode::Char('c');
        match &self.mode {
            Mode::Normal => keymap::action_for(self.scope(), key),
            _ if ctrl_c => Some(Action::Quit),
            _ if ctrl || key.modifiers.contains(KeyModifiers::ALT) => None,
            Mode::Help { .. } | Mode::Detail { .. } => match key.code {
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::Enter => {
                    Some(Action::Back)
                }
                KeyCode::Char('j') | KeyCode::Down => Some(Action::Down),
                KeyCode::Char('k') | KeyCode::Up => Some(Action::Up),
                KeyCode::PageDown | KeyCode::Char(' ') => Some(Action::PageDown),
                KeyCode::PageUp => Some(Action::PageUp),
                KeyCode::Char('g') | KeyCode::Home => Some(Action::Top),
                KeyCode::Char('G') | KeyCode::End => Some(Action::Bottom),
                _ => None,
            },
            Mode::Input { .. } => match key.code {
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
                KeyCode::Char('j') | KeyCode::Down => Some(Action::Down),
                KeyCode::Char('k') | KeyCode::Up => Some(Action::Up),
                KeyCode::PageDown | KeyCode::Char(' ') => Some(Action::PageDown),
                KeyCode::PageUp => Some(Action::PageUp),
                _ => None,
            },
        }
    }

    /// Handle one key. Returns true when the screen changed.
    pub fn handle_key(&mut self, key: KeyEvent) -> bool {
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if self.too_small() {
            // Only quitting works behind the "too small" notice.
            if ctrl_c || (key.code == KeyCode::Char('q') && key.modifiers.is_empty()) {
                self.update(Action::Quit);
                return true;
            }
            return false;
        }
        if self.job.as_ref().is_some_and(|j| j.kind.is_decision()) && !ctrl_c {
            if self.queued.len() >= QUEUE_LIMIT {
                self.flash = Some(format!(
                    "{} keys are waiting for the decision to be saved: this one is dropped",
                    QUEUE_LIMIT
                ));
            } else {
                self.queued.push_back(key);
                self.flash = Some(format!(
                    "saving the decision… {} waiting (applied in order)",
                    crate::tui::format::plural(self.queued.len() as u64, "key", "keys")
                ));
            }
            return true;
        }
        self.apply_key(key)
    }

    fn apply_key(&mut self, key: KeyEvent) -> bool {
        if let Mode::Input { .. } = self.mode {
            return self.edit_input(key);
        }
        match self.key_to_action(&key) {
            Some(action) => {
                self.update(action);
                true
            }
            None => false,
        }
    }

    /// Apply the keys that waited for a decision, until one starts a job.
    fn replay_queued(&mut self) {
        while self.job.is_none()
            && let Some(key) = self.queued.pop_front()
        {
            self.apply_key(key);
        }
    }

    /// A key in a text input: editing, history, completion, submit.
    fn edit_input(&mut self, key: KeyEvent) -> bool {
        let Mode::Input { kind, edit } = &mut self.mode else {
            return false;
        };
        let kind = *kind;
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                return true;
            }
            _ if ctrl_c => {
                self.mode = Mode::Normal;
                return true;
            }
            KeyCode::Enter => {
                let text = edit.text().to_string();
                self.histories.entry(kind).or_default().push(&text);
                self.mode = Mode::Normal;
                self.flash = None;
                self.submit(kind, &text);
                return true;
            }
            KeyCode::Tab if kind == InputKind::Palette => {
                let line = edit.text().to_string();
                self.complete(&line);
                return true;
            }
            _ => {}
        }
        let changed = match edit.key(&key) {
            Edit::Changed => true,
            Edit::Moved => false,
            Edit::Older => {
                self.histories.entry(kind).or_default().older(edit);
                true
            }
            Edit::Newer => {
                self.histories.entry(kind).or_default().newer(edit);
                true
            }
            Edit::Ignored => return false,
        };
        if changed {
            let text = edit.text().to_string();
            if let Some(tab) = kind.tab() {
                self.flash = None;
                self.with_screen(tab, |s, cx| s.typed(kind, &text, cx));
            }
        }
        true
    }

    fn submit(&mut self, kind: InputKind, text: &str) {
        match kind.tab() {
            None => self.run_command(text.trim()),
            Some(tab) => self.with_screen(tab, |s, cx| s.submit(kind, text, cx)),
        }
    }

    /// Tab in the palette: complete the word, or list the options.
    fn complete(&mut self, line: &str) {
        let steps: Vec<String> = crate::pipeline::STEPS
            .iter()
            .filter(|s| s.available)
            .map(|s| s.name.to_string())
            .collect();
        let sources: Vec<String> = self.ws.sources.iter().map(|s| s.name.clone()).collect();
        let reasons: Vec<String> = self.rejects.reasons().into_iter().cloned().collect();
        let values = |prefix: &str| -> Vec<String> {
            match prefix {
                "run" => steps.clone(),
                "reload" => sources.clone(),
                "rejects" => reasons.clone(),
                "export" => vec!["profiles".into(), "events".into()],
                _ => Vec::new(),
            }
        };
        match palette::complete(line, &values) {
            Completion::None => self.flash = Some(format!("nothing completes {line:?}")),
            Completion::One(l) => self.mode = Mode::input(InputKind::Palette, &l),
            Completion::Many(l, options) => {
                self.flash = Some(options.join(" · "));
                self.mode = Mode::input(InputKind::Palette, &l);
            }
        }
    }

    /// The terminal was resized.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.size = (width, height);
        self.viewport = viewport_for(height);
        for tab in Tab::ALL {
            self.with_screen(tab, |s, cx| s.resize(cx));
        }
    }

    /// Apply an action. The only place the app's state changes.
    pub fn update(&mut self, action: Action) {
        self.flash = None;
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.update_normal(action),
            Mode::Help { scroll } => {
                let last = crate::tui::ui::help_lines(self.scope()).len() as u16;
                self.mode = match self.scroll(action, scroll, last) {
                    Some(scroll) => Mode::Help { scroll },
                    None => Mode::Normal,
                }
            }
            Mode::Detail {
                title,
                body,
                scroll,
            } => {
                let last = body.lines().count() as u16;
                if let Some(scroll) = self.scroll(action, scroll, last) {
                    self.mode = Mode::Detail {
                        title,
                        body,
                        scroll,
                    };
                }
            }
            // A text input takes its keys itself (`edit_input`): an action
            // can only close it.
            Mode::Input { kind, edit } => match action {
                Action::Back | Action::Quit => {}
                _ => self.mode = Mode::Input { kind, edit },
            },
            Mode::Confirm {
                prompt,
                body,
                scroll,
                on_yes,
            } => match action {
                Action::Confirm(true) => self.confirmed(on_yes),
                Action::Confirm(false) => {}
                Action::Quit => self.quit = true,
                a => {
                    // The list's height is the popup's: scroll to its last
                    // line and let drawing keep the list full.
                    let last = body.len() as u16 + self.viewport as u16 - 1;
                    let scroll = self
                        .scroll(a, scroll, last)
                        .unwrap_or(scroll)
                        .min(body.len().saturating_sub(1) as u16);
                    self.mode = Mode::Confirm {
                        prompt,
                        body,
                        scroll,
                        on_yes,
                    }
                }
            },
        }
    }

    /// Scrolling in a popup of `lines` lines; None closes it.
    fn scroll(&mut self, action: Action, scroll: u16, lines: u16) -> Option<u16> {
        let page = self.viewport as u16;
        let max = lines.saturating_sub(page);
        Some(match action {
            Action::Back | Action::Help => return None,
            Action::Quit => {
                self.quit = true;
                return None;
            }
            Action::Down => (scroll + 1).min(max),
            Action::Up => scroll.saturating_sub(1),
            Action::PageDown => (scroll + page).min(max),
            Action::PageUp => scroll.saturating_sub(page),
            Action::Top => 0,
            Action::Bottom => max,
            _ => scroll,
        })
    }

    fn confirmed(&mut self, on_yes: Pending) {
        match on_yes {
            Pending::CancelJob => self.cancel_job(),
            Pending::QuitDuringJob => {
                self.cancel_job();
                self.quit = true;
            }
            Pending::Start(kind) => {
                if let JobKind::Decide { left, right, .. } = &kind
                    && let Some(row) = self.review.list.selected_row()
                    && (&row.left_key, &row.right_key) == (left, right)
                {
                    self.review.deciding = Some(row.candidate_id);
                }
                self.start_job(kind)
            }
            Pending::SaveSegment(name) => {
                let mut cx = cx!(self);
                self.analytics.save_confirmed(&name, &mut cx);
                let effects = std::mem::take(&mut cx.effects);
                self.apply_all(effects);
            }
        }
    }

    fn apply_all(&mut self, effects: Vec<Effect>) {
        for e in effects {
            self.apply(e);
        }
    }

    fn update_normal(&mut self, action: Action) {
        match action {
            Action::Quit => {
                if self.job.is_some() {
                    self.mode = Mode::confirm(
                        "A job is running. Quit and roll it back?".into(),
                        Vec::new(),
                        Pending::QuitDuringJob,
                    );
                } else {
                    self.quit = true;
                }
            }
            Action::Help => self.mode = Mode::Help { scroll: 0 },
            Action::NextTab => self.set_tab(Tab::ALL[(self.tab.index() + 1) % Tab::ALL.len()]),
            Action::PrevTab => {
                self.set_tab(Tab::ALL[(self.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len()])
            }
            Action::Tab(i) => match Tab::ALL.get(i) {
                Some(t) => self.set_tab(*t),
                None => self.flash = Some(format!("there is no screen {}", i + 1)),
            },
            Action::Palette => {
                self.histories
                    .entry(InputKind::Palette)
                    .or_default()
                    .reset();
                self.mode = Mode::input(InputKind::Palette, "");
            }
            Action::Cancel => self.ask_cancel(),
            Action::Refresh => {
                if let Err(e) = self.refresh() {
                    self.flash = Some(format!("refresh failed: {e:#}"));
                } else {
                    self.flash = Some("read again from the database".into());
                }
            }
            Action::RunAll => self.start_job(JobKind::All),
            Action::JumpBack => match self.trail.pop() {
                Some(tab) => self.set_tab(tab),
                None => self.flash = Some("no jump to go back from".into()),
            },
            Action::Back => {
                let tab = self.tab;
                self.with_screen(tab, |s, cx| s.clear(cx));
            }
            other => {
                let tab = self.tab;
                self.with_screen(tab, |s, cx| s.update(other, cx));
            }
        }
    }

    fn ask_cancel(&mut self) {
        if self.job.as_ref().is_some_and(|j| j.kind.is_decision()) {
            self.flash = Some("a decision cannot be cancelled; u undoes it".into());
        } else if self.job.as_ref().is_some_and(|j| !j.cancelling()) {
            self.mode = Mode::confirm(
                "Cancel the running job? Its work is rolled back.".into(),
                Vec::new(),
                Pending::CancelJob,
            );
        } else {
            self.flash = Some("no job is running".into());
        }
    }

    fn set_tab(&mut self, tab: Tab) {
        self.tab = tab;
        if let Err(e) = self.refresh() {
            self.flash = Some(format!("refresh failed: {e:#}"));
        }
    }

    /// Re-read what the screens show from SQLite (after jobs, on tab
    /// change): the Pipeline screen (its steps' states) and the current one.
    pub fn refresh(&mut self) -> Result<()> {
        self.data_version = store::data_version(&self.conn).unwrap_or(self.data_version);
        self.with_screen(Tab::Pipeline, |s, cx| s.refresh(cx))?;
        let tab = self.tab;
        if tab != Tab::Pipeline {
            self.with_screen(tab, |s, cx| s.refresh(cx))?;
        }
        Ok(())
    }

    /// Every second or so: when another connection (a second workbench, a
    /// CLI run) committed, read the screens again. True when it did.
    pub fn poll_changes(&mut self) -> bool {
        if self.job.is_some() || self.last_poll.elapsed() < Duration::from_millis(900) {
            return false;
        }
        self.last_poll = Instant::now();
        let now = store::data_version(&self.conn).unwrap_or(self.data_version);
        if now == self.data_version || self.mode != Mode::Normal {
            return false;
        }
        if let Err(e) = self.refresh() {
            self.flash = Some(format!("refresh failed: {e:#}"));
        } else {
            self.flash = Some("the workspace changed elsewhere: screens read again".into());
        }
        true
    }

    /// Start a job unless one is running.
    fn start_job(&mut self, kind: JobKind) {
        if let Some(job) = &self.job {
            self.flash = Some(match (job.kind.is_decision(), kind.is_decision()) {
                (true, _) => format!("{} is still being saved; try again", job.kind.label()),
                (false, true) => format!(
                    "{} is running: decisions wait until it ends (x cancels it)",
                    job.kind.label()
                ),
                (false, false) => format!("{} is still running (x cancels it)", job.kind.label()),
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
    }

    fn cancel_job(&mut self) {
        if let Some(job) = &self.job {
            job.request_cancel();
            self.flash = Some(format!("cancelling {}…", job.kind.label()));
        }
    }

    /// Take results of the screens' worker threads (searches, previews,
    /// column reads). True when something changed.
    pub fn poll_workers(&mut self) -> bool {
        let mut changed = false;
        for tab in Tab::ALL {
            let got = self.with_screen(tab, |s, cx| s.poll(cx));
            // A result for the input being typed: say it for the text now.
            if got
                && let Mode::Input { kind, edit } = &self.mode
                && kind.tab() == Some(tab)
            {
                let (kind, text) = (*kind, edit.text().to_string());
                self.with_screen(tab, |s, cx| s.typed(kind, &text, cx));
            }
            changed |= got;
        }
        changed
    }

    /// Some screen waits on a worker (the loop then wakes more often).
    pub fn waiting(&self) -> bool {
        Tab::ALL.iter().any(|t| self.screen(*t).waiting())
    }

    /// Wait up to `wait` for a rejects search (tests).
    pub fn poll_search(&mut self, wait: Option<Duration>) -> bool {
        let mut cx = cx!(self);
        let changed = self.rejects.poll_search(wait, &mut cx);
        let effects = std::mem::take(&mut cx.effects);
        self.apply_all(effects);
        changed
    }

    /// Wait up to `wait` for a bulk decision's preview (tests).
    pub fn poll_review(&mut self, wait: Option<Duration>) -> bool {
        let mut cx = cx!(self);
        let changed = self.review.poll_band(wait, &mut cx);
        let effects = std::mem::take(&mut cx.effects);
        self.apply_all(effects);
        changed
    }

    /// Take job events (waiting up to `wait` for the first). Returns true
    /// when something changed on screen.
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
                    self.finish_job(result);
                    break;
                }
                _ => {}
            }
        }
        true
    }

    fn finish_job(&mut self, result: Result<String, String>) {
        let Some((kind, cancelled)) = self.job.take().map(|j| (j.kind.clone(), j.cancelling()))
        else {
            return;
        };
        let label = kind.label();
        self.flash = Some(match &result {
            // A decision's outcome says what it did.
            Ok(m) if kind.is_decision() => m.clone(),
            Ok(m) => format!("{label}: {m}"),
            Err(e) if cancelled => format!("{label} cancelled: {e}"),
            Err(e) => format!("{label} failed: {e}"),
        });
        let decided = self.review.deciding.take().filter(|_| result.is_ok());
        self.last_job = Some((label, result));
        if kind.is_decision() {
            // The queue, the counts and the customers changed.
            self.review.detail = None;
        }
        // A confirmation about the job (cancel, quit) has nothing to ask now.
        if let Mode::Confirm {
            on_yes: Pending::CancelJob,
            ..
        } = self.mode
        {
            self.mode = Mode::Normal;
        }
        if let Mode::Confirm {
            on_yes: Pending::QuitDuringJob,
            ..
        } = self.mode
        {
            self.mode = Mode::Normal;
        }
        let flash = self.flash.clone();
        if let Err(e) = self.refresh() {
            self.flash = Some(format!("refresh failed: {e:#}"));
        } else {
            self.flash = flash;
        }
        if let Some(id) = decided {
            let mut cx = cx!(self);
            self.review.after_decision(id, &mut cx);
            let effects = std::mem::take(&mut cx.effects);
            self.apply_all(effects);
        }
        self.replay_queued();
    }

    /// Block until the running job and the keys queued behind it are done
    /// (tests, quitting).
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

    /// Wait for the segment columns a worker reads (tests).
    pub fn wait_for_columns(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.analytics.loading.is_some() {
            if Instant::now() > deadline {
                return false;
            }
            if !self.poll_workers() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        true
    }

    /// `:` commands (command words in any case; Tab completes them).
    fn run_command(&mut self, text: &str) {
        let words = palette::normalise(text);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            [] => {}
            ["q"] | ["quit"] => self.update_normal(Action::Quit),
            ["help"] => self.mode = Mode::Help { scroll: 0 },
            [word] if Tab::named(word).is_some() => {
                if let Some(t) = Tab::named(word) {
                    self.set_tab(t)
                }
            }
            ["segment", "save", name @ ..] if !name.is_empty() => {
                let name = name.join(" ");
                self.with_screen(Tab::Analytics, |s, cx| {
                    s.submit(InputKind::SegmentName, &name, cx)
                })
            }
            ["segment", "export", rest @ ..] => {
                let out = rest.first().map(std::path::PathBuf::from);
                let mut cx = cx!(self);
                self.analytics.export_segment(out, false, &mut cx);
                let effects = std::mem::take(&mut cx.effects);
                self.apply_all(effects);
            }
            ["find", ..] => {
                let query = words[1..].join(" ");
                self.set_tab(Tab::Customers);
                self.with_screen(Tab::Customers, |s, cx| {
                    s.submit(InputKind::CustomerSearch, &query, cx)
                });
            }
            ["export", table, rest @ ..] => self.export_command(table, rest),
            ["rejects", reason] => {
                self.set_tab(Tab::Rejects);
                let reason = reason.to_string();
                let mut cx = cx!(self);
                self.rejects.filter_reason(&reason, &mut cx);
                let effects = std::mem::take(&mut cx.effects);
                self.apply_all(effects);
            }
            ["load"] | ["run", "load"] => self.start_job(JobKind::Step("stage".into())),
            ["run", "all"] | ["run"] => self.start_job(JobKind::All),
            ["run", step] => match crate::pipeline::step(step) {
                Some(s) if s.available => self.start_job(JobKind::Step(s.name.into())),
                Some(s) => {
                    self.flash = Some(format!("{} is not available in this build yet", s.title))
                }
                None => self.flash = Some(format!("unknown step {step:?} (Tab lists them)")),
            },
            ["reload", source] => {
                if self.ws.source(source).is_some() {
                    self.start_job(JobKind::Source(source.to_string()));
                } else {
                    self.flash = Some(format!("no source named {source:?} (Tab lists them)"));
                }
            }
            ["undo"] => self.start_job(JobKind::Undo),
            ["refresh"] => self.update_normal(Action::Refresh),
            ["cancel"] => self.update_normal(Action::Cancel),
            _ => {
                self.flash = Some(format!(
                    "unknown command {text:?}: Tab completes, ? lists every command"
                ))
            }
        }
    }

    fn export_command(&mut self, table: &str, rest: &[&str]) {
        let table = match table {
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
}
