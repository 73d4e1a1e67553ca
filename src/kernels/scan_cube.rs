//! The inclusive prefix sum of each row of an int matrix (`flow_ops`'s
//! `scan_rows`) as one CubeCL dispatch on burn's Cube backend: one cube per
//! row, each unit summing a contiguous chunk, the chunk totals scanned in
//! shared memory, then each unit writing its chunk's running sums. The
//! device step runs one or two per propagation step over rows of the flow
//! count; the composed Hillis-Steele scan it replaces was four dispatches
//! per doubling (44 for 2 000 flows), and on the debug preset its device
//! step's flows drifted from the host step's (28 022 against 28 198
//! flow-steps per training step on lavapipe; with this kernel they are
//! the same). Integer sums: exact, in any order.
//!
//! 32-bit signed ints only (burn's Cube default); others, and an empty
//! matrix, take burn's `cumsum`.

use super::cube::empty;
use burn::backend::{DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

/// Units of each row's cube (the WebGPU default limit of a workgroup).
const UNITS: usize = 256;

#[cube(launch)]
fn scan_rows_kernel(x: &[i32], out: &mut [i32], n: usize, #[comptime] units: usize) {
    let base = CUBE_POS_X as usize * n;
    let u = UNIT_POS as usize;
    let chunk = n.div_ceil(units);
    let lo = select(u * chunk < n, u * chunk, n);
    let hi = select(lo + chunk < n, lo + chunk, n);
    let mut sum = 0i32;
    for k in lo..hi {
        sum += x[base + k];
    }
    let mut partial = Shared::new_slice(units);
    partial[u] = sum;
    sync_cube();
    if u == 0 {
        let mut acc = 0i32;
        for k in 0..units {
            let v = partial[k];
            partial[k] = acc;
            acc += v;
        }
    }
    sync_cube();
    let mut acc = partial[u];
    for k in lo..hi {
        acc += x[base + k];
        out[base + k] = acc;
    }
}

/// The row-wise inclusive prefix sums of `x` [R, N], or None where the
/// composed scan must run.
pub(super) fn scan_rows(x: &CubeTensor) -> Option<CubeTensor> {
    let shape = x.shape();
    if shape.len() != 2 || x.dtype != DType::I32 || shape[0] == 0 || shape[1] == 0 {
        return None;
    }
    let (rows, n) = (shape[0], shape[1]);
    let x = into_contiguous(x.clone());
    let out = empty(&x, [rows, n], DType::I32);
    let client = x.client.clone();
    let count = CubeCount::Static(rows as u32, 1, 1);
    let dim = CubeDim::new_1d(UNITS as u32);
    scan_rows_kernel::launch(
        &client,
        count,
        dim,
        x.into_buffer_arg(),
        out.clone().into_buffer_arg(),
        n,
        UNITS,
    );
    Some(out)
}
