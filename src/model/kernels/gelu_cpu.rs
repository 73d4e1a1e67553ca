//! GELU on host slices: the loop the Flex backend runs for `GeluOps`.
//!
//! y = GELU(x) elementwise and, for training, GELU'(x) beside it in the
//! same pass, so the backward is one multiplication. Split over rayon's
//! pool in blocks; each block's loop is compiled for AVX-512 and AVX2 as
//! well as the baseline (`multiversion`), so the polynomials of `math.rs`
//! run 16 or 8 lanes wide.

use super::math::gelu_with_derivative;
use multiversion::multiversion;
use rayon::prelude::*;

/// Below this many elements the work is done on the calling thread.
const PARALLEL_MIN: usize = 32 * 1024;

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn gelu_block(x: &[f32], y: &mut [f32]) {
    for (a, b) in x.iter().zip(y.iter_mut()) {
        *b = gelu_with_derivative(*a).0;
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn gelu_saving_block(x: &[f32], y: &mut [f32], dy: &mut [f32]) {
    for ((a, b), d) in x.iter().zip(y.iter_mut()).zip(dy.iter_mut()) {
        (*b, *d) = gelu_with_derivative(*a);
    }
}

/// Elements per parallel task.
const GELU_PER_TASK: usize = 16 * 1024;

/// GELU(x), elementwise.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    if x.len() >= PARALLEL_MIN {
        y.par_chunks_mut(GELU_PER_TASK)
            .zip(x.par_chunks(GELU_PER_TASK))
            .for_each(|(y, x)| gelu_block(x, y));
    } else {
        gelu_block(x, &mut y);
    }
    y
}

/// (GELU(x), GELU'(x)), elementwise.
pub fn gelu_saving(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0.0f32; x.len()];
    let mut dy = vec![0.0f32; x.len()];
    if x.len() >= PARALLEL_MIN {
        y.par_chunks_mut(GELU_PER_TASK)
            .zip(dy.par_chunks_mut(GELU_PER_TASK))
            .zip(x.par_chunks(GELU_PER_TASK))
            .for_each(|((y, d), x)| gelu_saving_block(x, y, d));
    } else {
        gelu_saving_block(x, &mut y, &mut dy);
    }
    (y, dy)
}
