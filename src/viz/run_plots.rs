//! `energyflow plot RUN`: the learning curves of a run folder, drawn from
//! its `metrics.jsonl` (`train::metrics::read_records`), with an
//! `index.html` that shows them with short captions.
//!
//! The pictures: training and held-out loss; held-out cosine against the
//! identity and ridge baselines and the learned MLPs kept in the folder
//! (identity and ridge recomputed as `eval` computes them, on the
//! run's held-out split of the data its checkpoint records); learning rate
//! and gradient norm; flows created / spawned / dropped and completions by
//! kind; step time and samples per second.
//!
//! Not here: the pictures of one forward (`inspect.rs`), how a chart is
//! drawn (`chart.rs`).

use super::chart::{LinePanel, Mark, Series, line_panel, titled_rows};
use super::html::{Figure, Page, Section};
use super::style::{PALETTE, TALL, WIDE, light, write_png};
use crate::checkpoint::{self, Meta};
use crate::error::{Error, Result};
use crate::train::baselines::{self, LearnedBaselines};
use crate::train::eval::{self, Baselines};
use crate::train::metrics::{Record, StepRecord, ValidationRecord, read_records};
use std::path::{Path, PathBuf};

/// What `plot` wrote.
#[derive(Debug, Clone)]
pub struct RunPlots {
    /// The pictures, in the order the page shows them.
    pub files: Vec<PathBuf>,
    /// The page showing them.
    pub index: PathBuf,
    /// What the user should know (e.g. why the baselines are missing).
    pub notes: Vec<String>,
}

/// Where `plot` draws by default: RUN/plots.
pub fn default_dir(run: &Path) -> PathBuf {
    run.join("plots")
}

/// The step and validation records of a run folder, refused when the
/// folder has no metrics or no step yet.
pub fn run_records(run: &Path) -> Result<(Vec<StepRecord>, Vec<ValidationRecord>)> {
    let path = run.join(crate::train::plan::names::METRICS);
    // Not is_file: a pipe is read as every input is (`io::read_file`).
    if !path.exists() {
        return Err(Error::input(format!(
            "{}: no metrics.jsonl there (not a training run folder?)",
            run.display()
        )));
    }
    let (mut steps, mut vals) = (Vec::new(), Vec::new());
    for r in read_records(&path)? {
        match r {
            Record::Step(s) => steps.push(s),
            Record::Validation(v) => vals.push(v),
        }
    }
    if steps.is_empty() {
        return Err(Error::input(format!(
            "{}: no training step recorded yet",
            path.display()
        )));
    }
    Ok((steps, vals))
}

/// The baselines of the run and a sentence saying how they were obtained,
/// or the reason they could not be.
fn run_baselines(
    run: &Path,
    meta: &Result<Meta>,
) -> std::result::Result<(Baselines, Option<LearnedBaselines>, String), String> {
    let meta = meta
        .as_ref()
        .map_err(|e| format!("no baselines: no checkpoint to find the run's data ({e})"))?;
    let why = |e: Error| format!("no baselines: {e}");
    let data = eval::recorded_data(meta).map_err(why)?;
    let (split, note) = crate::train::plan::checkpoint_split(meta, &data).map_err(why)?;
    let b = eval::baselines(&data, &split.train, &split.val).map_err(why)?;
    // Only the kept fit: a plot must not spend the better part of a minute
    // training baselines; `train` and `eval` keep them in the folder.
    let learned = meta
        .train
        .as_ref()
        .and_then(|t| baselines::cached(run, &data, &split, t.seed, &meta.config.train));
    let learned_how = if learned.is_some() {
        format!(
            " The MLP and residual MLP ({}-{h}-{h}-{}, early-stopped on the validation split) are the ones kept in the run's {}.",
            data.input.cols,
            data.target.cols,
            baselines::FILE,
            h = baselines::HIDDEN
        )
    } else {
        format!(
            " The learned baselines are not drawn: the run folder keeps no {} for this data and split (`eval` fits and keeps them).",
            baselines::FILE
        )
    };
    let how = format!(
        "Baselines recomputed as `eval --split validation` computes them on the validation split the curves are measured on ({} of {} pairs of {}): \
         identity predicts the input itself, linear is ridge regression fitted on the {} training pairs.{learned_how}{}",
        split.val.len(),
        data.len(),
        data.origin,
        split.train.len(),
        note.map(|n| format!(" Note: {n}.")).unwrap_or_default()
    );
    Ok((b, learned, how))
}

/// `f` of every step as (step, value) points.
fn by_step(steps: &[StepRecord], f: impl Fn(&StepRecord) -> f64) -> Vec<(f64, f64)> {
    steps.iter().map(|s| (s.step as f64, f(s))).collect()
}

/// The trailing mean of the last `k` finite values at each point.
fn trailing_mean(points: &[(f64, f64)], k: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len());
    let mut window: std::collections::VecDeque<f64> = Default::default();
    let mut sum = 0.0;
    for &(x, y) in points {
        if !y.is_finite() {
            continue;
        }
        window.push_back(y);
        sum += y;
        if window.len() > k {
            sum -= window.pop_front().unwrap_or(0.0);
        }
        out.push((x, sum / window.len() as f64));
    }
    out
}

fn panel(caption: &str, y_label: &str, series: Vec<Series>, y_from_zero: bool) -> LinePanel {
    LinePanel {
        caption: caption.to_string(),
        x_label: "optimizer step".to_string(),
        y_label: y_label.to_string(),
        series,
        y_from_zero,
    }
}

/// Draws the run folder `run`'s learning curves into `out` (created).
pub fn plot_run(run: &Path, out: &Path) -> Result<RunPlots> {
    let (steps, vals) = run_records(run)?;
    let meta = checkpoint::resolve(run).and_then(|c| checkpoint::read_meta(&c));
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let c = PALETTE;
    let mut notes = Vec::new();
    let mut figures = Vec::new();
    let skipped = steps.iter().filter(|s| s.skipped).count();
    let skipped_note = if skipped > 0 {
        format!(" {skipped} skipped steps (non-finite loss or gradient) are not drawn.")
    } else {
        String::new()
    };
    let val_points = |f: fn(&ValidationRecord) -> f64| vals.iter().map(|v| (v.step as f64, f(v))).collect::<Vec<_>>();

    // Loss.
    let loss = by_step(&steps, |s| s.loss);
    let k = (steps.len() / 25).clamp(5, 100);
    let objective = meta.as_ref().map_or("the run's objective".to_string(), |m| {
        format!("{:?} objective", m.config.train.loss).to_lowercase()
    });
    let loss_panel = panel(
        &format!("Training and held-out loss ({objective})"),
        "loss (dimensionless)",
        vec![
            Series::new("training loss, each step", loss.clone(), light(c[0]), Mark::Line),
            Series::new(
                format!("training loss, mean of last {k} steps"),
                trailing_mean(&loss, k),
                c[0],
                Mark::Line,
            ),
            Series::new("held-out loss", val_points(|v| v.val_loss), c[1], Mark::LinePoints),
        ],
        false,
    );
    figures.push(("loss.png", WIDE, vec![loss_panel], String::new(), format!(
        "Loss by optimizer step: each step's training batch (light), its trailing mean, and the held-out loss at each validation ({} validations).{skipped_note}",
        vals.len()
    )));

    // Cosine and baselines.
    let mut cos_series = vec![
        Series::new(
            "training batch cosine",
            by_step(&steps, |s| s.cosine),
            light(c[0]),
            Mark::Line,
        ),
        Series::new("held-out cosine", val_points(|v| v.val_cosine), c[1], Mark::LinePoints),
    ];
    let cos_caption = match run_baselines(run, &meta) {
        Ok((b, learned, how)) => {
            if let Some(id) = b.identity_cosine {
                cos_series.push(Series::hline(format!("identity baseline {id:.4}"), id, c[2]));
            }
            cos_series.push(Series::hline(
                format!("linear (ridge) baseline {:.4}", b.linear_cosine),
                b.linear_cosine,
                c[3],
            ));
            if let Some(l) = learned {
                let (mlp, res) = l.cosines(false);
                for (name, v, colour) in [("MLP", mlp, c[4]), ("residual MLP", res, c[5])] {
                    if let Some(v) = v {
                        cos_series.push(Series::hline(format!("{name} baseline {v:.4}"), v, colour));
                    }
                }
            }
            how
        }
        Err(why) => {
            notes.push(why.clone());
            format!("Drawn without baselines: {why}.")
        }
    };
    figures.push(("cosine.png", WIDE, vec![panel(
        "Held-out cosine against the baselines",
        "cosine similarity, output vs target",
        cos_series,
        false,
    )], String::new(), format!("Mean cosine of the output and target embeddings: each training batch (light) and the held-out split at each validation. {cos_caption}")));

    // Optimizer.
    let mut grad = vec![Series::new(
        "gradient norm before clipping",
        by_step(&steps, |s| s.grad_norm),
        c[0],
        Mark::Line,
    )];
    // Each module's share (records from before these fields read 0, and a
    // frozen module has none: only positive values are drawn).
    type Field = fn(&StepRecord) -> f64;
    let modules: [(&str, Field); 4] = [
        ("mapper", |s| s.grad_norm_mapper),
        ("neuron", |s| s.grad_norm_neuron),
        ("carrier", |s| s.grad_norm_carrier),
        ("collector", |s| s.grad_norm_collector),
    ];
    for (k, (name, f)) in modules.into_iter().enumerate() {
        let points: Vec<(f64, f64)> = by_step(&steps, f).into_iter().filter(|p| p.1 > 0.0).collect();
        if !points.is_empty() {
            grad.push(Series::new(
                format!("{name}'s gradient norm"),
                points,
                c[4 + k],
                Mark::Line,
            ));
        }
    }
    if let Some(clip) = meta
        .as_ref()
        .ok()
        .map(|m| m.config.train.grad_clip)
        .filter(|&v| v > 0.0)
    {
        grad.push(Series::hline(format!("clipping threshold {clip}"), clip, c[3]));
    }
    figures.push(("optimizer.png", TALL, vec![
        panel("Learning rate", "learning rate (dimensionless)", vec![Series::new("learning rate", by_step(&steps, |s| s.lr), c[0], Mark::Line)], true),
        panel("Gradient norms: global and per module", "L2 norm of the gradients", grad, true),
    ], "Optimizer: learning rate and gradient norm".to_string(),
    format!("The learning rate of each step (linear warm-up, then cosine decay) and the global L2 norm of the gradient before clipping.{skipped_note}")));

    // Flows.
    let f = |s: fn(&StepRecord) -> usize| by_step(&steps, move |r| s(r) as f64);
    figures.push(("flows.png", TALL, vec![
        panel("Flows created, spawned and dropped", "flows per optimizer step", vec![
            Series::new("created (starting + spawned)", f(|s| s.flows.flows_created), c[0], Mark::Line),
            Series::new("spawned children", f(|s| s.flows.flows_spawned), c[1], Mark::Line),
            Series::new("dropped at capacity", f(|s| s.flows.flows_dropped), c[3], Mark::Line),
        ], true),
        panel("Completions by kind", "flows per optimizer step", vec![
            Series::new("crossed z0 (z = -1)", f(|s| s.flows.completed_z0), c[0], Mark::Line),
            Series::new("crossed zD (z = +1)", f(|s| s.flows.completed_zd), c[1], Mark::Line),
            Series::new("projected in the loop", f(|s| s.flows.completed_projected), c[2], Mark::Line),
            Series::new("projected after the loop", f(|s| s.flows.completed_final), c[4], Mark::Line),
        ], true),
    ], "Flows per optimizer step (all passes of the step together)".to_string(),
    "Flow counters of each optimizer step: flows created, children spawned and dropped at the capacity (top); how the flows completed (bottom).".to_string()));

    // Speed.
    figures.push(("speed.png", TALL, vec![
        panel("Time per optimizer step", "milliseconds", vec![
            Series::new("whole step", by_step(&steps, |s| s.step_ms), c[0], Mark::Line),
            Series::new("forward", by_step(&steps, |s| s.forward_ms), c[1], Mark::Line),
            Series::new("backward", by_step(&steps, |s| s.backward_ms), c[2], Mark::Line),
            Series::new("optimizer", by_step(&steps, |s| s.optimizer_ms), c[4], Mark::Line),
        ], true),
        panel("Throughput", "training samples per second", vec![
            Series::new("samples/s", by_step(&steps, |s| s.samples_per_s), c[0], Mark::Line),
        ], true),
    ], "Speed".to_string(),
    "Wall-clock time of each optimizer step and its parts (top) and training samples per second (bottom), on the machine that ran the training.".to_string()));

    let mut files = Vec::new();
    let mut section = Section::default();
    for (name, size, panels, title, caption) in figures {
        let path = out.join(name);
        write_png(&path, size, |root| {
            if panels.len() == 1 {
                line_panel(root, &panels[0])
            } else {
                for (area, p) in titled_rows(root, &title, panels.len())?.iter().zip(&panels) {
                    line_panel(area, p)?;
                }
                Ok(())
            }
        })?;
        files.push(path);
        section.figures.push(Figure {
            file: name.to_string(),
            caption,
        });
    }
    let last = &steps[steps.len() - 1];
    let page = Page {
        title: format!("Training run {}", run.display()),
        notes: vec![format!(
            "{} optimizer steps recorded (last: step {}, epoch {}), {} validations; drawn from metrics.jsonl by `energyflow plot`.",
            steps.len(),
            last.step,
            last.epoch,
            vals.len()
        )],
        sections: vec![section],
        links: Vec::new(),
    };
    let index = out.join("index.html");
    page.write(&index)?;
    Ok(RunPlots { files, index, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_mean_skips_non_finite_values() {
        let p = vec![(1.0, 1.0), (2.0, 3.0), (3.0, f64::NAN), (4.0, 5.0)];
        assert_eq!(trailing_mean(&p, 2), vec![(1.0, 1.0), (2.0, 2.0), (4.0, 4.0)]);
    }
}
