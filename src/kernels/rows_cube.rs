//! `RowOps` for burn's Cube backend (Vulkan, wgpu): the row gather of the
//! flow compaction and its backward as CubeCL kernels.
//!
//! The backward is the CPU's (`rows.rs`) on the device, without float
//! atomics (WGSL has none for f32, and their order would make the sums
//! differ from run to run): the inverse of the index is built as CSR (which
//! output rows each source row went to) by an integer-atomic count, one
//! prefix sum and an integer-atomic fill, each source row's list is sorted
//! into output order, and every element of the gradient is then written
//! once: the sum of its output rows in that order, or zero. The result is
//! the CPU's to the bit and does not depend on scheduling.
//!
//! Six dispatches (clear, count, scan, fill, sort, sum), each over the
//! index or the [rows, D] gradient; burn's default (`select_assign` with
//! `Add`) is two, but loops over every index in one unit per column.
//! Non-f32 values, index types other than 32-bit and empty shapes take the
//! default bodies.

// `#[cube]` bodies have no iterators: their loops index.
#![allow(clippy::needless_range_loop)]
use super::cube::{elementwise, empty, f32_rows, len};
use super::rows::{RowOps, scatter_add};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::zeros_client;
use burn_cubecl::tensor::CubeTensor;

/// Units of the one cube that runs the prefix sum (the WebGPU default
/// limit of a workgroup).
const SCAN_UNITS: usize = 256;

/// out[i, j] = src[idx[i], j]; an index out of range reads zero.
#[cube(launch)]
fn gather_kernel<I: Int>(
    src: &[f32],
    idx: &[I],
    out: &mut [f32],
    elements: usize,
    d: usize,
    rows: usize,
    #[define(I)] _index: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let s = usize::cast_from(idx[i / d]);
    let mut v = 0.0;
    if s < rows {
        v = src[s * d + i % d];
    }
    out[i] = v;
}

/// counts[s] = how many output rows read source row s (counts cleared).
#[cube(launch)]
fn count_kernel<I: Int>(idx: &[I], counts: &[Atomic<u32>], m: usize, rows: usize, #[define(I)] _index: ElemType) {
    let i = ABSOLUTE_POS;
    if i >= m {
        terminate!();
    }
    let s = usize::cast_from(idx[i]);
    if s < rows {
        counts[s].fetch_add(1u32);
    }
}

/// start[s] = the sum of counts[..s] for s in 0..=rows, and the same into
/// counts (the fill's cursors). One cube: each unit sums a chunk, the
/// chunk totals are scanned in shared memory, each unit writes its chunk.
#[cube(launch)]
fn scan_kernel(counts: &mut [u32], start: &mut [u32], rows: usize, #[comptime] units: usize) {
    let u = UNIT_POS as usize;
    let chunk = rows.div_ceil(units);
    let lo = select(u * chunk < rows, u * chunk, rows);
    let hi = select(lo + chunk < rows, lo + chunk, rows);
    let mut sum = 0u32;
    for k in lo..hi {
        sum += counts[k];
    }
    let mut partial = Shared::new_slice(units);
    partial[u] = sum;
    sync_cube();
    if u == 0 {
        let mut acc = 0u32;
        for k in 0..units {
            let v = partial[k];
            partial[k] = acc;
            acc += v;
        }
        start[rows] = acc;
    }
    sync_cube();
    let mut acc = partial[u];
    for k in lo..hi {
        let c = counts[k];
        start[k] = acc;
        counts[k] = acc;
        acc += c;
    }
}

/// order[cursor[s]++] = i for every output row i of source row s.
#[cube(launch)]
fn fill_kernel<I: Int>(
    idx: &[I],
    cursor: &[Atomic<u32>],
    order: &mut [u32],
    m: usize,
    rows: usize,
    #[define(I)] _index: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= m {
        terminate!();
    }
    let s = usize::cast_from(idx[i]);
    if s < rows {
        let at = cursor[s].fetch_add(1u32);
        order[at as usize] = i as u32;
    }
}

/// Each source row's output rows into increasing order (insertion sort:
/// the lists are a parent's few children).
#[cube(launch)]
fn sort_kernel(order: &mut [u32], start: &[u32], rows: usize) {
    let s = ABSOLUTE_POS;
    if s >= rows {
        terminate!();
    }
    let lo = start[s] as usize;
    let hi = start[s + 1] as usize;
    for a in lo + 1..hi {
        let v = order[a];
        let mut b = a;
        loop {
            if b <= lo {
                break;
            }
            let w = order[b - 1];
            if w <= v {
                break;
            }
            order[b] = w;
            b -= 1;
        }
        order[b] = v;
    }
}

/// out[s, j] = the sum over source row s's output rows i, in order, of
/// grad[i, j]; zero where there are none.
#[cube(launch)]
fn sum_kernel(grad: &[f32], order: &[u32], start: &[u32], out: &mut [f32], elements: usize, d: usize) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let s = i / d;
    let j = i % d;
    let lo = start[s] as usize;
    let hi = start[s + 1] as usize;
    let mut acc = 0.0;
    if lo < hi {
        acc = grad[order[lo] as usize * d + j];
        for k in lo + 1..hi {
            acc += grad[order[k] as usize * d + j];
        }
    }
    out[i] = acc;
}

/// `idx` contiguous if it is a 1-D tensor of a 32-bit integer type.
pub(super) fn index(idx: &CubeTensor) -> Option<CubeTensor> {
    let fits = idx.shape().len() == 1 && matches!(idx.dtype, DType::I32 | DType::U32);
    fits.then(|| into_contiguous(idx.clone()))
}

/// Rows and width of a 2-D tensor.
fn matrix(t: &CubeTensor) -> Option<(usize, usize)> {
    let s = t.shape();
    (s.len() == 2).then(|| (s[0], s[1]))
}

fn gather(t: &CubeTensor, idx: &CubeTensor) -> Option<CubeTensor> {
    let (rows, d) = matrix(t)?;
    let idx = index(idx)?;
    let m = len(&idx);
    if m * d == 0 {
        return None;
    }
    let t = f32_rows(t)?;
    let out = empty(&t, [m, d], DType::F32);
    let client = t.client.clone();
    let (count, dim) = elementwise(&client, m * d);
    let index_type = dtype_to_storage_type(idx.dtype);
    let args = (
        t.into_buffer_arg(),
        idx.into_buffer_arg(),
        out.clone().into_buffer_arg(),
    );
    gather_kernel::launch(&client, count, dim, args.0, args.1, args.2, m * d, d, rows, index_type);
    Some(out)
}

/// The inverse of the index `idx` (contiguous, 1-D, 32-bit, m > 0 rows)
/// over `rows` buckets, as CSR: `start` [rows + 1] and `order` [m], the
/// positions i with idx[i] = s in increasing order at start[s]..start[s +
/// 1]; indices out of range are left out. Four dispatches after a clear.
pub(super) fn csr(idx: &CubeTensor, rows: usize) -> (CubeTensor, CubeTensor) {
    let m = len(idx);
    let client = idx.client.clone();
    let index_type = dtype_to_storage_type(idx.dtype);
    let counts = zeros_client(client.clone(), idx.device.clone(), [rows].into(), DType::U32);
    let start = empty(idx, [rows + 1], DType::U32);
    let order = empty(idx, [m], DType::U32);
    let buf = |t: &CubeTensor| t.clone().into_buffer_arg();
    let (count, dim) = elementwise(&client, m);
    count_kernel::launch(&client, count, dim, buf(idx), buf(&counts), m, rows, index_type);
    let one = (CubeCount::Static(1, 1, 1), CubeDim::new_1d(SCAN_UNITS as u32));
    scan_kernel::launch(&client, one.0, one.1, buf(&counts), buf(&start), rows, SCAN_UNITS);
    let (count, dim) = elementwise(&client, m);
    fill_kernel::launch(
        &client,
        count,
        dim,
        buf(idx),
        buf(&counts),
        buf(&order),
        m,
        rows,
        index_type,
    );
    let (count, dim) = elementwise(&client, rows);
    sort_kernel::launch(&client, count, dim, buf(&order), buf(&start), rows);
    (start, order)
}

/// The gradient of a gather by `idx` from `rows` rows, from the inverse
/// of the index when `inverse` has it (else built here); None where the
/// composed body must run.
fn gather_backward(
    grad: &CubeTensor,
    idx: &CubeTensor,
    rows: usize,
    inverse: Option<(&CubeTensor, &CubeTensor)>,
) -> Option<CubeTensor> {
    let (m, d) = matrix(grad)?;
    let idx = index(idx)?;
    if len(&idx) != m || d * rows == 0 || grad.dtype != DType::F32 {
        return None;
    }
    let client = grad.client.clone();
    if m == 0 {
        // An empty gather: nothing flows back.
        return Some(zeros_client(client, grad.device.clone(), [rows, d].into(), DType::F32));
    }
    let grad = f32_rows(grad)?;
    let (start, order) = match inverse {
        Some((start, order)) if len(start) == rows + 1 && len(order) == m => (start.clone(), order.clone()),
        _ => csr(&idx, rows),
    };
    let out = empty(&grad, [rows, d], DType::F32);
    let buf = |t: &CubeTensor| t.clone().into_buffer_arg();
    let (count, dim) = elementwise(&client, rows * d);
    let args = (buf(&grad), buf(&order), buf(&start), buf(&out));
    sum_kernel::launch(&client, count, dim, args.0, args.1, args.2, args.3, rows * d, d);
    Some(out)
}

impl RowOps for Cube {
    fn gather_rows(t: CubeTensor, idx: CubeTensor) -> CubeTensor {
        gather(&t, &idx).unwrap_or_else(|| Cube::float_select(t, 0, idx))
    }

    fn gather_rows_backward(grad: CubeTensor, idx: CubeTensor, rows: usize) -> CubeTensor {
        gather_backward(&grad, &idx, rows, None).unwrap_or_else(|| scatter_add::<Cube>(grad, idx, rows))
    }

    fn gather_rows_inverse(like: CubeTensor, idx: CubeTensor) -> Option<(CubeTensor, CubeTensor)> {
        let (rows, _) = matrix(&like)?;
        let idx = index(&idx)?;
        (len(&idx) > 0 && rows > 0).then(|| csr(&idx, rows))
    }

    fn gather_rows_backward_using(
        grad: CubeTensor,
        idx: CubeTensor,
        start: CubeTensor,
        order: CubeTensor,
        rows: usize,
    ) -> CubeTensor {
        gather_backward(&grad, &idx, rows, Some((&start, &order)))
            .unwrap_or_else(|| scatter_add::<Cube>(grad, idx, rows))
    }
}
