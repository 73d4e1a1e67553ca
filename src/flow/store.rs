//! Structure-of-arrays flow storage (seed s.2 and s.4).
//!
//! Active flows live as a few dense tensors on the device (position [N, 3],
//! energy [N, 1], one hidden state [N, Hd] per GRU layer) plus host arrays of
//! the bookkeeping the host step needs (sample, steps). Positions are held
//! once, in the device tensor: the host step reads them back each step. After
//! each step the survivors and the new children are gathered into fresh
//! dense tensors with ONE row gather per tensor: completed flows leave the
//! active set all at once, never one by one, and nothing is written in place
//! (so no autograd graph survives a batch, MODEL.md s.7).
//!
//! [`FlowStore::compact`] is that gather. Completed flows keep only what the
//! collection needs: their energy (on
//! the device, one chunk per step, concatenated once at the end) and host
//! metadata (group key, steps, final z). Host buffers are reused from one
//! forward to the next.

use crate::device;
use burn::tensor::{Device, Int, Tensor};

/// Device state of the active flows (row i = flow i).
#[derive(Debug, Clone)]
pub struct ActiveTensors {
    /// Positions [N, 3] in normalised space (differentiable).
    pub pos: Tensor<2>,
    /// Energies [N, 1].
    pub energy: Tensor<2>,
    /// Hidden state per GRU layer, each [N, Hd].
    pub hidden: Vec<Tensor<2>>,
}

/// Host metadata of the completed flows (one entry per flow, in the order
/// their energies were stored).
#[derive(Debug, Clone, Default)]
pub struct CompletedMeta {
    /// sample * S + cell(x, y).
    pub key: Vec<u32>,
    /// Steps taken when completing.
    pub steps: Vec<u32>,
    /// Final z (on a plane: -1 or +1).
    pub z: Vec<f32>,
}

impl CompletedMeta {
    pub fn len(&self) -> usize {
        self.key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key.is_empty()
    }

    pub fn clear(&mut self) {
        self.key.clear();
        self.steps.clear();
        self.z.clear();
    }

    pub fn push(&mut self, key: u32, steps: u32, z: f32) {
        self.key.push(key);
        self.steps.push(steps);
        self.z.push(z);
    }
}

/// The host side of the flow store, reused across forwards.
#[derive(Debug, Default)]
pub struct FlowStore {
    /// Sample of each active flow.
    pub sample: Vec<u32>,
    /// Steps taken by each active flow.
    pub steps: Vec<u32>,
    /// Completed flows' metadata.
    pub done: CompletedMeta,
    /// Device energies of completed flows, one [n, 1] chunk per step.
    pub done_energy: Vec<Tensor<2>>,
    /// What the last `advance` decided, by the step's flow index: the
    /// survivors, the flows that completed, the parent of each child kept.
    pub keep: Vec<u32>,
    pub finished: Vec<u32>,
    pub children: Vec<u32>,
    // Scratch buffers for one step, kept to avoid re-allocation.
    pub(crate) candidates: Vec<(u32, u32, u32)>,
    pub(crate) next_sample: Vec<u32>,
    pub(crate) next_steps: Vec<u32>,
}

impl FlowStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of active flows.
    pub fn active(&self) -> usize {
        self.sample.len()
    }

    /// Clears all flows, keeping the buffers' capacity.
    pub fn reset(&mut self) {
        self.sample.clear();
        self.steps.clear();
        self.done.clear();
        self.done_energy.clear();
    }

    /// Concatenates the completed energies into one [N] tensor.
    pub fn take_done_energy(&mut self) -> Option<Tensor<1>> {
        if self.done_energy.is_empty() {
            return None;
        }
        let chunks = std::mem::take(&mut self.done_energy);
        let all = if chunks.len() == 1 {
            chunks.into_iter().next().expect("one chunk")
        } else {
            Tensor::cat(chunks, 0)
        };
        let n = all.dims()[0];
        Some(all.reshape([n]))
    }
}

impl FlowStore {
    /// Gathers the next active set after [`super::rules::advance`]:
    /// survivors (`keep`) then children (`children`), one row gather
    /// (`gather`: rows `idx` of a [N, D] tensor, `Tensor::select` on
    /// dimension 0 or a faster kernel with the same result) per tensor.
    /// `n` is the size of the step's active set.
    /// Children take the parent's pre-step position (`old_pos`) and its new
    /// energy and hidden state.
    pub fn compact(
        &self,
        n: usize,
        old_pos: Tensor<2>,
        stepped: ActiveTensors,
        dev: &Device,
        gather: impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2>,
    ) -> ActiveTensors {
        let next = self.keep.len() + self.children.len();
        // Nothing left (the loop stops before reading it), or nobody left
        // and nobody born: the stepped state is the next state as it is.
        if next == 0 || (self.keep.len() == n && self.children.is_empty()) {
            return stepped;
        }
        let mut state_idx: Vec<u32> = Vec::with_capacity(next);
        state_idx.extend_from_slice(&self.keep);
        state_idx.extend_from_slice(&self.children);
        let state = device::indices(&state_idx, dev);
        let pos = if self.children.is_empty() {
            gather(stepped.pos, state.clone())
        } else {
            let mut pos_idx: Vec<u32> = self.keep.clone();
            pos_idx.extend(self.children.iter().map(|&p| p + n as u32));
            gather(
                Tensor::cat(vec![stepped.pos, old_pos], 0),
                device::indices(&pos_idx, dev),
            )
        };
        ActiveTensors {
            pos,
            energy: gather(stepped.energy, state.clone()),
            hidden: stepped.hidden.into_iter().map(|h| gather(h, state.clone())).collect(),
        }
    }
}
