//! Output collector (MODEL.md s.3): surface [B, S] -> embedding [B, E_out].
//!
//! `surface .* position weights [H, W] (init 1) -> Linear(S,2S) GELU
//! LayerNorm Dropout(0.05) Linear(2S,I) GELU LayerNorm Dropout(0.1)
//! Linear(I,E_out)`.

use super::layers::{constant_param, linear_default};
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Gelu, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};

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
    pub fn init(&self, device: &Device) -> OutputCollector {
        let s = self.width * self.height;
        OutputCollector {
            position_weights: constant_param([self.height, self.width], 1.0, device),
            fc1: linear_default(s, 2 * s, device),
            ln1: LayerNormConfig::new(2 * s).init(device),
            drop1: DropoutConfig::new(0.05).init(),
            fc2: linear_default(2 * s, self.d_hidden, device),
            ln2: LayerNormConfig::new(self.d_hidden).init(device),
            drop2: DropoutConfig::new(0.1).init(),
            fc3: linear_default(self.d_hidden, self.d_output, device),
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
    pub drop1: Dropout,
    pub fc2: Linear,
    pub ln2: LayerNorm,
    pub drop2: Dropout,
    pub fc3: Linear,
    gelu: Gelu,
}

impl OutputCollector {
    /// surface [B, S] -> [B, E_out].
    pub fn forward(&self, surface: Tensor<2>) -> Tensor<2> {
        let [h, w] = self.position_weights.dims();
        let x = surface * self.position_weights.val().reshape([1, h * w]);
        let x = self.drop1.forward(self.ln1.forward(self.gelu.forward(self.fc1.forward(x))));
        let x = self.drop2.forward(self.ln2.forward(self.gelu.forward(self.fc2.forward(x))));
        self.fc3.forward(x)
    }
}
