//! One table of key bindings drives key handling, the `?` help overlay and
//! the status-bar hints, so help never drifts from the bindings.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Everything a user can ask for. Keys become actions; only
/// [`crate::tui::app::App::update`] changes state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextTab,
    PrevTab,
    Tab(usize),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Left,
    Right,
    Open,
    Back,
    Help,
    Search,
    Palette,
    RunStep,
    RunAll,
    ReloadSource,
    Cancel,
    CycleSource,
    CycleReason,
    ClearFilters,
    Refresh,
    /// Text input (search, palette).
    Char(char),
    Backspace,
    Submit,
    /// Answer to a confirmation dialog.
    Confirm(bool),
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Pipeline,
    Rejects,
}

impl Scope {
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::Pipeline => "Pipeline",
            Scope::Rejects => "Rejects",
        }
    }
}

pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [KeyCode],
    pub label: &'static str,
    pub help: &'static str,
    pub action: Action,
    /// Shown in the status bar.
    pub hint: bool,
}

const fn b(
    scope: Scope,
    keys: &'static [KeyCode],
    label: &'static str,
    help: &'static str,
    action: Action,
    hint: bool,
) -> Binding {
    Binding {
        scope,
        keys,
        label,
        help,
        action,
        hint,
    }
}

use KeyCode::*;
use Scope::*;

pub const BINDINGS: &[Binding] = &[
    b(Global, &[Char('q')], "q", "quit", Action::Quit, true),
    b(Global, &[Char('?')], "?", "help", Action::Help, true),
    b(Global, &[Tab], "Tab", "next screen", Action::NextTab, false),
    b(
        Global,
        &[BackTab],
        "S-Tab",
        "previous screen",
        Action::PrevTab,
        false,
    ),
    b(
        Global,
        &[Char('1')],
        "1",
        "Pipeline screen",
        Action::Tab(0),
        false,
    ),
    b(
        Global,
        &[Char('2')],
        "2",
        "Rejects screen",
        Action::Tab(1),
        false,
    ),
    b(
        Global,
        &[Char('j'), Down],
        "j/↓",
        "down",
        Action::Down,
        false,
    ),
    b(Global, &[Char('k'), Up], "k/↑", "up", Action::Up, false),
    b(
        Global,
        &[PageDown],
        "PgDn",
        "page down",
        Action::PageDown,
        false,
    ),
    b(Global, &[PageUp], "PgUp", "page up", Action::PageUp, false),
    b(
        Global,
        &[Char('g'), Home],
        "g/Home",
        "first row",
        Action::Top,
        false,
    ),
    b(
        Global,
        &[Char('G'), End],
        "G/End",
        "last row",
        Action::Bottom,
        false,
    ),
    b(
        Global,
        &[Enter],
        "Enter",
        "open details",
        Action::Open,
        true,
    ),
    b(Global, &[Esc], "Esc", "back / close", Action::Back, false),
    b(
        Global,
        &[Char(':')],
        ":",
        "command palette",
        Action::Palette,
        true,
    ),
    b(
        Global,
        &[Char('x')],
        "x",
        "cancel the running job",
        Action::Cancel,
        false,
    ),
    b(
        Global,
        &[Char('F')],
        "F",
        "refresh from the database",
        Action::Refresh,
        false,
    ),
    b(
        Pipeline,
        &[Char('h'), KeyCode::Left],
        "h/l",
        "sources / steps pane",
        Action::Left,
        false,
    ),
    b(
        Pipeline,
        &[Char('l'), KeyCode::Right],
        "",
        "",
        Action::Right,
        false,
    ),
    b(
        Pipeline,
        &[Char('r')],
        "r",
        "run the selected step",
        Action::RunStep,
        true,
    ),
    b(
        Pipeline,
        &[Char('R')],
        "R",
        "run all remaining steps",
        Action::RunAll,
        true,
    ),
    b(
        Pipeline,
        &[Char('L')],
        "L",
        "reload the selected source",
        Action::ReloadSource,
        true,
    ),
    b(
        Rejects,
        &[Char('/')],
        "/",
        "search original rows and details",
        Action::Search,
        true,
    ),
    b(
        Rejects,
        &[Char('e')],
        "e",
        "filter by next reason",
        Action::CycleReason,
        true,
    ),
    b(
        Rejects,
        &[Char('s')],
        "s",
        "filter by next source",
        Action::CycleSource,
        true,
    ),
    b(
        Rejects,
        &[Char('c')],
        "c",
        "clear filters",
        Action::ClearFilters,
        true,
    ),
];

/// The action bound to `key` in `scope` (scope bindings win over global).
pub fn action_for(scope: Scope, key: &KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == Char('c') {
        return Some(Action::Quit);
    }
    let matches = |bind: &&Binding| bind.keys.contains(&key.code);
    BINDINGS
        .iter()
        .filter(|bind| bind.scope == scope)
        .find(matches)
        .or_else(|| BINDINGS.iter().filter(|b| b.scope == Global).find(matches))
        .map(|bind| bind.action.clone())
}

/// Bindings to list in the help overlay, grouped by scope.
pub fn help_rows() -> Vec<(Scope, &'static str, &'static str)> {
    [Global, Pipeline, Rejects]
        .iter()
        .flat_map(|scope| {
            BINDINGS
                .iter()
                .filter(move |bind| bind.scope == *scope && !bind.label.is_empty())
                .map(|bind| (bind.scope, bind.label, bind.help))
        })
        .collect()
}

/// Status-bar hints for a screen.
pub fn hints(scope: Scope) -> Vec<(&'static str, &'static str)> {
    BINDINGS
        .iter()
        .filter(|bind| bind.hint && (bind.scope == scope))
        .chain(
            BINDINGS
                .iter()
                .filter(|bind| bind.hint && bind.scope == Global),
        )
        .map(|bind| (bind.label, bind.help))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn scope_bindings_then_global() {
        assert_eq!(action_for(Pipeline, &key(Char('r'))), Some(Action::RunStep));
        assert_eq!(action_for(Rejects, &key(Char('r'))), None);
        assert_eq!(action_for(Rejects, &key(Char('j'))), Some(Action::Down));
        assert_eq!(action_for(Rejects, &key(Down)), Some(Action::Down));
        assert_eq!(action_for(Pipeline, &key(Char('?'))), Some(Action::Help));
        assert_eq!(
            action_for(Rejects, &KeyEvent::new(Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }

    #[test]
    fn help_lists_every_labelled_binding_once() {
        let rows = help_rows();
        assert!(rows.iter().any(|r| r.1 == "?" && r.2 == "help"));
        assert!(rows.iter().any(|r| r.0 == Rejects && r.1 == "/"));
        assert_eq!(
            rows.len(),
            BINDINGS.iter().filter(|b| !b.label.is_empty()).count()
        );
    }
}
