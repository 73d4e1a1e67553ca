//! The pictures of one inspected row, drawn from its numbers
//! (`inspect::RowReport`, the same numbers inspect.json holds): the input
//! energy map, the surface, the trajectories, the steps, the density per
//! layer, and the output against the target.

use super::chart::{
    COLORBAR_W, Heatmap, LinePanel, Mark, Series, colorbar, heatmap, legend_strip, line_panel, tick, titled_rows,
};
use super::html::Figure;
use super::inspect::RowReport;
use super::style::{
    AXIS, Area, CAPTION, FONT, MAP, PAIR, PALETTE, TALL, TICKS, TITLE, WIDE, draw_err, scale_color, write_png,
};
use crate::config::EnergyConfig;
use crate::error::Result;
use crate::flow::LoopStop;
use plotters::prelude::*;
use std::path::Path;

/// Draws every picture of `row` into `out`; returns them as page figures.
pub fn draw_row(row: &RowReport, cfg: &EnergyConfig, out: &Path) -> Result<Vec<Figure>> {
    let r = row.row;
    let name = |what: &str| format!("row{r}-{what}.png");
    let (w, h) = (cfg.model.lattice_width, cfg.model.lattice_height);
    let s = &row.stats;
    let mut figs = Vec::new();
    let mut add = |file: String, caption: String| figs.push(Figure { file, caption });

    let file = name("input");
    let map = |caption: String, rows: &[Vec<f32>], value: &str| Heatmap {
        caption,
        x_label: "x (lattice column)".into(),
        y_label: "y (lattice row)".into(),
        value_label: value.into(),
        cols: w,
        rows: h,
        values: rows.iter().flatten().map(|&v| v as f64).collect(),
        x_first: 0.0,
        y_first: 0.0,
    };
    let input_map = map(
        format!("Row {r}: mapped input energies on the input plane"),
        &row.input_energy,
        "energy (dimensionless)",
    );
    write_png(&out.join(&file), MAP, |root| heatmap(root, &input_map))?;
    add(
        file,
        format!(
            "The input mapper's energies for row {r}: one per surface cell, {w} x {h}; each starts a flow at z_in."
        ),
    );

    let file = name("surface");
    let surface_map = map(
        format!("Row {r}: output surface (aggregated completed flows)"),
        &row.surface,
        "surface value (dimensionless)",
    );
    write_png(&out.join(&file), MAP, |root| heatmap(root, &surface_map))?;
    add(
        file,
        format!(
            "The surface the collection built: the softmax-weighted energies of the flows that completed in each cell ({} of {} cells received a flow; empty cells are 0).",
            s.cells_covered, s.cells_total
        ),
    );

    let file = name("trajectories");
    let (lo, hi) = energy_range(row);
    write_png(&out.join(&file), PAIR, |root| trajectories(root, row, cfg))?;
    add(
        file,
        format!(
            "Paths of {} of the {} flows (whole families: starting flows with all their spawned descendants; ids kept across compaction) from the input plane to the output planes z = -1 and z = +1, projected on x-z and y-z; each segment is coloured by the energy at its end (colour scale: 2nd to 98th percentile of the energies, {lo:.3} to {hi:.3}); triangles mark where a child was spawned, at its parent's position.",
            row.trajectories.len(),
            row.flows_traced
        ),
    );

    let file = name("steps");
    write_png(&out.join(&file), TALL, |root| steps(root, row))?;
    let why = match s.stop_reason {
        LoopStop::StepBudget => "the step budget ran out",
        LoopStop::NoActive => "no flow was left active",
        LoopStop::Converged => "the completed share reached the convergence threshold",
        LoopStop::Patience => "completions stopped improving",
    };
    add(
        file,
        format!(
            "Per propagation step: flows active at the start of the step (top); flows completed by kind, children spawned and dropped (bottom). {} steps; the loop stopped because {why}; {} flows were projected after it.",
            s.propagation_steps, row.final_projected
        ),
    );

    let file = name("density");
    write_png(&out.join(&file), TALL, |root| density(root, row, cfg))?;
    add(file, "Flows per depth layer at the start of each propagation step (top) and the mean number of other flows within one cell of a flow (bottom), both from the spatial grid flow::spatial::LatticeGrid.".to_string());

    let file = name("output");
    write_png(&out.join(&file), WIDE, |root| output(root, row))?;
    add(
        file,
        match row.cosine {
            Some(c) => format!(
                "Output embedding against the target for row {r}, components sorted by the target's value; cosine {c:.4}."
            ),
            None => format!("Output embedding of row {r}, components sorted by value (the input file has no target)."),
        },
    );
    Ok(figs)
}

/// Flow paths on x-z and y-z, coloured by energy, children marked.
fn trajectories(root: &Area, row: &RowReport, cfg: &EnergyConfig) -> Result<()> {
    let area = root
        .titled(
            &format!(
                "Row {}: flow trajectories ({} of {} flows), coloured by energy",
                row.row,
                row.trajectories.len(),
                row.flows_traced
            ),
            (FONT, TITLE),
        )
        .map_err(draw_err)?;
    let z_in = cfg.lattice().z_in() as f64;
    let area = legend_strip(
        &area,
        &[
            ("child spawned here", RGBColor(0, 0, 0), Mark::Triangle),
            ("output planes z = -1, z = +1", RGBColor(90, 90, 90), Mark::Line),
            ("input plane z_in", RGBColor(90, 90, 90), Mark::HLine),
        ],
    )?;
    let (w, _) = area.dim_in_pixel();
    let (panels, bar) = area.split_horizontally(w.saturating_sub(COLORBAR_W));
    let (lo, hi) = energy_range(row);
    for (axis, part) in panels.split_evenly((1, 2)).iter().enumerate() {
        let name = ["x", "y"][axis];
        let mut chart = ChartBuilder::on(part)
            .caption(format!("{name} - z"), (FONT, CAPTION))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(-1.08f64..1.08, -1.08f64..1.08)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(format!("{name} (normalised lattice coordinate)"))
            .y_desc("z (normalised depth)")
            .axis_desc_style((FONT, AXIS))
            .label_style((FONT, TICKS))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(draw_err)?;
        let plane = RGBColor(90, 90, 90);
        for z in [-1.0, 1.0] {
            chart
                .draw_series(LineSeries::new(vec![(-1.08, z), (1.08, z)], plane.stroke_width(2)))
                .map_err(draw_err)?;
        }
        chart
            .draw_series(DashedLineSeries::new(
                vec![(-1.08, z_in), (1.08, z_in)],
                8,
                6,
                plane.stroke_width(1),
            ))
            .map_err(draw_err)?;
        for p in &row.trajectories {
            chart
                .draw_series(p.points.windows(2).map(|s| {
                    let (a, b) = (s[0], s[1]);
                    PathElement::new(
                        vec![(a[axis] as f64, a[2] as f64), (b[axis] as f64, b[2] as f64)],
                        scale_color(b[3] as f64, lo, hi).stroke_width(1),
                    )
                }))
                .map_err(draw_err)?;
        }
        chart
            .draw_series(
                row.trajectories
                    .iter()
                    .filter(|p| p.parent.is_some())
                    .filter_map(|p| p.points.first())
                    .map(|q| TriangleMarker::new((q[axis] as f64, q[2] as f64), 3, BLACK.filled())),
            )
            .map_err(draw_err)?;
    }
    colorbar(&bar, lo, hi, "energy (dimensionless)")
}

/// The colour range of the trajectories' energies: their 2nd to 98th
/// percentile, so that a few extreme flows do not wash out the rest
/// (values outside take the end colours).
fn energy_range(row: &RowReport) -> (f64, f64) {
    let mut e: Vec<f64> = row
        .trajectories
        .iter()
        .flat_map(|p| p.points.iter().map(|q| q[3] as f64))
        .filter(|v| v.is_finite())
        .collect();
    if e.is_empty() {
        return (0.0, 1.0);
    }
    e.sort_by(f64::total_cmp);
    let at = |q: f64| e[((e.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = (at(0.02), at(0.98));
    if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) }
}

/// Per-step counts.
fn steps(root: &Area, row: &RowReport) -> Result<()> {
    let c = PALETTE;
    let per = |f: fn(&super::inspect::StepReport) -> usize| {
        row.steps
            .iter()
            .map(|s| (s.step as f64, f(s) as f64))
            .collect::<Vec<_>>()
    };
    let panels = [
        LinePanel {
            caption: "Active flows".into(),
            x_label: "propagation step".into(),
            y_label: "flows at the start of the step".into(),
            series: vec![Series::new("active flows", per(|s| s.active), c[0], Mark::LinePoints)],
            y_from_zero: true,
        },
        LinePanel {
            caption: "Completions and children".into(),
            x_label: "propagation step".into(),
            y_label: "flows in the step".into(),
            series: vec![
                Series::new("crossed z0 (z = -1)", per(|s| s.completed_z0), c[0], Mark::LinePoints),
                Series::new("crossed zD (z = +1)", per(|s| s.completed_zd), c[1], Mark::LinePoints),
                Series::new("projected", per(|s| s.completed_projected), c[2], Mark::LinePoints),
                Series::new("children spawned", per(|s| s.spawned), c[4], Mark::LinePoints),
                Series::new("children dropped", per(|s| s.dropped), c[3], Mark::LinePoints),
            ],
            y_from_zero: true,
        },
    ];
    let title = format!("Row {}: flows per propagation step", row.row);
    for (area, p) in titled_rows(root, &title, 2)?.iter().zip(&panels) {
        line_panel(area, p)?;
    }
    Ok(())
}

/// Flows per layer and step (heat map) and the local crowding.
fn density(root: &Area, row: &RowReport, cfg: &EnergyConfig) -> Result<()> {
    let layers = cfg.flow.lattice_depth + 1;
    let t = row.steps.len();
    let mut values = vec![0.0; layers * t];
    for (j, s) in row.steps.iter().enumerate() {
        for (iz, &n) in s.layer_counts.iter().enumerate() {
            values[iz * t + j] = n as f64;
        }
    }
    let parts = titled_rows(root, &format!("Row {}: flow density in the lattice", row.row), 2)?;
    heatmap(
        &parts[0],
        &Heatmap {
            caption: "Flows per depth layer".into(),
            x_label: "propagation step".into(),
            y_label: "depth layer (0 = plane z0)".into(),
            value_label: "flows in the layer".into(),
            cols: t,
            rows: layers,
            values,
            x_first: 1.0,
            y_first: 0.0,
        },
    )?;
    // As wide as the heat map's plot, which leaves room for a colour bar.
    let (w, _) = parts[1].dim_in_pixel();
    let (left, _) = parts[1].split_horizontally(w.saturating_sub(COLORBAR_W));
    line_panel(
        &left,
        &LinePanel {
            caption: "Crowding".into(),
            x_label: "propagation step".into(),
            y_label: "other flows within one cell (mean)".into(),
            series: vec![Series::new(
                "mean neighbours",
                row.steps.iter().map(|s| (s.step as f64, s.mean_neighbours)).collect(),
                PALETTE[0],
                Mark::LinePoints,
            )],
            y_from_zero: true,
        },
    )
}

/// The output's components against the target's, sorted by the target.
fn output(root: &Area, row: &RowReport) -> Result<()> {
    let c = PALETTE;
    let (order, title, series) = match (&row.target, row.cosine) {
        (Some(t), Some(cos)) => {
            let mut order: Vec<usize> = (0..t.len()).collect();
            order.sort_by(|&a, &b| t[a].total_cmp(&t[b]).then(a.cmp(&b)));
            let tgt: Vec<(f64, f64)> = order
                .iter()
                .enumerate()
                .map(|(k, &i)| (k as f64, t[i] as f64))
                .collect();
            (
                order,
                format!("Row {}: output vs target embedding, cosine {cos:.4}", row.row),
                vec![Series::new("target", tgt, c[1], Mark::Line)],
            )
        }
        _ => {
            let mut order: Vec<usize> = (0..row.output.len()).collect();
            order.sort_by(|&a, &b| row.output[a].total_cmp(&row.output[b]).then(a.cmp(&b)));
            (
                order,
                format!("Row {}: output embedding (no target in the file)", row.row),
                Vec::new(),
            )
        }
    };
    let out: Vec<(f64, f64)> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| (k as f64, row.output[i] as f64))
        .collect();
    let mut series = series;
    series.push(Series::new("output", out, c[0], Mark::Points));
    let sorted_by = if row.target.is_some() { "target" } else { "output" };
    line_panel(
        root,
        &LinePanel {
            caption: title,
            x_label: format!("component rank (sorted by the {sorted_by}'s value)"),
            y_label: "component value (embedding units)".into(),
            series,
            y_from_zero: false,
        },
    )
}
