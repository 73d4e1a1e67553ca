//! The device step (`kernels::flow_step`, `kernels::flow_collect`) against
//! the host step (`flow::advance`, `FlowStore::compact`, `Aggregator`) on
//! the CPU backend, where both run: one step on random flows (walls, both
//! planes, projection, spawning, the capacity with fair sharing), whole
//! forwards and training steps (same counters, values within 1e-5), the
//! reads each path makes, and the exploration noise both paths draw.

mod common;

use burn::tensor::{Device, Tensor};
use common::step_case::{Case, both_paths_agree, case, floats};
use common::{busy_config, tiny_config};
use energyflow::config::RuntimeConfig;
use energyflow::device::{self, transfers};
use energyflow::flow::{StepPath, StepRules};
use energyflow::geometry::Lattice;
use energyflow::kernels::Kernels;
use energyflow::kernels::flow_ops::{NoiseSpec, flow_noise};
use energyflow::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Workspace};
use energyflow::train::{PairData, Trainer};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn one_step_on_the_device_equals_the_host_step(c in case(40, 4)) {
        both_paths_agree(&c, &Device::flex(), Kernels::Fused)?;
    }
}

#[test]
fn fair_sharing_at_the_capacity_matches_on_hand_made_cases() {
    // Sample 0 asks for 3 + 3 children, sample 1 for 1, sample 2 for 3:
    // with room for r children, the j-th child of each sample comes before
    // any sample's (j+1)-th. Every room from none to all, one flow each.
    let lens = [0.45f32, 0.45, 0.25, 0.45];
    let sample = vec![0, 0, 1, 2];
    for room in 0..=10 {
        let old = vec![0.0; 12];
        let raw: Vec<f32> = lens.iter().flat_map(|&l| [l, 0.0, 0.0]).collect();
        let c = Case {
            rules: StepRules {
                lattice: Lattice::new(4, 3, 6),
                samples: 3,
                projection_steps: 5,
                reflection: true,
                spawn: Some((0.1, 3)),
                max_active: 4 + room,
            },
            old,
            raw,
            sample: sample.clone(),
            steps: vec![0; 4],
        };
        both_paths_agree(&c, &Device::flex(), Kernels::Fused).unwrap_or_else(|e| panic!("room {room}: {e}"));
    }
}

fn input(b: usize, e: usize, dev: &Device) -> Tensor<2> {
    device::matrix((0..b * e).map(|i| (i as f32 * 0.173).sin() * 0.5).collect(), b, e, dev)
}

#[test]
fn a_forward_on_the_device_path_equals_the_host_path() {
    let cfg = busy_config();
    let (b, e) = (cfg.train.batch_size, cfg.model.input_embedding_dim);
    for training in [false, true] {
        let dev = if training {
            Device::flex().autodiff()
        } else {
            Device::flex()
        };
        let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 5);
        let host = ForwardSettings::new(&cfg, false);
        let opts = ForwardOptions {
            training,
            noise_seed: 11,
            ..ForwardOptions::inference(&host)
        };
        let run = |step: StepPath| {
            let settings = host.clone().with_step(step);
            let out = model
                .forward(input(b, e, &dev), &settings, &mut Workspace::default(), &opts)
                .unwrap();
            let loss = out.output.clone().powi_scalar(2).sum();
            let grad = training.then(|| {
                let g = loss.backward();
                let w = model.carrier.layers[0].input.weight.val();
                floats(w.grad(&g).unwrap())
            });
            (out.stats, floats(out.surface), floats(out.output), grad)
        };
        let (hs, h_surface, h_out, h_grad) = run(StepPath::Host);
        let (ds, d_surface, d_out, d_grad) = run(StepPath::Device);
        assert_eq!(ds, hs, "training {training}");
        let close = |a: &[f32], b: &[f32], what: &str| {
            let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(d <= 1e-5, "{what} (training {training}): {d}");
        };
        close(&d_surface, &h_surface, "surface");
        close(&d_out, &h_out, "output");
        if let (Some(d), Some(h)) = (d_grad, h_grad) {
            close(&d, &h, "gradient of the first GRU layer's input weights");
            // The busy config meets every rule (in training: noise on z).
            assert!(
                hs.completed_z0 > 0
                    && hs.completed_zd > 0
                    && hs.completed_projected > 0
                    && hs.completed_final > 0
                    && hs.flows_spawned > 0
                    && hs.flows_dropped > 0,
                "{hs:?}"
            );
        }
    }
}

#[test]
fn the_device_path_reads_one_small_vector_per_step_and_one_at_the_end() {
    let cfg = busy_config();
    let dev = Device::flex();
    let model = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 5);
    let settings = ForwardSettings::new(&cfg, false).with_step(StepPath::Device);
    let opts = ForwardOptions::inference(&settings);
    let mut ws = Workspace::default();
    let x = input(cfg.train.batch_size, cfg.model.input_embedding_dim, &dev);
    let t0 = transfers();
    let out = model.forward(x, &settings, &mut ws, &opts).unwrap();
    let d = transfers() - t0;
    assert!(out.stats.propagation_steps > 1);
    assert_eq!(d.reads, out.stats.propagation_steps as u64 + 1, "{d:?}");
    // Seven counts per step and the group count, ints of the backend's width.
    let ints = 7 * out.stats.propagation_steps as u64 + 1;
    assert!(d.read_bytes == 4 * ints || d.read_bytes == 8 * ints, "{d:?}");
}

#[test]
fn a_training_step_on_the_device_path_reads_at_most_steps_plus_4() {
    let cfg = busy_config();
    let (n, e) = (24, cfg.model.input_embedding_dim);
    let row = |i: usize| -> Vec<f32> { (0..e).map(|j| ((i * e + j) as f32 * 0.31).sin()).collect() };
    let data = PairData {
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
    };
    let mut losses = Vec::new();
    for step in [StepPath::Host, StepPath::Device] {
        let runtime = RuntimeConfig {
            step: Some(step),
            spin_wait: false,
            ..RuntimeConfig::default()
        };
        let mut cfg = cfg.clone();
        cfg.train.samples_per_pass = Some(2);
        let mut trainer = Trainer::new(cfg, &runtime, &data, 1, &Device::flex()).unwrap();
        assert_eq!(trainer.settings().step, step);
        let mut these = Vec::new();
        for _ in 0..3 {
            let t0 = transfers();
            let rec = trainer.train_step(&data).unwrap();
            let d = transfers() - t0;
            if step == StepPath::Device {
                assert!(rec.flows.steps_run > rec.flows.propagation_steps, "two passes");
                assert!(
                    d.reads <= rec.flows.steps_run as u64 + 4,
                    "{d:?} for {} steps",
                    rec.flows.steps_run
                );
                assert!(d.read_bytes <= 64 * 1024, "{d:?}");
            }
            these.push((rec.loss, rec.flows));
        }
        losses.push(these);
    }
    // Same flows, same loss.
    for ((hl, hf), (dl, df)) in losses[0].iter().zip(&losses[1]) {
        assert_eq!(df, hf);
        assert!((hl - dl).abs() <= 1e-5 * (1.0 + hl.abs()), "{hl} vs {dl}");
    }
}

#[test]
fn the_noise_is_deterministic_normal_and_new_each_step() {
    let dev = Device::flex();
    let n = 40_000;
    let like = Tensor::<2>::zeros([n, 3], &dev);
    let spec = NoiseSpec {
        seed: 42,
        step: 1,
        sigma: 0.5,
        on_z: true,
    };
    let a = floats(flow_noise(&like, spec));
    assert_eq!(a, floats(flow_noise(&like, spec)), "deterministic");
    let col = |v: &[f32], c: usize| -> Vec<f64> { v.chunks(3).map(|r| r[c] as f64 / 0.5).collect() };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let corr = |x: &[f64], y: &[f64]| {
        let (mx, my) = (mean(x), mean(y));
        let c: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let sx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let sy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        c / (sx * sy).sqrt()
    };
    // 4 standard errors: 4 / sqrt(n) = 0.02.
    for c in 0..3 {
        let v = col(&a, c);
        let m = mean(&v);
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        let within = v.iter().filter(|x| x.abs() < 1.0).count() as f64 / n as f64;
        assert!(m.abs() < 0.02, "axis {c}: mean {m}");
        assert!((var - 1.0).abs() < 0.03, "axis {c}: variance {var}");
        assert!((within - 0.6827).abs() < 0.01, "axis {c}: {within} within one sigma");
    }
    assert!(corr(&col(&a, 0), &col(&a, 1)).abs() < 0.02);
    assert!(corr(&col(&a, 0), &col(&a, 2)).abs() < 0.02);
    // Another step, another seed: other draws, uncorrelated.
    let next = floats(flow_noise(&like, NoiseSpec { step: 2, ..spec }));
    let other = floats(flow_noise(&like, NoiseSpec { seed: 43, ..spec }));
    assert!(corr(&col(&a, 0), &col(&next, 0)).abs() < 0.02);
    assert!(corr(&col(&a, 0), &col(&other, 0)).abs() < 0.02);
    // Off z: exactly zero there, the same x and y.
    let flat = floats(flow_noise(&like, NoiseSpec { on_z: false, ..spec }));
    assert!(col(&flat, 2).iter().all(|&z| z == 0.0));
    assert_eq!(col(&flat, 0), col(&a, 0));
}

#[test]
fn the_path_is_the_host_on_the_cpu_unless_the_runtime_says_otherwise() {
    let cfg = tiny_config(8);
    let dev = Device::flex();
    let auto = ForwardSettings::for_runtime(&cfg, &RuntimeConfig::default(), &dev);
    assert_eq!(auto.step, StepPath::Host);
    let asked: RuntimeConfig = toml::from_str("step = \"device\"").unwrap();
    assert_eq!(ForwardSettings::for_runtime(&cfg, &asked, &dev).step, StepPath::Device);
    assert_eq!(StepPath::for_device(false), StepPath::Device);
    let e = toml::from_str::<RuntimeConfig>("step = \"gpu\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("host") && e.contains("device"), "{e}");
}

/// Found by the property test (when its iota was shorter than the
/// samples, which `DeviceStep` needs): one flow of sample 0 (of 2) with no
/// room left asks for a child, which both paths drop.
#[test]
fn a_child_with_no_room_is_dropped_once_on_both_paths() {
    let c = Case {
        rules: StepRules {
            lattice: Lattice::new(4, 3, 6),
            samples: 2,
            projection_steps: 5,
            reflection: false,
            spawn: Some((0.05, 1)),
            max_active: 1,
        },
        old: vec![0.0; 3],
        raw: vec![0.0, 0.0, 0.156_937_27],
        sample: vec![0],
        steps: vec![0],
    };
    both_paths_agree(&c, &Device::flex(), Kernels::Fused).unwrap();
}
