//! `ScaleClampOps` for burn's Cube backend (Vulkan, wgpu): clamp(x s, -m,
//! m) as one elementwise pass forward and one backward. The clamp is
//! burn's (above m -> m, then below -m -> -m; NaN passes); the gradient
//! is the composed one's (s dL/dy where x s lies in [-m, m], else 0).
//! Non-f32 and empty tensors answer None (the caller composes).

use super::clamp::ScaleClampOps;
use super::cube::{elementwise, empty, f32_rows, len};
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

#[cube(launch_unchecked)]
fn scale_clamp_kernel(x: &[f32], y: &mut [f32], elements: usize, s: f32, m: f32) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let v = x[i] * s;
    let v = select(v > m, m, v);
    y[i] = select(v < -m, -m, v);
}

#[cube(launch_unchecked)]
fn scale_clamp_backward_kernel(x: &[f32], grad: &[f32], d: &mut [f32], elements: usize, s: f32, m: f32) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let v = x[i] * s;
    // Two comparisons, as the clamp's masks (a NaN is not cut).
    #[allow(clippy::manual_range_contains)]
    let cut = v > m || v < -m;
    d[i] = select(cut, 0.0f32, grad[i] * s);
}

impl ScaleClampOps for Cube {
    fn fused_scale_clamp(x: CubeTensor, s: f32, m: f32) -> Option<CubeTensor> {
        let n = len(&x);
        if n == 0 {
            return None;
        }
        let x = f32_rows(&x)?;
        let y = empty(&x, x.shape(), DType::F32);
        let client = x.client.clone();
        let (count, dim) = elementwise(&client, n);
        // SAFETY: both buffers are contiguous with n elements; unit i < n
        // touches element i only.
        unsafe {
            scale_clamp_kernel::launch_unchecked(
                &client,
                count,
                dim,
                x.into_buffer_arg(),
                y.clone().into_buffer_arg(),
                n,
                s,
                m,
            );
        }
        Some(y)
    }

    fn fused_scale_clamp_backward(x: CubeTensor, grad: CubeTensor, s: f32, m: f32) -> Option<CubeTensor> {
        let n = len(&x);
        if n == 0 || grad.shape() != x.shape() {
            return None;
        }
        let (x, grad) = (f32_rows(&x)?, f32_rows(&grad)?);
        let d = empty(&x, x.shape(), DType::F32);
        let client = x.client.clone();
        let (count, dim) = elementwise(&client, n);
        // SAFETY: as in `fused_scale_clamp`; grad has x's shape (checked).
        unsafe {
            scale_clamp_backward_kernel::launch_unchecked(
                &client,
                count,
                dim,
                x.into_buffer_arg(),
                grad.into_buffer_arg(),
                d.clone().into_buffer_arg(),
                n,
                s,
                m,
            );
        }
        Some(d)
    }
}
