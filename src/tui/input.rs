//! One-line text editing for every input of the workbench (search, filters,
//! the palette, reasons): a cursor that moves (Left / Right / Home / End,
//! Ctrl-A / Ctrl-E), deletion back and forward (Backspace / Delete, Ctrl-U to
//! the start, Ctrl-K to the end, Ctrl-W a word), and a history per input
//! (Up / Down) kept for the session.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key did to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// The text changed.
    Changed,
    /// Only the cursor moved.
    Moved,
    /// Up / Down: the caller swaps in a history entry.
    Older,
    Newer,
    /// Not an editing key.
    Ignored,
}

/// A line of text and a cursor (a char index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineEdit {
    text: String,
    cursor: usize,
}

impl LineEdit {
    /// A line holding `text`, the cursor at its end.
    pub fn new(text: &str) -> LineEdit {
        LineEdit {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor as a char index.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replace the whole line (history, completion), cursor at the end.
    pub fn set(&mut self, text: &str) {
        *self = LineEdit::new(text);
    }

    fn byte(&self, char_idx: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_idx)
            .map_or(self.text.len(), |(b, _)| b)
    }

    fn len(&self) -> usize {
        self.text.chars().count()
    }

    pub fn insert(&mut self, c: char) {
        let at = self.byte(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    /// Delete chars `from..to` (char indices) and put the cursor at `from`.
    fn delete(&mut self, from: usize, to: usize) -> Edit {
        if from >= to {
            return Edit::Moved;
        }
        let (a, b) = (self.byte(from), self.byte(to));
        self.text.replace_range(a..b, "");
        self.cursor = from;
        Edit::Changed
    }

    /// Where the word before the cursor starts (Ctrl-W).
    fn word_start(&self) -> usize {
        let chars: Vec<char> = self.text.chars().collect();
        let mut i = self.cursor;
        while i > 0 && chars[i - 1].is_whitespace() {
            i -= 1;
        }
        while i > 0 && !chars[i - 1].is_whitespace() {
            i -= 1;
        }
        i
    }

    /// Apply an editing key.
    pub fn key(&mut self, key: &KeyEvent) -> Edit {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let moved = |e: &mut LineEdit, to: usize| {
            e.cursor = to;
            Edit::Moved
        };
        match key.code {
            KeyCode::Char('a') if ctrl => moved(self, 0),
            KeyCode::Char('e') if ctrl => moved(self, self.len()),
            KeyCode::Char('b') if ctrl => moved(self, self.cursor.saturating_sub(1)),
            KeyCode::Char('f') if ctrl => moved(self, (self.cursor + 1).min(self.len())),
            KeyCode::Char('u') if ctrl => self.delete(0, self.cursor),
            KeyCode::Char('k') if ctrl => self.delete(self.cursor, self.len()),
            KeyCode::Char('w') if ctrl => self.delete(self.word_start(), self.cursor),
            KeyCode::Char('h') if ctrl => self.delete(self.cursor.saturating_sub(1), self.cursor),
            KeyCode::Backspace if alt || ctrl => self.delete(self.word_start(), self.cursor),
            KeyCode::Char(_) if ctrl || alt => Edit::Ignored,
            KeyCode::Char(c) => {
                self.insert(c);
                Edit::Changed
            }
            KeyCode::Backspace => self.delete(self.cursor.saturating_sub(1), self.cursor),
            KeyCode::Delete => self.delete(self.cursor, (self.cursor + 1).min(self.len())),
            KeyCode::Left => moved(self, self.cursor.saturating_sub(1)),
            KeyCode::Right => moved(self, (self.cursor + 1).min(self.len())),
            KeyCode::Home => moved(self, 0),
            KeyCode::End => moved(self, self.len()),
            KeyCode::Up => Edit::Older,
            KeyCode::Down => Edit::Newer,
            _ => Edit::Ignored,
        }
    }

    /// The text before and after the cursor (for drawing it).
    pub fn split(&self) -> (&str, &str) {
        self.text.split_at(self.byte(self.cursor))
    }
}

/// Entries typed into one kind of input, oldest first, and where Up / Down
/// browsing is.
#[derive(Debug, Clone, Default)]
pub struct History {
    entries: Vec<String>,
    /// Browsing: the index shown, and the line typed before browsing began.
    at: Option<(usize, String)>,
}

impl History {
    /// Remember a submitted line (not blank, not the same as the last one).
    pub fn push(&mut self, text: &str) {
        let t = text.trim();
        self.at = None;
        if !t.is_empty() && self.entries.last().map(String::as_str) != Some(t) {
            self.entries.push(t.to_string());
        }
    }

    /// Up: the previous entry into `line` (the typed line is kept for Down).
    pub fn older(&mut self, line: &mut LineEdit) {
        let next = match &self.at {
            None if self.entries.is_empty() => return,
            None => {
                self.at = Some((self.entries.len() - 1, line.text().to_string()));
                self.entries.len() - 1
            }
            Some((0, _)) => return,
            Some((i, _)) => i - 1,
        };
        if let Some((i, _)) = &mut self.at {
            *i = next;
        }
        line.set(&self.entries[next]);
    }

    /// Down: the next entry, then back to what was typed.
    pub fn newer(&mut self, line: &mut LineEdit) {
        let Some((i, typed)) = self.at.take() else {
            return;
        };
        if i + 1 < self.entries.len() {
            self.at = Some((i + 1, typed));
            line.set(&self.entries[i + 1]);
        } else {
            line.set(&typed);
        }
    }

    /// Forget where browsing was (a new input opens).
    pub fn reset(&mut self) {
        self.at = None;
    }

    pub fn entries(&self) -> &[String] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }
    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }
    fn typed(e: &mut LineEdit, s: &str) {
        for c in s.chars() {
            e.key(&k(KeyCode::Char(c)));
        }
    }

    #[test]
    fn cursor_moves_and_inserts_in_place() {
        let mut e = LineEdit::default();
        typed(&mut e, "bjrn");
        e.key(&k(KeyCode::Left));
        e.key(&k(KeyCode::Left));
        typed(&mut e, "ö");
        assert_eq!(e.text(), "björn");
        assert_eq!(e.split(), ("bjö", "rn"));
        e.key(&k(KeyCode::Home));
        typed(&mut e, ">");
        e.key(&ctrl('e'));
        typed(&mut e, "<");
        assert_eq!(e.text(), ">björn<");
        e.key(&ctrl('a'));
        e.key(&k(KeyCode::Delete));
        assert_eq!(e.text(), "björn<");
        e.key(&k(KeyCode::End));
        e.key(&k(KeyCode::Backspace));
        assert_eq!(e.text(), "björn");
    }

    #[test]
    fn ctrl_u_and_ctrl_w_delete_back() {
        let mut e = LineEdit::new("country = DE and orders");
        assert_eq!(e.key(&ctrl('w')), Edit::Changed);
        assert_eq!(e.text(), "country = DE and ");
        e.key(&ctrl('w'));
        assert_eq!(e.text(), "country = DE ");
        e.key(&k(KeyCode::Left));
        e.key(&k(KeyCode::Left));
        e.key(&ctrl('u'));
        assert_eq!(e.text(), "E ");
        assert_eq!(e.cursor(), 0);
        // Ctrl with another letter types nothing.
        assert_eq!(e.key(&ctrl('r')), Edit::Ignored);
        assert_eq!(e.text(), "E ");
    }

    #[test]
    fn history_goes_back_and_returns_to_the_typed_line() {
        let mut h = History::default();
        h.push("run all");
        h.push("rejects missing_id");
        h.push("rejects missing_id");
        h.push("  ");
        assert_eq!(h.entries().len(), 2);
        let mut e = LineEdit::new("ru");
        h.older(&mut e);
        assert_eq!(e.text(), "rejects missing_id");
        h.older(&mut e);
        assert_eq!(e.text(), "run all");
        h.older(&mut e);
        assert_eq!(e.text(), "run all");
        h.newer(&mut e);
        assert_eq!(e.text(), "rejects missing_id");
        h.newer(&mut e);
        assert_eq!(e.text(), "ru");
    }
}
