//! The two kinds of panel the pictures are made of: a line chart (series
//! against a step axis, with dashed reference lines) and a heat map (a grid
//! of values with its colour bar). Each draws into a given area, with its
//! caption, axis labels and, where it shows more than one series, a legend.
//!
//! Not here: what is drawn (`run_plots.rs`, `inspect_draw.rs`) and how a
//! picture becomes a file (`style.rs`).

use super::style::{AXIS, Area, CAPTION, FONT, TICKS, draw_err, scale_color};
use crate::error::Result;
use plotters::prelude::*;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A line through the points.
    Line,
    /// Dots only (sparse values such as validations).
    Points,
    /// A line with a dot on each point.
    LinePoints,
    /// A dashed horizontal line across the panel at the first point's y
    /// (a reference value such as a baseline).
    HLine,
    /// Triangles (events marked on top of other series).
    Triangle,
}

/// One series of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    pub mark: Mark,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, color: RGBColor, mark: Mark) -> Self {
        Series {
            label: label.into(),
            // Non-finite values (a skipped step's loss) are not drawn.
            points: points
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
            color,
            mark,
        }
    }

    /// A dashed reference line at `y`.
    pub fn hline(label: impl Into<String>, y: f64, color: RGBColor) -> Self {
        Series::new(label, vec![(0.0, y)], color, Mark::HLine)
    }
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LinePanel {
    pub caption: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// The y range starts at 0 (counts, rates) instead of the data's minimum.
    pub y_from_zero: bool,
}

/// [lo, hi] of `values` with a 5% margin; a flat or empty range is widened.
fn padded(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if from_zero {
        lo = lo.min(0.0);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let w = (hi.abs() * 0.1).max(1e-3);
        return (lo - w, hi + w);
    }
    let m = (hi - lo) * 0.05;
    (if from_zero && lo >= 0.0 { lo } else { lo - m }, hi + m)
}

/// Tick label of an axis value: short, without trailing zeros.
pub fn tick(v: &f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    // Below this, a tick is zero up to rounding (e.g. -1.1e-16).
    if a < 1e-12 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        trim(format!("{v:.3}"))
    }
}

/// Draws a line chart into `area`.
pub fn line_panel(area: &Area, p: &LinePanel) -> Result<()> {
    let area = area.titled(&p.caption, (FONT, CAPTION)).map_err(draw_err)?;
    let area = if p.series.len() > 1 {
        let entries: Vec<(&str, RGBColor, Mark)> =
            p.series.iter().map(|s| (s.label.as_str(), s.color, s.mark)).collect();
        legend_strip(&area, &entries)?
    } else {
        area
    };
    let data = || {
        p.series
            .iter()
            .filter(|s| s.mark != Mark::HLine)
            .flat_map(|s| s.points.iter())
    };
    let (x0, x1) = padded(data().map(|q| q.0), false);
    // Steps are whole numbers: no more ticks than there are of them.
    let x_ticks = if data().all(|q| q.0.fract() == 0.0) {
        ((x1 - x0).floor() as usize + 1).clamp(2, 10)
    } else {
        10
    };
    let (y0, y1) = padded(
        p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1)),
        p.y_from_zero,
    );
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .margin_top(4)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .axis_desc_style((FONT, AXIS))
        .label_style((FONT, TICKS))
        .x_labels(x_ticks)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(draw_err)?;
    for s in &p.series {
        let c = s.color;
        match s.mark {
            Mark::Line => chart.draw_series(LineSeries::new(s.points.clone(), c.stroke_width(2))),
            Mark::Points => chart.draw_series(s.points.iter().map(|&q| Circle::new(q, 3, c.filled()))),
            Mark::Triangle => chart.draw_series(s.points.iter().map(|&q| TriangleMarker::new(q, 6, c.filled()))),
            Mark::LinePoints => chart.draw_series(LineSeries::new(s.points.clone(), c.stroke_width(2)).point_size(3)),
            Mark::HLine => {
                let y = s.points.first().map_or(f64::NAN, |q| q.1);
                chart.draw_series(DashedLineSeries::new(vec![(x0, y), (x1, y)], 10, 6, c.stroke_width(2)))
            }
        }
        .map_err(draw_err)?;
    }
    Ok(())
}

/// A legend as rows of entries (sample mark + label) across the top of
/// `area`, outside the plot so that it never hides data. Returns the area
/// left below it.
pub fn legend_strip<'a>(area: &Area<'a>, entries: &[(&str, RGBColor, Mark)]) -> Result<Area<'a>> {
    let style = TextStyle::from((FONT, TICKS).into_font()).color(&BLACK);
    let (w, _) = area.dim_in_pixel();
    let (sample, gap, row_h) = (26i32, 24i32, 22i32);
    // Lay the entries out left to right, wrapping, then centre each row.
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut x = 0i32;
    for (i, (label, _, _)) in entries.iter().enumerate() {
        let (tw, _) = area.estimate_text_size(label, &style).map_err(draw_err)?;
        let ew = sample + 6 + tw as i32;
        if x > 0 && x + ew > w as i32 - 40 {
            rows.push(Vec::new());
            x = 0;
        }
        rows.last_mut().expect("a row").push((i, ew));
        x += ew + gap;
    }
    let height = rows.len() as i32 * row_h + 8;
    let (strip, rest) = area.split_vertically(height);
    for (r, row) in rows.iter().enumerate() {
        let total: i32 = row.iter().map(|e| e.1).sum::<i32>() + gap * (row.len() as i32 - 1);
        let mut x = (w as i32 - total) / 2;
        let y = r as i32 * row_h + row_h / 2 + 2;
        for &(i, ew) in row {
            let (label, c, mark) = entries[i];
            match mark {
                Mark::Points => strip.draw(&Circle::new((x + sample / 2, y), 4, c.filled())),
                Mark::Triangle => strip.draw(&TriangleMarker::new((x + sample / 2, y), 6, c.filled())),
                Mark::HLine => strip
                    .draw(&PathElement::new(vec![(x, y), (x + 10, y)], c.stroke_width(2)))
                    .and_then(|_| strip.draw(&PathElement::new(vec![(x + 16, y), (x + sample, y)], c.stroke_width(2)))),
                _ => strip.draw(&PathElement::new(vec![(x, y), (x + sample, y)], c.stroke_width(2))),
            }
            .map_err(draw_err)?;
            strip
                .draw(&Text::new(
                    label.to_string(),
                    (x + sample + 6, y - TICKS as i32 / 2 - 1),
                    style.clone(),
                ))
                .map_err(draw_err)?;
            x += ew + gap;
        }
    }
    Ok(rest)
}

/// A heat map: `values[r * cols + c]` drawn as cell (c, r), with cell
/// centres at integer coordinates `x_first + c`, `y_first + r`.
#[derive(Debug, Clone)]
pub struct Heatmap {
    pub caption: String,
    pub x_label: String,
    pub y_label: String,
    /// What the colour shows, with its unit (the colour bar's label).
    pub value_label: String,
    pub cols: usize,
    pub rows: usize,
    pub values: Vec<f64>,
    pub x_first: f64,
    pub y_first: f64,
}

/// Draws a heat map with its colour bar into `area`.
pub fn heatmap(area: &Area, h: &Heatmap) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let (main, bar) = area.split_horizontally(w.saturating_sub(COLORBAR_W));
    let (lo, hi) = padded(h.values.iter().copied(), false);
    let (lo, hi) = tight(&h.values).unwrap_or((lo, hi));
    let xs = h.x_first - 0.5..h.x_first + h.cols as f64 - 0.5;
    let ys = h.y_first - 0.5..h.y_first + h.rows as f64 - 0.5;
    let mut chart = ChartBuilder::on(&main)
        .caption(&h.caption, (FONT, CAPTION))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(xs, ys)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(&h.x_label)
        .y_desc(&h.y_label)
        .axis_desc_style((FONT, AXIS))
        .label_style((FONT, TICKS))
        .x_labels(h.cols.min(12))
        .y_labels(h.rows.min(12))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(draw_err)?;
    chart
        // Cells without a value (a forward without flows has no layers to
        // count) stay blank rather than failing the picture.
        .draw_series((0..h.rows).flat_map(|r| {
            (0..h.cols).filter_map(move |c| {
                let (x, y) = (h.x_first + c as f64, h.y_first + r as f64);
                let v = *h.values.get(r * h.cols + c)?;
                Some(Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    scale_color(v, lo, hi).filled(),
                ))
            })
        }))
        .map_err(draw_err)?;
    colorbar(&bar, lo, hi, &h.value_label)
}

/// The exact [min, max] of finite values, None when there are none.
fn tight(values: &[f64]) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    (lo <= hi).then_some(if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) })
}

/// Width of the strip a colour bar takes at the right of a picture.
pub const COLORBAR_W: u32 = 150;

/// A vertical colour bar for the viridis scale over [lo, hi], labelled.
pub fn colorbar(area: &Area, lo: f64, hi: f64, label: &str) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(50)
        .margin_bottom(62)
        .margin_right(14)
        .y_label_area_size(95)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(label)
        .axis_desc_style((FONT, AXIS))
        .label_style((FONT, TICKS))
        .y_label_formatter(&tick)
        .draw()
        .map_err(draw_err)?;
    let n = 100;
    chart
        .draw_series((0..n).map(|i| {
            let a = lo + (hi - lo) * i as f64 / n as f64;
            let b = lo + (hi - lo) * (i + 1) as f64 / n as f64;
            Rectangle::new([(0.0, a), (1.0, b)], scale_color((a + b) / 2.0, lo, hi).filled())
        }))
        .map_err(draw_err)?;
    Ok(())
}

/// Splits `area` under a picture title into `n` panels stacked vertically.
pub fn titled_rows<'a>(area: &Area<'a>, title: &str, n: usize) -> Result<Vec<Area<'a>>> {
    let inner = area.titled(title, (FONT, super::style::TITLE)).map_err(draw_err)?;
    Ok(inner.split_evenly((n, 1)))
}
