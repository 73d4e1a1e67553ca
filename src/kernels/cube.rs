//! What the CubeCL kernels of the GPU backends (`*_cube.rs`) share: the
//! host side's checks and buffers, the launch geometry of an elementwise
//! pass, and the f32 transcendentals written in `#[cube]`.
//!
//! Every kernel here reads and writes contiguous f32 rows by flat index;
//! [`f32_rows`] makes an input so (copying a strided view) and refuses
//! other dtypes, which the callers leave to the composed default bodies.
//!
//! The transcendentals follow `math.rs` (the CPU kernels) formula for
//! formula, with the device's own `exp`: `tanh` as an odd polynomial near 0
//! and 1 - 2 / (e^2x + 1) elsewhere (the drivers' `tanh` builtins differ
//! in accuracy, and some return NaN for large inputs), GELU from the same
//! erfc fit, so that GPU and CPU agree to the f32 rounding of `exp`.

use burn::backend::DType;
use burn::backend::TensorMetadata;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise, client::Client};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

/// `t` as contiguous rows of f32 (itself when it already is), or None for
/// another dtype.
pub(super) fn f32_rows(t: &CubeTensor) -> Option<CubeTensor> {
    (t.dtype == DType::F32).then(|| into_contiguous(t.clone()))
}

/// A new contiguous tensor of `dtype` on `like`'s device, not cleared.
pub(super) fn empty(like: &CubeTensor, shape: impl Into<burn::backend::Shape>, dtype: DType) -> CubeTensor {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape.into(), dtype)
}

/// Whether `t` is a [rows, cols] matrix.
pub(super) fn is_matrix(t: &CubeTensor, rows: usize, cols: usize) -> bool {
    let s = t.shape();
    s.len() == 2 && s[0] == rows && s[1] == cols
}

/// The number of elements of `t`.
pub(super) fn len(t: &CubeTensor) -> usize {
    t.shape().num_elements()
}

/// Cubes and their size for `n` independent units of work (one each).
pub(super) fn elementwise(client: &Client, n: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(client, n);
    (calculate_cube_count_elemwise(client, n, dim), dim)
}

/// 1 / (1 + e^-x).
#[cube]
pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + f32::exp(-x))
}

/// tanh(x): Cephes' odd polynomial for |x| < 0.625 (where the formula
/// below would lose its relative accuracy), 1 - 2 / (e^2|x| + 1) with x's
/// sign elsewhere, which saturates at +-1 instead of overflowing.
#[cube]
pub(super) fn tanh(x: f32) -> f32 {
    let a = f32::abs(x);
    let z = x * x;
    let mut p = (-5.704_988_7e-3f32).runtime();
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 0.133_314_42;
    p = p * z - 0.333_332_8;
    let small = p * z * x + x;
    let large = 1.0 - 2.0 / (f32::exp(2.0 * a) + 1.0);
    let large = select(x < 0.0, -large, large);
    select(a < 0.625, small, large)
}

/// Phi(x), the standard normal CDF, from erfc(|x| / sqrt 2) = t e^{-x^2/2}
/// e^{P(t)}, t = 1 / (1 + |x| / (2 sqrt 2)): Numerical Recipes' `erfcc`
/// fit, as in `math.rs`, so the tail keeps its relative accuracy.
#[cube]
pub(super) fn normal_cdf(x: f32, gauss: f32) -> f32 {
    let z = f32::abs(x) * 0.707_106_77;
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = 0.170_872_77f32;
    p = p * t - 0.822_152_23;
    p = p * t + 1.488_515_9;
    p = p * t - 1.135_204;
    p = p * t + 0.278_868_07;
    p = p * t - 0.186_288_06;
    p = p * t + 0.096_784_18;
    p = p * t + 0.374_091_96;
    p = p * t + 1.000_023_7;
    p = p * t - 1.265_512_2;
    let tail = 0.5 * t * gauss * f32::exp(p);
    select(x < 0.0, tail, 1.0 - tail)
}

/// e^{-x^2 / 2}.
#[cube]
pub(super) fn gauss(x: f32) -> f32 {
    f32::exp(-0.5f32 * x * x)
}

/// 1 / sqrt(2 pi): phi(x) = gauss(x) / sqrt(2 pi).
pub(super) const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
