//! One propagation step on both bookkeeping paths, on random flows (walls,
//! both planes, projection, spawning, the capacity with fair sharing):
//! tests/device_step.rs runs it on the CPU, tests/gpu/step.rs with the
//! GPU's kernels.

use burn::tensor::{Device, Int, Tensor};
use energyflow::device;
use energyflow::flow::rules::{step_length, wall};
use energyflow::flow::{ActiveTensors, FlowStats, FlowStore, StepRules, advance};
use energyflow::geometry::Lattice;
use energyflow::kernels::Kernels;
use energyflow::kernels::flow_step::{DeviceStep, DoneFlows, FlowIds, Iota, StepCounts};
use proptest::prelude::*;

pub fn ints(t: Tensor<1, Int>) -> Vec<i64> {
    device::ints_to_vec(t).unwrap()
}

pub fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    device::to_vec(t).unwrap()
}

/// One step's inputs: flows before the step and their raw new positions.
#[derive(Debug, Clone)]
pub struct Case {
    pub rules: StepRules,
    pub old: Vec<f32>,
    pub raw: Vec<f32>,
    pub sample: Vec<u32>,
    pub steps: Vec<u32>,
}

prop_compose! {
    /// Up to `max_n` flows of up to `max_b` samples (exclusive bounds).
    pub fn case(max_n: usize, max_b: usize)(n in 1usize..max_n, b in 1usize..max_b)
        (old in prop::collection::vec(-1.0f32..1.0, 3 * n),
         delta in prop::collection::vec(-0.9f32..0.9, 3 * n),
         sample in prop::collection::vec(0u32..b as u32, n),
         steps in prop::collection::vec(0u32..5, n),
         b in Just(b), n in Just(n),
         reflection in any::<bool>(),
         spawn in prop::option::of((0.05f32..0.4, 0usize..4)),
         extra in 0usize..30 + 2 * n)
        -> Case
    {
        let raw = old.iter().zip(&delta).map(|(o, d)| o + d).collect();
        let rules = StepRules {
            lattice: Lattice::new(4, 3, 6),
            samples: b,
            projection_steps: 5,
            reflection,
            spawn,
            max_active: n + extra,
        };
        Case { rules, old, raw, sample, steps }
    }
}

/// The same step on both paths on `dev`, the device step with `kernels`:
/// counts, completed flows and the next active set must agree one for one.
/// Returns the step's counts.
pub fn both_paths_agree(c: &Case, dev: &Device, kernels: Kernels) -> Result<StepCounts, TestCaseError> {
    let dev = dev.clone();
    let n = c.sample.len();
    let old = device::matrix(c.old.clone(), n, 3, &dev);
    let pos = wall(device::matrix(c.raw.clone(), n, 3, &dev), c.rules.reflection);
    let energy = device::matrix((0..n).map(|i| (i as f32 * 0.7).sin()).collect(), n, 1, &dev);
    let hidden = device::matrix((0..2 * n).map(|i| (i as f32 * 0.3).cos()).collect(), n, 2, &dev);
    let stepped = ActiveTensors {
        pos: pos.clone(),
        energy,
        hidden: vec![hidden],
    };
    let gather = |t: Tensor<2>, idx: Tensor<1, Int>| t.select(0, idx);

    // Host.
    let mut store = FlowStore::new();
    store.sample = c.sample.clone();
    store.steps = c.steps.clone();
    let len = step_length(old.clone(), pos.clone()).reshape([n, 1]);
    let moved = floats(Tensor::cat(vec![pos, len], 1));
    let mut stats = FlowStats::default();
    advance(&mut store, &moved, &c.rules, &mut stats);
    let host_done_energy = if store.finished.is_empty() {
        vec![]
    } else {
        floats(gather(stepped.energy.clone(), device::indices(&store.finished, &dev)))
    };
    let host_next = store.compact(n, old.clone(), stepped.clone(), &dev, gather);

    // Device.
    let mut iota = Iota::default();
    let step = DeviceStep {
        rules: &c.rules,
        iota: iota.upto(c.rules.max_active.max(n).max(c.rules.samples), &dev),
        kernels,
    };
    let ids = FlowIds {
        sample: device::indices(&c.sample, &dev),
        steps: device::indices(&c.steps, &dev),
    };
    let mut done = DoneFlows::default();
    let (next, ids, counts) = step.step(old, stepped, ids, &mut done, &gather).unwrap();

    prop_assert_eq!(counts.z0, stats.completed_z0);
    prop_assert_eq!(counts.zd, stats.completed_zd);
    prop_assert_eq!(counts.projected, stats.completed_projected);
    prop_assert_eq!(counts.children, stats.flows_spawned);
    prop_assert_eq!(counts.dropped, stats.flows_dropped);
    prop_assert_eq!(counts.kept, store.keep.len());
    let done_steps: u64 = store.done.steps.iter().map(|&s| s as u64).sum();
    prop_assert_eq!(counts.done_steps, done_steps);
    let kept_steps: u64 = store.steps.iter().map(|&s| s as u64).sum();
    prop_assert_eq!(counts.kept_steps, kept_steps);

    match done.take() {
        None => prop_assert!(store.done.is_empty()),
        Some(d) => {
            let keys: Vec<u32> = ints(d.key).iter().map(|&k| k as u32).collect();
            let steps: Vec<u32> = ints(d.steps).iter().map(|&k| k as u32).collect();
            prop_assert_eq!(keys, store.done.key.clone());
            prop_assert_eq!(steps, store.done.steps.clone());
            prop_assert_eq!(floats(d.z), store.done.z.clone());
            prop_assert_eq!(floats(d.energy), host_done_energy);
        }
    }
    let m = counts.kept + counts.children;
    prop_assert_eq!(m, store.active());
    if m > 0 {
        let rows = |t: Tensor<2>| floats(t.slice(0..m));
        let sample: Vec<u32> = ints(ids.sample.slice(0..m)).iter().map(|&v| v as u32).collect();
        let steps: Vec<u32> = ints(ids.steps.slice(0..m)).iter().map(|&v| v as u32).collect();
        prop_assert_eq!(sample, store.sample.clone());
        prop_assert_eq!(steps, store.steps.clone());
        prop_assert_eq!(rows(next.pos), rows(host_next.pos));
        prop_assert_eq!(rows(next.energy), rows(host_next.energy));
        prop_assert_eq!(rows(next.hidden[0].clone()), rows(host_next.hidden[0].clone()));
    }
    Ok(counts)
}
