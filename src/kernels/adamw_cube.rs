//! `AdamOps` for burn's Cube backend (Vulkan, wgpu): the AdamW update of
//! one parameter as one CubeCL pass, the f32 operations of burn's `AdamW`
//! in its order (as the CPU pass of `adamw.rs`; a driver may still fuse a
//! multiply and an add, so the GPU agrees with the CPU to rounding, not to
//! the bit).
//!
//! The parameter and both moments are updated in place when this call
//! holds their only reference (the optimizer hands them over), so a step
//! allocates nothing; a shared or strided one is copied first. Non-f32
//! tensors and mismatched shapes take the composed default body.

use super::adamw::{AdamOps, AdamStep, composed};
use super::cube::{elementwise, f32_rows, len};
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// The step's scalars as the kernel takes them.
#[derive(CubeLaunch, CubeType, Clone, Copy)]
struct Scalars {
    beta_1: f32,
    beta_2: f32,
    /// 1 - beta_1 and 1 - beta_2.
    f1: f32,
    f2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    lr: f32,
    keep: f32,
}

#[cube(launch_unchecked)]
fn adamw_kernel(param: &mut [f32], grad: &[f32], m1: &mut [f32], m2: &mut [f32], s: Scalars, elements: usize) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let g = grad[i];
    // burn's AdamW, operation by operation.
    let a = m1[i] * s.beta_1 + g * s.f1;
    let b = m2[i] * s.beta_2 + g * g * s.f2;
    let delta = (a / s.correction_1) / (f32::sqrt(b / s.correction_2) + s.epsilon);
    param[i] = param[i] * s.keep - delta * s.lr;
    m1[i] = a;
    m2[i] = b;
}

/// `t` as contiguous f32 that this call may overwrite, or None.
fn owned(t: CubeTensor) -> Option<CubeTensor> {
    if t.dtype != DType::F32 {
        return None;
    }
    let t = burn_cubecl::kernel::into_contiguous(t);
    Some(if t.can_mut() { t } else { t.copy() })
}

impl AdamOps for Cube {
    fn adamw_step(
        param: CubeTensor,
        grad: CubeTensor,
        m1: CubeTensor,
        m2: CubeTensor,
        s: AdamStep,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let shape = param.shape();
        let fits = [&grad, &m1, &m2].iter().all(|t| t.shape() == shape)
            && [&param, &grad, &m1, &m2].iter().all(|t| t.dtype == DType::F32)
            && shape.num_elements() > 0;
        if !fits {
            return composed::<Cube>(param, grad, m1, m2, s);
        }
        let n = len(&param);
        let (Some(p), Some(g), Some(a), Some(b)) = (owned(param), f32_rows(&grad), owned(m1), owned(m2)) else {
            unreachable!("all four were checked to be f32");
        };
        let client = p.client.clone();
        let (count, dim) = elementwise(&client, n);
        let scalars = ScalarsLaunch::new(
            s.beta_1,
            s.beta_2,
            1.0 - s.beta_1,
            1.0 - s.beta_2,
            s.correction_1,
            s.correction_2,
            s.epsilon,
            s.lr,
            s.keep,
        );
        // SAFETY: the four buffers are contiguous with n elements each, and
        // every unit touches its element ABSOLUTE_POS < n only.
        unsafe {
            adamw_kernel::launch_unchecked(
                &client,
                count,
                dim,
                p.clone().into_buffer_arg(),
                g.into_buffer_arg(),
                a.clone().into_buffer_arg(),
                b.clone().into_buffer_arg(),
                scalars,
                n,
            );
        }
        (p, a, b)
    }
}
