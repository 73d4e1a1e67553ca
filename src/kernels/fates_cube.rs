//! `FateOps` for burn's Cube backend (Vulkan, wgpu): the device step's
//! bookkeeping (`flow_step.rs`'s composed ops) as a few CubeCL kernels.
//!
//! Per propagation step: a clear and `plan_kernel` (each flow's fate and
//! the children it asks for; the counts summed in each cube's shared
//! memory, then by one integer atomic per cube and count), `fair_kernel`
//! when spawning (one unit: the rank R of the fair share by bisection
//! over the per-sample totals, and which samples get a child of rank R),
//! the read, then a prefix sum of the plan (`scan_cube.rs`) and
//! `slots_kernel` (every completed flow's and every next flow's row, key,
//! sample and steps, written once). Only when the children do not fit:
//! `spread_kernel`, a prefix sum per sample, `keep_kernel`. Integer sums:
//! exact in any order, so the counts do not depend on scheduling.
//!
//! The float rules are written as the composed ops compute them (a cell
//! as ((v + 1) * 0.5) * (n - 1), rounded half away from zero; the step
//! length comes from `flow::rules::step_length`, not recomputed), with no
//! product-and-sum a compiler could fuse, so the flows are the composed
//! ops' exactly. Positions other than f32 and ids other than i32 answer
//! None (the composed ops run).

// `#[cube]` bodies have no iterators: their loops index.
#![allow(clippy::needless_range_loop)]
use super::cube::{elementwise, empty, f32_rows, len};
use super::fates::{FateOps, PlanRules, SlotSizes, count};
use super::rows_cube::index;
use super::scan_cube::scan_rows;
use burn::backend::{Cube, DType, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::zeros_client;
use burn_cubecl::tensor::CubeTensor;

/// Units of a cube of `plan_kernel` (the WebGPU default limit).
const UNITS: usize = 256;

/// Row 0 of `plan`: 1 for a survivor; row 1: the children asked for;
/// `steps1`: steps + 1; `counts`: the sums, and the children asked for per
/// sample at `count::HEAD`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn plan_kernel(
    pos: &[f32],
    len: &[f32],
    sample: &[i32],
    steps: &[i32],
    plan: &mut [i32],
    steps1: &mut [i32],
    counts: &[Atomic<i32>],
    n: usize,
    projection: i32,
    threshold: f32,
    cap: f32,
    #[comptime] spawn: bool,
    #[comptime] units: usize,
) {
    let u = UNIT_POS as usize;
    let i = CUBE_POS_X as usize * units + u;
    let mut sums = Shared::new_slice(units * 5);
    let mut kept = 0i32;
    let mut z0 = 0i32;
    let mut zd = 0i32;
    let mut done_steps = 0i32;
    let mut kept_steps = 0i32;
    // No early return: every unit reaches the barrier.
    if i < n {
        let z = pos[3 * i + 2];
        let s1 = steps[i] + 1;
        let low = z <= -1.0f32;
        let high = z >= 1.0f32;
        let keep = !(low || high || s1 >= projection);
        let mut k = 0i32;
        if low {
            z0 = 1;
        }
        if high {
            zd = 1;
        }
        if keep {
            kept = 1;
            kept_steps = s1;
            if spawn {
                let l = len[i];
                if l > threshold {
                    let q = f32::floor(l / threshold) - 1.0f32;
                    k = i32::cast_from(f32::min(f32::max(q, 0.0f32), cap));
                }
            }
        } else {
            done_steps = s1;
        }
        plan[i] = kept;
        plan[n + i] = k;
        steps1[i] = s1;
        if k > 0 {
            counts[count::HEAD + usize::cast_from(sample[i])].fetch_add(k);
        }
    }
    sums[u] = kept;
    sums[units + u] = z0;
    sums[2 * units + u] = zd;
    sums[3 * units + u] = done_steps;
    sums[4 * units + u] = kept_steps;
    sync_cube();
    if u < 5 {
        let mut acc = 0i32;
        for j in 0..units {
            acc += sums[u * units + j];
        }
        if acc != 0 {
            // Counts 0, 1, 2, then the two step sums at 5 and 6.
            let at = select(u < 3, u, u + 2);
            counts[at].fetch_add(acc);
        }
    }
}

/// sum_s min(K_s, r): the children of rank < r.
#[cube]
fn below(counts: &mut [i32], samples: usize, r: i32) -> i32 {
    let mut acc = 0i32;
    for s in 0..samples {
        acc += i32::min(counts[count::HEAD + s], r);
    }
    acc
}

/// The fair share of the free rows (`flow_step`'s module docs), one unit.
#[cube(launch)]
fn fair_kernel(counts: &mut [i32], max_active: i32, samples: usize) {
    if ABSOLUTE_POS > 0 {
        terminate!();
    }
    let room = i32::max(max_active - counts[count::KEPT], 0);
    let mut total = 0i32;
    let mut top = 0i32;
    for s in 0..samples {
        let k = counts[count::HEAD + s];
        total += k;
        top = i32::max(top, k);
    }
    if total <= room {
        counts[count::CHILDREN] = total;
    } else {
        // below(lo) <= room < below(hi) = total.
        let mut lo = 0i32;
        let mut hi = top;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if below(counts, samples, mid) <= room {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let leftover = room - below(counts, samples, lo);
        let mut ahead = 0i32;
        for s in 0..samples {
            let has = counts[count::HEAD + s] > lo;
            let mut at = 0i32;
            if has && ahead < leftover {
                at = 1;
            }
            counts[count::HEAD + samples + s] = at;
            if has {
                ahead += 1;
            }
        }
        let children = room - leftover + i32::min(leftover, ahead);
        counts[count::CHILDREN] = children;
        counts[count::DROPPED] = total - children;
        counts[count::OVER] = 1;
        counts[count::RANK] = lo;
    }
}

/// Row s of `mine` [B, N]: the children flow i asks for if it is sample
/// s's, else 0 (their prefix sums give each flow's first child's rank).
#[cube(launch)]
fn spread_kernel(plan: &[i32], sample: &[i32], mine: &mut [i32], n: usize, elements: usize) {
    let e = ABSOLUTE_POS;
    if e >= elements {
        terminate!();
    }
    let i = e % n;
    let mut v = 0i32;
    if usize::cast_from(sample[i]) == e / n {
        v = plan[n + i];
    }
    mine[e] = v;
}

/// The plan with row 1 the children kept: those of rank < R, and the one
/// of rank R where the sample gets one.
#[cube(launch)]
fn keep_kernel(plan: &[i32], sample: &[i32], ranks: &[i32], counts: &[i32], out: &mut [i32], n: usize, samples: usize) {
    let i = ABSOLUTE_POS;
    if i >= n {
        terminate!();
    }
    let s = usize::cast_from(sample[i]);
    let k = plan[n + i];
    let base = ranks[s * n + i] - k;
    let r = counts[count::RANK];
    let mut kc = i32::min(i32::max(r - base, 0), k);
    if base <= r && r < base + k {
        kc += counts[count::HEAD + samples + s];
    }
    out[i] = plan[i];
    out[n + i] = kc;
}

/// Cell `(iy, ix)` of a coordinate on an axis of `cells` cells, as
/// `Lattice::cell_of` (half away from zero, clamped, NaN to 0).
#[cube]
fn quantise(v: f32, cells: u32) -> i32 {
    let top = f32::cast_from(cells - 1);
    let f = (v + 1.0f32) * 0.5f32 * top;
    let fl = f32::floor(f);
    let mut r = fl;
    if f - fl >= 0.5f32 {
        r = fl + 1.0f32;
    }
    let mut out = 0i32;
    // Fails for NaN.
    if r >= 0.0f32 {
        out = i32::cast_from(f32::min(r, top));
    }
    out
}

/// Every flow's rows in the completed set `done` [3, finished] and its
/// planes `z`, or in the next set `next` [4, rows] (survivors, then
/// children), from the plan and its prefix sums `scan` [2, N].
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn slots_kernel(
    plan: &[i32],
    scan: &[i32],
    pos: &[f32],
    sample: &[i32],
    steps: &[i32],
    done: &mut [i32],
    z: &mut [f32],
    next: &mut [i32],
    n: usize,
    kept: usize,
    finished: usize,
    rows: usize,
    width: u32,
    height: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= n {
        terminate!();
    }
    let s = sample[i];
    let before = usize::cast_from(scan[i]);
    if plan[i] == 1 {
        let at = before - 1;
        next[at] = i32::cast_from(i);
        next[rows + at] = i32::cast_from(i);
        next[2 * rows + at] = s;
        next[3 * rows + at] = steps[i];
    } else {
        let at = i - before;
        let x = quantise(pos[3 * i], width);
        let y = quantise(pos[3 * i + 1], height);
        done[at] = i32::cast_from(i);
        done[finished + at] = s * i32::cast_from(width * height) + y * i32::cast_from(width) + x;
        done[2 * finished + at] = steps[i];
        z[at] = select(pos[3 * i + 2] < 0.0f32, -1.0f32, 1.0f32);
    }
    let k = usize::cast_from(plan[n + i]);
    let first = usize::cast_from(scan[n + i]) - k + kept;
    for j in 0..k {
        let at = first + j;
        next[at] = i32::cast_from(i);
        // The child's position is its parent's before the step: row n + i
        // of [new; old].
        next[rows + at] = i32::cast_from(n + i);
        next[2 * rows + at] = s;
        next[3 * rows + at] = 0;
    }
}

/// `t` contiguous if it is a 1-D i32 tensor of `n` elements.
fn ids(t: &CubeTensor, n: usize) -> Option<CubeTensor> {
    if t.dtype != DType::I32 || len(t) != n {
        return None;
    }
    index(t)
}

/// `t` if it is an i32 plan [2, n] (ours, contiguous).
fn plan_of(t: &CubeTensor) -> Option<(CubeTensor, usize)> {
    let s = t.shape();
    (s.len() == 2 && s[0] == 2 && s[1] > 0 && t.dtype == DType::I32).then(|| (into_contiguous(t.clone()), s[1]))
}

impl FateOps for Cube {
    fn flow_plan(
        pos: CubeTensor,
        len: CubeTensor,
        sample: CubeTensor,
        steps: CubeTensor,
        rules: PlanRules,
    ) -> Option<(CubeTensor, CubeTensor, CubeTensor)> {
        let s = pos.shape();
        if s.len() != 2 || s[1] != 3 || s[0] == 0 {
            return None;
        }
        let n = s[0];
        let pos = f32_rows(&pos)?;
        let (sample, steps) = (ids(&sample, n)?, ids(&steps, n)?);
        let (threshold, cap) = rules.spawn.filter(|s| s.1 > 0).unwrap_or((0.0, 0));
        let spawn = cap > 0;
        // Unread without spawning: any f32 buffer binds.
        let len = match spawn {
            true if len.shape().num_elements() == n => f32_rows(&len)?,
            true => return None,
            false => pos.clone(),
        };
        let buf = |t: &CubeTensor| t.clone().into_buffer_arg();
        let b = rules.samples.max(1) as usize;
        let client = pos.client.clone();
        let counts = zeros_client(
            client.clone(),
            pos.device.clone(),
            [count::HEAD + 2 * b].into(),
            DType::I32,
        );
        let plan = empty(&pos, [2, n], DType::I32);
        let steps1 = empty(&pos, [n], DType::I32);
        let cubes = CubeCount::Static(n.div_ceil(UNITS) as u32, 1, 1);
        plan_kernel::launch(
            &client,
            cubes,
            CubeDim::new_1d(UNITS as u32),
            buf(&pos),
            buf(&len),
            buf(&sample),
            buf(&steps),
            buf(&plan),
            buf(&steps1),
            buf(&counts),
            n,
            rules.projection_steps as i32,
            threshold,
            cap as f32,
            spawn,
            UNITS,
        );
        if spawn {
            let one = (CubeCount::Static(1, 1, 1), CubeDim::new_1d(1));
            fair_kernel::launch(&client, one.0, one.1, buf(&counts), rules.max_active as i32, b);
        }
        Some((plan, steps1, counts))
    }

    fn flow_share(plan: CubeTensor, sample: CubeTensor, counts: CubeTensor, samples: usize) -> Option<CubeTensor> {
        let buf = |t: &CubeTensor| t.clone().into_buffer_arg();
        let (plan, n) = plan_of(&plan)?;
        let sample = ids(&sample, n)?;
        let b = samples.max(1);
        let counts = into_contiguous(counts);
        let client = plan.client.clone();
        let mine = empty(&plan, [b, n], DType::I32);
        let (cubes, dim) = elementwise(&client, b * n);
        spread_kernel::launch(&client, cubes, dim, buf(&plan), buf(&sample), buf(&mine), n, b * n);
        let ranks = scan_rows(&mine)?;
        let out = empty(&plan, [2, n], DType::I32);
        let (cubes, dim) = elementwise(&client, n);
        let args = (buf(&counts), buf(&out));
        keep_kernel::launch(
            &client,
            cubes,
            dim,
            buf(&plan),
            buf(&sample),
            buf(&ranks),
            args.0,
            args.1,
            n,
            b,
        );
        Some(out)
    }

    fn flow_slots(
        plan: CubeTensor,
        pos: CubeTensor,
        sample: CubeTensor,
        steps: CubeTensor,
        sizes: SlotSizes,
    ) -> Option<(CubeTensor, CubeTensor, CubeTensor)> {
        let buf = |t: &CubeTensor| t.clone().into_buffer_arg();
        let (plan, n) = plan_of(&plan)?;
        let pos = f32_rows(&pos)?;
        let (sample, steps) = (ids(&sample, n)?, ids(&steps, n)?);
        let scan = scan_rows(&plan)?;
        let (finished, rows) = (sizes.finished.max(1), sizes.next.max(1));
        let done = empty(&pos, [3, finished], DType::I32);
        let z = empty(&pos, [finished], DType::F32);
        let next = empty(&pos, [4, rows], DType::I32);
        let client = pos.client.clone();
        let (cubes, dim) = elementwise(&client, n);
        let args = (buf(&done), buf(&z), buf(&next));
        slots_kernel::launch(
            &client,
            cubes,
            dim,
            buf(&plan),
            buf(&scan),
            buf(&pos),
            buf(&sample),
            buf(&steps),
            args.0,
            args.1,
            args.2,
            n,
            sizes.kept,
            sizes.finished,
            sizes.next,
            sizes.width as u32,
            sizes.height as u32,
        );
        Some((done, z, next))
    }
}
