//! A recorder of one forward's flows, for `energyflow inspect` (the
//! pictures of `viz::inspect`): which flows were active at each propagation
//! step, where and with what energy, which flow spawned which, and what
//! each step completed. `model::forward` feeds it when its `Workspace`
//! carries one; without one nothing is recorded and nothing extra is read
//! from the device.
//!
//! Not for training: recording reads every step's positions and energies
//! back to the host, which the untraced forward never does. It records the
//! host step (`StepPath::Host`), whose bookkeeping it follows.
//!
//! Flow identity: the store keeps no ids (compaction re-orders the active
//! set every step), so the recorder keeps one id per active flow in the
//! store's order and re-orders it the way `advance` and
//! `FlowStore::compact` do: survivors in order (`store.keep`), then one new
//! id per child (`store.children` names each child's parent). Starting
//! flows get ids 0..B*S in the store's order (sample-major, then cell).

use super::stats::FlowStats;
use super::store::{ActiveTensors, FlowStore};
use crate::device;
use crate::error::{Error, Result};
use burn::tensor::Tensor;
use serde::Serialize;

/// The active flows at one moment: ids, positions and energies, in the
/// store's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Frame {
    pub ids: Vec<u32>,
    /// Normalised (x, y, z).
    pub pos: Vec<[f32; 3]>,
    pub energy: Vec<f32>,
}

impl Frame {
    /// Number of flows in the frame.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A flow that completed, where it completed (on a plane: z = -1 or +1)
/// and with which energy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ended {
    pub id: u32,
    pub pos: [f32; 3],
    pub energy: f32,
}

/// What one propagation step did (its counts are the step's share of the
/// forward's `FlowStats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepEvents {
    pub completed_z0: usize,
    pub completed_zd: usize,
    pub completed_projected: usize,
    /// Children spawned and kept.
    pub spawned: usize,
    /// Children dropped at the capacity.
    pub dropped: usize,
    /// The flows that completed in this step.
    pub ended: Vec<Ended>,
}

/// The counters a step changes, to tell one step's share from the totals.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    z0: usize,
    zd: usize,
    projected: usize,
    spawned: usize,
    dropped: usize,
}

impl Counters {
    fn of(s: &FlowStats) -> Self {
        Counters {
            z0: s.completed_z0,
            zd: s.completed_zd,
            projected: s.completed_projected,
            spawned: s.flows_spawned,
            dropped: s.flows_dropped,
        }
    }
}

/// The record of one forward (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct FlowTrace {
    /// `frames[0]`: the starting flows with their mapped energies;
    /// `frames[t]`: the active set after propagation step t, i.e. the flows
    /// entering step t + 1. The last frame holds the flows the final
    /// projection took (empty when none was left).
    pub frames: Vec<Frame>,
    /// `steps[t - 1]`: what propagation step t did.
    pub steps: Vec<StepEvents>,
    /// Flows projected after the loop, at their end position.
    pub final_ended: Vec<Ended>,
    /// Per flow id: the parent of a spawned child (None for a starting flow).
    pub parent: Vec<Option<u32>>,
    /// Per flow id: the step that spawned it (0 for a starting flow).
    pub born: Vec<u32>,
    /// Per flow id: its sample in the batch.
    pub sample: Vec<u32>,
    last: Counters,
}

impl FlowTrace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Flows created in the forward (starting flows and kept children).
    pub fn flows(&self) -> usize {
        self.parent.len()
    }

    /// Starts the record of a forward: `store` and `act` hold the starting
    /// flows (their positions and mapped energies are read back here).
    pub fn start(&mut self, store: &FlowStore, act: &ActiveTensors) -> Result<()> {
        let n = store.active();
        *self = FlowTrace::default();
        self.frames.push(Frame {
            ids: (0..n as u32).collect(),
            pos: rows3(act.pos.clone())?,
            energy: device::to_vec(act.energy.clone())?,
        });
        self.parent = vec![None; n];
        self.born = vec![0; n];
        self.sample = store.sample.clone();
        Ok(())
    }

    /// Records a propagation step, called after `advance` and
    /// `FlowStore::compact`: `moved` is what `advance` was given (the
    /// previous frame's flows' walled new positions and step lengths,
    /// [N, 4]), `stats` the forward's counters so far and `next` the next
    /// active set (its positions and energies are read back here).
    pub fn step(&mut self, store: &FlowStore, moved: &[f32], stats: &FlowStats, next: &ActiveTensors) -> Result<()> {
        let t = self.steps.len() as u32 + 1;
        let prev = self
            .frames
            .last()
            .ok_or_else(|| Error::Internal("flow trace: a step before the start".into()))?;
        // The finished flows' energies are the chunk this step stored.
        let finished_energy = match store.done_energy.last() {
            Some(chunk) if !store.finished.is_empty() => device::to_vec(chunk.clone())?,
            _ => Vec::new(),
        };
        let base = store.done.len() - store.finished.len();
        let ended: Vec<Ended> = store
            .finished
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let i = i as usize;
                Ended {
                    id: prev.ids[i],
                    pos: [moved[4 * i], moved[4 * i + 1], store.done.z[base + j]],
                    energy: finished_energy[j],
                }
            })
            .collect();
        let mut ids: Vec<u32> = store.keep.iter().map(|&i| prev.ids[i as usize]).collect();
        for &p in &store.children {
            let parent = prev.ids[p as usize];
            ids.push(self.parent.len() as u32);
            self.parent.push(Some(parent));
            self.born.push(t);
            self.sample.push(self.sample[parent as usize]);
        }
        // With nobody left, `compact` hands back the stepped state as it is.
        let (pos, energy) = if ids.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            (rows3(next.pos.clone())?, device::to_vec(next.energy.clone())?)
        };
        if energy.len() != ids.len() || pos.len() != ids.len() || store.active() != ids.len() {
            return Err(Error::Internal(format!(
                "flow trace: step {t} has {} ids, {} positions, {} energies",
                ids.len(),
                pos.len(),
                energy.len()
            )));
        }
        let now = Counters::of(stats);
        let was = std::mem::replace(&mut self.last, now);
        self.steps.push(StepEvents {
            completed_z0: now.z0 - was.z0,
            completed_zd: now.zd - was.zd,
            completed_projected: now.projected - was.projected,
            spawned: now.spawned - was.spawned,
            dropped: now.dropped - was.dropped,
            ended,
        });
        self.frames.push(Frame { ids, pos, energy });
        Ok(())
    }

    /// Records the final projection, called after it: the last frame's
    /// flows completed on the planes `store.done` gives them, in order.
    pub fn finish(&mut self, store: &FlowStore) -> Result<()> {
        let last = self
            .frames
            .last()
            .ok_or_else(|| Error::Internal("flow trace: finished before the start".into()))?;
        let base = store
            .done
            .len()
            .checked_sub(last.len())
            .ok_or_else(|| Error::Internal("flow trace: fewer completed flows than active ones".into()))?;
        self.final_ended = (0..last.len())
            .map(|k| Ended {
                id: last.ids[k],
                pos: [last.pos[k][0], last.pos[k][1], store.done.z[base + k]],
                energy: last.energy[k],
            })
            .collect();
        Ok(())
    }
}

/// The rows of a [N, 3] tensor, read back.
fn rows3(t: Tensor<2>) -> Result<Vec<[f32; 3]>> {
    Ok(device::to_vec(t)?.chunks_exact(3).map(|r| [r[0], r[1], r[2]]).collect())
}
