//! `energyflow train`: trains on the bundled data (or `--data`), shows a
//! progress bar, and ends by printing the evaluation line of the best
//! checkpoint on the test split (as `eval --json` does), then says where the learning
//! curves are (`--plot` draws them). What the run does is `train::Run`'s
//! business.

use super::{ConfigArgs, RuntimeArgs, print_json};
use energyflow::config::LossKind;
use energyflow::error::{Error, Result};
use energyflow::train::metrics::Record;
use energyflow::train::{DataChoice, Event, Run, RunRequest, RunStop, Start};
use energyflow::viz::{plot_run, run_plots};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// safetensors file with "input" [N, E_in] and "target" [N, E_out];
    /// "synthetic" for the built-in rotation task. Default: the bundled
    /// WordNet pairs, compiled into the binary (a resumed run: its own data).
    #[arg(long)]
    pub data: Option<String>,
    /// Epochs (overrides train.epochs and clears train.planned_steps: the
    /// run and its schedule last this many epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps in total (the schedule is not
    /// shortened: a later --resume continues it exactly).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Run folder: metrics.jsonl, latest/, best/.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Continue the run saved in OUT/latest.
    #[arg(long)]
    pub resume: bool,
    /// Start a fresh run even if OUT already holds one (its checkpoints are replaced).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Seed of the weights, the split, the shuffles, dropout and noise
    /// [default: 0; a resumed run keeps its own].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Validation fraction: the rows that choose best/ (overrides train.val_fraction).
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Test fraction: the rows the closing line reports, seen only at the
    /// end (overrides train.test_fraction).
    #[arg(long)]
    pub test_fraction: Option<f64>,
    /// Objective (overrides train.loss).
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// At the end, draw the learning curves into OUT/plots (as `energyflow plot OUT` does).
    #[arg(long)]
    pub plot: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl TrainArgs {
    fn request(&self) -> Result<RunRequest> {
        Ok(RunRequest {
            config: self.config.source(),
            runtime: self.runtime.resolve_with(&self.config)?,
            data: self.data.as_deref().map(DataChoice::parse),
            epochs: self.epochs,
            val_fraction: self.val_fraction,
            test_fraction: self.test_fraction,
            loss: self.loss,
            seed: self.seed,
            out: self.out.clone(),
            start: match (self.resume, self.overwrite) {
                (true, _) => Start::Resume,
                (false, true) => Start::Overwrite,
                (false, false) => Start::Fresh,
            },
        })
    }
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let req = args.request()?;
    let dev = super::select_device(req.runtime.device)?;
    let mut run = Run::open(&req, &dev)?;
    for note in &run.notes {
        eprintln!("energyflow train: {note}");
    }
    let p = &run.trainer.plan;
    let (m, split) = (&p.config.model, &p.split);
    eprintln!(
        "energyflow train: {} pairs ({} train / {} validation / {} test) from {}; lattice {}x{}x{}, batch {}, {} steps planned; out {}",
        run.data.len(),
        split.train.len(),
        split.val.len(),
        if split.separate_test { split.test.len() } else { 0 },
        run.data.origin,
        m.lattice_width,
        m.lattice_height,
        p.config.flow.lattice_depth,
        p.config.train.batch_size,
        p.planned_steps,
        args.out.display()
    );

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(run.planned(args.max_steps) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {msg} ETA {eta}")
            .map_err(|e| Error::Internal(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_position(run.trainer.state.step as u64);
    let mut val_cos = f64::NAN;
    let mut beat = f64::NAN;
    let kept_in = run.out.join(energyflow::train::baselines::FILE);
    let mut on_event = |e: Event| match e {
        Event::Logged(Record::Step(r)) => {
            bar.set_position(r.step as u64);
            let skipped = if r.skipped_total > 0 {
                format!(" skipped {}", r.skipped_total)
            } else {
                String::new()
            };
            bar.set_message(format!(
                "loss {:.4} cos {:.3} val_cos {:.3} (res-MLP {:.3}) {:.1} samples/s{skipped}",
                r.loss, r.cosine, val_cos, beat, r.samples_per_s
            ));
        }
        Event::Logged(Record::Validation(r)) => {
            val_cos = r.val_cosine;
            bar.println(format!(
                "epoch {}{} step {}: train loss {:.4}, validation loss {:.4}, cosine {:.4}{}",
                r.epoch,
                if r.complete { "" } else { " (partial)" },
                r.step,
                r.train_loss,
                r.val_loss,
                r.val_cosine,
                if r.best { " (best)" } else { "" }
            ));
        }
        Event::Saved { .. } => {}
        Event::NoBaselines(e) => bar.println(format!("learned baselines not fitted: {e}")),
        Event::Baselines(b) => {
            let (mlp, residual) = b.cosines(false);
            let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            let secs = b.mlp.seconds + b.residual_mlp.as_ref().map_or(0.0, |r| r.seconds);
            beat = residual.or(mlp).unwrap_or(f64::NAN);
            bar.println(format!(
                "learned baselines on the validation split: MLP {}, residual MLP {} (fitted in {secs:.0} s; kept in {})",
                show(mlp),
                show(residual),
                kept_in.display()
            ));
        }
    };
    // First signal: finish the step, checkpoint, validate, end (exit code
    // 130); a second, or one after the loop: exit at once (`signals`).
    let stop = super::signals::graceful();
    let summary = run.train(args.max_steps, stop, &mut on_event);
    super::signals::end_graceful();
    let summary = summary?;
    bar.finish_and_clear();
    let why = match summary.stop {
        RunStop::Finished => "all planned steps done",
        RunStop::MaxSteps => "--max-steps reached",
        RunStop::Interrupted => "interrupted",
    };
    eprintln!(
        "energyflow train: stopped after {} steps ({why}; {} skipped); checkpoints in {}",
        summary.steps,
        summary.skipped,
        args.out.display()
    );
    print_json(&run.final_report(&dev)?)?;
    let plots = run_plots::default_dir(&args.out);
    if args.plot {
        let drawn = plot_run(&args.out, &plots)?;
        for note in &drawn.notes {
            eprintln!("energyflow train: {note}");
        }
        eprintln!("energyflow train: learning curves in {}", drawn.index.display());
    } else {
        eprintln!(
            "energyflow train: learning curves: `energyflow plot {}` draws them into {}",
            args.out.display(),
            plots.join("index.html").display()
        );
    }
    Ok(())
}
