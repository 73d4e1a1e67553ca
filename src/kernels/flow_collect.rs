//! The collection (MODEL.md s.4 step 4) on the device: the device twin of
//! `flow::collect::Aggregator`, for the device step, whose completed flows'
//! keys, steps and z never leave the device.
//!
//! For group g with flows i: `w_i = |e_i| (1 + 0.1 steps_i) / (1 + d_i)`,
//! `v_g = sum_i softmax_g(w)_i e_i`, empty cells 0. It is the segment
//! softmax itself, in tensor ops that autodiff differentiates exactly: the
//! group max of the detached weights by `select_assign(.., Max)` (w >= 0,
//! so a zero start is a lower bound that every non-empty group exceeds or
//! meets), `exp(w - max)`, the denominators and the numerators by two
//! `select_assign(.., Add)`, one division. Subtracting a constant per group
//! changes neither the value nor the gradient of a softmax, so the result
//! is the same value and gradient as the host's (checked against the naive
//! oracle and finite differences).
//!
//! On burn's Cube backends the same softmax runs as CubeCL kernels
//! (`segment.rs`, `segment_cube.rs`: parallel over groups and flows, with
//! a handwritten backward), since burn's 1-D `select_assign` there is one
//! unit looping over every flow.
//!
//! Not for the host step, whose host already holds the metadata and uses
//! `Aggregator` (host coefficients, one scatter-add); `bench collect`
//! times both.

use super::segment::segment_softmax;
use burn::tensor::{IndexingUpdateOp, Int, Tensor};

/// The completed flows of a forward on the device: energies [M] (on the
/// autodiff graph), group keys `sample * S + cell`, steps taken, final z.
#[derive(Debug, Clone)]
pub struct DoneOnDevice {
    pub energy: Tensor<1>,
    pub key: Tensor<1, Int>,
    pub steps: Tensor<1, Int>,
    pub z: Tensor<1>,
}

/// The surface [n_keys] of the completed flows `done`, and the number of
/// non-empty groups as a [1] int tensor (left on the device: the caller
/// reads it with whatever else it reads). Through the backend's segment
/// softmax kernel where it has one, else `collect_on_device_composed`.
pub fn collect_on_device(done: DoneOnDevice, n_keys: usize) -> (Tensor<1>, Tensor<1, Int>) {
    let (energy, c, key) = factors(done);
    let Some(surface) = segment_softmax(&energy, &c, &key, n_keys) else {
        return composed(energy, c, key, n_keys);
    };
    // Groups with a flow, by an integer scatter (atomic on a GPU).
    let ones = key.ones_like();
    let per_key = Tensor::<1, Int>::zeros([n_keys], &energy.device()).scatter(0, key, ones, IndexingUpdateOp::Add);
    (surface, per_key.greater_elem(0).int().sum())
}

/// `collect_on_device` in burn's ops on every backend (the CPU's path, and
/// the baseline `bench collect` times the GPU kernel against).
pub fn collect_on_device_composed(done: DoneOnDevice, n_keys: usize) -> (Tensor<1>, Tensor<1, Int>) {
    let (energy, c, key) = factors(done);
    composed(energy, c, key, n_keys)
}

/// Energies, the detached factors c = (1 + 0.1 steps) / (1 + d) with
/// d = min(|z + 1|, |z - 1|) (`weight_factor`), and the keys.
fn factors(done: DoneOnDevice) -> (Tensor<1>, Tensor<1>, Tensor<1, Int>) {
    let DoneOnDevice { energy, key, steps, z } = done;
    let d = (z.clone() + 1.0).abs().min_pair((z - 1.0).abs());
    let c = (steps.float() * 0.1 + 1.0) / (d + 1.0);
    (energy, c, key)
}

fn composed(energy: Tensor<1>, c: Tensor<1>, key: Tensor<1, Int>, n_keys: usize) -> (Tensor<1>, Tensor<1, Int>) {
    let dev = energy.device();
    let w = energy.clone().abs() * c;
    let zeros = || Tensor::<1>::zeros([n_keys], &dev);
    let max = zeros().select_assign(0, key.clone(), w.clone().detach(), IndexingUpdateOp::Max);
    let x = (w - max.select(0, key.clone())).exp();
    let den = zeros().select_assign(0, key.clone(), x.clone(), IndexingUpdateOp::Add);
    let num = zeros().select_assign(0, key, x * energy, IndexingUpdateOp::Add);
    let empty = den.clone().detach().equal_elem(0.0);
    let groups = empty.clone().bool_not().int().sum();
    // Empty cells: 0 / 1.
    let surface = num / (den + empty.float());
    (surface, groups)
}
