//! clamp(x s, -m, m) as one autodiff node, for backends that have it as a
//! kernel (`ScaleClampOps`; burn's Cube backends in `clamp_cube.rs`): the
//! carrier's displacement, `clamp(scale * head, -m, m)`, once per
//! propagation step.
//!
//! Composed, it is a scalar product and burn's clamp (two comparisons and
//! two masked fills) forward and three launches backward; the kernel is
//! one pass each way with the same float operations, held to the composed
//! values and gradients exactly (tests/gpu/walls.rs). Backends without it
//! (Flex) answer None and [`scale_clamp`] composes it.

use super::Kernels;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

/// clamp(x s, -m, m); None: compose it.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait ScaleClampOps: Backend {
    /// clamp(x s, -m, m), elementwise.
    fn fused_scale_clamp(x: FloatTensor<Self>, s: f32, m: f32) -> Option<FloatTensor<Self>> {
        let _ = (x, s, m);
        None
    }

    /// dL/dx from x and dL/dy: s dL/dy where x s lies in [-m, m], else 0.
    /// A backend that answers `fused_scale_clamp` answers this too.
    fn fused_scale_clamp_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        s: f32,
        m: f32,
    ) -> Option<FloatTensor<Self>> {
        let _ = (x, grad, s, m);
        None
    }
}

impl ScaleClampOps for Flex {}

#[derive(Debug)]
struct ScaleClampBackward {
    s: f32,
    m: f32,
}

impl<B: Backend + ScaleClampOps> Backward<B, 1> for ScaleClampBackward {
    /// x.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let d = B::fused_scale_clamp_backward(ops.state, grad, self.s, self.m)
                .expect("a backend with the clamp kernel has its backward");
            grads.register::<B>(node.id, d);
        }
    }
}

impl<B: Backend + ScaleClampOps, C: CheckpointStrategy> ScaleClampOps for Autodiff<B, C> {
    fn fused_scale_clamp(x: FloatTensor<Self>, s: f32, m: f32) -> Option<FloatTensor<Self>> {
        let guard = [x.node()];
        let x = x.into_primitive();
        let y = B::fused_scale_clamp(x.clone(), s, m)?;
        let node = ScaleClampBackward { s, m };
        Some(match node.prepare::<C>(guard).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        })
    }
}

/// clamp(x s, -m, m): the kernel when `kernels` is fused and the backend
/// has one, else burn's scalar product and clamp.
pub fn scale_clamp(x: Tensor<2>, s: f64, m: f64, kernels: Kernels) -> Tensor<2> {
    if kernels.fused()
        && let Some(y) = <Dispatch as ScaleClampOps>::fused_scale_clamp(x.clone().into_dispatch(), s as f32, m as f32)
    {
        return Tensor::from_dispatch(y);
    }
    (x * s).clamp(-m, m)
}
