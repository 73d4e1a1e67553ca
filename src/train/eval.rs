//! Held-out evaluation and the baselines a model is judged against.
//!
//! - the model: loss (the config's objective), MSE and mean cosine of its
//!   output embeddings against the targets, inference mode (no dropout, no
//!   exploration noise);
//! - identity: predict target = input (only when the widths match);
//! - linear: a ridge least-squares map (with bias) fitted on the training
//!   split, `W = (Xc'Xc + lambda I)^-1 Xc'Yc` with centred X and Y and
//!   `lambda = 1e-2 * trace(Xc'Xc) / E_in` (one percent of the mean
//!   eigenvalue: scale-free, no tuning on the held-out rows).
//!
//! The ridge fit is a small dense solve (E_in <= a few thousand) done in
//! f64 by a Cholesky factorisation written here: none of our dependencies
//! offers a linear solve, and a linear-algebra crate would cost more build
//! time than these forty lines.

use super::baselines;
use super::data::PairData;
use super::data::{Split, SplitName};
use super::loss;
use super::plan::checkpoint_split;
use super::spread::{Spread, SpreadProbe};
use crate::checkpoint;
use crate::config::{EnergyConfig, RuntimeConfig};
use crate::device;
use crate::error::{Error, Result};
use crate::io::cosine;
use crate::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Lesion, Workspace};
use burn::module::Module;
use burn::tensor::Device;
use serde::Serialize;
use std::path::Path;

/// Metrics of a model on a set of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ModelMetrics {
    pub n: usize,
    pub loss: f64,
    pub mse: f64,
    pub cosine: f64,
    /// How much the mapped energies, the surface and the output vary
    /// across the rows (a diagnostic, `spread`).
    pub spread: Spread,
}

/// Runs `model` (a non-autodiff copy) under `settings` over rows `idx` in
/// batches of the config's batch size and averages the metrics over the rows.
pub fn evaluate(
    model: &EnergyFlowModel,
    cfg: &EnergyConfig,
    settings: &ForwardSettings,
    data: &PairData,
    idx: &[usize],
) -> Result<ModelMetrics> {
    evaluate_lesioned(model, cfg, settings, data, idx, None)
}

/// [`evaluate`] with a `lesion` in every forward (`model::lesion`); each
/// batch draws its own permutations.
pub fn evaluate_lesioned(
    model: &EnergyFlowModel,
    cfg: &EnergyConfig,
    settings: &ForwardSettings,
    data: &PairData,
    idx: &[usize],
    lesion: Option<Lesion>,
) -> Result<ModelMetrics> {
    let dev = model
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("model has no device".into()))?;
    let mut ws = Workspace::default();
    let mut probe = SpreadProbe::default();
    let (mut loss_sum, mut mse_sum, mut cos_sum) = (0.0, 0.0, 0.0);
    for (j, chunk) in idx.chunks(cfg.train.batch_size.max(1)).enumerate() {
        let (x, y) = data.gather(chunk);
        let b = chunk.len();
        let x = device::matrix(x, b, data.input.cols, &dev);
        let y = device::matrix(y, b, data.target.cols, &dev);
        // In inference the seed feeds only the lesion's permutations.
        let opts = ForwardOptions {
            noise_seed: j as u64,
            lesion,
            ..ForwardOptions::inference(settings)
        };
        let mapped = model.input_mapper.forward(x.clone(), None);
        let out = model.forward(x, settings, &mut ws, &opts)?;
        probe.add(mapped, out.surface.clone(), out.output.clone())?;
        let parts = loss::objective(cfg, &model.input_mapper, out.output, out.surface, y);
        let [l, m, c] = parts.to_host()?;
        loss_sum += l * b as f64;
        mse_sum += m * b as f64;
        cos_sum += c * b as f64;
    }
    let n = idx.len().max(1) as f64;
    Ok(ModelMetrics {
        n: idx.len(),
        loss: loss_sum / n,
        mse: mse_sum / n,
        cosine: cos_sum / n,
        spread: probe.finish(),
    })
}

/// Mean row cosine between `pred` (row-major, `cols` wide) and the targets
/// of rows `idx`.
fn mean_cosine(pred: &[f32], data: &PairData, idx: &[usize]) -> f64 {
    let cols = data.target.cols;
    let sum: f64 = idx
        .iter()
        .enumerate()
        .map(|(k, &i)| cosine(&pred[k * cols..(k + 1) * cols], data.target.row(i)))
        .sum();
    sum / idx.len().max(1) as f64
}

/// Cosine of predicting target = input on rows `idx`; None when the input
/// and target widths differ.
pub fn identity_cosine(data: &PairData, idx: &[usize]) -> Option<f64> {
    if data.input.cols != data.target.cols {
        return None;
    }
    let pred: Vec<f32> = idx.iter().flat_map(|&i| data.input.row(i).to_vec()).collect();
    Some(mean_cosine(&pred, data, idx))
}

/// A fitted affine map y = x W + b.
pub struct Ridge {
    /// [E_in, E_out] row-major.
    pub w: Vec<f64>,
    pub b: Vec<f64>,
    pub lambda: f64,
}

impl Ridge {
    /// Fits on rows `idx` (see the module docs for lambda).
    pub fn fit(data: &PairData, idx: &[usize]) -> Result<Self> {
        let (di, dout, n) = (data.input.cols, data.target.cols, idx.len());
        if n == 0 {
            return Err(Error::input("ridge baseline: no training rows"));
        }
        let mean = |m: &crate::io::Matrix, d: usize| {
            let mut mu = vec![0.0f64; d];
            for &i in idx {
                mu.iter_mut().zip(m.row(i)).for_each(|(a, &v)| *a += v as f64);
            }
            mu.iter_mut().for_each(|a| *a /= n as f64);
            mu
        };
        let (mx, my) = (mean(&data.input, di), mean(&data.target, dout));
        let mut xtx = vec![0.0f64; di * di];
        let mut xty = vec![0.0f64; di * dout];
        let mut xc = vec![0.0f64; di];
        let mut yc = vec![0.0f64; dout];
        for &i in idx {
            xc.iter_mut()
                .zip(data.input.row(i))
                .zip(&mx)
                .for_each(|((c, &v), m)| *c = v as f64 - m);
            yc.iter_mut()
                .zip(data.target.row(i))
                .zip(&my)
                .for_each(|((c, &v), m)| *c = v as f64 - m);
            for r in 0..di {
                let xr = xc[r];
                if xr == 0.0 {
                    continue;
                }
                // Upper triangle only; mirrored below.
                for c in r..di {
                    xtx[r * di + c] += xr * xc[c];
                }
                for c in 0..dout {
                    xty[r * dout + c] += xr * yc[c];
                }
            }
        }
        for r in 0..di {
            for c in 0..r {
                xtx[r * di + c] = xtx[c * di + r];
            }
        }
        let trace: f64 = (0..di).map(|r| xtx[r * di + r]).sum();
        let lambda = (1e-2 * trace / di as f64).max(1e-8);
        for r in 0..di {
            xtx[r * di + r] += lambda;
        }
        let w = cholesky_solve(&mut xtx, di, xty, dout)?;
        let b: Vec<f64> = (0..dout)
            .map(|c| my[c] - (0..di).map(|r| mx[r] * w[r * dout + c]).sum::<f64>())
            .collect();
        Ok(Ridge { w, b, lambda })
    }

    /// Predictions for rows `idx`, row-major.
    pub fn predict(&self, data: &PairData, idx: &[usize]) -> Vec<f32> {
        let dout = self.b.len();
        let mut out = Vec::with_capacity(idx.len() * dout);
        for &i in idx {
            let x = data.input.row(i);
            for c in 0..dout {
                let v: f64 = self.b[c]
                    + x.iter()
                        .enumerate()
                        .map(|(r, &xv)| xv as f64 * self.w[r * dout + c])
                        .sum::<f64>();
                out.push(v as f32);
            }
        }
        out
    }
}

/// Solves A X = B for symmetric positive definite A [n, n] (overwritten by
/// its Cholesky factor) and B [n, m], both row-major.
fn cholesky_solve(a: &mut [f64], n: usize, mut b: Vec<f64>, m: usize) -> Result<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err(Error::Internal(
                "ridge baseline: matrix is not positive definite".into(),
            ));
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // L Z = B, then L' X = Z, column block by column block.
    for i in 0..n {
        for k in 0..i {
            let l = a[i * n + k];
            for c in 0..m {
                b[i * m + c] -= l * b[k * m + c];
            }
        }
        let d = a[i * n + i];
        b[i * m..(i + 1) * m].iter_mut().for_each(|v| *v /= d);
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            let l = a[k * n + i];
            for c in 0..m {
                b[i * m + c] -= l * b[k * m + c];
            }
        }
        let d = a[i * n + i];
        b[i * m..(i + 1) * m].iter_mut().for_each(|v| *v /= d);
    }
    Ok(b)
}

/// The line `eval --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The rows measured: "test" (the default, and a run's closing line)
    /// or "validation".
    pub split: SplitName,
    /// The optimizer step of the checkpoint evaluated (None for a model
    /// that is not a training checkpoint).
    pub step: Option<usize>,
    /// Rows measured.
    pub n: usize,
    pub loss: f64,
    pub mse: f64,
    pub cosine: f64,
    /// Predicting target = input; null when the widths differ.
    pub identity_cosine: Option<f64>,
    /// Ridge regression fitted on the training split.
    pub linear_cosine: f64,
    /// The MLP and residual MLP of `train::baselines` (trained on the
    /// training split, stopped on the validation split); null where not
    /// fitted (a checkpoint outside a run folder, a model outside a training
    /// run, or widths that differ).
    pub mlp_cosine: Option<f64>,
    pub residual_mlp_cosine: Option<f64>,
}

/// Evaluates `model` (with `lesion`, if any) on split `which` of `split`
/// and fits/scores the baselines (the linear one on the training rows).
pub fn report(
    model: &EnergyFlowModel,
    cfg: &EnergyConfig,
    settings: &ForwardSettings,
    data: &PairData,
    split: &Split,
    which: SplitName,
    lesion: Option<Lesion>,
) -> Result<EvalReport> {
    let rows = split.rows(which);
    let m = evaluate_lesioned(model, cfg, settings, data, rows, lesion)?;
    with_baselines(m, data, &split.train, rows, which)
}

/// The baselines' cosines on the held-out rows `val`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Baselines {
    /// Predicting target = input; None when the widths differ.
    pub identity_cosine: Option<f64>,
    /// Ridge regression fitted on the training rows.
    pub linear_cosine: f64,
}

/// The identity baseline on `val` and the ridge baseline fitted on `train`
/// and scored on `val`.
pub fn baselines(data: &PairData, train: &[usize], val: &[usize]) -> Result<Baselines> {
    let ridge = Ridge::fit(data, train)?;
    Ok(Baselines {
        identity_cosine: identity_cosine(data, val),
        linear_cosine: mean_cosine(&ridge.predict(data, val), data, val),
    })
}

/// The report of model metrics `m` (measured on `val`, the rows of split
/// `which`) next to the baselines on the same rows.
pub fn with_baselines(
    m: ModelMetrics,
    data: &PairData,
    train: &[usize],
    val: &[usize],
    which: SplitName,
) -> Result<EvalReport> {
    let b = baselines(data, train, val)?;
    let report = EvalReport {
        split: which,
        step: None,
        n: m.n,
        loss: m.loss,
        mse: m.mse,
        cosine: m.cosine,
        identity_cosine: b.identity_cosine,
        linear_cosine: b.linear_cosine,
        mlp_cosine: None,
        residual_mlp_cosine: None,
    };
    // JSON has no NaN: a report would print null. Say why instead.
    let figures = [
        ("loss", report.loss),
        ("mse", report.mse),
        ("cosine", report.cosine),
        ("linear_cosine", report.linear_cosine),
        ("identity_cosine", report.identity_cosine.unwrap_or(0.0)),
    ];
    if let Some((name, v)) = figures.iter().find(|(_, v)| !v.is_finite()) {
        let largest = val
            .iter()
            .flat_map(|&i| data.input.row(i).iter().chain(data.target.row(i)))
            .fold(0.0f32, |a, v| a.max(v.abs()));
        return Err(Error::input(format!(
            "{}: the held-out {name} is {v}: the model's outputs or the errors overflow on this data (largest |value| in the held-out pairs: {largest:e}) or the weights are broken",
            data.origin
        )));
    }
    Ok(report)
}

/// The data a checkpoint records as its origin (the bundled data when it
/// records none).
pub fn recorded_data(meta: &checkpoint::Meta) -> Result<PairData> {
    match &meta.data {
        Some(info) => PairData::from_origin(&info.origin),
        None => PairData::bundled(),
    }
}

/// Evaluates the checkpoint (or run folder: its `best/`) at `dir` on the
/// test split of `data`, or of the data it records, executing as `runtime`
/// says on `dev`. Returns the report and a note when the split is not the
/// run's own or its held-out rows also chose `best/`.
pub fn evaluate_checkpoint(
    dir: &Path,
    data: Option<&PairData>,
    runtime: &RuntimeConfig,
    dev: &Device,
) -> Result<(EvalReport, Option<String>)> {
    evaluate_checkpoint_on(dir, data, runtime, dev, SplitName::Test, None)
}

/// [`evaluate_checkpoint`] on split `which`, with a `lesion` in the
/// model's forwards (the baselines are untouched).
pub fn evaluate_checkpoint_on(
    dir: &Path,
    data: Option<&PairData>,
    runtime: &RuntimeConfig,
    dev: &Device,
    which: SplitName,
    lesion: Option<Lesion>,
) -> Result<(EvalReport, Option<String>)> {
    let (model, meta) = checkpoint::load_model(dir, runtime.kernels, dev)?;
    let loaded;
    let data = match data {
        Some(d) => d,
        None => {
            loaded = recorded_data(&meta)?;
            &loaded
        }
    };
    data.check_fits(&meta.config)?;
    let (split, note) = checkpoint_split(&meta, data)?;
    let settings = ForwardSettings::for_runtime(&meta.config, runtime, dev);
    let mut r = report(&model, &meta.config, &settings, data, &split, which, lesion)?;
    r.step = meta.train.as_ref().map(|t| t.step);
    if let Some(t) = &meta.train
        && meta.config.train.learned_baselines
        // A fit that fails (data that overflows an MLP) leaves the keys
        // null; the model's own figures stand.
        && let Ok(Some(learned)) = learned_baselines(dir, data, &split, t.seed, &meta.config.train, dev)
    {
        (r.mlp_cosine, r.residual_mlp_cosine) = learned.cosines(which == SplitName::Test);
    }
    Ok((r, note))
}

/// The learned baselines of the run that `dir` belongs to: kept in its
/// folder, or fitted now (and kept there when no process is writing it).
/// None for a checkpoint outside a run folder: with nowhere to keep them,
/// each eval would spend the better part of a minute refitting them.
pub fn learned_baselines(
    dir: &Path,
    data: &PairData,
    split: &Split,
    seed: u64,
    train: &crate::config::TrainConfig,
    dev: &Device,
) -> Result<Option<baselines::LearnedBaselines>> {
    let Some(run) = baselines::run_folder(dir) else {
        return Ok(None);
    };
    baselines::kept_or_fitted(
        run,
        data,
        split,
        seed,
        train,
        dev,
        |b| match super::lock::RunLock::acquire(run) {
            Ok((_lock, _)) => baselines::keep(run, b),
            // Another process writes the folder: report the fit, keep nothing.
            Err(_) => Ok(()),
        },
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        // A = [[4, 2], [2, 3]], X = [[1, 2], [3, 4]] -> B = A X.
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let b = vec![4.0 + 6.0, 8.0 + 8.0, 2.0 + 9.0, 4.0 + 12.0];
        let x = cholesky_solve(&mut a, 2, b, 2).unwrap();
        for (got, want) in x.iter().zip([1.0, 2.0, 3.0, 4.0]) {
            assert!((got - want).abs() < 1e-12, "{x:?}");
        }
    }

    #[test]
    fn a_non_finite_figure_is_refused_not_printed_as_null() {
        let mut data = PairData::synthetic_rotation(20, 4, 1);
        data.input.data[0] = 3e38;
        let (train, val): (Vec<usize>, Vec<usize>) = ((2..20).collect(), vec![0, 1]);
        let m = ModelMetrics {
            n: 2,
            loss: f64::NAN,
            mse: 1.0,
            cosine: 0.5,
            ..ModelMetrics::default()
        };
        let e = with_baselines(m, &data, &train, &val, SplitName::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("held-out loss is NaN") && e.contains("3e38"), "{e}");
        let fine = ModelMetrics { loss: 0.5, ..m };
        assert!(
            with_baselines(
                fine,
                &PairData::synthetic_rotation(20, 4, 1),
                &train,
                &val,
                SplitName::Test
            )
            .is_ok()
        );
    }

    #[test]
    fn ridge_recovers_a_rotation_and_identity_does_not() {
        let data = PairData::synthetic_rotation(400, 6, 1);
        let idx: Vec<usize> = (0..300).collect();
        let val: Vec<usize> = (300..400).collect();
        let r = Ridge::fit(&data, &idx).unwrap();
        let cos = mean_cosine(&r.predict(&data, &val), &data, &val);
        assert!(cos > 0.99, "{cos}");
        assert!(identity_cosine(&data, &val).unwrap() < 0.9);
    }
}
