//! `energyflow train`: trains on the bundled data (or `--data`), shows a
//! progress bar, writes `metrics.jsonl` and `latest/`/`best/` checkpoints
//! into `--out`, stops cleanly on Ctrl-C, and ends by printing the held-out
//! evaluation line of the best checkpoint (as `eval --json` does).

use super::eval::{print_report, report_for};
use crate::checkpoint;
use crate::config::{EnergyConfig, LossKind, Preset};
use crate::device::{self, DeviceKind};
use crate::error::{Error, Result};
use crate::train::data::{SYNTHETIC_PAIRS, SYNTHETIC_SEED, bundled_path};
use crate::train::eval::with_baselines;
use crate::train::{Event, PairData, StopReason, Trainer};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Preset to start from [default: debug].
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// TOML file whose keys override the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// safetensors file with "input" [N, E_in] and "target" [N, E_out];
    /// "synthetic" for the built-in rotation task. Default: the bundled
    /// data/wordnet-pairs.safetensors.
    #[arg(long)]
    pub data: Option<String>,
    /// Epochs (overrides train.epochs and clears train.steps: the run and
    /// its schedule last this many epochs).
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
    /// Seed of the weights, the split, the shuffles, dropout and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Held-out fraction (overrides train.val_fraction).
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Objective (overrides train.loss).
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

/// The config the flags ask for (preset, file, overrides), and the keys
/// the file sets explicitly.
fn base_config(args: &TrainArgs) -> Result<(EnergyConfig, toml::Table)> {
    let preset = args.preset.unwrap_or(Preset::Debug);
    let (mut cfg, explicit) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let cfg = EnergyConfig::from_toml_str(&text, preset, &path.display().to_string())?;
            (cfg, text.parse().unwrap_or_default())
        }
        None => (EnergyConfig::preset(preset), toml::Table::new()),
    };
    if let Some(e) = args.epochs {
        // Asking for epochs means planning by epochs: no step budget.
        cfg.train.epochs = e;
        cfg.train.steps = None;
    }
    if let Some(v) = args.val_fraction {
        cfg.train.val_fraction = v;
    }
    if let Some(l) = args.loss {
        cfg.train.loss = l;
    }
    cfg.validate()?;
    Ok((cfg, explicit))
}

/// [`base_config`] with the embedding widths taken from the data, unless
/// the config file sets them (then a mismatch is refused by the trainer).
fn requested_config(args: &TrainArgs, data: &PairData) -> Result<EnergyConfig> {
    let (mut cfg, explicit) = base_config(args)?;
    if !explicit.contains_key("input_embedding_dim") {
        cfg.input_embedding_dim = data.input.cols;
    }
    if !explicit.contains_key("output_embedding_dim") {
        cfg.output_embedding_dim = data.target.cols;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The data named by --data (or the bundled set, or the synthetic task
/// when the bundled file is missing).
fn load_data(args: &TrainArgs) -> Result<PairData> {
    let synthetic = || -> Result<PairData> {
        let dim = base_config(args)?.0.input_embedding_dim;
        Ok(PairData::synthetic_rotation(SYNTHETIC_PAIRS, dim, SYNTHETIC_SEED))
    };
    match args.data.as_deref() {
        Some("synthetic") => synthetic(),
        Some(path) => PairData::load(Path::new(path)),
        None => {
            let bundled = bundled_path();
            if bundled.is_file() {
                PairData::load(&bundled)
            } else {
                eprintln!(
                    "energyflow train: bundled data {} not found; training on the synthetic rotation task",
                    bundled.display()
                );
                synthetic()
            }
        }
    }
}

/// The trainer and data of `--resume`: the run in OUT/latest, on the data
/// it recorded unless --data says otherwise.
fn resume(args: &TrainArgs, dev: &Device) -> Result<(Trainer, PairData)> {
    let latest = args.out.join("latest");
    let ckpt = checkpoint::resolve(&latest)
        .map_err(|_| Error::input(format!("--resume: {} holds no checkpoint to resume", latest.display())))?;
    let meta = checkpoint::read_meta(&ckpt)?;
    let data = match (&args.data, &meta.data) {
        (None, Some(info)) => PairData::from_origin(&info.origin)?,
        _ => load_data(args)?,
    };
    if args.preset.is_some() || args.config.is_some() {
        let wanted = requested_config(args, &data)?;
        let diff = checkpoint::architecture_mismatch(&meta.config, &wanted);
        if !diff.is_empty() {
            return Err(Error::input(format!(
                "{}: the checkpoint's architecture differs from the requested config: {}",
                ckpt.display(),
                diff.join(", ")
            )));
        }
    }
    let mut t = Trainer::resume(&ckpt, &data, dev)?;
    if let Some(e) = args.epochs {
        t.extend_epochs(e)?;
    }
    eprintln!(
        "energyflow train: resuming {} at step {} (epoch {})",
        args.out.display(),
        t.state.step,
        t.state.epoch
    );
    Ok((t, data))
}

/// The trainer and data of a fresh run. OUT must not hold a run, unless
/// --overwrite, which removes the old checkpoints once the new run is set up.
fn fresh(args: &TrainArgs, dev: &Device) -> Result<(Trainer, PairData)> {
    if args.out.join("latest").join(checkpoint::META_FILE).is_file() && !args.overwrite {
        return Err(Error::input(format!(
            "{} already holds a run; pass --resume to continue it, --overwrite to start over, or another --out",
            args.out.display()
        )));
    }
    let data = load_data(args)?;
    let trainer = Trainer::new(requested_config(args, &data)?, &data, args.seed, dev)?;
    if args.overwrite {
        // The old run's checkpoints must not pass for the new run's.
        for sub in ["latest", "best"] {
            let dir = args.out.join(sub);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
        }
    }
    Ok((trainer, data))
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let dev = device::select(args.device)?;
    let (mut trainer, data) = if args.resume {
        resume(args, &dev)?
    } else {
        fresh(args, &dev)?
    };
    let cfg = trainer.cfg.clone();
    eprintln!(
        "energyflow train: {} pairs ({} train / {} held out) from {}; lattice {}x{}x{}, batch {}, {} steps planned; out {}",
        data.len(),
        trainer.split.train.len(),
        trainer.split.val.len(),
        data.origin,
        cfg.lattice_width,
        cfg.lattice_height,
        cfg.lattice_depth,
        cfg.batch_size,
        trainer.schedule.total,
        args.out.display()
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // First Ctrl-C: finish the step, checkpoint, exit. Second: exit now.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nenergyflow train: stopping after this step (Ctrl-C again to quit at once)");
        });
    }
    let limit = args.max_steps.unwrap_or(usize::MAX).min(trainer.schedule.total);
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(limit as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {msg} ETA {eta}")
            .map_err(|e| Error::Internal(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_position(trainer.state.step as u64);
    let mut val_cos = f64::NAN;
    let mut on_event = |e: Event| match e {
        Event::Step(r) => {
            bar.set_position(r.step as u64);
            bar.set_message(format!(
                "loss {:.4} cos {:.3} val_cos {:.3} {:.1} samples/s{}",
                r.loss,
                r.cosine,
                val_cos,
                r.samples_per_s,
                if r.skipped_total > 0 {
                    format!(" skipped {}", r.skipped_total)
                } else {
                    String::new()
                }
            ));
        }
        Event::Validated(r) => {
            val_cos = r.val_cosine;
            bar.println(format!(
                "epoch {}{} step {}: train loss {:.4}, held-out loss {:.4}, cosine {:.4}{}",
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
    };
    let summary = trainer.run(&data, &args.out, args.max_steps, &stop, &mut on_event)?;
    bar.finish_and_clear();
    let why = match summary.stop {
        StopReason::Finished => "all planned steps done",
        StopReason::MaxSteps => "--max-steps reached",
        StopReason::Interrupted => "interrupted",
    };
    eprintln!(
        "energyflow train: stopped after {} steps ({why}; {} skipped); checkpoints in {}",
        summary.steps,
        summary.skipped,
        args.out.display()
    );
    // The eval line is that of best/. When best/ is the model just
    // validated, its metrics are known: only the baselines remain to do.
    let report = match summary.last_val {
        Some(m) if trainer.state.best_step == Some(trainer.state.step) => {
            with_baselines(m, &data, &trainer.split.train, &trainer.split.val)?
        }
        _ => report_for(&args.out, Some(&data), &dev)?.0,
    };
    print_report(&report, true)
}
