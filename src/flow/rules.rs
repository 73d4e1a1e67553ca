//! What one propagation step does to each flow (MODEL.md s.4.2 b-f, seed
//! s.4 "batched cleanup"): walls, completion on the planes, projection
//! after the step budget, movement spawn and the capacity rule.
//!
//! [`advance`] is the host half of a step: a pure function of the store and
//! the raw new positions that decides every flow's fate at once, so the
//! rules are tested without a network. [`wall_device`] applies the wall
//! rule to the positions on the device. The loop that calls them, with the
//! network, is `model::forward`.

use super::stats::FlowStats;
use super::store::FlowStore;
use crate::config::FlowConfig;
use crate::geometry::{Lattice, Z0, ZD, nearer_plane, reflect};
use burn::tensor::Tensor;

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

    /// x or y after the wall rule: one reflection (if on), then a clamp so
    /// that even a large noise draw stays inside.
    #[inline]
    pub fn wall(&self, v: f32) -> f32 {
        let v = if self.reflection { reflect(v) } else { v };
        v.clamp(-1.0, 1.0)
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

/// Host half of one step. `raw` holds pos + delta (+ noise) of the N active
/// flows, row-major [N, 3]. Adds this step's completions, children and
/// drops to `stats`. Afterwards:
/// - `store.finished` lists the flows that completed (their metadata is
///   appended to `store.done`);
/// - `store.keep` lists the survivors, `store.children` the parent of each
///   child kept (children start at the parent's pre-step position);
/// - the host arrays (`pos`, `sample`, `steps`) describe the next active set:
///   survivors in order, then children.
pub fn advance(store: &mut FlowStore, raw: &[f32], rules: &StepRules, stats: &mut FlowStats) {
    let n = store.active();
    debug_assert_eq!(raw.len(), 3 * n);
    let s = rules.lattice.cells() as u32;
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
        stats.flows_dropped += total - room;
    }
    // Children are created flows.
    stats.flows_spawned += store.children.len();
    stats.flows_created += store.children.len();
    for &p in &store.children {
        store.next_pos.push(store.pos[p as usize]);
        store.next_sample.push(store.sample[p as usize]);
        store.next_steps.push(0);
    }
    std::mem::swap(&mut store.pos, &mut store.next_pos);
    std::mem::swap(&mut store.sample, &mut store.next_sample);
    std::mem::swap(&mut store.steps, &mut store.next_steps);
}

/// Device twin of [`StepRules::wall`] on all three columns: z values past a
/// plane belong to flows that complete this step and never reach the next
/// active set, so treating z like x and y there changes nothing.
pub fn wall_device(raw: Tensor<2>, reflection: bool) -> Tensor<2> {
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
