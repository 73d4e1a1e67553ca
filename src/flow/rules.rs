//! What one propagation step does to each flow (MODEL.md s.4.2 b-f, seed
//! s.4 "batched cleanup"): walls, completion on the planes, projection
//! after the step budget, movement spawn and the capacity rule.
//!
//! [`wall`] is the wall rule, written once: both step paths and the trace
//! see positions it made (on the device, as tensors). [`advance`] is the
//! host half of a step: a pure function of the store and the walled new
//! positions (read back once) that decides every flow's fate at once, so
//! the rules are tested without a network. Its device twin, for GPU
//! backends, is `kernels::flow_step` (checked against it); which of the
//! two runs is [`StepPath`], an execution choice made once. The loop that
//! calls them, with the network, is `model::forward`.

use super::stats::FlowStats;
use super::store::FlowStore;
use crate::config::FlowConfig;
use crate::geometry::{Lattice, Z0, ZD, nearer_plane};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Where a forward decides the flows' fates and compacts them (`[runtime]
/// step`): an execution choice, made once when a command starts, that
/// changes the speed and the reads from the device, not the flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StepPath {
    /// [`advance`] on the host, from one read of the new positions per step
    /// (the fastest on the CPU, where a read is a copy).
    Host,
    /// `kernels::flow_step` on the device: one small read of counts per
    /// step, positions and energies never leave the device (GPU backends).
    Device,
}

impl StepPath {
    /// The path a device runs when the config names none: the host on the
    /// CPU, the device on a GPU.
    pub fn for_device(cpu: bool) -> Self {
        if cpu { StepPath::Host } else { StepPath::Device }
    }

    /// The name as written in configs and flags.
    pub fn name(self) -> &'static str {
        match self {
            StepPath::Host => "host",
            StepPath::Device => "device",
        }
    }
}

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
    /// The rules of `flow` on `lattice` for a batch of `samples` samples.
    pub fn new(lattice: Lattice, flow: &FlowConfig, samples: usize) -> Self {
        StepRules {
            lattice,
            samples,
            projection_steps: flow.projection_steps(),
            reflection: flow.reflection,
            spawn: flow
                .movement_spawn
                .then_some((flow.spawn_movement_threshold as f32, flow.max_spawn_per_step)),
            max_active: flow.max_active_flows,
        }
    }
}

/// How a flow completed during a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    /// Crossed z = -1.
    Z0,
    /// Crossed z = +1.
    ZD,
    /// Projected after `projection_steps`.
    Projected,
}

/// Host half of one step. `moved` holds, row-major [N, 4], each of the N
/// active flows' new position after [`wall`] (x, y, z) and the length of
/// its step (|new - old|, for the movement spawn). Adds this step's
/// completions, children and drops to `stats`. Afterwards:
/// - `store.finished` lists the flows that completed (their metadata is
///   appended to `store.done`);
/// - `store.keep` lists the survivors, `store.children` the parent of each
///   child kept (children start at the parent's pre-step position);
/// - the host arrays (`sample`, `steps`) describe the next active set:
///   survivors in order, then children.
pub fn advance(store: &mut FlowStore, moved: &[f32], rules: &StepRules, stats: &mut FlowStats) {
    let n = store.active();
    debug_assert_eq!(moved.len(), 4 * n);
    let s = rules.lattice.cells() as u32;
    store.keep.clear();
    store.finished.clear();
    store.children.clear();
    store.candidates.clear();
    store.next_sample.clear();
    store.next_steps.clear();
    for (i, row) in moved.chunks_exact(4).enumerate() {
        let (x, y, z, len) = (row[0], row[1], row[2], row[3]);
        // z past a plane was clamped onto it by the wall rule.
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
                    Completion::Z0 => stats.completed_z0 += 1,
                    Completion::ZD => stats.completed_zd += 1,
                    Completion::Projected => stats.completed_projected += 1,
                }
                store.finished.push(i as u32);
                store
                    .done
                    .push(sample * s + rules.lattice.cell_of(x, y) as u32, steps, plane);
            }
            None => {
                store.keep.push(i as u32);
                store.next_sample.push(sample);
                store.next_steps.push(steps);
                if let Some((t, cap)) = rules.spawn
                    && len > t
                {
                    let k = ((len / t).floor() as usize).saturating_sub(1).min(cap);
                    if k > 0 {
                        store.candidates.push((i as u32, sample, k as u32));
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
        stats.flows_dropped += total - room;
    }
    // Children are created flows.
    stats.flows_spawned += store.children.len();
    stats.flows_created += store.children.len();
    for &p in &store.children {
        store.next_sample.push(store.sample[p as usize]);
        store.next_steps.push(0);
    }
    std::mem::swap(&mut store.sample, &mut store.next_sample);
    std::mem::swap(&mut store.steps, &mut store.next_steps);
}

/// The wall rule (MODEL.md s.4.2 c-d) on the raw new positions [N, 3]:
/// x and y reflected into [-1, 1] (v < -1 -> -2 - v, v > 1 -> 2 - v) when
/// `reflection` is on, then clamped so that even a large noise draw stays
/// inside; z clamped, so that a flow past a plane lies on it (z <= -1
/// completes on z0, z >= 1 on zD, and both step paths read that from z).
pub fn wall(raw: Tensor<2>, reflection: bool) -> Tensor<2> {
    let n = raw.dims()[0];
    let xy = raw.clone().slice([0..n, 0..2]);
    let xy = if reflection {
        let low = xy.clone().lower_elem(-1.0);
        let high = xy.clone().greater_elem(1.0);
        let below = xy.clone().neg() - 2.0;
        let above = xy.clone().neg() + 2.0;
        xy.mask_where(low, below).mask_where(high, above)
    } else {
        xy
    };
    let z = raw.slice([0..n, 2..3]);
    Tensor::cat(vec![xy, z], 1).clamp(-1.0, 1.0)
}

/// The length of each flow's step, |new - old| per row of two [N, 3]
/// tensors, summed x, y, z in that order (one formula for both paths, so
/// that they spawn alike).
pub fn step_length(old: Tensor<2>, new: Tensor<2>) -> Tensor<1> {
    let n = new.dims()[0];
    let d = new - old;
    let col = |c: usize| d.clone().slice([0..n, c..c + 1]).reshape([n]);
    let (dx, dy, dz) = (col(0), col(1), col(2));
    (dx.clone() * dx + dy.clone() * dy + dz.clone() * dz).sqrt()
}
