//! The fused GRU cell on host slices: the loops the Flex backend runs.
//!
//! One reset-after GRU step (PyTorch semantics) for N rows of width H,
//! given the two products `gx = x W_i` and `gh = h W_h` ([N, 3H] each, gate
//! blocks r | z | n) and the biases `bi`, `bh` ([3H]), added here rather
//! than in passes of their own over [N, 3H]:
//!
//! ```text
//! r = s(gx_r + bi_r + gh_r + bh_r)   z = s(gx_z + bi_z + gh_z + bh_z)
//! n = tanh(gx_n + bi_n + r (gh_n + bh_n))       h' = n + z (h - n)
//! ```
//!
//! and its backward from g = dL/dh', using the gates the training forward
//! saved ([N, 4H]: r | z | n | gh_n + bh_n), so the backward needs no
//! transcendental function at all:
//!
//! ```text
//! dh = g z                     da_z = g (h - n) z (1 - z)
//! da_n = g (1 - z)(1 - n^2)    da_r = da_n (gh_n + bh_n) r (1 - r)
//! d_gx = [da_r | da_z | da_n]  d_gh = [da_r | da_z | da_n r]
//! d_bi, d_bh = the column sums of d_gx, d_gh
//! ```
//!
//! Each function is one pass over memory. Rows are split over rayon's pool
//! (the one Flex uses) in blocks; each block's loop is compiled for AVX-512
//! and AVX2 as well as the baseline (`multiversion`), which is what lets
//! the polynomials of `math.rs` run 16 or 8 lanes wide.

use super::math::{sigmoid, tanh};
use super::uninit::{assume_init, uninit};
use multiversion::multiversion;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Rows per parallel task: large enough that a task is tens of
/// microseconds, small enough to balance 16 tasks of a few thousand rows.
const ROWS_PER_TASK: usize = 64;
/// Below this many elements the work is done on the calling thread.
const PARALLEL_MIN: usize = 32 * 1024;

/// The pieces of one GRU step: the two products [N, 3H], h [N, H] and the
/// two biases [3H].
#[derive(Debug, Clone, Copy)]
pub struct GruInputs<'a> {
    pub gx: &'a [f32],
    pub gh: &'a [f32],
    pub h: &'a [f32],
    pub bi: &'a [f32],
    pub bh: &'a [f32],
    pub hd: usize,
}

/// The biases summed where they meet (r and z) and apart where they do
/// not (n): [bi_r + bh_r | bi_z + bh_z | bi_n | bh_n], [4H].
fn bias_sums(bi: &[f32], bh: &[f32], hd: usize) -> Vec<f32> {
    let mut b: Vec<f32> = bi[..2 * hd].iter().zip(&bh[..2 * hd]).map(|(x, y)| x + y).collect();
    b.extend_from_slice(&bi[2 * hd..]);
    b.extend_from_slice(&bh[2 * hd..]);
    b
}

/// One GRU step over a block of rows; `saved` ([rows, 4H], empty for
/// inference) receives the gates for the backward.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn forward_block(
    gx: &[f32],
    gh: &[f32],
    h: &[f32],
    bias: &[f32],
    out: &mut [MaybeUninit<f32>],
    saved: &mut [MaybeUninit<f32>],
    hd: usize,
) {
    let (b_r, rest) = bias.split_at(hd);
    let (b_z, rest) = rest.split_at(hd);
    let (bi_n, bh_n) = rest.split_at(hd);
    for (i, (((a, b), hh), o)) in gx
        .chunks_exact(3 * hd)
        .zip(gh.chunks_exact(3 * hd))
        .zip(h.chunks_exact(hd))
        .zip(out.chunks_exact_mut(hd))
        .enumerate()
    {
        let (ar, rest) = a.split_at(hd);
        let (az, an) = rest.split_at(hd);
        let (br, rest) = b.split_at(hd);
        let (bz, bn) = rest.split_at(hd);
        if saved.is_empty() {
            for j in 0..hd {
                let r = sigmoid(ar[j] + br[j] + b_r[j]);
                let z = sigmoid(az[j] + bz[j] + b_z[j]);
                let n = tanh(an[j] + bi_n[j] + r * (bn[j] + bh_n[j]));
                o[j].write(n + z * (hh[j] - n));
            }
        } else {
            let s = &mut saved[i * 4 * hd..(i + 1) * 4 * hd];
            let (sr, rest) = s.split_at_mut(hd);
            let (sz, rest) = rest.split_at_mut(hd);
            let (sn, sb) = rest.split_at_mut(hd);
            for j in 0..hd {
                let r = sigmoid(ar[j] + br[j] + b_r[j]);
                let z = sigmoid(az[j] + bz[j] + b_z[j]);
                let ghn = bn[j] + bh_n[j];
                let n = tanh(an[j] + bi_n[j] + r * ghn);
                o[j].write(n + z * (hh[j] - n));
                sr[j].write(r);
                sz[j].write(z);
                sn[j].write(n);
                sb[j].write(ghn);
            }
        }
    }
}

/// The backward over a block of rows; adds the block's column sums (the
/// bias gradients) into `sums` ([4H]: da_r | da_z | da_n | da_n r).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
fn backward_block(
    saved: &[f32],
    h: &[f32],
    g: &[f32],
    d_gx: &mut [MaybeUninit<f32>],
    d_gh: &mut [MaybeUninit<f32>],
    d_h: &mut [MaybeUninit<f32>],
    sums: &mut [f32],
    hd: usize,
) {
    let (sum_r, rest) = sums.split_at_mut(hd);
    let (sum_z, rest) = rest.split_at_mut(hd);
    let (sum_nx, sum_nh) = rest.split_at_mut(hd);
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
            dh[j].write(gj * z);
            let da_z = gj * (hh[j] - n) * z * (1.0 - z);
            let da_n = gj * (1.0 - z) * (1.0 - n * n);
            let da_r = da_n * bn * r * (1.0 - r);
            let da_nh = da_n * r;
            xr[j].write(da_r);
            xz[j].write(da_z);
            xn[j].write(da_n);
            gr[j].write(da_r);
            gz[j].write(da_z);
            gn[j].write(da_nh);
            sum_r[j] += da_r;
            sum_z[j] += da_z;
            sum_nx[j] += da_n;
            sum_nh[j] += da_nh;
        }
    }
}

/// Whether `rows` rows of width `hd` are worth splitting over threads.
fn parallel(rows: usize, hd: usize) -> bool {
    rows * hd >= PARALLEL_MIN && rows > ROWS_PER_TASK
}

/// h' [N, H] and, when `save`, the gates for the backward [N, 4H]
/// (r | z | n | gh_n + bh_n; empty otherwise).
pub fn gru_forward(x: GruInputs, save: bool) -> (Vec<f32>, Vec<f32>) {
    let hd = x.hd;
    let rows = x.h.len() / hd.max(1);
    // Written in full below, so not cleared first (a serial pass saved).
    let mut out = uninit(rows * hd);
    let mut saved = uninit(if save { rows * 4 * hd } else { 0 });
    if hd == 0 || rows == 0 {
        // SAFETY: empty.
        return unsafe { (assume_init(out), assume_init(saved)) };
    }
    let bias = bias_sums(x.bi, x.bh, hd);
    let (w3, w1, w4) = (3 * hd * ROWS_PER_TASK, hd * ROWS_PER_TASK, 4 * hd * ROWS_PER_TASK);
    let block = |t: usize, o: &mut [MaybeUninit<f32>], s: &mut [MaybeUninit<f32>]| {
        let (a, b) = (t * w3, t * w3 + 3 * o.len());
        let (c, d) = (t * w1, t * w1 + o.len());
        forward_block(&x.gx[a..b], &x.gh[a..b], &x.h[c..d], &bias, o, s, hd);
    };
    match (parallel(rows, hd), save) {
        (true, true) => out
            .par_chunks_mut(w1)
            .zip(saved.par_chunks_mut(w4))
            .enumerate()
            .for_each(|(t, (o, s))| block(t, o, s)),
        (true, false) => out
            .par_chunks_mut(w1)
            .enumerate()
            .for_each(|(t, o)| block(t, o, &mut [])),
        (false, _) => block(0, &mut out, &mut saved),
    }
    // SAFETY: forward_block wrote every row of `out` and, when saving, of `saved`.
    unsafe { (assume_init(out), assume_init(saved)) }
}

/// The gradients of one GRU step, from the saved gates, h and the upstream
/// gradient g [N, H].
pub struct GruGrads {
    pub d_gx: Vec<f32>,
    pub d_gh: Vec<f32>,
    pub d_h: Vec<f32>,
    pub d_bi: Vec<f32>,
    pub d_bh: Vec<f32>,
}

/// One backward task's outputs: its index, then d_gx, d_gh, d_h and the
/// bias partial sums of its rows.
type BlockOut<'a> = (
    usize,
    (
        (
            (&'a mut [MaybeUninit<f32>], &'a mut [MaybeUninit<f32>]),
            &'a mut [MaybeUninit<f32>],
        ),
        &'a mut [f32],
    ),
);

/// The backward of one GRU step. The bias sums are added per block of
/// rows, then over the blocks in order, so they do not depend on how the
/// threads shared the work: a run stays deterministic.
pub fn gru_backward(saved: &[f32], h: &[f32], g: &[f32], hd: usize) -> GruGrads {
    let rows = h.len() / hd.max(1);
    // Written in full below, so not cleared first.
    let mut d_gx = uninit(rows * 3 * hd);
    let mut d_gh = uninit(rows * 3 * hd);
    let mut d_h = uninit(rows * hd);
    let mut sums = vec![0.0f32; 4 * hd];
    if hd > 0 && rows > 0 {
        let (w3, w1, w4) = (3 * hd * ROWS_PER_TASK, hd * ROWS_PER_TASK, 4 * hd * ROWS_PER_TASK);
        let mut partial = vec![0.0f32; rows.div_ceil(ROWS_PER_TASK) * 4 * hd];
        let block = |(t, (((dx, dg), dh), p)): BlockOut| {
            let (a, b) = (t * w4, t * w4 + 4 * dh.len());
            let (c, d) = (t * w1, t * w1 + dh.len());
            backward_block(&saved[a..b], &h[c..d], &g[c..d], dx, dg, dh, p, hd);
        };
        if parallel(rows, hd) {
            d_gx.par_chunks_mut(w3)
                .zip(d_gh.par_chunks_mut(w3))
                .zip(d_h.par_chunks_mut(w1))
                .zip(partial.par_chunks_mut(4 * hd))
                .enumerate()
                .for_each(block);
        } else {
            d_gx.chunks_mut(w3)
                .zip(d_gh.chunks_mut(w3))
                .zip(d_h.chunks_mut(w1))
                .zip(partial.chunks_mut(4 * hd))
                .enumerate()
                .for_each(block);
        }
        for p in partial.chunks_exact(4 * hd) {
            sums.iter_mut().zip(p).for_each(|(a, v)| *a += v);
        }
    }
    // d_bi = [r | z | n], d_bh = [r | z | n r]: the r and z blocks are shared.
    let d_bi = [&sums[..2 * hd], &sums[2 * hd..3 * hd]].concat();
    let d_bh = [&sums[..2 * hd], &sums[3 * hd..]].concat();
    // SAFETY: backward_block wrote every row of the three buffers.
    let (d_gx, d_gh, d_h) = unsafe { (assume_init(d_gx), assume_init(d_gh), assume_init(d_h)) };
    GruGrads {
        d_gx,
        d_gh,
        d_h,
        d_bi,
        d_bh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reference {
        out: Vec<f64>,
        d_gx: Vec<f64>,
        d_gh: Vec<f64>,
        d_h: Vec<f64>,
        d_bi: Vec<f64>,
        d_bh: Vec<f64>,
    }

    /// The formulas of the module docs in f64, one element at a time.
    fn reference(x: GruInputs, g: &[f32]) -> Reference {
        let hd = x.hd;
        let s = |v: f64| 1.0 / (1.0 + (-v).exp());
        let rows = x.h.len() / hd;
        let mut r = Reference {
            out: vec![],
            d_gx: vec![0.0; rows * 3 * hd],
            d_gh: vec![0.0; rows * 3 * hd],
            d_h: vec![],
            d_bi: vec![0.0; 3 * hd],
            d_bh: vec![0.0; 3 * hd],
        };
        for i in 0..rows {
            for j in 0..hd {
                let at = |v: &[f32], k: usize| v[i * 3 * hd + k * hd + j] as f64;
                let (bi, bh) = (|k: usize| x.bi[k * hd + j] as f64, |k: usize| x.bh[k * hd + j] as f64);
                let rr = s(at(x.gx, 0) + bi(0) + at(x.gh, 0) + bh(0));
                let z = s(at(x.gx, 1) + bi(1) + at(x.gh, 1) + bh(1));
                let ghn = at(x.gh, 2) + bh(2);
                let n = (at(x.gx, 2) + bi(2) + rr * ghn).tanh();
                let (hh, gg) = (x.h[i * hd + j] as f64, g[i * hd + j] as f64);
                r.out.push(n + z * (hh - n));
                r.d_h.push(gg * z);
                let da_z = gg * (hh - n) * z * (1.0 - z);
                let da_n = gg * (1.0 - z) * (1.0 - n * n);
                let da_r = da_n * ghn * rr * (1.0 - rr);
                for (k, (vx, vh)) in [(da_r, da_r), (da_z, da_z), (da_n, da_n * rr)].into_iter().enumerate() {
                    r.d_gx[i * 3 * hd + k * hd + j] = vx;
                    r.d_gh[i * 3 * hd + k * hd + j] = vh;
                    r.d_bi[k * hd + j] += vx;
                    r.d_bh[k * hd + j] += vh;
                }
            }
        }
        r
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
            let (bi, bh) = (v(3 * hd, 0.71), v(3 * hd, 0.29));
            let x = GruInputs {
                gx: &gx,
                gh: &gh,
                h: &h,
                bi: &bi,
                bh: &bh,
                hd,
            };
            let want = reference(x, &g);
            let (out, none) = gru_forward(x, false);
            assert!(none.is_empty());
            close(&out, &want.out, 1e-6, "forward");
            let (out2, saved) = gru_forward(x, true);
            assert_eq!(out, out2, "both forwards give the same bits");
            let got = gru_backward(&saved, &h, &g, hd);
            close(&got.d_gx, &want.d_gx, 1e-6, "d_gx");
            close(&got.d_gh, &want.d_gh, 1e-6, "d_gh");
            close(&got.d_h, &want.d_h, 1e-6, "d_h");
            // Sums over up to 700 rows: f32 accumulation.
            close(&got.d_bi, &want.d_bi, 1e-5, "d_bi");
            close(&got.d_bh, &want.d_bh, 1e-5, "d_bh");
        }
    }

    #[test]
    fn zero_rows_and_zero_width_are_empty() {
        let x = GruInputs {
            gx: &[],
            gh: &[],
            h: &[],
            bi: &[0.0; 12],
            bh: &[0.0; 12],
            hd: 4,
        };
        assert!(gru_forward(x, true).0.is_empty());
        let g = gru_backward(&[], &[], &[], 3);
        assert!(g.d_gx.is_empty() && g.d_h.is_empty());
        assert_eq!(g.d_bi, vec![0.0; 9]);
    }
}
