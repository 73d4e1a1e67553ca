//! Input mapper (MODEL.md s.3): teacher embedding [B, E_in] -> one energy per
//! surface cell [B, S].
//!
//! `Linear(E_in,I) GELU LayerNorm Dropout(0.1) Linear(I,2S) GELU LayerNorm
//! Dropout(0.05) Linear(2S,S) Tanh`, then `* scale + bias` (two learned
//! scalars, init 1 and 0), viewed as [H, W], plus a learned positional table
//! [H, W] ~ N(0, 0.02^2). Unlike the reference, this is a registered module:
//! it is trained and saved with everything else (MODEL.md s.7).

use super::layers::{Init, WeightInit, dropout};
use burn::module::{Module, Param};
use burn::nn::{Gelu, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;

/// Shapes of an [`InputMapper`].
#[derive(Debug, Clone, Copy)]
pub struct MapperConfig {
    /// Teacher embedding width E_in.
    pub d_input: usize,
    /// Hidden width I.
    pub d_hidden: usize,
    /// Lattice width W.
    pub width: usize,
    /// Lattice height H.
    pub height: usize,
}

impl MapperConfig {
    pub fn init(&self, init: &mut Init, device: &Device) -> InputMapper {
        let s = self.width * self.height;
        InputMapper {
            fc1: init.linear(self.d_input, self.d_hidden, WeightInit::Default),
            ln1: LayerNormConfig::new(self.d_hidden).init(device),
            fc2: init.linear(self.d_hidden, 2 * s, WeightInit::Default),
            ln2: LayerNormConfig::new(2 * s).init(device),
            fc3: init.linear(2 * s, s, WeightInit::Default),
            scale: init.constant([1], 1.0),
            bias: init.constant([1], 0.0),
            positional: init.normal([self.height, self.width], 0.02),
            gelu: Gelu::new(),
        }
    }
}

/// Teacher embedding -> surface energies. Parameters: fc1 [E_in, I],
/// fc2 [I, 2S], fc3 [2S, S] (PyTorch-like init), LayerNorms, `scale` [1]
/// (init 1), `bias` [1] (init 0), `positional` [H, W] (N(0, 0.02^2)).
#[derive(Module, Debug)]
pub struct InputMapper {
    pub fc1: Linear,
    pub ln1: LayerNorm,
    pub fc2: Linear,
    pub ln2: LayerNorm,
    pub fc3: Linear,
    pub scale: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub positional: Param<Tensor<2>>,
    gelu: Gelu,
}

impl InputMapper {
    /// [B, E_in] -> [B, S] (row-major cells, cell = iy * W + ix).
    /// `dropout_rng`: Some in training (dropout on), None in inference.
    pub fn forward(&self, x: Tensor<2>, mut dropout_rng: Option<&mut StdRng>) -> Tensor<2> {
        let x = self.ln1.forward(self.gelu.forward(self.fc1.forward(x)));
        let x = dropout(x, 0.1, dropout_rng.as_deref_mut());
        let x = self.ln2.forward(self.gelu.forward(self.fc2.forward(x)));
        let x = dropout(x, 0.05, dropout_rng);
        let x = self.fc3.forward(x).tanh();
        let x = x * self.scale.val().unsqueeze::<2>() + self.bias.val().unsqueeze::<2>();
        let [h, w] = self.positional.dims();
        x + self.positional.val().reshape([1, h * w])
    }
}
