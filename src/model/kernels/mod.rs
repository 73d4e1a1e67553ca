//! Fused kernels behind a burn backend extension, with the composed
//! versions kept as the reference (`flow.fused_kernels = false` runs them).
//!
//! - `gru`: the GRU cell as one autodiff node (`GruOps`): a Flex
//!   implementation, a handwritten backward, the composed fallback for other
//!   backends;
//! - `gelu`: the exact GELU as one autodiff node (`GeluOps`) whose training
//!   forward also writes the derivative;
//! - `cpu`: the loops over host slices (multi-threaded, vectorised);
//! - `math`: branch-free f32 `exp`, `sigmoid`, `tanh`, GELU that vectorise.

pub mod cpu;
mod gelu;
mod gru;
pub mod math;

pub use gelu::GeluOps;
pub use gru::{GruOps, gru_cell, gru_cell_composed};

use burn::tensor::Tensor;
use burn::tensor::activation;

/// GELU through the fused kernel, or burn's composed one when `fused` is false.
pub fn gelu(x: Tensor<2>, fused: bool) -> Tensor<2> {
    if fused { gelu::gelu(x) } else { activation::gelu(x) }
}
