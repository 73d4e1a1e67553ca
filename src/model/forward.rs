//! One forward pass of the model over a batch: MODEL.md s.4 in one place.
//!
//! [`EnergyFlowModel::forward`] reads top to bottom as the section does:
//! 1. map the input embeddings to energies and start one flow per cell;
//! 2. propagate: each step runs the shared network (neuron, carrier) once
//!    over ALL active flows as one batch, reads the raw new positions back
//!    to the host once (the step's only device synchronisation), lets
//!    `flow::advance` decide every flow's fate, and compacts the active set
//!    with one gather per tensor (`FlowStore::compact`);
//! 3. project every flow still active onto its nearer plane;
//! 4. collect the completed flows into a surface (`flow::Aggregator`);
//! 5. read the surface out into an embedding.
//!
//! The step rules, the store and the collection are host-side engine code
//! in `flow/`; this file is the only place where the network meets them.

use super::EnergyFlowModel;
use super::layers::DropoutMasks;
use super::lesion::{self, Lesion};
use crate::config::{EnergyConfig, FlowConfig};
use crate::device;
use crate::error::{Error, Result};
use crate::flow::rules::wall_device;
use crate::flow::{ActiveTensors, Aggregator, FlowStats, FlowStore, FlowTrace, LoopStop, StepRules, advance};
use crate::geometry::{Lattice, nearer_plane};
use crate::seeds::{mix, stream};
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use std::time::{Duration, Instant};

/// Reusable host buffers of the forward pass (flow store and collection
/// scratch): keep one per training loop so nothing is re-allocated per batch.
#[derive(Debug, Default)]
pub struct Workspace {
    pub store: FlowStore,
    pub aggregator: Aggregator,
    /// A recorder of every step's flows (`energyflow inspect`); None in
    /// training and inference, where nothing extra is read back.
    pub trace: Option<FlowTrace>,
}

/// What a forward needs besides the weights, the batch and its options:
/// the flow rules, the lattice, the input width it checks and the dropout
/// scale, taken from a run's config, and whether the CPU pool's idle
/// workers spin through it (`runtime.spin_wait`). Prepared once, where a
/// run or a command starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardSettings {
    pub lattice: Lattice,
    pub flow: FlowConfig,
    /// E_in: the width a batch must have.
    pub input_dim: usize,
    /// `train.dropout_scale` (dropout runs in training only).
    pub dropout_scale: f64,
    /// Keep the pool's other workers awake through the forward (`pool::awake`).
    pub spin: bool,
}

impl ForwardSettings {
    /// The settings of `cfg`, spinning or not.
    pub fn new(cfg: &EnergyConfig, spin: bool) -> Self {
        ForwardSettings {
            lattice: cfg.lattice(),
            flow: cfg.flow.clone(),
            input_dim: cfg.model.input_embedding_dim,
            dropout_scale: cfg.train.dropout_scale,
            spin,
        }
    }

    /// The settings of one pass of `samples` samples out of a batch of
    /// `batch` (`train.samples_per_pass`): a pass smaller than the batch
    /// gets its share of `flow.max_active_flows`, so each sample has the
    /// same room for children as in a whole-batch pass.
    pub fn for_pass(&self, samples: usize, batch: usize) -> Self {
        let mut s = self.clone();
        if samples < batch {
            let share = s.flow.max_active_flows * samples / batch;
            s.flow.max_active_flows = share.max(samples * s.lattice.cells());
        }
        s
    }
}

/// Options of one forward.
#[derive(Debug, Clone, Copy)]
pub struct ForwardOptions {
    /// Training mode: dropout and exploration noise on.
    pub training: bool,
    /// Displacement scale for this step (`FlowConfig::displacement_scale_at`).
    pub displacement_scale: f64,
    /// Seed of this forward's randomness (dropout masks, exploration noise,
    /// a lesion's permutations).
    pub noise_seed: u64,
    /// Damage to measure what carries the signal (`model::lesion`); None
    /// in training.
    pub lesion: Option<Lesion>,
}

impl ForwardOptions {
    /// Deterministic inference with the trained model's displacement scale.
    pub fn inference(settings: &ForwardSettings) -> Self {
        ForwardOptions {
            training: false,
            displacement_scale: settings.flow.inference_displacement_scale(),
            noise_seed: 0,
            lesion: None,
        }
    }
}

/// Wall-clock split of one forward.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardTimings {
    /// Step 1: input mapping and the starting flows.
    pub map: Duration,
    /// Step 2: the propagation loop.
    pub propagate: Duration,
    /// Steps 3-4, from the end of the loop until the surface is ready:
    /// final projection, concatenation of the completed energies, collection.
    pub end_of_batch: Duration,
    /// The collection alone (part of `end_of_batch`).
    pub collect: Duration,
    /// Step 5: the output collector.
    pub readout: Duration,
}

/// Result of one forward.
pub struct ForwardOutput {
    /// Output embedding [B, E_out].
    pub output: Tensor<2>,
    /// Aggregated surface [B, S].
    pub surface: Tensor<2>,
    pub stats: FlowStats,
    pub timings: ForwardTimings,
}

impl EnergyFlowModel {
    /// MODEL.md s.4 for a batch `input` [B, E_in] under `settings`.
    pub fn forward(
        &self,
        input: Tensor<2>,
        settings: &ForwardSettings,
        ws: &mut Workspace,
        opts: &ForwardOptions,
    ) -> Result<ForwardOutput> {
        crate::pool::awake(settings.spin, || self.forward_awake(input, settings, ws, opts))
    }

    /// [`Self::forward`], with the pool's workers kept awake or not.
    fn forward_awake(
        &self,
        input: Tensor<2>,
        cfg: &ForwardSettings,
        ws: &mut Workspace,
        opts: &ForwardOptions,
    ) -> Result<ForwardOutput> {
        let [b, e_in] = input.dims();
        if e_in != cfg.input_dim {
            return Err(Error::input(format!(
                "input width {e_in} does not match model.input_embedding_dim {}",
                cfg.input_dim
            )));
        }
        let s = cfg.lattice.cells();
        let t0 = Instant::now();
        // Dropout masks come from a host RNG derived from the step's seed.
        let mut masks = opts
            .training
            .then(|| DropoutMasks::new(mix(opts.noise_seed, stream::DROPOUT, 0), cfg.dropout_scale));

        // 1. Map, and start B*S flows.
        let energies = self.input_mapper.forward(input, masks.as_mut());
        let energies = lesion::on_energies(energies, opts.lesion, opts.noise_seed);
        if cfg.flow.pass_through || opts.lesion == Some(Lesion::Passthrough) {
            let t1 = Instant::now();
            // The mapped energies are the surface, so the surface lesion
            // applies to them here.
            let surface = lesion::on_surface(energies, opts.lesion);
            let output = self.collector.forward(surface.clone(), masks.as_mut());
            return Ok(ForwardOutput {
                output,
                surface,
                stats: FlowStats::default(),
                timings: ForwardTimings {
                    map: t1 - t0,
                    readout: t1.elapsed(),
                    ..ForwardTimings::default()
                },
            });
        }
        let (act, mut stats) = start_flows(
            cfg,
            energies,
            self.carrier.layers.len(),
            self.carrier.hidden_dim(),
            &mut ws.store,
        )?;
        // Trace hook (inspect only): the starting flows.
        if let Some(trace) = ws.trace.as_mut() {
            trace.start(&ws.store, act.energy.clone())?;
        }
        let t1 = Instant::now();

        // 2. Propagate.
        let act = self.propagate(cfg, b, act, ws, &mut stats, opts)?;
        let t2 = Instant::now();

        // 3. Project what is still active.
        project_the_rest(cfg, act, &mut ws.store, &mut stats);
        // Trace hook (inspect only): the final projection.
        if let Some(trace) = ws.trace.as_mut() {
            trace.finish(&ws.store)?;
        }

        // 4. Collect.
        let energy = ws
            .store
            .take_done_energy()
            .ok_or_else(|| Error::Internal("no completed flows".into()))?;
        let tc = Instant::now();
        let (flat, summary) = ws.aggregator.collect(energy, &ws.store.done, b * s)?;
        let collect = tc.elapsed();
        stats.cells_covered = summary.groups;
        let surface = lesion::on_surface(flat.reshape([b, s]), opts.lesion);
        let t3 = Instant::now();

        // 5. Read out.
        let output = self.collector.forward(surface.clone(), masks.as_mut());
        let t4 = Instant::now();
        Ok(ForwardOutput {
            output,
            surface,
            stats,
            timings: ForwardTimings {
                map: t1 - t0,
                propagate: t2 - t1,
                end_of_batch: t3 - t2,
                collect,
                readout: t4 - t3,
            },
        })
    }

    /// Step 2: at most `flow.propagation_steps` steps over the active flows
    /// (MODEL.md s.4.2 a-g) of a batch of `samples` samples. Returns the
    /// flows still active at the end.
    fn propagate(
        &self,
        cfg: &ForwardSettings,
        samples: usize,
        mut act: ActiveTensors,
        ws: &mut Workspace,
        stats: &mut FlowStats,
        opts: &ForwardOptions,
    ) -> Result<ActiveTensors> {
        let (store, mut trace) = (&mut ws.store, ws.trace.as_mut());
        let flow = &cfg.flow;
        let rules = StepRules::new(cfg.lattice, flow, samples);
        let dev = act.pos.device();
        let mut rng = StdRng::seed_from_u64(mix(opts.noise_seed, stream::NOISE, 0));
        let sigma = flow.exploration_noise as f32;
        let noise = (opts.training && sigma > 0.0).then(|| Normal::new(0.0f32, sigma).expect("sigma validated"));
        let (mut best, mut stale) = (0usize, 0usize);
        let kernels = self.kernels;
        let gather = |t: Tensor<2>, idx| kernels.gather_rows(t, idx);
        for _ in 0..flow.propagation_steps() {
            let n = store.active();
            if n == 0 {
                stats.stop_reason = LoopStop::NoActive;
                break;
            }
            stats.active_per_step.push(n);
            stats.propagation_steps += 1;
            // a. The shared network over all active flows.
            let features = self.neuron.forward(act.pos.clone(), act.energy.clone());
            let input = Tensor::cat(vec![features, act.energy], 1);
            let out = self.carrier.step(input, act.hidden, opts.displacement_scale);
            // b. Move, with exploration noise in training.
            let mut raw = act.pos.clone() + out.delta;
            if let Some(normal) = &noise {
                let draws: Vec<f32> = (0..3 * n)
                    .map(|j| {
                        if j % 3 == 2 && !flow.noise_on_z {
                            0.0
                        } else {
                            normal.sample(&mut rng)
                        }
                    })
                    .collect();
                raw = raw + device::matrix(draws, n, 3, &dev);
            }
            // c-f. Walls, planes, projection, spawn: decided on the host.
            let raw_host = device::to_vec(raw.clone())?;
            let new_pos = wall_device(raw, flow.reflection);
            advance(store, &raw_host, &rules, stats);
            if !store.finished.is_empty() {
                let idx = device::indices(&store.finished, &dev);
                store.done_energy.push(out.energy.clone().select(0, idx));
            }
            let stepped = ActiveTensors {
                pos: new_pos,
                energy: out.energy,
                hidden: out.hidden,
            };
            act = store.compact(n, act.pos, stepped, &dev, gather);
            // Trace hook (inspect only): reads the step's energies back.
            if let Some(trace) = trace.as_mut() {
                trace.step(store, &raw_host, &rules, stats, &act.energy)?;
            }
            // g. Early stop.
            let completed = stats.completed();
            if completed > best {
                best = completed;
                stale = 0;
            } else {
                stale += 1;
            }
            if flow.convergence_enabled && stats.propagation_steps >= flow.convergence_min_steps {
                if completed as f64 >= flow.convergence_threshold * stats.flows_created as f64 {
                    stats.stop_reason = LoopStop::Converged;
                    break;
                }
                if stale >= flow.convergence_patience {
                    stats.stop_reason = LoopStop::Patience;
                    break;
                }
            }
        }
        if store.active() == 0 && stats.stop_reason == LoopStop::StepBudget {
            stats.stop_reason = LoopStop::NoActive;
        }
        Ok(act)
    }
}

/// Step 1's second half: B*S flows at (x_cell, y_cell, z_in) with the
/// mapped `energies` [B, S], zero hidden state, zero steps, in `store`.
/// Refuses a batch whose starting flows exceed the capacity (MODEL.md
/// s.4.1: never drop whole samples).
fn start_flows(
    cfg: &ForwardSettings,
    energies: Tensor<2>,
    layers: usize,
    hidden: usize,
    store: &mut FlowStore,
) -> Result<(ActiveTensors, FlowStats)> {
    let [b, s] = energies.dims();
    let lattice = cfg.lattice;
    let n0 = b * s;
    if n0 > cfg.flow.max_active_flows {
        return Err(Error::input(format!(
            "{b} samples x {s} cells = {n0} starting flows exceeds flow.max_active_flows = {}; use a smaller batch or raise flow.max_active_flows",
            cfg.flow.max_active_flows
        )));
    }
    let dev = energies.device();
    store.reset();
    let z_in = lattice.z_in();
    for sample in 0..b {
        for cell in 0..s {
            let (x, y) = lattice.cell_xy(cell);
            store.pos.push([x, y, z_in]);
            store.sample.push(sample as u32);
            store.steps.push(0);
        }
    }
    let flat: Vec<f32> = store.pos.iter().flatten().copied().collect();
    let act = ActiveTensors {
        pos: device::matrix(flat, n0, 3, &dev),
        energy: energies.reshape([n0, 1]),
        hidden: (0..layers).map(|_| Tensor::zeros([n0, hidden], &dev)).collect(),
    };
    let stats = FlowStats {
        flows_created: n0,
        cells_total: n0,
        ..FlowStats::default()
    };
    Ok((act, stats))
}

/// Step 3: every flow still active is projected onto its nearer plane and
/// completes, so every created flow contributes to the output.
fn project_the_rest(cfg: &ForwardSettings, act: ActiveTensors, store: &mut FlowStore, stats: &mut FlowStats) {
    let lattice = cfg.lattice;
    let s = lattice.cells() as u32;
    let left = store.active();
    if left > 0 {
        for i in 0..left {
            let [x, y, z] = store.pos[i];
            let key = store.sample[i] * s + lattice.cell_of(x, y) as u32;
            store.done.push(key, store.steps[i], nearer_plane(z));
        }
        stats.completed_final = left;
        store.done_energy.push(act.energy);
        store.pos.clear();
        store.sample.clear();
        store.steps.clear();
    }
    let total_steps: u64 = store.done.steps.iter().map(|&v| v as u64).sum();
    stats.mean_flow_steps = total_steps as f64 / store.done.len().max(1) as f64;
}
