//! The flow recorder of `inspect` (`flow::FlowTrace`): attaching it changes
//! nothing in the forward, what it records adds up to the forward's flow
//! statistics, and every flow is followed from birth to completion under
//! one id (its moves are steps, its end is the engine's completed flow).

use burn::tensor::Device;
use energyflow::config::{EnergyConfig, Preset};
use energyflow::device;
use energyflow::flow::FlowTrace;
use energyflow::kernels::Kernels;
use energyflow::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Workspace};
use energyflow::viz::inspect::flow_paths;
use std::collections::HashMap;

/// A small lattice whose flows spawn children past the capacity, so that
/// every counter moves.
fn config() -> EnergyConfig {
    let mut cfg = EnergyConfig::preset(Preset::Debug);
    cfg.model.lattice_width = 6;
    cfg.model.lattice_height = 5;
    cfg.model.input_embedding_dim = 16;
    cfg.model.output_embedding_dim = 16;
    cfg.model.mapper_hidden = Some(32);
    cfg.model.carrier_hidden_dim = 16;
    cfg.model.carrier_layers = 1;
    cfg.flow.spawn_movement_threshold = 0.01;
    cfg.flow.max_spawn_per_step = 2;
    cfg.flow.max_active_flows = 80;
    cfg.flow.convergence_enabled = false;
    cfg.train.batch_size = 2;
    cfg.validate().unwrap();
    cfg
}

#[test]
fn the_trace_changes_nothing_and_adds_up_to_the_flow_statistics() {
    let cfg = config();
    let dev = Device::flex();
    let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 3);
    let (b, e_in) = (2, cfg.model.input_embedding_dim);
    let data: Vec<f32> = (0..b * e_in).map(|i| ((i as f32) * 0.37).sin()).collect();
    let opts = ForwardOptions::inference(&ForwardSettings::new(&cfg, false));
    let plain = model
        .forward(
            device::matrix(data.clone(), b, e_in, &dev),
            &ForwardSettings::new(&cfg, false),
            &mut Workspace::default(),
            &opts,
        )
        .unwrap();
    let mut ws = Workspace {
        trace: Some(FlowTrace::new()),
        ..Workspace::default()
    };
    let traced = model
        .forward(
            device::matrix(data.clone(), b, e_in, &dev),
            &ForwardSettings::new(&cfg, false),
            &mut ws,
            &opts,
        )
        .unwrap();
    assert_eq!(
        device::to_vec(traced.output).unwrap(),
        device::to_vec(plain.output).unwrap()
    );
    let s = traced.stats;
    assert_eq!(s, plain.stats);
    assert!(
        s.flows_spawned > 0 && s.flows_dropped > 0,
        "the config must spawn past the capacity: {s:?}"
    );
    let t = ws.trace.take().unwrap();

    // Frames: one per step plus the start, as many flows as the stats say.
    assert_eq!(t.frames.len(), s.propagation_steps + 1);
    assert_eq!(t.steps.len(), s.propagation_steps);
    for (step, &active) in s.active_per_step.iter().enumerate() {
        assert_eq!(t.frames[step].len(), active, "step {}", step + 1);
    }
    // The starting energies are the mapper's.
    let mapped = model.input_mapper.forward(device::matrix(data, b, e_in, &dev), None);
    assert_eq!(t.frames[0].energy, device::to_vec(mapped).unwrap());

    // Per-step counts add up to the totals.
    let sum = |f: fn(&energyflow::flow::trace::StepEvents) -> usize| t.steps.iter().map(f).sum::<usize>();
    assert_eq!(sum(|e| e.completed_z0), s.completed_z0);
    assert_eq!(sum(|e| e.completed_zd), s.completed_zd);
    assert_eq!(sum(|e| e.completed_projected), s.completed_projected);
    assert_eq!(sum(|e| e.spawned), s.flows_spawned);
    assert_eq!(sum(|e| e.dropped), s.flows_dropped);
    assert_eq!(t.final_ended.len(), s.completed_final);
    assert_eq!(t.flows(), s.flows_created);
    for e in &t.steps {
        assert_eq!(e.ended.len(), e.completed_z0 + e.completed_zd + e.completed_projected);
    }

    // Every flow ends exactly once, on a plane.
    let mut ends: HashMap<u32, usize> = HashMap::new();
    for e in t.steps.iter().flat_map(|s| &s.ended).chain(&t.final_ended) {
        *ends.entry(e.id).or_default() += 1;
        assert!(e.pos[2] == -1.0 || e.pos[2] == 1.0, "{e:?}");
    }
    assert_eq!(ends.len(), s.flows_created);
    assert!(ends.values().all(|&n| n == 1));

    // Identity across compaction. A flow moves at most max_displacement per
    // axis in a step (the walls only shorten a move); only its last point
    // may jump in z, onto the plane it is projected on.
    let m = cfg.flow.max_displacement as f32 + 1e-5;
    let paths = flow_paths(&t, usize::MAX);
    assert_eq!(paths.len(), s.flows_created);
    for p in &paths {
        let n = p.points.len();
        assert!(n >= 2, "{p:?}");
        for (k, w) in p.points.windows(2).enumerate() {
            let axes = if k + 2 == n { 2 } else { 3 };
            let moved = w[0].iter().zip(&w[1]).take(axes);
            assert!(
                moved.map(|(a, b)| (b - a).abs()).all(|d| d <= m),
                "flow {} jumps: {p:?}",
                p.id
            );
        }
    }
    // And the ends are the engine's completed flows, in its order: same
    // sample and cell, plane, and steps taken since birth.
    let done = &ws.store.done;
    let ends: Vec<(usize, _)> = t
        .steps
        .iter()
        .enumerate()
        .flat_map(|(k, e)| e.ended.iter().map(move |x| (k + 1, x)))
        .chain(t.final_ended.iter().map(|x| (s.propagation_steps, x)))
        .collect();
    assert_eq!(ends.len(), done.len());
    let lattice = cfg.lattice();
    for (i, (step, e)) in ends.into_iter().enumerate() {
        let id = e.id as usize;
        let key = t.sample[id] * lattice.cells() as u32 + lattice.cell_of(e.pos[0], e.pos[1]) as u32;
        assert_eq!(done.key[i], key, "flow {id}");
        assert_eq!(done.z[i], e.pos[2], "flow {id}");
        assert_eq!(done.steps[i] as usize, step - t.born[id] as usize, "flow {id}");
    }

    // A child starts where its parent was before the step that spawned it.
    let children: Vec<usize> = (0..t.flows()).filter(|&id| t.parent[id].is_some()).collect();
    assert_eq!(children.len(), s.flows_spawned);
    for id in children {
        let parent = t.parent[id].unwrap();
        let born = t.born[id] as usize;
        assert!(parent < id as u32 && born >= 1 && born <= s.propagation_steps);
        assert_eq!(t.sample[id], t.sample[parent as usize]);
        let at = |frame: usize, id: u32| {
            let f = &t.frames[frame];
            f.pos[f.ids.iter().position(|&i| i == id).expect("in the frame")]
        };
        assert_eq!(at(born, id as u32), at(born - 1, parent));
    }
}
