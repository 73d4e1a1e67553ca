//! The device step's bookkeeping as a few kernels, for backends that have
//! them (`FateOps`; burn's Cube backends in `fates_cube.rs`): the composed
//! tensor ops of `flow_step.rs` are about 150 small dispatches per
//! propagation step on a GPU, each a launch and a pass over memory.
//!
//! Three ops, in the order the step runs them:
//!
//! - [`FateOps::flow_plan`]: each flow's fate and the children it asks
//!   for, the step's counts and, when the children do not all fit, the
//!   capacity's fair share per sample (the rank R and which samples get a
//!   child of rank R, `flow_step`'s module docs), all before the step's
//!   one read;
//! - [`FateOps::flow_share`]: after the read, only when the children do
//!   not fit: the children each flow keeps;
//! - [`FateOps::flow_slots`]: the completed flows' rows, keys, steps and
//!   planes, and the next active set's source rows, sample ids and steps,
//!   from the prefix sums of the plan.
//!
//! The backends without them (Flex: the CPU runs the host step, and its
//! device step is the composed reference) answer None and `flow_step`
//! runs the composed ops; a backend answers all three or none. Integers
//! only, apart from the completed flows' planes: the values are the
//! composed ops' exactly (tests/gpu/step.rs).

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Int, Tensor};

/// What `flow_plan` needs of the step's rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanRules {
    pub projection_steps: u32,
    /// (threshold, max children per flow) when spawning is on.
    pub spawn: Option<(f32, u32)>,
    pub max_active: u32,
    pub samples: u32,
}

/// Where the counts of `flow_plan` sit in its count vector (i32).
pub mod count {
    pub const KEPT: usize = 0;
    pub const Z0: usize = 1;
    pub const ZD: usize = 2;
    pub const CHILDREN: usize = 3;
    pub const DROPPED: usize = 4;
    pub const DONE_STEPS: usize = 5;
    pub const KEPT_STEPS: usize = 6;
    /// 1 when the children asked for do not all fit (`flow_share` runs).
    pub const OVER: usize = 7;
    /// What the step reads: the entries above.
    pub const READ: usize = 8;
    /// The rank R of the fair share.
    pub const RANK: usize = 8;
    /// Then the children asked for per sample (B), then 1 per sample that
    /// gets a child of rank R (B).
    pub const HEAD: usize = 9;
}

/// What `flow_slots` lays out: the step's read counts and the lattice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotSizes {
    /// Survivors, completed flows, and the next active set's rows.
    pub kept: usize,
    pub finished: usize,
    pub next: usize,
    pub width: usize,
    pub height: usize,
}

/// The device step's kernels (module docs); None: compose them.
#[backend_extension(Flex, Cube: cfg(gpu), Autodiff)]
pub trait FateOps: Backend {
    /// For the N active flows after the move (`pos` [N, 3], walled; `len`
    /// [N], the step lengths, read only when spawning (any float tensor
    /// otherwise); `sample`, `steps`
    /// [N] before the step): the plan [2, N] (row 0: 1 for a survivor;
    /// row 1: the children it asks for, before the capacity), the steps
    /// after the step [N], and the counts (layout in [`count`]).
    fn flow_plan(
        pos: FloatTensor<Self>,
        len: FloatTensor<Self>,
        sample: IntTensor<Self>,
        steps: IntTensor<Self>,
        rules: PlanRules,
    ) -> Option<(IntTensor<Self>, IntTensor<Self>, IntTensor<Self>)> {
        let _ = (pos, len, sample, steps, rules);
        None
    }

    /// The plan with row 1 cut to the children each flow keeps under the
    /// capacity, from `flow_plan`'s counts.
    fn flow_share(
        plan: IntTensor<Self>,
        sample: IntTensor<Self>,
        counts: IntTensor<Self>,
        samples: usize,
    ) -> Option<IntTensor<Self>> {
        let _ = (plan, sample, counts, samples);
        None
    }

    /// From the plan: the completed flows [3, finished] (row, key `sample
    /// * W * H + cell`, steps) and their planes [finished] (-1 or +1), and
    /// the next active set [4, next] (source row of the energy and hidden
    /// state, of the position in [new; old], sample, steps). Shapes keep
    /// at least one column.
    fn flow_slots(
        plan: IntTensor<Self>,
        pos: FloatTensor<Self>,
        sample: IntTensor<Self>,
        steps: IntTensor<Self>,
        sizes: SlotSizes,
    ) -> Option<(IntTensor<Self>, FloatTensor<Self>, IntTensor<Self>)> {
        let _ = (plan, pos, sample, steps, sizes);
        None
    }
}

impl FateOps for Flex {}

impl<B: Backend + FateOps, C: CheckpointStrategy> FateOps for Autodiff<B, C> {
    fn flow_plan(
        pos: FloatTensor<Self>,
        len: FloatTensor<Self>,
        sample: IntTensor<Self>,
        steps: IntTensor<Self>,
        rules: PlanRules,
    ) -> Option<(IntTensor<Self>, IntTensor<Self>, IntTensor<Self>)> {
        B::flow_plan(pos.into_primitive(), len.into_primitive(), sample, steps, rules)
    }

    fn flow_share(
        plan: IntTensor<Self>,
        sample: IntTensor<Self>,
        counts: IntTensor<Self>,
        samples: usize,
    ) -> Option<IntTensor<Self>> {
        B::flow_share(plan, sample, counts, samples)
    }

    fn flow_slots(
        plan: IntTensor<Self>,
        pos: FloatTensor<Self>,
        sample: IntTensor<Self>,
        steps: IntTensor<Self>,
        sizes: SlotSizes,
    ) -> Option<(IntTensor<Self>, FloatTensor<Self>, IntTensor<Self>)> {
        let (done, z, next) = B::flow_slots(plan, pos.into_primitive(), sample, steps, sizes)?;
        // The planes are constants: nothing flows back through them.
        Some((done, <Self as AutodiffBackend>::from_inner(z), next))
    }
}

/// [`FateOps::flow_plan`] on tensors (positions and lengths detached).
pub fn plan(
    pos: &Tensor<2>,
    len: &Tensor<1>,
    sample: &Tensor<1, Int>,
    steps: &Tensor<1, Int>,
    rules: PlanRules,
) -> Option<(Tensor<2, Int>, Tensor<1, Int>, Tensor<1, Int>)> {
    let (plan, steps, counts) = <Dispatch as FateOps>::flow_plan(
        pos.clone().into_dispatch(),
        len.clone().into_dispatch(),
        sample.clone().into_dispatch(),
        steps.clone().into_dispatch(),
        rules,
    )?;
    Some((
        Tensor::from_dispatch(plan),
        Tensor::from_dispatch(steps),
        Tensor::from_dispatch(counts),
    ))
}

/// [`FateOps::flow_share`] on tensors.
pub fn share(
    plan: Tensor<2, Int>,
    sample: &Tensor<1, Int>,
    counts: Tensor<1, Int>,
    samples: usize,
) -> Option<Tensor<2, Int>> {
    <Dispatch as FateOps>::flow_share(
        plan.into_dispatch(),
        sample.clone().into_dispatch(),
        counts.into_dispatch(),
        samples,
    )
    .map(Tensor::from_dispatch)
}

/// [`FateOps::flow_slots`] on tensors.
pub fn slots(
    plan: Tensor<2, Int>,
    pos: &Tensor<2>,
    sample: &Tensor<1, Int>,
    steps: &Tensor<1, Int>,
    sizes: SlotSizes,
) -> Option<(Tensor<2, Int>, Tensor<1>, Tensor<2, Int>)> {
    let (done, z, next) = <Dispatch as FateOps>::flow_slots(
        plan.into_dispatch(),
        pos.clone().into_dispatch(),
        sample.clone().into_dispatch(),
        steps.clone().into_dispatch(),
        sizes,
    )?;
    Some((
        Tensor::from_dispatch(done),
        Tensor::from_dispatch(z),
        Tensor::from_dispatch(next),
    ))
}
