//! Output collector (MODEL.md s.3): surface [B, S] -> embedding [B, E_out].
//!
//! `surface .* position weights [H, W] (init 1) -> Linear(S,2S) GELU
//! LayerNorm Dropout(0.05) Linear(2S,I) GELU LayerNorm Dropout(0.1)
//! Linear(I,E_out)` (the LayerNorms only with `model.mapper_collector_layer_norm`,
//! the default).

use super::layers::{DropoutMasks, Init, WeightInit, dropout, normed, optional_norm};
use crate::config::ModelConfig;
use crate::kernels::Kernels;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

/// Surface -> embedding (the readout network; `flow::Aggregator` is the
/// collection that builds the surface).
#[derive(Module, Debug)]
pub struct OutputCollector {
    pub position_weights: Param<Tensor<2>>,
    pub fc1: Linear,
    /// None without `model.mapper_collector_layer_norm`.
    pub ln1: Option<LayerNorm>,
    pub fc2: Linear,
    pub ln2: Option<LayerNorm>,
    pub fc3: Linear,
    /// `L_out` of `model.linear_path` (S -> E_out); None without it.
    pub linear: Option<Linear>,
    /// Which kernels the products and GELUs run on (fixed at `new`).
    #[module(skip)]
    pub kernels: Kernels,
}

impl OutputCollector {
    /// The readout of `cfg`: S = W * H, I = `mapper_hidden_dim()`, E_out =
    /// `output_embedding_dim`; position weights start at 1; its products
    /// and GELUs on `kernels`.
    pub fn new(cfg: &ModelConfig, kernels: Kernels, init: &mut Init, device: &Device) -> Self {
        let (w, h, i) = (cfg.lattice_width, cfg.lattice_height, cfg.mapper_hidden_dim());
        let s = w * h;
        OutputCollector {
            position_weights: init.constant([h, w], 1.0),
            fc1: init.linear(s, 2 * s, WeightInit::Default),
            ln1: optional_norm(cfg.mapper_collector_layer_norm, 2 * s, device),
            fc2: init.linear(2 * s, i, WeightInit::Default),
            ln2: optional_norm(cfg.mapper_collector_layer_norm, i, device),
            fc3: init.linear(i, cfg.output_embedding_dim, WeightInit::Default),
            linear: None,
            kernels,
        }
    }

    /// surface [B, S] -> [B, E_out].
    /// `masks`: Some in training (dropout on), None in inference.
    pub fn forward(&self, surface: Tensor<2>, mut masks: Option<&mut DropoutMasks>) -> Tensor<2> {
        let k = self.kernels;
        let [h, w] = self.position_weights.dims();
        let x = surface.clone() * self.position_weights.val().reshape([1, h * w]);
        let x = normed(k, &self.ln1, k.gelu(k.linear(&self.fc1, x)));
        let x = dropout(x, 0.05, masks.as_deref_mut());
        let x = normed(k, &self.ln2, k.gelu(k.linear(&self.fc2, x)));
        let x = dropout(x, 0.1, masks);
        let y = k.linear(&self.fc3, x);
        match &self.linear {
            Some(l) => y + k.linear(l, surface),
            None => y,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnergyConfig, Preset};
    use crate::device;

    #[test]
    fn shapes_and_position_weights() {
        let dev = Device::flex();
        let cfg = ModelConfig {
            lattice_width: 4,
            lattice_height: 2,
            mapper_hidden: Some(6),
            output_embedding_dim: 5,
            ..EnergyConfig::preset(Preset::Debug).model
        };
        let c = OutputCollector::new(&cfg, Kernels::Fused, &mut Init::new(3, &dev), &dev);
        let composed = OutputCollector::new(&cfg, Kernels::Composed, &mut Init::new(3, &dev), &dev);
        assert_eq!(c.position_weights.dims(), [2, 4]);
        assert!(
            device::to_vec(c.position_weights.val())
                .unwrap()
                .iter()
                .all(|&v| v == 1.0)
        );
        assert_eq!(c.fc1.weight.dims(), [8, 16]);
        assert_eq!(c.fc2.weight.dims(), [16, 6]);
        assert_eq!(c.fc3.weight.dims(), [6, 5]);
        assert_eq!(c.ln1.as_ref().map(|n| n.gamma.dims()), Some([16]));
        let surface = device::matrix((0..24).map(|i| (i as f32 * 0.3).sin()).collect(), 3, 8, &dev);
        let y = c.forward(surface.clone(), None);
        assert_eq!(y.dims(), [3, 5]);
        let y = device::to_vec(y).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
        // Burn's own products (runtime.kernels = "composed") give the same output.
        let composed = device::to_vec(composed.forward(surface.clone(), None)).unwrap();
        for (a, b) in composed.iter().zip(&y) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
        // Without LayerNorms: none built, and the forward still runs.
        let plain = OutputCollector::new(
            &ModelConfig {
                mapper_collector_layer_norm: false,
                ..cfg
            },
            Kernels::Fused,
            &mut Init::new(3, &dev),
            &dev,
        );
        assert!(plain.ln1.is_none() && plain.ln2.is_none());
        assert_eq!(plain.num_params(), c.num_params() - 2 * (16 + 6));
        assert_eq!(plain.forward(surface, None).dims(), [3, 5]);
    }
}
