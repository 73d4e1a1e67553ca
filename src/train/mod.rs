//! Training end to end (MODEL.md s.5): a run folder and its loop (`run`),
//! how a run starts in it (`open`) and its lock (`lock`),
//! one optimizer step (`trainer`) and its AdamW (`adamw`), data and the held-out split (`data`),
//! objectives (`loss`), the learning-rate schedule (`schedule`), global
//! gradient-norm clipping (`grads`), per-step metrics (`metrics`), and
//! held-out evaluation against the identity and linear baselines (`eval`),
//! and how much the signal varies across samples on its way (`spread`).

pub mod adamw;
pub mod baselines;
pub mod data;
pub mod eval;
pub mod grads;
pub mod lock;
pub mod loss;
pub mod metrics;
pub mod open;
pub mod plan;
pub mod run;
pub mod schedule;
pub mod spread;
pub mod trainer;

pub use data::{PairData, Split, SplitName};
pub use open::{DataChoice, RunRequest, Start};
pub use plan::RunPlan;
pub use run::{Event, Run, RunStop, RunSummary};
pub use trainer::Trainer;
