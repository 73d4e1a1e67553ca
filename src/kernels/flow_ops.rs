//! The two primitives of the device-resident propagation step that burn
//! does not offer in a form a GPU can use, as a backend extension
//! (`FlowOps`):
//!
//! - `scan_rows`: the inclusive prefix sum of each row of an int matrix
//!   (the compaction's output slots, the per-sample child ranks). burn's
//!   own `cumsum` is one pass on Flex but quadratic on its Cube backends
//!   (each element re-adds every one before it), so Cube runs a CubeCL
//!   kernel of one dispatch (`scan_cube.rs`; other int types than i32 keep
//!   burn's `cumsum`).
//! - `flow_noise`: the exploration noise of one propagation step, N(0,
//!   sigma^2) per flow and axis from a counter-based generator
//!   (Philox4x32-10 of (flow, step) under the forward's seed, then
//!   Box-Muller), so any device draws it without a host stream and without
//!   uploading anything, and both step paths draw the same noise. The
//!   default body computes it on the host ([`noise_rows`], the reference:
//!   on Flex the host is the device); the Cube backends run it as a
//!   CubeCL kernel (`noise_cube.rs`).
//!
//! The rest of the device step is ordinary tensor ops (`flow_step.rs`).

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, Flex, TensorData, TensorMetadata, backend_extension,
};
use burn::tensor::{Int, Tensor};

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1,
/// 2, 3", SC 2011): four 32-bit words from a counter and a key.
pub fn philox4x32_10(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    const M0: u64 = 0xD251_1F53;
    const M1: u64 = 0xCD9E_8D57;
    for _ in 0..10 {
        let p0 = M0 * c[0] as u64;
        let p1 = M1 * c[2] as u64;
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [k[0].wrapping_add(0x9E37_79B9), k[1].wrapping_add(0xBB67_AE85)];
    }
    c
}

/// Third counter word of the noise: keeps its stream apart from any other
/// use of the same key.
pub const NOISE_STREAM: u32 = 0x6E6F_6973;

/// A uniform in (0, 1) from the top 23 bits of `w` (never 0, whose log is
/// taken, nor 1: 23 bits and the half fit an f32 exactly).
#[inline]
pub fn unit(w: u32) -> f32 {
    ((w >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// Three standard normals for flow `flow` at propagation step `step` under
/// `seed`: Box-Muller on Philox words 0-1 (x, y) and 2-3 (z).
pub fn normals(flow: u32, step: u32, seed: u64) -> [f32; 3] {
    let w = philox4x32_10([flow, step, NOISE_STREAM, 0], [seed as u32, (seed >> 32) as u32]);
    let r = (-2.0 * unit(w[0]).ln()).sqrt();
    let t = std::f32::consts::TAU * unit(w[1]);
    let rz = (-2.0 * unit(w[2]).ln()).sqrt();
    let tz = std::f32::consts::TAU * unit(w[3]);
    [r * t.cos(), r * t.sin(), rz * tz.cos()]
}

/// Flows per parallel task of [`noise_rows`] (and the least worth sharing).
const NOISE_PER_TASK: usize = 4096;

/// The noise of `n` flows at `step`, row-major [n, 3]: `sigma` times
/// [`normals`], z set to 0 unless `on_z`. Flow i's row depends on i alone,
/// so the rows are drawn in parallel.
pub fn noise_rows(n: usize, seed: u64, step: u32, sigma: f32, on_z: bool) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0.0f32; 3 * n];
    let fill = |(k, chunk): (usize, &mut [f32])| {
        for (j, row) in chunk.chunks_exact_mut(3).enumerate() {
            let [x, y, z] = normals((k * NOISE_PER_TASK + j) as u32, step, seed);
            row.copy_from_slice(&[sigma * x, sigma * y, if on_z { sigma * z } else { 0.0 }]);
        }
    };
    if n > NOISE_PER_TASK {
        out.par_chunks_mut(3 * NOISE_PER_TASK).enumerate().for_each(fill);
    } else {
        out.chunks_mut(3 * NOISE_PER_TASK).enumerate().for_each(fill);
    }
    out
}

/// What `flow_noise` draws: for `step` under `seed`, scaled by `sigma`,
/// with or without z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseSpec {
    pub seed: u64,
    pub step: u32,
    pub sigma: f32,
    pub on_z: bool,
}

/// Prefix sums and noise for the device step (see the module docs).
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait FlowOps: Backend {
    /// Inclusive prefix sum along dimension 1 of an int matrix [R, N].
    fn scan_rows(x: IntTensor<Self>) -> IntTensor<Self> {
        Self::int_cumsum(x, 1)
    }

    /// The step's noise [N, 3] for the N rows of `like` (its values are
    /// not read; it gives the row count and the device).
    fn flow_noise(like: FloatTensor<Self>, seed: u64, step: u32, sigma: f32, on_z: bool) -> FloatTensor<Self> {
        let n = like.shape()[0];
        let data = TensorData::new(noise_rows(n, seed, step, sigma, on_z), [n, 3]);
        Self::float_from_data(data, &like.device())
    }
}

impl FlowOps for Flex {}

#[cfg(gpu)]
impl FlowOps for burn::backend::Cube {
    /// One dispatch (`scan_cube.rs`), else burn's `cumsum`.
    fn scan_rows(x: IntTensor<Self>) -> IntTensor<Self> {
        super::scan_cube::scan_rows(&x)
            .unwrap_or_else(|| <Self as burn::backend::ops::IntTensorOps<Self>>::int_cumsum(x, 1))
    }

    /// Drawn on the device (`noise_cube.rs`): nothing uploaded per step.
    fn flow_noise(like: FloatTensor<Self>, seed: u64, step: u32, sigma: f32, on_z: bool) -> FloatTensor<Self> {
        let rows = like.shape()[0];
        super::noise_cube::noise(&like, rows, seed, step, sigma, on_z)
    }
}

impl<B: Backend + FlowOps, C: CheckpointStrategy> FlowOps for Autodiff<B, C> {
    fn scan_rows(x: IntTensor<Self>) -> IntTensor<Self> {
        B::scan_rows(x)
    }

    fn flow_noise(like: FloatTensor<Self>, seed: u64, step: u32, sigma: f32, on_z: bool) -> FloatTensor<Self> {
        // A constant: nothing flows back through the noise.
        let inner = B::flow_noise(like.into_primitive(), seed, step, sigma, on_z);
        <Self as AutodiffBackend>::from_inner(inner)
    }
}

/// Inclusive prefix sums of the rows of `x` [R, N].
pub fn scan_rows(x: Tensor<2, Int>) -> Tensor<2, Int> {
    Tensor::from_dispatch(<Dispatch as FlowOps>::scan_rows(x.into_dispatch()))
}

/// The noise of `spec` for the rows of `like` [N, _], on its device: a
/// constant (no gradient).
pub fn flow_noise(like: &Tensor<2>, spec: NoiseSpec) -> Tensor<2> {
    let like = like.clone().inner();
    Tensor::from_dispatch(<Dispatch as FlowOps>::flow_noise(
        like.into_dispatch(),
        spec.seed,
        spec.step,
        spec.sigma,
        spec.on_z,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_gives_random123s_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn unit_stays_strictly_inside_0_1() {
        assert!(unit(0) > 0.0 && unit(u32::MAX) < 1.0);
        assert_eq!(unit(0), 0.5 / 8_388_608.0);
        assert_eq!(unit(u32::MAX), 1.0 - 0.5 / 8_388_608.0);
    }
}
