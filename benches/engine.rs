//! Criterion benches of the engine's host-side hot paths: the collection's
//! grouping and softmax coefficients, the cell grid's rebuild, and the host
//! half of a propagation step. The device-side figures (whole collection
//! forward + backward, whole training steps) come from `energyflow bench`.
//!
//! Run: `cargo bench --bench engine`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use energyflow::bench::synthetic_flows;
use energyflow::flow::Aggregator;
use energyflow::flow::FlowStore;
use energyflow::flow::spatial::LatticeGrid;
use energyflow::flow::{FlowStats, StepRules, advance};
use energyflow::geometry::Lattice;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

fn collection_coefficients(c: &mut Criterion) {
    let mut g = c.benchmark_group("collect_coefficients");
    for flows in [12_544usize, 200_000] {
        let set = synthetic_flows(flows, 16, 784, 7);
        let mut aggregator = Aggregator::new();
        g.throughput(Throughput::Elements(flows as u64));
        g.bench_with_input(BenchmarkId::from_parameter(flows), &set, |b, set| {
            b.iter(|| black_box(aggregator.coefficients(&set.energy, &set.meta, set.n_keys)))
        });
    }
    g.finish();
}

fn random_positions(n: usize) -> Vec<[f32; 3]> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    (0..n)
        .map(|_| {
            [
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            ]
        })
        .collect()
}

fn grid_rebuild(c: &mut Criterion) {
    let positions = random_positions(50_000);
    let mut grid = LatticeGrid::new(Lattice::new(28, 28, 40));
    c.bench_function("lattice_grid_rebuild_50k", |b| {
        b.iter(|| grid.rebuild(black_box(&positions)))
    });
}

fn host_step(c: &mut Criterion) {
    let lattice = Lattice::new(28, 28, 40);
    let rules = StepRules {
        lattice,
        samples: 16,
        projection_steps: 20,
        reflection: true,
        spawn: Some((0.15, 1)),
        max_active: 200_000,
    };
    let start = random_positions(12_544);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    // What the host step reads back: walled positions and step lengths.
    let moved: Vec<f32> = start
        .iter()
        .flat_map(|p| {
            let d = [0; 3].map(|_| rng.random_range(-0.3f32..0.3));
            let new = [0, 1, 2].map(|c| (p[c] + d[c]).clamp(-1.0, 1.0));
            let len = d.iter().map(|v| v * v).sum::<f32>().sqrt();
            [new[0], new[1], new[2], len]
        })
        .collect();
    let mut store = FlowStore::new();
    c.bench_function("advance_12544_flows", |b| {
        b.iter(|| {
            store.reset();
            for i in 0..start.len() {
                store.sample.push((i % 16) as u32);
                store.steps.push(0);
            }
            let mut stats = FlowStats::default();
            advance(&mut store, &moved, &rules, &mut stats);
            black_box(stats)
        })
    });
}

criterion_group!(benches, collection_coefficients, grid_rebuild, host_step);
criterion_main!(benches);
