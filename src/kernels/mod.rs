//! Fused kernels behind a burn backend extension, with the composed
//! versions kept as the reference (`runtime.kernels = "composed"` runs them).
//! The modules of `model/` call them through [`Kernels`], the choice each
//! module fixes when it is built; nothing here knows the model.
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
//! - `flow_ops`, `flow_step`, `flow_collect`: the propagation step's
//!   bookkeeping on the device (fates, capacity, compaction by prefix
//!   sums, the exploration noise) and the collection's segment softmax,
//!   the device twins of `flow::rules`, `flow::store` and `flow::collect`;
//!   `fates`: the step's bookkeeping as a few kernels (`FateOps`), for
//!   backends that have them;
//! - `norm`: LayerNorm as one autodiff node (`NormOps`), its loops in
//!   `norm_cpu`;
//! - `neuron`: the per-flow feature MLP as one autodiff node
//!   (`NeuronOps`), for backends that have it as a kernel;
//! - `head`: the carrier's heads after their first product as one
//!   autodiff node each (`HeadOps`), for backends that have it as a kernel;
//! - `walls`: the wall rule and the displacement's clamp as one autodiff
//!   node each (`BoundOps`), for backends that have them as a kernel;
//! - `math`: branch-free f32 `exp`, `sigmoid`, `tanh`, GELU that vectorise;
//! - `*_cube` (GPU builds): the GRU cell, GELU, LayerNorm, the feature
//!   MLP, the carrier's heads, the row gather, AdamW, the exploration
//!   noise, the wall rule and the clamp, the device step's prefix sums
//!   and bookkeeping (`fates_cube`) and the segment softmax as CubeCL
//!   kernels for burn's Cube backend (Vulkan, wgpu), with `cube` for what
//!   they share. The matrix product keeps burn's own GPU GEMM.

mod adamw;
#[cfg(gpu)]
mod adamw_cube;
#[cfg(gpu)]
mod cube;
pub mod fates;
#[cfg(gpu)]
mod fates_cube;
pub mod flow_collect;
pub mod flow_ops;
pub mod flow_step;
mod gelu;
pub mod gelu_cpu;
#[cfg(gpu)]
mod gelu_cube;
pub mod gemm_cpu;
mod gru;
pub mod gru_cpu;
#[cfg(gpu)]
mod gru_cube;
pub mod head;
#[cfg(gpu)]
mod head_cube;
pub mod math;
mod matmul;
pub mod neuron;
#[cfg(gpu)]
mod neuron_cube;
#[cfg(gpu)]
mod noise_cube;
pub mod norm;
pub mod norm_cpu;
#[cfg(gpu)]
mod norm_cube;
mod rows;
#[cfg(gpu)]
mod rows_cube;
#[cfg(gpu)]
mod scan_cube;
pub mod segment;
#[cfg(gpu)]
mod segment_cube;
mod uninit;
pub mod walls;
#[cfg(gpu)]
mod walls_cube;

pub use adamw::{AdamOps, AdamStep, adamw_step};
pub use gelu::GeluOps;
pub use gru::{GruOps, gru_cell, gru_cell_composed};
pub use matmul::{MatmulOps, matmul};
pub use rows::{RowOps, gather_rows, gather_rows_each, scatter_rows};

use burn::backend::DType;
use burn::backend::flex::FlexTensor;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// Which implementation of the ops above a module runs: an execution
/// choice (`[runtime] kernels`), fixed when the module is built. Both give
/// the same values within float rounding (tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// Our fused kernels (the default).
    #[default]
    Fused,
    /// burn's composed ops, the reference the fused ones are tested against.
    Composed,
}

impl Kernels {
    /// The name as written in configs and flags.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Fused => "fused",
            Kernels::Composed => "composed",
        }
    }

    /// Whether the fused kernels run.
    pub fn fused(self) -> bool {
        self == Kernels::Fused
    }

    /// GELU through the fused kernel, or burn's composed one.
    pub fn gelu(self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Kernels::Fused => gelu::gelu(x),
            Kernels::Composed => activation::gelu(x),
        }
    }

    /// `layer` applied to x [N, d_in]: x W + b, the product on our own
    /// split over the cores when fused, else burn's `Linear::forward`.
    pub fn linear(self, layer: &Linear, x: Tensor<2>) -> Tensor<2> {
        if self == Kernels::Composed {
            return layer.forward(x);
        }
        let y = matmul(x, layer.weight.val());
        match &layer.bias {
            Some(b) => y + b.val().unsqueeze(),
            None => y,
        }
    }

    /// `norm` applied to x [N, D]: one LayerNorm node (`norm.rs`), or
    /// burn's `LayerNorm::forward`.
    pub fn layer_norm(self, norm: &LayerNorm, x: Tensor<2>) -> Tensor<2> {
        match self {
            Kernels::Fused => norm::layer_norm(norm, x),
            Kernels::Composed => norm.forward(x),
        }
    }

    /// Rows `idx` of each of `ts` (one row count): our row gathers, whose
    /// backwards share the index's inverse where the backend builds it, or
    /// burn's `select` of each.
    pub fn gather_rows_each(self, ts: Vec<Tensor<2>>, idx: Tensor<1, Int>) -> Vec<Tensor<2>> {
        match self {
            Kernels::Fused => gather_rows_each(ts, idx),
            Kernels::Composed => ts.into_iter().map(|t| t.select(0, idx.clone())).collect(),
        }
    }

    /// Rows `idx` of `t` [N, D]: our parallel row gather, or burn's `select`.
    pub fn gather_rows(self, t: Tensor<2>, idx: Tensor<1, Int>) -> Tensor<2> {
        match self {
            Kernels::Fused => gather_rows(t, idx),
            Kernels::Composed => t.select(0, idx),
        }
    }
}

/// The values of a tensor that [`contiguous_f32`] returned.
fn f32_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("made contiguous f32 by contiguous_f32")
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
