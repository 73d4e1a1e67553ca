//! `SegmentOps` for burn's Cube backend (Vulkan, wgpu): the device
//! collection's segment softmax in parallel and without float atomics.
//!
//! The flows are grouped by key as CSR (`rows_cube::csr`: an integer-atomic
//! count, one scan, an integer-atomic fill, each group's list sorted into
//! flow order); then one unit per group takes its max weight, the
//! denominator and the weighted sum in flow order (so the sums do not
//! depend on scheduling), one unit per flow its probability, and the
//! backward one unit per flow. Seven dispatches forward, one backward,
//! against burn's 1-D `select_assign`, one unit for all flows.
//!
//! Non-f32 values, keys other than 32-bit and empty inputs answer None
//! (the composed collection runs).

// `#[cube]` bodies have no iterators: their loops index.
#![allow(clippy::needless_range_loop)]
use super::cube::{elementwise, empty, f32_rows, len};
use super::rows_cube::{csr, index};
use super::segment::{SegmentOps, composed_backward};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Cube, DType};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// Per group g: v = sum p_i e_i over its flows (0 if none), and the max
/// weight and the denominator sum exp(w_i - max) that `prob_kernel` needs.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn group_kernel(
    e: &[f32],
    c: &[f32],
    order: &[u32],
    start: &[u32],
    v: &mut [f32],
    top: &mut [f32],
    den: &mut [f32],
    groups: usize,
) {
    let g = ABSOLUTE_POS;
    if g >= groups {
        terminate!();
    }
    let lo = start[g] as usize;
    let hi = start[g + 1] as usize;
    // w >= 0: zero bounds the max from below.
    let mut m = 0.0f32;
    for k in lo..hi {
        let i = order[k] as usize;
        m = f32::max(m, f32::abs(e[i]) * c[i]);
    }
    let mut d = 0.0f32;
    let mut n = 0.0f32;
    for k in lo..hi {
        let i = order[k] as usize;
        let x = f32::exp(f32::abs(e[i]) * c[i] - m);
        d += x;
        n += x * e[i];
    }
    let mut out = 0.0f32;
    if hi > lo {
        out = n / d;
    }
    v[g] = out;
    top[g] = m;
    den[g] = d;
}

/// p_i = exp(w_i - max_key) / den_key.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn prob_kernel<I: Int>(
    e: &[f32],
    c: &[f32],
    key: &[I],
    top: &[f32],
    den: &[f32],
    p: &mut [f32],
    m: usize,
    #[define(I)] _index: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= m {
        terminate!();
    }
    let g = usize::cast_from(key[i]);
    p[i] = f32::exp(f32::abs(e[i]) * c[i] - top[g]) / den[g];
}

/// dL/de_i = p_i (1 + (e_i - v_key) c_i sign(e_i)) dL/dv_key.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_kernel<I: Int>(
    e: &[f32],
    c: &[f32],
    key: &[I],
    p: &[f32],
    v: &[f32],
    grad: &[f32],
    out: &mut [f32],
    m: usize,
    #[define(I)] _index: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= m {
        terminate!();
    }
    let g = usize::cast_from(key[i]);
    let x = e[i];
    let mut sign = 0.0f32;
    if x > 0.0f32 {
        sign = 1.0f32;
    }
    if x < 0.0f32 {
        sign = -1.0f32;
    }
    out[i] = p[i] * (1.0f32 + (x - v[g]) * c[i] * sign) * grad[g];
}

impl SegmentOps for Cube {
    fn segment_softmax(
        e: CubeTensor,
        c: CubeTensor,
        key: CubeTensor,
        n_keys: usize,
    ) -> Option<(CubeTensor, CubeTensor)> {
        let m = len(&e);
        if m == 0 || n_keys == 0 || len(&c) != m || e.dtype != DType::F32 || c.dtype != DType::F32 {
            return None;
        }
        let key = index(&key)?;
        if len(&key) != m {
            return None;
        }
        let (e, c) = (f32_rows(&e)?, f32_rows(&c)?);
        let buf = |t: &CubeTensor| t.clone().into_buffer_arg();
        let (start, order) = csr(&key, n_keys);
        let v = empty(&e, [n_keys], DType::F32);
        let top = empty(&e, [n_keys], DType::F32);
        let den = empty(&e, [n_keys], DType::F32);
        let p = empty(&e, [m], DType::F32);
        let client = e.client.clone();
        let index_type = dtype_to_storage_type(key.dtype);
        let (count, dim) = elementwise(&client, n_keys);
        let args = (buf(&v), buf(&top), buf(&den));
        group_kernel::launch(
            &client,
            count,
            dim,
            buf(&e),
            buf(&c),
            buf(&order),
            buf(&start),
            args.0,
            args.1,
            args.2,
            n_keys,
        );
        let (count, dim) = elementwise(&client, m);
        let args = (buf(&key), buf(&top), buf(&den), buf(&p));
        prob_kernel::launch(
            &client,
            count,
            dim,
            buf(&e),
            buf(&c),
            args.0,
            args.1,
            args.2,
            args.3,
            m,
            index_type,
        );
        Some((v, p))
    }

    fn segment_softmax_backward(
        e: CubeTensor,
        c: CubeTensor,
        key: CubeTensor,
        p: CubeTensor,
        v: CubeTensor,
        grad: CubeTensor,
    ) -> CubeTensor {
        let m = len(&e);
        let inputs = (f32_rows(&e), f32_rows(&c), index(&key), f32_rows(&grad));
        let (Some(e), Some(c), Some(key), Some(grad)) = inputs else {
            return composed_backward::<Cube>(e, c, key, p, v, grad);
        };
        let buf = |t: &CubeTensor| t.clone().into_buffer_arg();
        let out = empty(&e, [m], DType::F32);
        let client = e.client.clone();
        let index_type = dtype_to_storage_type(key.dtype);
        let (count, dim) = elementwise(&client, m);
        let args = (buf(&p), buf(&v), buf(&grad), buf(&out));
        backward_kernel::launch(
            &client,
            count,
            dim,
            buf(&e),
            buf(&c),
            buf(&key),
            args.0,
            args.1,
            args.2,
            args.3,
            m,
            index_type,
        );
        out
    }
}
