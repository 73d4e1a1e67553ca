//! The matrix product as a burn backend extension (`MatmulOps`), so that
//! the products of the propagation loop run on our own split over the
//! cores (`gemm_cpu`) instead of Flex's.
//!
//! - Flex (CPU): `gemm_cpu::matmul` on the tensors' memory, strided views
//!   included (a transposed operand is read in place, not copied).
//! - Autodiff: one node; its backward is two more of these products,
//!   dA = dC B^T and dB = A^T dC.
//! - Other backends and dtypes: burn's own `float_matmul`; on Cube (Vulkan,
//!   wgpu) that is already cubek's tiled GPU GEMM, so the default body is
//!   kept there.

use super::gemm_cpu::{self, View};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, TensorData, backend_extension};
use burn::tensor::Tensor;

/// a [M, K] x b [K, N] -> [M, N].
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait MatmulOps: Backend {
    fn split_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(a, b)
    }
}

/// A 2-D f32 Flex tensor as a strided view of its memory.
fn view(t: &FlexTensor) -> Option<View> {
    let layout = t.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    if t.dtype() != DType::F32 || shape.num_dims() != 2 || strides.iter().any(|&s| s < 0) {
        return None;
    }
    let data = t.storage::<f32>();
    Some(View {
        ptr: data[layout.start_offset()..].as_ptr(),
        rows: shape[0],
        cols: shape[1],
        rs: strides[0],
        cs: strides[1],
    })
}

impl MatmulOps for Flex {
    fn split_matmul(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        match (view(&a), view(&b)) {
            (Some(va), Some(vb)) if va.cols == vb.rows => {
                // SAFETY: views of `a` and `b`, alive until the call returns.
                let out = unsafe { gemm_cpu::matmul(va, vb) };
                FlexTensor::from_data(TensorData::new(out, [va.rows, vb.cols]))
            }
            _ => Flex::float_matmul(a, b),
        }
    }
}

// burn's GPU GEMM (cubek), through the default body.
#[cfg(gpu)]
impl MatmulOps for burn::backend::Cube {}

#[derive(Debug)]
struct MatmulBackward;

impl<B: Backend + MatmulOps> Backward<B, 2> for MatmulBackward {
    /// The two operands.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_a, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (a, b) = ops.state;
        if let Some(node) = node_a {
            grads.register::<B>(node.id, B::split_matmul(grad.clone(), B::float_transpose(b)));
        }
        if let Some(node) = node_b {
            grads.register::<B>(node.id, B::split_matmul(B::float_transpose(a), grad));
        }
    }
}

impl<B: Backend + MatmulOps, C: CheckpointStrategy> MatmulOps for Autodiff<B, C> {
    fn split_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let guards = [a.node(), b.node()];
        let (a, b) = (a.into_primitive(), b.into_primitive());
        match MatmulBackward.prepare::<C>(guards).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::split_matmul(a.clone(), b.clone());
                prep.finish((a, b), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::split_matmul(a, b)),
        }
    }
}

/// a [M, K] x b [K, N] on our split over the cores.
pub fn matmul(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as MatmulOps>::split_matmul(
        a.into_dispatch(),
        b.into_dispatch(),
    ))
}
