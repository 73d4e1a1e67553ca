//! The exact (erf) GELU as a burn backend extension (`GeluOps`).
//!
//! - Flex (CPU): one multi-threaded, vectorised pass (`gelu_cpu::gelu`); in
//!   training the same pass writes GELU'(x), so the backward is one
//!   multiplication and no erf or exp is evaluated twice.
//! - Cube (Vulkan, wgpu): the same pass as a CubeCL kernel (`gelu_cube.rs`).
//! - Autodiff: one graph node with that backward.
//! - Other backends and non-f32 tensors: burn's own GELU and its backward,
//!   through the default bodies.

use super::{contiguous_f32, gelu_cpu};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, TensorData, TensorMetadata, backend_extension};
use burn::tensor::Tensor;

/// GELU(x) = x Phi(x), elementwise.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait GeluOps: Backend {
    /// GELU(x).
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu(x)
    }

    /// GELU(x) and what its backward needs (here x itself; Flex saves
    /// GELU'(x) instead).
    fn fused_gelu_saving(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        (Self::gelu(x.clone()), x)
    }

    /// dL/dx from what `fused_gelu_saving` saved and dL/dy.
    fn fused_gelu_backward(saved: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu_backward(saved, grad)
    }
}

fn like(t: &FlexTensor, data: Vec<f32>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, t.shape()))
}

impl GeluOps for Flex {
    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        match contiguous_f32(&x) {
            Some(c) => like(&x, gelu_cpu::gelu(c.as_slice::<f32>().expect("contiguous f32"))),
            None => Flex::gelu(x),
        }
    }

    fn fused_gelu_saving(x: FlexTensor) -> (FlexTensor, FlexTensor) {
        match contiguous_f32(&x) {
            Some(c) => {
                let (y, dy) = gelu_cpu::gelu_saving(c.as_slice::<f32>().expect("contiguous f32"));
                (like(&x, y), like(&x, dy))
            }
            // The default body's pair: burn's GELU and x for its backward.
            None => (Flex::gelu(x.clone()), x),
        }
    }

    fn fused_gelu_backward(saved: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if saved.dtype() == DType::F32 {
            Flex::float_mul(grad, saved)
        } else {
            Flex::gelu_backward(saved, grad)
        }
    }
}

#[derive(Debug)]
struct GeluBackward;

impl<B: Backend + GeluOps> Backward<B, 1> for GeluBackward {
    /// What `fused_gelu_saving` saved.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            grads.register::<B>(node.id, B::fused_gelu_backward(ops.state, grad));
        }
    }
}

impl<B: Backend + GeluOps, C: CheckpointStrategy> GeluOps for Autodiff<B, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let guard = [x.node()];
        let x = x.into_primitive();
        match GeluBackward.prepare::<C>(guard).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, saved) = B::fused_gelu_saving(x);
                prep.finish(saved, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_gelu(x)),
        }
    }
}

/// GELU(x) through the fused kernel.
pub fn gelu(x: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as GeluOps>::fused_gelu(x.into_dispatch()))
}
