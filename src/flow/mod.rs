//! The flow engine: storage, the propagation loop, collection, the cell grid,
//! statistics, and the naive reference collection.
//!
//! Where the seed's five proposals live:
//! - s.1 vectorised collection and grouping: `collect.rs` (+ `spatial.rs`);
//! - s.2 memory management / batch deletion: `store.rs` (one gather per step);
//! - s.3 fused aggregation: `collect.rs`;
//! - s.4 batched cleanup: `step.rs` (`advance` + compaction);
//! - s.5 spatial hashing: `spatial.rs`.

pub mod collect;
pub mod naive;
pub mod spatial;
pub mod stats;
pub mod step;
pub mod store;

pub use collect::Collector;
pub use stats::FlowStats;
pub use store::{CompletedMeta, FlowStore};
