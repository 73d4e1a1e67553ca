//! The slow, obvious collection: the test oracle and the benchmark baseline.
//! NEVER used in training.
//!
//! It does what the reference did, minus its bugs: a HashMap from key to a
//! Vec of flows, filled one flow at a time; then per group one `select`, one
//! softmax and one weighted sum on the device; then the surface is assembled
//! from one tensor per cell. Also a pure-host f64 version, the second
//! independent check when the naive run is too slow to do.

use super::collect::weight_factor;
use super::store::CompletedMeta;
use crate::device;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use std::collections::HashMap;

/// Naive collection on the device: same value and gradient as
/// `Aggregator::collect`, one group at a time.
pub fn collect_naive(energy: Tensor<1>, meta: &CompletedMeta, n_keys: usize) -> Tensor<1> {
    let dev = energy.device();
    let mut groups: HashMap<u32, Vec<u32>> = HashMap::new();
    for i in 0..meta.len() {
        groups.entry(meta.key[i]).or_default().push(i as u32);
    }
    let zero = Tensor::<1>::zeros([1], &dev);
    let mut cells: Vec<Tensor<1>> = Vec::with_capacity(n_keys);
    for key in 0..n_keys as u32 {
        match groups.get(&key) {
            None => cells.push(zero.clone()),
            Some(flows) => {
                let e = energy.clone().select(0, device::indices(flows, &dev));
                let c: Vec<f32> = flows
                    .iter()
                    .map(|&i| weight_factor(meta.steps[i as usize], meta.z[i as usize]))
                    .collect();
                let w = e.clone().abs() * device::vector(c, &dev);
                let p = softmax(w, 0);
                cells.push((p * e).sum());
            }
        }
    }
    Tensor::cat(cells, 0)
}

/// Pure-host f64 collection (values only).
pub fn collect_reference_f64(energy: &[f32], meta: &CompletedMeta, n_keys: usize) -> Vec<f64> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n_keys];
    for i in 0..meta.len() {
        groups[meta.key[i] as usize].push(i);
    }
    groups
        .iter()
        .map(|g| {
            if g.is_empty() {
                return 0.0;
            }
            let w: Vec<f64> = g
                .iter()
                .map(|&i| energy[i].abs() as f64 * weight_factor(meta.steps[i], meta.z[i]) as f64)
                .collect();
            let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let den: f64 = w.iter().map(|x| (x - m).exp()).sum();
            g.iter()
                .zip(&w)
                .map(|(&i, x)| (x - m).exp() / den * energy[i] as f64)
                .sum()
        })
        .collect()
}
