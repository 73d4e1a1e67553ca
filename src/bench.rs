//! Benchmarks behind `energyflow bench`: synthetic workloads, medians of
//! repeated timed runs after a warm-up. Library code: returns figures, the
//! CLI prints them.

use crate::config::resources::{self, Purpose};
use crate::config::{EnergyConfig, Preset, RuntimeConfig};
use crate::device;
use crate::error::{Error, Result};
use crate::flow::naive::{collect_naive, collect_reference_f64};
use crate::flow::{Aggregator, CompletedMeta};
use crate::kernels::flow_collect::{DoneOnDevice, collect_on_device, collect_on_device_composed};
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Instant;

/// Bounds of the count flags: what a benchmark can mean on one machine
/// (memory is checked besides).
pub const MAX_FLOWS: usize = 100_000_000;
pub const MAX_SAMPLES: usize = 65_536;
pub const MAX_RUNS: usize = 10_000;

/// Refuses a count flag outside 1..=max.
fn count(flag: &str, v: usize, max: usize) -> Result<()> {
    if (1..=max).contains(&v) {
        Ok(())
    } else {
        Err(Error::input(format!("{flag} {v}: must be between 1 and {max}")))
    }
}

/// A synthetic set of completed flows.
pub struct SyntheticFlows {
    pub energy: Vec<f32>,
    pub meta: CompletedMeta,
    pub n_keys: usize,
}

/// `flows` completed flows over `samples` samples of `cells` cells: a hot
/// fifth of the cells gets most flows (many multi-flow groups, of one or
/// several samples per cell), the rest are sparse (single-flow groups and
/// empty cells). Energies in (-1, 1), steps 1..=10, z on a plane.
pub fn synthetic_flows(flows: usize, samples: usize, cells: usize, seed: u64) -> SyntheticFlows {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let hot = (cells / 5).max(1);
    let mut meta = CompletedMeta::default();
    let mut energy = Vec::with_capacity(flows);
    for _ in 0..flows {
        let sample = rng.random_range(0..samples);
        let cell = if rng.random_bool(0.7) {
            // Hot cells are spread over the surface, not one block.
            (rng.random_range(0..hot) * 5) % cells
        } else {
            rng.random_range(0..cells)
        };
        let steps = rng.random_range(1..=10u32);
        let z = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
        meta.push((sample * cells + cell) as u32, steps, z);
        energy.push(rng.random_range(-1.0f32..1.0));
    }
    SyntheticFlows {
        energy,
        meta,
        n_keys: samples * cells,
    }
}

/// Figures of `bench collect`.
#[derive(Debug, Clone, Serialize)]
pub struct CollectBench {
    pub flows: usize,
    pub samples: usize,
    pub groups: usize,
    pub optimized_ms: f64,
    pub naive_ms: Option<f64>,
    pub ratio: Option<f64>,
    pub max_abs_diff: f64,
    /// What max_abs_diff compares against: "naive" or "f64_reference".
    pub diff_against: &'static str,
    /// The device step's collection (`collect_on_device`, metadata already
    /// on the device): through the backend's segment softmax kernel where
    /// it has one, and in burn's composed ops.
    pub device_ms: f64,
    pub device_composed_ms: f64,
    /// Largest |difference| of each device collection from the f64
    /// reference (on lavapipe the composed one is cut short past 65 535
    /// flows: its loops stop there).
    pub device_max_abs_diff: f64,
    pub device_composed_max_abs_diff: f64,
    pub runs: usize,
    /// What ran it (`device::describe`).
    pub backend: String,
}

/// Median of a sample (in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Forward + backward of one collection; returns (ms, surface values, grad).
fn time_one(
    flows: &SyntheticFlows,
    dev: &Device,
    f: &mut dyn FnMut(Tensor<1>) -> Result<Tensor<1>>,
) -> Result<(f64, Vec<f32>)> {
    let e = device::vector(flows.energy.clone(), dev).require_grad();
    let upstream = device::vector((0..flows.n_keys).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect(), dev);
    let t = Instant::now();
    let surface = f(e.clone())?;
    let loss = (surface.clone() * upstream).sum();
    let grads = loss.backward();
    let g = e.grad(&grads).map(device::to_vec).transpose()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    drop(g);
    Ok((ms, device::to_vec(surface.inner())?))
}

/// The largest |a_i - b_i|, in f64.
fn worst(a: &[f32], b: impl Iterator<Item = f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max)
}

/// The median of `runs` timed collections after `warm` untimed ones, and
/// the last one's surface.
fn timed(
    runs: usize,
    warm: usize,
    set: &SyntheticFlows,
    dev: &Device,
    f: &mut dyn FnMut(Tensor<1>) -> Result<Tensor<1>>,
) -> Result<(f64, Vec<f32>)> {
    let mut times = Vec::new();
    let mut last = Vec::new();
    for r in 0..runs + warm {
        let (ms, out) = time_one(set, dev, f)?;
        if r >= warm {
            times.push(ms);
        }
        last = out;
    }
    Ok((median(&mut times), last))
}

/// Times the host step's collection, the device step's (with and without
/// the backend's kernel) and (up to `naive_limit` flows) the naive one on
/// the surface of `preset`.
pub fn bench_collect(
    flows: usize,
    samples: usize,
    preset: Preset,
    runs: usize,
    naive_limit: usize,
    dev: &Device,
) -> Result<CollectBench> {
    count("--flows", flows, MAX_FLOWS)?;
    count("--samples", samples, MAX_SAMPLES)?;
    count("--runs", runs, MAX_RUNS)?;
    let cells = EnergyConfig::preset(preset).model.surface_cells();
    // Group keys are u32 (sample * cells + cell): 65536 x 10000 fits.
    let keys = samples * cells;
    // Per flow: energy, key, steps, z, the gradient and the collection's
    // scratch; per key: the upstream gradient, the surface and a flag.
    let bytes = flows as f64 * 96.0 + keys as f64 * 16.0;
    resources::ensure_available(&format!("bench collect of {flows} flows"), bytes, "; lower --flows")?;
    let dev = dev.clone().autodiff();
    let set = synthetic_flows(flows, samples, cells, 7);
    let mut aggregator = Aggregator::new();
    let mut opt = |e: Tensor<1>| aggregator.collect(e, &set.meta, set.n_keys).map(|r| r.0);
    let (optimized_ms, out_opt) = timed(runs, 3, &set, &dev, &mut opt)?;
    let reference = collect_reference_f64(&set.energy, &set.meta, set.n_keys);
    let from_reference = |out: &[f32]| worst(out, reference.iter().copied());
    let (key, steps) = (
        device::indices(&set.meta.key, &dev),
        device::indices(&set.meta.steps, &dev),
    );
    let z = device::vector(set.meta.z.clone(), &dev);
    let done = |energy: Tensor<1>| DoneOnDevice {
        energy,
        key: key.clone(),
        steps: steps.clone(),
        z: z.clone(),
    };
    let mut on_device = |e: Tensor<1>| Ok(collect_on_device(done(e), set.n_keys).0);
    let (device_ms, out_device) = timed(runs, 3, &set, &dev, &mut on_device)?;
    let mut composed = |e: Tensor<1>| Ok(collect_on_device_composed(done(e), set.n_keys).0);
    let (device_composed_ms, out_composed) = timed(runs, 3, &set, &dev, &mut composed)?;
    let (device_max_abs_diff, device_composed_max_abs_diff) =
        (from_reference(&out_device), from_reference(&out_composed));
    let groups = {
        let mut seen = vec![false; set.n_keys];
        set.meta.key.iter().for_each(|&k| seen[k as usize] = true);
        seen.iter().filter(|&&s| s).count()
    };
    let (naive_ms, max_abs_diff, diff_against) = if flows <= naive_limit {
        let mut naive = |e: Tensor<1>| Ok(collect_naive(e, &set.meta, set.n_keys));
        let (naive_ms, out_naive) = timed(runs.clamp(1, 5), 1, &set, &dev, &mut naive)?;
        let diff = worst(&out_opt, out_naive.iter().map(|&v| v as f64));
        (Some(naive_ms), diff, "naive")
    } else {
        (None, from_reference(&out_opt), "f64_reference")
    };
    Ok(CollectBench {
        flows,
        samples,
        groups,
        optimized_ms,
        naive_ms,
        ratio: naive_ms.map(|n| n / optimized_ms),
        max_abs_diff,
        diff_against,
        device_ms,
        device_composed_ms,
        device_max_abs_diff,
        device_composed_max_abs_diff,
        runs,
        backend: device::describe(&dev),
    })
}

/// Figures of `bench step`: medians over the timed training steps.
#[derive(Debug, Clone, Serialize)]
pub struct StepBench {
    pub preset: String,
    pub batch: usize,
    /// Flows created per step (median): B*S starting flows plus children.
    pub flows: usize,
    /// Propagation steps run per forward (median).
    pub steps: usize,
    /// Flow-steps per training step (median): rows the shared network
    /// processed, summed over propagation steps and passes. Flow counts
    /// depend on the weights, so costs are compared per flow-step.
    pub flow_steps: usize,
    /// Training time per flow-step: all timed steps' time over all their
    /// flow-steps, in microseconds.
    pub train_us_per_flow_step: f64,
    /// Flow-steps of one inference forward of the batch.
    pub infer_flow_steps: usize,
    /// Inference time per flow-step, in microseconds.
    pub infer_us_per_flow_step: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    /// From the end of the last propagation step until the loss is ready:
    /// final projection, concatenation, collection, statistics.
    pub end_of_batch_ms: f64,
    pub collect_ms: f64,
    /// Whole optimizer step: forward, loss, backward, clipping, AdamW.
    pub train_step_ms: f64,
    /// One inference forward of a batch (no autodiff, no dropout, no noise).
    pub infer_ms: f64,
    pub peak_rss_mb: f64,
    /// Process CPU time over wall time during the timed steps, divided by
    /// the cores available (1.0 = every core busy all the time), less the
    /// time the kept-awake workers spun without work (`pool`).
    pub cpu_utilisation: f64,
    /// The spinning left out of `cpu_utilisation`, on the same scale:
    /// their sum is the CPU the process held.
    pub cpu_spin: f64,
    pub cores: usize,
    pub runs: usize,
    /// Per timed training step (mean): propagation steps run, summed over
    /// the step's passes.
    pub propagation_steps: f64,
    /// Per timed training step (mean): reads back to the host (each waits
    /// for the device to finish what was queued) and the bytes they moved.
    pub host_reads: f64,
    pub host_read_bytes: f64,
    /// Per timed training step (mean): uploads from the host and their bytes.
    pub host_writes: f64,
    pub host_write_bytes: f64,
    /// Where the flows' bookkeeping ran: "host" or "device" (`runtime.step`).
    pub step_path: &'static str,
    /// Per timed training step (mean): kernels launched on a GPU backend
    /// (cubecl's launch observer); None on the CPU, where burn counts none.
    pub dispatches: Option<f64>,
    /// What ran it (`device::describe`): on a GPU, the adapter and whether
    /// the shaders went to the driver as SPIR-V or WGSL.
    pub backend: String,
}

/// Times `runs` training steps (after `warmup` untimed ones) and `runs`
/// inference forwards of the config's batch (or `batch`) on generated
/// unit-vector inputs and targets, executing as `runtime` says.
pub fn bench_step(
    mut cfg: EnergyConfig,
    runtime: &RuntimeConfig,
    preset: &str,
    batch: Option<usize>,
    runs: usize,
    warmup: usize,
    dev: &Device,
) -> Result<StepBench> {
    use crate::model::{ForwardOptions, Workspace};
    use crate::train::{PairData, Trainer, metrics};
    use burn::module::Module;

    count("--runs", runs, MAX_RUNS)?;
    if warmup > MAX_RUNS {
        return Err(Error::input(format!("--warmup {warmup}: must be at most {MAX_RUNS}")));
    }
    if let Some(b) = batch {
        cfg.train.batch_size = b;
    }
    cfg.validate()?;
    let b = cfg.train.batch_size;
    // Enough training rows that no batch repeats, plus the held-out tenth.
    let n = b * (runs + warmup + 1) * 10 / 9 + 2;
    let data_bytes = 4.0 * n as f64 * (cfg.model.input_embedding_dim + cfg.model.output_embedding_dim) as f64;
    resources::ensure_fits(&cfg, Purpose::Training, data_bytes)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut unit_rows = |cols: usize| {
        let mut data = Vec::with_capacity(n * cols);
        for _ in 0..n {
            let row: Vec<f32> = (0..cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
            data.extend(row.iter().map(|v| v / norm));
        }
        crate::io::Matrix { rows: n, cols, data }
    };
    let input = unit_rows(cfg.model.input_embedding_dim);
    let target = unit_rows(cfg.model.output_embedding_dim);
    let data = PairData {
        input,
        target,
        origin: "bench:random".into(),
    };
    cfg.train.epochs = 1_000;
    let mut trainer = Trainer::new(cfg.clone(), runtime, &data, 0, dev)?;
    for _ in 0..warmup {
        trainer.train_step(&data)?;
    }
    let launches = device::LaunchCount::start(dev);
    let moved0 = device::transfers();
    let (wall0, cpu0, spin0) = (Instant::now(), metrics::cpu_seconds(), crate::pool::spin_seconds());
    let mut recs = Vec::with_capacity(runs);
    for _ in 0..runs {
        recs.push(trainer.train_step(&data)?);
    }
    let (wall, cpu) = (wall0.elapsed().as_secs_f64(), metrics::cpu_seconds() - cpu0);
    let moved = device::transfers() - moved0;
    let dispatches = launches.stop();
    let per_step = |v: u64| v as f64 / runs as f64;
    // The spinners time their idle loops by the wall clock, which keeps
    // running while a loaded machine deschedules them: bound it by the CPU
    // time the process really used.
    let spin = (crate::pool::spin_seconds() - spin0).min(cpu);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let med = |f: &dyn Fn(&crate::train::metrics::StepRecord) -> f64| {
        let mut v: Vec<f64> = recs.iter().map(f).collect();
        median(&mut v)
    };
    let model = trainer.model().valid();
    let mut ws = Workspace::default();
    let settings = trainer.settings().clone();
    let opts = ForwardOptions::inference(&settings);
    let rows: Vec<usize> = (0..b).collect();
    let (x, _) = data.gather(&rows);
    let mut infer = Vec::with_capacity(runs);
    let mut infer_flow_steps = 0;
    let plain = model.devices().into_iter().next().unwrap_or_else(|| dev.clone());
    for r in 0..runs + 1 {
        let x = device::matrix(x.clone(), b, data.input.cols, &plain);
        let t = Instant::now();
        let out = model.forward(x, &settings, &mut ws, &opts)?;
        device::to_vec(out.output)?;
        if r > 0 {
            infer.push(t.elapsed().as_secs_f64() * 1e3);
        }
        infer_flow_steps = out.stats.flow_steps();
    }
    let train_ms: f64 = recs.iter().map(|r| r.step_ms).sum();
    let train_flow_steps: usize = recs.iter().map(|r| r.flows.flow_steps()).sum();
    let infer_ms = median(&mut infer);
    Ok(StepBench {
        preset: preset.to_string(),
        batch: b,
        flows: med(&|r| r.flows.flows_created as f64) as usize,
        steps: med(&|r| r.flows.propagation_steps as f64) as usize,
        flow_steps: med(&|r| r.flows.flow_steps() as f64) as usize,
        train_us_per_flow_step: train_ms * 1e3 / train_flow_steps.max(1) as f64,
        infer_flow_steps,
        infer_us_per_flow_step: infer_ms * 1e3 / infer_flow_steps.max(1) as f64,
        forward_ms: med(&|r| r.forward_ms),
        backward_ms: med(&|r| r.backward_ms),
        optimizer_ms: med(&|r| r.optimizer_ms),
        end_of_batch_ms: med(&|r| r.end_of_batch_ms),
        collect_ms: med(&|r| r.collect_ms),
        train_step_ms: med(&|r| r.step_ms),
        infer_ms,
        peak_rss_mb: metrics::peak_rss_mb(),
        cpu_utilisation: (cpu - spin).max(0.0) / wall.max(1e-9) / cores as f64,
        cpu_spin: spin / wall.max(1e-9) / cores as f64,
        cores,
        runs,
        propagation_steps: recs.iter().map(|r| r.flows.steps_run).sum::<usize>() as f64 / runs as f64,
        host_reads: per_step(moved.reads),
        host_read_bytes: per_step(moved.read_bytes),
        host_writes: per_step(moved.writes),
        host_write_bytes: per_step(moved.write_bytes),
        step_path: trainer.settings().step.name(),
        dispatches: dispatches.map(per_step),
        backend: device::describe(dev),
    })
}
