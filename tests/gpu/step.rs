//! The device-resident propagation step (`runtime.step = "device"`, the
//! default on a GPU) on the GPU backend: the same flows, counters, surface
//! and loss as the host step, on the GPU and against the CPU; at most one
//! small read per propagation step; our kernels in a training step; one
//! step by the bookkeeping kernels (`kernels::fates`) on random flows and
//! at the capacity.

use crate::common::busy_config;
use crate::common::gpu::{gpu, host, launches, max_diff};
use crate::common::step_case::{Case, both_paths_agree, case};
use burn::tensor::{Device, Tensor};
use energyflow::config::RuntimeConfig;
use energyflow::device::{self, transfers};
use energyflow::flow::{FlowStats, StepPath, StepRules};
use energyflow::geometry::Lattice;
use energyflow::kernels::Kernels;
use energyflow::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Workspace};
use energyflow::train::{PairData, Trainer};
use proptest::prelude::*;

proptest! {
    // Hundreds of flows: several cubes of the plan kernel's reduction.
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn one_step_by_the_gpus_kernels_equals_the_host_step(c in case(700, 6)) {
        both_paths_agree(&c, &gpu(), Kernels::Fused)?;
    }
}

/// 600 flows of 3 samples, most asking for children, at capacities from
/// the flows alone (every child dropped) to room for all; the composed
/// ops on the GPU too.
#[test]
fn the_gpus_kernels_share_the_capacity_as_the_host_step() {
    let n = 600;
    let old: Vec<f32> = (0..3 * n).map(|i| ((i as f32) * 0.37).sin() * 0.6).collect();
    let delta: Vec<f32> = (0..3 * n).map(|i| ((i as f32) * 0.71).cos() * 0.3).collect();
    let case = |max_active: usize| Case {
        rules: StepRules {
            lattice: Lattice::new(7, 5, 6),
            samples: 3,
            projection_steps: 5,
            reflection: true,
            spawn: Some((0.1, 3)),
            max_active,
        },
        raw: old.iter().zip(&delta).map(|(o, d)| o + d).collect(),
        old: old.clone(),
        sample: (0..n as u32).map(|i| (i * 7 + i / 5) % 3).collect(),
        steps: (0..n as u32).map(|i| i % 5).collect(),
    };
    let mut dropped = vec![];
    for room in [0, 1, 2, 50, 333, 700, 5000] {
        let c = case(n + room);
        let (r, names) = launches(|| both_paths_agree(&c, &gpu(), Kernels::Fused));
        let counts = r.unwrap_or_else(|e| panic!("room {room}: {e}"));
        dropped.push(counts.dropped);
        for kernel in ["plan_kernel", "fair_kernel", "slots_kernel"] {
            assert!(names.iter().any(|k| k.contains(kernel)), "room {room}: no {kernel}");
        }
        let shared = names.iter().any(|k| k.contains("keep_kernel"));
        assert_eq!(shared, counts.dropped > 0, "room {room}: the fair share ran or not");
        both_paths_agree(&c, &gpu(), Kernels::Composed).unwrap_or_else(|e| panic!("composed, room {room}: {e}"));
    }
    assert!(dropped[0] > 0 && dropped[6] == 0, "dropped per room: {dropped:?}");
}

fn input(b: usize, e: usize, dev: &Device) -> Tensor<2> {
    device::matrix((0..b * e).map(|i| (i as f32 * 0.173).sin() * 0.5).collect(), b, e, dev)
}

/// One forward of the busy config on `dev` with the bookkeeping on `step`:
/// counters, surface, output, and the gradient of the first GRU layer's
/// input weights in training.
fn forward(dev: &Device, step: StepPath, training: bool) -> (FlowStats, Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let cfg = busy_config();
    let dev = if training { dev.clone().autodiff() } else { dev.clone() };
    let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 5);
    let settings = ForwardSettings::new(&cfg, false).with_step(step);
    let opts = ForwardOptions {
        training,
        noise_seed: 11,
        ..ForwardOptions::inference(&settings)
    };
    let x = input(cfg.train.batch_size, cfg.model.input_embedding_dim, &dev);
    let out = model.forward(x, &settings, &mut Workspace::default(), &opts).unwrap();
    let grad = training.then(|| {
        let g = out.output.clone().powi_scalar(2).sum().backward();
        host(model.carrier.layers[0].input.weight.val().grad(&g).unwrap())
    });
    (out.stats, host(out.surface), host(out.output), grad)
}

#[test]
fn the_device_step_on_the_gpu_gives_the_host_steps_flows() {
    for training in [false, true] {
        let (ds, d_surface, d_out, d_grad) = forward(&gpu(), StepPath::Device, training);
        let (hs, h_surface, h_out, h_grad) = forward(&gpu(), StepPath::Host, training);
        let (cs, c_surface, c_out, c_grad) = forward(&Device::flex(), StepPath::Host, training);
        // Same device: the same flows and values within 1e-5.
        assert_eq!(ds, hs, "training {training}");
        assert!(max_diff(&d_surface, &h_surface) <= 1e-5, "surface, training {training}");
        assert!(max_diff(&d_out, &h_out) <= 1e-5, "output, training {training}");
        // Against the CPU: the same flows, values to the backends' rounding.
        assert_eq!(ds, cs, "against the CPU, training {training}");
        assert!(max_diff(&d_surface, &c_surface) <= 1e-4, "surface against the CPU");
        assert!(max_diff(&d_out, &c_out) <= 1e-4, "output against the CPU");
        if let (Some(d), Some(h), Some(c)) = (d_grad, h_grad, c_grad) {
            assert!(max_diff(&d, &h) <= 1e-5, "gradient");
            assert!(max_diff(&d, &c) <= 1e-4, "gradient against the CPU");
            assert!(
                ds.flows_spawned > 0 && ds.flows_dropped > 0 && ds.completed_projected > 0,
                "{ds:?}"
            );
        }
    }
}

fn pairs(n: usize, e: usize) -> PairData {
    let row = |i: usize| -> Vec<f32> { (0..e).map(|j| ((i * e + j) as f32 * 0.31).sin()).collect() };
    PairData {
        input: energyflow::io::Matrix {
            rows: n,
            cols: e,
            data: (0..n).flat_map(row).collect(),
        },
        target: energyflow::io::Matrix {
            rows: n,
            cols: e,
            data: (0..n).flat_map(|i| row(i + 7)).collect(),
        },
        origin: "test".into(),
    }
}

#[test]
fn a_training_step_on_the_gpu_reads_at_most_steps_plus_4_and_runs_our_kernels() {
    let cfg = busy_config();
    let data = pairs(24, cfg.model.input_embedding_dim);
    let mut gpu_trainer = Trainer::new(cfg.clone(), &RuntimeConfig::default(), &data, 1, &gpu()).unwrap();
    assert_eq!(gpu_trainer.settings().step, StepPath::Device, "the default on a GPU");
    let mut cpu_trainer = Trainer::new(cfg, &RuntimeConfig::default(), &data, 1, &Device::flex()).unwrap();
    for k in 0..3 {
        let t0 = transfers();
        let (rec, names) = launches(|| gpu_trainer.train_step(&data).unwrap());
        let d = transfers() - t0;
        let steps = rec.flows.steps_run as u64;
        assert!(steps > 1, "step {k}: {:?}", rec.flows);
        assert!(d.reads <= steps + 4, "step {k}: {d:?} for {steps} propagation steps");
        assert!(d.read_bytes <= 64 * 1024, "step {k}: {d:?}");
        for kernel in [
            "gru_forward_saving_kernel",
            "gru_backward_kernel",
            "gelu_saving_kernel",
            "head_kernel",
            "head_backward_kernel",
            "adamw_kernel",
            "noise_kernel",
            "group_kernel",
        ] {
            assert!(
                names.iter().any(|n| n.contains(kernel)),
                "step {k}: no {kernel} in {} launches",
                names.len()
            );
        }
        let c = cpu_trainer.train_step(&data).unwrap();
        assert_eq!(rec.flows, c.flows, "step {k}: the flows against the CPU");
        assert!(
            (rec.loss - c.loss).abs() <= 1e-3 * (1.0 + c.loss.abs()),
            "step {k}: {} vs {}",
            rec.loss,
            c.loss
        );
    }
}
