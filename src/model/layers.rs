//! Small building blocks shared by the model's modules: a Linear layer with
//! an explicit weight initialiser and zero bias (MODEL.md s.3 asks for He,
//! Xavier and orthogonal inits with zero bias, which `LinearConfig` cannot
//! express since it uses one initialiser for both).

use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Linear(d_in, d_out) whose weight uses `init` and whose bias is zero.
pub fn linear_zero_bias(d_in: usize, d_out: usize, init: Initializer, device: &Device) -> Linear {
    let weight = init.init_with([d_in, d_out], Some(d_in), Some(d_out), device);
    let bias = Initializer::Zeros.init_with([d_out], Some(d_in), Some(d_out), device);
    Linear {
        weight,
        bias: Some(bias),
    }
}

/// Linear(d_in, d_out) with burn's default (PyTorch-like) initialisation.
pub fn linear_default(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

/// He (Kaiming normal, fan-in, gain sqrt 2) as in PyTorch's
/// `kaiming_normal_(nonlinearity="relu")`.
pub fn he_normal() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: false,
    }
}

/// Xavier (Glorot) normal, gain 1.
pub fn xavier_normal() -> Initializer {
    Initializer::XavierNormal { gain: 1.0 }
}

/// Xavier (Glorot) uniform, gain 1 (PyTorch's usual GRU input-weight init).
pub fn xavier_uniform() -> Initializer {
    Initializer::XavierUniform { gain: 1.0 }
}

/// A learned tensor of the given shape filled with `value`.
pub fn constant_param<const D: usize>(shape: [usize; D], value: f64, device: &Device) -> Param<Tensor<D>> {
    Initializer::Constant { value }.init(shape, device)
}
