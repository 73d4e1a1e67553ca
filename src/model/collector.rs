//! Output collector (MODEL.md s.3): surface [B, S] -> embedding [B, E_out].
//!
//! `surface .* position weights [H, W] (init 1) -> Linear(S,2S) GELU
//! LayerNorm Dropout(0.05) Linear(2S,I) GELU LayerNorm Dropout(0.1)
//! Linear(I,E_out)`.

use super::layers::{Init, WeightInit, dropout};
use burn::module::{Module, Param};
use burn::nn::{Gelu, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;

/// Shapes of an [`OutputCollector`].
#[derive(Debug, Clone, Copy)]
pub struct CollectorConfig {
    /// Lattice width W.
    pub width: usize,
    /// Lattice height H.
    pub height: usize,
    /// Hidden width I.
    pub d_hidden: usize,
    /// Output embedding width E_out.
    pub d_output: usize,
}

impl CollectorConfig {
    pub fn init(&self, init: &mut Init, device: &Device) -> OutputCollector {
        let s = self.width * self.height;
        OutputCollector {
            position_weights: init.constant([self.height, self.width], 1.0),
            fc1: init.linear(s, 2 * s, WeightInit::Default),
            ln1: LayerNormConfig::new(2 * s).init(device),
            fc2: init.linear(2 * s, self.d_hidden, WeightInit::Default),
            ln2: LayerNormConfig::new(self.d_hidden).init(device),
            fc3: init.linear(self.d_hidden, self.d_output, WeightInit::Default),
            gelu: Gelu::new(),
        }
    }
}

/// Surface -> embedding.
#[derive(Module, Debug)]
pub struct OutputCollector {
    pub position_weights: Param<Tensor<2>>,
    pub fc1: Linear,
    pub ln1: LayerNorm,
    pub fc2: Linear,
    pub ln2: LayerNorm,
    pub fc3: Linear,
    gelu: Gelu,
}

impl OutputCollector {
    /// surface [B, S] -> [B, E_out].
    /// `dropout_rng`: Some in training (dropout on), None in inference.
    pub fn forward(&self, surface: Tensor<2>, mut dropout_rng: Option<&mut StdRng>) -> Tensor<2> {
        let [h, w] = self.position_weights.dims();
        let x = surface * self.position_weights.val().reshape([1, h * w]);
        let x = self.ln1.forward(self.gelu.forward(self.fc1.forward(x)));
        let x = dropout(x, 0.05, dropout_rng.as_deref_mut());
        let x = self.ln2.forward(self.gelu.forward(self.fc2.forward(x)));
        let x = dropout(x, 0.1, dropout_rng);
        self.fc3.forward(x)
    }
}
