//! EnergyCarrier (MODEL.md s.3): a stack of L GRU layers that carries each
//! flow's memory one simulation step at a time, plus the energy and
//! displacement heads on the top layer's output.
//!
//! GRU: PyTorch "reset-after" semantics (burn's `Gru`, one layer each),
//! Xavier-uniform input weights, orthogonal recurrent weights, zero biases.
//! Heads: `energy' = tanh(Linear(Hd/2,1)(GELU(Linear(Hd,Hd/2)(h))))` and
//! `delta = clamp(scale * Linear(64,3)(GELU(Linear(Hd,64)(h))), -m, m)`,
//! Xavier-normal weights, zero biases.
//!
//! We step the GRU cell directly (`gru_cell`) rather than through
//! `Gru::forward`, which allocates a [N, T, Hd] output and slice-assigns
//! into it even for T = 1: one copy of every hidden state per step saved.

use super::layers::{Init, WeightInit};
use crate::config::ModelConfig;
use burn::module::Module;
use burn::nn::gru::{Gru, GruConfig};
use burn::nn::{Gelu, Linear};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

/// The GRU stack and its two heads.
#[derive(Module, Debug)]
pub struct EnergyCarrier {
    pub layers: Vec<Gru>,
    pub energy_fc1: Linear,
    pub energy_fc2: Linear,
    pub delta_fc1: Linear,
    pub delta_fc2: Linear,
    gelu: Gelu,
}

/// One carrier step's results for N flows.
pub struct CarrierStep {
    /// New energy [N, 1].
    pub energy: Tensor<2>,
    /// Displacement [N, 3], already scaled and clamped.
    pub delta: Tensor<2>,
    /// New hidden state per layer, each [N, Hd].
    pub hidden: Vec<Tensor<2>>,
}

impl EnergyCarrier {
    /// The carrier of `cfg`: L = `carrier_layers` GRU layers of Hd =
    /// `carrier_hidden_dim`, input F + 1 (`neuron_output_dim` features and
    /// the energy). Xavier-uniform input weights, orthogonal recurrent
    /// weights, Xavier-normal heads, zero biases.
    pub fn new(cfg: &ModelConfig, init: &mut Init, device: &Device) -> Self {
        let hd = cfg.carrier_hidden_dim;
        let layers = (0..cfg.carrier_layers)
            .map(|l| {
                // burn's own (lazy) gate weights are replaced before ever being drawn.
                let d_in = if l == 0 { cfg.neuron_output_dim + 1 } else { hd };
                let mut gru = GruConfig::new(d_in, hd, true).init(device);
                for gate in [&mut gru.update_gate, &mut gru.reset_gate, &mut gru.new_gate] {
                    gate.input_transform = init.linear(d_in, hd, WeightInit::XavierUniform);
                    gate.hidden_transform = init.linear(hd, hd, WeightInit::Orthogonal);
                }
                gru
            })
            .collect();
        EnergyCarrier {
            layers,
            energy_fc1: init.linear(hd, hd / 2, WeightInit::XavierNormal),
            energy_fc2: init.linear(hd / 2, 1, WeightInit::XavierNormal),
            delta_fc1: init.linear(hd, 64, WeightInit::XavierNormal),
            delta_fc2: init.linear(64, 3, WeightInit::XavierNormal),
            gelu: Gelu::new(),
        }
    }

    /// One time step: input [N, F+1], hidden per layer [N, Hd]. The
    /// displacement is `clamp(scale * head, -max_displacement,
    /// max_displacement)`: the scale follows the training schedule and the
    /// clamp is a flow rule (`[flow]`), so neither is a weight.
    pub fn step(&self, input: Tensor<2>, hidden: Vec<Tensor<2>>, scale: f64, max_displacement: f64) -> CarrierStep {
        let mut x = input;
        let mut new_hidden = Vec::with_capacity(self.layers.len());
        for (gru, h) in self.layers.iter().zip(hidden) {
            let h_new = gru_cell(gru, x, h);
            x = h_new.clone();
            new_hidden.push(h_new);
        }
        let e = self.gelu.forward(self.energy_fc1.forward(x.clone()));
        let energy = self.energy_fc2.forward(e).tanh();
        let d = self.gelu.forward(self.delta_fc1.forward(x));
        let m = max_displacement;
        let delta = (self.delta_fc2.forward(d) * scale).clamp(-m, m);
        CarrierStep {
            energy,
            delta,
            hidden: new_hidden,
        }
    }

    /// Hidden size Hd.
    pub fn hidden_dim(&self) -> usize {
        self.layers.first().map_or(0, |g| g.d_hidden)
    }
}

/// One reset-after GRU step, PyTorch semantics:
/// r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz),
/// n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
fn gru_cell(gru: &Gru, x: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
    let z = sigmoid(
        gru.update_gate.input_transform.forward(x.clone()) + gru.update_gate.hidden_transform.forward(h.clone()),
    );
    let r =
        sigmoid(gru.reset_gate.input_transform.forward(x.clone()) + gru.reset_gate.hidden_transform.forward(h.clone()));
    let n = (gru.new_gate.input_transform.forward(x) + r * gru.new_gate.hidden_transform.forward(h.clone())).tanh();
    // (1 - z) * n + z * h  ==  n + z * (h - n): one fewer elementwise pass.
    n.clone() + z * (h - n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnergyConfig, Preset};
    use crate::device;

    fn small() -> ModelConfig {
        ModelConfig {
            neuron_output_dim: 5,
            carrier_hidden_dim: 8,
            carrier_layers: 3,
            ..EnergyConfig::preset(Preset::Debug).model
        }
    }

    #[test]
    fn shapes_of_the_stack_and_the_heads() {
        let dev = Device::flex();
        let c = EnergyCarrier::new(&small(), &mut Init::new(4, &dev), &dev);
        assert_eq!(c.layers.len(), 3);
        assert_eq!(c.hidden_dim(), 8);
        assert_eq!(c.layers[0].update_gate.input_transform.weight.dims(), [6, 8]);
        assert_eq!(c.layers[1].update_gate.input_transform.weight.dims(), [8, 8]);
        assert_eq!(c.layers[2].new_gate.hidden_transform.weight.dims(), [8, 8]);
        assert_eq!(c.energy_fc1.weight.dims(), [8, 4]);
        assert_eq!(c.delta_fc2.weight.dims(), [64, 3]);
        let x = device::matrix((0..12).map(|i| (i as f32).cos()).collect(), 2, 6, &dev);
        let h = vec![Tensor::zeros([2, 8], &dev); 3];
        let out = c.step(x, h, 1.0, 0.5);
        assert_eq!(out.energy.dims(), [2, 1]);
        assert_eq!(out.delta.dims(), [2, 3]);
        assert_eq!(out.hidden.len(), 3);
        assert!(out.hidden.iter().all(|h| h.dims() == [2, 8]));
        assert!(device::to_vec(out.energy).unwrap().iter().all(|e| e.abs() < 1.0));
    }

    #[test]
    fn recurrent_weights_are_orthogonal_and_the_delta_is_clamped() {
        let dev = Device::flex();
        let c = EnergyCarrier::new(&small(), &mut Init::new(5, &dev), &dev);
        let w = device::to_vec(c.layers[0].reset_gate.hidden_transform.weight.val()).unwrap();
        for i in 0..8 {
            for j in 0..8 {
                let dot: f32 = (0..8).map(|k| w[k * 8 + i] * w[k * 8 + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "({i},{j}): {dot}");
            }
        }
        // A huge scale saturates the clamp at exactly +-m.
        let x = device::matrix((0..6).map(|i| i as f32).collect(), 1, 6, &dev);
        let out = c.step(x, vec![Tensor::zeros([1, 8], &dev); 3], 1e6, 0.25);
        let d = device::to_vec(out.delta).unwrap();
        assert!(d.iter().all(|v| v.abs() <= 0.25), "{d:?}");
        assert!(d.iter().any(|v| v.abs() == 0.25), "{d:?}");
    }
}
