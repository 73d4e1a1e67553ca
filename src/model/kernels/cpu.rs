//! The fused GRU cell on host slices: the loops the Flex backend runs.
//!
//! One reset-after GRU step (PyTorch semantics) for N rows of width H,
//! given the two projections `gx = x W_i + b_i` and `gh = h W_h + b_h`
//! ([N, 3H] each, gate blocks r | z | n):
//!
//! ```text
//! r = s(gx_r + gh_r)   z = s(gx_z + gh_z)   n = tanh(gx_n + r gh_n)
//! h' = n + z (h - n)
//! ```
//!
//! and its backward from g = dL/dh', using the gates the training forward
//! saved ([N, 4H]: r | z | n | gh_n), so the backward needs no
//! transcendental function at all:
//!
//! ```text
//! dh = g z                 da_z = g (h - n) z (1 - z)
//! da_n = g (1 - z)(1 - n^2)    da_r = da_n gh_n r (1 - r)
//! d_gx = [da_r | da_z | da_n]  d_gh = [da_r | da_z | da_n r]
//! ```
//!
//! Also GELU, elementwise: y = GELU(x), and for training its derivative
//! GELU'(x) beside it, so the backward is one multiplication.
//!
//! Each function does one pass over memory. Rows are split over rayon's
//! pool (the one Flex uses) in blocks; each block's loop is compiled for
//! AVX-512 and AVX2 besides the baseline (`multiversion`), which is what
//! lets the polynomials of `math.rs` run 16 or 8 lanes wide.

use super::math::{gelu_with_derivative, sigmoid, tanh};
use multiversion::multiversion;
use rayon::prelude::*;

/// Rows per parallel task: large enough that a task is tens of
/// microseconds, small enough to balance 16 tasks of a few thousand rows.
const ROWS_PER_TASK: usize = 64;
/// Below this many elements the work is done on the calling thread.
const PARALLEL_MIN: usize = 32 * 1024;

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn forward_block(gx: &[f32], gh: &[f32], h: &[f32], out: &mut [f32], hd: usize) {
    for (((a, b), hh), o) in gx
        .chunks_exact(3 * hd)
        .zip(gh.chunks_exact(3 * hd))
        .zip(h.chunks_exact(hd))
        .zip(out.chunks_exact_mut(hd))
    {
        let (ar, rest) = a.split_at(hd);
        let (az, an) = rest.split_at(hd);
        let (br, rest) = b.split_at(hd);
        let (bz, bn) = rest.split_at(hd);
        for j in 0..hd {
            let r = sigmoid(ar[j] + br[j]);
            let z = sigmoid(az[j] + bz[j]);
            let n = tanh(an[j] + r * bn[j]);
            o[j] = n + z * (hh[j] - n);
        }
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn forward_saving_block(gx: &[f32], gh: &[f32], h: &[f32], out: &mut [f32], saved: &mut [f32], hd: usize) {
    for ((((a, b), hh), o), s) in gx
        .chunks_exact(3 * hd)
        .zip(gh.chunks_exact(3 * hd))
        .zip(h.chunks_exact(hd))
        .zip(out.chunks_exact_mut(hd))
        .zip(saved.chunks_exact_mut(4 * hd))
    {
        let (ar, rest) = a.split_at(hd);
        let (az, an) = rest.split_at(hd);
        let (br, rest) = b.split_at(hd);
        let (bz, bn) = rest.split_at(hd);
        let (sr, rest) = s.split_at_mut(hd);
        let (sz, rest) = rest.split_at_mut(hd);
        let (sn, sb) = rest.split_at_mut(hd);
        for j in 0..hd {
            let r = sigmoid(ar[j] + br[j]);
            let z = sigmoid(az[j] + bz[j]);
            let n = tanh(an[j] + r * bn[j]);
            o[j] = n + z * (hh[j] - n);
            sr[j] = r;
            sz[j] = z;
            sn[j] = n;
            sb[j] = bn[j];
        }
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn backward_block(saved: &[f32], h: &[f32], g: &[f32], d_gx: &mut [f32], d_gh: &mut [f32], d_h: &mut [f32], hd: usize) {
    for (((((s, hh), gg), dx), dg), dh) in saved
        .chunks_exact(4 * hd)
        .zip(h.chunks_exact(hd))
        .zip(g.chunks_exact(hd))
        .zip(d_gx.chunks_exact_mut(3 * hd))
        .zip(d_gh.chunks_exact_mut(3 * hd))
        .zip(d_h.chunks_exact_mut(hd))
    {
        let (sr, rest) = s.split_at(hd);
        let (sz, rest) = rest.split_at(hd);
        let (sn, sb) = rest.split_at(hd);
        let (xr, rest) = dx.split_at_mut(hd);
        let (xz, xn) = rest.split_at_mut(hd);
        let (gr, rest) = dg.split_at_mut(hd);
        let (gz, gn) = rest.split_at_mut(hd);
        for j in 0..hd {
            let (r, z, n, bn, gj) = (sr[j], sz[j], sn[j], sb[j], gg[j]);
            dh[j] = gj * z;
            let da_z = gj * (hh[j] - n) * z * (1.0 - z);
            let da_n = gj * (1.0 - z) * (1.0 - n * n);
            let da_r = da_n * bn * r * (1.0 - r);
            xr[j] = da_r;
            xz[j] = da_z;
            xn[j] = da_n;
            gr[j] = da_r;
            gz[j] = da_z;
            gn[j] = da_n * r;
        }
    }
}

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

/// Elements per parallel GELU task.
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

/// Whether `rows` rows of width `hd` are worth splitting over threads.
fn parallel(rows: usize, hd: usize) -> bool {
    rows * hd >= PARALLEL_MIN && rows > ROWS_PER_TASK
}

/// h' [N, H] of one GRU step (inference: nothing saved).
pub fn gru_forward(gx: &[f32], gh: &[f32], h: &[f32], hd: usize) -> Vec<f32> {
    let rows = h.len() / hd.max(1);
    let mut out = vec![0.0f32; rows * hd];
    if hd == 0 {
        return out;
    }
    let (w3, w1) = (3 * hd * ROWS_PER_TASK, hd * ROWS_PER_TASK);
    if parallel(rows, hd) {
        out.par_chunks_mut(w1).enumerate().for_each(|(t, o)| {
            let (a, b) = (t * w3, t * w3 + 3 * o.len());
            let (c, d) = (t * w1, t * w1 + o.len());
            forward_block(&gx[a..b], &gh[a..b], &h[c..d], o, hd);
        });
    } else {
        forward_block(gx, gh, h, &mut out, hd);
    }
    out
}

/// h' [N, H] and the gates for the backward [N, 4H] (r | z | n | gh_n).
pub fn gru_forward_saving(gx: &[f32], gh: &[f32], h: &[f32], hd: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = h.len() / hd.max(1);
    let mut out = vec![0.0f32; rows * hd];
    let mut saved = vec![0.0f32; rows * 4 * hd];
    if hd == 0 {
        return (out, saved);
    }
    let (w3, w1, w4) = (3 * hd * ROWS_PER_TASK, hd * ROWS_PER_TASK, 4 * hd * ROWS_PER_TASK);
    if parallel(rows, hd) {
        out.par_chunks_mut(w1)
            .zip(saved.par_chunks_mut(w4))
            .enumerate()
            .for_each(|(t, (o, s))| {
                let (a, b) = (t * w3, t * w3 + 3 * o.len());
                let (c, d) = (t * w1, t * w1 + o.len());
                forward_saving_block(&gx[a..b], &gh[a..b], &h[c..d], o, s, hd);
            });
    } else {
        forward_saving_block(gx, gh, h, &mut out, &mut saved, hd);
    }
    (out, saved)
}

/// (d_gx [N, 3H], d_gh [N, 3H], d_h [N, H]) from the saved gates, h and
/// the upstream gradient g [N, H].
pub fn gru_backward(saved: &[f32], h: &[f32], g: &[f32], hd: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = h.len() / hd.max(1);
    let mut d_gx = vec![0.0f32; rows * 3 * hd];
    let mut d_gh = vec![0.0f32; rows * 3 * hd];
    let mut d_h = vec![0.0f32; rows * hd];
    if hd == 0 {
        return (d_gx, d_gh, d_h);
    }
    let (w3, w1, w4) = (3 * hd * ROWS_PER_TASK, hd * ROWS_PER_TASK, 4 * hd * ROWS_PER_TASK);
    if parallel(rows, hd) {
        d_gx.par_chunks_mut(w3)
            .zip(d_gh.par_chunks_mut(w3))
            .zip(d_h.par_chunks_mut(w1))
            .enumerate()
            .for_each(|(t, ((dx, dg), dh))| {
                let (a, b) = (t * w4, t * w4 + 4 * dh.len());
                let (c, d) = (t * w1, t * w1 + dh.len());
                backward_block(&saved[a..b], &h[c..d], &g[c..d], dx, dg, dh, hd);
            });
    } else {
        backward_block(saved, h, g, &mut d_gx, &mut d_gh, &mut d_h, hd);
    }
    (d_gx, d_gh, d_h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formulas of the module docs in f64, one element at a time.
    fn reference(gx: &[f32], gh: &[f32], h: &[f32], g: &[f32], hd: usize) -> (Vec<f64>, [Vec<f64>; 3]) {
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let rows = h.len() / hd;
        let (mut out, mut dx, mut dg, mut dh) = (vec![], vec![0.0; rows * 3 * hd], vec![0.0; rows * 3 * hd], vec![]);
        for i in 0..rows {
            for j in 0..hd {
                let at = |v: &[f32], k: usize| v[i * 3 * hd + k * hd + j] as f64;
                let (r, z) = (s(at(gx, 0) + at(gh, 0)), s(at(gx, 1) + at(gh, 1)));
                let n = (at(gx, 2) + r * at(gh, 2)).tanh();
                let hh = h[i * hd + j] as f64;
                let gg = g[i * hd + j] as f64;
                out.push(n + z * (hh - n));
                dh.push(gg * z);
                let da_z = gg * (hh - n) * z * (1.0 - z);
                let da_n = gg * (1.0 - z) * (1.0 - n * n);
                let da_r = da_n * at(gh, 2) * r * (1.0 - r);
                for (k, v) in [da_r, da_z, da_n].into_iter().enumerate() {
                    dx[i * 3 * hd + k * hd + j] = v;
                }
                for (k, v) in [da_r, da_z, da_n * r].into_iter().enumerate() {
                    dg[i * 3 * hd + k * hd + j] = v;
                }
            }
        }
        (out, [dx, dg, dh])
    }

    fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (*a as f64 - b).abs() <= tol * (1.0 + b.abs()),
                "{what}[{i}]: {a} vs {b}"
            );
        }
    }

    #[test]
    fn matches_f64_on_odd_shapes_serial_and_parallel() {
        // One row; odd widths; enough rows to take the parallel path.
        for (rows, hd) in [(1, 1), (1, 7), (3, 5), (129, 33), (700, 64)] {
            let v = |n: usize, k: f32| (0..n).map(|i| (i as f32 * k).sin() * 3.0).collect::<Vec<f32>>();
            let (gx, gh, h, g) = (
                v(rows * 3 * hd, 0.37),
                v(rows * 3 * hd, 0.91),
                v(rows * hd, 0.13),
                v(rows * hd, 0.53),
            );
            let (want, [dx, dg, dh]) = reference(&gx, &gh, &h, &g, hd);
            let out = gru_forward(&gx, &gh, &h, hd);
            close(&out, &want, 1e-6, "forward");
            let (out2, saved) = gru_forward_saving(&gx, &gh, &h, hd);
            assert_eq!(out, out2, "both forwards give the same bits");
            let (a, b, c) = gru_backward(&saved, &h, &g, hd);
            close(&a, &dx, 1e-6, "d_gx");
            close(&b, &dg, 1e-6, "d_gh");
            close(&c, &dh, 1e-6, "d_h");
        }
    }

    #[test]
    fn zero_rows_and_zero_width_are_empty() {
        assert!(gru_forward(&[], &[], &[], 4).is_empty());
        assert!(gru_forward(&[], &[], &[], 0).is_empty());
        let (a, b, c) = gru_backward(&[], &[], &[], 3);
        assert!(a.is_empty() && b.is_empty() && c.is_empty());
    }
}
