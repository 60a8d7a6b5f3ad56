//! A table that holds only the rows on screen and pages through SQLite by key
//! (keyset paging on an indexed, increasing column). Each move is one small
//! indexed query, so it stays instant on millions of rows. Screens give it a
//! fetch function; it does the rest.

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
}
