//! A training run: the run folder (`metrics.jsonl`, `latest/`, `best/`),
//! how a run starts (fresh, resumed or over an old one), its data, the
//! loop of optimizer steps with held-out validation and checkpoints, and
//! the closing evaluation. Everything `energyflow train` decides lives
//! here; the command only parses its flags, calls [`Run::open`],
//! [`Run::train`] and [`Run::final_report`], and prints.
//!
//! The loop, top to bottom: until the planned steps are done, the step
//! limit is reached or the stop flag is raised (checked between steps, so
//! the current step always finishes), take one optimizer step and log it;
//! at each epoch's end validate, log, checkpoint `latest/` and, when the
//! held-out loss improved, `best/`. A run that stops inside an epoch
//! validates and checkpoints once more.

use super::data::{PairData, SYNTHETIC_PAIRS, SYNTHETIC_SEED, bundled_path};
use super::eval::{self, EvalReport, ModelMetrics};
use super::metrics::{MetricsLog, Record, ValidationRecord};
use super::trainer::Trainer;
use crate::checkpoint;
use crate::config::{ConfigSource, EnergyConfig, LossKind};
use crate::error::{Error, Result};
use burn::tensor::Device;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Which data a run trains on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataChoice {
    /// The bundled WordNet pairs (data/README.md); the synthetic task when
    /// the bundled file is missing.
    Bundled,
    /// The built-in synthetic rotation task.
    Synthetic,
    /// A safetensors file with "input" and "target".
    File(PathBuf),
}

impl DataChoice {
    /// `--data` as users write it: "synthetic" or a path.
    pub fn parse(s: &str) -> Self {
        match s {
            "synthetic" => DataChoice::Synthetic,
            path => DataChoice::File(PathBuf::from(path)),
        }
    }
}

/// How a run starts in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run; the folder must not hold one.
    Fresh,
    /// Continue the run in the folder's `latest/`.
    Resume,
    /// A new run replacing the folder's old one.
    Overwrite,
}

/// What a user asks of `train`.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub config: ConfigSource,
    /// None: the bundled data for a new run, the run's own for a resumed one.
    pub data: Option<DataChoice>,
    /// Plan by epochs (clears `train.planned_steps`).
    pub epochs: Option<usize>,
    /// Overrides `train.val_fraction`.
    pub val_fraction: Option<f64>,
    /// Overrides `train.loss`.
    pub loss: Option<LossKind>,
    pub seed: u64,
    /// The run folder.
    pub out: PathBuf,
    pub start: Start,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStop {
    /// All planned steps done (epochs, or train.planned_steps).
    Finished,
    /// The step limit (`--max-steps`) reached.
    MaxSteps,
    /// The stop flag (Ctrl-C) was raised.
    Interrupted,
}

/// What the caller hears about while a run goes on.
pub enum Event<'a> {
    /// A step or validation record, as written to `metrics.jsonl`.
    Logged(&'a Record),
    /// A checkpoint was written.
    Saved { dir: &'a Path, best: bool },
}

/// Summary of a finished run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub stop: RunStop,
    pub steps: usize,
    pub skipped: usize,
    /// The held-out metrics of the last validation.
    pub last_val: Option<ModelMetrics>,
    pub best_val_loss: Option<f64>,
}

/// A run folder with its trainer and data.
pub struct Run {
    pub trainer: Trainer,
    pub data: PairData,
    pub out: PathBuf,
    /// Things the user should hear about how the run was set up (data
    /// fallback, resume position), one line each.
    pub notes: Vec<String>,
}

impl Run {
    /// A run of `trainer` on `data` writing into the folder `out`.
    pub fn new(trainer: Trainer, data: PairData, out: &Path) -> Self {
        Run {
            trainer,
            data,
            out: out.to_path_buf(),
            notes: Vec::new(),
        }
    }

    /// Sets up the run `req` asks for: a fresh run (refused when the
    /// folder already holds one), a resumed one, or one replacing the old
    /// run (whose checkpoints are removed once the new run is set up).
    pub fn open(req: &RunRequest, dev: &Device) -> Result<Self> {
        match req.start {
            Start::Resume => Self::resume(req, dev),
            Start::Fresh | Start::Overwrite => Self::fresh(req, dev),
        }
    }

    fn fresh(req: &RunRequest, dev: &Device) -> Result<Self> {
        if req.out.join("latest").join(checkpoint::META_FILE).is_file() && req.start == Start::Fresh {
            return Err(Error::input(format!(
                "{} already holds a run; pass --resume to continue it, --overwrite to start over, or another --out",
                req.out.display()
            )));
        }
        let mut notes = Vec::new();
        let data = load_data(req, req.data.as_ref().unwrap_or(&DataChoice::Bundled), &mut notes)?;
        let trainer = Trainer::new(requested_config(req, &data)?, &data, req.seed, dev)?;
        if req.start == Start::Overwrite {
            // The old run's checkpoints must not pass for the new run's.
            for sub in ["latest", "best"] {
                let dir = req.out.join(sub);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                }
            }
        }
        Ok(Run {
            trainer,
            data,
            out: req.out.clone(),
            notes,
        })
    }

    /// The run in OUT/latest, on the data it recorded unless the request
    /// names other data. A requested preset or config file must describe
    /// the same architecture.
    fn resume(req: &RunRequest, dev: &Device) -> Result<Self> {
        let latest = req.out.join("latest");
        let ckpt = checkpoint::resolve(&latest)
            .map_err(|_| Error::input(format!("--resume: {} holds no checkpoint to resume", latest.display())))?;
        let meta = checkpoint::read_meta(&ckpt)?;
        let mut notes = Vec::new();
        let data = match (&req.data, &meta.data) {
            (None, Some(info)) => PairData::from_origin(&info.origin)?,
            (choice, _) => load_data(req, choice.as_ref().unwrap_or(&DataChoice::Bundled), &mut notes)?,
        };
        if !req.config.is_default() {
            let wanted = requested_config(req, &data)?;
            let diff = meta.config.model.differences(&wanted.model);
            if !diff.is_empty() {
                return Err(Error::input(format!(
                    "{}: the checkpoint's model differs from the requested config (checkpoint vs requested): {}",
                    ckpt.display(),
                    diff.join(", ")
                )));
            }
        }
        let mut trainer = Trainer::resume(&ckpt, &data, dev)?;
        if let Some(e) = req.epochs {
            trainer.extend_epochs(e)?;
        }
        notes.push(format!(
            "resuming {} at step {} (epoch {})",
            req.out.display(),
            trainer.state.step,
            trainer.state.epoch
        ));
        Ok(Run {
            trainer,
            data,
            out: req.out.clone(),
            notes,
        })
    }

    /// Optimizer steps this run will take at most with step limit `limit`.
    pub fn planned(&self, limit: Option<usize>) -> usize {
        limit.unwrap_or(usize::MAX).min(self.trainer.schedule.total)
    }

    /// Trains until the planned steps are done, `limit` optimizer steps
    /// have been taken in total, or `stop` is raised (checked between
    /// steps: the current step always finishes). Validates and checkpoints
    /// at every epoch end and once more at the end; appends to
    /// `metrics.jsonl`.
    pub fn train(
        &mut self,
        limit: Option<usize>,
        stop: &AtomicBool,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<RunSummary> {
        std::fs::create_dir_all(&self.out).map_err(|e| Error::io(&self.out, e))?;
        let t = &mut self.trainer;
        let resumed = (t.state.step > 0).then_some(t.state.step);
        let mut log = MetricsLog::open(&self.out.join("metrics.jsonl"), resumed)?;
        let limit = self.planned(limit);
        let mut last_val = None;
        let mut validated_at = None;
        let stop_reason = loop {
            let t = &mut self.trainer;
            if t.state.step >= t.schedule.total {
                break RunStop::Finished;
            }
            if t.state.step >= limit {
                break RunStop::MaxSteps;
            }
            if stop.load(Ordering::SeqCst) {
                break RunStop::Interrupted;
            }
            let rec = Record::Step(t.train_step(&self.data)?);
            log.write(&rec)?;
            on_event(Event::Logged(&rec));
            if self.trainer.epoch_done() {
                last_val = Some(self.validate_and_save(true, &mut log, on_event)?);
                validated_at = Some(self.trainer.state.step);
            }
        };
        if validated_at != Some(self.trainer.state.step) {
            last_val = Some(self.validate_and_save(false, &mut log, on_event)?);
        }
        let s = &self.trainer.state;
        Ok(RunSummary {
            stop: stop_reason,
            steps: s.step,
            skipped: s.skipped,
            last_val,
            best_val_loss: s.best_val_loss,
        })
    }

    /// Validates, records the result and saves `latest` (and `best` when
    /// the held-out loss improved). `complete`: the epoch's batches are all
    /// used, so the next epoch starts.
    fn validate_and_save(
        &mut self,
        complete: bool,
        log: &mut MetricsLog,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<ModelMetrics> {
        let t = &mut self.trainer;
        let m = t.validate(&self.data)?;
        let best = m.loss.is_finite() && t.state.best_val_loss.is_none_or(|b| m.loss < b);
        if best {
            t.state.best_val_loss = Some(m.loss);
            t.state.best_step = Some(t.state.step);
        }
        let rec = Record::Validation(ValidationRecord {
            epoch: t.state.epoch,
            step: t.state.step,
            complete,
            train_loss: if t.state.epoch_loss_count > 0 {
                t.state.epoch_loss_sum / t.state.epoch_loss_count as f64
            } else {
                f64::NAN
            },
            val_loss: m.loss,
            val_mse: m.mse,
            val_cosine: m.cosine,
            val_n: m.n,
            best,
        });
        log.write(&rec)?;
        on_event(Event::Logged(&rec));
        if complete {
            t.next_epoch();
        }
        let latest = self.out.join("latest");
        t.save(&latest)?;
        on_event(Event::Saved {
            dir: &latest,
            best: false,
        });
        if best {
            let dir = self.out.join("best");
            t.save(&dir)?;
            on_event(Event::Saved { dir: &dir, best: true });
        }
        Ok(m)
    }

    /// The closing evaluation: the `eval` line of the run's `best/`. When
    /// `best/` is the model just validated, its metrics are known and only
    /// the baselines remain to compute.
    pub fn final_report(&self, summary: &RunSummary, dev: &Device) -> Result<EvalReport> {
        let t = &self.trainer;
        match summary.last_val {
            Some(m) if t.state.best_step == Some(t.state.step) => {
                eval::with_baselines(m, &self.data, &t.split.train, &t.split.val)
            }
            _ => Ok(eval::evaluate_checkpoint(&self.out, Some(&self.data), dev)?.0),
        }
    }
}

/// The config a request asks for (preset, file, flag overrides), with the
/// embedding widths taken from the data unless the file sets them (a
/// mismatch is then refused by the trainer).
fn requested_config(req: &RunRequest, data: &PairData) -> Result<EnergyConfig> {
    let loaded = req.config.load()?;
    let mut cfg = loaded.config.clone();
    if let Some(e) = req.epochs {
        // Asking for epochs means planning by epochs: no step budget.
        cfg.train.epochs = e;
        cfg.train.planned_steps = None;
    }
    if let Some(v) = req.val_fraction {
        cfg.train.val_fraction = v;
    }
    if let Some(l) = req.loss {
        cfg.train.loss = l;
    }
    if !loaded.file_sets("model.input_embedding_dim") {
        cfg.model.input_embedding_dim = data.input.cols;
    }
    if !loaded.file_sets("model.output_embedding_dim") {
        cfg.model.output_embedding_dim = data.target.cols;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The data `choice` names; the bundled set falls back to the synthetic
/// task when its file is missing (and says so in `notes`).
fn load_data(req: &RunRequest, choice: &DataChoice, notes: &mut Vec<String>) -> Result<PairData> {
    let synthetic = || -> Result<PairData> {
        let dim = req.config.load()?.config.model.input_embedding_dim;
        Ok(PairData::synthetic_rotation(SYNTHETIC_PAIRS, dim, SYNTHETIC_SEED))
    };
    match choice {
        DataChoice::Synthetic => synthetic(),
        DataChoice::File(path) => PairData::load(path),
        DataChoice::Bundled => {
            let bundled = bundled_path();
            if bundled.is_file() {
                PairData::load(&bundled)
            } else {
                notes.push(format!(
                    "bundled data {} not found; training on the synthetic rotation task",
                    bundled.display()
                ));
                synthetic()
            }
        }
    }
}
