//! Data shown in the terminal is never written raw: control characters,
//! escape sequences and invisible bidi / zero-width characters are shown
//! escaped by [`crate::safe_text::escape`] (`\u{1b}`, `\u{202e}`, `\n`).
//! Every data string the workbench draws goes through [`clean`] (or
//! [`clean_multiline`]); [`scrub`] is the last guard over the drawn buffer.

use crate::safe_text;
use ratatui::buffer::Buffer;

/// Escape control and invisible characters so the string is safe to draw on
/// one line.
pub fn clean(s: &str) -> String {
    safe_text::escape(s).into_owned()
}

/// Escape control and invisible characters but keep line breaks (for
/// multi-line popups).
pub fn clean_multiline(s: &str) -> String {
    safe_text::escape_lines(s).into_owned()
}

/// The last guard after a frame is drawn: a cell whose symbol still holds a
/// character [`safe_text::is_unsafe`] finds (a string that missed [`clean`])
/// shows `�` instead, so nothing unsafe reaches the terminal. Returns how
/// many cells it replaced.
pub fn scrub(buf: &mut Buffer) -> usize {
    let mut n = 0;
    for cell in buf.content.iter_mut() {
        if cell.symbol().chars().any(safe_text::is_unsafe) {
            cell.set_symbol("\u{fffd}");
            n += 1;
        }
    }
    n
}

/// Cut to `max` characters with an ellipsis.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else if max == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(clean("plain"), "plain");
        assert_eq!(clean("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(clean("x\ny\tz\u{7}"), "x\\ny\\tz\\u{7}");
        assert_eq!(clean_multiline("a\nb\u{1b}"), "a\nb\\u{1b}");
        assert_eq!(clean("\u{9b}2J"), "\\u{9b}2J");
    }

    #[test]
    fn bidi_and_zero_width_characters_are_escaped_not_drawn() {
        assert_eq!(clean("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(clean("a\u{200d}b\u{feff}"), "a\\u{200d}b\\u{feff}");
        assert_eq!(clean_multiline("x\u{2066}\ny"), "x\\u{2066}\ny");
    }

    #[test]
    fn scrub_replaces_cells_holding_unsafe_characters() {
        use ratatui::layout::Rect;
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 1));
        // A zero-width joiner joins the grapheme before it: one cell "a\u{200d}".
        buf.set_string(0, 0, "a\u{200d}bc", ratatui::style::Style::new());
        assert_eq!(buf[(0, 0)].symbol(), "a\u{200d}");
        assert_eq!(scrub(&mut buf), 1);
        assert_eq!(buf[(0, 0)].symbol(), "\u{fffd}");
        assert_eq!(buf[(1, 0)].symbol(), "b");
    }

    #[test]
    fn cuts_with_ellipsis() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
