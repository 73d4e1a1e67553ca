//! Training end to end (MODEL.md s.5): data and the held-out split
//! (`data`), objectives (`loss`), the learning-rate schedule (`schedule`),
//! global gradient-norm clipping (`grads`), the loop with checkpoints and
//! exact resume (`trainer`), per-step metrics (`metrics`), and held-out
//! evaluation against the identity and linear baselines (`eval`).

pub mod data;
pub mod eval;
pub mod grads;
pub mod loss;
pub mod metrics;
pub mod schedule;
pub mod trainer;

pub use data::{PairData, Split};
pub use trainer::{Event, RunSummary, StopReason, Trainer};
