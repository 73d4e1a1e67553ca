//! Output buffers the kernels write in full: allocated without clearing.
//!
//! Clearing a buffer that a kernel then overwrites is a serial pass over
//! memory on the calling thread before the parallel work starts (about a
//! tenth of a training step's serial time). The kernels write through
//! `MaybeUninit` instead, and the buffer becomes a `Vec<f32>` once every
//! element is written.

use std::mem::{ManuallyDrop, MaybeUninit};

/// `n` elements not yet written.
pub fn uninit(n: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: MaybeUninit needs no initialisation.
    unsafe { v.set_len(n) };
    v
}

/// The buffer as f32 values.
///
/// # Safety
/// Every element must have been written.
pub unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<f32> has f32's layout; the caller vouches that
    // every element is initialised; the allocation is handed over whole.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}
