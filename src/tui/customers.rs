//! The Customers screen's state: a sorted, filtered (or searched) list of
//! profiles fetched a page at a time by keyset, and the selected customer's
//! golden record and timeline (also keyset-paged). Every read is one index
//! walk (`read::customers`), so the screen stays instant on a million
//! profiles; the 360 view opens as a scrollable text.

use crate::read::customers::{
    self, EventRow, ListFilter, ProfileRow, Sort, TimelineFilter, cursor_after,
};
use crate::tui::keymap::Action;
use anyhow::Result;
use rusqlite::Connection;

/// Profiles and events fetched per page.
pub const CHUNK: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    List,
    Timeline,
}

#[derive(Default)]
pub struct CustomersView {
    pub sort: Sort,
    pub filter: ListFilter,
    /// Lifecycle statuses to cycle through with `f`.
    pub lifecycles: Vec<String>,
    /// A search in force (its results replace the list).
    pub query: Option<String>,
    pub rows: Vec<ProfileRow>,
    pub sel: usize,
    /// No more rows after the last fetched one.
    pub exhausted: bool,
    pub pane: Pane,
    /// The selected customer's stored profile (column, value).
    pub profile: Option<Vec<(String, String)>>,
    pub timeline: Vec<EventRow>,
    pub tl_filter: TimelineFilter,
    pub tl_sel: usize,
    pub tl_exhausted: bool,
    /// The customer the detail was read for.
    pub detail_for: Option<String>,
    /// True when the step has not run (no profile table rows).
    pub empty: bool,
}

impl CustomersView {
    pub fn selected(&self) -> Option<&ProfileRow> {
        self.rows.get(self.sel)
    }

    /// Read the list again from the top (after a sort, filter or search
    /// change, or when the screen opens).
    pub fn reload(&mut self, conn: &Connection) -> Result<()> {
        self.empty = conn
            .query_row("SELECT 1 FROM customer360_profiles LIMIT 1", [], |_| Ok(()))
            .is_err();
        if self.lifecycles.is_empty() {
            self.lifecycles = customers::lifecycle_statuses(conn)?;
        }
        self.rows = match &self.query {
            Some(q) => customers::search(conn, q, CHUNK)?,
            None => customers::list(conn, self.sort, &self.filter, None, CHUNK)?,
        };
        self.exhausted = self.query.is_some() || self.rows.len() < CHUNK;
        self.sel = 0;
        self.detail_for = None;
        self.load_detail(conn)
    }

    /// Fetch the next page when the selection reaches the end.
    fn more(&mut self, conn: &Connection) -> Result<()> {
        if self.exhausted || self.sel + 1 < self.rows.len() {
            return Ok(());
        }
        let Some(last) = self.rows.last() else {
            return Ok(());
        };
        let cursor = cursor_after(conn, self.sort, last)?;
        let next = customers::list(conn, self.sort, &self.filter, Some(&cursor), CHUNK)?;
        self.exhausted = next.len() < CHUNK;
        self.rows.extend(next);
        Ok(())
    }

    /// The selected customer's profile and first page of events.
    pub fn load_detail(&mut self, conn: &Connection) -> Result<()> {
        let id = self.selected().map(|r| r.id.clone());
        if id == self.detail_for {
            return Ok(());
        }
        self.detail_for = id.clone();
        self.tl_sel = 0;
        match id {
            Some(id) => {
                self.profile = crate::pipeline::unify::profile_fields(conn, &id)?;
                self.timeline = customers::timeline(conn, &id, self.tl_filter, None, CHUNK)?;
                self.tl_exhausted = self.timeline.len() < CHUNK;
            }
            None => {
                self.profile = None;
                self.timeline.clear();
                self.tl_exhausted = true;
            }
        }
        Ok(())
    }

    fn more_events(&mut self, conn: &Connection) -> Result<()> {
        if self.tl_exhausted || self.tl_sel + 1 < self.timeline.len() {
            return Ok(());
        }
        let (Some(id), Some(last)) = (self.detail_for.clone(), self.timeline.last()) else {
            return Ok(());
        };
        let before = (last.time.clone(), last.seq);
        let next = customers::timeline(
            conn,
            &id,
            self.tl_filter,
            Some((&before.0, before.1)),
            CHUNK,
        )?;
        self.tl_exhausted = next.len() < CHUNK;
        self.timeline.extend(next);
        Ok(())
    }

    /// A profile field's stored value ("" when empty or unknown).
    pub fn field(&self, name: &str) -> &str {
        self.profile
            .as_ref()
            .and_then(|p| p.iter().find(|(n, _)| n == name))
            .map_or("", |(_, v)| v.as_str())
    }

    /// Start a search (empty text: back to the list).
    pub fn search(&mut self, conn: &Connection, text: &str) -> Result<()> {
        let t = text.trim();
        self.query = (!t.is_empty()).then(|| t.to_string());
        self.reload(conn)
    }

    /// Apply a key's action. Returns a flash message when there is one.
    pub fn apply(
        &mut self,
        conn: &Connection,
        action: &Action,
        viewport: usize,
    ) -> Result<Option<String>> {
        let page = viewport.max(1);
        match (self.pane, action) {
            (_, Action::Left) => self.pane = Pane::List,
            (_, Action::Right) => self.pane = Pane::Timeline,
            (_, Action::ToggleOrder) => {
                self.sort = self.sort.next();
                self.query = None;
                self.reload(conn)?;
                return Ok(Some(format!("sorted by {}", self.sort.label())));
            }
            (_, Action::CycleFilter) => {
                let next = match &self.filter.lifecycle {
                    None => self.lifecycles.first().cloned(),
                    Some(cur) => {
                        let i = self.lifecycles.iter().position(|l| l == cur);
                        i.and_then(|i| self.lifecycles.get(i + 1).cloned())
                    }
                };
                self.filter.lifecycle = next;
                self.query = None;
                self.reload(conn)?;
                return Ok(Some(match &self.filter.lifecycle {
                    Some(l) => format!("lifecycle: {l}"),
                    None => "all lifecycle statuses".into(),
                }));
            }
            (_, Action::ToggleAnonymous) => {
                self.filter.anonymous = !self.filter.anonymous;
                self.query = None;
                self.reload(conn)?;
                return Ok(Some(if self.filter.anonymous {
                    "anonymous visitors shown".into()
                } else {
                    "anonymous visitors hidden".into()
                }));
            }
            (_, Action::CycleTimeline) => {
                self.tl_filter = self.tl_filter.next();
                self.detail_for = None;
                self.load_detail(conn)?;
                return Ok(Some(format!("timeline: {}", self.tl_filter.label())));
            }
            (Pane::List, a) => {
                let last = self.rows.len().saturating_sub(1);
                match a {
                    Action::Down => self.sel = (self.sel + 1).min(last),
                    Action::Up => self.sel = self.sel.saturating_sub(1),
                    Action::PageDown => self.sel = (self.sel + page).min(last),
                    Action::PageUp => self.sel = self.sel.saturating_sub(page),
                    Action::Top => self.sel = 0,
                    Action::Bottom => self.sel = last,
                    _ => return Ok(None),
                }
                self.more(conn)?;
                if matches!(a, Action::PageDown | Action::Down) {
                    self.sel = self.sel.min(self.rows.len().saturating_sub(1));
                }
                self.load_detail(conn)?;
            }
            (Pane::Timeline, a) => {
                let last = self.timeline.len().saturating_sub(1);
                match a {
                    Action::Down => self.tl_sel = (self.tl_sel + 1).min(last),
                    Action::Up => self.tl_sel = self.tl_sel.saturating_sub(1),
                    Action::PageDown => self.tl_sel = (self.tl_sel + page).min(last),
                    Action::PageUp => self.tl_sel = self.tl_sel.saturating_sub(page),
                    Action::Top => self.tl_sel = 0,
                    Action::Bottom => self.tl_sel = last,
                    _ => return Ok(None),
                }
                self.more_events(conn)?;
            }
        }
        Ok(None)
    }
}
