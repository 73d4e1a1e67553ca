//! `BoundOps` for burn's Cube backend (Vulkan, wgpu): a [`Bound`] (the
//! wall rule, the displacement's clamp) as one elementwise pass forward
//! and one backward, one unit per value, with the composed ops' float
//! operations in their order (`walls.rs`). Non-f32 and empty tensors
//! answer None (the composed ops run).

use super::cube::{elementwise, empty, f32_rows, len};
use super::walls::{Bound, BoundOps};
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// Value `x` of column `c`, scaled by `s` and reflected at +-`m` as the
/// rule says, and the derivative of that (+-s).
#[cube]
fn scaled(x: f32, c: usize, s: f32, m: f32, #[comptime] reflect: bool) -> (f32, f32) {
    let v = x * s;
    let mut w = v;
    let mut slope = s;
    if reflect && c < 2 {
        if v < -m {
            w = -v - 2.0f32 * m;
            slope = -s;
        } else if v > m {
            w = -v + 2.0f32 * m;
            slope = -s;
        }
    }
    (w, slope)
}

#[cube(launch_unchecked)]
fn bound_kernel(x: &[f32], out: &mut [f32], elements: usize, s: f32, m: f32, #[comptime] reflect: bool) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let (w, _) = scaled(x[i], i % 3, s, m, reflect);
    let w = select(w > m, m, w);
    out[i] = select(w < -m, -m, w);
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn bound_backward_kernel(
    x: &[f32],
    grad: &[f32],
    d: &mut [f32],
    elements: usize,
    s: f32,
    m: f32,
    #[comptime] reflect: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let (w, slope) = scaled(x[i], i % 3, s, m, reflect);
    // Two comparisons, as the clamp's masks: a NaN is not cut (a range's
    // `contains` would cut it), and the range type is not a cube type.
    #[allow(clippy::manual_range_contains)]
    let cut = w > m || w < -m;
    d[i] = select(cut, 0.0f32, slope * grad[i]);
}

impl BoundOps for Cube {
    fn fused_bound(x: CubeTensor, bound: Bound) -> Option<CubeTensor> {
        let n = len(&x);
        if n == 0 {
            return None;
        }
        let x = f32_rows(&x)?;
        let out = empty(&x, x.shape(), DType::F32);
        let client = x.client.clone();
        let (count, dim) = elementwise(&client, n);
        // SAFETY: both buffers are contiguous with n elements; unit i < n
        // touches element i only.
        unsafe {
            bound_kernel::launch_unchecked(
                &client,
                count,
                dim,
                x.into_buffer_arg(),
                out.clone().into_buffer_arg(),
                n,
                bound.scale,
                bound.limit,
                bound.reflect,
            );
        }
        Some(out)
    }

    fn fused_bound_backward(x: CubeTensor, grad: CubeTensor, bound: Bound) -> Option<CubeTensor> {
        let n = len(&x);
        if n == 0 || grad.shape() != x.shape() {
            return None;
        }
        let (x, grad) = (f32_rows(&x)?, f32_rows(&grad)?);
        let d = empty(&x, x.shape(), DType::F32);
        let client = x.client.clone();
        let (count, dim) = elementwise(&client, n);
        // SAFETY: as in `fused_bound`; grad has x's shape (checked).
        unsafe {
            bound_backward_kernel::launch_unchecked(
                &client,
                count,
                dim,
                x.into_buffer_arg(),
                grad.into_buffer_arg(),
                d.clone().into_buffer_arg(),
                n,
                bound.scale,
                bound.limit,
                bound.reflect,
            );
        }
        Some(d)
    }
}
