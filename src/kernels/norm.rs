//! LayerNorm over the last axis of a [N, D] matrix as a burn backend
//! extension (`NormOps`).
//!
//! burn 0.22 differentiates its LayerNorm op by its composed default body:
//! on a GPU one LayerNorm is about 11 launches forward and 30 backward, and
//! the neuron runs two per propagation step. Here it is one graph node:
//!
//! - forward y = x̂ gamma + beta, x̂ = (x - mean) rstd, rstd = 1 /
//!   sqrt(var + eps) (biased variance), saving x̂ [N, D] and rstd [N, 1];
//! - backward, with g = dL/dy gamma: dx = rstd (g - mean(g) - x̂
//!   mean(g x̂)) per row, dgamma = sum over rows of dL/dy x̂, dbeta = sum
//!   over rows of dL/dy.
//!
//! Flex: burn's own LayerNorm untracked, the loops of `norm_cpu.rs` in
//! training; Cube: `norm_cube.rs`; other backends
//! and non-f32 tensors: the default bodies, which write the same formulas
//! with backend ops. [`layer_norm`] takes burn's `LayerNorm` module, whose
//! weights and checkpoints stay as they are; its epsilon is private, so
//! every LayerNorm of ours is built by [`norm_module`] with
//! [`LAYER_NORM_EPSILON`] (a test checks the two agree).

use super::{contiguous_f32, f32_slice as slice, norm_cpu};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorData, TensorMetadata, backend_extension};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

/// The epsilon of every LayerNorm the model builds (burn's default).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// A LayerNorm of width `d` with [`LAYER_NORM_EPSILON`].
pub fn norm_module(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(LAYER_NORM_EPSILON).init(device)
}

/// LayerNorm of x [N, D] with gamma, beta [D].
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait NormOps: Backend {
    /// y [N, D] (no autodiff state).
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        composed_saving::<Self>(x, gamma, beta, eps).0
    }

    /// y [N, D] and what the backward needs: x̂ [N, D] and rstd [N, 1].
    fn fused_layer_norm_saving(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_saving::<Self>(x, gamma, beta, eps)
    }

    /// (dx [N, D], dgamma [D], dbeta [D]) from x̂, rstd, gamma and dL/dy.
    fn fused_layer_norm_backward(
        xhat: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(xhat, rstd, gamma, grad)
    }
}

/// A [D] vector as a [1, D] row to broadcast.
fn row<B: Backend>(v: FloatTensor<B>) -> FloatTensor<B> {
    let d = v.shape()[0];
    B::float_reshape(v, [1, d].into())
}

/// The forward of the module docs with backend ops.
pub(super) fn composed_saving<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let centered = B::float_sub(x.clone(), B::float_mean_dim(x, 1));
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), 1);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, eps.into())));
    let xhat = B::float_mul(centered, rstd.clone());
    let y = B::float_add(B::float_mul(xhat.clone(), row::<B>(gamma)), row::<B>(beta));
    (y, xhat, rstd)
}

/// The backward of the module docs with backend ops.
pub(super) fn composed_backward<B: Backend>(
    xhat: FloatTensor<B>,
    rstd: FloatTensor<B>,
    gamma: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let d = xhat.shape()[1];
    let col_sum = |t: FloatTensor<B>| B::float_reshape(B::float_sum_dim(t, 0), [d].into());
    let d_gamma = col_sum(B::float_mul(grad.clone(), xhat.clone()));
    let g = B::float_mul(grad.clone(), row::<B>(gamma));
    let m1 = B::float_mean_dim(g.clone(), 1);
    let m2 = B::float_mean_dim(B::float_mul(g.clone(), xhat.clone()), 1);
    let inner = B::float_sub(B::float_sub(g, m1), B::float_mul(xhat, m2));
    (B::float_mul(inner, rstd), d_gamma, col_sum(grad))
}

fn flex(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.to_vec()))
}

/// One Flex training forward on f32 [N, D] with [D] weights; None
/// otherwise (the caller takes the composed body).
fn flex_forward(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, eps: f64) -> Option<[FlexTensor; 3]> {
    let s = x.shape();
    if s.num_dims() != 2 {
        return None;
    }
    let (n, d) = (s[0], s[1]);
    if gamma.shape().num_elements() != d || beta.shape().num_elements() != d {
        return None;
    }
    let (x, gamma, beta) = (contiguous_f32(x)?, contiguous_f32(gamma)?, contiguous_f32(beta)?);
    let out = norm_cpu::forward(slice(&x), slice(&gamma), slice(&beta), d, eps as f32);
    Some([flex(out.y, &[n, d]), flex(out.xhat, &[n, d]), flex(out.rstd, &[n, 1])])
}

impl NormOps for Flex {
    /// Untracked (inference): burn's own Flex LayerNorm, whose SIMD rows
    /// are 2% faster in an inference step than our loop (BENCHMARKS).
    fn fused_layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, eps: f64) -> FlexTensor {
        Flex::layer_norm(x, gamma, Some(beta), eps)
    }

    fn fused_layer_norm_saving(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        eps: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        match flex_forward(&x, &gamma, &beta, eps) {
            Some([y, xhat, rstd]) => (y, xhat, rstd),
            None => composed_saving::<Flex>(x, gamma, beta, eps),
        }
    }

    fn fused_layer_norm_backward(
        xhat: FlexTensor,
        rstd: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let d = xhat.shape()[1];
        match (
            contiguous_f32(&xhat),
            contiguous_f32(&rstd),
            contiguous_f32(&gamma),
            contiguous_f32(&grad),
        ) {
            (Some(xh), Some(r), Some(gm), Some(g)) => {
                let b = norm_cpu::backward(slice(&xh), slice(&r), slice(&gm), slice(&g), d);
                let n = xhat.shape()[0];
                (flex(b.dx, &[n, d]), flex(b.d_gamma, &[d]), flex(b.d_beta, &[d]))
            }
            _ => composed_backward::<Flex>(xhat, rstd, gamma, grad),
        }
    }
}

/// The LayerNorm's backward into x, gamma and beta.
#[derive(Debug)]
struct NormBackward;

impl<B: Backend + NormOps> Backward<B, 3> for NormBackward {
    /// x̂, rstd and gamma.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (xhat, rstd, gamma) = ops.state;
        let (dx, d_gamma, d_beta) = B::fused_layer_norm_backward(xhat, rstd, gamma, grad);
        for (node, d) in ops.parents.into_iter().zip([dx, d_gamma, d_beta]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, d);
            }
        }
    }
}

impl<B: Backend + NormOps, C: CheckpointStrategy> NormOps for Autodiff<B, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        let guards = [x.node(), gamma.node(), beta.node()];
        let [x, gamma, beta] = [x, gamma, beta].map(|t| t.into_primitive());
        // Compute-bound: x̂ and rstd are kept, never recomputed.
        match NormBackward.prepare::<C>(guards).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, xhat, rstd) = B::fused_layer_norm_saving(x, gamma.clone(), beta, eps);
                prep.finish((xhat, rstd, gamma), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(x, gamma, beta, eps)),
        }
    }
}

/// `norm` applied to x [N, D] as one node, or through burn's own
/// `LayerNorm::forward` for a LayerNorm without beta.
pub fn layer_norm(norm: &LayerNorm, x: Tensor<2>) -> Tensor<2> {
    let Some(beta) = &norm.beta else {
        return norm.forward(x);
    };
    Tensor::from_dispatch(<Dispatch as NormOps>::fused_layer_norm(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        beta.val().into_dispatch(),
        LAYER_NORM_EPSILON,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device;

    fn matrix(rows: usize, cols: usize, seed: f32, dev: &Device) -> Tensor<2> {
        let v = (0..rows * cols)
            .map(|i| (i as f32 * 0.618 + seed).sin() * 2.5)
            .collect();
        device::matrix(v, rows, cols, dev)
    }

    /// A LayerNorm of width `d` with weights that are not ones and zeros.
    fn norm(d: usize, dev: &Device) -> LayerNorm {
        let mut ln = norm_module(d, dev);
        let v = |seed: f32| device::vector((0..d).map(|i| (i as f32 * 1.3 + seed).cos()).collect(), dev);
        ln.gamma = burn::module::Param::from_tensor(v(0.4));
        ln.beta = Some(burn::module::Param::from_tensor(v(2.0)));
        ln
    }

    fn max_diff(a: Vec<f32>, b: Vec<f32>) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn the_fused_norm_equals_burns_forward_and_gradients() {
        let dev = Device::flex().autodiff();
        for (rows, d) in [(1, 1), (1, 7), (5, 32), (300, 33)] {
            let ln = norm(d, &dev);
            let x = matrix(rows, d, 0.3, &dev).require_grad();
            let w = matrix(rows, d, 1.9, &dev);
            let ours = layer_norm(&ln, x.clone());
            let theirs = ln.forward(x.clone());
            let fwd = max_diff(
                device::to_vec(ours.clone()).unwrap(),
                device::to_vec(theirs.clone()).unwrap(),
            );
            assert!(fwd <= 1e-5, "rows {rows}, d {d}: forward {fwd}");
            let (g1, g2) = ((ours * w.clone()).sum().backward(), (theirs * w).sum().backward());
            let grad = |t: Tensor<1>, g: &burn::tensor::Gradients| device::to_vec(t.grad(g).unwrap()).unwrap();
            let dx = max_diff(
                device::to_vec(x.grad(&g1).unwrap()).unwrap(),
                device::to_vec(x.grad(&g2).unwrap()).unwrap(),
            );
            assert!(dx <= 1e-4, "rows {rows}, d {d}: dx {dx}");
            let dg = max_diff(grad(ln.gamma.val(), &g1), grad(ln.gamma.val(), &g2));
            let beta = ln.beta.as_ref().unwrap().val();
            let db = max_diff(grad(beta.clone(), &g1), grad(beta, &g2));
            assert!(dg <= 1e-4 && db <= 1e-4, "rows {rows}, d {d}: dgamma {dg}, dbeta {db}");
        }
    }

    #[test]
    fn the_norms_epsilon_is_the_modules() {
        // A near-constant row makes the variance comparable to epsilon, so
        // a different epsilon would show in the output.
        let dev = Device::flex();
        let ln = norm(4, &dev);
        let x = device::matrix(vec![1.0, 1.001, 0.999, 1.0], 1, 4, &dev);
        let d = max_diff(
            device::to_vec(layer_norm(&ln, x.clone())).unwrap(),
            device::to_vec(ln.forward(x)).unwrap(),
        );
        assert!(d <= 1e-5, "{d}");
    }

    #[test]
    fn the_composed_bodies_equal_the_cpu_loops() {
        let dev = Device::flex();
        let (x, ln) = (matrix(9, 6, 0.8, &dev), norm(6, &dev));
        let p = |t: Tensor<2>| t.into_dispatch();
        let v = |t: Tensor<1>| t.into_dispatch();
        let (gamma, beta) = (ln.gamma.val(), ln.beta.as_ref().unwrap().val());
        type D = Dispatch;
        let fused = <D as NormOps>::fused_layer_norm_saving(p(x.clone()), v(gamma.clone()), v(beta.clone()), 1e-5);
        let comp = composed_saving::<D>(p(x), v(gamma.clone()), v(beta), 1e-5);
        let host = |t: FloatTensor<D>| device::to_vec(Tensor::<2>::from_dispatch(t)).unwrap();
        let g = p(matrix(9, 6, 4.1, &dev));
        let fb =
            <D as NormOps>::fused_layer_norm_backward(fused.1.clone(), fused.2.clone(), v(gamma.clone()), g.clone());
        let cb = composed_backward::<D>(comp.1.clone(), comp.2.clone(), v(gamma), g);
        for (a, b) in [(fused.0, comp.0), (fused.1, comp.1), (fused.2, comp.2), (fb.0, cb.0)] {
            assert!(max_diff(host(a), host(b)) <= 1e-5);
        }
        let host1 = |t: FloatTensor<D>| device::to_vec(Tensor::<1>::from_dispatch(t)).unwrap();
        assert!(max_diff(host1(fb.1), host1(cb.1)) <= 1e-4);
        assert!(max_diff(host1(fb.2), host1(cb.2)) <= 1e-4);
    }
}
