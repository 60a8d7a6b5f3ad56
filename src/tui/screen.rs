//! The contract between the app and its screens (one component per tab, in
//! `screens/`). A screen owns its state; the app turns keys into
//! [`Action`]s with the screen's [`Scope`], calls [`Screen::update`], and
//! applies the [`Effect`]s the screen asked for: a message, a popup, a job,
//! a jump to another screen. Drawing only reads state ([`Screen::draw`]).
//! Screens read the database only through the read-side queries
//! (`crate::read`, `crate::store`, `steward`); long reads and every write run
//! on worker threads or as jobs.

use crate::tui::app::{InputKind, Mode, Tab};
use crate::tui::jobs::{Job, JobKind};
use crate::tui::keymap::{Action, Scope};
use crate::workspace::Workspace;
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::Rect;
use rusqlite::Connection;

/// A jump from one screen to another (the app keeps the trail for `b`).
#[derive(Debug, Clone, PartialEq)]
pub enum Jump {
    /// Customers: this customer selected.
    Customer(String),
    /// Review: the pending pairs of this customer.
    PairsOf(String),
    /// Customers: the members of this segment filter.
    Members(String),
}

/// What a screen asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Flash(String),
    Open(Mode),
    Start(JobKind),
    Goto(Tab, Option<Jump>),
}

/// What a screen may read and ask for while it updates.
pub struct Ctx<'a> {
    pub conn: &'a Connection,
    pub ws: &'a Workspace,
    /// Table rows that fit on screen.
    pub viewport: usize,
    /// The running job, if any.
    pub job: Option<&'a JobKind>,
    /// The reporting currency (ISO code) money is shown in.
    pub currency: &'a str,
    pub effects: Vec<Effect>,
}

impl<'a> Ctx<'a> {
    pub fn flash(&mut self, msg: impl Into<String>) {
        self.effects.push(Effect::Flash(msg.into()));
    }
    pub fn open(&mut self, mode: Mode) {
        self.effects.push(Effect::Open(mode));
    }
    /// Open a text input holding `text`.
    pub fn input(&mut self, kind: InputKind, text: &str) {
        self.open(Mode::input(kind, text));
    }
    pub fn detail(&mut self, title: String, body: String) {
        self.open(Mode::Detail {
            title,
            body,
            scroll: 0,
        });
    }
    pub fn start(&mut self, job: JobKind) {
        self.effects.push(Effect::Start(job));
    }
    pub fn goto(&mut self, tab: Tab, jump: Option<Jump>) {
        self.effects.push(Effect::Goto(tab, jump));
    }
    /// Show a read error instead of failing the screen.
    pub fn report(&mut self, result: Result<()>) {
        if let Err(e) = result {
            self.flash(format!("cannot read the database: {e:#}"));
        }
    }
}

/// What a screen may read while it draws.
pub struct View<'a> {
    pub ws: &'a Workspace,
    pub job: Option<&'a Job>,
    pub currency: &'a str,
}

/// One screen of the workbench.
pub trait Screen {
    /// Which key bindings apply.
    fn scope(&self) -> Scope;
    /// Apply one action (never a popup's: those are the app's).
    fn update(&mut self, action: Action, cx: &mut Ctx);
    /// Re-read what the screen shows (on entry, after jobs, on `F`).
    fn refresh(&mut self, cx: &mut Ctx) -> Result<()>;
    /// Esc: clear the screen's filters. True when something was cleared.
    fn clear(&mut self, _cx: &mut Ctx) -> bool {
        false
    }
    /// A text input of this screen was submitted.
    fn submit(&mut self, _kind: InputKind, _text: &str, _cx: &mut Ctx) {}
    /// A text input of this screen changed (search as people type).
    fn typed(&mut self, _kind: InputKind, _text: &str, _cx: &mut Ctx) {}
    /// Take results of the screen's worker threads. True when it changed.
    fn poll(&mut self, _cx: &mut Ctx) -> bool {
        false
    }
    /// Waiting on a worker (the app then wakes more often).
    fn waiting(&self) -> bool {
        false
    }
    /// Arrive from a jump.
    fn arrive(&mut self, _jump: &Jump, _cx: &mut Ctx) {}
    /// The terminal's table height changed.
    fn resize(&mut self, _cx: &mut Ctx) {}
    fn draw(&self, frame: &mut Frame, area: Rect, view: &View);
}
