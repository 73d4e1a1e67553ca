//! The per-flow feature MLP of MODEL.md s.3 as one autodiff node, for
//! backends that have it as a kernel (`NeuronOps`; burn's Cube backends in
//! `neuron_cube.rs`).
//!
//! y = L3(GELU(LN2(L2(GELU(LN1(L1([Lp(pos), energy]))))))), with Lp [3, 3],
//! L1 [4, H], L2 [H, H], L3 [H, F] linear layers (x W + b) and LN1, LN2
//! LayerNorms of width H. Written as modules it is 14 launches forward and
//! 20 to 24 backward on a GPU, once per propagation step, for rows of a
//! few dozen values; the kernel is one launch forward, and backward one
//! launch, one column sum and its split, and the four weight products.
//!
//! Backends without the kernel (Flex, where the modules' own fused ops
//! are as fast) answer None, and the caller runs the modules, which stay
//! the definition of the computation (tests/gpu/neuron.rs holds the
//! kernel to them).

use super::norm::LAYER_NORM_EPSILON;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;

/// The MLP on pos [N, 3] and energy [N, 1]: weights `w*` [d_in, d_out],
/// biases `b*`, LayerNorm weights `g*` and `be*` [H], epsilon `eps`. None:
/// run the modules.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait NeuronOps: Backend {
    /// y [N, F], or with `with_energy` [N, F + 1]: the energy appended as
    /// the last column (the carrier's input, without a concatenation).
    #[allow(clippy::too_many_arguments)]
    fn fused_neuron(
        pos: FloatTensor<Self>,
        energy: FloatTensor<Self>,
        wp: FloatTensor<Self>,
        bp: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        g1: FloatTensor<Self>,
        be1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        g2: FloatTensor<Self>,
        be2: FloatTensor<Self>,
        w3: FloatTensor<Self>,
        b3: FloatTensor<Self>,
        eps: f64,
        with_energy: bool,
    ) -> Option<FloatTensor<Self>> {
        Self::fused_neuron_saving(
            pos,
            energy,
            wp,
            bp,
            w1,
            b1,
            g1,
            be1,
            w2,
            b2,
            g2,
            be2,
            w3,
            b3,
            eps,
            with_energy,
        )
        .map(|(y, _)| y)
    }

    /// y as `fused_neuron` gives it and what the backward needs (in the
    /// backend's own layout).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn fused_neuron_saving(
        pos: FloatTensor<Self>,
        energy: FloatTensor<Self>,
        wp: FloatTensor<Self>,
        bp: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        g1: FloatTensor<Self>,
        be1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        g2: FloatTensor<Self>,
        be2: FloatTensor<Self>,
        w3: FloatTensor<Self>,
        b3: FloatTensor<Self>,
        eps: f64,
        with_energy: bool,
    ) -> Option<(FloatTensor<Self>, FloatTensor<Self>)> {
        let _ = (
            pos,
            energy,
            wp,
            bp,
            w1,
            b1,
            g1,
            be1,
            w2,
            b2,
            g2,
            be2,
            w3,
            b3,
            eps,
            with_energy,
        );
        None
    }

    /// From what the forward saved, the weights and dL/dy ([N, F] or [N,
    /// F + 1], as the forward gave y): the gradients
    /// of `fused_neuron`'s fourteen inputs, in its order. A backend that
    /// answers `fused_neuron` answers this. (The extension macro finds
    /// tensors by the name `FloatTensor`: the tuple cannot be aliased.)
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn fused_neuron_backward(
        saved: FloatTensor<Self>,
        wp: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        g1: FloatTensor<Self>,
        be1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        g2: FloatTensor<Self>,
        be2: FloatTensor<Self>,
        w3: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> Option<(
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    )> {
        let _ = (saved, wp, w1, g1, be1, w2, g2, be2, w3, grad);
        None
    }
}

/// `fused_neuron_backward`'s answer, for the implementations.
#[cfg_attr(not(gpu), allow(dead_code))]
pub(super) type Grads14<T> = (T, T, T, T, T, T, T, T, T, T, T, T, T, T);

impl NeuronOps for Flex {}

/// The MLP's backward into its 14 inputs.
#[derive(Debug)]
struct NeuronBackward;

impl<B: Backend + NeuronOps> Backward<B, 14> for NeuronBackward {
    /// What the forward saved, and wp, w1, g1, be1, w2, g2, be2, w3.
    type State = (FloatTensor<B>, [FloatTensor<B>; 8]);

    fn backward(self, ops: Ops<Self::State, 14>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (saved, [wp, w1, g1, be1, w2, g2, be2, w3]) = ops.state;
        let (a, b, c, d, e, f, g, h, i, j, k, l, m, n) =
            B::fused_neuron_backward(saved, wp, w1, g1, be1, w2, g2, be2, w3, grad)
                .expect("a backend with the neuron kernel has its backward");
        for (node, d) in ops.parents.into_iter().zip([a, b, c, d, e, f, g, h, i, j, k, l, m, n]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, d);
            }
        }
    }
}

impl<B: Backend + NeuronOps, C: CheckpointStrategy> NeuronOps for Autodiff<B, C> {
    fn fused_neuron(
        pos: FloatTensor<Self>,
        energy: FloatTensor<Self>,
        wp: FloatTensor<Self>,
        bp: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        g1: FloatTensor<Self>,
        be1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        g2: FloatTensor<Self>,
        be2: FloatTensor<Self>,
        w3: FloatTensor<Self>,
        b3: FloatTensor<Self>,
        eps: f64,
        with_energy: bool,
    ) -> Option<FloatTensor<Self>> {
        let all = [pos, energy, wp, bp, w1, b1, g1, be1, w2, b2, g2, be2, w3, b3];
        let guards = all.each_ref().map(|t| t.node());
        let [pos, energy, wp, bp, w1, b1, g1, be1, w2, b2, g2, be2, w3, b3] = all.map(|t| t.into_primitive());
        let kept = [&wp, &w1, &g1, &be1, &w2, &g2, &be2, &w3].map(Clone::clone);
        // The kernel writes what the backward needs as its scratch anyway.
        let (y, saved) = B::fused_neuron_saving(
            pos,
            energy,
            wp,
            bp,
            w1,
            b1,
            g1,
            be1,
            w2,
            b2,
            g2,
            be2,
            w3,
            b3,
            eps,
            with_energy,
        )?;
        // Compute-bound: what the forward saved is kept, never recomputed.
        Some(match NeuronBackward.prepare::<C>(guards).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((saved, kept), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        })
    }
}

/// The modules of the MLP, as the model holds them.
pub struct NeuronLayers<'a> {
    pub pos: &'a Linear,
    pub fc1: &'a Linear,
    pub ln1: &'a LayerNorm,
    pub fc2: &'a Linear,
    pub ln2: &'a LayerNorm,
    pub fc3: &'a Linear,
}

/// The MLP of `layers` on pos [N, 3] and energy [N, 1] as one node, with
/// `with_energy` the energy appended as a last column; None where the
/// backend has no kernel or a layer has no bias (the caller runs the
/// modules). Every LayerNorm of ours has [`LAYER_NORM_EPSILON`]
/// (`norm::norm_module`).
pub fn fused_neuron(
    layers: &NeuronLayers,
    pos: &Tensor<2>,
    energy: &Tensor<2>,
    with_energy: bool,
) -> Option<Tensor<2>> {
    let d = |t: Tensor<1>| t.into_dispatch();
    let w = |l: &Linear| l.weight.val().into_dispatch();
    let b = |l: &Linear| l.bias.as_ref().map(|b| d(b.val()));
    let beta = |n: &LayerNorm| n.beta.as_ref().map(|b| d(b.val()));
    let l = layers;
    let (bp, b1, b2, b3) = (b(l.pos)?, b(l.fc1)?, b(l.fc2)?, b(l.fc3)?);
    let (be1, be2) = (beta(l.ln1)?, beta(l.ln2)?);
    let y = <Dispatch as NeuronOps>::fused_neuron(
        pos.clone().into_dispatch(),
        energy.clone().into_dispatch(),
        w(l.pos),
        bp,
        w(l.fc1),
        b1,
        d(l.ln1.gamma.val()),
        be1,
        w(l.fc2),
        b2,
        d(l.ln2.gamma.val()),
        be2,
        w(l.fc3),
        b3,
        LAYER_NORM_EPSILON,
        with_energy,
    )?;
    Some(Tensor::from_dispatch(y))
}
