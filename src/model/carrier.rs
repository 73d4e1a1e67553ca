//! EnergyCarrier (MODEL.md s.3): a stack of L GRU layers that carries each
//! flow's memory one simulation step at a time, plus the energy and
//! displacement heads on the top layer's output.
//!
//! GRU: PyTorch "reset-after" semantics. Each layer holds its three gates'
//! projections side by side, one Linear(d_in, 3Hd) for the input and one
//! Linear(Hd, 3Hd) for the hidden state (gate blocks r | z | n), so a step
//! is two matrix products and one fused cell (`kernels::gru_cell`) instead
//! of six products and a dozen elementwise passes. Each gate block is drawn
//! as MODEL.md asks: Xavier-uniform input weights, orthogonal recurrent
//! weights, zero biases.
//! Heads: `energy' = tanh(Linear(Hd/2,1)(GELU(Linear(Hd,Hd/2)(h))))` and
//! `delta = clamp(scale * Linear(64,3)(GELU(Linear(Hd,64)(h))), -m, m)`,
//! Xavier-normal weights, zero biases; each is one product and one
//! kernel (`kernels::head`) where the backend has it.

use super::layers::{Init, WeightInit};
use crate::config::{FlowConfig, ModelConfig};
use crate::kernels::head::{Finish, head};
use crate::kernels::{Kernels, gru_cell, gru_cell_composed, matmul};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

/// One GRU layer: the input and hidden projections of its three gates.
#[derive(Module, Debug)]
pub struct GruLayer {
    /// x -> [r | z | n] pre-activations: weight [d_in, 3Hd], bias [3Hd].
    pub input: Linear,
    /// h -> [r | z | n] pre-activations: weight [Hd, 3Hd], bias [3Hd].
    pub hidden: Linear,
}

impl GruLayer {
    /// A layer of `d_in` inputs and `hd` hidden units. Draws the gates in
    /// the order z, r, n (input then hidden weights), as the earlier
    /// one-Linear-per-gate layout did, so a seed gives the same values.
    fn new(d_in: usize, hd: usize, init: &mut Init) -> Self {
        let mut input = [Vec::new(), Vec::new(), Vec::new()];
        let mut hidden = [Vec::new(), Vec::new(), Vec::new()];
        for gate in [1, 0, 2] {
            input[gate] = init.draw(d_in, hd, WeightInit::XavierUniform).0;
            hidden[gate] = init.draw(hd, hd, WeightInit::Orthogonal).0;
        }
        // Row a of the side-by-side matrix: row a of r, of z, of n.
        let side_by_side = |blocks: &[Vec<f32>; 3], rows: usize| -> Vec<f32> {
            (0..rows)
                .flat_map(|a| blocks.iter().flat_map(move |b| b[a * hd..(a + 1) * hd].iter().copied()))
                .collect()
        };
        GruLayer {
            input: init.linear_from(side_by_side(&input, d_in), vec![0.0; 3 * hd], d_in),
            hidden: init.linear_from(side_by_side(&hidden, hd), vec![0.0; 3 * hd], hd),
        }
    }

    /// Hidden size Hd.
    pub fn hidden_dim(&self) -> usize {
        self.hidden.weight.dims()[0]
    }

    /// h' [N, Hd] from x [N, d_in] and h [N, Hd] on `kernels`: the fused
    /// cell (which adds the biases itself) or its composed reference.
    pub fn step(&self, x: Tensor<2>, h: Tensor<2>, kernels: Kernels) -> Tensor<2> {
        if kernels.fused() {
            let bias = |l: &Linear| l.bias.as_ref().expect("GRU layers have biases").val();
            let gx = matmul(x, self.input.weight.val());
            let gh = matmul(h.clone(), self.hidden.weight.val());
            gru_cell(gx, gh, h, bias(&self.input), bias(&self.hidden))
        } else {
            gru_cell_composed(self.input.forward(x), self.hidden.forward(h.clone()), h)
        }
    }
}

/// The GRU stack and its two heads.
#[derive(Module, Debug)]
pub struct EnergyCarrier {
    pub layers: Vec<GruLayer>,
    pub energy_fc1: Linear,
    pub energy_fc2: Linear,
    pub delta_fc1: Linear,
    pub delta_fc2: Linear,
    /// How a step is computed (fixed at `new`).
    #[module(skip)]
    pub settings: StepSettings,
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

/// How a carrier step is computed: fixed when the carrier is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSettings {
    /// The displacement clamp m (a flow rule, `flow.max_displacement`).
    pub max_displacement: f64,
    /// The energy head's output is added to the flow's energy instead of
    /// replacing it (`flow.energy_residual`).
    pub energy_residual: bool,
    /// Fused GRU cell, products and GELU, or the composed reference ops
    /// (`runtime.kernels`).
    pub kernels: Kernels,
}

impl StepSettings {
    /// The settings of `flow`'s rules on `kernels`.
    pub fn new(flow: &FlowConfig, kernels: Kernels) -> Self {
        StepSettings {
            max_displacement: flow.max_displacement,
            energy_residual: flow.energy_residual,
            kernels,
        }
    }
}

impl EnergyCarrier {
    /// The carrier of `cfg`: L = `carrier_layers` GRU layers of Hd =
    /// `carrier_hidden_dim`, input F + 1 (`neuron_output_dim` features and
    /// the energy), and the two heads, stepping as `settings` says.
    pub fn new(cfg: &ModelConfig, settings: StepSettings, init: &mut Init, _device: &Device) -> Self {
        let hd = cfg.carrier_hidden_dim;
        let layers = (0..cfg.carrier_layers)
            .map(|l| GruLayer::new(if l == 0 { cfg.neuron_output_dim + 1 } else { hd }, hd, init))
            .collect();
        EnergyCarrier {
            layers,
            energy_fc1: init.linear(hd, hd / 2, WeightInit::XavierNormal),
            energy_fc2: init.linear(hd / 2, 1, WeightInit::XavierNormal),
            delta_fc1: init.linear(hd, 64, WeightInit::XavierNormal),
            delta_fc2: init.linear(64, 3, WeightInit::XavierNormal),
            settings,
        }
    }

    /// One time step: input [N, F+1] (the neuron's features, then the
    /// flow's energy as the last column), hidden per layer [N, Hd]. The
    /// displacement is `clamp(scale * head, -m, m)`: the scale follows the
    /// training schedule (so it is an argument) and the clamp m is a flow
    /// rule; neither is a weight. The new energy is the energy head's
    /// output, or with `energy_residual` the old energy plus it.
    pub fn step(&self, input: Tensor<2>, hidden: Vec<Tensor<2>>, displacement_scale: f64) -> CarrierStep {
        let s = &self.settings;
        let k = s.kernels;
        let [n, width] = input.dims();
        let old_energy = s.energy_residual.then(|| input.clone().slice([0..n, width - 1..width]));
        let mut x = input;
        let mut new_hidden = Vec::with_capacity(self.layers.len());
        for (layer, h) in self.layers.iter().zip(hidden) {
            let h_new = layer.step(x, h, k);
            x = h_new.clone();
            new_hidden.push(h_new);
        }
        let energy = head(&self.energy_fc1, &self.energy_fc2, x.clone(), Finish::Tanh, k);
        let energy = match old_energy {
            Some(old) => old + energy,
            None => energy,
        };
        let clamp = Finish::Clamp {
            scale: displacement_scale,
            limit: s.max_displacement,
        };
        let delta = head(&self.delta_fc1, &self.delta_fc2, x, clamp, k);
        CarrierStep {
            energy,
            delta,
            hidden: new_hidden,
        }
    }

    /// Hidden size Hd.
    pub fn hidden_dim(&self) -> usize {
        self.layers.first().map_or(0, GruLayer::hidden_dim)
    }
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
        let c = carrier(4, settings(0.5, Kernels::Fused));
        assert_eq!(c.layers.len(), 3);
        assert_eq!(c.hidden_dim(), 8);
        assert_eq!(c.layers[0].input.weight.dims(), [6, 24]);
        assert_eq!(c.layers[1].input.weight.dims(), [8, 24]);
        assert_eq!(c.layers[2].hidden.weight.dims(), [8, 24]);
        assert_eq!(c.layers[2].hidden.bias.as_ref().unwrap().dims(), [24]);
        assert_eq!(c.energy_fc1.weight.dims(), [8, 4]);
        assert_eq!(c.delta_fc2.weight.dims(), [64, 3]);
        let x = device::matrix((0..12).map(|i| (i as f32).cos()).collect(), 2, 6, &dev);
        let h = vec![Tensor::zeros([2, 8], &dev); 3];
        let out = c.step(x, h, 1.0);
        assert_eq!(out.energy.dims(), [2, 1]);
        assert_eq!(out.delta.dims(), [2, 3]);
        assert_eq!(out.hidden.len(), 3);
        assert!(out.hidden.iter().all(|h| h.dims() == [2, 8]));
        assert!(device::to_vec(out.energy).unwrap().iter().all(|e| e.abs() < 1.0));
    }

    fn settings(max_displacement: f64, kernels: Kernels) -> StepSettings {
        StepSettings {
            max_displacement,
            energy_residual: false,
            kernels,
        }
    }

    fn carrier(seed: u64, s: StepSettings) -> EnergyCarrier {
        let dev = Device::flex();
        EnergyCarrier::new(&small(), s, &mut Init::new(seed, &dev), &dev)
    }

    #[test]
    fn a_residual_step_adds_the_head_to_the_old_energy() {
        let dev = Device::flex();
        let c = carrier(7, settings(0.5, Kernels::Fused));
        // Input [features (5), energy]: energies 0.3 and -2.
        let x = device::matrix(
            vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.3, -0.5, 0.0, 0.5, 1.0, -1.0, -2.0],
            2,
            6,
            &dev,
        );
        let h = vec![Tensor::zeros([2, 8], &dev); 3];
        let replaced = device::to_vec(c.step(x.clone(), h.clone(), 1.0).energy).unwrap();
        let residual = carrier(
            7,
            StepSettings {
                energy_residual: true,
                ..settings(0.5, Kernels::Fused)
            },
        );
        let added = device::to_vec(residual.step(x, h, 1.0).energy).unwrap();
        for ((a, r), old) in added.iter().zip(&replaced).zip([0.3f32, -2.0]) {
            assert!((a - (old + r)).abs() < 1e-6, "{added:?} vs {replaced:?}");
        }
        // The head alone is within (-1, 1); the carried energy is not.
        assert!(added[1] < -1.0, "{added:?}");
    }

    #[test]
    fn each_recurrent_gate_block_is_orthogonal() {
        let c = carrier(5, settings(0.5, Kernels::Fused));
        // [8, 24]: three 8 x 8 blocks side by side.
        let w = device::to_vec(c.layers[0].hidden.weight.val()).unwrap();
        for gate in 0..3 {
            for i in 0..8 {
                for j in 0..8 {
                    let dot: f32 = (0..8)
                        .map(|k| w[k * 24 + gate * 8 + i] * w[k * 24 + gate * 8 + j])
                        .sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "gate {gate} ({i},{j}): {dot}");
                }
            }
        }
    }

    #[test]
    fn fused_and_composed_steps_agree() {
        let dev = Device::flex();
        let c = carrier(6, settings(0.5, Kernels::Fused));
        let composed = carrier(6, settings(0.5, Kernels::Composed));
        let x = device::matrix((0..30).map(|i| (i as f32 * 0.7).sin()).collect(), 5, 6, &dev);
        let h: Vec<Tensor<2>> = (0..3)
            .map(|l| {
                device::matrix(
                    (0..40).map(|i| ((i + l) as f32 * 0.3).cos() * 0.5).collect(),
                    5,
                    8,
                    &dev,
                )
            })
            .collect();
        let a = c.step(x.clone(), h.clone(), 1.0);
        let b = composed.step(x, h, 1.0);
        for (ha, hb) in a.hidden.into_iter().zip(b.hidden) {
            let (va, vb) = (device::to_vec(ha).unwrap(), device::to_vec(hb).unwrap());
            assert!(
                va.iter().zip(&vb).all(|(p, q)| (p - q).abs() <= 1e-5),
                "{va:?} vs {vb:?}"
            );
        }
    }

    #[test]
    fn the_delta_is_clamped() {
        let dev = Device::flex();
        let c = carrier(5, settings(0.25, Kernels::Fused));
        // A huge scale saturates the clamp at exactly +-m.
        let x = device::matrix((0..6).map(|i| i as f32).collect(), 1, 6, &dev);
        let out = c.step(x, vec![Tensor::zeros([1, 8], &dev); 3], 1e6);
        let d = device::to_vec(out.delta).unwrap();
        assert!(d.iter().all(|v| v.abs() <= 0.25), "{d:?}");
        assert!(d.iter().any(|v| v.abs() == 0.25), "{d:?}");
    }
}
