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
    ToggleUnmapped,
    /// Review: approve / reject the selected pair at once.
    Approve,
    Reject,
    /// Review: approve / reject with a typed reason.
    ApproveWithReason,
    RejectWithReason,
    /// Review: next pair without deciding.
    Skip,
    /// Review: undo the latest decision.
    Undo,
    /// Review: decide every pending pair of a probability band.
    Bulk,
    CycleFilter,
    ToggleOrder,
    /// Analytics: day / week / month.
    CycleGrain,
    /// Analytics: the funnel's period.
    CyclePeriod,
    /// Analytics: lifecycle mix now / month by month.
    ToggleLifecycle,
    /// Analytics: save the segment / export it.
    SaveSegment,
    ExportSegment,
    /// Customers: show / hide anonymous visitors.
    ToggleAnonymous,
    /// Customers: timeline of all events / web / orders / lifecycle.
    CycleTimeline,
    /// Review: to the left / right record's customer.
    JumpLeft,
    JumpRight,
    /// Customers: to the customer's pending pairs; Analytics: to the
    /// segment's members.
    JumpPairs,
    /// Back along the trail of jumps.
    JumpBack,
    /// Review: scroll the candidate pane (J down +1, K up -1).
    ScrollDetail(i8),
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
    Rules,
    Review,
    Customers,
    Analytics,
    Audit,
}

impl Scope {
    /// The screens' scopes, in tab order.
    pub const SCREENS: [Scope; 7] = [
        Scope::Pipeline,
        Scope::Rejects,
        Scope::Rules,
        Scope::Review,
        Scope::Customers,
        Scope::Analytics,
        Scope::Audit,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::Pipeline => "Pipeline",
            Scope::Rejects => "Rejects",
            Scope::Rules => "Rules",
            Scope::Review => "Review",
            Scope::Customers => "Customers",
            Scope::Analytics => "Analytics",
            Scope::Audit => "Audit",
        }
    }
}

pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [KeyCode],
    pub label: &'static str,
    pub help: &'static str,
    pub action: Action,
    /// Short text for the status bar ("" = not shown there).
    pub hint: &'static str,
}

const fn b(
    scope: Scope,
    keys: &'static [KeyCode],
    label: &'static str,
    help: &'static str,
    action: Action,
    hint: &'static str,
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

#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    b(Global, &[Char('q')], "q", "quit", Action::Quit, "quit"),
    b(Global, &[Char('?')], "?", "help: keys of this screen first, then every command", Action::Help, "help"),
    b(Global, &[Tab], "Tab", "next screen", Action::NextTab, ""),
    b(Global, &[BackTab], "S-Tab", "previous screen", Action::PrevTab, ""),
    b(Global, &[Char('1')], "1…7", "Pipeline, Rejects, Rules, Review, Customers, Analytics, Audit", Action::Tab(0), ""),
    b(Global, &[Char('2')], "", "", Action::Tab(1), ""),
    b(Global, &[Char('3')], "", "", Action::Tab(2), ""),
    b(Global, &[Char('4')], "", "", Action::Tab(3), ""),
    b(Global, &[Char('5')], "", "", Action::Tab(4), ""),
    b(Global, &[Char('6')], "", "", Action::Tab(5), ""),
    b(Global, &[Char('7')], "", "", Action::Tab(6), ""),
    b(Global, &[Char('j'), Down], "j/↓ k/↑", "down / up", Action::Down, ""),
    b(Global, &[Char('k'), Up], "", "", Action::Up, ""),
    b(Global, &[PageDown], "PgDn/PgUp", "page down / up", Action::PageDown, ""),
    b(Global, &[PageUp], "", "", Action::PageUp, ""),
    b(Global, &[Char('g'), Home], "g/Home", "first row", Action::Top, ""),
    b(Global, &[Char('G'), End], "G/End", "last row", Action::Bottom, ""),
    b(Global, &[Enter], "Enter", "open details", Action::Open, "details"),
    b(Global, &[Esc], "Esc", "close / clear filters", Action::Back, ""),
    b(Global, &[Char('b'), Backspace], "b", "back along the trail of jumps", Action::JumpBack, ""),
    b(Global, &[Char(':')], ":", "command palette (Tab completes)", Action::Palette, "commands"),
    b(Global, &[Char('R')], "R", "run the steps that are out of date", Action::RunAll, "run"),
    b(Global, &[Char('x')], "x", "cancel the running job", Action::Cancel, ""),
    b(Global, &[Char('F')], "F", "refresh from the database", Action::Refresh, ""),
    b(Pipeline, &[Char('h'), Left], "h/l", "sources / steps pane", Action::Left, "pane"),
    b(Pipeline, &[Char('l'), Right], "", "", Action::Right, ""),
    b(Pipeline, &[Char(' ')], "Space", "run the selected step (Sources: reload the source)", Action::RunStep, "run step"),
    b(Pipeline, &[Char('L')], "L", "reload the selected source", Action::ReloadSource, "reload"),
    b(Rejects, &[Char('/')], "/", "search original rows and details", Action::Search, "search"),
    b(Rejects, &[Char('f')], "f", "filter by the next reason (in the list's order)", Action::CycleReason, "reason"),
    b(Rejects, &[Char('s')], "s", "filter by the next source", Action::CycleSource, "source"),
    b(Rejects, &[Char('c')], "c", "clear filters", Action::ClearFilters, "clear"),
    b(Rules, &[Char('/')], "/", "find a rule, a value or a record", Action::Search, "search"),
    b(Rules, &[Char('h'), Left], "h/l", "rules / examples pane", Action::Left, "pane"),
    b(Rules, &[Char('l'), Right], "", "", Action::Right, ""),
    b(Rules, &[Char('u')], "u", "examples / unmapped values", Action::ToggleUnmapped, "unmapped"),
    b(Rules, &[Char('f')], "f", "examples: all / flagged only", Action::CycleFilter, "flagged"),
    b(Review, &[Char('a')], "a", "approve the merge (must-link), at once", Action::Approve, "approve"),
    b(Review, &[Char('r')], "r", "reject the merge (cannot-link); a split asks first", Action::Reject, "reject"),
    b(Review, &[Char('A')], "A/N", "approve / reject with a reason", Action::ApproveWithReason, ""),
    b(Review, &[Char('N')], "", "", Action::RejectWithReason, ""),
    b(Review, &[Char('s')], "s", "skip to the next pair", Action::Skip, "skip"),
    b(Review, &[Char('u')], "u", "undo the latest decision (a bulk at once)", Action::Undo, "undo"),
    b(Review, &[Char('B')], "B", "bulk approve / reject a probability band, with a preview", Action::Bulk, "bulk"),
    b(Review, &[Char('/')], "/", "find pairs by record, name or value", Action::Search, "search"),
    b(Review, &[Char('f')], "f", "list: to review, band, auto-merged, decided", Action::CycleFilter, "list"),
    b(Review, &[Char('o')], "o", "order: most uncertain first / highest score", Action::ToggleOrder, "order"),
    b(Review, &[Char('c')], "c/C", "go to the left / right record's customer", Action::JumpLeft, "customer"),
    b(Review, &[Char('C')], "", "", Action::JumpRight, ""),
    b(Review, &[Char('J')], "J/K", "scroll the candidate pane down / up", Action::ScrollDetail(1), ""),
    b(Review, &[Char('K')], "", "", Action::ScrollDetail(-1), ""),
    b(Customers, &[Char('/')], "/", "find a customer: name, e-mail, phone or any id", Action::Search, "search"),
    b(Customers, &[Char('h'), Left], "h/l", "customers / timeline pane", Action::Left, "pane"),
    b(Customers, &[Char('l'), Right], "", "", Action::Right, ""),
    b(Customers, &[Char('o')], "o", "sort: revenue, last activity, churn risk, name", Action::ToggleOrder, "sort"),
    b(Customers, &[Char('f')], "f", "filter by the next lifecycle status", Action::CycleFilter, "lifecycle"),
    b(Customers, &[Char('A')], "A", "show / hide anonymous visitors", Action::ToggleAnonymous, "anonymous"),
    b(Customers, &[Char('t')], "t", "timeline: all, web, orders, lifecycle", Action::CycleTimeline, "timeline"),
    b(Customers, &[Char('p')], "p", "the customer's pending pairs (Review)", Action::JumpPairs, "pairs"),
    b(Analytics, &[Char('/')], "/", "segment: type a filter, see its size as you type", Action::Search, "segment"),
    b(Analytics, &[Char('m')], "m", "revenue by month / week / day", Action::CycleGrain, "grain"),
    b(Analytics, &[Char('L')], "L", "lifecycle mix: now / month by month", Action::ToggleLifecycle, "lifecycle"),
    b(Analytics, &[Char('p')], "p", "funnel period: 30d, 90d, 365d, all", Action::CyclePeriod, "funnel"),
    b(Analytics, &[Char('S')], "S", "save the segment in rules/segments.toml", Action::SaveSegment, "save"),
    b(Analytics, &[Char('E')], "E", "export the segment's profiles (Parquet)", Action::ExportSegment, "export"),
    b(Analytics, &[Char('M')], "M", "list the segment's members (Customers)", Action::JumpPairs, "members"),
    b(Audit, &[Char('/')], "/", "filter: who, what, why", Action::Search, "search"),
    b(Audit, &[Char('f')], "f", "kind: all, decisions, undos, runs", Action::CycleFilter, "kind"),
];

/// The action bound to `key` in `scope` (scope bindings win over global).
/// A key held with Ctrl or Alt is not the plain key: only Ctrl-C (quit) is
/// bound with a modifier.
pub fn action_for(scope: Scope, key: &KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == Char('c') {
        return Some(Action::Quit);
    }
    if key
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SUPER)
    {
        return None;
    }
    let matches = |bind: &&Binding| bind.keys.contains(&key.code);
    BINDINGS
        .iter()
        .filter(|bind| bind.scope == scope)
        .find(matches)
        .or_else(|| BINDINGS.iter().filter(|b| b.scope == Global).find(matches))
        .map(|bind| bind.action.clone())
}

/// Bindings to list in the help overlay, grouped by scope: `first` (the
/// current screen), then the keys of every screen, then the other screens.
pub fn help_rows(first: Scope) -> Vec<(Scope, &'static str, &'static str)> {
    let mut order = vec![first, Global];
    order.extend(Scope::SCREENS.iter().filter(|s| **s != first));
    order
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
        .filter(|bind| !bind.hint.is_empty() && bind.scope == scope)
        .chain(
            BINDINGS
                .iter()
                .filter(|bind| !bind.hint.is_empty() && bind.scope == Global),
        )
        .map(|bind| (bind.label, bind.hint))
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
        assert_eq!(action_for(Pipeline, &key(Char(' '))), Some(Action::RunStep));
        assert_eq!(action_for(Pipeline, &key(Char('r'))), None);
        assert_eq!(action_for(Rejects, &key(Char('r'))), None);
        assert_eq!(action_for(Rejects, &key(Char('j'))), Some(Action::Down));
        assert_eq!(action_for(Rejects, &key(Down)), Some(Action::Down));
        assert_eq!(action_for(Pipeline, &key(Char('?'))), Some(Action::Help));
        assert_eq!(action_for(Review, &key(Char('r'))), Some(Action::Reject));
        assert_eq!(action_for(Review, &key(Char('u'))), Some(Action::Undo));
        assert_eq!(action_for(Review, &key(Char('4'))), Some(Action::Tab(3)));
        assert_eq!(action_for(Review, &key(Char('7'))), Some(Action::Tab(6)));
        assert_eq!(
            action_for(Rejects, &KeyEvent::new(Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }

    #[test]
    fn ctrl_and_alt_letters_are_not_the_plain_letters() {
        for c in ['r', 'u', 'a', 'q', 'j'] {
            for m in [KeyModifiers::CONTROL, KeyModifiers::ALT] {
                assert_eq!(
                    action_for(Review, &KeyEvent::new(Char(c), m)),
                    None,
                    "{m:?}-{c}"
                );
            }
        }
        // Shift is how upper-case letters arrive: they keep their bindings.
        assert_eq!(
            action_for(Review, &KeyEvent::new(Char('B'), KeyModifiers::SHIFT)),
            Some(Action::Bulk)
        );
    }

    #[test]
    fn run_and_reject_never_share_a_key() {
        // No screen binds a run to a key another screen uses to decide.
        let decide = [Action::Approve, Action::Reject, Action::Undo];
        let run = [Action::RunStep, Action::RunAll, Action::ReloadSource];
        for d in BINDINGS.iter().filter(|b| decide.contains(&b.action)) {
            for r in BINDINGS.iter().filter(|b| run.contains(&b.action)) {
                assert!(
                    d.keys.iter().all(|k| !r.keys.contains(k)),
                    "{} and {} share a key",
                    d.help,
                    r.help
                );
            }
        }
    }

    #[test]
    fn help_lists_every_labelled_binding_once_current_screen_first() {
        let rows = help_rows(Review);
        assert_eq!(rows[0].0, Review);
        assert!(rows.iter().any(|r| r.1 == "?"));
        assert!(rows.iter().any(|r| r.0 == Rejects && r.1 == "/"));
        assert!(rows.iter().any(|r| r.0 == Audit));
        assert_eq!(
            rows.len(),
            BINDINGS.iter().filter(|b| !b.label.is_empty()).count()
        );
    }
}
