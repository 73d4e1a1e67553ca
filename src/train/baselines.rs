//! The two learned baselines reported beside identity and ridge: a plain
//! MLP and a residual MLP (`y = x + MLP(x)`), both E -> 1024 -> 1024 -> E
//! with GELU, trained on a run's training split with the run's loss
//! (`train.mse_weight * MSE + train.lambda_cos * (1 - cos)`), AdamW at each
//! of four learning rates, early stopping on its validation split, and the
//! rate whose best epoch scores best there kept (a baseline tuned as a
//! sceptical reader would tune it); seeded by the run's seed.
//! Fitted once per run folder and kept there (`baselines.json`, with the
//! split it belongs to and the time the fit took).
//!
//! Not the model's trainer: no schedule, no clipping, no checkpoints; a
//! fit is a minute of CPU on the bundled data, and nothing resumes it.

use super::data::{PairData, Split};
use super::loss::embedding_loss;
use super::plan::names;
use crate::config::TrainConfig;
use crate::device;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::layers::{Init, WeightInit};
use crate::seeds::{mix, stream};
use burn::module::Module;
use burn::nn::Linear;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Hidden width of both MLPs.
pub const HIDDEN: usize = 1024;
const BATCH: usize = 64;
// The residual MLP's best rate on the bundled data was 1e-4, the grid's
// lowest, so the grid goes one step further: a baseline whose best is at
// the grid's edge is not tuned.
const LEARNING_RATES: [f64; 4] = [1e-3, 3e-4, 1e-4, 3e-5];
const WEIGHT_DECAY: f32 = 0.01;
const MAX_EPOCHS: usize = 100;
/// Epochs without a better validation loss before the fit stops.
const PATIENCE: usize = 6;
/// Bumped when the recipe above changes, so that old caches are refitted.
const RECIPE: u32 = 3;

/// The file in a run folder that keeps the fitted baselines' figures.
pub const FILE: &str = "baselines.json";

#[derive(Module, Debug)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    #[module(skip)]
    residual: bool,
}

impl Mlp {
    fn new(e_in: usize, e_out: usize, residual: bool, init: &mut Init) -> Self {
        Mlp {
            fc1: init.linear(e_in, HIDDEN, WeightInit::Default),
            fc2: init.linear(HIDDEN, HIDDEN, WeightInit::Default),
            fc3: init.linear(HIDDEN, e_out, WeightInit::Default),
            residual,
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = gelu(self.fc2.forward(gelu(self.fc1.forward(x.clone()))));
        let y = self.fc3.forward(h);
        if self.residual { x + y } else { y }
    }
}

/// One fitted baseline's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    /// Mean cosine on the validation split (which stopped the fit).
    pub validation_cosine: f64,
    /// Mean cosine on the test split (None when the run has none apart).
    pub test_cosine: Option<f64>,
    /// The epoch kept (1-based) and the epochs run.
    pub best_epoch: usize,
    pub epochs: usize,
    /// The learning rate kept.
    pub learning_rate: f64,
    /// Wall time of the fit, all learning rates.
    pub seconds: f64,
}

/// What the figures belong to: the data, the split, the seed and the
/// recipe. A cache whose key differs is refitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub origin: String,
    pub rows: usize,
    /// A hash of the three splits' rows.
    pub split: u64,
    pub seed: u64,
    pub mse_weight: f64,
    pub lambda_cos: f64,
    pub recipe: u32,
}

/// Both learned baselines of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedBaselines {
    pub key: Key,
    pub mlp: Fitted,
    /// None when the input and target widths differ.
    pub residual_mlp: Option<Fitted>,
}

impl LearnedBaselines {
    /// (plain, residual) cosines on the validation split or the test split.
    pub fn cosines(&self, test: bool) -> (Option<f64>, Option<f64>) {
        let pick = |f: &Fitted| if test { f.test_cosine } else { Some(f.validation_cosine) };
        (pick(&self.mlp), self.residual_mlp.as_ref().and_then(pick))
    }
}

fn key(data: &PairData, split: &Split, seed: u64, train: &TrainConfig) -> Key {
    let rows = [&split.train, &split.val, &split.test];
    let split_hash = rows
        .iter()
        .enumerate()
        .flat_map(|(k, r)| r.iter().map(move |&i| (k, i)))
        .fold(0u64, |h, (k, i)| mix(h, k as u64 + 1, i as u64));
    Key {
        origin: data.origin.clone(),
        rows: data.len(),
        split: split_hash,
        seed,
        mse_weight: train.mse_weight,
        lambda_cos: train.lambda_cos,
        recipe: RECIPE,
    }
}

/// Fits both baselines on `split` of `data` on `dev` (the residual one only
/// when the widths agree).
pub fn fit(data: &PairData, split: &Split, seed: u64, train: &TrainConfig, dev: &Device) -> Result<LearnedBaselines> {
    if split.train.is_empty() || split.val.is_empty() {
        return Err(Error::input(format!(
            "{}: the learned baselines need training and validation rows ({} and {} here)",
            data.origin,
            split.train.len(),
            split.val.len()
        )));
    }
    let base = mix(seed, stream::BASELINE, 0);
    let mlp = fit_one(data, split, base, false, train, dev)?;
    let residual_mlp = if data.input.cols == data.target.cols {
        Some(fit_one(data, split, mix(base, stream::BASELINE, 1), true, train, dev)?)
    } else {
        None
    };
    Ok(LearnedBaselines {
        key: key(data, split, seed, train),
        mlp,
        residual_mlp,
    })
}

fn batch(data: &PairData, rows: &[usize], dev: &Device) -> (Tensor<2>, Tensor<2>) {
    let (x, y) = data.gather(rows);
    (
        device::matrix(x, rows.len(), data.input.cols, dev),
        device::matrix(y, rows.len(), data.target.cols, dev),
    )
}

/// (mean loss, mean cosine) of `model` on `rows`.
fn score(model: &Mlp, data: &PairData, rows: &[usize], train: &TrainConfig, dev: &Device) -> Result<(f64, f64)> {
    let (x, y) = batch(data, rows, dev);
    let parts = embedding_loss(model.forward(x), y, train.mse_weight, train.lambda_cos);
    let [loss, _, cos] = parts.to_host()?;
    Ok((loss, cos))
}

/// The fit at each learning rate; the one best on the validation loss.
fn fit_one(
    data: &PairData,
    split: &Split,
    seed: u64,
    residual: bool,
    train: &TrainConfig,
    dev: &Device,
) -> Result<Fitted> {
    let t0 = Instant::now();
    let mut best: Option<(f64, Fitted)> = None;
    for lr in LEARNING_RATES {
        let (loss, f) = fit_at(data, split, seed, residual, lr, train, dev)?;
        if best.as_ref().is_none_or(|(b, _)| loss < *b) {
            best = Some((loss, f));
        }
    }
    let (_, mut f) = best.ok_or_else(|| Error::Internal("no learning rate".into()))?;
    f.seconds = t0.elapsed().as_secs_f64();
    Ok(f)
}

/// One fit at learning rate `lr`: (its best validation loss, its figures).
#[allow(clippy::too_many_arguments)]
fn fit_at(
    data: &PairData,
    split: &Split,
    seed: u64,
    residual: bool,
    lr: f64,
    train: &TrainConfig,
    dev: &Device,
) -> Result<(f64, Fitted)> {
    let ad = dev.clone().autodiff();
    let mut init = Init::new(seed, &ad);
    let mut model = Mlp::new(data.input.cols, data.target.cols, residual, &mut init);
    let mut optim = AdamWConfig::new().with_weight_decay(WEIGHT_DECAY).init();
    let mut best: Option<(f64, usize, Mlp)> = None;
    let mut epochs = 0;
    let mut order = split.train.clone();
    for epoch in 1..=MAX_EPOCHS {
        epochs = epoch;
        order.shuffle(&mut StdRng::seed_from_u64(mix(seed, stream::SHUFFLE, epoch as u64)));
        for rows in order.chunks(BATCH) {
            let (x, y) = batch(data, rows, &ad);
            let loss = embedding_loss(model.forward(x), y, train.mse_weight, train.lambda_cos).loss;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
        }
        let valid = model.valid();
        let (loss, _) = score(&valid, data, &split.val, train, dev)?;
        if !loss.is_finite() {
            return Err(Error::input(format!(
                "{}: the MLP baseline's validation loss is {loss}: the data overflows in training",
                data.origin
            )));
        }
        match &best {
            Some((b, at, _)) if loss >= *b => {
                if epoch - at >= PATIENCE {
                    break;
                }
            }
            _ => best = Some((loss, epoch, valid)),
        }
    }
    let (best_loss, best_epoch, kept) = best.ok_or_else(|| Error::Internal("no epoch of the MLP baseline".into()))?;
    let (_, validation_cosine) = score(&kept, data, &split.val, train, dev)?;
    let test_cosine = if split.test.is_empty() {
        None
    } else {
        Some(score(&kept, data, &split.test, train, dev)?.1)
    };
    Ok((
        best_loss,
        Fitted {
            validation_cosine,
            test_cosine,
            best_epoch,
            epochs,
            learning_rate: lr,
            seconds: 0.0,
        },
    ))
}

/// The baselines kept in run folder `run` if they belong to this data,
/// split, seed and loss; else None.
pub fn cached(run: &Path, data: &PairData, split: &Split, seed: u64, train: &TrainConfig) -> Option<LearnedBaselines> {
    let text = std::fs::read_to_string(run.join(FILE)).ok()?;
    let kept: LearnedBaselines = serde_json::from_str(&text).ok()?;
    (kept.key == key(data, split, seed, train)).then_some(kept)
}

/// Keeps `b` in run folder `run` (atomically). The caller must be the
/// folder's one writer (hold its lock).
pub fn keep(run: &Path, b: &LearnedBaselines) -> Result<()> {
    let text = serde_json::to_string_pretty(b).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomic(&run.join(FILE), text.as_bytes())
}

/// The baselines kept in run folder `run` for this data, split, seed and
/// loss, or fitted now on `dev` and handed to `keep` (which writes them
/// when its caller may write the folder).
pub fn kept_or_fitted(
    run: &Path,
    data: &PairData,
    split: &Split,
    seed: u64,
    train: &TrainConfig,
    dev: &Device,
    keep: impl FnOnce(&LearnedBaselines) -> Result<()>,
) -> Result<LearnedBaselines> {
    if let Some(kept) = cached(run, data, split, seed, train) {
        return Ok(kept);
    }
    let fitted = fit(data, split, seed, train, dev)?;
    keep(&fitted)?;
    Ok(fitted)
}

/// The run folder a checkpoint path belongs to: `dir` itself when it holds
/// a run's `metrics.jsonl`, its parent when `dir` is that run's `best/` or
/// `latest/`; None for a checkpoint outside any run folder.
pub fn run_folder(dir: &Path) -> Option<&Path> {
    if dir.join(names::METRICS).is_file() {
        return Some(dir);
    }
    let parent = dir.parent()?;
    parent.join(names::METRICS).is_file().then_some(parent)
}

/// The mean cosine row by row, for tests.
#[cfg(test)]
fn cosine_of(pred: Tensor<2>, y: Tensor<2>) -> f64 {
    device::to_vec(crate::train::loss::row_cosine(pred, y).mean()).unwrap()[0] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_residual_mlp_starts_near_the_identity_and_widths_are_kept() {
        let dev = Device::flex();
        let mut init = Init::new(1, &dev);
        let m = Mlp::new(6, 6, true, &mut init);
        let x = device::matrix((0..12).map(|i| i as f32).collect(), 2, 6, &dev);
        let y = m.forward(x.clone());
        assert_eq!(y.dims(), [2, 6]);
        // x + MLP(x): closer to x than the plain MLP of the same weights.
        let plain = Mlp { residual: false, ..m };
        assert!(cosine_of(y, x.clone()) > cosine_of(plain.forward(x.clone()), x));
    }
}
