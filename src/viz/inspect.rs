//! `energyflow inspect`: one forward per chosen row with every intermediate
//! kept (`flow::FlowTrace` attached to the forward's `Workspace`), the
//! numbers behind each picture (`inspect.json`), the pictures
//! (`inspect_draw.rs`) and an `index.html` that shows them.
//!
//! Each row runs alone (a batch of one) in inference mode (no dropout, no
//! noise), so its pictures and counts are that forward's own: in a larger
//! batch, the capacity and the early stop are shared between samples.
//!
//! Per row: the mapped input energies [H, W]; the output surface [H, W];
//! the flow trajectories (ids kept across compaction, children with their
//! parents); per propagation step the active flows, the completions by
//! kind, the spawned and dropped children; the flows per depth layer and
//! the mean number of flows within one cell of a flow, both from the
//! spatial grid (`flow::spatial::LatticeGrid`); the output against the
//! target with their cosine.

use super::html::{Page, Section};
use super::inspect_draw;
use crate::checkpoint;
use crate::config::{EnergyConfig, RuntimeConfig};
use crate::device;
use crate::error::{Error, Result};
use crate::flow::spatial::LatticeGrid;
use crate::flow::{FlowStats, FlowTrace};
use crate::io::{Matrix, cosine, read_file, read_matrix};
use crate::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Workspace};
use burn::tensor::Device;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Trajectories drawn (and stored in inspect.json) at most per row; above
/// it whole families are kept (see [`flow_paths`]).
pub const MAX_TRAJECTORIES: usize = 300;

/// What a user asks of `inspect`.
#[derive(Debug, Clone)]
pub struct InspectRequest {
    /// A checkpoint folder or a run folder (its best/ checkpoint).
    pub checkpoint: PathBuf,
    /// safetensors file with "input" [N, E_in] and optionally "target".
    pub input: PathBuf,
    pub rows: Vec<usize>,
    pub out: PathBuf,
}

/// What `inspect` wrote.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub files: Vec<PathBuf>,
    pub json: PathBuf,
    pub index: PathBuf,
    pub notes: Vec<String>,
}

/// Where `inspect` draws by default: CHECKPOINT/inspect.
pub fn default_dir(checkpoint: &Path) -> PathBuf {
    checkpoint.join("inspect")
}

/// Parses `--rows` ("0,3,7"): row indices, each once.
pub fn parse_rows(s: &str) -> Result<Vec<usize>> {
    let mut rows = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        let r: usize = p.parse().map_err(|_| {
            Error::input(format!(
                "--rows {s:?}: {p:?} is not a row index (expected a comma-separated list such as 0,3,7)"
            ))
        })?;
        if rows.contains(&r) {
            return Err(Error::input(format!("--rows {s:?}: row {r} is listed twice")));
        }
        rows.push(r);
    }
    Ok(rows)
}

/// The numbers of `inspect.json`.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub checkpoint: String,
    pub input: String,
    /// Lattice width W, height H and depth D.
    pub lattice: [usize; 3],
    /// How the rows were run.
    pub mode: String,
    pub rows: Vec<RowReport>,
}

/// Everything drawn for one row.
#[derive(Debug, Clone, Serialize)]
pub struct RowReport {
    /// Row index in the input file.
    pub row: usize,
    /// The forward's flow statistics, as `infer` prints them.
    pub stats: FlowStats,
    /// Cosine of output and target (None without a target).
    pub cosine: Option<f64>,
    /// Mapped input energies [H][W] (the starting flows' energies).
    pub input_energy: Vec<Vec<f32>>,
    /// Output surface [H][W].
    pub surface: Vec<Vec<f32>>,
    /// Per propagation step.
    pub steps: Vec<StepReport>,
    /// Flows projected after the loop (= stats.completed_final).
    pub final_projected: usize,
    /// Flows the trace followed (= stats.flows_created).
    pub flows_traced: usize,
    /// Flows whose trajectories are drawn (all, or every k-th id).
    pub trajectories: Vec<FlowPath>,
    pub output: Vec<f32>,
    pub target: Option<Vec<f32>>,
    /// The row's pictures, relative to inspect.json.
    pub pictures: Vec<String>,
}

/// One propagation step of one row.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepReport {
    /// 1-based step number.
    pub step: usize,
    /// Flows active at the start of the step (= stats.active_per_step).
    pub active: usize,
    pub completed_z0: usize,
    pub completed_zd: usize,
    pub completed_projected: usize,
    pub spawned: usize,
    pub dropped: usize,
    /// Flows at the start of the step per depth layer 0..=D (spatial grid).
    pub layer_counts: Vec<usize>,
    /// Lattice cells holding at least one of them.
    pub occupied_cells: usize,
    /// Mean number of other flows within one cell (in x, y and z) of a
    /// flow (the grid's radius query).
    pub mean_neighbours: f64,
}

/// One flow's path: normalised (x, y, z) and energy from birth to its
/// completion on a plane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowPath {
    pub id: u32,
    pub parent: Option<u32>,
    /// The step that spawned it (0 for a starting flow).
    pub born: u32,
    /// [x, y, z, energy] per point.
    pub points: Vec<[f32; 4]>,
}

/// Per-step numbers of a trace: the step's events and, from the spatial
/// grid over the flows active at its start, the density per layer.
pub fn step_reports(trace: &FlowTrace, grid: &mut LatticeGrid) -> Vec<StepReport> {
    let mut near = Vec::new();
    trace
        .steps
        .iter()
        .zip(&trace.frames)
        .enumerate()
        .map(|(t, (ev, frame))| {
            grid.rebuild(&frame.pos);
            let mut neighbours = 0usize;
            for &p in &frame.pos {
                let (ix, iy, iz) = grid.cell_coords(p);
                near.clear();
                grid.within_radius(ix, iy, iz, 1, &mut near);
                neighbours += near.len().saturating_sub(1);
            }
            StepReport {
                step: t + 1,
                active: frame.len(),
                completed_z0: ev.completed_z0,
                completed_zd: ev.completed_zd,
                completed_projected: ev.completed_projected,
                spawned: ev.spawned,
                dropped: ev.dropped,
                layer_counts: grid.layer_counts(),
                occupied_cells: grid.occupied_cells(),
                mean_neighbours: neighbours as f64 / frame.len().max(1) as f64,
            }
        })
        .collect()
}

/// The paths of the traced flows. When there are more than `max`, whole
/// families are kept (a starting flow with all its descendants, so that
/// every drawn child starts on a drawn parent): every k-th starting flow,
/// with the smallest k that keeps at most `max` paths (or only the first
/// family, when it alone is larger).
pub fn flow_paths(trace: &FlowTrace, max: usize) -> Vec<FlowPath> {
    let n = trace.flows();
    let mut points: Vec<Vec<[f32; 4]>> = vec![Vec::new(); n];
    let mut add = |id: u32, p: [f32; 3], e: f32| points[id as usize].push([p[0], p[1], p[2], e]);
    for (t, frame) in trace.frames.iter().enumerate() {
        for k in 0..frame.len() {
            add(frame.ids[k], frame.pos[k], frame.energy[k]);
        }
        for e in trace.steps.get(t).map_or(&[][..], |s| &s.ended) {
            add(e.id, e.pos, e.energy);
        }
    }
    for e in &trace.final_ended {
        add(e.id, e.pos, e.energy);
    }
    // A parent's id is always smaller than its child's, so one pass in id
    // order finds every flow's starting ancestor.
    let mut root = vec![0u32; n];
    for id in 0..n {
        root[id] = trace.parent[id].map_or(id as u32, |p| root[p as usize]);
    }
    let family = |k: usize| (0..n).filter(|&id| (root[id] as usize).is_multiple_of(k)).count();
    let mut k = 1;
    while family(k) > max.max(1) && k < n {
        k += 1;
    }
    points
        .into_iter()
        .enumerate()
        .filter(|&(id, _)| (root[id] as usize).is_multiple_of(k))
        .map(|(id, points)| FlowPath {
            id: id as u32,
            parent: trace.parent[id],
            born: trace.born[id],
            points,
        })
        .collect()
}

/// `v` [H * W] as rows of W.
fn grid_rows(v: &[f32], w: usize) -> Vec<Vec<f32>> {
    v.chunks(w.max(1)).map(<[f32]>::to_vec).collect()
}

/// Runs row `x` alone through `model` with a trace and gathers its numbers.
fn inspect_row(
    model: &EnergyFlowModel,
    cfg: &EnergyConfig,
    settings: &ForwardSettings,
    row: usize,
    x: &[f32],
    target: Option<&[f32]>,
    dev: &Device,
) -> Result<RowReport> {
    let mut ws = Workspace {
        trace: Some(FlowTrace::new()),
        ..Workspace::default()
    };
    let input = device::matrix(x.to_vec(), 1, x.len(), dev);
    let out = model.forward(input, settings, &mut ws, &ForwardOptions::inference(settings))?;
    let trace = ws
        .trace
        .take()
        .ok_or_else(|| Error::Internal("the forward dropped its trace".into()))?;
    let output = device::to_vec(out.output)?;
    let surface = device::to_vec(out.surface)?;
    let w = cfg.model.lattice_width;
    // A pass-through starts no flow: its surface is the mapped energies.
    let start = match trace.frames.first() {
        Some(f) => f.energy.clone(),
        None if cfg.flow.pass_through => surface.clone(),
        None => Vec::new(),
    };
    let mut grid = LatticeGrid::new(cfg.lattice());
    Ok(RowReport {
        row,
        cosine: target.map(|t| cosine(&output, t)),
        input_energy: grid_rows(&start, w),
        surface: grid_rows(&surface, w),
        steps: step_reports(&trace, &mut grid),
        final_projected: trace.final_ended.len(),
        flows_traced: trace.flows(),
        trajectories: flow_paths(&trace, MAX_TRAJECTORIES),
        output,
        target: target.map(<[f32]>::to_vec),
        stats: out.stats,
        pictures: Vec::new(),
    })
}

/// The input rows and, when the file has a fitting one, the targets.
fn read_rows(
    path: &Path,
    cfg: &EnergyConfig,
    rows: &[usize],
    notes: &mut Vec<String>,
) -> Result<(Matrix, Option<Matrix>)> {
    let bytes = read_file(path)?;
    let input = read_matrix(path, &bytes, "input")?;
    if input.cols != cfg.model.input_embedding_dim {
        return Err(Error::input(format!(
            "{}: tensor \"input\" has width {}, the model expects {} (model.input_embedding_dim)",
            path.display(),
            input.cols,
            cfg.model.input_embedding_dim
        )));
    }
    if let Some(&r) = rows.iter().find(|&&r| r >= input.rows) {
        return Err(Error::input(format!(
            "--rows: row {r} is out of range: {} has {} rows (0..={})",
            path.display(),
            input.rows,
            input.rows - 1
        )));
    }
    let has_target = safetensors::SafeTensors::deserialize(&bytes)
        .map(|st| st.names().contains(&"target"))
        .unwrap_or(false);
    let target = if has_target {
        let t = read_matrix(path, &bytes, "target")?;
        if t.rows == input.rows && t.cols == cfg.model.output_embedding_dim {
            Some(t)
        } else {
            notes.push(format!(
                "{}: tensor \"target\" is [{}, {}], not [{}, {}]: drawn without targets",
                path.display(),
                t.rows,
                t.cols,
                input.rows,
                cfg.model.output_embedding_dim
            ));
            None
        }
    } else {
        notes.push(format!(
            "{}: no tensor \"target\": outputs drawn without targets",
            path.display()
        ));
        None
    };
    Ok((input, target))
}

/// Runs `inspect` (see the module docs) on `dev`, executing as `runtime`
/// says: writes the pictures, inspect.json and index.html into `req.out`
/// (created).
pub fn inspect(req: &InspectRequest, runtime: &RuntimeConfig, dev: &Device) -> Result<Inspection> {
    if req.rows.is_empty() {
        return Err(Error::input("--rows: no row to inspect"));
    }
    let ckpt = checkpoint::resolve(&req.checkpoint)?;
    // The weights with the checkpoint.json that names them, also beside a
    // running train.
    let (model, meta) = checkpoint::load_model(&ckpt, runtime.kernels, dev)?;
    let cfg = &meta.config;
    let mut notes = Vec::new();
    if cfg.flow.pass_through {
        notes.push(
            "the model's propagation is a pass-through (flow.pass_through): no flow starts, so the flow pictures are empty and the surface is the mapped energies"
                .to_string(),
        );
    }
    let (input, target) = read_rows(&req.input, cfg, &req.rows, &mut notes)?;
    // The recorder follows the host step's bookkeeping.
    let settings = ForwardSettings::for_runtime(cfg, runtime, dev).with_step(crate::flow::StepPath::Host);
    std::fs::create_dir_all(&req.out).map_err(|e| Error::io(&req.out, e))?;
    let mut report = InspectReport {
        checkpoint: ckpt.display().to_string(),
        input: req.input.display().to_string(),
        lattice: [
            cfg.model.lattice_width,
            cfg.model.lattice_height,
            cfg.flow.lattice_depth,
        ],
        mode: "each row alone (a batch of one), inference mode: no dropout, no exploration noise".into(),
        rows: Vec::new(),
    };
    let mut files = Vec::new();
    let mut sections = Vec::new();
    for &r in &req.rows {
        let mut row = inspect_row(
            &model,
            cfg,
            &settings,
            r,
            input.row(r),
            target.as_ref().map(|t| t.row(r)),
            dev,
        )?;
        let figures = inspect_draw::draw_row(&row, cfg, &req.out)?;
        row.pictures = figures.iter().map(|f| f.file.clone()).collect();
        files.extend(figures.iter().map(|f| req.out.join(&f.file)));
        sections.push(Section {
            heading: format!("Row {r}"),
            figures,
        });
        report.rows.push(row);
    }
    let json = req.out.join("inspect.json");
    let text = serde_json::to_vec(&report).map_err(|e| Error::Internal(e.to_string()))?;
    crate::io::write_atomic(&json, &text)?;
    let page = Page {
        title: format!("Inside the lattice: {}", ckpt.display()),
        notes: vec![format!(
            "Rows {} of {}, lattice {} x {} x {}; {}. Drawn by `energyflow inspect`.",
            req.rows.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
            req.input.display(),
            cfg.model.lattice_width,
            cfg.model.lattice_height,
            cfg.flow.lattice_depth,
            report.mode
        )]
        .into_iter()
        .chain(notes.iter().cloned())
        .collect(),
        sections,
        links: vec!["inspect.json".into()],
    };
    let index = req.out.join("index.html");
    page.write(&index)?;
    Ok(Inspection {
        files,
        json,
        index,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn above_the_limit_whole_families_are_drawn() {
        // Starting flows 0..4; children 4 (of 0), 5 (of 4), 6 (of 2).
        let mut t = FlowTrace::new();
        t.parent = vec![None, None, None, None, Some(0), Some(4), Some(2)];
        t.born = vec![0, 0, 0, 0, 1, 2, 1];
        let ids = |paths: Vec<FlowPath>| paths.iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids(flow_paths(&t, 10)), (0..7).collect::<Vec<_>>());
        // Every 2nd family is 5 flows, every 3rd (roots 0 and 3) is 4.
        assert_eq!(ids(flow_paths(&t, 4)), vec![0, 3, 4, 5]);
        // One family larger than the limit is still drawn whole.
        assert_eq!(ids(flow_paths(&t, 1)), vec![0, 4, 5]);
    }

    #[test]
    fn rows_parse_or_are_refused_in_one_line() {
        assert_eq!(parse_rows("0,3, 7").unwrap(), vec![0, 3, 7]);
        for bad in ["", "1,,2", "a", "-1", "1,1"] {
            let e = parse_rows(bad).unwrap_err().to_string();
            assert!(e.starts_with("--rows") && !e.contains('\n'), "{bad}: {e}");
        }
    }
}
