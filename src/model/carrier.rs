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
use burn::module::Module;
use burn::nn::gru::{Gru, GruConfig};
use burn::nn::{Gelu, Linear};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

/// Shapes of an [`EnergyCarrier`].
#[derive(Debug, Clone, Copy)]
pub struct CarrierConfig {
    /// GRU input width (F + 1: neuron features and the energy).
    pub d_input: usize,
    /// GRU hidden size Hd.
    pub d_hidden: usize,
    /// GRU layers L.
    pub layers: usize,
    /// Displacement clamp m.
    pub max_displacement: f64,
}

impl CarrierConfig {
    pub fn init(&self, init: &mut Init, device: &Device) -> EnergyCarrier {
        let hd = self.d_hidden;
        let layers = (0..self.layers)
            .map(|l| {
                // burn's own (lazy) gate weights are replaced before ever being drawn.
                let d_in = if l == 0 { self.d_input } else { hd };
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
            max_displacement: self.max_displacement,
            gelu: Gelu::new(),
        }
    }
}

/// The GRU stack and its two heads.
#[derive(Module, Debug)]
pub struct EnergyCarrier {
    pub layers: Vec<Gru>,
    pub energy_fc1: Linear,
    pub energy_fc2: Linear,
    pub delta_fc1: Linear,
    pub delta_fc2: Linear,
    pub max_displacement: f64,
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
    /// One time step: input [N, F+1], hidden per layer [N, Hd].
    pub fn step(&self, input: Tensor<2>, hidden: Vec<Tensor<2>>, scale: f64) -> CarrierStep {
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
        let m = self.max_displacement;
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
