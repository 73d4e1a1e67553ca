//! Input mapper (MODEL.md s.3): teacher embedding [B, E_in] -> one energy per
//! surface cell [B, S].
//!
//! `Linear(E_in,I) GELU LayerNorm Dropout(0.1) Linear(I,2S) GELU LayerNorm
//! Dropout(0.05) Linear(2S,S) Tanh` (the LayerNorms only with
//! `model.mapper_collector_layer_norm`, the default), then `* scale + bias` (two learned
//! scalars, init 1 and 0), viewed as [H, W], plus a learned positional table
//! [H, W] ~ N(0, 0.02^2). Unlike the reference, this is a registered module:
//! it is trained and saved with everything else (MODEL.md s.7).
//!
//! With `model.linear_path`, a Linear(E_in, S) of the input is added to all
//! that (`model::linear_paths` draws it, and with the identity init zeroes
//! the tanh branch and the positional table).

use super::layers::{DropoutMasks, Init, WeightInit, dropout, normed, optional_norm};
use crate::config::ModelConfig;
use crate::kernels::Kernels;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

/// Teacher embedding -> surface energies. Parameters: fc1 [E_in, I],
/// fc2 [I, 2S], fc3 [2S, S] (PyTorch-like init), LayerNorms, `scale` [1]
/// (init 1), `bias` [1] (init 0), `positional` [H, W] (N(0, 0.02^2)).
#[derive(Module, Debug)]
pub struct InputMapper {
    pub fc1: Linear,
    /// None without `model.mapper_collector_layer_norm`.
    pub ln1: Option<LayerNorm>,
    pub fc2: Linear,
    pub ln2: Option<LayerNorm>,
    pub fc3: Linear,
    pub scale: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub positional: Param<Tensor<2>>,
    /// `L_in` of `model.linear_path` (E_in -> S); None without it.
    pub linear: Option<Linear>,
    /// Which kernels the products and GELUs run on (fixed at `new`).
    #[module(skip)]
    pub kernels: Kernels,
}

impl InputMapper {
    /// The mapper of `cfg`: E_in = `input_embedding_dim`, I =
    /// `mapper_hidden_dim()`, S = W * H; weights drawn from `init`; its
    /// products and GELUs on `kernels`.
    pub fn new(cfg: &ModelConfig, kernels: Kernels, init: &mut Init, device: &Device) -> Self {
        let (w, h, i) = (cfg.lattice_width, cfg.lattice_height, cfg.mapper_hidden_dim());
        let s = w * h;
        InputMapper {
            fc1: init.linear(cfg.input_embedding_dim, i, WeightInit::Default),
            ln1: optional_norm(cfg.mapper_collector_layer_norm, i, device),
            fc2: init.linear(i, 2 * s, WeightInit::Default),
            ln2: optional_norm(cfg.mapper_collector_layer_norm, 2 * s, device),
            fc3: init.linear(2 * s, s, WeightInit::Default),
            scale: init.constant([1], 1.0),
            bias: init.constant([1], 0.0),
            positional: init.normal([h, w], 0.02),
            linear: None,
            kernels,
        }
    }

    /// [B, E_in] -> [B, S] (row-major cells, cell = iy * W + ix).
    /// `masks`: Some in training (dropout on), None in inference.
    pub fn forward(&self, input: Tensor<2>, mut masks: Option<&mut DropoutMasks>) -> Tensor<2> {
        let k = self.kernels;
        let x = normed(k, &self.ln1, k.gelu(k.linear(&self.fc1, input.clone())));
        let x = dropout(x, 0.1, masks.as_deref_mut());
        let x = normed(k, &self.ln2, k.gelu(k.linear(&self.fc2, x)));
        let x = dropout(x, 0.05, masks);
        let y = k.linear(&self.fc3, x).tanh();
        let y = y * self.scale.val().unsqueeze::<2>() + self.bias.val().unsqueeze::<2>();
        let [h, w] = self.positional.dims();
        let y = y + self.positional.val().reshape([1, h * w]);
        match &self.linear {
            Some(l) => y + k.linear(l, input),
            None => y,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnergyConfig, Preset};
    use crate::device;

    fn small() -> ModelConfig {
        ModelConfig {
            lattice_width: 5,
            lattice_height: 3,
            input_embedding_dim: 7,
            mapper_hidden: Some(6),
            ..EnergyConfig::preset(Preset::Debug).model
        }
    }

    #[test]
    fn shapes_and_initial_scalars() {
        let dev = Device::flex();
        let cfg = small();
        let m = InputMapper::new(&cfg, Kernels::Fused, &mut Init::new(1, &dev), &dev);
        let composed = InputMapper::new(&cfg, Kernels::Composed, &mut Init::new(1, &dev), &dev);
        assert_eq!(m.fc1.weight.dims(), [7, 6]);
        assert_eq!(m.fc2.weight.dims(), [6, 30]);
        assert_eq!(m.fc3.weight.dims(), [30, 15]);
        assert_eq!(m.positional.dims(), [3, 5]);
        assert_eq!(device::to_vec(m.scale.val()).unwrap(), vec![1.0]);
        assert_eq!(device::to_vec(m.bias.val()).unwrap(), vec![0.0]);
        let x = device::matrix((0..14).map(|i| i as f32 * 0.1).collect(), 2, 7, &dev);
        let y = m.forward(x.clone(), None);
        assert_eq!(y.dims(), [2, 15]);
        // tanh output plus a small positional table: within (-1.2, 1.2).
        assert!(device::to_vec(y.clone()).unwrap().iter().all(|v| v.abs() < 1.2));
        // Burn's own products (runtime.kernels = "composed") give the same map.
        let composed = device::to_vec(composed.forward(x.clone(), None)).unwrap();
        for (a, b) in composed.iter().zip(device::to_vec(y.clone()).unwrap()) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
        // Inference is deterministic; training dropout changes the output.
        assert_eq!(
            device::to_vec(m.forward(x.clone(), None)).unwrap(),
            device::to_vec(y.clone()).unwrap()
        );
        let mut masks = DropoutMasks::new(3, 1.0);
        assert_ne!(
            device::to_vec(m.forward(x.clone(), Some(&mut masks))).unwrap(),
            device::to_vec(y.clone()).unwrap()
        );
        // A dropout scale of 0 is inference.
        let mut off = DropoutMasks::new(3, 0.0);
        assert_eq!(
            device::to_vec(m.forward(x.clone(), Some(&mut off))).unwrap(),
            device::to_vec(y).unwrap()
        );
        // Without LayerNorms: none built, and the forward still runs.
        let plain = InputMapper::new(
            &ModelConfig {
                mapper_collector_layer_norm: false,
                ..cfg
            },
            Kernels::Fused,
            &mut Init::new(1, &dev),
            &dev,
        );
        assert!(plain.ln1.is_none() && plain.ln2.is_none());
        assert_eq!(plain.num_params(), m.num_params() - 2 * (6 + 30));
        assert_eq!(plain.forward(x, None).dims(), [2, 15]);
    }
}
