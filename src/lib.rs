//! # energyflow
//!
//! A Rust engine for Energy Flow lattice models (see `shared/spec/MODEL.md`
//! for the behaviour this crate implements).
//!
//! The model in ten lines:
//! 1. a teacher sentence embedding [E_in] is mapped to one energy per cell of
//!    a W x H input plane (`model::mapper`);
//! 2. every cell of every sample starts a flow at (x, y, z_in);
//! 3. each step, ALL active flows go through one shared network as a batch:
//!    `model::neuron` (position, energy -> features), then `model::carrier`
//!    (a GRU stack carrying each flow's memory, and heads for the new energy
//!    and the displacement);
//! 4. flows move, reflect at the walls, complete on the planes z = -1 / +1 or
//!    are projected after a step budget, and may spawn children
//!    (`flow::rules`, storage and compaction in `flow::store`);
//! 5. completed flows are grouped by (sample, cell) and aggregated with a
//!    softmax weighting into a surface (`flow::collect`, grouping via the
//!    counting-sort grid of `flow::spatial`);
//! 6. `model::collector` maps the surface back to an embedding [E_out].
//!
//! `model::forward` is MODEL.md s.4 in one function; `flow` is the
//! host-side engine it drives and imports nothing from `model`. `config`
//! holds the nested `[model]`, `[flow]` and `[train]` settings; `train`
//! the run folder, the optimizer step and the evaluation; `checkpoint` the
//! files on disk; `viz` the pictures of a run and of one forward (`plot`,
//! `inspect`). Library code returns [`error::Result`] and never prints;
//! the `energyflow` binary (src/main.rs, src/cli/) is the only code that does.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod flow;
pub mod geometry;
pub mod io;
pub mod kernels;
pub mod model;
pub mod pool;
pub mod seeds;
pub mod teacher;
pub mod train;
pub mod viz;

pub use config::{EnergyConfig, Preset};
pub use error::{Error, Result};
pub use model::EnergyFlowModel;
