//! Whole forward passes of the model on the debug preset.

use burn::tensor::Device;
use energyflow::config::{EnergyConfig, Preset};
use energyflow::device;
use energyflow::kernels::Kernels;
use energyflow::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Workspace};

fn input(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols).map(|i| ((i as f32) * 0.173).sin() * 0.1).collect()
}

#[test]
fn debug_forward_batch_two_is_finite_and_every_flow_completes() {
    let cfg = EnergyConfig::preset(Preset::Debug);
    let dev = Device::flex();
    let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 1);
    let mut ws = Workspace::default();
    let e_in = cfg.model.input_embedding_dim;
    let x = device::matrix(input(2, e_in), 2, e_in, &dev);
    let out = model
        .forward(
            x,
            &ForwardSettings::new(&cfg, false),
            &mut ws,
            &ForwardOptions::inference(&ForwardSettings::new(&cfg, false)),
        )
        .unwrap();
    assert_eq!(out.output.dims(), [2, cfg.model.output_embedding_dim]);
    assert_eq!(out.surface.dims(), [2, cfg.model.surface_cells()]);
    let v = device::to_vec(out.output).unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    let s = &out.stats;
    assert_eq!(s.flows_created, 2 * cfg.model.surface_cells() + s.flows_spawned);
    assert_eq!(s.flows_created, s.completed(), "{s:?}");
    assert!(s.propagation_steps >= 1 && s.propagation_steps <= cfg.flow.propagation_steps());
    assert_eq!(s.active_per_step.len(), s.propagation_steps);
    assert_eq!(s.active_per_step[0], 2 * cfg.model.surface_cells());
    assert!(s.cells_covered > 0 && s.cells_covered <= s.cells_total);
}

#[test]
fn training_forward_with_noise_and_spawn_completes_every_flow() {
    let mut cfg = EnergyConfig::preset(Preset::Debug);
    cfg.model.lattice_width = 6;
    cfg.model.lattice_height = 5;
    cfg.flow.spawn_movement_threshold = 0.01;
    cfg.flow.max_spawn_per_step = 2;
    cfg.flow.max_active_flows = 100;
    cfg.train.batch_size = 3;
    cfg.flow.exploration_noise = 0.3;
    cfg.flow.convergence_enabled = false;
    cfg.validate().unwrap();
    let dev = Device::flex().autodiff();
    let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 1);
    let mut ws = Workspace::default();
    let e_in = cfg.model.input_embedding_dim;
    let x = device::matrix(input(3, e_in), 3, e_in, &dev);
    let opts = ForwardOptions {
        training: true,
        displacement_scale: 1.0,
        noise_seed: 9,
        lesion: None,
    };
    let out = model
        .forward(x, &ForwardSettings::new(&cfg, false), &mut ws, &opts)
        .unwrap();
    let s = &out.stats;
    assert!(s.flows_spawned > 0, "{s:?}");
    assert!(
        s.flows_dropped > 0,
        "capacity 100 with 90 starting flows must drop children: {s:?}"
    );
    assert!(s.active_per_step.iter().all(|&a| a <= 100));
    assert_eq!(s.flows_created, s.completed(), "{s:?}");
    // The loss reaches every module through the flows.
    let loss = out.output.powi_scalar(2).mean();
    let grads = loss.backward();
    let g = model
        .carrier
        .energy_fc2
        .weight
        .grad(&grads)
        .expect("carrier gets a gradient");
    assert!(device::to_vec(g).unwrap().iter().any(|v| *v != 0.0));
    // The mapper and the neuron sit before the flows: their gradient comes
    // only through the flows' energies, so a non-zero one shows the path.
    for (name, g) in [
        ("mapper", model.input_mapper.fc1.weight.grad(&grads)),
        ("neuron", model.neuron.fc1.weight.grad(&grads)),
        ("readout", model.collector.fc3.weight.grad(&grads)),
    ] {
        let g = device::to_vec(g.unwrap_or_else(|| panic!("{name} gets a gradient"))).unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{name}");
        assert!(g.iter().any(|v| *v != 0.0), "{name}: all-zero gradient");
    }
}

#[test]
fn too_many_starting_flows_is_refused_naming_both_numbers() {
    let mut cfg = EnergyConfig::preset(Preset::Debug);
    cfg.flow.max_active_flows = 500;
    cfg.train.batch_size = 1;
    let dev = Device::flex();
    let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 1);
    let e_in = cfg.model.input_embedding_dim;
    let x = device::matrix(input(2, e_in), 2, e_in, &dev);
    let err = model
        .forward(
            x,
            &ForwardSettings::new(&cfg, false),
            &mut Workspace::default(),
            &ForwardOptions::inference(&ForwardSettings::new(&cfg, false)),
        )
        .err()
        .expect("800 flows > 500 must be refused")
        .to_string();
    assert!(err.contains("800") && err.contains("500"), "{err}");
}

#[test]
fn inference_is_deterministic_for_a_seed() {
    let cfg = EnergyConfig::preset(Preset::Debug);
    let run = || {
        let dev = Device::flex();
        let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 1);
        let e_in = cfg.model.input_embedding_dim;
        let x = device::matrix(input(1, e_in), 1, e_in, &dev);
        let out = model
            .forward(
                x,
                &ForwardSettings::new(&cfg, false),
                &mut Workspace::default(),
                &ForwardOptions::inference(&ForwardSettings::new(&cfg, false)),
            )
            .unwrap();
        device::to_vec(out.output).unwrap()
    };
    assert_eq!(run(), run());
}

/// Inference uses the end of the displacement schedule: its floor when the
/// scale decays (issue 10, item 13: it once used base * decay^-(warmup+1)).
#[test]
fn inference_with_a_decaying_schedule_moves_flows_at_the_floor() {
    let mut cfg = EnergyConfig::preset(Preset::Debug);
    cfg.model.lattice_width = 6;
    cfg.model.lattice_height = 5;
    cfg.train.batch_size = 2;
    cfg.flow.max_active_flows = 200;
    cfg.flow.displacement_scale = 2.0;
    cfg.flow.displacement_scale_min = 0.5;
    cfg.flow.displacement_scale_warmup = 4;
    cfg.flow.displacement_scale_decay = 0.9;
    cfg.validate().unwrap();
    let opts = ForwardOptions::inference(&ForwardSettings::new(&cfg, false));
    assert_eq!(opts.displacement_scale, 0.5);
    assert!(!opts.training);
    let dev = Device::flex();
    let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 3);
    let e_in = cfg.model.input_embedding_dim;
    let run = |scale: f64| {
        let x = device::matrix(input(2, e_in), 2, e_in, &dev);
        let o = ForwardOptions {
            displacement_scale: scale,
            ..opts
        };
        let out = model
            .forward(x, &ForwardSettings::new(&cfg, false), &mut Workspace::default(), &o)
            .unwrap();
        device::to_vec(out.output).unwrap()
    };
    let x = device::matrix(input(2, e_in), 2, e_in, &dev);
    let inferred = model
        .forward(x, &ForwardSettings::new(&cfg, false), &mut Workspace::default(), &opts)
        .unwrap();
    let inferred = device::to_vec(inferred.output).unwrap();
    assert_eq!(inferred, run(0.5));
    // The base scale and the old wrong value move the flows differently.
    let wrong = 2.0 * 0.9f64.powi(-5);
    for other in [2.0, wrong] {
        assert_ne!(inferred, run(other), "scale {other} gives the same output");
    }
}
