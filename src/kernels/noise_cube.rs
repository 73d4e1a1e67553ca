//! The exploration noise of `flow_ops` drawn on the GPU (burn's Cube
//! backend): the same Philox4x32-10 of (flow, step) and Box-Muller as
//! `flow_ops::normals`, one unit per flow, so nothing is uploaded per step.
//!
//! WGSL has no 64-bit integers, so Philox's 32x32 -> 64 products are split
//! into 16-bit halves (`mul_hi`); the words are the host's to the bit. The
//! normals then differ from the host's by the device's `ln`, `sqrt`, `cos`
//! and `sin` rounding (a few ulp; tests/gpu/kernels.rs).

use super::cube::{elementwise, empty};
use super::flow_ops::NOISE_STREAM;
use burn::backend::DType;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// The high 32 bits of a * b.
#[cube]
fn mul_hi(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xFFFFu32;
    let a_hi = a >> 16u32;
    let b_lo = b & 0xFFFFu32;
    let b_hi = b >> 16u32;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let mid = ((a_lo * b_lo) >> 16u32) + (lh & 0xFFFFu32) + (hl & 0xFFFFu32);
    a_hi * b_hi + (lh >> 16u32) + (hl >> 16u32) + (mid >> 16u32)
}

/// A uniform in (0, 1) from the top 23 bits of `w` (`flow_ops::unit`).
#[cube]
fn unit(w: u32) -> f32 {
    // 2^-23.
    (f32::cast_from(w >> 9u32) + 0.5f32) * 1.192_092_9e-7f32
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn noise_kernel(
    out: &mut [f32],
    rows: usize,
    step: u32,
    stream: u32,
    key_lo: u32,
    key_hi: u32,
    sigma: f32,
    z_scale: f32,
) {
    let i = ABSOLUTE_POS;
    if i >= rows {
        terminate!();
    }
    let mut c0 = u32::cast_from(i);
    let mut c1 = step;
    let mut c2 = stream;
    let mut c3 = u32::new(0);
    let mut k0 = key_lo;
    let mut k1 = key_hi;
    #[unroll]
    for _ in 0..10u32 {
        let hi0 = mul_hi(0xD251_1F53u32, c0);
        let lo0 = 0xD251_1F53u32 * c0;
        let hi1 = mul_hi(0xCD9E_8D57u32, c2);
        let lo1 = 0xCD9E_8D57u32 * c2;
        let n0 = hi1 ^ c1 ^ k0;
        let n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E37_79B9u32;
        k1 += 0xBB67_AE85u32;
    }
    let tau = 6.283_185_5f32;
    let r = f32::sqrt(-2.0f32 * f32::ln(unit(c0)));
    let t = tau * unit(c1);
    let rz = f32::sqrt(-2.0f32 * f32::ln(unit(c2)));
    let tz = tau * unit(c3);
    out[3 * i] = sigma * r * f32::cos(t);
    out[3 * i + 1] = sigma * r * f32::sin(t);
    out[3 * i + 2] = z_scale * rz * f32::cos(tz);
}

/// The noise [rows, 3] of `flow_ops::noise_rows` on `like`'s device.
pub(super) fn noise(like: &CubeTensor, rows: usize, seed: u64, step: u32, sigma: f32, on_z: bool) -> CubeTensor {
    let out = empty(like, [rows, 3], DType::F32);
    if rows == 0 {
        return out;
    }
    let client = out.client.clone();
    let (count, dim) = elementwise(&client, rows);
    let z_scale = if on_z { sigma } else { 0.0 };
    // SAFETY: unit i < rows writes elements 3i..3i+3 of the [rows, 3]
    // contiguous output only.
    unsafe {
        noise_kernel::launch_unchecked(
            &client,
            count,
            dim,
            out.clone().into_buffer_arg(),
            rows,
            step,
            NOISE_STREAM,
            seed as u32,
            (seed >> 32) as u32,
            sigma,
            z_scale,
        );
    }
    out
}
