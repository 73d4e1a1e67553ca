//! Training: exact resume, learning on the synthetic task, skipped
//! non-finite steps, the metrics file, and architecture checks on resume.

use burn::tensor::Device;
use energyflow::checkpoint;
use energyflow::config::EnergyConfig;
use energyflow::config::Part;
use energyflow::config::RuntimeConfig;
use energyflow::io::Matrix;
use energyflow::train::metrics::{Record, StepRecord, read_records};
use energyflow::train::{PairData, Run, RunStop, Trainer};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

mod common;
use common::tiny_config;

/// Every tensor of two safetensors weight files, compared elementwise.
fn max_weight_diff(a: &Path, b: &Path) -> f32 {
    let (ba, bb) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (sa, sb) = (
        safetensors::SafeTensors::deserialize(&ba).unwrap(),
        safetensors::SafeTensors::deserialize(&bb).unwrap(),
    );
    let mut names = sa.names();
    names.sort();
    assert!(names.len() > 10, "{names:?}");
    let mut worst = 0.0f32;
    for name in names {
        let (ta, tb) = (sa.tensor(name).unwrap(), sb.tensor(name).unwrap());
        assert_eq!(ta.shape(), tb.shape(), "{name}");
        let f = |d: &[u8]| {
            d.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>()
        };
        for (x, y) in f(ta.data()).iter().zip(f(tb.data())) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

fn weights_of(run: &Path) -> std::path::PathBuf {
    let ckpt = run.join("latest");
    let meta = checkpoint::read_meta(&ckpt).unwrap();
    ckpt.join(meta.weights)
}

/// Trains `trainer` on `data` in the run folder `out` up to `max_steps`
/// steps in total; returns the trainer (to inspect) and why it stopped.
fn run(trainer: Trainer, data: &PairData, out: &Path, max_steps: usize) -> (Trainer, RunStop) {
    let stop = AtomicBool::new(false);
    let mut r = Run::new(trainer, data.clone(), out).unwrap();
    let s = r.train(Some(max_steps), &stop, &mut |_| {}).unwrap();
    (r.trainer, s.stop)
}

/// Trains `cfg` for `n` steps in `dir`/a, resumes there to 2n, trains
/// straight to 2n in `dir`/b, and checks that both end alike (state and
/// weights); returns the two run folders.
fn resume_against_straight(cfg: &EnergyConfig, data: &PairData, seed: u64, n: usize, dir: &Path) -> (PathBuf, PathBuf) {
    let dev = Device::flex();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let first = Trainer::new(cfg.clone(), &RuntimeConfig::default(), data, seed, &dev).unwrap();
    assert_eq!(run(first, data, &a, n).1, RunStop::MaxSteps);
    let resumed = Trainer::resume(&a.join("latest"), data, &RuntimeConfig::default(), &dev).unwrap();
    assert_eq!(resumed.state.step, n);
    let (resumed, _) = run(resumed, data, &a, 2 * n);
    let straight = Trainer::new(cfg.clone(), &RuntimeConfig::default(), data, seed, &dev).unwrap();
    let (straight, _) = run(straight, data, &b, 2 * n);
    assert_eq!(resumed.state, straight.state);
    let diff = max_weight_diff(&weights_of(&a), &weights_of(&b));
    assert!(diff <= 1e-6, "weights differ by {diff}");
    (a, b)
}

#[test]
fn resume_continues_exactly() {
    for (accumulation, micro) in [(1, None), (2, None), (1, Some(3))] {
        let mut cfg = tiny_config(6);
        cfg.train.accumulate_batches = accumulation;
        cfg.train.samples_per_pass = micro;
        cfg.flow.exploration_noise = 0.1;
        // 22 training pairs: 6 micro-batches per epoch, so 2N steps cross epochs.
        let data = PairData::synthetic_rotation(24, 6, 3);
        let tmp = tempfile::tempdir().unwrap();
        let (_, b) = resume_against_straight(&cfg, &data, 11, 4, tmp.path());
        // A changed model would make the comparison vacuous: check it moved.
        let fresh = tmp.path().join("fresh");
        let untouched = Trainer::new(tiny_config(6), &RuntimeConfig::default(), &data, 11, &Device::flex()).unwrap();
        untouched.save(&fresh.join("latest")).unwrap();
        assert!(
            max_weight_diff(&weights_of(&fresh), &weights_of(&b)) > 1e-4,
            "accumulation {accumulation}: nothing moved"
        );
    }
}

#[test]
fn learns_the_synthetic_rotation() {
    let mut cfg = tiny_config(8);
    cfg.train.batch_size = 16;
    cfg.train.learning_rate = 3e-3;
    cfg.train.warmup_steps = 20;
    cfg.train.epochs = 20;
    let data = PairData::synthetic_rotation(400, 8, 5);
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let t = Trainer::new(cfg, &RuntimeConfig::default(), &data, 1, &dev).unwrap();
    let before = t.validate(&data).unwrap().cosine;
    let stop = AtomicBool::new(false);
    let summary = Run::new(t, data.clone(), tmp.path())
        .unwrap()
        .train(Some(300), &stop, &mut |_| {})
        .unwrap();
    let after = summary.last_val.unwrap().cosine;
    eprintln!("held-out cosine {before:.3} -> {after:.3}");
    assert!(
        after > before + 0.3 && after > 0.5,
        "held-out cosine {before:.3} -> {after:.3}"
    );
    // Every step wrote a line; every validation too.
    let lines = std::fs::read_to_string(tmp.path().join("metrics.jsonl")).unwrap();
    let steps = lines.lines().filter(|l| l.contains("\"kind\":\"step\"")).count();
    assert_eq!(steps, 300);
    assert!(
        lines
            .lines()
            .any(|l| l.contains("\"kind\":\"validation\"") && l.contains("val_cosine"))
    );
}

#[test]
fn non_finite_steps_are_skipped_and_leave_the_weights_alone() {
    let cfg = tiny_config(4);
    let n = 12;
    let input = Matrix {
        rows: n,
        cols: 4,
        data: (0..n * 4).map(|i| (i as f32 * 0.3).sin()).collect(),
    };
    // Targets this large overflow the squared error in f32: the loss is inf.
    let target = Matrix {
        rows: n,
        cols: 4,
        data: vec![3e38; n * 4],
    };
    let data = PairData {
        input,
        target,
        origin: "test:overflow".into(),
    };
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let t = Trainer::new(cfg, &RuntimeConfig::default(), &data, 2, &dev).unwrap();
    t.save(&tmp.path().join("before")).unwrap();
    let stop = AtomicBool::new(false);
    let s = Run::new(t, data, &tmp.path().join("run"))
        .unwrap()
        .train(Some(3), &stop, &mut |_| {})
        .unwrap();
    assert_eq!((s.steps, s.skipped), (3, 3));
    let before = tmp.path().join("before");
    let before = before.join(checkpoint::read_meta(&before).unwrap().weights);
    assert_eq!(max_weight_diff(&before, &weights_of(&tmp.path().join("run"))), 0.0);
    let lines = std::fs::read_to_string(tmp.path().join("run/metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().filter(|l| l.contains("\"skipped\":true")).count(), 3);
}

#[test]
fn step_records_carry_the_flow_statistics() {
    let cfg = tiny_config(6);
    let data = PairData::synthetic_rotation(20, 6, 1);
    let dev = Device::flex();
    let mut t = Trainer::new(cfg.clone(), &RuntimeConfig::default(), &data, 0, &dev).unwrap();
    let r = t.train_step(&data).unwrap();
    let value = serde_json::to_value(&r).unwrap();
    for key in [
        "step",
        "epoch",
        "loss",
        "mse",
        "cosine",
        "lr",
        "grad_norm",
        "skipped",
        "samples_per_s",
        "step_ms",
        "flows_created",
        "flows_spawned",
        "flows_dropped",
        "completed_z0",
        "completed_zd",
        "completed_projected",
        "completed_final",
        "propagation_steps",
        "active_per_step",
        "mean_flow_steps",
        "stop_reason",
        "peak_rss_mb",
    ] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
    assert_eq!(r.step, 1);
    let f = &r.flows;
    assert!(f.flows_created >= cfg.train.batch_size * cfg.model.surface_cells());
    assert_eq!(f.flows_created, f.completed());
    assert_eq!(f.cells_total, cfg.train.batch_size * cfg.model.surface_cells());
    assert!(r.loss.is_finite() && r.grad_norm > 0.0 && r.peak_rss_mb > 0.0);
}

#[test]
fn surface_loss_keeps_the_input_mapper_frozen() {
    let mut cfg = tiny_config(6);
    cfg.train.loss = energyflow::config::LossKind::Surface;
    let data = PairData::synthetic_rotation(24, 6, 4);
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let t = Trainer::new(cfg, &RuntimeConfig::default(), &data, 3, &dev).unwrap();
    t.save(&tmp.path().join("before")).unwrap();
    let s = Run::new(t, data, &tmp.path().join("run"))
        .unwrap()
        .train(Some(3), &AtomicBool::new(false), &mut |_| {})
        .unwrap();
    assert_eq!((s.steps, s.skipped), (3, 0));
    for (module, changed, all) in changed_by_module(&tmp.path().join("before"), &tmp.path().join("run/latest")) {
        match module {
            "input_mapper" => assert!(changed == 0 && all > 5, "mapper: {changed} of {all} changed"),
            "carrier" => assert!(changed > 0, "the carrier must still learn"),
            _ => {}
        }
    }
}

/// Every module of the model learns: one optimizer step on the embedding
/// loss changes weights of the mapper, the neuron, the carrier and the
/// readout (the first two reach the loss only through the flows).
#[test]
fn one_step_moves_every_module() {
    let cfg = tiny_config(6);
    let data = PairData::synthetic_rotation(24, 6, 4);
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let t = Trainer::new(cfg, &RuntimeConfig::default(), &data, 3, &dev).unwrap();
    t.save(&tmp.path().join("before")).unwrap();
    let s = Run::new(t, data, &tmp.path().join("run"))
        .unwrap()
        .train(Some(1), &AtomicBool::new(false), &mut |_| {})
        .unwrap();
    assert_eq!((s.steps, s.skipped), (1, 0));
    for (module, changed, _) in changed_by_module(&tmp.path().join("before"), &tmp.path().join("run/latest")) {
        assert!(changed > 0, "no weight of {module} changed after a step");
    }
}

/// The weights of the checkpoints `before` and `after`: for each module
/// prefix, (tensors changed, tensors in all).
fn changed_by_module(before: &Path, after: &Path) -> Vec<(&'static str, usize, usize)> {
    let read = |dir: &Path| {
        let meta = checkpoint::read_meta(dir).unwrap();
        std::fs::read(dir.join(meta.weights)).unwrap()
    };
    let (a, b) = (read(before), read(after));
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    ["input_mapper", "neuron", "carrier", "collector"]
        .into_iter()
        .map(|module| {
            let names: Vec<&str> = a.names().into_iter().filter(|n| n.starts_with(module)).collect();
            let changed = names
                .iter()
                .filter(|n| a.tensor(n).unwrap().data() != b.tensor(n).unwrap().data())
                .count();
            (module, changed, names.len())
        })
        .collect()
}

fn step_records(run: &Path) -> Vec<StepRecord> {
    read_records(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Step(s) => Some(s),
            Record::Validation(_) => None,
        })
        .collect()
}

/// A frozen module keeps its initial weights while the others learn; its
/// gradient norm in the step records is 0, and the four module norms make
/// up the global one.
#[test]
fn a_frozen_module_keeps_its_weights_and_reports_no_gradient() {
    let mut cfg = tiny_config(6);
    cfg.train.frozen = vec![Part::Carrier];
    let data = PairData::synthetic_rotation(24, 6, 4);
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let t = Trainer::new(cfg, &RuntimeConfig::default(), &data, 3, &dev).unwrap();
    t.save(&tmp.path().join("before")).unwrap();
    let run_dir = tmp.path().join("run");
    run(t, &data, &run_dir, 2);
    for (module, changed, all) in changed_by_module(&tmp.path().join("before"), &run_dir.join("latest")) {
        assert!(all > 0, "{module}");
        if module == "carrier" {
            assert_eq!(changed, 0, "a frozen carrier changed");
        } else {
            assert!(changed > 0, "{module} did not learn");
        }
    }
    let recs = step_records(&run_dir);
    assert_eq!(recs.len(), 2);
    for r in recs {
        assert_eq!(r.grad_norm_carrier, 0.0);
        let parts = [r.grad_norm_mapper, r.grad_norm_neuron, r.grad_norm_collector];
        assert!(parts.iter().all(|&v| v > 0.0), "{parts:?}");
        let sum: f64 = parts.iter().map(|v| v * v).sum();
        assert!(
            (sum.sqrt() - r.grad_norm).abs() <= 1e-6 * r.grad_norm,
            "{parts:?} vs {}",
            r.grad_norm
        );
    }
}

/// Validating every 2 steps adds learning-curve points inside the epoch
/// and leaves every step (losses, gradients, weights) exactly as it was.
#[test]
fn periodic_validation_adds_points_and_leaves_the_trajectory_alone() {
    let mut cfg = tiny_config(6);
    cfg.flow.exploration_noise = 0.1;
    // 28 pairs, 3 validate, 3 test: 22 training pairs in batches of 4, 6
    // steps per epoch.
    let data = PairData::synthetic_rotation(28, 6, 3);
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let (plain, periodic) = (tmp.path().join("plain"), tmp.path().join("periodic"));
    run(
        Trainer::new(cfg.clone(), &RuntimeConfig::default(), &data, 5, &dev).unwrap(),
        &data,
        &plain,
        8,
    );
    cfg.train.validate_every_steps = Some(2);
    run(
        Trainer::new(cfg, &RuntimeConfig::default(), &data, 5, &dev).unwrap(),
        &data,
        &periodic,
        8,
    );

    let figures = |r: &StepRecord| {
        (
            r.step,
            r.loss,
            r.cosine,
            r.grad_norm,
            [
                r.grad_norm_mapper,
                r.grad_norm_neuron,
                r.grad_norm_carrier,
                r.grad_norm_collector,
            ],
            r.flows.clone(),
        )
    };
    let (a, b) = (step_records(&plain), step_records(&periodic));
    assert_eq!(a.len(), 8);
    assert_eq!(
        a.iter().map(figures).collect::<Vec<_>>(),
        b.iter().map(figures).collect::<Vec<_>>()
    );
    assert_eq!(max_weight_diff(&weights_of(&plain), &weights_of(&periodic)), 0.0);

    let validations = |run: &Path| -> Vec<(usize, bool)> {
        read_records(&run.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .filter_map(|r| match r {
                Record::Validation(v) => Some((v.step, v.complete)),
                Record::Step(_) => None,
            })
            .collect()
    };
    assert_eq!(validations(&plain), vec![(6, true), (8, false)]);
    assert_eq!(
        validations(&periodic),
        vec![(2, false), (4, false), (6, true), (8, false)]
    );
}

/// Workers kept awake (`runtime.spin_wait`) change the speed only: steps run
/// inside a two-thread pool equal, to the bit, the ones with the workers
/// left to sleep between operations.
#[test]
fn spinning_workers_leave_the_steps_unchanged() {
    let data = PairData::synthetic_rotation(20, 6, 1);
    let dev = Device::flex();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let steps = |spin: bool| {
        let runtime = RuntimeConfig {
            spin_wait: spin,
            ..RuntimeConfig::default()
        };
        pool.install(|| {
            let mut t = Trainer::new(tiny_config(6), &runtime, &data, 5, &dev).unwrap();
            (0..3)
                .map(|_| {
                    let r = t.train_step(&data).unwrap();
                    (r.loss.to_bits(), r.grad_norm.to_bits())
                })
                .collect::<Vec<_>>()
        })
    };
    // A spinner counts only once the pool has scheduled it, which a loaded
    // machine may not do within three tiny steps: a few tries, each of
    // which must give the same steps.
    let spun_before = energyflow::pool::spin_seconds();
    let on = steps(true);
    for _ in 0..5 {
        if energyflow::pool::spin_seconds() > spun_before {
            break;
        }
        assert_eq!(on, steps(true));
    }
    assert!(
        energyflow::pool::spin_seconds() > spun_before,
        "no worker was kept awake in six tries"
    );
    assert_eq!(on, steps(false));
    assert_eq!(on, steps(true));
}

/// With depth 2 every flow completes in its first step, so the carrier's
/// displacement head never reaches the loss and gets no gradient: AdamW
/// keeps no state for it. A resume must not take that for a foreign
/// optimizer state (the `tuned` preset, the main job, could not be
/// resumed), and must continue exactly.
#[test]
fn resume_works_when_a_module_never_gets_a_gradient() {
    let mut cfg = tiny_config(6);
    cfg.flow.lattice_depth = 2;
    let data = PairData::synthetic_rotation(24, 6, 3);
    let tmp = tempfile::tempdir().unwrap();
    let (_, b) = resume_against_straight(&cfg, &data, 7, 3, tmp.path());
    // The premise: the displacement head is trainable and never moved.
    let fresh = tmp.path().join("fresh");
    Trainer::new(cfg, &RuntimeConfig::default(), &data, 7, &Device::flex())
        .unwrap()
        .save(&fresh.join("latest"))
        .unwrap();
    let (f, t) = (
        std::fs::read(weights_of(&fresh)).unwrap(),
        std::fs::read(weights_of(&b)).unwrap(),
    );
    let (f, t) = (
        safetensors::SafeTensors::deserialize(&f).unwrap(),
        safetensors::SafeTensors::deserialize(&t).unwrap(),
    );
    let delta: Vec<&str> = f.names().into_iter().filter(|n| n.contains("delta")).collect();
    assert!(!delta.is_empty(), "{:?}", f.names());
    for n in &delta {
        assert_eq!(f.tensor(n).unwrap().data(), t.tensor(n).unwrap().data(), "{n} moved");
    }
}
