//! One forward pass of the model over a batch: MODEL.md s.4 in one place.
//!
//! [`EnergyFlowModel::forward`] reads top to bottom as the section does:
//! 1. map the input embeddings to energies and start one flow per cell;
//! 2. propagate: each step runs the shared network (neuron, carrier) once
//!    over ALL active flows as one batch, adds the exploration noise
//!    (`kernels::flow_noise`, drawn on the device), applies the wall rule
//!    (`flow::rules::wall`, a kernel where the backend has one), then
//!    lets the bookkeeping (`step.rs`) decide every flow's fate and
//!    compact the active set with one gather per tensor; the step's one
//!    read back is the bookkeeping's;
//! 3. project every flow still active onto its nearer plane;
//! 4. collect the completed flows into a surface;
//! 5. read the surface out into an embedding.
//!
//! The bookkeeping runs on the host (`flow/`) or on the device
//! (`kernels::flow_step`), as `ForwardSettings::step` says; this file and
//! `step.rs` are the only places where the network meets it.

use super::EnergyFlowModel;
use super::layers::DropoutMasks;
use super::lesion::{self, Lesion};
use super::step::Books;
use crate::config::{EnergyConfig, FlowConfig, RuntimeConfig};
use crate::error::{Error, Result};
use crate::flow::{ActiveTensors, Aggregator, FlowStats, FlowStore, FlowTrace, LoopStop, StepPath};
use crate::geometry::Lattice;
use crate::kernels::flow_ops::{NoiseSpec, flow_noise};
use crate::kernels::flow_step::Iota;
use crate::kernels::walls;
use crate::seeds::{mix, stream};
use burn::tensor::{Device, Tensor};
use std::time::{Duration, Instant};

/// Reusable buffers of the forward pass (the host step's flow store and
/// collection scratch, the device step's index vector): keep one per
/// training loop so nothing is re-allocated or re-uploaded per batch.
#[derive(Debug, Default)]
pub struct Workspace {
    pub store: FlowStore,
    pub aggregator: Aggregator,
    /// A recorder of every step's flows (`energyflow inspect`); None in
    /// training and inference, where nothing extra is read back. It
    /// records the host step only.
    pub trace: Option<FlowTrace>,
    /// 0, 1, 2, ... on the device, for the device step.
    pub iota: Iota,
}

/// What a forward needs besides the weights, the batch and its options:
/// the flow rules, the lattice, the input width it checks and the dropout
/// scale, taken from a run's config, and how it executes: whether the CPU
/// pool's idle workers spin through it (`runtime.spin_wait`) and where the
/// flows' bookkeeping runs (`runtime.step`). Prepared once, where a run or
/// a command starts.
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
    /// Where the step's bookkeeping and the collection run.
    pub step: StepPath,
}

impl ForwardSettings {
    /// The settings of `cfg`, spinning or not, with the host step.
    pub fn new(cfg: &EnergyConfig, spin: bool) -> Self {
        ForwardSettings {
            lattice: cfg.lattice(),
            flow: cfg.flow.clone(),
            input_dim: cfg.model.input_embedding_dim,
            dropout_scale: cfg.train.dropout_scale,
            spin,
            step: StepPath::Host,
        }
    }

    /// The settings of `cfg` executing as `runtime` says on `device`: the
    /// spin policy of `pool::wanted`, and `runtime.step`, else the host
    /// step on the CPU and the device step on a GPU.
    pub fn for_runtime(cfg: &EnergyConfig, runtime: &RuntimeConfig, device: &Device) -> Self {
        ForwardSettings::new(cfg, crate::pool::wanted(runtime, device)).with_step(
            runtime
                .step
                .unwrap_or(StepPath::for_device(crate::device::is_cpu(device))),
        )
    }

    /// The same settings with the bookkeeping on `step`.
    pub fn with_step(self, step: StepPath) -> Self {
        ForwardSettings { step, ..self }
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
        let layers = self.carrier.layers.len();
        let (mut books, act, mut stats) =
            Books::start(cfg, ws, energies, layers, self.carrier.hidden_dim(), self.kernels)?;
        let t1 = Instant::now();

        // 2. Propagate.
        let act = self.propagate(cfg, act, &mut books, &mut stats, opts)?;
        let t2 = Instant::now();

        // 3. Project what is still active.
        books.project_the_rest(act, &mut stats)?;

        // 4. Collect.
        let tc = Instant::now();
        let flat = books.collect(b * s, &mut stats)?;
        let collect = tc.elapsed();
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
    /// (MODEL.md s.4.2 a-g), their fates decided by `books`. Returns the
    /// flows still active at the end.
    fn propagate(
        &self,
        cfg: &ForwardSettings,
        mut act: ActiveTensors,
        books: &mut Books,
        stats: &mut FlowStats,
        opts: &ForwardOptions,
    ) -> Result<ActiveTensors> {
        let flow = &cfg.flow;
        let sigma = flow.exploration_noise as f32;
        let noisy = opts.training && sigma > 0.0;
        let (mut best, mut stale) = (0usize, 0usize);
        let kernels = self.kernels;
        let gather = |t: Tensor<2>, idx| kernels.gather_rows(t, idx);
        for _ in 0..flow.propagation_steps() {
            let n = books.active();
            if n == 0 {
                stats.stop_reason = LoopStop::NoActive;
                break;
            }
            stats.active_per_step.push(n);
            stats.propagation_steps += 1;
            stats.steps_run += 1;
            // a. The shared network over all active flows.
            let input = self.neuron.carrier_input(act.pos.clone(), act.energy);
            let out = self.carrier.step(input, act.hidden, opts.displacement_scale);
            // b. Move, with exploration noise in training.
            let mut raw = act.pos.clone() + out.delta;
            if noisy {
                let spec = NoiseSpec {
                    seed: mix(opts.noise_seed, stream::NOISE, 0),
                    step: stats.propagation_steps as u32,
                    sigma,
                    on_z: flow.noise_on_z,
                };
                raw = raw.clone() + flow_noise(&raw, spec);
            }
            // c-f. Walls, then planes, projection, spawn and compaction.
            let stepped = ActiveTensors {
                pos: walls::wall(raw, flow.reflection, kernels),
                energy: out.energy,
                hidden: out.hidden,
            };
            act = books.advance(act.pos, stepped, stats, &gather)?;
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
        if books.active() == 0 && stats.stop_reason == LoopStop::StepBudget {
            stats.stop_reason = LoopStop::NoActive;
        }
        Ok(act)
    }
}
