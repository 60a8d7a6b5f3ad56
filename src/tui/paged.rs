//! Tables that hold only the rows near the screen and page through SQLite.
//! [`Paged`] pages by key (keyset paging on an indexed, increasing column):
//! each move is one small indexed query, so it stays instant on millions of
//! rows. [`Window`] pages by position (LIMIT / OFFSET) for lists sorted by
//! something else, fetching a chunk at a time. Screens give them a fetch
//! function; they do the rest.

use crate::store::Anchor;
use crate::tui::keymap::Action;
use anyhow::Result;

/// A row with a unique, increasing key (the paging column).
pub trait Keyed {
    fn key(&self) -> i64;
}

impl Keyed for crate::store::Reject {
    fn key(&self) -> i64 {
        self.reject_id
    }
}

/// Fetch up to `limit` rows next to an anchor, in ascending key order.
pub type Fetch<'a, T> = dyn FnMut(Anchor, usize) -> Result<Vec<T>> + 'a;

#[derive(Debug, Clone)]
pub struct Paged<T> {
    /// The visible window, ascending by key.
    pub rows: Vec<T>,
    /// Index of the selected row within `rows`.
    pub selected: usize,
    /// How many rows fit on screen.
    pub viewport: usize,
}

impl<T: Keyed> Paged<T> {
    pub fn new(viewport: usize) -> Self {
        Paged {
            rows: Vec::new(),
            selected: 0,
            viewport: viewport.max(1),
        }
    }

    pub fn selected_row(&self) -> Option<&T> {
        self.rows.get(self.selected)
    }

    fn clamp(&mut self) {
        self.selected = self.selected.min(self.rows.len().saturating_sub(1));
    }

    /// Fill the window from `anchor`; a short page after an `After` anchor is
    /// topped up from the end so the window stays full.
    pub fn load(&mut self, anchor: Anchor, fetch: &mut Fetch<'_, T>) -> Result<()> {
        let n = self.viewport;
        let mut rows = fetch(anchor, n)?;
        if rows.len() < n && matches!(anchor, Anchor::After(_)) {
            rows = fetch(Anchor::Last, n)?;
        }
        self.rows = rows;
        self.selected = match anchor {
            Anchor::Last => self.rows.len().saturating_sub(1),
            _ => 0,
        };
        Ok(())
    }

    /// Re-read the window from its first row (after the data or the
    /// viewport changed), keeping the selection where possible.
    pub fn reload(&mut self, fetch: &mut Fetch<'_, T>) -> Result<()> {
        let selected = self.selected;
        let anchor = self
            .rows
            .first()
            .map_or(Anchor::First, |r| Anchor::After(r.key() - 1));
        self.load(anchor, fetch)?;
        self.selected = selected;
        self.clamp();
        Ok(())
    }

    pub fn set_viewport(&mut self, viewport: usize, fetch: &mut Fetch<'_, T>) -> Result<()> {
        let viewport = viewport.max(1);
        if viewport != self.viewport {
            self.viewport = viewport;
            self.reload(fetch)?;
        }
        Ok(())
    }

    /// Apply a movement action. Returns false for actions it does not handle.
    pub fn apply(&mut self, action: &Action, fetch: &mut Fetch<'_, T>) -> Result<bool> {
        let n = self.viewport;
        match action {
            Action::Down => {
                if self.selected + 1 < self.rows.len() {
                    self.selected += 1;
                } else if let Some(last) = self.rows.last().map(Keyed::key) {
                    let more = fetch(Anchor::After(last), 1)?;
                    if !more.is_empty() {
                        self.rows.extend(more);
                        if self.rows.len() > n {
                            self.rows.remove(0);
                        }
                        self.selected = self.rows.len() - 1;
                    }
                }
            }
            Action::Up => {
                if self.selected > 0 {
                    self.selected -= 1;
                } else if let Some(first) = self.rows.first().map(Keyed::key) {
                    let more = fetch(Anchor::Before(first), 1)?;
                    if !more.is_empty() {
                        self.rows.splice(0..0, more);
                        self.rows.truncate(n);
                        self.selected = 0;
                    }
                }
            }
            Action::PageDown => {
                if let Some(last) = self.rows.last().map(Keyed::key) {
                    let more = fetch(Anchor::After(last), n)?;
                    if more.is_empty() {
                        self.selected = self.rows.len().saturating_sub(1);
                    } else if more.len() == n {
                        self.rows = more;
                    } else {
                        self.rows = fetch(Anchor::Last, n)?;
                    }
                    self.clamp();
                }
            }
            Action::PageUp => {
                if let Some(first) = self.rows.first().map(Keyed::key) {
                    let more = fetch(Anchor::Before(first), n)?;
                    if more.is_empty() {
                        self.selected = 0;
                    } else if more.len() == n {
                        self.rows = more;
                    } else {
                        self.rows = fetch(Anchor::First, n)?;
                    }
                    self.clamp();
                }
            }
            Action::Top => self.load(Anchor::First, fetch)?,
            Action::Bottom => self.load(Anchor::Last, fetch)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Fetch up to `limit` rows from position `offset` of an ordered list.
pub type FetchAt<'a, T> = dyn FnMut(u64, usize) -> Result<Vec<T>> + 'a;

/// A list paged by position (LIMIT / OFFSET), for orders that no unique
/// increasing key follows (the review queue is sorted by a score). It holds
/// one chunk of rows around the visible ones and fetches the next chunk only
/// when the view leaves it, so most moves cost no query at all; the screen
/// draws only the `viewport` rows from `top`.
#[derive(Debug, Clone)]
pub struct Window<T> {
    /// The fetched chunk: rows `start .. start + rows.len()` of the list.
    pub rows: Vec<T>,
    pub start: u64,
    /// Position of the selected row in the whole list.
    pub pos: u64,
    /// Position of the first visible row.
    pub top: u64,
    /// Rows in the whole list (corrected when a fetch finds the end early).
    pub total: u64,
    pub viewport: usize,
    /// Rows fetched at a time (at least the viewport).
    pub chunk: usize,
}

impl<T> Window<T> {
    pub fn new(viewport: usize, chunk: usize) -> Self {
        Window {
            rows: Vec::new(),
            start: 0,
            pos: 0,
            top: 0,
            total: 0,
            viewport: viewport.max(1),
            chunk: chunk.max(1),
        }
    }

    pub fn selected_row(&self) -> Option<&T> {
        let i = self.pos.checked_sub(self.start)?;
        self.rows.get(usize::try_from(i).ok()?)
    }

    /// The rows on screen, and the selected one's index among them.
    pub fn visible(&self) -> (&[T], usize) {
        let from = (self.top.saturating_sub(self.start) as usize).min(self.rows.len());
        let to = (from + self.viewport).min(self.rows.len());
        (
            &self.rows[from..to],
            self.pos.saturating_sub(self.top) as usize,
        )
    }

    /// Start over at the first row of a list of `total` rows.
    pub fn reset(&mut self, total: u64, fetch: &mut FetchAt<'_, T>) -> Result<()> {
        self.pos = 0;
        self.reload(total, fetch)
    }

    /// Re-read the chunk around the selection (the list changed and now has
    /// `total` rows), keeping the selected position where possible.
    pub fn reload(&mut self, total: u64, fetch: &mut FetchAt<'_, T>) -> Result<()> {
        self.total = total;
        self.rows.clear();
        self.fill(fetch)
    }

    pub fn set_viewport(&mut self, viewport: usize, fetch: &mut FetchAt<'_, T>) -> Result<()> {
        self.viewport = viewport.max(1);
        self.fill(fetch)
    }

    /// Select the row at `pos` (clamped), scrolling as little as possible.
    pub fn go(&mut self, pos: u64, fetch: &mut FetchAt<'_, T>) -> Result<()> {
        self.pos = pos;
        self.fill(fetch)
    }

    /// Clamp the selection, scroll it into view and make sure the visible
    /// rows are fetched. A fetch that finds the list shorter (or longer) than
    /// `total` corrects it and tries again.
    fn fill(&mut self, fetch: &mut FetchAt<'_, T>) -> Result<()> {
        let vp = self.viewport as u64;
        let chunk = self.chunk.max(self.viewport);
        for _ in 0..4 {
            if self.total == 0 {
                self.rows.clear();
                (self.start, self.pos, self.top) = (0, 0, 0);
                return Ok(());
            }
            self.pos = self.pos.min(self.total - 1);
            if self.pos < self.top {
                self.top = self.pos;
            } else if self.pos >= self.top + vp {
                self.top = self.pos + 1 - vp;
            }
            self.top = self.top.min(self.total.saturating_sub(vp));
            let end = (self.top + vp).min(self.total);
            let have = self.start + self.rows.len() as u64;
            if !self.rows.is_empty() && self.start <= self.top && have >= end {
                return Ok(());
            }
            // Centre the chunk on the view so moving either way stays in it.
            let margin = (chunk - self.viewport) as u64 / 2;
            let start = self.top.saturating_sub(margin);
            let rows = fetch(start, chunk)?;
            let got = start + rows.len() as u64;
            self.total = if rows.len() < chunk {
                got
            } else {
                self.total.max(got)
            };
            self.start = start;
            self.rows = rows;
        }
        Ok(())
    }

    /// Apply a movement action. Returns false for actions it does not handle.
    pub fn apply(&mut self, action: &Action, fetch: &mut FetchAt<'_, T>) -> Result<bool> {
        let page = self.viewport as u64;
        let pos = match action {
            Action::Down => self.pos + 1,
            Action::Up => self.pos.saturating_sub(1),
            Action::PageDown => self.pos + page,
            Action::PageUp => self.pos.saturating_sub(page),
            Action::Top => 0,
            Action::Bottom => self.total.saturating_sub(1),
            _ => return Ok(false),
        };
        self.go(pos, fetch)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Row(i64);
    impl Keyed for Row {
        fn key(&self) -> i64 {
            self.0
        }
    }

    /// Keys 1..=total, with a counter of rows fetched.
    fn source(
        total: i64,
        fetched: &std::cell::Cell<usize>,
    ) -> impl FnMut(Anchor, usize) -> Result<Vec<Row>> + '_ {
        move |anchor, limit| {
            let keys: Vec<i64> = match anchor {
                Anchor::First => (1..=total).take(limit).collect(),
                Anchor::Last => {
                    let mut v: Vec<i64> = (1..=total).rev().take(limit).collect();
                    v.reverse();
                    v
                }
                Anchor::After(k) => (k + 1..=total).take(limit).collect(),
                Anchor::Before(k) => {
                    let mut v: Vec<i64> = (1..k.min(total + 1)).rev().take(limit).collect();
                    v.reverse();
                    v
                }
            };
            fetched.set(fetched.get() + keys.len());
            Ok(keys.into_iter().map(Row).collect())
        }
    }

    fn keys(p: &Paged<Row>) -> Vec<i64> {
        p.rows.iter().map(|r| r.0).collect()
    }

    #[test]
    fn moves_through_a_million_rows_fetching_only_the_window() {
        let fetched = std::cell::Cell::new(0);
        let mut f = source(1_000_000, &fetched);
        let mut p = Paged::new(5);
        p.load(Anchor::First, &mut f).unwrap();
        assert_eq!(keys(&p), [1, 2, 3, 4, 5]);
        for _ in 0..5 {
            p.apply(&Action::Down, &mut f).unwrap();
        }
        assert_eq!(keys(&p), [2, 3, 4, 5, 6]);
        assert_eq!(p.selected_row().unwrap().0, 6);
        p.apply(&Action::PageDown, &mut f).unwrap();
        assert_eq!(keys(&p), [7, 8, 9, 10, 11]);
        p.apply(&Action::Bottom, &mut f).unwrap();
        assert_eq!(keys(&p), [999_996, 999_997, 999_998, 999_999, 1_000_000]);
        assert_eq!(p.selected_row().unwrap().0, 1_000_000);
        p.apply(&Action::Down, &mut f).unwrap();
        assert_eq!(p.selected_row().unwrap().0, 1_000_000, "stays at the end");
        p.apply(&Action::PageUp, &mut f).unwrap();
        assert_eq!(keys(&p), [999_991, 999_992, 999_993, 999_994, 999_995]);
        p.apply(&Action::Top, &mut f).unwrap();
        for _ in 0..3 {
            p.apply(&Action::Up, &mut f).unwrap();
        }
        assert_eq!(p.selected_row().unwrap().0, 1, "stays at the start");
        p.apply(&Action::PageUp, &mut f).unwrap();
        assert_eq!(keys(&p), [1, 2, 3, 4, 5]);
        assert!(fetched.get() < 100, "fetched {} rows", fetched.get());
    }

    #[test]
    fn short_tables_and_empty_tables() {
        let fetched = std::cell::Cell::new(0);
        let mut f = source(3, &fetched);
        let mut p = Paged::new(5);
        p.load(Anchor::First, &mut f).unwrap();
        p.apply(&Action::PageDown, &mut f).unwrap();
        assert_eq!(keys(&p), [1, 2, 3]);
        assert_eq!(p.selected, 2);
        let mut empty = source(0, &fetched);
        let mut q: Paged<Row> = Paged::new(5);
        q.load(Anchor::First, &mut empty).unwrap();
        for a in [
            Action::Down,
            Action::Up,
            Action::PageDown,
            Action::PageUp,
            Action::Bottom,
        ] {
            q.apply(&a, &mut empty).unwrap();
        }
        assert!(q.rows.is_empty() && q.selected_row().is_none());
    }

    /// Rows 0..total by position, with a counter of fetches.
    fn positions(
        total: u64,
        fetches: &std::cell::Cell<usize>,
    ) -> impl FnMut(u64, usize) -> Result<Vec<u64>> + '_ {
        move |offset, limit| {
            fetches.set(fetches.get() + 1);
            Ok((offset..total).take(limit).collect())
        }
    }

    #[test]
    fn window_moves_through_a_million_rows_with_few_fetches() {
        let fetches = std::cell::Cell::new(0);
        let mut f = positions(1_000_000, &fetches);
        let mut w = Window::new(10, 100);
        w.reset(1_000_000, &mut f).unwrap();
        assert_eq!(w.visible().0, (0..10).collect::<Vec<_>>());
        assert_eq!(fetches.get(), 1);
        // Row by row through 40 rows: the chunk covers them, no fetch.
        for _ in 0..40 {
            w.apply(&Action::Down, &mut f).unwrap();
        }
        assert_eq!(fetches.get(), 1);
        assert_eq!(*w.selected_row().unwrap(), 40);
        let (rows, sel) = w.visible();
        assert_eq!((rows[0], rows[sel]), (31, 40));
        w.apply(&Action::Bottom, &mut f).unwrap();
        assert_eq!(*w.selected_row().unwrap(), 999_999);
        assert_eq!(w.visible().0.len(), 10);
        w.apply(&Action::Down, &mut f).unwrap();
        assert_eq!(*w.selected_row().unwrap(), 999_999, "stays at the end");
        w.apply(&Action::PageUp, &mut f).unwrap();
        assert_eq!(*w.selected_row().unwrap(), 999_989);
        w.apply(&Action::Top, &mut f).unwrap();
        w.apply(&Action::Up, &mut f).unwrap();
        assert_eq!(*w.selected_row().unwrap(), 0, "stays at the start");
        assert!(fetches.get() <= 4, "{} fetches", fetches.get());
    }

    #[test]
    fn window_corrects_a_stale_total_and_keeps_the_position() {
        let fetches = std::cell::Cell::new(0);
        let mut f = positions(25, &fetches);
        let mut w = Window::new(10, 100);
        // The count said 40 but only 25 rows exist.
        w.reset(40, &mut f).unwrap();
        assert_eq!(w.total, 25);
        w.apply(&Action::Bottom, &mut f).unwrap();
        assert_eq!(*w.selected_row().unwrap(), 24);
        // The list shrank to 20 rows under the selection: it moves to the end.
        let mut g = positions(20, &fetches);
        w.reload(20, &mut g).unwrap();
        assert_eq!(*w.selected_row().unwrap(), 19);
        w.go(5, &mut g).unwrap();
        w.reload(20, &mut g).unwrap();
        assert_eq!(
            *w.selected_row().unwrap(),
            5,
            "same position after a reload"
        );
        let mut empty = positions(0, &fetches);
        w.reload(3, &mut empty).unwrap();
        assert!(w.selected_row().is_none() && w.visible().0.is_empty());
        for a in [Action::Down, Action::Up, Action::PageDown, Action::Bottom] {
            w.apply(&a, &mut empty).unwrap();
        }
        assert_eq!((w.total, w.pos), (0, 0));
    }
}
