//! The AdamW update of one parameter as a burn backend extension
//! (`AdamOps`), for the optimizer of `train::adamw`.
//!
//! Why: burn's AdamW is about ten elementwise ops per parameter, each a
//! pass over memory with a fresh allocation, and Flex runs them on one
//! thread while the other core has nothing to do (docs/BENCHMARKS.md).
//!
//! - Flex (CPU), f32: one pass over parameter, gradient and both moments,
//!   split over the cores; the same f32 operations in the same order as
//!   burn's `AdamW` (so the same values to the bit, tested).
//! - Cube (Vulkan, wgpu): the same pass as a CubeCL kernel, in place
//!   (`adamw_cube.rs`).
//! - Other backends and other dtypes: those burn ops, through the default
//!   body.
//!
//! Not an autodiff op: optimizers work on the parameters' inner tensors.

use super::contiguous_f32;
use super::uninit::{assume_init, uninit};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorData, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many elements the pass stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 14;
/// Elements per parallel task.
const PER_TASK: usize = 1 << 13;

/// The scalars of one AdamW step, as f32 the way burn's `AdamW` applies
/// them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// 1 - beta_1^t and 1 - beta_2^t for step t (1-based).
    pub correction_1: f32,
    pub correction_2: f32,
    /// The learning rate.
    pub lr: f32,
    /// 1 - lr * weight_decay: the decoupled decay's factor.
    pub keep: f32,
}

impl AdamStep {
    /// Step `time` (1-based) with learning rate `lr`, burn's arithmetic:
    /// the corrections in f32, lr and the decay's factor from f64.
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32, lr: f64, time: usize) -> Self {
        let t = i32::try_from(time).unwrap_or(i32::MAX);
        AdamStep {
            beta_1,
            beta_2,
            epsilon,
            correction_1: 1.0 - beta_1.powi(t),
            correction_2: 1.0 - beta_2.powi(t),
            lr: lr as f32,
            keep: (1.0 - lr * f64::from(weight_decay)) as f32,
        }
    }
}

/// One AdamW update. `m1`, `m2` are the moments before the step (zeros
/// before the first); all four tensors have the same shape.
#[backend_extension(Flex, Cube: cfg(gpu))]
pub trait AdamOps: Backend {
    /// (parameter, first moment, second moment) after the step.
    #[allow(clippy::type_complexity)]
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m1: FloatTensor<Self>,
        m2: FloatTensor<Self>,
        s: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::<Self>(param, grad, m1, m2, s)
    }
}

/// burn's `AdamW::step` (no AMSGrad, no cautious decay) with backend ops.
pub(super) fn composed<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    m1: FloatTensor<B>,
    m2: FloatTensor<B>,
    s: AdamStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let m1 = B::float_add(
        B::float_mul_scalar(m1, s.beta_1.into()),
        B::float_mul_scalar(grad.clone(), (1.0 - s.beta_1).into()),
    );
    let m2 = B::float_add(
        B::float_mul_scalar(m2, s.beta_2.into()),
        B::float_mul_scalar(B::float_mul(grad.clone(), grad), (1.0 - s.beta_2).into()),
    );
    let m1c = B::float_div_scalar(m1.clone(), s.correction_1.into());
    let m2c = B::float_div_scalar(m2.clone(), s.correction_2.into());
    let delta = B::float_div(m1c, B::float_add_scalar(B::float_sqrt(m2c), s.epsilon.into()));
    let p = B::float_sub(
        B::float_mul_scalar(param, s.keep.into()),
        B::float_mul_scalar(delta, s.lr.into()),
    );
    (p, m1, m2)
}

/// Output chunks of one task: parameter, m1, m2.
type Chunks<'a> = (
    &'a mut [MaybeUninit<f32>],
    (&'a mut [MaybeUninit<f32>], &'a mut [MaybeUninit<f32>]),
);

/// The update over host slices of equal length: (parameter, m1, m2).
pub fn adamw(param: &[f32], grad: &[f32], m1: &[f32], m2: &[f32], s: AdamStep) -> [Vec<f32>; 3] {
    let n = param.len();
    assert!(
        grad.len() == n && m1.len() == n && m2.len() == n,
        "AdamW operands differ in length"
    );
    let (mut p_out, mut m1_out, mut m2_out) = (uninit(n), uninit(n), uninit(n));
    let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let task = |k: usize, (po, (ao, bo)): Chunks| {
        let at = k * PER_TASK;
        let end = at + po.len();
        let it = param[at..end]
            .iter()
            .zip(&grad[at..end])
            .zip(m1[at..end].iter().zip(&m2[at..end]));
        for (i, ((&p, &g), (&a, &b))) in it.enumerate() {
            // burn's AdamW, operation by operation.
            let a = a * s.beta_1 + g * f1;
            let b = b * s.beta_2 + g * g * f2;
            let delta = (a / s.correction_1) / ((b / s.correction_2).sqrt() + s.epsilon);
            po[i].write(p * s.keep - delta * s.lr);
            ao[i].write(a);
            bo[i].write(b);
        }
    };
    if n >= PARALLEL_MIN {
        p_out
            .par_chunks_mut(PER_TASK)
            .zip(m1_out.par_chunks_mut(PER_TASK).zip(m2_out.par_chunks_mut(PER_TASK)))
            .enumerate()
            .for_each(|(k, c)| task(k, c));
    } else {
        p_out
            .chunks_mut(PER_TASK)
            .zip(m1_out.chunks_mut(PER_TASK).zip(m2_out.chunks_mut(PER_TASK)))
            .enumerate()
            .for_each(|(k, c)| task(k, c));
    }
    // SAFETY: every element of the three buffers was written above.
    unsafe { [assume_init(p_out), assume_init(m1_out), assume_init(m2_out)] }
}

impl AdamOps for Flex {
    fn adamw_step(
        param: FlexTensor,
        grad: FlexTensor,
        m1: FlexTensor,
        m2: FlexTensor,
        s: AdamStep,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let same = |t: &FlexTensor| t.shape() == param.shape();
        let host = (same(&grad) && same(&m1) && same(&m2))
            .then(|| {
                Some([
                    contiguous_f32(&param)?,
                    contiguous_f32(&grad)?,
                    contiguous_f32(&m1)?,
                    contiguous_f32(&m2)?,
                ])
            })
            .flatten();
        let Some([p, g, a, b]) = host else {
            return composed::<Flex>(param, grad, m1, m2, s);
        };
        fn f(t: &FlexTensor) -> &[f32] {
            t.as_slice::<f32>().expect("contiguous f32")
        }
        let shape = param.shape();
        let [p, a, b] = adamw(f(&p), f(&g), f(&a), f(&b), s);
        let t = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, shape.clone()));
        (t(p), t(a), t(b))
    }
}

/// One AdamW update of a parameter through the fused kernel.
pub fn adamw_step<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    m1: Tensor<D>,
    m2: Tensor<D>,
    s: AdamStep,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (p, a, b) = <Dispatch as AdamOps>::adamw_step(
        param.into_dispatch(),
        grad.into_dispatch(),
        m1.into_dispatch(),
        m2.into_dispatch(),
        s,
    );
    (
        Tensor::from_dispatch(p),
        Tensor::from_dispatch(a),
        Tensor::from_dispatch(b),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(t: FlexTensor) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32")
    }

    /// The default body other backends run (burn ops, here on Flex) gives
    /// the kernel's values: to float rounding, over a few steps.
    #[test]
    fn composed_body_equals_the_kernel() {
        let n = 1000;
        let wave = |k: f32| -> Vec<f32> { (0..n).map(|i| ((i as f32) * 0.61 + k).sin()).collect() };
        let t = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, [n / 10, 10]));
        let (mut p, mut a, mut b) = (wave(0.0), vec![0.0; n], vec![0.0; n]);
        let (mut cp, mut ca, mut cb) = (t(p.clone()), t(a.clone()), t(b.clone()));
        for step in 1..=3 {
            let g = wave(step as f32 * 2.0);
            let s = AdamStep::new(0.9, 0.999, 1e-8, 1e-2, 1e-3, step);
            [p, a, b] = adamw(&p, &g, &a, &b, s);
            (cp, ca, cb) = composed::<Flex>(cp, t(g), ca, cb, s);
        }
        for (ours, theirs) in [(&p, host(cp)), (&a, host(ca)), (&b, host(cb))] {
            for (x, y) in ours.iter().zip(&theirs) {
                assert!((x - y).abs() <= 1e-6 * x.abs().max(1e-3), "{x} against {y}");
            }
        }
        assert!(p.iter().zip(wave(0.0)).any(|(x, y)| *x != y), "nothing moved");
    }
}
