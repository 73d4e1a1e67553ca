//! The training objectives of MODEL.md s.5 and the metrics reported with
//! them.
//!
//! - "embedding" (default): `mse_weight * MSE(y_hat, y) + lambda_cos * (1 -
//!   cos(y_hat, y))`, both averaged over the batch (`mse_weight` 1 by
//!   default; 0 trains on the cosine alone);
//! - "surface" (the reference objective): `MSE(surface, InputMapper(y))`
//!   with the mapped target detached (and the mapper frozen by the trainer).

use crate::config::{EnergyConfig, LossKind};
use crate::model::mapper::InputMapper;
use burn::tensor::Tensor;

/// Cosine similarity of each row pair, as PyTorch's `cosine_similarity`:
/// `x.y / max(|x| |y|, eps)`. [B, E] x [B, E] -> [B].
pub fn row_cosine(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let dot = (a.clone() * b.clone()).sum_dim(1);
    let na = a.square().sum_dim(1).sqrt();
    let nb = b.square().sum_dim(1).sqrt();
    let cos = dot / (na * nb).clamp_min(1e-8);
    cos.flatten(0, 1)
}

/// The loss and its parts for one batch, all scalars [1] on the device.
pub struct LossParts {
    /// What is back-propagated.
    pub loss: Tensor<1>,
    /// MSE between the prediction and its target (embeddings, or surfaces
    /// for the "surface" loss).
    pub mse: Tensor<1>,
    /// Mean cosine between the output embedding and the target embedding
    /// (reported for both objectives).
    pub cosine: Tensor<1>,
}

impl LossParts {
    /// The three scalars in one device read: [loss, mse, cosine].
    pub fn to_host(&self) -> crate::error::Result<[f64; 3]> {
        Ok(Self::all_to_host(std::slice::from_ref(self))?[0])
    }

    /// The three scalars of each of `parts` in one device read (a
    /// training step's passes, read once after all of them).
    pub fn all_to_host(parts: &[LossParts]) -> crate::error::Result<Vec<[f64; 3]>> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let all = parts
            .iter()
            .flat_map(|p| [p.loss.clone(), p.mse.clone(), p.cosine.clone()])
            .collect();
        let v = crate::device::to_vec(Tensor::cat(all, 0))?;
        Ok(v.chunks_exact(3)
            .map(|c| [c[0] as f64, c[1] as f64, c[2] as f64])
            .collect())
    }
}

/// The config's objective for one batch: `output` [B, E_out] and
/// `surface` [B, S] from the forward, `target` [B, E_out]; the "surface"
/// loss maps the target through `mapper` (inference mode, detached).
pub fn objective(
    cfg: &EnergyConfig,
    mapper: &InputMapper,
    output: Tensor<2>,
    surface: Tensor<2>,
    target: Tensor<2>,
) -> LossParts {
    let train = &cfg.train;
    match train.loss {
        LossKind::Embedding => embedding_loss(output, target, train.mse_weight, train.lambda_cos),
        LossKind::Surface => {
            let cosine = row_cosine(output, target.clone()).mean();
            surface_loss(surface, mapper.forward(target, None), cosine)
        }
    }
}

/// The "embedding" objective.
pub fn embedding_loss(pred: Tensor<2>, target: Tensor<2>, mse_weight: f64, lambda_cos: f64) -> LossParts {
    let mse = (pred.clone() - target.clone()).square().mean();
    let cosine = row_cosine(pred, target).mean();
    let loss = mse.clone() * mse_weight + (cosine.clone().neg() + 1.0) * lambda_cos;
    LossParts { loss, mse, cosine }
}

/// The "surface" objective: `surface` [B, S] against the mapped target
/// [B, S], detached here. `cosine` is the output/target cosine, a metric.
pub fn surface_loss(surface: Tensor<2>, mapped_target: Tensor<2>, cosine: Tensor<1>) -> LossParts {
    let mse = (surface - mapped_target.detach()).square().mean();
    LossParts {
        loss: mse.clone(),
        mse,
        cosine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device;
    use burn::tensor::Device;

    #[test]
    fn embedding_loss_values() {
        let d = Device::flex();
        let a = device::matrix(vec![1.0, 0.0, 0.0, 2.0], 2, 2, &d);
        let b = device::matrix(vec![1.0, 0.0, 2.0, 0.0], 2, 2, &d);
        let [loss, mse, cos] = embedding_loss(a.clone(), b.clone(), 1.0, 0.5).to_host().unwrap();
        // Row 1 identical, row 2 orthogonal: cosine mean 0.5; MSE (4+4)/4 = 2.
        assert!((cos - 0.5).abs() < 1e-6);
        assert!((mse - 2.0).abs() < 1e-6);
        assert!((loss - (2.0 + 0.5 * 0.5)).abs() < 1e-6);
        // The MSE weighted, or left out (the cosine alone).
        let [loss, mse, _] = embedding_loss(a.clone(), b.clone(), 0.25, 0.5).to_host().unwrap();
        assert!((mse - 2.0).abs() < 1e-6);
        assert!((loss - (0.5 + 0.25)).abs() < 1e-6);
        let [loss, _, _] = embedding_loss(a, b, 0.0, 2.0).to_host().unwrap();
        assert!((loss - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cosine_of_a_zero_row_is_zero_not_nan() {
        let d = Device::flex();
        let a = device::matrix(vec![0.0, 0.0], 1, 2, &d);
        let b = device::matrix(vec![1.0, 0.0], 1, 2, &d);
        let c = device::to_vec(row_cosine(a, b)).unwrap();
        assert_eq!(c, vec![0.0]);
    }
}
