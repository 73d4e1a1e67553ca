//! `NeuronOps` for burn's Cube backend (Vulkan, wgpu): the feature MLP
//! of `neuron.rs` as one CubeCL pass forward, one backward, a unit per row.
//!
//! Each unit keeps its row's intermediates in one saved tensor laid out by
//! column ([9 + 4H, Np]: value j of row r at j Np + r, Np = N rounded up
//! to the device's buffer-offset alignment, the padding zero), so that a warp's
//! loads and stores are contiguous, the weights are read by every unit at
//! once, and the backward's weight products take row blocks of it as
//! ready-made transposes: rows 0 rstd1, 1 rstd2, 2..5 pos, 5..9 the first
//! layer's input [Lp(pos), energy], then x̂1, a1 = GELU(LN1), x̂2, a2
//! (H rows each). The backward writes, by column too, the row gradients
//! whose column sums are the biases' and LayerNorms' gradients (and the
//! products' right-hand sides), so one `sum_dim` gives all eight:
//! dL/d(Lp out) (3) | dz1 | dy1 x̂1 | dy1 | dz2 | dy2 x̂2 | dy2 (H each) |
//! dL/dy (F), where z is a layer's product, y its LayerNorm's output.
//! The four weight gradients are burn's matrix products of those blocks.
//!
//! Sums run in another order than the modules' products, so values agree
//! to float rounding (tests/gpu/neuron.rs). Non-f32 or mis-shaped inputs
//! answer None.

use super::cube::{FRAC_1_SQRT_2PI, elementwise, empty, f32_rows, gauss, is_matrix, len, normal_cdf};
use super::neuron::{Grads14, NeuronOps};
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Cube, DType, Slice, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::client::Client;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// Rows of the saved tensor before x̂1.
const HEAD_ROWS: usize = 9;

/// x̂ of LN(x W + b) into rows `xh` of `s`, a = GELU(x̂ g + be) into rows
/// `a`, rstd into row `rstd`, for the `d_in` input rows at `input`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn dense_norm_gelu(
    s: &mut [f32],
    w: &[f32],
    b: &[f32],
    g: &[f32],
    be: &[f32],
    input: usize,
    d_in: usize,
    xh: usize,
    a: usize,
    rstd: usize,
    r: usize,
    n: usize,
    h: usize,
    eps: f32,
) {
    let mut sum = 0.0f32;
    for j in 0..h {
        let mut v = b[j];
        for k in 0..d_in {
            v += s[input + k * n + r] * w[k * h + j];
        }
        s[xh + j * n + r] = v;
        sum += v;
    }
    let width = f32::cast_from(h);
    let mean = sum / width;
    let mut sq = 0.0f32;
    for j in 0..h {
        let c = s[xh + j * n + r] - mean;
        sq += c * c;
    }
    let inv = 1.0f32 / f32::sqrt(sq / width + eps);
    for j in 0..h {
        let x = (s[xh + j * n + r] - mean) * inv;
        s[xh + j * n + r] = x;
        let y = x * g[j] + be[j];
        s[a + j * n + r] = y * normal_cdf(y, gauss(y));
    }
    s[rstd * n + r] = inv;
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn neuron_kernel(
    pos: &[f32],
    energy: &[f32],
    wp: &[f32],
    bp: &[f32],
    w1: &[f32],
    b1: &[f32],
    g1: &[f32],
    be1: &[f32],
    w2: &[f32],
    b2: &[f32],
    g2: &[f32],
    be2: &[f32],
    w3: &[f32],
    b3: &[f32],
    y: &mut [f32],
    s: &mut [f32],
    rows: usize,
    n: usize,
    h: usize,
    f: usize,
    fo: usize,
    eps: f32,
) {
    let r = ABSOLUTE_POS;
    if r >= n {
        terminate!();
    }
    if r >= rows {
        // A padding column: zero, so that the backward's products over
        // the padded length add nothing.
        for j in 0..9 + 4 * h {
            s[j * n + r] = 0.0;
        }
        terminate!();
    }
    for c in 0..3usize {
        s[(2 + c) * n + r] = pos[r * 3 + c];
    }
    for c in 0..3usize {
        let mut v = bp[c];
        for k in 0..3usize {
            v += pos[r * 3 + k] * wp[k * 3 + c];
        }
        s[(5 + c) * n + r] = v;
    }
    s[8 * n + r] = energy[r];
    let xh1 = 9 * n;
    let a1 = xh1 + h * n;
    let xh2 = a1 + h * n;
    let a2 = xh2 + h * n;
    dense_norm_gelu(s, w1, b1, g1, be1, 5 * n, 4, xh1, a1, 0, r, n, h, eps);
    dense_norm_gelu(s, w2, b2, g2, be2, a1, h, xh2, a2, 1, r, n, h, eps);
    for c in 0..f {
        let mut v = b3[c];
        for k in 0..h {
            v += s[a2 + k * n + r] * w3[k * f + c];
        }
        y[r * fo + c] = v;
    }
    if fo > f {
        y[r * fo + f] = energy[r];
    }
}

/// One LayerNorm + GELU layer backward: from the gradient rows `up` (d_up
/// of them) of the next product, whose weight is `w_next` [H, d_up], and
/// x̂, rstd (rows `xh`, `rstd` of `s`), writes dz, dy x̂ and dy into the
/// 3H rows of `gs` from `dz` on.
#[cube]
#[allow(clippy::too_many_arguments)]
fn norm_gelu_backward(
    gs: &mut [f32],
    s: &[f32],
    w_next: &[f32],
    g: &[f32],
    be: &[f32],
    up: usize,
    d_up: usize,
    xh: usize,
    rstd: usize,
    dz: usize,
    r: usize,
    n: usize,
    h: usize,
) {
    let dyx = dz + h * n;
    let dy = dyx + h * n;
    let mut m1 = 0.0f32;
    let mut m2 = 0.0f32;
    for k in 0..h {
        let mut da = 0.0f32;
        for c in 0..d_up {
            da += gs[up + c * n + r] * w_next[k * d_up + c];
        }
        let x = s[xh + k * n + r];
        let y = x * g[k] + be[k];
        let e = gauss(y);
        let d = da * (normal_cdf(y, e) + y * e * FRAC_1_SQRT_2PI);
        gs[dy + k * n + r] = d;
        gs[dyx + k * n + r] = d * x;
        let gd = d * g[k];
        m1 += gd;
        m2 += gd * x;
    }
    let width = f32::cast_from(h);
    m1 /= width;
    m2 /= width;
    let inv = s[rstd * n + r];
    for k in 0..h {
        let x = s[xh + k * n + r];
        gs[dz + k * n + r] = inv * (gs[dy + k * n + r] * g[k] - m1 - x * m2);
    }
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn neuron_backward_kernel(
    s: &[f32],
    wp: &[f32],
    w1: &[f32],
    g1: &[f32],
    be1: &[f32],
    w2: &[f32],
    g2: &[f32],
    be2: &[f32],
    w3: &[f32],
    grad: &[f32],
    gs: &mut [f32],
    dpos: &mut [f32],
    de: &mut [f32],
    rows: usize,
    n: usize,
    h: usize,
    f: usize,
    fo: usize,
) {
    let r = ABSOLUTE_POS;
    if r >= n {
        terminate!();
    }
    if r >= rows {
        for j in 0..3 + 6 * h + f {
            gs[j * n + r] = 0.0;
        }
        terminate!();
    }
    let xh1 = 9 * n;
    let xh2 = xh1 + 2 * h * n;
    let dz1 = 3 * n;
    let dz2 = dz1 + 3 * h * n;
    let up = dz1 + 6 * h * n;
    for c in 0..f {
        gs[up + c * n + r] = grad[r * fo + c];
    }
    norm_gelu_backward(gs, s, w3, g2, be2, up, f, xh2, 1, dz2, r, n, h);
    norm_gelu_backward(gs, s, w2, g1, be1, dz2, h, xh1, 0, dz1, r, n, h);
    // dL/d[Lp(pos), energy] = dz1 W1^T; then dL/dpos = dL/dLp(pos) Wp^T.
    for c in 0..4usize {
        let mut v = 0.0f32;
        for j in 0..h {
            v += gs[dz1 + j * n + r] * w1[c * h + j];
        }
        if c < 3 {
            gs[c * n + r] = v;
        } else if fo > f {
            // The output's last column is the energy itself.
            de[r] = v + grad[r * fo + f];
        } else {
            de[r] = v;
        }
    }
    for k in 0..3usize {
        let mut v = 0.0f32;
        for c in 0..3usize {
            v += gs[c * n + r] * wp[k * 3 + c];
        }
        dpos[r * 3 + k] = v;
    }
}

/// N, H and F when every input has the MLP's shapes; None otherwise.
fn sizes(t: &[&CubeTensor; 14]) -> Option<(usize, usize, usize)> {
    let [pos, energy, wp, bp, w1, b1, g1, be1, w2, b2, g2, be2, w3, b3] = *t;
    let n = pos.shape();
    let n = if n.len() == 2 { n[0] } else { return None };
    let (h, f) = (len(b1), len(b3));
    let shapes = is_matrix(pos, n, 3)
        && is_matrix(energy, n, 1)
        && is_matrix(wp, 3, 3)
        && len(bp) == 3
        && is_matrix(w1, 4, h)
        && [g1, be1, b2, g2, be2].iter().all(|v| len(v) == h)
        && is_matrix(w2, h, h)
        && is_matrix(w3, h, f);
    (shapes && n * h * f > 0 && t.iter().all(|v| v.dtype == DType::F32)).then_some((n, h, f))
}

#[allow(clippy::too_many_arguments)]
fn forward(inputs: [CubeTensor; 14], eps: f64, with_energy: bool) -> Option<(CubeTensor, CubeTensor)> {
    let (n, h, f) = sizes(&inputs.each_ref())?;
    let fo = f + usize::from(with_energy);
    let [pos, energy, wp, bp, w1, b1, g1, be1, w2, b2, g2, be2, w3, b3] = inputs.map(|t| f32_rows(&t));
    let [pos, energy, wp, bp, w1, b1, g1, be1, w2, b2, g2, be2, w3, b3] = [
        pos?, energy?, wp?, bp?, w1?, b1?, g1?, be1?, w2?, b2?, g2?, be2?, w3?, b3?,
    ];
    let client = pos.client.clone();
    let np = padded(&client, n);
    let y = empty(&pos, [n, fo], DType::F32);
    let s = empty(&pos, [HEAD_ROWS + 4 * h, np], DType::F32);
    let (count, dim) = elementwise(&client, np);
    // SAFETY: unit r < N reads row r of pos and energy ([N, 3], [N, 1]),
    // the weights within the shapes `sizes` checked, and writes row r of
    // y [N, Fo] and column r of s [9 + 4H, Np]; units N <= r < Np write
    // column r of s only; all contiguous.
    unsafe {
        neuron_kernel::launch_unchecked(
            &client,
            count,
            dim,
            pos.into_buffer_arg(),
            energy.into_buffer_arg(),
            wp.into_buffer_arg(),
            bp.into_buffer_arg(),
            w1.into_buffer_arg(),
            b1.into_buffer_arg(),
            g1.into_buffer_arg(),
            be1.into_buffer_arg(),
            w2.into_buffer_arg(),
            b2.into_buffer_arg(),
            g2.into_buffer_arg(),
            be2.into_buffer_arg(),
            w3.into_buffer_arg(),
            b3.into_buffer_arg(),
            y.clone().into_buffer_arg(),
            s.clone().into_buffer_arg(),
            n,
            np,
            h,
            f,
            fo,
            eps as f32,
        );
    }
    Some((y, s))
}

/// N rounded up so that every row of a [R, Np] f32 tensor starts at the
/// device's buffer-offset alignment: burn slices rows of it as views
/// (`rows`), where a misaligned slice would be a copy.
fn padded(client: &Client, n: usize) -> usize {
    let a = (client.properties().memory.alignment as usize / 4).max(1);
    n.div_ceil(a) * a
}

/// Rows [a, b) of a [R, Np] tensor, a view.
fn rows(t: &CubeTensor, a: usize, b: usize) -> CubeTensor {
    Cube::float_slice(t.clone(), &[Slice::from(a..b), Slice::from(..)])
}

/// The column sums of the backward's gradient rows (`sums`, 3 + 6H + F)
/// into the eight parameters' gradients, in one launch instead of eight
/// copies (the pieces are not aligned for views).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn split_kernel(
    sums: &[f32],
    bp: &mut [f32],
    b1: &mut [f32],
    g1: &mut [f32],
    be1: &mut [f32],
    b2: &mut [f32],
    g2: &mut [f32],
    be2: &mut [f32],
    b3: &mut [f32],
    h: usize,
    f: usize,
) {
    let i = ABSOLUTE_POS;
    if i >= 3 + 6 * h + f {
        terminate!();
    }
    let v = sums[i];
    if i < 3 {
        bp[i] = v;
    } else if i >= 3 + 6 * h {
        b3[i - 3 - 6 * h] = v;
    } else {
        let block = (i - 3) / h;
        let j = (i - 3) % h;
        if block == 0 {
            b1[j] = v;
        } else if block == 1 {
            g1[j] = v;
        } else if block == 2 {
            be1[j] = v;
        } else if block == 3 {
            b2[j] = v;
        } else if block == 4 {
            g2[j] = v;
        } else {
            be2[j] = v;
        }
    }
}

/// bp [3], b1, g1, be1, b2, g2, be2 [H], b3 [F] from the sums.
fn split(sums: &CubeTensor, h: usize, f: usize) -> [CubeTensor; 8] {
    let out = [3, h, h, h, h, h, h, f].map(|len| empty(sums, [len], DType::F32));
    let client = sums.client.clone();
    let (count, dim) = elementwise(&client, 3 + 6 * h + f);
    let [bp, b1, g1, be1, b2, g2, be2, b3] = out.each_ref().map(|t| t.clone().into_buffer_arg());
    // SAFETY: unit i < 3 + 6H + F = len(sums) writes element i's place in
    // exactly one output, each of the length its block has.
    unsafe {
        split_kernel::launch_unchecked(
            &client,
            count,
            dim,
            sums.clone().into_buffer_arg(),
            bp,
            b1,
            g1,
            be1,
            b2,
            g2,
            be2,
            b3,
            h,
            f,
        );
    }
    out
}

/// The fourteen gradients, in the order of `fused_neuron`'s inputs.
#[allow(clippy::type_complexity)]
fn backward(saved: CubeTensor, weights: [CubeTensor; 8], grad: CubeTensor) -> Option<[CubeTensor; 14]> {
    let [wp, w1, g1, be1, w2, g2, be2, w3] = weights;
    let (gsh, ssh) = (grad.shape(), saved.shape());
    if gsh.len() != 2 || ssh.len() != 2 {
        return None;
    }
    let (h, n, fo, np) = (len(&g1), gsh[0], gsh[1], ssh[1]);
    // dL/dy is [N, F], or [N, F + 1] when the energy was appended.
    let f = w3.shape().get(1).copied().unwrap_or(0);
    let fits = is_matrix(&saved, HEAD_ROWS + 4 * h, np) && np >= n && is_matrix(&w3, h, f) && (fo == f || fo == f + 1);
    if !fits || n * h * f == 0 || grad.dtype != DType::F32 {
        return None;
    }
    let [wp, w1, g1, be1, w2, g2, be2, w3, grad] = [wp, w1, g1, be1, w2, g2, be2, w3, grad].map(|t| f32_rows(&t));
    let [wp, w1, g1, be1, w2, g2, be2, w3, grad] = [wp?, w1?, g1?, be1?, w2?, g2?, be2?, w3?, grad?];
    let k = 3 + 6 * h + f;
    let gs = empty(&saved, [k, np], DType::F32);
    let dpos = empty(&saved, [n, 3], DType::F32);
    let de = empty(&saved, [n, 1], DType::F32);
    let client = saved.client.clone();
    let (count, dim) = elementwise(&client, np);
    // SAFETY: unit r < N reads column r of the saved [9 + 4H, Np]
    // (checked) and row r of dL/dy [N, Fo], the weights within their
    // shapes, and writes column r of gs [3 + 6H + F, Np] and row r of dpos
    // and de; units N <= r < Np write column r of gs only.
    unsafe {
        neuron_backward_kernel::launch_unchecked(
            &client,
            count,
            dim,
            saved.clone().into_buffer_arg(),
            wp.into_buffer_arg(),
            w1.into_buffer_arg(),
            g1.into_buffer_arg(),
            be1.into_buffer_arg(),
            w2.into_buffer_arg(),
            g2.into_buffer_arg(),
            be2.into_buffer_arg(),
            w3.into_buffer_arg(),
            grad.into_buffer_arg(),
            gs.clone().into_buffer_arg(),
            dpos.clone().into_buffer_arg(),
            de.clone().into_buffer_arg(),
            n,
            np,
            h,
            f,
            fo,
        );
    }
    let sums = Cube::float_reshape(Cube::float_sum_dim(gs.clone(), 1), [k].into());
    let [bp, b1, g1, be1, b2, g2, be2, b3] = split(&sums, h, f);
    // dW = (the layer's input)^T (dL/dz) over the padded length (zeros
    // there): the saved blocks are the transposes, the gradient blocks
    // transposed back are views.
    let t = |x: CubeTensor| Cube::float_swap_dims(x, 0, 1);
    let (a1, a2) = (HEAD_ROWS + h, HEAD_ROWS + 3 * h);
    let dwp = Cube::float_matmul(rows(&saved, 2, 5), t(rows(&gs, 0, 3)));
    let dw1 = Cube::float_matmul(rows(&saved, 5, 9), t(rows(&gs, 3, 3 + h)));
    let dw2 = Cube::float_matmul(rows(&saved, a1, a1 + h), t(rows(&gs, 3 + 3 * h, 3 + 4 * h)));
    let dw3 = Cube::float_matmul(rows(&saved, a2, a2 + h), t(rows(&gs, 3 + 6 * h, k)));
    Some([dpos, de, dwp, bp, dw1, b1, g1, be1, dw2, b2, g2, be2, dw3, b3])
}

impl NeuronOps for Cube {
    fn fused_neuron_saving(
        pos: CubeTensor,
        energy: CubeTensor,
        wp: CubeTensor,
        bp: CubeTensor,
        w1: CubeTensor,
        b1: CubeTensor,
        g1: CubeTensor,
        be1: CubeTensor,
        w2: CubeTensor,
        b2: CubeTensor,
        g2: CubeTensor,
        be2: CubeTensor,
        w3: CubeTensor,
        b3: CubeTensor,
        eps: f64,
        with_energy: bool,
    ) -> Option<(CubeTensor, CubeTensor)> {
        forward(
            [pos, energy, wp, bp, w1, b1, g1, be1, w2, b2, g2, be2, w3, b3],
            eps,
            with_energy,
        )
    }

    fn fused_neuron_backward(
        saved: CubeTensor,
        wp: CubeTensor,
        w1: CubeTensor,
        g1: CubeTensor,
        be1: CubeTensor,
        w2: CubeTensor,
        g2: CubeTensor,
        be2: CubeTensor,
        w3: CubeTensor,
        grad: CubeTensor,
    ) -> Option<Grads14<CubeTensor>> {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n] = backward(saved, [wp, w1, g1, be1, w2, g2, be2, w3], grad)?;
        Some((a, b, c, d, e, f, g, h, i, j, k, l, m, n))
    }
}
