//! SimpleNeuron (MODEL.md s.3): (position, energy) -> F features per flow.
//!
//! `p' = Linear(3,3)(pos)`; `[p', energy]` (4) -> `Linear(4,32) LayerNorm
//! GELU -> Linear(32,32) LayerNorm GELU -> Linear(32,F)`. He (Kaiming normal)
//! weights, zero biases. Positions arrive already normalised to [-1, 1]^3
//! and are not normalised again (the reference did, MODEL.md s.7).

use super::layers::{Init, WeightInit};
use crate::config::ModelConfig;
use crate::kernels::Kernels;
use crate::kernels::neuron::{NeuronLayers, fused_neuron};
use crate::kernels::norm::norm_module;
use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

/// Per-flow feature extractor shared by all flows.
#[derive(Module, Debug)]
pub struct SimpleNeuron {
    pub pos: Linear,
    pub fc1: Linear,
    pub ln1: LayerNorm,
    pub fc2: Linear,
    pub ln2: LayerNorm,
    pub fc3: Linear,
    /// Which kernels the products and GELUs run on (fixed at `new`).
    #[module(skip)]
    pub kernels: Kernels,
}

impl SimpleNeuron {
    /// The neuron of `cfg`: hidden `neuron_hidden_dim`, output F =
    /// `neuron_output_dim`; He weights, zero biases; its products and
    /// GELUs on `kernels`.
    pub fn new(cfg: &ModelConfig, kernels: Kernels, init: &mut Init, device: &Device) -> Self {
        let h = cfg.neuron_hidden_dim;
        SimpleNeuron {
            pos: init.linear(3, 3, WeightInit::He),
            fc1: init.linear(4, h, WeightInit::He),
            ln1: norm_module(h, device),
            fc2: init.linear(h, h, WeightInit::He),
            ln2: norm_module(h, device),
            fc3: init.linear(h, cfg.neuron_output_dim, WeightInit::He),
            kernels,
        }
    }

    /// pos [N, 3], energy [N, 1] -> features [N, F].
    pub fn forward(&self, pos: Tensor<2>, energy: Tensor<2>) -> Tensor<2> {
        self.run(pos, energy, false)
    }

    /// [features, energy] [N, F + 1], the carrier's input: on the GPU the
    /// kernel writes the energy column itself, saving the concatenation.
    pub fn carrier_input(&self, pos: Tensor<2>, energy: Tensor<2>) -> Tensor<2> {
        self.run(pos, energy, true)
    }

    /// features [N, F] from the layers one by one on this module's
    /// kernels: what runs where the backend has no neuron kernel, and the
    /// reference that kernel is tested against (tests/gpu/neuron.rs).
    pub fn layers(&self, pos: Tensor<2>, energy: Tensor<2>) -> Tensor<2> {
        let k = self.kernels;
        let p = k.linear(&self.pos, pos);
        let x = Tensor::cat(vec![p, energy], 1);
        let x = k.gelu(k.layer_norm(&self.ln1, k.linear(&self.fc1, x)));
        let x = k.gelu(k.layer_norm(&self.ln2, k.linear(&self.fc2, x)));
        k.linear(&self.fc3, x)
    }

    fn run(&self, pos: Tensor<2>, energy: Tensor<2>, with_energy: bool) -> Tensor<2> {
        let k = self.kernels;
        if k.fused() {
            let layers = NeuronLayers {
                pos: &self.pos,
                fc1: &self.fc1,
                ln1: &self.ln1,
                fc2: &self.fc2,
                ln2: &self.ln2,
                fc3: &self.fc3,
            };
            // One kernel where the backend has it (the GPU), else the layers.
            if let Some(y) = fused_neuron(&layers, &pos, &energy, with_energy) {
                return y;
            }
        }
        let features = self.layers(pos, energy.clone());
        if with_energy {
            Tensor::cat(vec![features, energy], 1)
        } else {
            features
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnergyConfig, Preset};
    use crate::device;

    #[test]
    fn shapes_and_zero_biases() {
        let dev = Device::flex();
        let cfg = ModelConfig {
            neuron_hidden_dim: 5,
            neuron_output_dim: 9,
            ..EnergyConfig::preset(Preset::Debug).model
        };
        let n = SimpleNeuron::new(&cfg, Kernels::Fused, &mut Init::new(2, &dev), &dev);
        let composed = SimpleNeuron::new(&cfg, Kernels::Composed, &mut Init::new(2, &dev), &dev);
        assert_eq!(n.pos.weight.dims(), [3, 3]);
        assert_eq!(n.fc1.weight.dims(), [4, 5]);
        assert_eq!(n.fc2.weight.dims(), [5, 5]);
        assert_eq!(n.fc3.weight.dims(), [5, 9]);
        for l in [&n.pos, &n.fc1, &n.fc2, &n.fc3] {
            let b = device::to_vec(l.bias.as_ref().unwrap().val()).unwrap();
            assert!(b.iter().all(|&v| v == 0.0));
        }
        let pos = device::matrix(vec![0.0, 0.5, -1.0, 1.0, -0.5, 0.0], 2, 3, &dev);
        let e = device::matrix(vec![0.3, -0.2], 2, 1, &dev);
        let f = n.forward(pos.clone(), e.clone());
        let reference = composed.forward(pos, e);
        let (a, b) = (device::to_vec(f.clone()).unwrap(), device::to_vec(reference).unwrap());
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() <= 1e-5), "{a:?} vs {b:?}");
        assert_eq!(f.dims(), [2, 9]);
        assert!(device::to_vec(f).unwrap().iter().all(|v| v.is_finite()));
    }
}
