//! Data shown in the terminal is never written raw: control characters and
//! escape sequences are shown escaped (`\u{1b}` -> `\e`, `\n` -> `\n`).

/// Escape control characters so the string is safe to draw on one line.
pub fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Escape control characters but keep line breaks (for multi-line popups).
pub fn clean_multiline(s: &str) -> String {
    s.split('\n').map(clean).collect::<Vec<_>>().join("\n")
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
        assert_eq!(clean("a\u{1b}[31mred"), "a\\e[31mred");
        assert_eq!(clean("x\ny\tz\u{7}"), "x\\ny\\tz\\u{7}");
        assert_eq!(clean_multiline("a\nb\u{1b}"), "a\nb\\e");
        assert!(!clean("\u{9b}2J").chars().any(char::is_control));
    }

    #[test]
    fn cuts_with_ellipsis() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
