//! The fused GRU cell as a burn backend extension (`GruOps`).
//!
//! - Flex (CPU): the loops of `gru_cpu.rs`, one pass forward and one
//!   backward, multi-threaded, vectorised transcendentals, the biases added
//!   in the same pass.
//! - Autodiff: one graph node per cell with a handwritten backward that
//!   reuses the gates the forward saved ([N, 4H]) instead of the dozen
//!   nodes and saved tensors of the composed cell.
//! - Cube (Vulkan, wgpu): the CubeCL kernels of `gru_cube.rs`, the same
//!   two passes on the device.
//! - Any other backend and non-f32 tensors: the trait's default bodies,
//!   composed of ordinary backend ops.
//!
//! [`gru_cell`] is the `Tensor`-level entry; [`gru_cell_composed`] is the
//! same cell written with ordinary tensor ops (the reference the fused one
//! is tested against, and what `runtime.kernels = "composed"` runs).

use super::gru_cpu::{self, GruInputs};
use super::{contiguous_f32, f32_slice as slice};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, Slice, TensorData, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

/// One reset-after GRU step from its two products. `gx` = x W_i, `gh` =
/// h W_h: [N, 3H] (gate blocks r | z | n); `h`: [N, H]; `bi`, `bh`: [3H].
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait GruOps: Backend {
    /// h' [N, H] (no autodiff state).
    fn gru_cell(
        gx: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        bi: FloatTensor<Self>,
        bh: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_saving::<Self>(gx, gh, h, bi, bh).0
    }

    /// h' [N, H] and the gates its backward needs, [N, 4H]
    /// (r | z | n | gh_n + bh_n).
    fn gru_cell_saving(
        gx: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        bi: FloatTensor<Self>,
        bh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed_saving::<Self>(gx, gh, h, bi, bh)
    }

    /// (d_gx [N, 3H], d_gh [N, 3H], d_h [N, H], d_bi [3H], d_bh [3H]) from
    /// the saved gates, h and the gradient of h'. (The extension macro finds
    /// tensors by the name `FloatTensor`, so the type cannot be aliased.)
    #[allow(clippy::type_complexity)]
    fn gru_cell_backward(
        saved: FloatTensor<Self>,
        h: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        composed_backward::<Self>(saved, h, grad)
    }
}

/// Columns [k H, (k + 1) H) of a [N, m H] tensor.
fn block<B: Backend>(t: &FloatTensor<B>, k: usize, hd: usize) -> FloatTensor<B> {
    B::float_slice(t.clone(), &[Slice::from(..), Slice::from(k * hd..(k + 1) * hd)])
}

fn one_minus<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_add_scalar(B::float_neg(t), 1.0f32.into())
}

/// A [3H] bias as a [1, 3H] row to broadcast.
fn row<B: Backend>(b: FloatTensor<B>) -> FloatTensor<B> {
    let n = b.shape()[0];
    B::float_reshape(b, [1, n].into())
}

/// The forward of the module docs of `gru_cpu.rs` with backend ops.
pub(super) fn composed_saving<B: Backend>(
    gx: FloatTensor<B>,
    gh: FloatTensor<B>,
    h: FloatTensor<B>,
    bi: FloatTensor<B>,
    bh: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let hd = h.shape()[1];
    let gx = B::float_add(gx, row::<B>(bi));
    let gh = B::float_add(gh, row::<B>(bh));
    let r = B::sigmoid(B::float_add(block::<B>(&gx, 0, hd), block::<B>(&gh, 0, hd)));
    let z = B::sigmoid(B::float_add(block::<B>(&gx, 1, hd), block::<B>(&gh, 1, hd)));
    let gh_n = block::<B>(&gh, 2, hd);
    let n = B::float_tanh(B::float_add(
        block::<B>(&gx, 2, hd),
        B::float_mul(r.clone(), gh_n.clone()),
    ));
    let out = B::float_add(n.clone(), B::float_mul(z.clone(), B::float_sub(h, n.clone())));
    (out, B::float_cat(vec![r, z, n, gh_n], 1))
}

/// The backward of the module docs of `gru_cpu.rs` with backend ops.
#[allow(clippy::type_complexity)]
pub(super) fn composed_backward<B: Backend>(
    saved: FloatTensor<B>,
    h: FloatTensor<B>,
    g: FloatTensor<B>,
) -> (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
) {
    let hd = h.shape()[1];
    let (r, z, n, gh_n) = (
        block::<B>(&saved, 0, hd),
        block::<B>(&saved, 1, hd),
        block::<B>(&saved, 2, hd),
        block::<B>(&saved, 3, hd),
    );
    let d_h = B::float_mul(g.clone(), z.clone());
    let da_z = B::sigmoid_backward(z.clone(), B::float_mul(g.clone(), B::float_sub(h, n.clone())));
    let da_n = B::float_mul(
        B::float_mul(g, one_minus::<B>(z)),
        one_minus::<B>(B::float_mul(n.clone(), n)),
    );
    let da_r = B::sigmoid_backward(r.clone(), B::float_mul(da_n.clone(), gh_n));
    let d_gh_n = B::float_mul(da_n.clone(), r);
    let d_gx = B::float_cat(vec![da_r.clone(), da_z.clone(), da_n], 1);
    let d_gh = B::float_cat(vec![da_r, da_z, d_gh_n], 1);
    let col_sum = |t: &FloatTensor<B>| {
        let n = t.shape()[1];
        B::float_reshape(B::float_sum_dim(t.clone(), 0), [n].into())
    };
    let (d_bi, d_bh) = (col_sum(&d_gx), col_sum(&d_gh));
    (d_gx, d_gh, d_h, d_bi, d_bh)
}

fn flex(data: Vec<f32>, rows: usize, cols: usize) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, [rows, cols]))
}

/// One Flex GRU step; None when an input is not f32 (the caller then takes
/// the composed path).
fn flex_forward([gx, gh, h, bi, bh]: [&FlexTensor; 5], save: bool) -> Option<(FlexTensor, FlexTensor)> {
    let (gx, gh, h, bi, bh) = (
        contiguous_f32(gx)?,
        contiguous_f32(gh)?,
        contiguous_f32(h)?,
        contiguous_f32(bi)?,
        contiguous_f32(bh)?,
    );
    let [n, hd] = [h.shape()[0], h.shape()[1]];
    let x = GruInputs {
        gx: slice(&gx),
        gh: slice(&gh),
        h: slice(&h),
        bi: slice(&bi),
        bh: slice(&bh),
        hd,
    };
    let (out, saved) = gru_cpu::gru_forward(x, save);
    Some((flex(out, n, hd), flex(saved, if save { n } else { 0 }, 4 * hd)))
}

impl GruOps for Flex {
    fn gru_cell(gx: FlexTensor, gh: FlexTensor, h: FlexTensor, bi: FlexTensor, bh: FlexTensor) -> FlexTensor {
        match flex_forward([&gx, &gh, &h, &bi, &bh], false) {
            Some((out, _)) => out,
            None => composed_saving::<Flex>(gx, gh, h, bi, bh).0,
        }
    }

    fn gru_cell_saving(
        gx: FlexTensor,
        gh: FlexTensor,
        h: FlexTensor,
        bi: FlexTensor,
        bh: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        match flex_forward([&gx, &gh, &h, &bi, &bh], true) {
            Some(pair) => pair,
            None => composed_saving::<Flex>(gx, gh, h, bi, bh),
        }
    }

    fn gru_cell_backward(
        saved: FlexTensor,
        h: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        match (contiguous_f32(&saved), contiguous_f32(&h), contiguous_f32(&grad)) {
            (Some(s), Some(hh), Some(g)) => {
                let [n, hd] = [hh.shape()[0], hh.shape()[1]];
                let d = gru_cpu::gru_backward(slice(&s), slice(&hh), slice(&g), hd);
                let vector = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [3 * hd]));
                (
                    flex(d.d_gx, n, 3 * hd),
                    flex(d.d_gh, n, 3 * hd),
                    flex(d.d_h, n, hd),
                    vector(d.d_bi),
                    vector(d.d_bh),
                )
            }
            _ => composed_backward::<Flex>(saved, h, grad),
        }
    }
}

/// The cell's backward: the gradient of h' into gx, gh, h and the biases.
#[derive(Debug)]
struct GruCellBackward;

impl<B: Backend + GruOps> Backward<B, 5> for GruCellBackward {
    /// The saved gates [N, 4H] and h [N, H].
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (saved, h) = ops.state;
        let (d_gx, d_gh, d_h, d_bi, d_bh) = B::gru_cell_backward(saved, h, grad);
        for (node, d) in ops.parents.into_iter().zip([d_gx, d_gh, d_h, d_bi, d_bh]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, d);
            }
        }
    }
}

impl<B: Backend + GruOps, C: CheckpointStrategy> GruOps for Autodiff<B, C> {
    fn gru_cell(
        gx: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        bi: FloatTensor<Self>,
        bh: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let guards = [gx.node(), gh.node(), h.node(), bi.node(), bh.node()];
        let [gx, gh, h, bi, bh] = [gx, gh, h, bi, bh].map(|t| t.into_primitive());
        // Compute-bound: the saved gates are kept, never recomputed.
        match GruCellBackward.prepare::<C>(guards).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, saved) = B::gru_cell_saving(gx, gh, h.clone(), bi, bh);
                prep.finish((saved, h), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gru_cell(gx, gh, h, bi, bh)),
        }
    }
}

/// One fused GRU step: h' [N, H] from the products `gx` = x W_i and `gh` =
/// h W_h ([N, 3H], gate blocks r | z | n), `h` [N, H] and the biases `bi`,
/// `bh` [3H].
pub fn gru_cell(gx: Tensor<2>, gh: Tensor<2>, h: Tensor<2>, bi: Tensor<1>, bh: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as GruOps>::gru_cell(
        gx.into_dispatch(),
        gh.into_dispatch(),
        h.into_dispatch(),
        bi.into_dispatch(),
        bh.into_dispatch(),
    ))
}

/// The same step composed of ordinary tensor ops (burn differentiates it),
/// from the projections with their biases, `gx` = x W_i + b_i and `gh` =
/// h W_h + b_h.
pub fn gru_cell_composed(gx: Tensor<2>, gh: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
    let hd = h.dims()[1];
    let part = |t: &Tensor<2>, k: usize| t.clone().narrow(1, k * hd, hd);
    let r = sigmoid(part(&gx, 0) + part(&gh, 0));
    let z = sigmoid(part(&gx, 1) + part(&gh, 1));
    let n = (part(&gx, 2) + r * part(&gh, 2)).tanh();
    // (1 - z) * n + z * h  ==  n + z * (h - n): one fewer elementwise pass.
    n.clone() + z * (h - n)
}
