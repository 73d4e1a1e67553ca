//! `GruOps` for burn's Cube backend (Vulkan, wgpu): the GRU cell of
//! `gru_cpu.rs` as CubeCL kernels.
//!
//! Forward: one elementwise pass over [N, H], one unit per h' element,
//! reading its three gate columns of gx and gh and the biases (added here,
//! not in passes of their own) and writing h' and, in training, the saved
//! gates r | z | n | gh_n + bh_n ([N, 4H]). Backward: one elementwise pass
//! from those gates, h and dL/dh' to d_gx, d_gh and d_h, then burn's
//! column sum (`float_sum_dim`, on the device) for the bias gradients.
//! The same arithmetic, in the same order, as the CPU loops.
//!
//! Non-f32 inputs and empty ones take the composed default bodies.

use super::cube::{elementwise, empty, f32_rows, is_matrix, len, sigmoid, tanh};
use super::gru::{GruOps, composed_backward, composed_saving};
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// The four values the backward needs of one h' element.
#[derive(CubeType)]
struct Gates {
    r: f32,
    z: f32,
    n: f32,
    /// gh_n + bh_n.
    ghn: f32,
}

/// The gates of element `i` of [N, H] (row `i / hd`, column `i % hd`).
#[cube]
fn gates(gx: &[f32], gh: &[f32], bi: &[f32], bh: &[f32], i: usize, hd: usize) -> Gates {
    let j = i % hd;
    let g = (i / hd) * 3 * hd + j;
    let r = sigmoid(gx[g] + gh[g] + (bi[j] + bh[j]));
    let z = sigmoid(gx[g + hd] + gh[g + hd] + (bi[j + hd] + bh[j + hd]));
    let ghn = gh[g + 2 * hd] + bh[j + 2 * hd];
    let n = tanh(gx[g + 2 * hd] + bi[j + 2 * hd] + r * ghn);
    Gates { r, z, n, ghn }
}

#[cube(launch_unchecked)]
fn gru_forward_kernel(
    gx: &[f32],
    gh: &[f32],
    h: &[f32],
    bi: &[f32],
    bh: &[f32],
    out: &mut [f32],
    elements: usize,
    hd: usize,
) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let g = gates(gx, gh, bi, bh, i, hd);
    out[i] = g.n + g.z * (h[i] - g.n);
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn gru_forward_saving_kernel(
    gx: &[f32],
    gh: &[f32],
    h: &[f32],
    bi: &[f32],
    bh: &[f32],
    out: &mut [f32],
    saved: &mut [f32],
    elements: usize,
    hd: usize,
) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let g = gates(gx, gh, bi, bh, i, hd);
    out[i] = g.n + g.z * (h[i] - g.n);
    let s = (i / hd) * 4 * hd + i % hd;
    saved[s] = g.r;
    saved[s + hd] = g.z;
    saved[s + 2 * hd] = g.n;
    saved[s + 3 * hd] = g.ghn;
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn gru_backward_kernel(
    saved: &[f32],
    h: &[f32],
    grad: &[f32],
    d_gx: &mut [f32],
    d_gh: &mut [f32],
    d_h: &mut [f32],
    elements: usize,
    hd: usize,
) {
    let i = ABSOLUTE_POS;
    if i >= elements {
        terminate!();
    }
    let j = i % hd;
    let row = i / hd;
    let s = row * 4 * hd + j;
    let r = saved[s];
    let z = saved[s + hd];
    let n = saved[s + 2 * hd];
    let ghn = saved[s + 3 * hd];
    let g = grad[i];
    d_h[i] = g * z;
    let da_z = g * (h[i] - n) * z * (1.0 - z);
    let da_n = g * (1.0 - z) * (1.0 - n * n);
    let da_r = da_n * ghn * r * (1.0 - r);
    let o = row * 3 * hd + j;
    d_gx[o] = da_r;
    d_gx[o + hd] = da_z;
    d_gx[o + 2 * hd] = da_n;
    d_gh[o] = da_r;
    d_gh[o + hd] = da_z;
    d_gh[o + 2 * hd] = da_n * r;
}

/// N and H of the state h [N, H].
fn rows_and_width(h: &CubeTensor) -> Option<(usize, usize)> {
    let s = h.shape();
    (s.len() == 2).then(|| (s[0], s[1]))
}

/// The five inputs as contiguous f32 with their sizes checked, or None
/// (the caller takes the composed body).
fn inputs(t: [&CubeTensor; 5]) -> Option<([CubeTensor; 5], usize, usize)> {
    let [gx, gh, h, bi, bh] = t;
    let (n, hd) = rows_and_width(h)?;
    let fits =
        is_matrix(gx, n, 3 * hd) && is_matrix(gh, n, 3 * hd) && len(bi) == 3 * hd && len(bh) == 3 * hd && n * hd > 0;
    if !fits {
        return None;
    }
    Some((
        [f32_rows(gx)?, f32_rows(gh)?, f32_rows(h)?, f32_rows(bi)?, f32_rows(bh)?],
        n,
        hd,
    ))
}

/// h' and, when `save`, the gates; None where the composed body must run.
fn forward(t: [&CubeTensor; 5], save: bool) -> Option<(CubeTensor, Option<CubeTensor>)> {
    let ([gx, gh, h, bi, bh], n, hd) = inputs(t)?;
    let out = empty(&h, [n, hd], DType::F32);
    let client = out.client.clone();
    let (count, dim) = elementwise(&client, n * hd);
    // SAFETY: every index the kernels touch is below `elements` = N H, in
    // rows of the sizes checked by `inputs`, all contiguous.
    unsafe {
        if save {
            let saved = empty(&h, [n, 4 * hd], DType::F32);
            gru_forward_saving_kernel::launch_unchecked(
                &client,
                count,
                dim,
                gx.into_buffer_arg(),
                gh.into_buffer_arg(),
                h.into_buffer_arg(),
                bi.into_buffer_arg(),
                bh.into_buffer_arg(),
                out.clone().into_buffer_arg(),
                saved.clone().into_buffer_arg(),
                n * hd,
                hd,
            );
            Some((out, Some(saved)))
        } else {
            gru_forward_kernel::launch_unchecked(
                &client,
                count,
                dim,
                gx.into_buffer_arg(),
                gh.into_buffer_arg(),
                h.into_buffer_arg(),
                bi.into_buffer_arg(),
                bh.into_buffer_arg(),
                out.clone().into_buffer_arg(),
                n * hd,
                hd,
            );
            Some((out, None))
        }
    }
}

type Grads = (CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor);

fn backward(saved: &CubeTensor, h: &CubeTensor, grad: &CubeTensor) -> Option<Grads> {
    let (n, hd) = rows_and_width(h)?;
    if !is_matrix(saved, n, 4 * hd) || !is_matrix(grad, n, hd) || n * hd == 0 {
        return None;
    }
    let (saved, h, grad) = (f32_rows(saved)?, f32_rows(h)?, f32_rows(grad)?);
    let d_gx = empty(&h, [n, 3 * hd], DType::F32);
    let d_gh = empty(&h, [n, 3 * hd], DType::F32);
    let d_h = empty(&h, [n, hd], DType::F32);
    let client = h.client.clone();
    let (count, dim) = elementwise(&client, n * hd);
    // SAFETY: as in `forward`; the sizes were checked above.
    unsafe {
        gru_backward_kernel::launch_unchecked(
            &client,
            count,
            dim,
            saved.into_buffer_arg(),
            h.into_buffer_arg(),
            grad.into_buffer_arg(),
            d_gx.clone().into_buffer_arg(),
            d_gh.clone().into_buffer_arg(),
            d_h.clone().into_buffer_arg(),
            n * hd,
            hd,
        );
    }
    let col_sum = |t: &CubeTensor| Cube::float_reshape(Cube::float_sum_dim(t.clone(), 0), [3 * hd].into());
    let (d_bi, d_bh) = (col_sum(&d_gx), col_sum(&d_gh));
    Some((d_gx, d_gh, d_h, d_bi, d_bh))
}

impl GruOps for Cube {
    fn gru_cell(gx: CubeTensor, gh: CubeTensor, h: CubeTensor, bi: CubeTensor, bh: CubeTensor) -> CubeTensor {
        match forward([&gx, &gh, &h, &bi, &bh], false) {
            Some((out, _)) => out,
            None => composed_saving::<Cube>(gx, gh, h, bi, bh).0,
        }
    }

    fn gru_cell_saving(
        gx: CubeTensor,
        gh: CubeTensor,
        h: CubeTensor,
        bi: CubeTensor,
        bh: CubeTensor,
    ) -> (CubeTensor, CubeTensor) {
        match forward([&gx, &gh, &h, &bi, &bh], true) {
            Some((out, Some(saved))) => (out, saved),
            _ => composed_saving::<Cube>(gx, gh, h, bi, bh),
        }
    }

    fn gru_cell_backward(saved: CubeTensor, h: CubeTensor, grad: CubeTensor) -> Grads {
        backward(&saved, &h, &grad).unwrap_or_else(|| composed_backward::<Cube>(saved, h, grad))
    }
}
