//! The carrier's two heads after their first product as one autodiff node
//! each, for backends that have it as a kernel (`HeadOps`; burn's Cube
//! backends in `head_cube.rs`).
//!
//! A head is `finish(GELU(x W1 + b1) W2 + b2)`: the energy head's finish
//! is tanh (W2 [Hd/2, 1]), the displacement head's `clamp(s v, -m, m)` (W2
//! [64, 3]). Written as ops that is six launches forward and eight or more
//! backward per head, once per propagation step, and the GELU's output
//! and derivative kept for the backward ([N, K] each). The kernel takes
//! the first product p = x W1 (the GEMM stays burn's) and does the rest in
//! one pass forward; backward one pass, two column sums and one product
//! (dL/dW2), recomputing the GELU from p, the one [N, K] tensor it keeps.
//!
//! Backends without the kernel (Flex, where these are a few passes over
//! rows our fused ops already make fast) answer None, and [`head`] runs
//! the ops, which stay the definition of the computation
//! (tests/gpu/head.rs holds the kernel to them).

use super::Kernels;
use super::matmul::matmul;
use super::walls::scale_clamp;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::Linear;
use burn::tensor::Tensor;

/// A head's last step on v = g W2 + b2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Finish {
    /// tanh(v) (the energy head).
    Tanh,
    /// clamp(v `scale`, -`limit`, `limit`) (the displacement head; the
    /// gradient is 0 where the clamp cut, as burn's clamp has it).
    Clamp { scale: f64, limit: f64 },
}

/// `finish(GELU(p + b1) W2 + b2)` on p [N, K], b1 [K], w2 [K, M], b2 [M];
/// None: compose it.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait HeadOps: Backend {
    /// The head's output [N, M].
    fn fused_head(
        p: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        finish: Finish,
    ) -> Option<FloatTensor<Self>> {
        let _ = (p, b1, w2, b2, finish);
        None
    }

    /// dL/dp, dL/db1, dL/dw2, dL/db2 from the inputs and dL/dy [N, M]. A
    /// backend that answers `fused_head` answers this.
    #[allow(clippy::type_complexity)]
    fn fused_head_backward(
        p: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        finish: Finish,
    ) -> Option<(
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    )> {
        let _ = (p, b1, w2, b2, grad, finish);
        None
    }
}

impl HeadOps for Flex {}

/// The head's backward into p, b1, w2 and b2.
#[derive(Debug)]
struct HeadBackward {
    finish: Finish,
}

impl<B: Backend + HeadOps> Backward<B, 4> for HeadBackward {
    /// p, b1, w2, b2.
    type State = [FloatTensor<B>; 4];

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let [p, b1, w2, b2] = ops.state;
        let (dp, db1, dw2, db2) = B::fused_head_backward(p, b1, w2, b2, grad, self.finish)
            .expect("a backend with the head kernel has its backward");
        for (node, d) in ops.parents.into_iter().zip([dp, db1, dw2, db2]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, d);
            }
        }
    }
}

impl<B: Backend + HeadOps, C: CheckpointStrategy> HeadOps for Autodiff<B, C> {
    fn fused_head(
        p: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        finish: Finish,
    ) -> Option<FloatTensor<Self>> {
        let all = [p, b1, w2, b2];
        let guards = all.each_ref().map(|t| t.node());
        let inputs = all.map(|t| t.into_primitive());
        let [p, b1, w2, b2] = inputs.each_ref().map(Clone::clone);
        let y = B::fused_head(p, b1, w2, b2, finish)?;
        // Only the inputs are kept: the backward recomputes the GELU from p.
        let node = HeadBackward { finish };
        Some(match node.prepare::<C>(guards).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(inputs, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        })
    }
}

/// The head `finish(fc2(GELU(fc1(x))))` on x [N, Hd]: one product and
/// the kernel when `kernels` is fused and the backend has it, else
/// [`head_layers`] after `fc1`.
pub fn head(fc1: &Linear, fc2: &Linear, x: Tensor<2>, finish: Finish, kernels: Kernels) -> Tensor<2> {
    if !kernels.fused() {
        return head_layers(fc2, kernels.linear(fc1, x), finish, kernels);
    }
    // The product `Kernels::linear` makes, with the bias left to the kernel.
    let p = matmul(x, fc1.weight.val());
    let with_bias = |p: Tensor<2>| match &fc1.bias {
        Some(b) => p + b.val().unsqueeze(),
        None => p,
    };
    let (Some(b1), Some(b2)) = (&fc1.bias, &fc2.bias) else {
        return head_layers(fc2, with_bias(p), finish, kernels);
    };
    let y = <Dispatch as HeadOps>::fused_head(
        p.clone().into_dispatch(),
        b1.val().into_dispatch(),
        fc2.weight.val().into_dispatch(),
        b2.val().into_dispatch(),
        finish,
    );
    match y {
        Some(y) => Tensor::from_dispatch(y),
        None => head_layers(fc2, with_bias(p), finish, kernels),
    }
}

/// The head after its first layer, `finish(fc2(GELU(h1)))` for h1 =
/// `x W1 + b1` [N, K], op by op on `kernels` (GELU, `Kernels::linear`,
/// tanh or [`scale_clamp`]): the definition the kernel is held to.
pub fn head_layers(fc2: &Linear, h1: Tensor<2>, finish: Finish, kernels: Kernels) -> Tensor<2> {
    let v = kernels.linear(fc2, kernels.gelu(h1));
    match finish {
        Finish::Tanh => v.tanh(),
        Finish::Clamp { scale, limit } => scale_clamp(v, scale, limit, kernels),
    }
}
