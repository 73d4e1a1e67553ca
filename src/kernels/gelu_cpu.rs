//! GELU on host slices: the loop the Flex backend runs for `GeluOps`.
//!
//! y = GELU(x) elementwise and, for training, GELU'(x) beside it in the
//! same pass, so the backward is one multiplication. Split over rayon's
//! pool in blocks; each block's loop is compiled for AVX-512 and AVX2 as
//! well as the baseline (`multiversion`), so the polynomials of `math.rs`
//! run 16 or 8 lanes wide.

use super::math::gelu_with_derivative;
use super::uninit::{assume_init, uninit};
use multiversion::multiversion;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many elements the work is done on the calling thread.
const PARALLEL_MIN: usize = 32 * 1024;

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn gelu_block(x: &[f32], y: &mut [MaybeUninit<f32>]) {
    for (a, b) in x.iter().zip(y.iter_mut()) {
        b.write(gelu_with_derivative(*a).0);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn gelu_saving_block(x: &[f32], y: &mut [MaybeUninit<f32>], dy: &mut [MaybeUninit<f32>]) {
    for ((a, b), d) in x.iter().zip(y.iter_mut()).zip(dy.iter_mut()) {
        let (v, dv) = gelu_with_derivative(*a);
        b.write(v);
        d.write(dv);
    }
}

/// Elements per parallel task.
const GELU_PER_TASK: usize = 16 * 1024;

/// GELU(x), elementwise.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let mut y = uninit(x.len());
    if x.len() >= PARALLEL_MIN {
        y.par_chunks_mut(GELU_PER_TASK)
            .zip(x.par_chunks(GELU_PER_TASK))
            .for_each(|(y, x)| gelu_block(x, y));
    } else {
        gelu_block(x, &mut y);
    }
    // SAFETY: gelu_block wrote every element.
    unsafe { assume_init(y) }
}

/// (GELU(x), GELU'(x)), elementwise.
pub fn gelu_saving(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut y = uninit(x.len());
    let mut dy = uninit(x.len());
    if x.len() >= PARALLEL_MIN {
        y.par_chunks_mut(GELU_PER_TASK)
            .zip(dy.par_chunks_mut(GELU_PER_TASK))
            .zip(x.par_chunks(GELU_PER_TASK))
            .for_each(|((y, d), x)| gelu_saving_block(x, y, d));
    } else {
        gelu_saving_block(x, &mut y, &mut dy);
    }
    // SAFETY: gelu_saving_block wrote every element of both.
    unsafe { (assume_init(y), assume_init(dy)) }
}
