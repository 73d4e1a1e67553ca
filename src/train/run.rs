//! A training run in its folder (`metrics.jsonl`, `latest/`, `best/`,
//! `run.lock`): the loop of optimizer steps with held-out validation and
//! checkpoints, and the closing evaluation. How a run starts (fresh,
//! resumed, over an old one) is `open.rs`. Everything `energyflow train`
//! decides lives in these two files; the command only parses its flags,
//! calls [`Run::open`], [`Run::train`] and [`Run::final_report`], and prints.
//!
//! The loop, top to bottom: until the planned steps are done, the step
//! limit is reached or the stop flag is raised (checked between steps, so
//! the current step always finishes), take one optimizer step and log it;
//! at each epoch's end, and every `train.validate_every_steps` steps when
//! set, validate, log, checkpoint `best/` when the held-out loss improved
//! and then `latest/`; otherwise inside an epoch, checkpoint `latest/`
//! every `train.checkpoint_every_steps` steps or `checkpoint_every_seconds`
//! seconds. Validation runs a copy of the model in inference mode on its
//! own buffers and draws from no generator the training uses, so it never
//! changes the training trajectory. A run that stops inside an epoch checkpoints `latest/` at once
//! (so a second signal loses nothing), then validates and checkpoints once
//! more.
//!
//! Crash consistency: `best/` is written before `latest/`, so what
//! `latest/` says about the best model is never ahead of `best/`; a resumed
//! run takes `best/` as the truth (`open.rs`). Each checkpoint is committed
//! atomically (`checkpoint`), and `metrics.jsonl` is cut back to the
//! resumed step.

use super::baselines::{self, LearnedBaselines};
use super::data::PairData;
use super::data::SplitName;
use super::eval::{self, EvalReport, ModelMetrics};
use super::lock::RunLock;
use super::metrics::{MetricsLog, Record, ValidationRecord};
use super::plan::names;
use super::trainer::Trainer;
use crate::error::{Error, Result};
use burn::tensor::Device;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
    /// The learned baselines of the run (fitted, or kept from before).
    Baselines(&'a LearnedBaselines),
    /// They could not be fitted (e.g. data that overflows them); the run
    /// goes on without them, and this says why.
    NoBaselines(&'a Error),
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

/// A run folder with its trainer and data, holding the folder's lock.
pub struct Run {
    pub trainer: Trainer,
    pub data: PairData,
    pub out: PathBuf,
    /// Things the user should hear about how the run was set up (resume
    /// position, re-planning, what a crash left behind), one line each.
    pub notes: Vec<String>,
    /// Held for the run's life: no other process writes the folder.
    _lock: RunLock,
}

impl Run {
    /// A run of `trainer` on `data` writing into the folder `out`, whose
    /// lock it takes (refused while another process holds it). Unlike
    /// [`Run::open`] it does not check what the folder holds.
    pub fn new(trainer: Trainer, data: PairData, out: &Path) -> Result<Self> {
        let (lock, _) = RunLock::acquire(out)?;
        Ok(Self::locked(trainer, data, out, lock, Vec::new()))
    }

    pub(super) fn locked(trainer: Trainer, data: PairData, out: &Path, mut lock: RunLock, notes: Vec<String>) -> Self {
        lock.confirm();
        Run {
            trainer,
            data,
            out: out.to_path_buf(),
            notes,
            _lock: lock,
        }
    }

    /// Optimizer steps this run will take at most with step limit `limit`.
    pub fn planned(&self, limit: Option<usize>) -> usize {
        limit.unwrap_or(usize::MAX).min(self.trainer.plan.planned_steps)
    }

    /// Trains until the planned steps are done, `limit` optimizer steps
    /// have been taken in total, or `stop` is raised (checked between
    /// steps: the current step always finishes). Validates and checkpoints
    /// at every epoch end and once more at the end, checkpoints `latest/`
    /// periodically in between; appends to `metrics.jsonl`.
    pub fn train(
        &mut self,
        limit: Option<usize>,
        stop: &AtomicBool,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<RunSummary> {
        std::fs::create_dir_all(&self.out).map_err(|e| Error::io(&self.out, e))?;
        let t = &mut self.trainer;
        let resumed = (t.state.step > 0).then_some(t.state.step);
        let mut log = MetricsLog::open(&self.out.join(names::METRICS), resumed)?;
        // A baseline is a yardstick, not the run: a fit that fails (data
        // the model's skipping of non-finite steps survives) is reported,
        // and the run goes on.
        if self.trainer.plan.config.train.learned_baselines {
            match self.learned_baselines() {
                Ok(learned) => on_event(Event::Baselines(&learned)),
                Err(e) => on_event(Event::NoBaselines(&e)),
            }
        }
        let limit = self.planned(limit);
        let mut last_val = None;
        let mut validated_at = None;
        let mut saved = (self.trainer.state.step, Instant::now());
        let stop_reason = loop {
            let t = &mut self.trainer;
            if t.state.step >= t.plan.planned_steps {
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
            let step = self.trainer.state.step;
            let ongoing = step < limit.min(self.trainer.plan.planned_steps);
            if self.trainer.epoch_done() {
                last_val = Some(self.validate_and_save(true, &mut log, on_event)?);
                validated_at = Some(step);
                saved = (step, Instant::now());
            } else if ongoing && self.validation_due(step) {
                last_val = Some(self.validate_and_save(false, &mut log, on_event)?);
                validated_at = Some(step);
                saved = (step, Instant::now());
            } else if ongoing && self.checkpoint_due(saved, step) {
                self.save_latest(on_event)?;
                saved = (step, Instant::now());
            }
        };
        let step = self.trainer.state.step;
        if validated_at != Some(step) {
            if stop_reason == RunStop::Interrupted && saved.0 != step {
                // First the work, then the (slower) validation: a second
                // signal during the validation then loses nothing.
                self.save_latest(on_event)?;
            }
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

    /// The run's MLP baselines: kept in its folder, or fitted now and kept
    /// (the run is the folder's writer), so that `eval` and `plot` find them.
    fn learned_baselines(&self) -> Result<LearnedBaselines> {
        let t = &self.trainer;
        let (split, seed, train) = (&t.plan.split, t.plan.seed, &t.plan.config.train);
        baselines::kept_or_fitted(&self.out, &self.data, split, seed, train, t.plain_device(), |b| {
            baselines::keep(&self.out, b)
        })
    }

    /// Whether a periodic validation (`train.validate_every_steps`) is due
    /// after optimizer step `step`.
    fn validation_due(&self, step: usize) -> bool {
        self.trainer
            .plan
            .config
            .train
            .validate_every_steps
            .is_some_and(|n| step.is_multiple_of(n))
    }

    /// Whether a periodic checkpoint is due at `step`, the last one having
    /// been written at `saved` (step, time).
    fn checkpoint_due(&self, saved: (usize, Instant), step: usize) -> bool {
        let t = &self.trainer.plan.config.train;
        let by_steps = t.checkpoint_every_steps.is_some_and(|n| step - saved.0 >= n);
        let secs = t.checkpoint_every_seconds;
        let by_time = secs > 0.0 && saved.1.elapsed().as_secs_f64() >= secs;
        step > saved.0 && (by_steps || by_time)
    }

    /// Checkpoints the current state into `latest/`.
    fn save_latest(&self, on_event: &mut dyn FnMut(Event)) -> Result<()> {
        let latest = self.out.join(names::LATEST);
        self.trainer.save(&latest)?;
        on_event(Event::Saved {
            dir: &latest,
            best: false,
        });
        Ok(())
    }

    /// Validates, records the result and saves `best` (when the held-out
    /// loss improved) and then `latest`. `complete`: the epoch's batches
    /// are all used, so the next epoch starts.
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
            val_mapped_std: m.spread.mapped,
            val_surface_std: m.spread.surface,
            val_output_std: m.spread.output,
            best,
        });
        log.write(&rec)?;
        on_event(Event::Logged(&rec));
        if complete {
            t.next_epoch();
        }
        if best {
            // best/ first: latest/ then never names a best model that best/
            // does not hold, whenever the process dies.
            let dir = self.out.join(names::BEST);
            t.save(&dir)?;
            on_event(Event::Saved { dir: &dir, best: true });
        }
        self.save_latest(on_event)?;
        Ok(m)
    }

    /// The closing evaluation: the `eval` line of the run's `best/` (chosen
    /// on the validation split) on the test split, which nothing chose:
    /// the figure to report.
    pub fn final_report(&self, dev: &Device) -> Result<EvalReport> {
        let runtime = &self.trainer.plan.runtime;
        Ok(eval::evaluate_checkpoint_on(&self.out, Some(&self.data), runtime, dev, SplitName::Test, None)?.0)
    }
}
