//! Row gather as a burn backend extension (`RowOps`): the compaction of the
//! active flows' state after each propagation step (`FlowStore::compact`).
//!
//! Why: Flex's `select` copies the rows on the calling thread, and its
//! backward clears a [N, D] buffer and adds the rows back one by one, also
//! on one thread; for the hidden states ([N, 256] at debug, three [N, 512]
//! at experiment) these were the largest serial passes of a training step.
//!
//! - Flex (CPU): the rows are copied in parallel; the backward builds the
//!   inverse of the index (which output rows each source row went to) and
//!   writes every source row of the gradient once, in parallel: the sum of
//!   its output rows' gradients in output order (children share a parent
//!   row), or zeros. No buffer is cleared first, no row is written twice,
//!   and the result does not depend on the number of threads.
//! - Cube (Vulkan, wgpu): the same gather and backward as CubeCL kernels
//!   (`rows_cube.rs`), the inverse index built on the device.
//! - Autodiff: one graph node with that backward.
//! - Other backends and non-f32 tensors: `select` and burn's own backward
//!   of it, through the default bodies.

use super::contiguous_f32;
use super::uninit::{assume_init, uninit};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::{FloatTensor, IndexingUpdateOp, IntTensor};
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, TensorData, TensorMetadata, backend_extension};
use burn::tensor::{Int, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many elements (128 KB) the copy stays on the calling thread:
/// too short to be worth waking another.
const PARALLEL_MIN: usize = 1 << 15;
/// Elements per parallel task (whole rows).
const PER_TASK: usize = 1 << 14;

/// out[i] = t[idx[i]], rows of a [N, D] tensor.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait RowOps: Backend {
    /// Rows `idx` [M] of `t` [N, D]: [M, D].
    fn gather_rows(t: FloatTensor<Self>, idx: IntTensor<Self>) -> FloatTensor<Self> {
        Self::float_select(t, 0, idx)
    }

    /// The backward of `gather_rows` from a source of `rows` rows: [rows, D],
    /// row s = the sum of `grad`'s rows i with idx[i] = s.
    fn gather_rows_backward(grad: FloatTensor<Self>, idx: IntTensor<Self>, rows: usize) -> FloatTensor<Self> {
        scatter_add::<Self>(grad, idx, rows)
    }

    /// The sum of `t`'s rows [M, D] into `rows` rows by `idx` [M]: the
    /// forward whose backward is `gather_rows` (the host collection's
    /// scatter-add). Through `gather_rows_backward`'s kernels, since burn's
    /// `select_assign` on the Cube backends is one unit looping over all M
    /// rows (and lavapipe stops such a loop after 65 535 rounds).
    fn scatter_rows(t: FloatTensor<Self>, idx: IntTensor<Self>, rows: usize) -> FloatTensor<Self> {
        Self::gather_rows_backward(t, idx, rows)
    }

    /// The inverse of `idx` over the rows of `like` (a source of the
    /// gathers), (start [rows + 1], order [M]) as CSR, for several gathers
    /// by one index to share their backwards' (`gather_rows_using`); None:
    /// each builds its own (also when `like` is not tracked: no backward).
    fn gather_rows_inverse(
        like: FloatTensor<Self>,
        idx: IntTensor<Self>,
    ) -> Option<(IntTensor<Self>, IntTensor<Self>)> {
        let _ = (like, idx);
        None
    }

    /// `gather_rows` whose backward reads the inverse `start`, `order` of
    /// `idx` (from `gather_rows_inverse`) instead of building it.
    fn gather_rows_using(
        t: FloatTensor<Self>,
        idx: IntTensor<Self>,
        start: IntTensor<Self>,
        order: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = (start, order);
        Self::gather_rows(t, idx)
    }

    /// `gather_rows_backward` from the inverse of `idx`.
    fn gather_rows_backward_using(
        grad: FloatTensor<Self>,
        idx: IntTensor<Self>,
        start: IntTensor<Self>,
        order: IntTensor<Self>,
        rows: usize,
    ) -> FloatTensor<Self> {
        let _ = (start, order);
        Self::gather_rows_backward(grad, idx, rows)
    }
}

/// Burn's own backward of `select` on dimension 0.
pub(super) fn scatter_add<B: Backend>(grad: FloatTensor<B>, idx: IntTensor<B>, rows: usize) -> FloatTensor<B> {
    let d = grad.shape()[1];
    let zeros = B::float_zeros([rows, d].into(), &grad.device(), grad.dtype().into());
    B::float_select_assign(zeros, 0, idx, grad, IndexingUpdateOp::Add)
}

/// The host indices of a Flex int tensor, or None for an index type
/// Flex's `select` would have to handle.
fn host_indices(idx: &FlexTensor) -> Option<Vec<usize>> {
    let idx = idx.to_contiguous();
    match idx.dtype() {
        DType::I64 => Some(idx.as_slice::<i64>()?.iter().map(|&i| i as usize).collect()),
        DType::I32 => Some(idx.as_slice::<i32>()?.iter().map(|&i| i as usize).collect()),
        _ => None,
    }
}

/// A contiguous f32 [N, D] Flex tensor, or None.
fn f32_matrix(t: &FlexTensor) -> Option<FlexTensor> {
    if t.shape().num_dims() != 2 {
        return None;
    }
    contiguous_f32(t)
}

/// Splits `out` into tasks of whole rows of width `d`, in parallel when
/// there is enough to share, and runs `f(first row, rows)` on each.
fn by_rows(out: &mut [MaybeUninit<f32>], d: usize, f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) {
    let rows_per = (PER_TASK / d.max(1)).max(1);
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(rows_per * d)
            .enumerate()
            .for_each(|(k, c)| f(k * rows_per, c));
    } else {
        out.chunks_mut(rows_per * d)
            .enumerate()
            .for_each(|(k, c)| f(k * rows_per, c));
    }
}

/// Rows `idx` of `src` [.., d]. Panics on an index out of range (the
/// caller builds the indices; a bad one is a bug, not an input).
pub fn gather(src: &[f32], d: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = uninit(idx.len() * d);
    if d > 0 {
        by_rows(&mut out, d, |first, chunk| {
            for (row, &s) in chunk.chunks_exact_mut(d).zip(&idx[first..]) {
                for (o, &v) in row.iter_mut().zip(&src[s * d..(s + 1) * d]) {
                    o.write(v);
                }
            }
        });
    }
    // SAFETY: every row of `out` was written above.
    unsafe { assume_init(out) }
}

/// The gradient of `gather` for a source of `rows` rows: row s = the sum,
/// in output order, of `grad`'s rows i with idx[i] = s; zeros where none.
pub fn gather_backward(grad: &[f32], d: usize, idx: &[usize], rows: usize) -> Vec<f32> {
    // The inverse index as CSR: the output rows of source s are
    // order[start[s]..start[s + 1]], in increasing order.
    let mut start = vec![0usize; rows + 1];
    for &s in idx {
        start[s + 1] += 1;
    }
    for s in 0..rows {
        start[s + 1] += start[s];
    }
    let mut fill = start.clone();
    let mut order = vec![0usize; idx.len()];
    for (i, &s) in idx.iter().enumerate() {
        order[fill[s]] = i;
        fill[s] += 1;
    }
    let mut out = uninit(rows * d);
    if d > 0 {
        by_rows(&mut out, d, |first, chunk| {
            for (k, row) in chunk.chunks_exact_mut(d).enumerate() {
                let s = first + k;
                let outs = &order[start[s]..start[s + 1]];
                let Some((&i0, rest)) = outs.split_first() else {
                    row.iter_mut().for_each(|o| {
                        o.write(0.0);
                    });
                    continue;
                };
                for (o, &v) in row.iter_mut().zip(&grad[i0 * d..(i0 + 1) * d]) {
                    o.write(v);
                }
                // SAFETY: the row was written just above.
                let row: &mut [f32] = unsafe { &mut *(row as *mut [MaybeUninit<f32>] as *mut [f32]) };
                for &i in rest {
                    row.iter_mut()
                        .zip(&grad[i * d..(i + 1) * d])
                        .for_each(|(o, &v)| *o += v);
                }
            }
        });
    }
    // SAFETY: every row of `out` was written above.
    unsafe { assume_init(out) }
}

impl RowOps for Flex {
    fn gather_rows(t: FlexTensor, idx: FlexTensor) -> FlexTensor {
        match (f32_matrix(&t), host_indices(&idx)) {
            (Some(m), Some(ix)) => {
                let d = m.shape()[1];
                let out = gather(m.as_slice::<f32>().expect("contiguous f32"), d, &ix);
                FlexTensor::from_data(TensorData::new(out, [ix.len(), d]))
            }
            _ => Flex::float_select(t, 0, idx),
        }
    }

    fn gather_rows_backward(grad: FlexTensor, idx: FlexTensor, rows: usize) -> FlexTensor {
        match (f32_matrix(&grad), host_indices(&idx)) {
            (Some(g), Some(ix)) => {
                let d = g.shape()[1];
                let out = gather_backward(g.as_slice::<f32>().expect("contiguous f32"), d, &ix, rows);
                FlexTensor::from_data(TensorData::new(out, [rows, d]))
            }
            _ => scatter_add::<Flex>(grad, idx, rows),
        }
    }

    /// Flex's serial `select_assign`: for the collection's single column
    /// it beats building the inverse index (`bench collect`, BENCHMARKS).
    fn scatter_rows(t: FlexTensor, idx: FlexTensor, rows: usize) -> FlexTensor {
        scatter_add::<Flex>(t, idx, rows)
    }
}

#[derive(Debug)]
struct GatherBackward;

impl<B: Backend + RowOps> Backward<B, 1> for GatherBackward {
    /// The indices and the source's row count.
    type State = (IntTensor<B>, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (idx, rows) = ops.state;
        if let Some(node) = node {
            grads.register::<B>(node.id, B::gather_rows_backward(grad, idx, rows));
        }
    }
}

impl<B: Backend + RowOps, C: CheckpointStrategy> RowOps for Autodiff<B, C> {
    fn gather_rows(t: FloatTensor<Self>, idx: IntTensor<Self>) -> FloatTensor<Self> {
        let guard = [t.node()];
        let t = t.into_primitive();
        match GatherBackward.prepare::<C>(guard).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let rows = t.shape()[0];
                let out = B::gather_rows(t, idx.clone());
                prep.finish((idx, rows), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gather_rows(t, idx)),
        }
    }

    fn gather_rows_inverse(
        like: FloatTensor<Self>,
        idx: IntTensor<Self>,
    ) -> Option<(IntTensor<Self>, IntTensor<Self>)> {
        // Intermediate tensors are tracked without requiring grad
        // themselves, so `is_tracked`, not `is_require_grad`.
        if !like.is_tracked() {
            return None;
        }
        B::gather_rows_inverse(like.into_primitive(), idx)
    }

    fn gather_rows_using(
        t: FloatTensor<Self>,
        idx: IntTensor<Self>,
        start: IntTensor<Self>,
        order: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        let guard = [t.node()];
        let t = t.into_primitive();
        match GatherUsingBackward.prepare::<C>(guard).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let rows = t.shape()[0];
                let out = B::gather_rows(t, idx.clone());
                prep.finish((idx, start, order, rows), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gather_rows(t, idx)),
        }
    }

    fn scatter_rows(t: FloatTensor<Self>, idx: IntTensor<Self>, rows: usize) -> FloatTensor<Self> {
        let guard = [t.node()];
        let t = t.into_primitive();
        match ScatterBackward.prepare::<C>(guard).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::scatter_rows(t, idx.clone(), rows);
                prep.finish(idx, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::scatter_rows(t, idx, rows)),
        }
    }
}

/// The backward of `gather_rows_using`: the sum kernel over a shared inverse.
#[derive(Debug)]
struct GatherUsingBackward;

impl<B: Backend + RowOps> Backward<B, 1> for GatherUsingBackward {
    /// The indices, their inverse (start, order) and the source's row count.
    type State = (IntTensor<B>, IntTensor<B>, IntTensor<B>, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (idx, start, order, rows) = ops.state;
        if let Some(node) = node {
            grads.register::<B>(node.id, B::gather_rows_backward_using(grad, idx, start, order, rows));
        }
    }
}

#[derive(Debug)]
struct ScatterBackward;

impl<B: Backend + RowOps> Backward<B, 1> for ScatterBackward {
    type State = IntTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            grads.register::<B>(node.id, B::gather_rows(grad, ops.state));
        }
    }
}

/// Rows `idx` of `t` [N, D] through the parallel kernel.
pub fn gather_rows(t: Tensor<2>, idx: Tensor<1, Int>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as RowOps>::gather_rows(
        t.into_dispatch(),
        idx.into_dispatch(),
    ))
}

/// Rows `idx` of each of `ts` (all of the same row count) through the
/// parallel kernel. When the first is tracked and the backend can build
/// the index's inverse once (the Cube backends), their backwards share it:
/// one inverse and one sum per tensor instead of an inverse each.
pub fn gather_rows_each(ts: Vec<Tensor<2>>, idx: Tensor<1, Int>) -> Vec<Tensor<2>> {
    // Only where a backward can follow: on a plain device the inverse
    // would be built for nothing.
    let shared = match ts.first() {
        Some(t) if ts.len() > 1 && t.device().is_autodiff() => {
            <Dispatch as RowOps>::gather_rows_inverse(t.clone().into_dispatch(), idx.clone().into_dispatch())
        }
        _ => None,
    };
    let Some((start, order)) = shared else {
        return ts.into_iter().map(|t| gather_rows(t, idx.clone())).collect();
    };
    ts.into_iter()
        .map(|t| {
            Tensor::from_dispatch(<Dispatch as RowOps>::gather_rows_using(
                t.into_dispatch(),
                idx.clone().into_dispatch(),
                start.clone(),
                order.clone(),
            ))
        })
        .collect()
}

/// The rows of `t` [M, D] summed into `rows` rows by `idx` [M] (each below
/// `rows`), through the parallel kernels; differentiable in `t`.
pub fn scatter_rows(t: Tensor<2>, idx: Tensor<1, Int>, rows: usize) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as RowOps>::scatter_rows(
        t.into_dispatch(),
        idx.into_dispatch(),
        rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_copies_rows_and_its_backward_sums_repeats_in_order() {
        for (rows, d) in [(5, 3), (300, 200), (1, 1), (4, 0)] {
            let src: Vec<f32> = (0..rows * d).map(|i| i as f32 * 0.5 - 7.0).collect();
            // Survivors in order, then children repeating parents.
            let mut idx: Vec<usize> = (0..rows).filter(|i| i % 3 != 1).collect();
            idx.extend((0..rows).filter(|i| i % 4 == 0).flat_map(|i| [i, i]));
            let out = gather(&src, d, &idx);
            assert_eq!(out.len(), idx.len() * d);
            for (k, &s) in idx.iter().enumerate() {
                assert_eq!(&out[k * d..(k + 1) * d], &src[s * d..(s + 1) * d], "{rows}x{d} row {k}");
            }
            let grad: Vec<f32> = (0..idx.len() * d).map(|i| (i % 17) as f32 - 8.0).collect();
            let back = gather_backward(&grad, d, &idx, rows);
            let mut want = vec![0.0f32; rows * d];
            for (k, &s) in idx.iter().enumerate() {
                for j in 0..d {
                    want[s * d + j] += grad[k * d + j];
                }
            }
            assert_eq!(back, want, "{rows}x{d}");
        }
    }

    #[test]
    fn flex_ops_equal_select_and_select_add() {
        use burn::backend::ops::{FloatTensorOps, IntTensorOps};
        let dev = Default::default();
        let (rows, d) = (40, 9);
        let data: Vec<f32> = (0..rows * d).map(|i| (i as f32).sin()).collect();
        let t = FlexTensor::from_data(TensorData::new(data, [rows, d]));
        let ix: Vec<i64> = vec![0, 2, 3, 39, 3, 3, 17];
        let idx = Flex::int_from_data(TensorData::new(ix.clone(), [ix.len()]), &dev);
        let ours = Flex::gather_rows(t.clone(), idx.clone()).into_data();
        let theirs = Flex::float_select(t, 0, idx.clone()).into_data();
        assert_eq!(ours, theirs);
        let g = FlexTensor::from_data(TensorData::new(
            (0..ix.len() * d).map(|i| i as f32).collect::<Vec<f32>>(),
            [ix.len(), d],
        ));
        let ours = Flex::gather_rows_backward(g.clone(), idx.clone(), rows).into_data();
        let theirs = scatter_add::<Flex>(g.clone(), idx.clone(), rows).into_data();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn scatter_rows_sums_rows_and_its_gradient_is_the_gather() {
        use burn::tensor::Device;
        let dev = Device::flex().autodiff();
        let (m, d, rows) = (7, 3, 5);
        let vals: Vec<f32> = (0..m * d).map(|i| (i as f32 * 0.3).cos()).collect();
        let t = Tensor::<1>::from_floats(vals.as_slice(), &dev)
            .reshape([m, d])
            .require_grad();
        let ix = [4i64, 0, 4, 2, 4, 0, 1];
        let idx = Tensor::<1, Int>::from_ints(ix, &dev);
        let out = scatter_rows(t.clone(), idx.clone(), rows);
        let want = Tensor::<2>::zeros([rows, d], &dev).select_assign(0, idx.clone(), t.clone(), IndexingUpdateOp::Add);
        assert_eq!(out.clone().into_data(), want.into_data());
        let up: Vec<f32> = (0..rows * d).map(|i| i as f32 - 6.0).collect();
        let up = Tensor::<1>::from_floats(up.as_slice(), &dev).reshape([rows, d]);
        let grads = (out * up.clone()).sum().backward();
        let g = t.grad(&grads).unwrap();
        assert_eq!(g.into_data(), up.inner().select(0, idx.inner()).into_data());
    }
}
