//! `GeluOps` for burn's Cube backend (Vulkan, wgpu): the exact GELU as
//! one CubeCL pass, from the erfc fit of `math.rs` (`cube::normal_cdf`).
//!
//! As on the CPU, the training forward writes GELU'(x) = Phi(x) + x phi(x)
//! beside GELU(x), so the backward is one multiplication (burn's
//! `float_mul`) and no erf or exp is evaluated twice. Non-f32 tensors take
//! burn's GELU and its backward, through the same bodies as the default.

use super::cube::{FRAC_1_SQRT_2PI, elementwise, empty, f32_rows, gauss, len, normal_cdf};
use super::gelu::GeluOps;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

#[cube(launch_unchecked)]
fn gelu_kernel(x: &[f32], y: &mut [f32], elements: usize) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let v = x[i];
    y[i] = v * normal_cdf(v, gauss(v));
}

#[cube(launch_unchecked)]
fn gelu_saving_kernel(x: &[f32], y: &mut [f32], dy: &mut [f32], elements: usize) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let v = x[i];
    let e = gauss(v);
    let cdf = normal_cdf(v, e);
    y[i] = v * cdf;
    // phi(x) = e^{-x^2/2} / sqrt(2 pi).
    dy[i] = cdf + v * e * FRAC_1_SQRT_2PI;
}

/// GELU(x) and, when `save`, GELU'(x); None for non-f32 or empty `x`.
fn run(x: &CubeTensor, save: bool) -> Option<(CubeTensor, Option<CubeTensor>)> {
    let n = len(x);
    if n == 0 {
        return None;
    }
    let shape = x.shape();
    let x = f32_rows(x)?;
    let y = empty(&x, shape.clone(), DType::F32);
    let client = x.client.clone();
    let (count, dim) = elementwise(&client, n);
    // SAFETY: x, y (and dy) are contiguous with n elements; every unit
    // touches element ABSOLUTE_POS < n only.
    unsafe {
        if save {
            let dy = empty(&x, shape, DType::F32);
            let args = (y.clone().into_buffer_arg(), dy.clone().into_buffer_arg());
            gelu_saving_kernel::launch_unchecked(&client, count, dim, x.into_buffer_arg(), args.0, args.1, n);
            Some((y, Some(dy)))
        } else {
            gelu_kernel::launch_unchecked(&client, count, dim, x.into_buffer_arg(), y.clone().into_buffer_arg(), n);
            Some((y, None))
        }
    }
}

impl GeluOps for Cube {
    fn fused_gelu(x: CubeTensor) -> CubeTensor {
        match run(&x, false) {
            Some((y, _)) => y,
            None => Cube::gelu(x),
        }
    }

    fn fused_gelu_saving(x: CubeTensor) -> (CubeTensor, CubeTensor) {
        match run(&x, true) {
            Some((y, Some(dy))) => (y, dy),
            // The default body's pair: burn's GELU and x for its backward.
            _ => (Cube::gelu(x.clone()), x),
        }
    }

    fn fused_gelu_backward(saved: CubeTensor, grad: CubeTensor) -> CubeTensor {
        // An empty f32 x was saved as itself; GELU' of nothing is nothing.
        if saved.dtype == DType::F32 {
            Cube::float_mul(grad, saved)
        } else {
            Cube::gelu_backward(saved, grad)
        }
    }
}
