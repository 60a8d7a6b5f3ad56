//! The report's charts, drawn with plotters' SVG backend: columns over
//! periods (axes, gridlines, value labels, negative values below the zero
//! line, the running period hatched), horizontal bars with their figures,
//! and the match-weight chart of the fitted model. Without plotters' `ttf`
//! feature text sizes are estimated and the backend writes `<text>`
//! elements (plotters escapes their content), which the browser sets in
//! its own sans-serif.

use super::format::{self, text_px};
use anyhow::Result;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;

/// Chart width in pixels (the page shows it at this size, or smaller).
pub const WIDTH: u32 = 1080;
const FONT: &str = "sans-serif";
/// Tick and value labels, axis titles.
const LABEL_PX: f64 = 13.0;
const VALUE_PX: f64 = 11.5;
const TEXT: RGBColor = RGBColor(34, 34, 34);
const MUTED: RGBColor = RGBColor(96, 96, 96);
const AXIS: RGBColor = RGBColor(120, 120, 120);
const GRID: RGBColor = RGBColor(226, 226, 226);
/// The zero line (drawn over the bars; below it lie negative values).
pub const ZERO: RGBColor = RGBColor(17, 17, 17);
/// Bars of negative values (net revenue below zero, weights against a match).
pub const NEGATIVE: RGBColor = RGBColor(192, 57, 43);
pub const BLUE: RGBColor = RGBColor(42, 110, 170);
pub const GREEN: RGBColor = RGBColor(46, 139, 87);
pub const PURPLE: RGBColor = RGBColor(118, 82, 168);
pub const ORANGE: RGBColor = RGBColor(205, 110, 35);
pub const GREY: RGBColor = RGBColor(140, 140, 140);

/// A colour mixed with white: `amount` 0 keeps it, 1 is white.
pub fn lighten(c: RGBColor, amount: f64) -> RGBColor {
    let mix = |v: u8| (v as f64 + (255.0 - v as f64) * amount).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// How the SVG backend writes a colour (`#RRGGBB`), for the page's legends.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// Text of `px` CSS pixels (plotters writes `font-size` as size / 1.24).
fn font(px: f64) -> TextStyle<'static> {
    (FONT, px * 1.24).into_font().color(&TEXT)
}

/// The SVG the backend wrote, ready to sit inline in the page: the
/// namespace attribute is implied there (and would be the page's only URL).
fn inline(svg: String) -> String {
    svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
}

/// A linear axis from `lo` to `hi` with ticks and gridlines exactly at
/// `keys` (plotters' own `with_key_points` has no label formatter for
/// floating-point axes).
struct Axis {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
}

fn axis(range: Range<f64>, keys: Vec<f64>) -> Axis {
    Axis {
        lo: range.start,
        hi: range.end,
        keys,
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        if self.hi == self.lo {
            return (limit.0 + limit.1) / 2;
        }
        let t = (*v - self.lo) / (self.hi - self.lo);
        limit.0 + ((limit.1 - limit.0) as f64 * t).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// One column: its tick label, an optional label of its group under it
/// (the year), its value, an optional lower part drawn darker (new
/// customers of the active ones) and whether its period is still running.
pub struct Column {
    pub label: String,
    pub group: Option<String>,
    pub value: f64,
    pub part: Option<f64>,
    pub partial: bool,
}

pub struct Columns<'a> {
    pub bars: Vec<Column>,
    pub colour: RGBColor,
    pub part_colour: RGBColor,
    /// The y axis title (the unit).
    pub y_desc: String,
    pub axis_label: &'a dyn Fn(f64) -> String,
    pub value_label: &'a dyn Fn(f64) -> String,
    /// Where label thinning starts counting (see [`format::thinned`]).
    pub phase: usize,
    pub height: u32,
}

/// Diagonal hatching over the pixel rectangle (x0, y0)–(x1, y1).
fn hatch(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    colour: RGBColor,
) -> Result<()> {
    let (x0, x1) = (x0.min(x1) as f64, x0.max(x1) as f64);
    let (y0, y1) = (y0.min(y1) as f64, y0.max(y1) as f64);
    let h = y1 - y0;
    if h < 1.0 || x1 - x0 < 1.0 {
        return Ok(());
    }
    let mut c = x0 - h;
    while c < x1 {
        // The line from (c, y1) up and right to (c + h, y0), clipped to x0..x1.
        let t0 = ((x0 - c) / h).max(0.0);
        let t1 = ((x1 - c) / h).min(1.0);
        if t1 > t0 {
            let p = |t: f64| ((c + t * h).round() as i32, (y1 - t * h).round() as i32);
            root.draw(&PathElement::new(
                vec![p(t0), p(t1)],
                colour.stroke_width(2),
            ))?;
        }
        c += 7.0;
    }
    Ok(())
}

/// Columns over periods, with a y axis of `spec.axis_label` ticks,
/// gridlines, each column's value (thinned like the tick labels when they
/// do not fit), negative values below the zero line and the running period
/// lighter and hatched.
pub fn columns(spec: &Columns) -> Result<String> {
    let n = spec.bars.len().max(1);
    let lo = spec.bars.iter().map(|b| b.value).fold(0.0, f64::min);
    let hi = spec.bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let (lo, hi, ticks) = format::axis(lo, hi, 5, 0.1);
    let tick_w = ticks
        .iter()
        .map(|t| text_px(&(spec.axis_label)(*t), LABEL_PX))
        .fold(0.0, f64::max);
    let y_area = (tick_w + 14.0).ceil() as u32;
    let (w, h) = (WIDTH, spec.height);
    // Phase 1: where labels go.
    let plot_w = w.saturating_sub(y_area + 30 + 20).max(1) as f64;
    let slot = plot_w / n as f64;
    let label_w = spec
        .bars
        .iter()
        .map(|b| text_px(&b.label, LABEL_PX))
        .fold(0.0, f64::max);
    let labelled = format::thinned(n, format::label_step(slot, label_w), spec.phase);
    // Value labels sit above positive columns and below negative ones:
    // each side is thinned by its own widest label.
    let value_w = |negative: bool| {
        spec.bars
            .iter()
            .filter(|b| (b.value < 0.0) == negative)
            .map(|b| text_px(&(spec.value_label)(b.value), VALUE_PX))
            .fold(0.0, f64::max)
    };
    let valued = [false, true]
        .map(|neg| format::thinned(n, format::label_step(slot, value_w(neg)), spec.phase));
    let keys: Vec<f64> = labelled.iter().map(|i| *i as f64).collect();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        // Phase 2: axes and gridlines.
        let mut chart = ChartBuilder::on(&root)
            .margin_top(12)
            .margin_right(20)
            .x_label_area_size(48)
            .y_label_area_size(y_area + 30)
            .build_cartesian_2d(axis(-0.5..n as f64 - 0.5, keys), axis(lo..hi, ticks))?;
        let x_label = |x: &f64| {
            let i = x.round();
            if i < 0.0 {
                return String::new();
            }
            spec.bars
                .get(i as usize)
                .map(|b| b.label.clone())
                .unwrap_or_default()
        };
        let y_label = |y: &f64| (spec.axis_label)(*y);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .x_label_style(font(LABEL_PX))
            .y_label_style(font(LABEL_PX))
            .axis_desc_style(font(LABEL_PX).color(&MUTED))
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .y_desc(spec.y_desc.clone())
            .draw()?;
        // Phase 3: the columns.
        for (i, b) in spec.bars.iter().enumerate() {
            let x = i as f64;
            let base = if b.value < 0.0 { NEGATIVE } else { spec.colour };
            let fill = if b.partial { lighten(base, 0.55) } else { base };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.38, 0.0), (x + 0.38, b.value)],
                fill.filled(),
            )))?;
            if let Some(part) = b.part.filter(|_| !b.partial) {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.38, 0.0), (x + 0.38, part)],
                    spec.part_colour.filled(),
                )))?;
            }
            if b.partial {
                let a = chart.backend_coord(&(x - 0.38, 0.0));
                let z = chart.backend_coord(&(x + 0.38, b.value));
                hatch(&root, a, z, base)?;
                root.draw(&Rectangle::new([a, z], base.stroke_width(1)))?;
            }
        }
        let (zl, zr) = (
            chart.backend_coord(&(-0.5, 0.0)),
            chart.backend_coord(&(n as f64 - 0.5, 0.0)),
        );
        root.draw(&PathElement::new(vec![zl, zr], ZERO.stroke_width(1)))?;
        // Phase 4: value labels and the group (year) row.
        for (i, b) in spec.bars.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, b.value));
            if valued[usize::from(b.value < 0.0)].contains(&i) {
                let (dy, v) = if b.value < 0.0 {
                    (4, VPos::Top)
                } else {
                    (-4, VPos::Bottom)
                };
                let style = font(VALUE_PX).pos(Pos::new(HPos::Center, v));
                root.draw(&Text::new(
                    (spec.value_label)(b.value),
                    (px, py + dy),
                    style,
                ))?;
            }
            if let Some(g) = &b.group {
                let (_, bottom) = chart.backend_coord(&(0.0, lo));
                let style = font(LABEL_PX)
                    .color(&MUTED)
                    .pos(Pos::new(HPos::Center, VPos::Top));
                root.draw(&Text::new(g.clone(), (px, bottom + 26), style))?;
            }
        }
        root.present()?;
    }
    Ok(inline(svg))
}

/// One horizontal bar: its label on the left, its value, the text at its
/// end, its colour.
pub struct HBar {
    pub label: String,
    pub value: f64,
    pub text: String,
    pub colour: RGBColor,
}

/// Horizontal bars, one a row, with an x axis of `axis_label` ticks and
/// each bar's text at its end.
pub fn hbars(bars: &[HBar], x_desc: &str, axis_label: &dyn Fn(f64) -> String) -> Result<String> {
    let n = bars.len().max(1);
    let lo = bars.iter().map(|b| b.value).fold(0.0, f64::min);
    let hi = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let (lo, hi, ticks) = format::axis(lo, hi, 6, 0.0);
    let label_w = bars
        .iter()
        .map(|b| text_px(&b.label, LABEL_PX))
        .fold(0.0, f64::max);
    let text_w = bars
        .iter()
        .map(|b| text_px(&b.text, VALUE_PX))
        .fold(0.0, f64::max);
    let (w, h) = (WIDTH, 30 * n as u32 + 70);
    let keys: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin_top(8)
            .margin_right((text_w + 16.0).ceil() as u32)
            .x_label_area_size(46)
            .y_label_area_size((label_w + 16.0).ceil() as u32)
            .build_cartesian_2d(axis(lo..hi, ticks), axis(-0.5..n as f64 - 0.5, keys))?;
        let y_label = |y: &f64| {
            let i = n as i64 - 1 - y.round() as i64;
            usize::try_from(i)
                .ok()
                .and_then(|i| bars.get(i))
                .map(|b| b.label.clone())
                .unwrap_or_default()
        };
        let x_label = |x: &f64| axis_label(*x);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .x_label_style(font(LABEL_PX))
            .y_label_style(font(LABEL_PX))
            .axis_desc_style(font(LABEL_PX).color(&MUTED))
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc(x_desc)
            .draw()?;
        for (i, b) in bars.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y - 0.32), (b.value, y + 0.32)],
                b.colour.filled(),
            )))?;
            let (px, py) = chart.backend_coord(&(b.value, y));
            let (dx, hp) = if b.value < 0.0 {
                (-6, HPos::Right)
            } else {
                (6, HPos::Left)
            };
            let style = font(VALUE_PX).pos(Pos::new(hp, VPos::Center));
            root.draw(&Text::new(b.text.clone(), (px + dx, py), style))?;
        }
        let top = chart.backend_coord(&(0.0, n as f64 - 0.5));
        let bottom = chart.backend_coord(&(0.0, -0.5));
        root.draw(&PathElement::new(vec![top, bottom], ZERO.stroke_width(1)))?;
        root.present()?;
    }
    Ok(inline(svg))
}

/// One comparison of the match model: its name and each level's label
/// and weight (log2 of its Bayes factor m/u), best level first.
pub struct WeightPanel {
    pub title: String,
    pub levels: Vec<(String, f64)>,
}

/// Splink's "match weights chart": one panel per comparison on one shared
/// x axis, a bar per level from zero to its weight (positive, evidence for
/// a match, to the right; negative to the left).
pub fn match_weights(panels: &[WeightPanel]) -> Result<String> {
    const ROW: u32 = 22;
    const TITLE: u32 = 26;
    const AXIS_H: u32 = 50;
    let all = || panels.iter().flat_map(|p| p.levels.iter());
    let lo = all().map(|l| l.1).fold(0.0, f64::min);
    let hi = all().map(|l| l.1).fold(0.0, f64::max);
    let (lo, hi, ticks) = format::axis(lo, hi, 10, 0.02);
    let label_w = all().map(|l| text_px(&l.0, LABEL_PX)).fold(0.0, f64::max);
    let heights: Vec<u32> = panels
        .iter()
        .enumerate()
        .map(|(i, p)| {
            TITLE
                + ROW * p.levels.len().max(1) as u32
                + if i + 1 == panels.len() { AXIS_H } else { 6 }
        })
        .collect();
    let (w, h) = (WIDTH, heights.iter().sum::<u32>().max(1));
    let mut breaks = Vec::new();
    let mut y = 0;
    for ph in heights.iter().take(heights.len().saturating_sub(1)) {
        y += ph;
        breaks.push(y);
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_by_breakpoints::<u32, u32, _, _>([], &breaks);
        for (k, (panel, area)) in panels.iter().zip(&areas).enumerate() {
            let last = k + 1 == panels.len();
            let n = panel.levels.len().max(1);
            let keys: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let mut chart = ChartBuilder::on(area)
                .margin_top(TITLE)
                .margin_right(60)
                .x_label_area_size(if last { AXIS_H - 6 } else { 0 })
                .y_label_area_size((label_w + 16.0).ceil() as u32)
                .build_cartesian_2d(
                    axis(lo..hi, ticks.clone()),
                    axis(-0.5..n as f64 - 0.5, keys),
                )?;
            let y_label = |y: &f64| {
                let i = n as i64 - 1 - y.round() as i64;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| panel.levels.get(i))
                    .map(|l| l.0.clone())
                    .unwrap_or_default()
            };
            let x_label = |x: &f64| format!("{x:+.0}").replace("+0", "0");
            let mut mesh = chart.configure_mesh();
            mesh.disable_y_mesh()
                .bold_line_style(GRID)
                .axis_style(AXIS)
                .x_label_style(font(LABEL_PX))
                .y_label_style(font(LABEL_PX))
                .axis_desc_style(font(LABEL_PX).color(&MUTED))
                .x_label_formatter(&x_label)
                .y_label_formatter(&y_label);
            if last {
                mesh.x_desc("match weight: log2 of the Bayes factor m/u (bits)");
            }
            mesh.draw()?;
            let (ax, ay) = chart.backend_coord(&(lo, n as f64 - 0.5));
            let style = TextStyle::from(("sans-serif", 14.0).into_font().style(FontStyle::Bold));
            root.draw(&Text::new(
                panel.title.clone(),
                (ax - (label_w + 10.0) as i32, ay - TITLE as i32 + 6),
                style,
            ))?;
            for (i, (_, wgt)) in panel.levels.iter().enumerate() {
                let y = (n - 1 - i) as f64;
                let colour = if *wgt < 0.0 { NEGATIVE } else { GREEN };
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y - 0.34), (*wgt, y + 0.34)],
                    colour.filled(),
                )))?;
                let (px, py) = chart.backend_coord(&(*wgt, y));
                let (dx, hp) = if *wgt < 0.0 {
                    (-5, HPos::Right)
                } else {
                    (5, HPos::Left)
                };
                let style = font(VALUE_PX).pos(Pos::new(hp, VPos::Center));
                root.draw(&Text::new(format!("{wgt:+.1}"), (px + dx, py), style))?;
            }
            let top = chart.backend_coord(&(0.0, n as f64 - 0.5));
            let bottom = chart.backend_coord(&(0.0, -0.5));
            root.draw(&PathElement::new(vec![top, bottom], ZERO.stroke_width(1)))?;
        }
        root.present()?;
    }
    Ok(inline(svg))
}
