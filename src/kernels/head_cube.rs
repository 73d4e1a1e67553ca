//! `HeadOps` for burn's Cube backend (Vulkan, wgpu): a carrier head after
//! its first product (`head.rs`) as one CubeCL pass forward and one
//! backward, a unit per row.
//!
//! The forward reads p's row, adds b1, takes the GELU (the erfc fit of
//! `math.rs`, as our GELU kernel) and accumulates the M outputs in the
//! output row, then finishes them. The backward recomputes the same
//! values and writes, by column (value j of row r at j N + r, so that a
//! warp's stores are contiguous), g = GELU(p + b1) and dL/dp [K, N] and
//! dL/dv [M, N], v = g W2 + b2: the biases' gradients are their column
//! sums, dL/dW2 = g (dL/dv)^T a product with a transposed view, and
//! dL/dp [N, K] the transpose of its block, a view. Sums run in another order
//! than the ops', so values agree to float rounding (tests/gpu/head.rs).
//! Non-f32 or mis-shaped inputs answer None.

use super::cube::{FRAC_1_SQRT_2PI, elementwise, empty, f32_rows, gauss, is_matrix, len, normal_cdf, tanh};
use super::head::{Finish, HeadOps};
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// The finish of v: tanh, or clamp(v s, -m, m) as burn's clamp does it
/// (above m -> m, then below -m -> -m).
#[cube]
fn finish(v: f32, s: f32, m: f32, #[comptime] is_tanh: bool) -> f32 {
    // Plain Rust sees the first value overwritten; the macro needs it.
    #[allow(unused_assignments)]
    let mut out = v;
    if is_tanh {
        out = tanh(v);
    } else {
        let w = v * s;
        let w = select(w > m, m, w);
        out = select(w < -m, -m, w);
    }
    out
}

/// d finish / dv at v: 1 - tanh(v)^2, or s where the clamp did not cut
/// (a NaN is not cut, as the clamp's masks have it).
#[cube]
fn finish_slope(v: f32, s: f32, m: f32, #[comptime] is_tanh: bool) -> f32 {
    #[allow(unused_assignments)]
    let mut slope = s;
    if is_tanh {
        let t = tanh(v);
        slope = 1.0f32 - t * t;
    } else {
        let w = v * s;
        #[allow(clippy::manual_range_contains)]
        let cut = w > m || w < -m;
        slope = select(cut, 0.0f32, s);
    }
    slope
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn head_kernel(
    p: &[f32],
    b1: &[f32],
    w2: &[f32],
    b2: &[f32],
    y: &mut [f32],
    n: usize,
    k: usize,
    m: usize,
    s: f32,
    lim: f32,
    #[comptime] is_tanh: bool,
) {
    let r = ABSOLUTE_POS;
    if r >= n {
        terminate!();
    }
    for c in 0..m {
        y[r * m + c] = b2[c];
    }
    for j in 0..k {
        let a = p[r * k + j] + b1[j];
        let g = a * normal_cdf(a, gauss(a));
        for c in 0..m {
            y[r * m + c] += g * w2[j * m + c];
        }
    }
    for c in 0..m {
        y[r * m + c] = finish(y[r * m + c], s, lim, is_tanh);
    }
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn head_backward_kernel(
    p: &[f32],
    b1: &[f32],
    w2: &[f32],
    b2: &[f32],
    grad: &[f32],
    g: &mut [f32],
    dp: &mut [f32],
    dv: &mut [f32],
    n: usize,
    k: usize,
    m: usize,
    s: f32,
    lim: f32,
    #[comptime] is_tanh: bool,
) {
    let r = ABSOLUTE_POS;
    if r >= n {
        terminate!();
    }
    // v into dv, GELU' into dp for now.
    for c in 0..m {
        dv[c * n + r] = b2[c];
    }
    for j in 0..k {
        let a = p[r * k + j] + b1[j];
        let e = gauss(a);
        let cdf = normal_cdf(a, e);
        let gv = a * cdf;
        g[j * n + r] = gv;
        dp[j * n + r] = cdf + a * e * FRAC_1_SQRT_2PI;
        for c in 0..m {
            dv[c * n + r] += gv * w2[j * m + c];
        }
    }
    for c in 0..m {
        let v = dv[c * n + r];
        dv[c * n + r] = grad[r * m + c] * finish_slope(v, s, lim, is_tanh);
    }
    for j in 0..k {
        let mut dg = 0.0f32;
        for c in 0..m {
            dg += dv[c * n + r] * w2[j * m + c];
        }
        dp[j * n + r] *= dg;
    }
}

/// N, K and M when the inputs have a head's shapes and are f32; None
/// otherwise.
fn sizes(p: &CubeTensor, b1: &CubeTensor, w2: &CubeTensor, b2: &CubeTensor) -> Option<(usize, usize, usize)> {
    let sp = p.shape();
    let (n, k) = if sp.len() == 2 { (sp[0], sp[1]) } else { return None };
    let m = len(b2);
    let fits = len(b1) == k && is_matrix(w2, k, m) && n * k * m > 0;
    (fits && [p, b1, w2, b2].iter().all(|t| t.dtype == DType::F32)).then_some((n, k, m))
}

/// The finish's kernel arguments: s, m and whether it is tanh.
fn finish_args(f: Finish) -> (f32, f32, bool) {
    match f {
        Finish::Tanh => (1.0, 1.0, true),
        Finish::Clamp { scale, limit } => (scale as f32, limit as f32, false),
    }
}

fn forward(p: CubeTensor, b1: CubeTensor, w2: CubeTensor, b2: CubeTensor, f: Finish) -> Option<CubeTensor> {
    let (n, k, m) = sizes(&p, &b1, &w2, &b2)?;
    let [p, b1, w2, b2] = [p, b1, w2, b2].map(|t| f32_rows(&t));
    let [p, b1, w2, b2] = [p?, b1?, w2?, b2?];
    let client = p.client.clone();
    let y = empty(&p, [n, m], DType::F32);
    let (s, lim, is_tanh) = finish_args(f);
    let (count, dim) = elementwise(&client, n);
    // SAFETY: unit r < N reads row r of p [N, K] and the weights within
    // the shapes `sizes` checked, and writes row r of y [N, M]; all
    // contiguous.
    unsafe {
        head_kernel::launch_unchecked(
            &client,
            count,
            dim,
            p.into_buffer_arg(),
            b1.into_buffer_arg(),
            w2.into_buffer_arg(),
            b2.into_buffer_arg(),
            y.clone().into_buffer_arg(),
            n,
            k,
            m,
            s,
            lim,
            is_tanh,
        );
    }
    Some(y)
}

/// dL/dp, dL/db1, dL/dw2, dL/db2.
fn backward(inputs: [CubeTensor; 4], grad: CubeTensor, f: Finish) -> Option<[CubeTensor; 4]> {
    let [p, b1, w2, b2] = inputs;
    let (n, k, m) = sizes(&p, &b1, &w2, &b2)?;
    if !is_matrix(&grad, n, m) || grad.dtype != DType::F32 {
        return None;
    }
    let [p, b1, w2, b2, grad] = [p, b1, w2, b2, grad].map(|t| f32_rows(&t));
    let [p, b1, w2, b2, grad] = [p?, b1?, w2?, b2?, grad?];
    let client = p.client.clone();
    let g = empty(&p, [k, n], DType::F32);
    let dp = empty(&p, [k, n], DType::F32);
    let dv = empty(&p, [m, n], DType::F32);
    let (s, lim, is_tanh) = finish_args(f);
    let (count, dim) = elementwise(&client, n);
    // SAFETY: unit r < N reads row r of p [N, K] and of dL/dy [N, M] and
    // the weights within the shapes `sizes` checked, and writes column r
    // of g, dp [K, N] and dv [M, N]; all contiguous.
    unsafe {
        head_backward_kernel::launch_unchecked(
            &client,
            count,
            dim,
            p.into_buffer_arg(),
            b1.into_buffer_arg(),
            w2.into_buffer_arg(),
            b2.into_buffer_arg(),
            grad.into_buffer_arg(),
            g.clone().into_buffer_arg(),
            dp.clone().into_buffer_arg(),
            dv.clone().into_buffer_arg(),
            n,
            k,
            m,
            s,
            lim,
            is_tanh,
        );
    }
    let t = |x: CubeTensor| Cube::float_swap_dims(x, 0, 1);
    let sum = |x: CubeTensor, len: usize| Cube::float_reshape(Cube::float_sum_dim(x, 1), [len].into());
    let dw2 = Cube::float_matmul(g, t(dv.clone()));
    let (db1, db2) = (sum(dp.clone(), k), sum(dv, m));
    Some([t(dp), db1, dw2, db2])
}

impl HeadOps for Cube {
    fn fused_head(p: CubeTensor, b1: CubeTensor, w2: CubeTensor, b2: CubeTensor, finish: Finish) -> Option<CubeTensor> {
        forward(p, b1, w2, b2, finish)
    }

    fn fused_head_backward(
        p: CubeTensor,
        b1: CubeTensor,
        w2: CubeTensor,
        b2: CubeTensor,
        grad: CubeTensor,
        finish: Finish,
    ) -> Option<(CubeTensor, CubeTensor, CubeTensor, CubeTensor)> {
        let [dp, db1, dw2, db2] = backward([p, b1, w2, b2], grad, finish)?;
        Some((dp, db1, dw2, db2))
    }
}
