//! The GPU code path (built with `--features vulkan` or `--features wgpu`)
//! against the CPU backend: a whole forward pass, a few training steps,
//! the collection against the naive oracle, and the CLI on `--device
//! vulkan`; the kernels one by one (`kernels.rs`, `norm.rs`,
//! `neuron.rs`, `head.rs`, `walls.rs`, `gathers.rs`) and the device-resident
//! step (`step.rs`). One test binary, so that the device check carries one.
//! Without a GPU feature this crate is empty. scripts/gpu-tests.sh runs it
//! on Mesa's software Vulkan driver (lavapipe, selected with
//! CUBECL_WGPU_DEFAULT_DEVICE=Cpu).
//!
//! The device is opened after the binary's probe has succeeded in a child
//! process, so a driver that crashes fails these tests instead of killing
//! the test process.
#![cfg(gpu)]

#[path = "../common/mod.rs"]
mod common;
mod gathers;
mod head;
mod kernels;
mod neuron;
mod norm;
mod step;
mod walls;

use common::gpu::{gpu, host, launches, max_diff};
use common::tiny_config;
use energyflow::config::RuntimeConfig;

use burn::tensor::Device;
use energyflow::device::{self, ADAPTER_VAR};
use energyflow::flow::naive::{collect_naive, collect_reference_f64};
use energyflow::flow::{Aggregator, CompletedMeta};
use energyflow::kernels::Kernels;
use energyflow::kernels::flow_collect::{DoneOnDevice, collect_on_device};
use energyflow::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Workspace};
use energyflow::train::{PairData, Trainer};
use std::process::Command;

#[test]
fn forward_on_the_gpu_equals_the_cpu() {
    let cfg = tiny_config(8);
    let input: Vec<f32> = (0..3 * 8).map(|i| ((i as f32) * 0.173).sin() * 0.5).collect();
    let run = |dev: &Device| {
        let model = EnergyFlowModel::new(&cfg, Kernels::Fused, dev, 1);
        let x = device::matrix(input.clone(), 3, 8, dev);
        let out = model
            .forward(
                x,
                &ForwardSettings::new(&cfg, false),
                &mut Workspace::default(),
                &ForwardOptions::inference(&ForwardSettings::new(&cfg, false)),
            )
            .unwrap();
        (host(out.output), host(out.surface), out.stats)
    };
    let (g_out, g_surface, g_stats) = run(&gpu());
    let (c_out, c_surface, c_stats) = run(&Device::flex());
    assert!(c_out.iter().all(|v| v.is_finite()));
    // The flows' paths are decided on the host from device values; they
    // agree when the values agree, so the counters must match exactly.
    assert_eq!(g_stats.flows_created, c_stats.flows_created);
    assert_eq!(g_stats.completed(), c_stats.completed());
    assert_eq!(g_stats.propagation_steps, c_stats.propagation_steps);
    assert!(max_diff(&g_surface, &c_surface) <= 1e-4, "surface");
    assert!(max_diff(&g_out, &c_out) <= 1e-4, "output");
}

#[test]
fn three_training_steps_on_the_gpu_follow_the_cpu() {
    let cfg = tiny_config(6);
    let data = PairData::synthetic_rotation(24, 6, 4);
    let steps = |dev: &Device| {
        let mut t = Trainer::new(cfg.clone(), &RuntimeConfig::default(), &data, 3, dev).unwrap();
        (0..3).map(|_| t.train_step(&data).unwrap()).collect::<Vec<_>>()
    };
    let (g, c) = (steps(&gpu()), steps(&Device::flex()));
    for (k, (g, c)) in g.iter().zip(&c).enumerate() {
        assert!(!g.skipped && g.loss.is_finite() && g.grad_norm > 0.0, "step {k}: {g:?}");
        assert!(
            (g.loss - c.loss).abs() <= 1e-3 * c.loss.abs().max(1.0),
            "step {k}: loss {} vs {}",
            g.loss,
            c.loss
        );
        assert!(
            (g.grad_norm - c.grad_norm).abs() <= 1e-2 * c.grad_norm.max(1.0),
            "step {k}: grad norm {} vs {}",
            g.grad_norm,
            c.grad_norm
        );
    }
}

/// The trainer hands the model to the optimizer by value, so that each
/// parameter has one owner and AdamW updates it where it lies: a training
/// step launches AdamW kernels and copies no tensor first.
#[test]
fn the_optimizer_updates_every_parameter_in_place() {
    let cfg = tiny_config(6);
    let data = PairData::synthetic_rotation(24, 6, 4);
    let mut t = Trainer::new(cfg, &RuntimeConfig::default(), &data, 3, &gpu()).unwrap();
    t.train_step(&data).unwrap();
    let (rec, names) = launches(|| t.train_step(&data).unwrap());
    assert!(!rec.skipped);
    let adamw = names.iter().filter(|n| n.contains("adamw_kernel")).count();
    assert!(adamw > 0, "{names:?}");
    let copies: Vec<_> = names.iter().filter(|n| n.contains("::copy::")).collect();
    assert!(copies.is_empty(), "{} AdamW updates, copies {copies:?}", adamw);
}

#[test]
fn collection_on_the_gpu_equals_the_naive_oracle() {
    // 4 samples x 5 cells, 50 flows of mixed samples, cells, steps and
    // planes in 18 of them: the last two groups are empty.
    let (n, n_keys) = (50usize, 20usize);
    let mut meta = CompletedMeta::default();
    for i in 0..n {
        meta.push(
            ((i * 7) % 18) as u32,
            ((i * 5) % 12) as u32,
            if i % 3 == 0 { 1.0 } else { -1.0 },
        );
    }
    let energy: Vec<f32> = (0..n)
        .map(|i| ((i as f32 * 0.71).sin() * 0.9).clamp(-1.0, 1.0))
        .collect();
    let upstream: Vec<f32> = (0..n_keys).map(|i| (i as f32 * 0.37).sin()).collect();
    // 0: the naive oracle, 1: the host step's collection, 2: the device
    // step's (`collect_on_device`, whose metadata never leaves the device).
    let value_and_grad = |dev: &Device, method: u8| {
        let e = device::vector(energy.clone(), dev).require_grad();
        let surface = match method {
            0 => collect_naive(e.clone(), &meta, n_keys),
            1 => Aggregator::new().collect(e.clone(), &meta, n_keys).unwrap().0,
            _ => {
                let done = DoneOnDevice {
                    energy: e.clone(),
                    key: device::indices(&meta.key, dev),
                    steps: device::indices(&meta.steps, dev),
                    z: device::vector(meta.z.clone(), dev),
                };
                let (out, names) = launches(|| collect_on_device(done, n_keys));
                for kernel in ["group_kernel", "prob_kernel"] {
                    assert!(names.iter().any(|n| n.contains(kernel)), "no {kernel} in {names:?}");
                }
                assert_eq!(device::ints_to_vec(out.1).unwrap(), vec![18], "groups with a flow");
                out.0
            }
        };
        let grads = (surface.clone() * device::vector(upstream.clone(), dev))
            .sum()
            .backward();
        (host(surface.inner()), host(e.grad(&grads).unwrap()))
    };
    let (v_naive, g_naive) = value_and_grad(&Device::flex().autodiff(), 0);
    let reference = collect_reference_f64(&energy, &meta, n_keys);
    for method in [1, 2] {
        let (v_gpu, g_gpu) = value_and_grad(&gpu().autodiff(), method);
        for k in 0..n_keys {
            assert!(
                (v_gpu[k] as f64 - reference[k]).abs() < 1e-5,
                "method {method}, value {k}: {} vs {}",
                v_gpu[k],
                reference[k]
            );
            assert!((v_gpu[k] - v_naive[k]).abs() < 1e-5, "method {method}, value {k}");
        }
        assert!(max_diff(&g_gpu, &g_naive) < 1e-5, "method {method}, gradients");
    }
}

#[test]
fn bench_collect_on_vulkan_equals_the_reference() {
    let out = common::energyflow(&[
        "bench",
        "collect",
        "--flows",
        "3200",
        "--samples",
        "8",
        "--preset",
        "debug",
        "--runs",
        "2",
        "--device",
        "vulkan",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The device collection through our kernel and through burn's ops.
    for k in ["max_abs_diff", "device_max_abs_diff", "device_composed_max_abs_diff"] {
        assert!(v[k].as_f64().unwrap() < 1e-5, "{k} in {v}");
    }
    // The adapter it ran on, and how this build hands it shaders.
    let backend = v["backend"].as_str().unwrap();
    let shaders = if cfg!(feature = "vulkan") { "SPIR-V)" } else { "WGSL)" };
    assert!(
        backend.starts_with("vulkan: ") && backend.ends_with(shaders),
        "{backend}"
    );
}

/// Without a selector, a software adapter is refused in one line (on a
/// machine with a hardware GPU the command runs instead); never a crash.
#[test]
fn a_software_adapter_is_refused_unless_asked_for() {
    let out = Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args([
            "bench",
            "collect",
            "--flows",
            "100",
            "--samples",
            "1",
            "--runs",
            "1",
            "--device",
            "vulkan",
        ])
        .env_remove(ADAPTER_VAR)
        .output()
        .unwrap();
    if out.status.code() != Some(0) {
        common::assert_refused(&out, "software");
    }
}

/// Past 65 535 flows: lavapipe stops a shader loop after 65 535 rounds,
/// which cut burn's serial `select_assign` short (the host collection's
/// scatter-add before `scatter_rows`). Both collections against f64.
#[test]
fn collections_of_more_than_65535_flows_equal_the_reference() {
    let (n, n_keys) = (70_000usize, 3_200usize);
    let dev = gpu();
    let mut meta = CompletedMeta::default();
    for i in 0..n {
        meta.push(
            ((i * 7) % n_keys) as u32,
            1 + (i % 10) as u32,
            if i % 2 == 0 { 1.0 } else { -1.0 },
        );
    }
    let energy: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let reference = collect_reference_f64(&energy, &meta, n_keys);
    let e = device::vector(energy.clone(), &dev);
    let host_step = Aggregator::new().collect(e.clone(), &meta, n_keys).unwrap();
    let done = DoneOnDevice {
        energy: e,
        key: device::indices(&meta.key, &dev),
        steps: device::indices(&meta.steps, &dev),
        z: device::vector(meta.z.clone(), &dev),
    };
    let device_step = collect_on_device(done, n_keys).0;
    for (name, surface) in [("host step", host_step.0), ("device step", device_step)] {
        let v = host(surface);
        let worst = v
            .iter()
            .zip(&reference)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{name}: {worst}");
    }
}
