//! A run's plan: the request, the data and (on resume) the checkpoint
//! become one [`RunPlan`], built once when the run starts, which the
//! trainer, the loop, the progress bar and the metrics read: the config
//! with every override applied, the split, batches and optimizer steps per
//! epoch, the planned steps (with the `--epochs` re-plan), the seed every
//! stream derives from (`seeds`). The names inside a run folder are here
//! too ([`names`]).
//!
//! Not for the folder's life (fresh, resume, overwrite, what a crash left:
//! `open.rs`) nor for the loop (`run.rs`).

use super::data::{PairData, Split};
use super::schedule::Schedule;
use crate::checkpoint::{DataInfo, Meta};
use crate::config::{EnergyConfig, RuntimeConfig};
use crate::error::{Error, Result};

/// The names inside a run folder.
pub mod names {
    /// The checkpoint of the run's latest state.
    pub const LATEST: &str = "latest";
    /// The checkpoint chosen on the validation split.
    pub const BEST: &str = "best";
    /// One JSON record per step and per validation.
    pub const METRICS: &str = "metrics.jsonl";
    /// The writer's lock (`lock.rs`).
    pub const LOCK: &str = "run.lock";
    /// The two checkpoint folders, best first (what a reader prefers).
    pub const CHECKPOINTS: [&str; 2] = [BEST, LATEST];
}

/// Everything a run's start decides (see the module docs).
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// What the run computes, every override applied: its identity.
    pub config: EnergyConfig,
    /// How this session executes, threads written out (recorded in each
    /// checkpoint, not part of the run).
    pub runtime: RuntimeConfig,
    /// The seed every random stream derives from (`seeds::mix`).
    pub seed: u64,
    /// The data as checkpoints record it.
    pub data: DataInfo,
    pub split: Split,
    /// Batches of `train.batch_size` in an epoch (the last may be short).
    pub batches_per_epoch: usize,
    /// Optimizer steps in an epoch (`train.accumulate_batches` batches each).
    pub steps_per_epoch: usize,
    /// Optimizer steps the run plans: the schedule's horizon.
    pub planned_steps: usize,
}

impl RunPlan {
    /// A new run of `config` on `data` with `seed`, executing as `runtime`
    /// says (threads written out as `threads` when it leaves them open).
    pub fn fresh(config: EnergyConfig, runtime: &RuntimeConfig, data: &PairData, seed: u64) -> Result<Self> {
        config.validate()?;
        let t = &config.train;
        let split = Split::new(data.len(), t.val_fraction, t.test_fraction, seed)?;
        let info = DataInfo {
            origin: data.origin.clone(),
            n: data.len(),
            val_fraction: t.val_fraction,
            test_fraction: Some(t.test_fraction),
            seed,
        };
        Ok(Self::with(config, runtime, seed, info, split, None))
    }

    /// The run checkpoint `meta` (at `ckpt`) describes, continued on `data`
    /// (which must hold as many pairs as the run's) by this session; with
    /// `epochs`, re-planned for that many epochs in total (returned: a note
    /// saying how the plan moved, when it did).
    pub fn resumed(
        meta: &Meta,
        ckpt: &std::path::Path,
        runtime: &RuntimeConfig,
        data: &PairData,
        epochs: Option<usize>,
    ) -> Result<(Self, Option<String>)> {
        let (Some(state), Some(info)) = (&meta.train, &meta.data) else {
            return Err(Error::input(format!(
                "{}: not a training checkpoint (no training state or data record); it can be used by infer and eval only",
                ckpt.display()
            )));
        };
        if info.n != data.len() {
            return Err(Error::input(format!(
                "{}: {} pairs, but the checkpoint was trained on {} pairs of {}; resume on the same data",
                data.origin,
                data.len(),
                info.n,
                info.origin
            )));
        }
        let split = split_of(info, data.len())?;
        let mut config = meta.config.clone();
        let mut plan = Self::with(
            config.clone(),
            runtime,
            state.seed,
            info.clone(),
            split,
            Some(state.total_steps),
        );
        if state.batch_in_epoch > plan.batches_per_epoch {
            return Err(Error::input(format!(
                "{}: field `train.batch_in_epoch` = {} is past the {} batches of an epoch",
                ckpt.join(crate::checkpoint::META_FILE).display(),
                state.batch_in_epoch,
                plan.batches_per_epoch
            )));
        }
        let Some(e) = epochs else { return Ok((plan, None)) };
        if e == config.train.epochs && config.train.planned_steps.is_none() {
            return Ok((plan, None));
        }
        // Asking for epochs means planning by epochs: no step budget.
        config.train.epochs = e;
        config.train.planned_steps = None;
        config.validate()?;
        let before = plan.planned_steps;
        plan.config = config;
        plan.planned_steps = plan.epoch_plan();
        let note = (before != plan.planned_steps).then(|| {
            format!(
                "--epochs {e}: the run now plans {} steps instead of {before}; the learning rate from step {} on follows the new plan",
                plan.planned_steps,
                state.step + 1
            )
        });
        Ok((plan, note))
    }

    fn with(
        config: EnergyConfig,
        runtime: &RuntimeConfig,
        seed: u64,
        data: DataInfo,
        split: Split,
        planned: Option<usize>,
    ) -> Self {
        let t = &config.train;
        let batches_per_epoch = split.train.len().div_ceil(t.batch_size);
        let steps_per_epoch = batches_per_epoch.div_ceil(t.accumulate_batches);
        let mut plan = RunPlan {
            runtime: runtime.resolved(rayon::current_num_threads()),
            seed,
            data,
            split,
            batches_per_epoch,
            steps_per_epoch,
            planned_steps: 0,
            config,
        };
        plan.planned_steps = planned.unwrap_or_else(|| plan.epoch_plan());
        plan
    }

    /// Epochs x steps per epoch, or `train.planned_steps` when fewer.
    fn epoch_plan(&self) -> usize {
        let t = &self.config.train;
        (self.steps_per_epoch * t.epochs)
            .min(t.planned_steps.unwrap_or(usize::MAX))
            .max(1)
    }

    /// The learning-rate schedule over the planned steps.
    pub fn schedule(&self) -> Schedule {
        let t = &self.config.train;
        Schedule {
            lr: t.learning_rate,
            warmup: t.warmup_steps,
            total: self.planned_steps,
            min_ratio: t.min_lr_ratio,
        }
    }
}

/// The split a run's data record describes, over `n` pairs: the three-way
/// split, or the two-way one of runs written before the test split.
pub fn split_of(info: &DataInfo, n: usize) -> Result<Split> {
    match info.test_fraction {
        Some(t) => Split::new(n, info.val_fraction, t, info.seed),
        None => Split::two_way(n, info.val_fraction, info.seed),
    }
}

/// The split of the run checkpoint `meta` describes, rebuilt on `data`,
/// with a note when it cannot be the run's own (other data, or none
/// recorded) or when its held-out rows also chose `best/`.
pub fn checkpoint_split(meta: &Meta, data: &PairData) -> Result<(Split, Option<String>)> {
    let n = data.len();
    Ok(match &meta.data {
        Some(info) => {
            let split = split_of(info, n)?;
            let note = if info.n != n {
                Some(format!(
                    "{} holds {n} pairs, the run trained on {} pairs of {}: the split is a fresh one of this data, not the run's",
                    data.origin, info.n, info.origin
                ))
            } else if !split.separate_test {
                Some(
                    "this checkpoint predates the test split: its held-out rows also chose best/, so its figures are optimistic"
                        .to_string(),
                )
            } else {
                None
            };
            (split, note)
        }
        None => {
            let t = &meta.config.train;
            (
                Split::new(n, t.val_fraction, t.test_fraction, 0)?,
                Some("the checkpoint records no training data: split of seed 0".to_string()),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    fn data(n: usize) -> PairData {
        PairData::synthetic_rotation(n, 4, 1)
    }

    #[test]
    fn a_plan_counts_batches_steps_and_the_horizon_once() {
        let mut cfg = EnergyConfig::preset(Preset::Debug);
        cfg.model.input_embedding_dim = 4;
        cfg.model.output_embedding_dim = 4;
        cfg.train.batch_size = 8;
        cfg.train.accumulate_batches = 2;
        cfg.train.epochs = 3;
        cfg.train.planned_steps = None;
        let p = RunPlan::fresh(cfg.clone(), &RuntimeConfig::default(), &data(100), 5).unwrap();
        // 100 pairs: 10 validate, 10 test, 80 train = 10 batches = 5 steps.
        assert_eq!(p.split.train.len(), 80);
        assert_eq!((p.batches_per_epoch, p.steps_per_epoch, p.planned_steps), (10, 5, 15));
        assert_eq!(p.schedule().total, 15);
        assert_eq!(p.data.test_fraction, Some(0.1));
        assert!(p.runtime.threads.is_some());
        // A step budget below the epochs' plan wins.
        cfg.train.planned_steps = Some(7);
        assert_eq!(
            RunPlan::fresh(cfg, &RuntimeConfig::default(), &data(100), 5)
                .unwrap()
                .planned_steps,
            7
        );
    }
}
