//! `WallOps` for burn's Cube backend (Vulkan, wgpu): the wall rule of
//! `flow::rules::wall` as one elementwise pass forward and one backward,
//! one unit per coordinate of [N, 3].
//!
//! The rule's float operations, in its order: x and y reflected (v < -1
//! -> -v - 2, v > 1 -> -v + 2) when reflection is on, then every
//! coordinate clamped as burn's clamp does it (above 1 -> 1, then below -1
//! -> -1; NaN passes). The gradient is the composed rule's: -1 through a
//! reflection, 0 where the clamp cut the value, 1 elsewhere (a value of
//! exactly +-1 passes, as in burn's clamp). Non-f32 and empty tensors
//! answer None (the composed rule runs).

use super::cube::{elementwise, empty, f32_rows, len};
use super::walls::WallOps;
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// Coordinate `v` of column `c` reflected as the rule says, and the
/// derivative of that (-1 or 1).
#[cube]
fn reflect(v: f32, c: usize, #[comptime] reflection: bool) -> (f32, f32) {
    let mut w = v;
    let mut slope = 1.0f32;
    if reflection && c < 2 {
        if v < -1.0f32 {
            w = -v - 2.0f32;
            slope = -1.0f32;
        } else if v > 1.0f32 {
            w = -v + 2.0f32;
            slope = -1.0f32;
        }
    }
    (w, slope)
}

#[cube(launch_unchecked)]
fn wall_kernel(raw: &[f32], out: &mut [f32], elements: usize, #[comptime] reflection: bool) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let (w, _) = reflect(raw[i], i % 3, reflection);
    let w = select(w > 1.0f32, 1.0f32, w);
    out[i] = select(w < -1.0f32, -1.0f32, w);
}

#[cube(launch_unchecked)]
fn wall_backward_kernel(raw: &[f32], grad: &[f32], d: &mut [f32], elements: usize, #[comptime] reflection: bool) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let (w, slope) = reflect(raw[i], i % 3, reflection);
    // Two comparisons, as the clamp's masks: a NaN is not cut (a range's
    // `contains` would cut it), and the range type is not a cube type.
    #[allow(clippy::manual_range_contains)]
    let cut = w > 1.0f32 || w < -1.0f32;
    d[i] = select(cut, 0.0f32, slope * grad[i]);
}

/// `raw` as contiguous f32 [N, 3] with N > 0, or None.
fn positions(raw: &CubeTensor) -> Option<CubeTensor> {
    let s = raw.shape();
    (s.len() == 2 && s[1] == 3 && s[0] > 0).then_some(())?;
    f32_rows(raw)
}

impl WallOps for Cube {
    fn fused_wall(raw: CubeTensor, reflection: bool) -> Option<CubeTensor> {
        let raw = positions(&raw)?;
        let n = len(&raw);
        let out = empty(&raw, raw.shape(), DType::F32);
        let client = raw.client.clone();
        let (count, dim) = elementwise(&client, n);
        // SAFETY: both buffers are contiguous with n elements; unit i < n
        // touches element i only.
        unsafe {
            wall_kernel::launch_unchecked(
                &client,
                count,
                dim,
                raw.into_buffer_arg(),
                out.clone().into_buffer_arg(),
                n,
                reflection,
            );
        }
        Some(out)
    }

    fn fused_wall_backward(raw: CubeTensor, grad: CubeTensor, reflection: bool) -> Option<CubeTensor> {
        let raw = positions(&raw)?;
        let n = len(&raw);
        if grad.shape() != raw.shape() {
            return None;
        }
        let grad = f32_rows(&grad)?;
        let d = empty(&raw, raw.shape(), DType::F32);
        let client = raw.client.clone();
        let (count, dim) = elementwise(&client, n);
        // SAFETY: as in `fused_wall`; grad has raw's shape (checked).
        unsafe {
            wall_backward_kernel::launch_unchecked(
                &client,
                count,
                dim,
                raw.into_buffer_arg(),
                grad.into_buffer_arg(),
                d.clone().into_buffer_arg(),
                n,
                reflection,
            );
        }
        Some(d)
    }
}
