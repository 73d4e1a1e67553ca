//! LayerNorm on host slices: the loops the Flex backend runs for
//! `NormOps` (formulas in `norm.rs`'s module docs).
//!
//! Rows are split over rayon's pool in blocks of whole rows. The backward's
//! column sums (dgamma, dbeta) are summed per block, then the blocks' sums
//! are added in block order, so a result does not depend on the threads.

use rayon::prelude::*;

/// Below this many elements the work is done on the calling thread.
const PARALLEL_MIN: usize = 32 * 1024;
/// Elements per parallel task (rounded to whole rows).
const PER_TASK: usize = 16 * 1024;

/// Rows per task for rows of `d` and `n` elements in all (all rows in one
/// task when the work is small).
fn rows_per_task(n: usize, d: usize) -> usize {
    if n < PARALLEL_MIN {
        n / d.max(1)
    } else {
        PER_TASK / d.max(1)
    }
    .max(1)
}

/// y [N, D], x̂ [N, D] and rstd [N].
pub struct Forward {
    pub y: Vec<f32>,
    pub xhat: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// The mean and 1 / sqrt(var + eps) of one row.
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    (mean, 1.0 / (var + eps).sqrt())
}

/// One row: y and x̂; returns rstd.
fn norm_row(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32], xhat: &mut [f32]) -> f32 {
    let (mean, s) = moments(x, eps);
    for j in 0..x.len() {
        let h = (x[j] - mean) * s;
        y[j] = h * gamma[j] + beta[j];
        xhat[j] = h;
    }
    s
}

/// LayerNorm of the rows of `x` (width `d`) with `gamma`, `beta` [d],
/// keeping what the backward needs (the training forward; inference runs
/// burn's own Flex LayerNorm).
pub fn forward(x: &[f32], gamma: &[f32], beta: &[f32], d: usize, eps: f32) -> Forward {
    let n = x.len() / d.max(1);
    let mut y = vec![0.0f32; x.len()];
    let mut xhat = vec![0.0f32; x.len()];
    let mut rstd = vec![0.0f32; n];
    if !x.is_empty() {
        let rows = rows_per_task(x.len(), d);
        x.par_chunks(rows * d)
            .zip(y.par_chunks_mut(rows * d))
            .zip(xhat.par_chunks_mut(rows * d))
            .zip(rstd.par_chunks_mut(rows))
            .for_each(|(((x, y), xh), r)| {
                let rows = x.chunks(d).zip(y.chunks_mut(d)).zip(xh.chunks_mut(d));
                for (((xr, yr), hr), s) in rows.zip(r.iter_mut()) {
                    *s = norm_row(xr, gamma, beta, eps, yr, hr);
                }
            });
    }
    Forward { y, xhat, rstd }
}

/// dx [N, D], dgamma [D], dbeta [D].
pub struct Backward {
    pub dx: Vec<f32>,
    pub d_gamma: Vec<f32>,
    pub d_beta: Vec<f32>,
}

/// The backward from x̂ [N, D], rstd [N], gamma [D] and dL/dy [N, D].
pub fn backward(xhat: &[f32], rstd: &[f32], gamma: &[f32], grad: &[f32], d: usize) -> Backward {
    let mut dx = vec![0.0f32; xhat.len()];
    if xhat.is_empty() {
        return Backward {
            dx,
            d_gamma: vec![0.0; d],
            d_beta: vec![0.0; d],
        };
    }
    let rows = rows_per_task(xhat.len(), d);
    let inv_d = 1.0 / d as f32;
    let sums: Vec<Vec<f32>> = xhat
        .par_chunks(rows * d)
        .zip(grad.par_chunks(rows * d))
        .zip(rstd.par_chunks(rows))
        .zip(dx.par_chunks_mut(rows * d))
        .map(|(((xh, gr), r), out)| {
            // [dgamma | dbeta] of this block's rows.
            let mut cols = vec![0.0f32; 2 * d];
            for (i, ((xr, gy), o)) in xh.chunks(d).zip(gr.chunks(d)).zip(out.chunks_mut(d)).enumerate() {
                let (mut m1, mut m2) = (0.0f32, 0.0f32);
                for j in 0..d {
                    let g = gy[j] * gamma[j];
                    m1 += g;
                    m2 += g * xr[j];
                    cols[j] += gy[j] * xr[j];
                    cols[d + j] += gy[j];
                }
                let (m1, m2) = (m1 * inv_d, m2 * inv_d);
                for j in 0..d {
                    o[j] = r[i] * (gy[j] * gamma[j] - m1 - xr[j] * m2);
                }
            }
            cols
        })
        .collect();
    let mut total = vec![0.0f32; 2 * d];
    for s in &sums {
        total.iter_mut().zip(s).for_each(|(t, v)| *t += v);
    }
    let d_beta = total.split_off(d);
    Backward {
        dx,
        d_gamma: total,
        d_beta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_centred_and_scaled_and_the_backward_sums_columns() {
        let x = [1.0, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 2.0];
        let f = forward(&x, &[1.0; 4], &[0.5; 4], 4, 0.0);
        // Each row's mean is removed and its std scaled to 1: x̂ of both
        // rows is (-3, -1, 1, 3) / sqrt(5).
        let s5 = 5f32.sqrt();
        for (a, b) in f.xhat.iter().zip([-3.0, -1.0, 1.0, 3.0, -3.0, -1.0, 1.0, 3.0]) {
            assert!((a - b / s5).abs() < 1e-6);
        }
        assert!(f.y.iter().zip(&f.xhat).all(|(y, h)| (y - h - 0.5).abs() < 1e-6));
        assert!((f.rstd[0] - 1.0 / 1.25f32.sqrt()).abs() < 1e-6);
        let grad = [1.0; 8];
        let b = backward(&f.xhat, &f.rstd, &[1.0; 4], &grad, 4);
        // A constant upstream gradient moves no x: LayerNorm removes it.
        assert!(b.dx.iter().all(|v| v.abs() < 1e-6), "{:?}", b.dx);
        assert_eq!(b.d_beta, vec![2.0; 4]);
        for (a, h) in b.d_gamma.iter().zip(&f.xhat[..4]) {
            assert!((a - 2.0 * h).abs() < 1e-6);
        }
    }

    #[test]
    fn many_blocks_give_what_one_block_gives() {
        let d = 3;
        let n = PARALLEL_MIN / d + 7;
        let x: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let g: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.11).cos()).collect();
        let (gamma, beta) = ([0.5, 1.5, -1.0], [0.1, 0.2, 0.3]);
        let f = forward(&x, &gamma, &beta, d, 1e-5);
        let b = backward(&f.xhat, &f.rstd, &gamma, &g, d);
        let mut want_gamma = [0.0f64; 3];
        for i in 0..n {
            let one = forward(&x[i * d..(i + 1) * d], &gamma, &beta, d, 1e-5);
            assert_eq!(one.y, f.y[i * d..(i + 1) * d]);
            let ob = backward(&one.xhat, &one.rstd, &gamma, &g[i * d..(i + 1) * d], d);
            assert_eq!(ob.dx, b.dx[i * d..(i + 1) * d]);
            want_gamma
                .iter_mut()
                .zip(&ob.d_gamma)
                .for_each(|(w, v)| *w += *v as f64);
        }
        for (got, want) in b.d_gamma.iter().zip(want_gamma) {
            assert!((*got as f64 - want).abs() < 1e-2 * (1.0 + want.abs()));
        }
    }
}
