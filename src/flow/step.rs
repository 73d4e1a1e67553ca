//! The propagation loop (MODEL.md s.4, steps 1-3).
//!
//! Each step runs the shared network once over ALL active flows as one
//! batch, reads the raw new positions back to the host once (the step's only
//! device synchronisation), lets [`advance`] decide on the host what happens
//! to every flow, then compacts the active set with one gather per tensor.
//!
//! [`advance`] is the host half of a step, a pure function of the store and
//! the raw positions, so the step rules (reflection, completion, projection,
//! spawning, capacity) are tested without a network.

use super::stats::FlowStats;
use super::store::{ActiveTensors, Completion, FlowStore};
use crate::config::EnergyConfig;
use crate::device;
use crate::error::{Error, Result};
use crate::geometry::{Lattice, Z0, ZD, nearer_plane, reflect};
use crate::model::carrier::EnergyCarrier;
use crate::model::neuron::SimpleNeuron;
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// The rules of one step, derived from the config.
#[derive(Debug, Clone, Copy)]
pub struct StepRules {
    pub lattice: Lattice,
    /// Samples in the batch (for fair capacity sharing).
    pub samples: usize,
    pub projection_steps: usize,
    pub reflection: bool,
    /// (threshold, max children per flow per step) when spawning is on.
    pub spawn: Option<(f32, usize)>,
    pub max_active: usize,
}

impl StepRules {
    pub fn from_config(cfg: &EnergyConfig, samples: usize) -> Self {
        StepRules {
            lattice: Lattice::new(cfg.lattice_width, cfg.lattice_height, cfg.lattice_depth),
            samples,
            projection_steps: cfg.projection_steps(),
            reflection: cfg.reflection,
            spawn: cfg
                .movement_spawn
                .then_some((cfg.spawn_movement_threshold as f32, cfg.max_spawn_per_step)),
            max_active: cfg.max_active_flows,
        }
    }

    /// x or y after the wall rule: one reflection (if on), then a clamp so
    /// that even a large noise draw stays inside.
    #[inline]
    pub fn wall(&self, v: f32) -> f32 {
        let v = if self.reflection { reflect(v) } else { v };
        v.clamp(-1.0, 1.0)
    }
}

/// What one step did, in counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepOutcome {
    pub z0: usize,
    pub zd: usize,
    pub projected: usize,
    pub spawned: usize,
    pub dropped: usize,
}

impl StepOutcome {
    /// Counts this step into a forward's statistics (children are created flows).
    pub fn add_to(&self, stats: &mut FlowStats) {
        stats.completed_z0 += self.z0;
        stats.completed_zd += self.zd;
        stats.completed_projected += self.projected;
        stats.spawned += self.spawned;
        stats.created += self.spawned;
        stats.dropped += self.dropped;
    }
}

/// Host half of one step. `raw` holds pos + delta (+ noise) of the N active
/// flows, row-major [N, 3]. Afterwards:
/// - `store.finished` lists the flows that completed (their metadata is
///   appended to `store.done`);
/// - `store.keep` lists the survivors, `store.children` the parent of each
///   child kept (children start at the parent's pre-step position);
/// - the host arrays (`pos`, `sample`, `steps`) describe the next active set:
///   survivors in order, then children.
pub fn advance(store: &mut FlowStore, raw: &[f32], rules: &StepRules) -> StepOutcome {
    let n = store.active();
    debug_assert_eq!(raw.len(), 3 * n);
    let s = rules.lattice.cells() as u32;
    let mut out = StepOutcome::default();
    store.keep.clear();
    store.finished.clear();
    store.children.clear();
    store.candidates.clear();
    store.next_pos.clear();
    store.next_sample.clear();
    store.next_steps.clear();
    for i in 0..n {
        let old = store.pos[i];
        let (x, y, z) = (rules.wall(raw[3 * i]), rules.wall(raw[3 * i + 1]), raw[3 * i + 2]);
        let steps = store.steps[i] + 1;
        let done = if z <= Z0 {
            Some((Completion::Z0, Z0))
        } else if z >= ZD {
            Some((Completion::ZD, ZD))
        } else if steps as usize >= rules.projection_steps {
            Some((Completion::Projected, nearer_plane(z)))
        } else {
            None
        };
        let sample = store.sample[i];
        match done {
            Some((how, plane)) => {
                match how {
                    Completion::Z0 => out.z0 += 1,
                    Completion::ZD => out.zd += 1,
                    _ => out.projected += 1,
                }
                store.finished.push(i as u32);
                store
                    .done
                    .push(sample * s + rules.lattice.cell_of(x, y) as u32, steps, plane);
            }
            None => {
                let new = [x, y, z];
                store.keep.push(i as u32);
                store.next_pos.push(new);
                store.next_sample.push(sample);
                store.next_steps.push(steps);
                if let Some((t, cap)) = rules.spawn {
                    let len =
                        ((new[0] - old[0]).powi(2) + (new[1] - old[1]).powi(2) + (new[2] - old[2]).powi(2)).sqrt();
                    if len > t {
                        let k = ((len / t).floor() as usize).saturating_sub(1).min(cap);
                        if k > 0 {
                            store.candidates.push((i as u32, sample, k as u32));
                        }
                    }
                }
            }
        }
    }
    // Children, within capacity. When not all fit, share the room fairly:
    // the j-th child of every sample comes before any sample's (j+1)-th, so
    // no sample is starved because it sits late in the batch (MODEL.md s.7).
    let room = rules.max_active.saturating_sub(store.keep.len());
    let total: usize = store.candidates.iter().map(|c| c.2 as usize).sum();
    if total <= room {
        for &(parent, _, k) in &store.candidates {
            store.children.extend(std::iter::repeat_n(parent, k as usize));
        }
    } else {
        let mut rank = vec![0u32; rules.samples.max(1)];
        let mut all: Vec<(u32, u32, u32)> = Vec::with_capacity(total);
        for &(parent, sample, k) in &store.candidates {
            for _ in 0..k {
                let last = rank.len() - 1;
                let r = &mut rank[(sample as usize).min(last)];
                all.push((*r, sample, parent));
                *r += 1;
            }
        }
        all.sort_by_key(|&(r, sample, _)| (r, sample));
        all.truncate(room);
        all.sort_by_key(|&(_, _, parent)| parent);
        store.children.extend(all.iter().map(|c| c.2));
        out.dropped = total - room;
    }
    out.spawned = store.children.len();
    for &p in &store.children {
        store.next_pos.push(store.pos[p as usize]);
        store.next_sample.push(store.sample[p as usize]);
        store.next_steps.push(0);
    }
    std::mem::swap(&mut store.pos, &mut store.next_pos);
    std::mem::swap(&mut store.sample, &mut store.next_sample);
    std::mem::swap(&mut store.steps, &mut store.next_steps);
    out
}

/// Options of one forward's propagation.
#[derive(Debug, Clone, Copy)]
pub struct PropagateOptions {
    /// Training adds exploration noise.
    pub training: bool,
    /// Displacement scale (the schedule's value for this step).
    pub displacement_scale: f64,
    /// Seed of the exploration noise.
    pub noise_seed: u64,
}

/// Runs MODEL.md s.4 steps 1-3: creates B*S flows from `energies` [B, S],
/// propagates them, and leaves every flow completed in `store`
/// (`store.done`, `store.done_energy`). Returns the flow statistics.
pub fn propagate(
    neuron: &SimpleNeuron,
    carrier: &EnergyCarrier,
    cfg: &EnergyConfig,
    energies: Tensor<2>,
    store: &mut FlowStore,
    opts: &PropagateOptions,
) -> Result<FlowStats> {
    let [b, s] = energies.dims();
    let rules = StepRules::from_config(cfg, b);
    let lattice = rules.lattice;
    if s != lattice.cells() {
        return Err(Error::Internal(format!(
            "energies have {s} cells, lattice has {}",
            lattice.cells()
        )));
    }
    let n0 = b * s;
    if n0 > cfg.max_active_flows {
        return Err(Error::input(format!(
            "{b} samples x {s} cells = {n0} starting flows exceeds max_active_flows = {}; use a smaller batch or raise max_active_flows",
            cfg.max_active_flows
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
    let hd = carrier.hidden_dim();
    let mut act = ActiveTensors {
        pos: device::matrix(flat, n0, 3, &dev),
        energy: energies.reshape([n0, 1]),
        hidden: (0..carrier.layers.len())
            .map(|_| Tensor::zeros([n0, hd], &dev))
            .collect(),
    };
    let mut stats = FlowStats {
        created: n0,
        cells_total: n0,
        stop_reason: "max_steps",
        ..FlowStats::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.noise_seed);
    let sigma = cfg.exploration_noise as f32;
    let noise = (opts.training && sigma > 0.0).then(|| Normal::new(0.0f32, sigma).expect("sigma validated"));
    let (mut best, mut stale) = (0usize, 0usize);
    for _ in 0..cfg.max_steps() {
        let n = store.active();
        if n == 0 {
            stats.stop_reason = "no_active";
            break;
        }
        stats.active_per_step.push(n);
        stats.steps += 1;
        let features = neuron.forward(act.pos.clone(), act.energy.clone());
        let input = Tensor::cat(vec![features, act.energy], 1);
        let out = carrier.step(input, act.hidden, opts.displacement_scale);
        let mut raw = act.pos.clone() + out.delta;
        if let Some(normal) = &noise {
            let z_noise = cfg.noise_on_z;
            let draws: Vec<f32> = (0..3 * n)
                .map(|j| {
                    if j % 3 == 2 && !z_noise {
                        0.0
                    } else {
                        normal.sample(&mut rng)
                    }
                })
                .collect();
            raw = raw + device::matrix(draws, n, 3, &dev);
        }
        store.raw = device::to_vec(raw.clone())?;
        let new_pos = wall_device(raw, rules.reflection);
        let raw_host = std::mem::take(&mut store.raw);
        let o = advance(store, &raw_host, &rules);
        store.raw = raw_host;
        o.add_to(&mut stats);
        if !store.finished.is_empty() {
            let idx = device::indices(&store.finished, &dev);
            store.done_energy.push(out.energy.clone().select(0, idx));
        }
        act = compact(store, n, act.pos, new_pos, out.energy, out.hidden, &dev);
        // Early stop (MODEL.md s.4.2g).
        let completed = stats.completed();
        if completed > best {
            best = completed;
            stale = 0;
        } else {
            stale += 1;
        }
        if cfg.convergence_enabled && stats.steps >= cfg.convergence_min_steps {
            if completed as f64 >= cfg.convergence_threshold * stats.created as f64 {
                stats.stop_reason = "converged";
                break;
            }
            if stale >= cfg.convergence_patience {
                stats.stop_reason = "patience";
                break;
            }
        }
    }
    if store.active() == 0 && stats.stop_reason == "max_steps" {
        stats.stop_reason = "no_active";
    }
    // Step 3: every flow still active is projected onto its nearer plane.
    let left = store.active();
    if left > 0 {
        for i in 0..left {
            let [x, y, z] = store.pos[i];
            let key = store.sample[i] * s as u32 + lattice.cell_of(x, y) as u32;
            store.done.push(key, store.steps[i], nearer_plane(z));
        }
        stats.completed_final = left;
        store.done_energy.push(act.energy);
        store.pos.clear();
        store.sample.clear();
        store.steps.clear();
    }
    let total_steps: u64 = store.done.steps.iter().map(|&v| v as u64).sum();
    stats.mean_steps = total_steps as f64 / store.done.len().max(1) as f64;
    Ok(stats)
}

/// Device twin of [`StepRules::wall`] on all three columns: z values past a
/// plane belong to flows that complete this step and never reach the next
/// active set, so treating z like x and y there changes nothing.
fn wall_device(raw: Tensor<2>, reflection: bool) -> Tensor<2> {
    let v = if reflection {
        let low = raw.clone().lower_elem(-1.0);
        let high = raw.clone().greater_elem(1.0);
        let below = raw.clone().neg() - 2.0;
        let above = raw.clone().neg() + 2.0;
        raw.mask_where(low, below).mask_where(high, above)
    } else {
        raw
    };
    v.clamp(-1.0, 1.0)
}

/// Gathers the next active set: survivors (`store.keep`) then children
/// (`store.children`), one `select` per tensor. Children take the parent's
/// pre-step position and its new energy and hidden state.
fn compact(
    store: &FlowStore,
    n: usize,
    old_pos: Tensor<2>,
    new_pos: Tensor<2>,
    energy: Tensor<2>,
    hidden: Vec<Tensor<2>>,
    dev: &burn::tensor::Device,
) -> ActiveTensors {
    let next = store.keep.len() + store.children.len();
    if store.keep.len() == n && store.children.is_empty() {
        return ActiveTensors {
            pos: new_pos,
            energy,
            hidden,
        };
    }
    if next == 0 {
        // Nothing left: the loop stops before these are read.
        return ActiveTensors {
            pos: new_pos,
            energy,
            hidden,
        };
    }
    let mut state_idx: Vec<u32> = Vec::with_capacity(next);
    state_idx.extend_from_slice(&store.keep);
    state_idx.extend_from_slice(&store.children);
    let state = device::indices(&state_idx, dev);
    let pos = if store.children.is_empty() {
        new_pos.select(0, state.clone())
    } else {
        let mut pos_idx: Vec<u32> = store.keep.clone();
        pos_idx.extend(store.children.iter().map(|&p| p + n as u32));
        Tensor::cat(vec![new_pos, old_pos], 0).select(0, device::indices(&pos_idx, dev))
    };
    ActiveTensors {
        pos,
        energy: energy.select(0, state.clone()),
        hidden: hidden.into_iter().map(|h| h.select(0, state.clone())).collect(),
    }
}
