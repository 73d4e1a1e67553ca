//! One propagation step's bookkeeping on the device: the device twin of
//! `flow::rules::advance` and `FlowStore::compact`, for GPU backends, where
//! every read back to the host drains the queue.
//!
//! Each flow's fate (planes z0 / zD, projection after `projection_steps`,
//! movement spawn, the capacity with fair sharing between samples) is
//! decided over all flows at once, by the backend's kernels (`fates`:
//! about six dispatches on burn's Cube backends) or by composed tensor ops
//! (the reference, and the CPU's device step); the step then reads ONE
//! small int vector (the counts the loop's stop rules need, see
//! [`StepCounts`]) and compacts the active set by prefix sums: survivors in
//! order, then children in parent order, exactly the order `advance` gives,
//! so both paths hold the same flows one for one. Sample ids, steps and the
//! completed flows' keys stay on the device as int tensors; no position or
//! energy is read.
//!
//! Fair sharing, as `advance` does it: when the children asked for do not
//! fit, the j-th child of every sample comes before any sample's (j+1)-th,
//! samples in order within a rank. With `K_s` children asked for by sample
//! s and `room` free rows, the children of rank < R are all kept, where R
//! is the largest r with `sum_s min(K_s, r) <= room`; of rank R, the first
//! `room - sum_s min(K_s, R)` samples (in order) that have one. R comes from
//! `sum_s min(K_s, r) = min_j (P_j + (B - j) r)` (P_j: the sum of the j
//! smallest K), evaluated over the samples pairwise ([B, B], no sort: burn
//! sorts on the host on its GPU backends).
//!
//! Not here: the network, the noise (`flow_ops`), the wall rule and the
//! step length (one definition for both paths, `flow::rules`), the
//! collection (`flow_collect`).

use super::Kernels;
use super::fates::{self, PlanRules, SlotSizes, count};
use super::flow_collect::DoneOnDevice;
use super::flow_ops::scan_rows;
use crate::device;
use crate::error::{Error, Result};
use crate::flow::rules::{StepRules, step_length};
use crate::flow::store::ActiveTensors;
use burn::tensor::{Bool, Device, IndexingUpdateOp, Int, Tensor};

/// Sample and steps taken of each active flow, on the device (row i =
/// flow i of the [`ActiveTensors`]).
#[derive(Debug, Clone)]
pub struct FlowIds {
    pub sample: Tensor<1, Int>,
    pub steps: Tensor<1, Int>,
}

/// What one step did: the one read of the step, as `advance` counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// Flows still active after the step (survivors).
    pub kept: usize,
    /// Children kept.
    pub children: usize,
    pub z0: usize,
    pub zd: usize,
    pub projected: usize,
    /// Children dropped at the capacity.
    pub dropped: usize,
    /// Sum of the steps of the flows that completed.
    pub done_steps: u64,
    /// Sum of the steps of the survivors (children have taken none): what
    /// the final projection adds when the loop ends after this step.
    pub kept_steps: u64,
}

/// The counts of a step of `n` flows from the values read, in
/// `fates::count`'s layout.
fn counts_of(n: usize, v: &[i64]) -> StepCounts {
    let kept = v[count::KEPT] as usize;
    let (z0, zd) = (v[count::Z0] as usize, v[count::ZD] as usize);
    StepCounts {
        kept,
        z0,
        zd,
        projected: n - kept - z0 - zd,
        children: v[count::CHILDREN] as usize,
        dropped: v[count::DROPPED] as usize,
        done_steps: v[count::DONE_STEPS] as u64,
        kept_steps: v[count::KEPT_STEPS] as u64,
    }
}

/// The completed flows on the device, one chunk per step: energies (on the
/// autodiff graph), group keys `sample * S + cell`, steps and final z.
#[derive(Debug, Default)]
pub struct DoneFlows {
    pub energy: Vec<Tensor<2>>,
    pub key: Vec<Tensor<1, Int>>,
    pub steps: Vec<Tensor<1, Int>>,
    pub z: Vec<Tensor<1>>,
}

impl DoneFlows {
    /// Drops every chunk.
    pub fn clear(&mut self) {
        *self = DoneFlows::default();
    }

    fn push(&mut self, energy: Tensor<2>, key: Tensor<1, Int>, steps: Tensor<1, Int>, z: Tensor<1>) {
        self.energy.push(energy);
        self.key.push(key);
        self.steps.push(steps);
        self.z.push(z);
    }

    /// All chunks concatenated; None when empty.
    pub fn take(&mut self) -> Option<DoneOnDevice> {
        if self.energy.is_empty() {
            return None;
        }
        let d = std::mem::take(self);
        let energy = Tensor::cat(d.energy, 0);
        let m = energy.dims()[0];
        Some(DoneOnDevice {
            energy: energy.reshape([m]),
            key: Tensor::cat(d.key, 0),
            steps: Tensor::cat(d.steps, 0),
            z: Tensor::cat(d.z, 0),
        })
    }
}

/// 0, 1, 2, ... on a device, uploaded once and sliced: burn builds `arange`
/// on the host on its GPU backends.
#[derive(Debug, Default)]
pub struct Iota(Option<Tensor<1, Int>>);

impl Iota {
    /// 0..n on `dev` (grown, by one upload, when shorter or elsewhere).
    pub fn upto(&mut self, n: usize, dev: &Device) -> Tensor<1, Int> {
        let fits = self.0.as_ref().is_some_and(|t| t.dims()[0] >= n && t.device() == *dev);
        if !fits {
            let len = n.max(1024).next_power_of_two();
            let v: Vec<u32> = (0..len as u32).collect();
            self.0 = Some(device::indices(&v, dev));
        }
        self.0.as_ref().expect("built above").clone().slice(0..n)
    }
}

/// Surface cell of each row's (x, y) of `pos` [M, 3] (no autodiff): the
/// device twin of `Lattice::cell_of` (round half away from zero, clamped,
/// NaN to 0).
pub fn cells(pos: Tensor<2>, width: usize, height: usize) -> Tensor<1, Int> {
    let m = pos.dims()[0];
    let axis = |col: usize, n: usize| {
        let v = pos.clone().slice([0..m, col..col + 1]).reshape([m]);
        let f = (v + 1.0) * 0.5 * (n - 1) as f32;
        let fl = f.clone().floor();
        let up = (f.clone() - fl.clone()).greater_equal_elem(0.5).float();
        (fl + up).mask_fill(f.is_nan(), 0.0).clamp(0.0, (n - 1) as f32).int()
    };
    axis(1, height) * width as i64 + axis(0, width)
}

/// The plane a completing flow of final z `z` [M] lies on: -1 below 0,
/// else +1 (a flow past a plane was clamped onto it; one projected goes to
/// the nearer plane, ties to zD, as `geometry::nearer_plane`).
fn plane(z: Tensor<1>) -> Tensor<1> {
    z.lower_elem(0.0).float() * -2.0 + 1.0
}

/// Column `c` of `t` [N, 3] as [N].
fn column(t: &Tensor<2>, c: usize) -> Tensor<1> {
    let n = t.dims()[0];
    t.clone().slice([0..n, c..c + 1]).reshape([n])
}

/// Children asked for by each flow that stays active, before the capacity:
/// `min(floor(len / t) - 1, cap)` when len > t.
fn asked(len: Tensor<1>, keep: &Tensor<1, Int>, t: f32, cap: usize) -> Tensor<1, Int> {
    let k = (len.clone().div_scalar(t).floor() - 1.0).clamp(0.0, cap as f32);
    k.mask_fill(len.greater_elem(t).bool_not(), 0.0).int() * keep.clone()
}

/// The children each flow keeps under the capacity (module docs), and the
/// total asked for. `k` [N]: asked; `sample` [N]; `room` [1]: free rows.
fn share(
    k: Tensor<1, Int>,
    sample: &Tensor<1, Int>,
    room: Tensor<1, Int>,
    b: usize,
    iota: &Tensor<1, Int>,
) -> (Tensor<1, Int>, Tensor<1, Int>) {
    let n = k.dims()[0];
    // A shorter iota would slice to fewer sample ids and count every flow
    // as every sample's; `Books::start` makes it max(B * S, capacity).
    debug_assert!(iota.dims()[0] >= b, "iota shorter than the samples");
    let ids = iota.clone().slice(0..b);
    // Per-sample running sums of k in flow order: row s of [B, N].
    let mine: Tensor<2, Bool> = sample
        .clone()
        .unsqueeze_dim::<2>(0)
        .expand([b, n])
        .equal(ids.clone().unsqueeze_dim::<2>(1).expand([b, n]));
    let scan = scan_rows(mine.int() * k.clone().unsqueeze_dim::<2>(0).expand([b, n]));
    // base: the rank of each flow's first child within its sample.
    let base = scan
        .clone()
        .gather(0, sample.clone().unsqueeze_dim::<2>(0))
        .reshape([n])
        - k.clone();
    let asked_by = scan.slice([0..b, n - 1..n]); // K_s [B, 1]
    let total = asked_by.clone().sum();
    // Pairwise over samples: row s, column s'.
    let ks = asked_by.clone().expand([b, b]);
    let ks2 = asked_by.clone().reshape([1, b]).expand([b, b]);
    let s_row = ids.clone().unsqueeze_dim::<2>(1).expand([b, b]);
    let s_col = ids.unsqueeze_dim::<2>(0).expand([b, b]);
    let earlier = s_col.clone().lower(s_row.clone());
    // s' sorts before s: fewer asked, or as many and earlier.
    let before = ks2
        .clone()
        .lower(ks.clone())
        .bool_or(ks2.clone().equal(ks).bool_and(earlier.clone()));
    let j = before.clone().int().sum_dim(1); // rank of s among K, [B, 1]
    let p = (before.int() * ks2).sum_dim(1) + asked_by.clone(); // P_{j+1}
    let rest = j.neg() + (b as i64 - 1); // B - (j + 1)
    let room_b = room.clone().unsqueeze_dim::<2>(1).expand([b, 1]);
    let ok = p
        .clone()
        .lower_equal(room_b.clone())
        .bool_and(rest.clone().greater_elem(0));
    let cand = ((room_b - p).clamp_min(0) / rest.clamp_min(1)).mask_fill(ok.bool_not(), -1);
    let r = room.clone().div_scalar(b as i64).max_pair(cand.max().reshape([1]));
    let r_b = r.clone().unsqueeze_dim::<2>(1).expand([b, 1]);
    let full = asked_by.clone().min_pair(r_b.clone()).sum();
    let leftover = room.clone() - full;
    // Of rank R: samples that have such a child, in order, while room lasts.
    let has = asked_by.greater(r_b).int(); // [B, 1]
    let ahead = (earlier.int() * has.clone().reshape([1, b]).expand([b, b])).sum_dim(1);
    let at_r = has * ahead.lower(leftover.unsqueeze_dim::<2>(1).expand([b, 1])).int();
    let at_r = at_r.reshape([b]).select(0, sample.clone());
    let r_n = r.expand([n]);
    let whole = (r_n.clone() - base.clone()).clamp_min(0).min_pair(k.clone());
    let at = base
        .clone()
        .lower_equal(r_n.clone())
        .bool_and(r_n.lower(base + k.clone()))
        .int()
        * at_r;
    let fair = whole + at;
    // Everything fits: every child asked for.
    let over = total.clone().greater(room).int().expand([n]);
    (k.clone() + (fair - k) * over, total)
}

/// The device step's rules (the host `StepRules` plus its device scratch).
pub struct DeviceStep<'a> {
    pub rules: &'a StepRules,
    /// 0..max(N, B, capacity) on the device.
    pub iota: Tensor<1, Int>,
    /// Fused: the backend's kernels where it has them (`fates`), else the
    /// composed ops, the reference.
    pub kernels: Kernels,
}

/// The completed flows of a step: source row, key, steps, plane.
type Completed = (Tensor<1, Int>, Tensor<1, Int>, Tensor<1, Int>, Tensor<1>);

/// A step's plan [R, N], the steps after it, and its counts.
type Planned = (Tensor<2, Int>, Tensor<1, Int>, StepCounts);

/// Where each flow goes: the completed flows (source row, key, steps,
/// plane) and the next active set (source row of the energy and hidden
/// state, of the position in [new; old], sample, steps).
struct Slots {
    done: Option<Completed>,
    next: Option<[Tensor<1, Int>; 4]>,
}

impl DeviceStep<'_> {
    /// One step's bookkeeping. `old_pos` [N, 3]: positions before the step;
    /// `stepped`: the walled new positions (`flow::rules::wall`), new
    /// energies and hidden states; `ids`: sample and steps before the step.
    /// Appends the completed flows to `done` and returns the next active
    /// set (survivors, then children at their parent's old position with
    /// its new energy and hidden state), its ids and the step's counts.
    pub fn step(
        &self,
        old_pos: Tensor<2>,
        stepped: ActiveTensors,
        ids: FlowIds,
        done: &mut DoneFlows,
        gather: &impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2>,
    ) -> Result<(ActiveTensors, FlowIds, StepCounts)> {
        let n = ids.sample.dims()[0];
        let new_pos = stepped.pos.clone().detach();
        let len = self
            .spawn()
            .map(|_| step_length(old_pos.clone().detach(), new_pos.clone()));
        let fused = match self.kernels {
            Kernels::Fused => self.plan_fused(&new_pos, len.as_ref(), &ids)?,
            Kernels::Composed => None,
        };
        let (plan, steps, counts) = match fused {
            Some(p) => p,
            None => self.plan_composed(&new_pos, len, &ids)?,
        };
        let kept = counts.kept;
        let finished = n - kept;
        let next = kept + counts.children;
        // With nobody left, or nobody gone and nobody born, the stepped
        // state is the next one as it is.
        let same = next == 0 || (kept == n && counts.children == 0);
        if finished > 0 || !same {
            let sizes = SlotSizes {
                kept,
                finished,
                next,
                width: self.rules.lattice.width,
                height: self.rules.lattice.height,
            };
            let slots = match self.kernels {
                Kernels::Fused => fates::slots(plan.clone(), &new_pos, &ids.sample, &steps, sizes),
                Kernels::Composed => None,
            };
            let slots = match slots {
                Some((d, z, nx)) => Slots {
                    done: (finished > 0).then(|| {
                        let row = |r: usize| d.clone().slice([r..r + 1, 0..finished]).reshape([finished]);
                        (row(0), row(1), row(2), z.slice(0..finished))
                    }),
                    next: (!same).then(|| [0, 1, 2, 3].map(|r| nx.clone().slice([r..r + 1, 0..next]).reshape([next]))),
                },
                None => self.slots_composed(plan, &new_pos, &ids.sample, &steps, sizes, !same),
            };
            if let Some((idx, key, steps, z)) = slots.done {
                done.push(gather(stepped.energy.clone(), idx), key, steps, z);
            }
            if let Some([state, pos_idx, sample, steps]) = slots.next {
                // The energy, the hidden states and (without children) the
                // positions are gathered by one index: their backwards
                // share its inverse.
                let layers = stepped.hidden.len();
                let mut rows = vec![stepped.energy];
                rows.extend(stepped.hidden);
                let pos = if counts.children > 0 {
                    Some(gather(Tensor::cat(vec![stepped.pos, old_pos], 0), pos_idx))
                } else {
                    rows.push(stepped.pos);
                    None
                };
                let mut rows = self.kernels.gather_rows_each(rows, state).into_iter();
                let energy = rows.next().expect("the energy was gathered");
                let hidden: Vec<_> = rows.by_ref().take(layers).collect();
                let pos = pos.or_else(|| rows.next()).expect("the positions were gathered");
                let act = ActiveTensors { pos, energy, hidden };
                return Ok((act, FlowIds { sample, steps }, counts));
            }
        }
        let ids = FlowIds {
            sample: ids.sample,
            steps,
        };
        Ok((stepped, ids, counts))
    }

    /// (threshold, max children) when spawning is on.
    fn spawn(&self) -> Option<(f32, usize)> {
        self.rules.spawn.filter(|s| s.1 > 0)
    }

    /// The plan [2, N] (survivors; children kept), steps after the step and
    /// the step's counts by the backend's kernels; None without them.
    fn plan_fused(&self, new_pos: &Tensor<2>, len: Option<&Tensor<1>>, ids: &FlowIds) -> Result<Option<Planned>> {
        let rules = self.rules;
        let b = rules.samples.max(1);
        let plan_rules = PlanRules {
            projection_steps: rules.projection_steps as u32,
            spawn: self.spawn().map(|(t, cap)| (t, cap as u32)),
            max_active: rules.max_active.min(i32::MAX as usize) as u32,
            samples: b as u32,
        };
        // Without spawning the lengths are not read: any tensor will do.
        let flat;
        let len = match len {
            Some(l) => l,
            None => {
                flat = new_pos.clone().reshape([3 * ids.sample.dims()[0]]);
                &flat
            }
        };
        let Some((plan, steps, all)) = fates::plan(new_pos, len, &ids.sample, &ids.steps, plan_rules) else {
            return Ok(None);
        };
        // The step's one read.
        let v = device::ints_to_vec(all.clone().slice(0..count::READ))?;
        let n = ids.sample.dims()[0];
        let counts = counts_of(n, &v);
        let plan = if v[count::OVER] != 0 {
            fates::share(plan, &ids.sample, all, b)
                .ok_or_else(|| Error::Internal("a backend planned the step but cannot share the capacity".into()))?
        } else {
            plan
        };
        Ok(Some((plan, steps, counts)))
    }

    /// The plan [1 or 2, N] (survivors; children kept, when any), steps
    /// after the step and the step's counts, by composed tensor ops.
    fn plan_composed(&self, new_pos: &Tensor<2>, len: Option<Tensor<1>>, ids: &FlowIds) -> Result<Planned> {
        let rules = self.rules;
        let n = ids.sample.dims()[0];
        // Planes and projection (z was clamped onto a plane it crossed).
        let z = column(new_pos, 2);
        let z0 = z.clone().lower_equal_elem(-1.0).int();
        let zd = z.greater_equal_elem(1.0).int();
        let steps = ids.steps.clone() + 1;
        let due = steps.clone().greater_equal_elem(rules.projection_steps as i64).int();
        let keep = (z0.clone() + zd.clone() + due).clamp_max(1).neg() + 1;
        let kept = keep.clone().sum();
        let done_steps = (steps.clone() * (keep.clone().neg() + 1)).sum();
        let kept_steps = (steps.clone() * keep.clone()).sum();
        // Movement spawn and the capacity.
        let kids = match (self.spawn(), len) {
            (Some((t, cap)), Some(len)) => {
                let k = asked(len, &keep, t, cap);
                let room = (kept.clone().neg() + rules.max_active as i64).clamp_min(0);
                Some(share(k, &ids.sample, room, rules.samples.max(1), &self.iota))
            }
            _ => None,
        };
        let zero = || kept.zeros_like();
        let (children, dropped) = match &kids {
            Some((kc, total)) => {
                let c = kc.clone().sum();
                (c.clone(), total.clone() - c)
            }
            None => (zero(), zero()),
        };
        // The step's one read, in `fates::count`'s layout.
        let v = device::ints_to_vec(Tensor::cat(
            vec![kept, z0.sum(), zd.sum(), children, dropped, done_steps, kept_steps],
            0,
        ))?;
        let counts = counts_of(n, &v);
        let mut rows = vec![keep.unsqueeze_dim::<2>(0)];
        if counts.children > 0 {
            rows.extend(kids.map(|k| k.0.unsqueeze_dim::<2>(0)));
        }
        Ok((Tensor::cat(rows, 0), steps, counts))
    }

    /// [`Slots`] by composed tensor ops: output slots by prefix sums of
    /// the plan, one scatter building each index (a flow that has no slot
    /// in it writes 0 into a spare last one).
    fn slots_composed(
        &self,
        plan: Tensor<2, Int>,
        new_pos: &Tensor<2>,
        sample: &Tensor<1, Int>,
        steps: &Tensor<1, Int>,
        sizes: SlotSizes,
        with_next: bool,
    ) -> Slots {
        let [r, n] = plan.dims();
        let iota = self.iota.clone().slice(0..n);
        let scan = scan_rows(plan.clone());
        let keep = plan.clone().slice([0..1, 0..n]).reshape([n]);
        let keep_scan = scan.clone().slice([0..1, 0..n]).reshape([n]);
        let gone = keep.equal_elem(0);
        let dev = iota.device();
        let (kept, finished, next) = (sizes.kept, sizes.finished, sizes.next);
        let done = (finished > 0).then(|| {
            // Completed flow i goes to slot i - (survivors before it).
            let stays = gone.clone().bool_not();
            let slot = (iota.clone() - keep_scan.clone()).mask_fill(stays.clone(), finished as i64);
            let idx = Tensor::<1, Int>::zeros([finished + 1], &dev)
                .scatter(0, slot, iota.clone().mask_fill(stays, 0), IndexingUpdateOp::Add)
                .slice(0..finished);
            let pos = new_pos.clone().select(0, idx.clone());
            let key = sample.clone().select(0, idx.clone()) * (sizes.width * sizes.height) as i64
                + cells(pos.clone(), sizes.width, sizes.height);
            (idx.clone(), key, steps.clone().select(0, idx), plane(column(&pos, 2)))
        });
        let next = with_next.then(|| {
            let spare = next as i64;
            let mut slots = vec![(keep_scan - 1).mask_fill(gone.clone(), spare)];
            let mut values = vec![iota.clone().mask_fill(gone, 0)];
            if r > 1 {
                let kc = plan.slice([1..2, 0..n]).reshape([n]);
                let kc_scan = scan.slice([1..2, 0..n]).reshape([n]);
                // Child j of flow i: after the survivors and the earlier children.
                let first = kc_scan - kc.clone() + kept as i64;
                let cap = self.spawn().map_or(0, |s| s.1);
                for j in 0..cap {
                    let none = kc.clone().lower_equal_elem(j as i64);
                    slots.push((first.clone() + j as i64).mask_fill(none.clone(), spare));
                    values.push(iota.clone().mask_fill(none, 0));
                }
            }
            let state = Tensor::<1, Int>::zeros([next + 1], &dev)
                .scatter(0, Tensor::cat(slots, 0), Tensor::cat(values, 0), IndexingUpdateOp::Add)
                .slice(0..next);
            let child = self.iota.clone().slice(0..next).greater_equal_elem(kept as i64);
            let pos_idx = state.clone() + child.clone().int() * n as i64;
            [
                state.clone(),
                pos_idx,
                sample.clone().select(0, state.clone()),
                steps.clone().select(0, state).mask_fill(child, 0),
            ]
        });
        Slots { done, next }
    }

    /// MODEL.md s.4.3 on the device: every flow still active completes on
    /// its nearer plane, at its steps so far. Only with flows left (after a
    /// step that kept none, [`Self::step`] hands back the stepped state as
    /// it was, which is no active set).
    pub fn finish(&self, act: ActiveTensors, ids: FlowIds, done: &mut DoneFlows) {
        let pos = act.pos.detach();
        let key = ids.sample * self.rules.lattice.cells() as i64
            + cells(pos.clone(), self.rules.lattice.width, self.rules.lattice.height);
        done.push(act.energy, key, ids.steps, plane(column(&pos, 2)));
    }
}
