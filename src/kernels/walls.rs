//! The wall rule (`flow::rules::wall`) as one autodiff node, for backends
//! that have it as a kernel (`WallOps`; burn's Cube backends in
//! `walls_cube.rs`).
//!
//! The rule itself is written once, in `flow::rules::wall`, with tensor
//! ops: on a GPU its forward is 17 launches and its backward about 25
//! (slices, comparisons, masks, a concatenation, the clamp's two masks),
//! once per propagation step. The kernel does the same float operations
//! in one pass each way, and is held to the rule's values and gradients
//! exactly (tests/gpu/walls.rs). Backends without it (Flex: on the CPU
//! the composed rule is a few passes over N x 3 values) answer None and
//! [`wall`] runs the rule.

use super::Kernels;
use crate::flow::rules;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

/// The wall rule on raw positions [N, 3]; None: run the composed rule.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait WallOps: Backend {
    /// The walled positions [N, 3].
    fn fused_wall(raw: FloatTensor<Self>, reflection: bool) -> Option<FloatTensor<Self>> {
        let _ = (raw, reflection);
        None
    }

    /// dL/draw from the raw positions and dL/dwalled. A backend that
    /// answers `fused_wall` answers this too.
    fn fused_wall_backward(
        raw: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        reflection: bool,
    ) -> Option<FloatTensor<Self>> {
        let _ = (raw, grad, reflection);
        None
    }
}

impl WallOps for Flex {}

/// The rule's backward: the raw positions, and whether x and y reflect.
#[derive(Debug)]
struct WallBackward {
    reflection: bool,
}

impl<B: Backend + WallOps> Backward<B, 1> for WallBackward {
    /// The raw positions.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let d = B::fused_wall_backward(ops.state, grad, self.reflection)
                .expect("a backend with the wall kernel has its backward");
            grads.register::<B>(node.id, d);
        }
    }
}

impl<B: Backend + WallOps, C: CheckpointStrategy> WallOps for Autodiff<B, C> {
    fn fused_wall(raw: FloatTensor<Self>, reflection: bool) -> Option<FloatTensor<Self>> {
        let guard = [raw.node()];
        let raw = raw.into_primitive();
        let walled = B::fused_wall(raw.clone(), reflection)?;
        // Compute-bound: the raw positions are kept, never recomputed.
        let node = WallBackward { reflection };
        Some(match node.prepare::<C>(guard).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(raw, walled),
            OpsKind::UnTracked(prep) => prep.finish(walled),
        })
    }
}

/// The wall rule on `raw` [N, 3]: the kernel when `kernels` is fused and
/// the backend has one, else `flow::rules::wall`.
pub fn wall(raw: Tensor<2>, reflection: bool, kernels: Kernels) -> Tensor<2> {
    if kernels.fused()
        && let Some(w) = <Dispatch as WallOps>::fused_wall(raw.clone().into_dispatch(), reflection)
    {
        return Tensor::from_dispatch(w);
    }
    rules::wall(raw, reflection)
}
