//! Fused kernels behind a burn backend extension, with the composed
//! versions kept as the reference (`flow.fused_kernels = false` runs them).
//!
//! - `gru`: the GRU cell as one autodiff node (`GruOps`): a Flex
//!   implementation, a handwritten backward, the composed fallback for other
//!   backends;
//! - `gelu`: the exact GELU as one autodiff node (`GeluOps`) whose training
//!   forward also writes the derivative;
//! - `gru_cpu`, `gelu_cpu`: the loops over host slices (multi-threaded,
//!   vectorised);
//! - `matmul`: the matrix product on our own split over the cores
//!   (`gemm_cpu`), with its backward;
//! - `rows`: the row gather of the flow compaction (`RowOps`), parallel,
//!   with a parallel backward;
//! - `adamw`: the AdamW update of one parameter in one parallel pass
//!   (`AdamOps`), for the optimizer;
//! - `math`: branch-free f32 `exp`, `sigmoid`, `tanh`, GELU that vectorise.

mod adamw;
mod gelu;
pub mod gelu_cpu;
pub mod gemm_cpu;
mod gru;
pub mod gru_cpu;
pub mod math;
mod matmul;
mod rows;
mod uninit;

pub use adamw::{AdamOps, AdamStep, adamw_step};
pub use gelu::GeluOps;
pub use gru::{GruOps, gru_cell, gru_cell_composed};
pub use matmul::{MatmulOps, matmul};
pub use rows::{RowOps, gather_rows};

use burn::backend::DType;
use burn::backend::flex::FlexTensor;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation;

/// GELU through the fused kernel, or burn's composed one when `fused` is false.
pub fn gelu(x: Tensor<2>, fused: bool) -> Tensor<2> {
    if fused { gelu::gelu(x) } else { activation::gelu(x) }
}

/// `layer` applied to x [N, d_in]: x W + b, the product on our own split
/// over the cores when `fused`, else burn's `Linear::forward`.
pub fn linear(layer: &Linear, x: Tensor<2>, fused: bool) -> Tensor<2> {
    if !fused {
        return layer.forward(x);
    }
    let y = matmul(x, layer.weight.val());
    match &layer.bias {
        Some(b) => y + b.val().unsqueeze(),
        None => y,
    }
}

/// The f32 data of a Flex tensor, made contiguous (copied only when it is
/// a strided view); None for other dtypes, which the kernels leave to burn.
fn contiguous_f32(t: &FlexTensor) -> Option<FlexTensor> {
    (t.dtype() == DType::F32).then(|| {
        if t.as_slice::<f32>().is_some() {
            t.clone()
        } else {
            t.to_contiguous()
        }
    })
}
