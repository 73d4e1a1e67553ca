//! The device collection's segment softmax as one autodiff node with a
//! handwritten backward (`SegmentOps`), for backends with a kernel of
//! their own: on burn's Cube backends (`segment_cube.rs`) burn's 1-D
//! `select_assign` is one GPU unit looping over every completed flow, so
//! the composed collection (`flow_collect.rs`) would be serial there.
//!
//! For group g with flows i, weights w_i = |e_i| c_i (c: the detached
//! step and plane factor): v_g = sum_i p_i e_i, p_i = softmax_g(w)_i, and
//! dv_g/de_i = p_i (1 + (e_i - v_g) c_i sign(e_i)) (the softmax's own
//! derivative through |e_i|, plus the direct term). Backends without a
//! kernel answer None and the caller runs the composed ops, which autodiff
//! differentiates itself.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Int, Tensor};

/// The segment softmax of the module docs.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait SegmentOps: Backend {
    /// v [n_keys] and p [M] for energies `e` [M], factors `c` [M] and group
    /// keys `key` [M] (below `n_keys`); empty groups give 0. None: this
    /// backend has no kernel (the default).
    fn segment_softmax(
        e: FloatTensor<Self>,
        c: FloatTensor<Self>,
        key: IntTensor<Self>,
        n_keys: usize,
    ) -> Option<(FloatTensor<Self>, FloatTensor<Self>)> {
        let _ = (e, c, key, n_keys);
        None
    }

    /// dL/de [M] from dL/dv `grad` [n_keys] and what the forward gave.
    fn segment_softmax_backward(
        e: FloatTensor<Self>,
        c: FloatTensor<Self>,
        key: IntTensor<Self>,
        p: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_backward::<Self>(e, c, key, p, v, grad)
    }
}

/// The backward of the module docs in backend ops:
/// p_i (1 + (e_i - v_key) c_i sign(e_i)) dL/dv_key.
pub(super) fn composed_backward<B: Backend>(
    e: FloatTensor<B>,
    c: FloatTensor<B>,
    key: IntTensor<B>,
    p: FloatTensor<B>,
    v: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let at_key = |t: FloatTensor<B>| B::float_select(t, 0, key.clone());
    let d = B::float_mul(B::float_sub(e.clone(), at_key(v)), c);
    let t = B::float_add_scalar(B::float_mul(d, B::float_sign(e)), 1.0f32.into());
    B::float_mul(B::float_mul(t, p), at_key(grad))
}

impl SegmentOps for Flex {}

#[derive(Debug)]
struct SegmentBackward;

/// e, c, key, p, v of the forward.
type Saved<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    IntTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
);

impl<B: Backend + SegmentOps> Backward<B, 1> for SegmentBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let (e, c, key, p, v) = ops.state;
            grads.register::<B>(node.id, B::segment_softmax_backward(e, c, key, p, v, grad));
        }
    }
}

impl<B: Backend + SegmentOps, C: CheckpointStrategy> SegmentOps for Autodiff<B, C> {
    fn segment_softmax(
        e: FloatTensor<Self>,
        c: FloatTensor<Self>,
        key: IntTensor<Self>,
        n_keys: usize,
    ) -> Option<(FloatTensor<Self>, FloatTensor<Self>)> {
        let guard = [e.node()];
        let (ei, ci) = (e.into_primitive(), c.into_primitive());
        // Asked first, so that a backend without a kernel adds no node.
        let (v, p) = B::segment_softmax(ei.clone(), ci.clone(), key.clone(), n_keys)?;
        let p_out = <Self as burn::backend::AutodiffBackend>::from_inner(p.clone());
        let v = match SegmentBackward.prepare::<C>(guard).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((ei, ci, key, p, v.clone()), v),
            OpsKind::UnTracked(prep) => prep.finish(v),
        };
        Some((v, p_out))
    }
}

/// The surface [n_keys] of energies `e` [M] (tracked) with factors `c`
/// [M] (constant) in groups `key` [M], through a backend's kernel; None
/// where it has none.
pub fn segment_softmax(e: &Tensor<1>, c: &Tensor<1>, key: &Tensor<1, Int>, n_keys: usize) -> Option<Tensor<1>> {
    <Dispatch as SegmentOps>::segment_softmax(
        e.clone().into_dispatch(),
        c.clone().into_dispatch(),
        key.clone().into_dispatch(),
        n_keys,
    )
    .map(|(v, _)| Tensor::from_dispatch(v))
}
