//! SimpleNeuron (MODEL.md s.3): (position, energy) -> F features per flow.
//!
//! `p' = Linear(3,3)(pos)`; `[p', energy]` (4) -> `Linear(4,32) LayerNorm
//! GELU -> Linear(32,32) LayerNorm GELU -> Linear(32,F)`. He (Kaiming normal)
//! weights, zero biases. Positions arrive already normalised to [-1, 1]^3
//! and are not normalised again (the reference did, MODEL.md s.7).

use super::layers::{Init, WeightInit};
use burn::module::Module;
use burn::nn::{Gelu, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};

/// Shapes of a [`SimpleNeuron`].
#[derive(Debug, Clone, Copy)]
pub struct NeuronConfig {
    /// Hidden width (default 32).
    pub d_hidden: usize,
    /// Output width F (default 64).
    pub d_output: usize,
}

impl NeuronConfig {
    pub fn init(&self, init: &mut Init, device: &Device) -> SimpleNeuron {
        let h = self.d_hidden;
        SimpleNeuron {
            pos: init.linear(3, 3, WeightInit::He),
            fc1: init.linear(4, h, WeightInit::He),
            ln1: LayerNormConfig::new(h).init(device),
            fc2: init.linear(h, h, WeightInit::He),
            ln2: LayerNormConfig::new(h).init(device),
            fc3: init.linear(h, self.d_output, WeightInit::He),
            gelu: Gelu::new(),
        }
    }
}

/// Per-flow feature extractor shared by all flows.
#[derive(Module, Debug)]
pub struct SimpleNeuron {
    pub pos: Linear,
    pub fc1: Linear,
    pub ln1: LayerNorm,
    pub fc2: Linear,
    pub ln2: LayerNorm,
    pub fc3: Linear,
    gelu: Gelu,
}

impl SimpleNeuron {
    /// pos [N, 3], energy [N, 1] -> features [N, F].
    pub fn forward(&self, pos: Tensor<2>, energy: Tensor<2>) -> Tensor<2> {
        let p = self.pos.forward(pos);
        let x = Tensor::cat(vec![p, energy], 1);
        let x = self.gelu.forward(self.ln1.forward(self.fc1.forward(x)));
        let x = self.gelu.forward(self.ln2.forward(self.fc2.forward(x)));
        self.fc3.forward(x)
    }
}
