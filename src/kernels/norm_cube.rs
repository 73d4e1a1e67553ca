//! `NormOps` for burn's Cube backend (Vulkan, wgpu): LayerNorm as CubeCL
//! kernels, the loops of `norm_cpu.rs` with one unit per row.
//!
//! Forward: one pass, each unit reading its row twice (moments, then the
//! output) and writing y and, in training, x̂ and rstd. Backward: one pass
//! per row for dx, then burn's column sums (`float_sum_dim`) for dgamma
//! and dbeta. A unit per row suits the model's narrow rows (the neuron's
//! 32 features over up to 320 000 flows); rows of thousands would want a
//! cube per row, which the model does not have.
//!
//! Non-f32 inputs and empty ones take the composed default bodies.

use super::cube::{elementwise, empty, f32_rows, is_matrix, len};
use super::norm::{NormOps, composed_backward, composed_saving};
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn norm_kernel(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
    rows: usize,
    d: usize,
    eps: f32,
    #[comptime] save: bool,
) {
    let r = ABSOLUTE_POS;
    if r >= rows {
        terminate!();
    }
    let o = r * d;
    let width = f32::cast_from(d);
    let mut sum = 0.0f32;
    for j in 0..d {
        sum += x[o + j];
    }
    let mean = sum / width;
    let mut sq = 0.0f32;
    for j in 0..d {
        let c = x[o + j] - mean;
        sq += c * c;
    }
    let s = 1.0f32 / f32::sqrt(sq / width + eps);
    for j in 0..d {
        let h = (x[o + j] - mean) * s;
        y[o + j] = h * gamma[j] + beta[j];
        if save {
            xhat[o + j] = h;
        }
    }
    if save {
        rstd[r] = s;
    }
}

#[cube(launch_unchecked)]
fn norm_backward_kernel(
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    grad: &[f32],
    dx: &mut [f32],
    rows: usize,
    d: usize,
) {
    let r = ABSOLUTE_POS;
    if r >= rows {
        terminate!();
    }
    let o = r * d;
    let mut m1 = 0.0f32;
    let mut m2 = 0.0f32;
    for j in 0..d {
        let g = grad[o + j] * gamma[j];
        m1 += g;
        m2 += g * xhat[o + j];
    }
    let width = f32::cast_from(d);
    m1 /= width;
    m2 /= width;
    let s = rstd[r];
    for j in 0..d {
        dx[o + j] = s * (grad[o + j] * gamma[j] - m1 - xhat[o + j] * m2);
    }
}

/// N and D of x [N, D] when the weights are [D] and there is work; None
/// where the composed body must run.
fn sizes(x: &CubeTensor, gamma: &CubeTensor, beta: &CubeTensor) -> Option<(usize, usize)> {
    let s = x.shape();
    if s.len() != 2 {
        return None;
    }
    let (n, d) = (s[0], s[1]);
    (len(gamma) == d && len(beta) == d && n * d > 0).then_some((n, d))
}

/// y and, when `save`, x̂ and rstd [N, 1].
fn forward(
    x: &CubeTensor,
    gamma: &CubeTensor,
    beta: &CubeTensor,
    eps: f64,
    save: bool,
) -> Option<(CubeTensor, CubeTensor, CubeTensor)> {
    let (n, d) = sizes(x, gamma, beta)?;
    let (x, gamma, beta) = (f32_rows(x)?, f32_rows(gamma)?, f32_rows(beta)?);
    let y = empty(&x, [n, d], DType::F32);
    // Not kept in inference: one-element stand-ins the kernel never writes.
    let (xhat, rstd) = if save {
        (empty(&x, [n, d], DType::F32), empty(&x, [n, 1], DType::F32))
    } else {
        (empty(&x, [1, 1], DType::F32), empty(&x, [1, 1], DType::F32))
    };
    let client = x.client.clone();
    let (count, dim) = elementwise(&client, n);
    // SAFETY: unit r < N touches row r of x, y, x̂ (D elements each, all
    // contiguous and of the sizes checked) and rstd[r], and x̂ and rstd
    // only when `save`, where they have N D and N elements.
    unsafe {
        norm_kernel::launch_unchecked(
            &client,
            count,
            dim,
            x.into_buffer_arg(),
            gamma.into_buffer_arg(),
            beta.into_buffer_arg(),
            y.clone().into_buffer_arg(),
            xhat.clone().into_buffer_arg(),
            rstd.clone().into_buffer_arg(),
            n,
            d,
            eps as f32,
            save,
        );
    }
    Some((y, xhat, rstd))
}

fn backward(
    xhat: &CubeTensor,
    rstd: &CubeTensor,
    gamma: &CubeTensor,
    grad: &CubeTensor,
) -> Option<(CubeTensor, CubeTensor, CubeTensor)> {
    let s = xhat.shape();
    if s.len() != 2 {
        return None;
    }
    let (n, d) = (s[0], s[1]);
    if !is_matrix(grad, n, d) || len(rstd) != n || len(gamma) != d || n * d == 0 {
        return None;
    }
    let (xhat, rstd, gamma, grad) = (f32_rows(xhat)?, f32_rows(rstd)?, f32_rows(gamma)?, f32_rows(grad)?);
    let dx = empty(&xhat, [n, d], DType::F32);
    let client = xhat.client.clone();
    let (count, dim) = elementwise(&client, n);
    let col_sum = |t: CubeTensor| Cube::float_reshape(Cube::float_sum_dim(t, 0), [d].into());
    let d_gamma = col_sum(Cube::float_mul(grad.clone(), xhat.clone()));
    let d_beta = col_sum(grad.clone());
    // SAFETY: unit r < N touches row r of x̂, dL/dy and dx and rstd[r], of
    // the sizes checked above, all contiguous.
    unsafe {
        norm_backward_kernel::launch_unchecked(
            &client,
            count,
            dim,
            xhat.into_buffer_arg(),
            rstd.into_buffer_arg(),
            gamma.into_buffer_arg(),
            grad.into_buffer_arg(),
            dx.clone().into_buffer_arg(),
            n,
            d,
        );
    }
    Some((dx, d_gamma, d_beta))
}

impl NormOps for Cube {
    fn fused_layer_norm(x: CubeTensor, gamma: CubeTensor, beta: CubeTensor, eps: f64) -> CubeTensor {
        match forward(&x, &gamma, &beta, eps, false) {
            Some((y, _, _)) => y,
            None => composed_saving::<Cube>(x, gamma, beta, eps).0,
        }
    }

    fn fused_layer_norm_saving(
        x: CubeTensor,
        gamma: CubeTensor,
        beta: CubeTensor,
        eps: f64,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        forward(&x, &gamma, &beta, eps, true).unwrap_or_else(|| composed_saving::<Cube>(x, gamma, beta, eps))
    }

    fn fused_layer_norm_backward(
        xhat: CubeTensor,
        rstd: CubeTensor,
        gamma: CubeTensor,
        grad: CubeTensor,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        backward(&xhat, &rstd, &gamma, &grad).unwrap_or_else(|| composed_backward::<Cube>(xhat, rstd, gamma, grad))
    }
}
