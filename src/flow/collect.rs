//! Collection (seed s.1 and s.3, MODEL.md s.4 step 4): completed flows are
//! grouped by `key = sample * S + cell` and each group's energies are
//! aggregated with a softmax weighting into one surface value.
//!
//! For group g with flows i: `w_i = |e_i| * c_i` with the constant
//! `c_i = (1 + 0.1 * steps_i) / (1 + d_i)`, `p = softmax_g(w)` (stable: the
//! group max is subtracted, detached), `v_g = sum_i p_i e_i`. Empty cells
//! are 0. Flows of different samples never share a key.
//!
//! How it is fast: grouping is one counting sort (`CellGrid`, O(N + keys)),
//! so each group is a contiguous run; the softmax, the values and the
//! derivative coefficients are computed on the host in one pass over the
//! runs (f64 accumulation); the device then does a handful of elementwise
//! ops and ONE scatter-add:
//!
//! `surface = scatter_add(key, a * e + b * |e| + k)`
//!
//! (the scatter-add is `kernels::scatter_rows`: Flex's own on the CPU, our
//! parallel kernel on the Cube backends, where burn's is one serial loop)
//!
//! with host constants `a_i = p_i`, `b_i = p_i (e_i - v_g) c_i` and
//! `k_i = -b_i |e_i|`. Its value is exactly `v_g` (the b-terms cancel) and
//! its derivative in e_j is `p_j + p_j (e_j - v_g) c_j sign(e_j)`, which is
//! the derivative of the segment softmax through both the values and the
//! weights. It is first-order exact, which is all back-propagation uses.

use super::spatial::CellGrid;
use super::store::CompletedMeta;
use crate::device;
use crate::error::Result;
use crate::geometry::surface_distance;
use crate::kernels::scatter_rows;
use burn::tensor::Tensor;

/// The weight constant c = (1 + 0.1 steps) / (1 + d).
#[inline]
pub fn weight_factor(steps: u32, z: f32) -> f32 {
    (1.0 + 0.1 * steps as f32) / (1.0 + surface_distance(z))
}

/// The collection and its reusable scratch (the grouping grid and the
/// coefficient buffers). Not to be confused with the readout network,
/// `model::collector::OutputCollector`.
#[derive(Debug, Default)]
pub struct Aggregator {
    grid: CellGrid,
    a: Vec<f32>,
    b: Vec<f32>,
    k: Vec<f32>,
}

/// Per-forward summary of the collection.
#[derive(Debug, Clone, Copy, Default)]
pub struct CollectSummary {
    /// Groups (sample, cell) with at least one flow.
    pub groups: usize,
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Aggregates completed flows into a flat surface of `n_keys` values.
    /// `energy` [N] is on the device; `meta` holds the flows' keys, steps
    /// and z. Reads the energies back once.
    pub fn collect(
        &mut self,
        energy: Tensor<1>,
        meta: &CompletedMeta,
        n_keys: usize,
    ) -> Result<(Tensor<1>, CollectSummary)> {
        let dev = energy.device();
        let e = device::to_vec(energy.clone())?;
        let groups = self.coefficients(&e, meta, n_keys);
        let n = e.len();
        let a = device::vector(std::mem::take(&mut self.a), &dev);
        let b = device::vector(std::mem::take(&mut self.b), &dev);
        let k = device::vector(std::mem::take(&mut self.k), &dev);
        let contrib = energy.clone() * a + energy.abs() * b + k;
        let keys = device::indices(&meta.key, &dev);
        let surface = scatter_rows(contrib.reshape([n, 1]), keys, n_keys).reshape([n_keys]);
        debug_assert_eq!(n, meta.len());
        Ok((surface, CollectSummary { groups }))
    }

    /// Host pass: groups the flows and fills `a`, `b`, `k` (see module
    /// docs). Returns the number of non-empty groups.
    pub fn coefficients(&mut self, e: &[f32], meta: &CompletedMeta, n_keys: usize) -> usize {
        let n = e.len();
        self.grid.rebuild(&meta.key, n_keys);
        self.a.clear();
        self.a.resize(n, 0.0);
        self.b.clear();
        self.b.resize(n, 0.0);
        self.k.clear();
        self.k.resize(n, 0.0);
        let offsets = self.grid.offsets();
        let items = self.grid.items();
        let mut groups = 0;
        for g in 0..n_keys {
            let run = &items[offsets[g] as usize..offsets[g + 1] as usize];
            if run.is_empty() {
                continue;
            }
            groups += 1;
            let w = |i: u32| {
                let i = i as usize;
                e[i].abs() as f64 * weight_factor(meta.steps[i], meta.z[i]) as f64
            };
            let max = run.iter().map(|&i| w(i)).fold(f64::NEG_INFINITY, f64::max);
            let (mut den, mut num) = (0.0f64, 0.0f64);
            for &i in run {
                let x = (w(i) - max).exp();
                den += x;
                num += x * e[i as usize] as f64;
            }
            let v = num / den;
            for &i in run {
                let iu = i as usize;
                let p = (w(i) - max).exp() / den;
                let c = weight_factor(meta.steps[iu], meta.z[iu]) as f64;
                let b = p * (e[iu] as f64 - v) * c;
                self.a[iu] = p as f32;
                self.b[iu] = b as f32;
                self.k[iu] = (-b * e[iu].abs() as f64) as f32;
            }
        }
        groups
    }
}
