//! Step semantics (MODEL.md s.4.2), one test each, on the host half of a
//! step (`advance`) after the wall rule (`flow::rules::wall`), from
//! hand-made positions before the step and raw positions after it.

use burn::tensor::Device;
use energyflow::device;
use energyflow::flow::rules::{step_length, wall};
use energyflow::flow::{FlowStats, FlowStore, StepRules, advance};
use energyflow::geometry::Lattice;

fn rules() -> StepRules {
    StepRules {
        lattice: Lattice::new(5, 5, 10),
        samples: 2,
        projection_steps: 5,
        reflection: true,
        spawn: None,
        max_active: 1000,
    }
}

/// Flows (position, sample, steps) in a store, and their positions.
struct Flows {
    store: FlowStore,
    pos: Vec<f32>,
}

fn store_with(flows: &[([f32; 3], u32, u32)]) -> Flows {
    let mut store = FlowStore::new();
    let mut pos = Vec::new();
    for &(p, sample, steps) in flows {
        pos.extend(p);
        store.sample.push(sample);
        store.steps.push(steps);
    }
    Flows { store, pos }
}

/// One step from fresh counters, as the forward makes it: the wall rule on
/// the device, then `advance` on what it read back. Returns what this step
/// did, and the walled positions of the survivors (in the store's order).
fn step(f: &mut Flows, raw: &[f32], rules: &StepRules) -> (FlowStats, Vec<[f32; 3]>) {
    let dev = Device::flex();
    let n = f.store.active();
    let old = device::matrix(f.pos.clone(), n, 3, &dev);
    let new = wall(device::matrix(raw.to_vec(), n, 3, &dev), rules.reflection);
    let len = step_length(old, new.clone()).reshape([n, 1]);
    let moved = device::to_vec(burn::tensor::Tensor::cat(vec![new, len], 1)).unwrap();
    let mut o = FlowStats::default();
    advance(&mut f.store, &moved, rules, &mut o);
    let row = |i: usize| [moved[4 * i], moved[4 * i + 1], moved[4 * i + 2]];
    let kept = f.store.keep.clone();
    (o, kept.iter().map(|&i| row(i as usize)).collect())
}

#[test]
fn x_and_y_reflect_at_the_walls() {
    let mut s = store_with(&[([0.9, -0.9, 0.0], 0, 0), ([0.0, 0.0, 0.0], 0, 0)]);
    let (o, pos) = step(&mut s, &[1.2, -1.3, 0.1, -1.0, 1.0, 0.2], &rules());
    assert_eq!(o.completed(), 0);
    assert!((pos[0][0] - 0.8).abs() < 1e-6);
    assert!((pos[0][1] + 0.7).abs() < 1e-6);
    assert!((pos[0][2] - 0.1).abs() < 1e-6);
    // Exactly on a wall stays on it.
    assert_eq!(pos[1], [-1.0, 1.0, 0.2]);
    assert_eq!(s.store.steps, vec![1, 1]);
}

#[test]
fn without_reflection_the_walls_clamp() {
    let mut r = rules();
    r.reflection = false;
    let mut s = store_with(&[([0.9, -0.9, 0.0], 0, 0)]);
    let (_, pos) = step(&mut s, &[1.2, -1.3, 0.1], &r);
    assert_eq!(pos[0], [1.0, -1.0, 0.1]);
}

#[test]
fn completes_on_z0_and_on_zd() {
    let mut s = store_with(&[
        ([0.0, 0.0, -0.8], 0, 1),
        ([0.5, 0.5, 0.8], 1, 1),
        ([0.0, 0.0, 0.0], 1, 1),
    ]);
    let (o, pos) = step(&mut s, &[0.0, 0.0, -1.05, 0.5, 0.5, 1.0, 0.0, 0.0, 0.3], &rules());
    assert_eq!((o.completed_z0, o.completed_zd, o.completed_projected), (1, 1, 0));
    assert_eq!(s.store.done.z, vec![-1.0, 1.0]);
    assert_eq!(s.store.done.steps, vec![2, 2]);
    // Keys: sample * S + cell(x, y); (0,0) is cell 12 of 5x5, (0.5,0.5) is (3,3) -> 18.
    assert_eq!(s.store.done.key, vec![12, 25 + 18]);
    assert_eq!(s.store.active(), 1);
    assert_eq!(pos[0], [0.0, 0.0, 0.3]);
}

#[test]
fn projects_after_projection_steps() {
    let mut s = store_with(&[
        ([0.0, 0.0, -0.2], 0, 4),
        ([0.0, 0.0, 0.2], 0, 4),
        ([0.0, 0.0, 0.2], 0, 3),
    ]);
    let (o, _) = step(&mut s, &[0.0, 0.0, -0.3, 0.0, 0.0, 0.3, 0.0, 0.0, 0.3], &rules());
    assert_eq!(o.completed_projected, 2);
    assert_eq!(o.completed_z0 + o.completed_zd, 0);
    assert_eq!(s.store.done.z, vec![-1.0, 1.0]);
    assert_eq!(s.store.done.steps, vec![5, 5]);
    assert_eq!(s.store.active(), 1);
    assert_eq!(s.store.steps, vec![4]);
}

#[test]
fn spawn_count_formula_and_per_step_cap() {
    let mut r = rules();
    r.spawn = Some((0.1, 3));
    // Step lengths 0.15, 0.25, 0.45, 0.65 along x.
    let mut s = store_with(&[
        ([0.0, 0.0, 0.0], 0, 0),
        ([0.0, 0.0, 0.0], 0, 0),
        ([0.0, 0.0, 0.0], 1, 0),
        ([0.0, 0.0, 0.0], 1, 0),
    ]);
    let raw = [0.15, 0.0, 0.0, 0.25, 0.0, 0.0, 0.45, 0.0, 0.0, 0.65, 0.0, 0.0];
    let (o, _) = step(&mut s, &raw, &r);
    // min(floor(len/t) - 1, cap): 0, 1, 3, min(5, 3) = 3.
    assert_eq!(o.flows_spawned, 7);
    assert_eq!(o.flows_created, 7, "children are created flows");
    assert_eq!(o.flows_dropped, 0);
    assert_eq!(s.store.active(), 4 + 7);
    // Children (at the parent's position before the step: `compact`) take
    // steps 0 and the parent's sample, parents in order.
    assert_eq!(s.store.children, vec![1, 2, 2, 2, 3, 3, 3]);
    assert!(s.store.steps[4..].iter().all(|&v| v == 0));
    assert_eq!(&s.store.sample[4..], &[0, 1, 1, 1, 1, 1, 1]);
}

#[test]
fn drops_at_capacity_are_counted_and_shared_fairly() {
    let mut r = rules();
    r.spawn = Some((0.1, 3));
    r.max_active = 4 + 2;
    // Every flow asks for 3 children (len 0.45); room for 2.
    let mut s = store_with(&[
        ([0.0, 0.0, 0.0], 0, 0),
        ([0.0, 0.0, 0.0], 0, 0),
        ([0.0, 0.0, 0.0], 1, 0),
        ([0.0, 0.0, 0.0], 1, 0),
    ]);
    let raw: Vec<f32> = (0..4).flat_map(|_| [0.45, 0.0, 0.0]).collect();
    let (o, _) = step(&mut s, &raw, &r);
    assert_eq!(o.flows_spawned, 2);
    assert_eq!(o.flows_dropped, 10);
    assert_eq!(s.store.active(), 6);
    // One child for each sample: the late sample is not starved.
    let mut kids = s.store.sample[4..].to_vec();
    kids.sort();
    assert_eq!(kids, vec![0, 1]);
}
