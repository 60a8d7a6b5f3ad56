//! What every screen draws with: the colours, a bordered block, tables
//! whose cells are cut to their column with an ellipsis (numbers right
//! aligned, never cut: compact instead), and the one mark for "no value".

use crate::tui::format::{self, fit};
use crate::tui::text::clean;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders, Cell, Row};

// 256-colour tones that read on dark and on light backgrounds (no yellow,
// no dark blue); bold and reverse video for emphasis.
pub const ACCENT: Color = Color::Indexed(31);
pub const WARN: Color = Color::Indexed(166);
pub const BAD: Color = Color::Indexed(160);
pub const GOOD: Color = Color::Indexed(34);

/// The mark for "no value", everywhere.
pub const NONE: &str = "—";

pub fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// A rounded, titled block; the focused one in the accent colour.
pub fn block(title: &str, focused: bool) -> Block<'static> {
    let b = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(format!(" {title} "));
    if focused {
        b.border_style(Style::new().fg(ACCENT)).title_style(bold())
    } else {
        b
    }
}

/// A title cut to fit a block `width` cells wide (borders and padding).
pub fn title_in(title: &str, width: u16) -> String {
    fit(title, width.saturating_sub(4) as usize)
}

/// A popup of at most `width`×`height` centred inside `area`, never over
/// its outer border.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let inner = Rect::new(
        area.x + 1,
        area.y + 1,
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    let w = width.min(inner.width).max(1);
    let h = height.min(inner.height).max(1);
    Rect::new(
        inner.x + (inner.width - w) / 2,
        inner.y + (inner.height - h) / 2,
        w,
        h,
    )
}

/// Column widths of a table, computed once per frame from its constraints
/// the way the table splits them, so each cell is cut to its own column.
pub struct Grid {
    pub widths: Vec<u16>,
}

impl Grid {
    /// A grid for a table drawn inside a block `outer` cells wide.
    pub fn new(outer: u16, cols: &[Constraint]) -> Grid {
        let inner = outer.saturating_sub(2);
        let rects = Layout::horizontal(cols.to_vec())
            .spacing(1)
            .split(Rect::new(0, 0, inner, 1));
        Grid {
            widths: rects.iter().map(|r| r.width).collect(),
        }
    }

    pub fn constraints(&self) -> Vec<Constraint> {
        self.widths.iter().map(|w| Constraint::Length(*w)).collect()
    }

    fn w(&self, i: usize) -> usize {
        self.widths.get(i).copied().unwrap_or(0) as usize
    }

    /// Data text (escaped), cut with an ellipsis; empty shows [`NONE`].
    pub fn text(&self, i: usize, s: &str) -> Cell<'static> {
        let s = if s.is_empty() { NONE.into() } else { clean(s) };
        Cell::from(fit(&s, self.w(i)))
    }

    /// Text of the program's own (already safe), right aligned.
    pub fn right(&self, i: usize, s: &str) -> Cell<'static> {
        Cell::from(Line::from(fit(s, self.w(i))).right_aligned())
    }

    pub fn count(&self, i: usize, n: u64) -> Cell<'static> {
        self.right(i, &format::count_in(n, self.w(i)))
    }

    pub fn opt_count(&self, i: usize, n: Option<u64>) -> Cell<'static> {
        match n {
            Some(n) => self.count(i, n),
            None => self.right(i, NONE),
        }
    }

    pub fn money(&self, i: usize, x: f64, currency: &str) -> Cell<'static> {
        self.right(i, &format::money_in(x, currency, self.w(i)))
    }

    /// A header row; columns in `right` are right aligned like their data.
    pub fn header(&self, titles: &[&str], right: &[usize]) -> Row<'static> {
        Row::new(
            titles
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let t = fit(t, self.w(i));
                    if right.contains(&i) {
                        Cell::from(Line::from(t).right_aligned())
                    } else {
                        Cell::from(t)
                    }
                })
                .collect::<Vec<_>>(),
        )
        .style(bold())
    }
}

/// A bordered table of `rows` on `g`'s columns, titled (cut to fit), its
/// `selected` row (if any, an index among `rows`) in reverse video.
#[allow(clippy::too_many_arguments)]
pub fn draw_table(
    frame: &mut ratatui::Frame,
    area: Rect,
    g: &Grid,
    header: Row<'static>,
    rows: Vec<Row<'static>>,
    title: &str,
    focused: bool,
    selected_row: Option<usize>,
) {
    let mut state = ratatui::widgets::TableState::new().with_selected(selected_row);
    frame.render_stateful_widget(
        ratatui::widgets::Table::new(rows, g.constraints())
            .header(header)
            .block(block(&title_in(title, area.width), focused))
            .row_highlight_style(selected()),
        area,
        &mut state,
    );
}

/// Rows of a list `height` cells high (borders and a header), and the first
/// row to show so that `sel` is visible.
pub fn scroll_window(height: u16, sel: usize, header: bool) -> (usize, usize) {
    let fit = (height.saturating_sub(2 + header as u16) as usize).max(1);
    (sel.saturating_sub(fit - 1), fit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_cells_fit_their_columns() {
        let g = Grid::new(
            32,
            &[
                Constraint::Length(6),
                Constraint::Min(4),
                Constraint::Length(8),
            ],
        );
        assert_eq!(g.widths.iter().sum::<u16>() + 2, 30);
        assert_eq!(g.widths[0], 6);
        assert_eq!(g.widths[2], 8);
        assert_eq!(format::money_in(2180.02, "EUR", g.w(2)), "€2,180");
        assert_eq!(fit("björn.bohm@example.com", g.w(1)), "björn.bohm@ex…");
    }

    #[test]
    fn popups_stay_inside_the_outer_border() {
        let area = Rect::new(0, 0, 60, 15);
        let p = centered(area, 80, 40);
        assert!(p.x >= 1 && p.y >= 1);
        assert!(p.right() <= 59 && p.bottom() <= 14);
    }
}
