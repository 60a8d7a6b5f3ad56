//! Text from the data is never handed raw to a terminal or a spreadsheet.
//!
//! - [`escape`]: for a terminal (the workbench, command output, error
//!   messages). Control characters (C0, DEL, C1) and the invisible
//!   characters that reorder or hide text (bidi embeddings, overrides and
//!   isolates, zero-width spaces and joiners, the byte-order mark, ...) are
//!   shown escaped: `\n`, `\r`, `\t`, and `\u{1b}`, `\u{202e}`, ... for the
//!   rest (Rust's own escape syntax). Everything else is kept as it is,
//!   backslashes included.
//! - [`escape_lines`]: the same, keeping the line breaks of a multi-line text.
//! - [`csv_cell`]: for a CSV cell a spreadsheet may open (formula
//!   injection, OWASP).
//!
//! Pipeline code and the UI both use this module; it imports neither.

use std::borrow::Cow;

/// Characters never written raw to a terminal: control characters (C0, DEL,
/// C1, line and paragraph separators) and invisible format characters that
/// reorder or hide the text around them.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'                  // soft hyphen
            | '\u{061C}'                // arabic letter mark
            | '\u{180E}'                // mongolian vowel separator
            | '\u{200B}'..='\u{200F}'   // zero-width space, (non-)joiner, LRM, RLM
            | '\u{2028}'..='\u{2029}'   // line / paragraph separator
            | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'   // bidi isolates
            | '\u{206A}'..='\u{206F}'   // deprecated format characters
            | '\u{FEFF}'                // byte-order mark / zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotation
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            use std::fmt::Write as _;
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `s` safe to write on one line of a terminal: every [`is_unsafe`]
/// character escaped (`\n`, `\r`, `\t`, else `\u{hex}`). Borrowed when there
/// is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`] line by line: the text's own line breaks (`\n`) are kept,
/// everything else unsafe (a `\r` of a `\r\n` included) is escaped.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.split('\n').map(escape).collect::<Vec<_>>().join("\n"))
}

/// A plain number: optional sign, digits with an optional decimal point,
/// optional exponent (`-12.5`, `+49301234`, `1e-3`); not `inf` or `NaN`.
fn is_plain_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// A text cell safe to open in a spreadsheet (OWASP CSV injection):
/// a value starting with `=`, `+`, `-`, `@`, a tab or a carriage return is
/// prefixed with `'` so it is read as text, not run as a formula, unless it
/// is a plain number (`-12.5`, `+4930123456` stay as they are). NUL bytes
/// are never written: each becomes the two characters `\0`.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let formula = matches!(s.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'))
        && !is_plain_number(s);
    let nul = s.contains('\0');
    if !formula && !nul {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    if formula {
        out.push('\'');
    }
    if nul {
        out.push_str(&s.replace('\0', "\\0"));
    } else {
        out.push_str(s);
    }
    Cow::Owned(out)
}

/// A value as one pretty-printed JSON document, safe for a terminal: JSON
/// already escapes control characters, and every other [`is_unsafe`]
/// character (bidi overrides, zero-width characters) is written as its
/// `\uXXXX` escape, so the document means the same and shows nothing raw.
pub fn json_document(value: &impl serde::Serialize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    if !text.chars().any(is_unsafe) {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        // The layout's own line breaks stay; serde_json escaped the C0
        // controls inside strings, but not DEL or what lies beyond ASCII.
        if is_unsafe(c) && c != '\n' {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_plain_text_borrowed() {
        assert!(matches!(escape("Müller, 東京 ✓ C:\\x"), Cow::Borrowed(_)));
        assert_eq!(escape("Müller, 東京 ✓ C:\\x"), "Müller, 東京 ✓ C:\\x");
    }

    #[test]
    fn escape_escapes_c0_c1_and_del() {
        assert_eq!(escape("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(escape("x\ny\tz\r\u{7}"), "x\\ny\\tz\\r\\u{7}");
        assert_eq!(escape("\u{0}\u{7f}\u{9b}2J"), "\\u{0}\\u{7f}\\u{9b}2J");
        assert_eq!(escape("\u{1b}]0;pwned\u{7}"), "\\u{1b}]0;pwned\\u{7}");
    }

    #[test]
    fn escape_escapes_bidi_and_zero_width_characters() {
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        for c in [
            '\u{061C}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{202A}',
            '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
            '\u{2069}', '\u{FEFF}', '\u{2028}', '\u{2029}', '\u{2060}',
        ] {
            let s = format!("a{c}b");
            assert_eq!(
                escape(&s),
                format!("a\\u{{{:x}}}b", c as u32),
                "{:x}",
                c as u32
            );
        }
        // Visible neighbours stay.
        assert_eq!(escape("a\u{2010}b\u{2070}"), "a\u{2010}b\u{2070}");
    }

    #[test]
    fn escape_output_has_nothing_unsafe_and_is_idempotent() {
        let s = "\u{1b}\u{202e}\n\u{feff}x\u{85}";
        let once = escape(s).into_owned();
        assert!(!once.chars().any(is_unsafe), "{once}");
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn escape_lines_keeps_line_breaks_only() {
        assert_eq!(escape_lines("a\nb\u{1b}\r\nc"), "a\nb\\u{1b}\\r\nc");
        assert_eq!(escape_lines("one\ntwo\n"), "one\ntwo\n");
        assert_eq!(escape_lines("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn csv_cell_neutralises_formulas() {
        assert_eq!(csv_cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_cell("=2+2"), "'=2+2");
        assert_eq!(csv_cell("@cat"), "'@cat");
        assert_eq!(csv_cell("+1+1"), "'+1+1");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("\t=1"), "'\t=1");
        assert_eq!(csv_cell("\r=1"), "'\r=1");
        assert_eq!(csv_cell("-"), "'-");
        assert_eq!(csv_cell("-inf"), "'-inf");
        assert_eq!(csv_cell("+49 30 1234"), "'+49 30 1234");
    }

    #[test]
    fn csv_cell_keeps_numbers_and_plain_text() {
        for s in [
            "-12.5",
            "+4930123456",
            "-0",
            "1e-3",
            "-.5",
            "42",
            "",
            "Anna",
            "a=b",
            "x@y.z",
        ] {
            assert_eq!(csv_cell(s), s);
            assert!(matches!(csv_cell(s), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn csv_cell_escapes_nul() {
        assert_eq!(csv_cell("a\0b"), "a\\0b");
        assert_eq!(csv_cell("=a\0"), "'=a\\0");
    }
    #[test]
    fn json_documents_escape_bidi_and_keep_their_meaning() {
        let v = serde_json::json!({"name": "evil\u{202E}gnp.exe", "esc": "\u{1b}[31m", "del": "a\u{7f}b", "ok": "Zoë"});
        let doc = json_document(&v).unwrap();
        assert!(!doc.chars().any(is_unsafe_outside_layout), "{doc}");
        assert!(doc.contains("evil\\u202egnp.exe"), "{doc}");
        assert!(doc.contains("\\u001b[31m"), "{doc}");
        assert!(doc.contains("a\\u007fb"), "{doc}");
        assert!(doc.contains("Zoë"), "{doc}");
        let back: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(back, v);
    }

    /// Unsafe characters other than the document's own line breaks.
    fn is_unsafe_outside_layout(c: char) -> bool {
        is_unsafe(c) && c != '\n'
    }
}
