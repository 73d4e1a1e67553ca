//! The flow engine, host side: what a step does to each flow, the flow
//! store and its compaction, the collection, the cell grid, the one set of
//! flow counters, the naive reference collection, and a recorder of a
//! forward's flows for the pictures of `inspect` (`trace.rs`). It imports
//! nothing from `model/`: the loop that runs the network over the flows is
//! `model::forward`, which calls into this module. The device twins of the
//! step and the collection, for GPU backends, are `kernels::flow_step` and
//! `kernels::flow_collect`, checked against these.
//!
//! Where the seed's five proposals live:
//! - s.1 vectorised collection and grouping: `collect.rs` (+ `spatial.rs`);
//! - s.2 memory management / batch deletion: `store.rs` (one gather per step);
//! - s.3 fused aggregation: `collect.rs`;
//! - s.4 batched cleanup: `rules.rs` (`advance`) + `FlowStore::compact`;
//! - s.5 spatial hashing: `spatial.rs`.

pub mod collect;
pub mod naive;
pub mod rules;
pub mod spatial;
pub mod stats;
pub mod store;
pub mod trace;

pub use collect::Aggregator;
pub use rules::{StepPath, StepRules, advance};
pub use stats::{FlowStats, LoopStop};
pub use store::{ActiveTensors, CompletedMeta, FlowStore};
pub use trace::FlowTrace;
