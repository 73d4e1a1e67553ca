//! The flows' bookkeeping in one forward, on the path the forward's
//! settings fix (`ForwardSettings::step`, an execution choice made once):
//!
//! - [`StepPath::Host`]: the host store and `flow::advance`, from one read
//!   of the walled new positions and step lengths per step, and the host
//!   collection (`flow::Aggregator`); the recorder of `inspect` follows it;
//! - [`StepPath::Device`]: `kernels::flow_step` and `kernels::flow_collect`,
//!   whose one read per step is a few counts; positions, energies, sample
//!   ids, steps and keys stay on the device.
//!
//! Both give the same flows in the same order, the same counters and the
//! same surface (tests/device_step.rs). The network, the noise and the
//! wall rule, which both share, are `forward.rs`'s.

use super::forward::{ForwardSettings, Workspace};
use crate::device;
use crate::error::{Error, Result};
use crate::flow::rules::step_length;
use crate::flow::{ActiveTensors, FlowStats, StepPath, StepRules, advance};
use crate::geometry::nearer_plane;
use crate::kernels::Kernels;
use crate::kernels::flow_collect::{collect_on_device, collect_on_device_composed};
use crate::kernels::flow_step::{DeviceStep, DoneFlows, FlowIds};
use burn::tensor::{Int, Tensor};

/// The bookkeeping of one forward (see the module docs).
pub(super) struct Books<'w> {
    rules: StepRules,
    ws: &'w mut Workspace,
    path: Path,
    /// The device step's kernels or the composed ops.
    kernels: Kernels,
}

enum Path {
    Host,
    // Boxed: the host path carries nothing.
    Device(Box<OnDevice>),
}

/// The device path's state: the active flows' ids, the completed flows,
/// and what the counts read so far say.
struct OnDevice {
    ids: FlowIds,
    done: DoneFlows,
    iota: Tensor<1, Int>,
    active: usize,
    /// Steps taken by the flows completed so far, summed.
    done_steps: u64,
    /// Steps taken by the active flows, summed (from the last read).
    active_steps: u64,
}

impl<'w> Books<'w> {
    /// Starts B*S flows at (x_cell, y_cell, z_in) with the mapped
    /// `energies` [B, S], zero hidden state, zero steps. Refuses a batch
    /// whose starting flows exceed the capacity (MODEL.md s.4.1: never drop
    /// whole samples).
    pub fn start(
        cfg: &ForwardSettings,
        ws: &'w mut Workspace,
        energies: Tensor<2>,
        layers: usize,
        hidden: usize,
        kernels: Kernels,
    ) -> Result<(Self, ActiveTensors, FlowStats)> {
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
        let z_in = lattice.z_in();
        let mut flat = Vec::with_capacity(3 * n0);
        for _ in 0..b {
            for cell in 0..s {
                let (x, y) = lattice.cell_xy(cell);
                flat.extend([x, y, z_in]);
            }
        }
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
        let rules = StepRules::new(lattice, &cfg.flow, b);
        let path = match cfg.step {
            StepPath::Host => {
                let store = &mut ws.store;
                store.reset();
                for sample in 0..b as u32 {
                    store.sample.extend(std::iter::repeat_n(sample, s));
                    store.steps.extend(std::iter::repeat_n(0, s));
                }
                if let Some(trace) = ws.trace.as_mut() {
                    trace.start(store, &act)?;
                }
                Path::Host
            }
            StepPath::Device => {
                if ws.trace.is_some() {
                    return Err(Error::Internal(
                        "the flow trace records the host step; run it with step = \"host\"".into(),
                    ));
                }
                let iota = ws.iota.upto(cfg.flow.max_active_flows.max(n0), &dev);
                let ids = FlowIds {
                    sample: iota.clone().slice(0..n0).div_scalar(s as i64),
                    steps: Tensor::zeros([n0], &dev),
                };
                Path::Device(Box::new(OnDevice {
                    ids,
                    done: DoneFlows::default(),
                    iota,
                    active: n0,
                    done_steps: 0,
                    active_steps: 0,
                }))
            }
        };
        Ok((
            Books {
                rules,
                ws,
                path,
                kernels,
            },
            act,
            stats,
        ))
    }

    /// Flows active now.
    pub fn active(&self) -> usize {
        match &self.path {
            Path::Host => self.ws.store.active(),
            Path::Device(d) => d.active,
        }
    }

    /// MODEL.md s.4.2 d-f for the N active flows: `old_pos` [N, 3] before
    /// the step, `stepped` after it (positions through the wall rule).
    /// Adds the step's completions, children and drops to `stats`, keeps
    /// the completed flows, and returns the next active set (survivors,
    /// then children), gathered with `gather`.
    pub fn advance(
        &mut self,
        old_pos: Tensor<2>,
        stepped: ActiveTensors,
        stats: &mut FlowStats,
        gather: &impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2>,
    ) -> Result<ActiveTensors> {
        let n = self.active();
        match &mut self.path {
            Path::Host => {
                let store = &mut self.ws.store;
                let dev = stepped.pos.device();
                // The step's one read: positions and step lengths together.
                let len = step_length(old_pos.clone(), stepped.pos.clone()).reshape([n, 1]);
                let moved = device::to_vec(Tensor::cat(vec![stepped.pos.clone(), len], 1))?;
                advance(store, &moved, &self.rules, stats);
                if !store.finished.is_empty() {
                    let idx = device::indices(&store.finished, &dev);
                    store.done_energy.push(gather(stepped.energy.clone(), idx));
                }
                let act = store.compact(n, old_pos, stepped, &dev, gather);
                // Trace hook (inspect only): reads the step's flows back.
                if let Some(trace) = self.ws.trace.as_mut() {
                    trace.step(store, &moved, stats, &act)?;
                }
                Ok(act)
            }
            Path::Device(d) => {
                let step = DeviceStep {
                    rules: &self.rules,
                    iota: d.iota.clone(),
                    kernels: self.kernels,
                };
                let ids = d.ids.clone();
                let (act, ids, c) = step.step(old_pos, stepped, ids, &mut d.done, gather)?;
                d.ids = ids;
                d.active = c.kept + c.children;
                d.done_steps += c.done_steps;
                d.active_steps = c.kept_steps;
                stats.completed_z0 += c.z0;
                stats.completed_zd += c.zd;
                stats.completed_projected += c.projected;
                stats.flows_spawned += c.children;
                stats.flows_created += c.children;
                stats.flows_dropped += c.dropped;
                Ok(act)
            }
        }
    }

    /// MODEL.md s.4.3: every flow still active (`act`) is projected onto
    /// its nearer plane and completes, so every created flow contributes
    /// to the output.
    pub fn project_the_rest(&mut self, act: ActiveTensors, stats: &mut FlowStats) -> Result<()> {
        let left = self.active();
        stats.completed_final = left;
        let lattice = self.rules.lattice;
        match &mut self.path {
            Path::Host => {
                let store = &mut self.ws.store;
                if left > 0 {
                    let pos = device::to_vec(act.pos)?;
                    let s = lattice.cells() as u32;
                    for (i, p) in pos.chunks_exact(3).enumerate() {
                        let key = store.sample[i] * s + lattice.cell_of(p[0], p[1]) as u32;
                        store.done.push(key, store.steps[i], nearer_plane(p[2]));
                    }
                    store.done_energy.push(act.energy);
                    store.sample.clear();
                    store.steps.clear();
                }
                let total: u64 = store.done.steps.iter().map(|&v| v as u64).sum();
                stats.mean_flow_steps = total as f64 / store.done.len().max(1) as f64;
                if let Some(trace) = self.ws.trace.as_mut() {
                    trace.finish(store)?;
                }
            }
            Path::Device(d) => {
                if left > 0 {
                    let step = DeviceStep {
                        rules: &self.rules,
                        iota: d.iota.clone(),
                        kernels: self.kernels,
                    };
                    step.finish(act, d.ids.clone(), &mut d.done);
                    d.done_steps += d.active_steps;
                    d.active = 0;
                }
                stats.mean_flow_steps = d.done_steps as f64 / stats.completed().max(1) as f64;
            }
        }
        Ok(())
    }

    /// MODEL.md s.4 step 4: the completed flows into a flat surface of
    /// `n_keys` = B * S values; sets `stats.cells_covered`.
    pub fn collect(&mut self, n_keys: usize, stats: &mut FlowStats) -> Result<Tensor<1>> {
        let none = || Error::Internal("no completed flows".into());
        match &mut self.path {
            Path::Host => {
                let ws = &mut *self.ws;
                let energy = ws.store.take_done_energy().ok_or_else(none)?;
                let (flat, summary) = ws.aggregator.collect(energy, &ws.store.done, n_keys)?;
                stats.cells_covered = summary.groups;
                Ok(flat)
            }
            Path::Device(d) => {
                let done = d.done.take().ok_or_else(none)?;
                let (flat, groups) = match self.kernels {
                    Kernels::Fused => collect_on_device(done, n_keys),
                    Kernels::Composed => collect_on_device_composed(done, n_keys),
                };
                // The forward's last read.
                stats.cells_covered = device::ints_to_vec(groups)?[0] as usize;
                Ok(flat)
            }
        }
    }
}
