//! Matrix products on host memory, split over the cores by us.
//!
//! Why: burn's Flex backend calls the `gemm` crate with its own rayon
//! parallelism, which on two cores gains little and on some of our shapes
//! loses (figures in docs/BENCHMARKS.md). Here the output is cut into one block per thread,
//! along its longer side, and each block is one single-threaded `gemm` call:
//! no block reads what another writes, so the blocks need no reduction and
//! the result does not depend on the split.

use gemm::Parallelism;

/// Below this many multiply-adds one call on the calling thread is faster.
const PARALLEL_MIN_MACS: usize = 1 << 21;

/// A strided row-major view of an f32 matrix: element (i, j) is at
/// `ptr + i * rs + j * cs`.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub ptr: *const f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

/// The output pointer, handed to the block tasks: each writes its own
/// disjoint block.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every task writes a disjoint block of the output (see `matmul`),
// and the inputs are only read.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}
#[derive(Clone, Copy)]
struct In(View);
unsafe impl Send for In {}
unsafe impl Sync for In {}

/// One single-threaded `gemm` call: out[m, n] (row stride `out_rs`) = a[m, k] b[k, n].
///
/// # Safety
/// The views and `out` must be valid for the given shapes and strides.
unsafe fn gemm_block(out: *mut f32, out_rs: isize, a: View, b: View) {
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            out,
            1,
            out_rs,
            false,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// a [m, k] x b [k, n] into a new row-major [m, n] buffer.
///
/// # Safety
/// `a` and `b` must be valid views of f32 data for their shapes and
/// strides, alive for the call; `a.cols == b.rows`.
pub unsafe fn matmul(a: View, b: View) -> Vec<f32> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert_eq!(k, b.rows);
    // gemm writes every element (read_dst = false), so the buffer is not
    // cleared first: it is written through a raw pointer, then its length set.
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    let threads = rayon::current_num_threads().max(1);
    if threads == 1 || m * n * k < PARALLEL_MIN_MACS {
        // SAFETY: the caller's views; `out` has room for [m, n].
        unsafe {
            gemm_block(out.as_mut_ptr(), n as isize, a, b);
            out.set_len(m * n);
        }
        return out;
    }
    let dst = Out(out.as_mut_ptr());
    let (a, b) = (In(a), In(b));
    if m >= n {
        // Blocks of rows: rows [r0, r1) of a and of the output.
        let per = m.div_ceil(threads);
        rayon::scope(|s| {
            for r0 in (0..m).step_by(per) {
                let r1 = (r0 + per).min(m);
                s.spawn(move |_| {
                    let (dst, a, b) = (dst, a, b);
                    let rows = View {
                        ptr: a.0.ptr.wrapping_offset(r0 as isize * a.0.rs),
                        rows: r1 - r0,
                        ..a.0
                    };
                    // SAFETY: rows r0..r1 of the output belong to this task alone.
                    unsafe { gemm_block(dst.0.add(r0 * n), n as isize, rows, b.0) };
                });
            }
        });
    } else {
        // Blocks of columns: columns [c0, c1) of b and of the output.
        let per = n.div_ceil(threads);
        rayon::scope(|s| {
            for c0 in (0..n).step_by(per) {
                let c1 = (c0 + per).min(n);
                s.spawn(move |_| {
                    let (dst, a, b) = (dst, a, b);
                    let cols = View {
                        ptr: b.0.ptr.wrapping_offset(c0 as isize * b.0.cs),
                        cols: c1 - c0,
                        ..b.0
                    };
                    // SAFETY: columns c0..c1 of the output belong to this task alone.
                    unsafe { gemm_block(dst.0.add(c0), n as isize, a.0, cols) };
                });
            }
        });
    }
    // SAFETY: the blocks above wrote all m x n elements.
    unsafe { out.set_len(m * n) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(data: &[f32], rows: usize, cols: usize, transposed: bool) -> View {
        // The same logical [rows, cols] matrix, stored row-major or as the
        // transpose of a row-major [cols, rows] one.
        let (rs, cs) = if transposed {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        };
        View {
            ptr: data.as_ptr(),
            rows,
            cols,
            rs,
            cs,
        }
    }

    #[test]
    fn equals_the_naive_product_for_every_split_and_layout() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (700, 90, 40), (40, 90, 700), (1, 300, 9000)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1).collect();
            let mut want = vec![0.0f64; m * n];
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
                }
            }
            // a stored transposed: its row-major buffer is the [k, m] transpose.
            let at: Vec<f32> = (0..k * m).map(|idx| a[(idx % m) * k + idx / m]).collect();
            for (a_view, label) in [(view(&a, m, k, false), "plain"), (view(&at, m, k, true), "transposed")] {
                // SAFETY: views of live vectors with matching shapes.
                let got = unsafe { matmul(a_view, view(&b, k, n, false)) };
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{label} {m}x{k}x{n} [{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }
}
