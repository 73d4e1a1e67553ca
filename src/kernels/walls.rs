//! The wall rule (`flow::rules::wall`) and the displacement's clamp
//! (`clamp(scale * head, -m, m)`) as one autodiff node each, for backends
//! that have them as a kernel (`BoundOps`; burn's Cube backends in
//! `walls_cube.rs`).
//!
//! Both are one elementwise rule, a [`Bound`]: scale, reflect x and y at
//! the limits (the wall with `flow.reflection`), clamp to the limits. With
//! tensor ops the wall is 17 launches forward and about 25 backward on a
//! GPU, the clamp 5 and 3, each once per propagation step; the kernel is
//! one pass each way with the same float operations, held to the composed
//! values and gradients exactly (tests/gpu/walls.rs). The rules stay
//! written once with tensor ops (`flow::rules::wall`, [`scale_clamp`]'s
//! fallback); backends without the kernel (Flex: on the CPU these are a
//! few passes over N x 3 values) answer None and run them.

use super::Kernels;
use crate::flow::rules;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

/// One elementwise rule on [N, 3] values v: v * `scale`; then, when
/// `reflect`, x and y (columns 0 and 1) past a limit mirrored at it (v <
/// -m -> -v - 2m, v > m -> -v + 2m); then clamped to [-m, m], m = `limit`,
/// as burn's clamp does it (above m -> m, then below -m -> -m; NaN
/// passes). The gradient: scale, times -1 through a reflection, 0 where
/// the clamp cut the value (a value of exactly +-m passes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub scale: f32,
    pub limit: f32,
    pub reflect: bool,
}

/// A [`Bound`] on [N, 3] values; None: compose it.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait BoundOps: Backend {
    /// The bounded values.
    fn fused_bound(x: FloatTensor<Self>, bound: Bound) -> Option<FloatTensor<Self>> {
        let _ = (x, bound);
        None
    }

    /// dL/dx from x and dL/dy. A backend that answers `fused_bound`
    /// answers this too.
    fn fused_bound_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>, bound: Bound) -> Option<FloatTensor<Self>> {
        let _ = (x, grad, bound);
        None
    }
}

impl BoundOps for Flex {}

/// The bound's backward: x, and the bound.
#[derive(Debug)]
struct BoundBackward {
    bound: Bound,
}

impl<B: Backend + BoundOps> Backward<B, 1> for BoundBackward {
    /// x.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let d = B::fused_bound_backward(ops.state, grad, self.bound)
                .expect("a backend with the bound kernel has its backward");
            grads.register::<B>(node.id, d);
        }
    }
}

impl<B: Backend + BoundOps, C: CheckpointStrategy> BoundOps for Autodiff<B, C> {
    fn fused_bound(x: FloatTensor<Self>, bound: Bound) -> Option<FloatTensor<Self>> {
        let guard = [x.node()];
        let x = x.into_primitive();
        let y = B::fused_bound(x.clone(), bound)?;
        // Compute-bound: x is kept, never recomputed.
        let node = BoundBackward { bound };
        Some(match node.prepare::<C>(guard).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        })
    }
}

/// `bound` on `x` through the kernel when `kernels` is fused and the
/// backend has one, else None.
fn fused(x: &Tensor<2>, bound: Bound, kernels: Kernels) -> Option<Tensor<2>> {
    if !kernels.fused() {
        return None;
    }
    <Dispatch as BoundOps>::fused_bound(x.clone().into_dispatch(), bound).map(Tensor::from_dispatch)
}

/// The wall rule on `raw` [N, 3]: the kernel when `kernels` is fused and
/// the backend has one, else `flow::rules::wall`.
pub fn wall(raw: Tensor<2>, reflection: bool, kernels: Kernels) -> Tensor<2> {
    let bound = Bound {
        scale: 1.0,
        limit: 1.0,
        reflect: reflection,
    };
    fused(&raw, bound, kernels).unwrap_or_else(|| rules::wall(raw, reflection))
}

/// clamp(x s, -m, m): the kernel when `kernels` is fused and the backend
/// has one, else burn's scalar product and clamp.
pub fn scale_clamp(x: Tensor<2>, s: f64, m: f64, kernels: Kernels) -> Tensor<2> {
    let bound = Bound {
        scale: s as f32,
        limit: m as f32,
        reflect: false,
    };
    fused(&x, bound, kernels).unwrap_or_else(|| (x * s).clamp(-m, m))
}
