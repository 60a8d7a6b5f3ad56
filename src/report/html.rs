//! Pieces of the page: tables, legends, figure frames. Everything passed as
//! text is escaped here; only parts named `html` are taken as they are.

use super::chart::{hex, lighten};
use super::format::esc;
use plotters::style::RGBColor;
use std::fmt::Write as _;

/// A table: the first `left` columns are text (left-aligned, 1 unless
/// [`Table::left`] says otherwise), the others figures (right-aligned).
pub struct Table {
    head: String,
    body: String,
    left: usize,
}

impl Table {
    pub fn new(head: &[&str]) -> Self {
        let mut h = String::new();
        for c in head {
            let _ = write!(h, "<th>{}</th>", esc(c));
        }
        Table {
            head: h,
            body: String::new(),
            left: 1,
        }
    }

    /// How many leading columns hold text (at most 6).
    pub fn left(mut self, n: usize) -> Self {
        self.left = n.clamp(1, 6);
        self
    }

    /// A row of text cells (escaped).
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        self.row_with("", cells);
    }

    /// A row with a class (`total`, `muted`).
    pub fn row_with<S: AsRef<str>>(&mut self, class: &str, cells: &[S]) {
        if class.is_empty() {
            self.body.push_str("<tr>");
        } else {
            let _ = write!(self.body, "<tr class=\"{}\">", esc(class));
        }
        for c in cells {
            let _ = write!(self.body, "<td>{}</td>", esc(c.as_ref()));
        }
        self.body.push_str("</tr>");
    }

    /// A row of cells that are HTML already (each a whole `<td …>…</td>`).
    pub fn raw_row(&mut self, tds: &str) {
        let _ = write!(self.body, "<tr>{tds}</tr>");
    }

    pub fn finish(self) -> String {
        format!(
            "<table class=\"l{}\"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
            self.left, self.head, self.body
        )
    }
}

/// How a legend entry is drawn.
pub enum Swatch {
    Solid(RGBColor),
    /// Lighter and hatched: the running (partial) period.
    Hatched(RGBColor),
}

/// A legend under a chart: (swatch, text) entries.
pub fn legend(items: &[(Swatch, String)]) -> String {
    let mut html = String::from("<p class=\"legend\">");
    for (sw, text) in items {
        let style = match sw {
            Swatch::Solid(c) => format!("background:{}", hex(*c)),
            Swatch::Hatched(c) => format!(
                "background:repeating-linear-gradient(135deg,{c} 0 2px,{l} 2px 6px);border:1px solid {c}",
                c = hex(*c),
                l = hex(lighten(*c, 0.55))
            ),
        };
        let _ = write!(
            html,
            "<span class=\"item\"><span class=\"sw\" style=\"{style}\"></span>{}</span>",
            esc(text)
        );
    }
    html.push_str("</p>");
    html
}

/// A chart (its SVG) under a caption, with a note under it.
pub fn figure(caption: &str, svg: &str, note_html: &str) -> String {
    format!(
        "<figure><figcaption>{}</figcaption>{svg}{note_html}</figure>",
        esc(caption)
    )
}

/// A paragraph of text (escaped).
pub fn p(text: &str) -> String {
    format!("<p>{}</p>", esc(text))
}

/// A small muted note (escaped).
pub fn note(text: &str) -> String {
    format!("<p class=\"note\">{}</p>", esc(text))
}

/// Key figures in a row of cards: (figure, what it is).
pub fn cards(items: &[(String, String)]) -> String {
    let mut html = String::from("<div class=\"cards\">");
    for (figure, what) in items {
        let _ = write!(
            html,
            "<div class=\"card\"><div class=\"fig\">{}</div><div class=\"what\">{}</div></div>",
            esc(figure),
            esc(what)
        );
    }
    html.push_str("</div>");
    html
}

/// A collapsed block (no script: the browser's `<details>`).
pub fn details(summary: &str, html: &str) -> String {
    format!(
        "<details><summary>{}</summary>{html}</details>",
        esc(summary)
    )
}
