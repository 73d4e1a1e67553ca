//! Flow statistics of one forward pass: the real counts the reference
//! reported as constants (MODEL.md s.5, s.7).

use serde::Serialize;

/// What happened to the flows during one forward.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowStats {
    /// Flows created: the B*S starting flows plus spawned children.
    pub created: usize,
    /// Children spawned (and kept).
    pub spawned: usize,
    /// Children dropped because max_active_flows was reached.
    pub dropped: usize,
    /// Flows that crossed z = -1.
    pub completed_z0: usize,
    /// Flows that crossed z = +1.
    pub completed_zd: usize,
    /// Flows projected in the loop after projection_steps.
    pub completed_projected: usize,
    /// Flows projected after the loop (still active at its end).
    pub completed_final: usize,
    /// Propagation steps run.
    pub steps: usize,
    /// Active flows at the start of each step.
    pub active_per_step: Vec<usize>,
    /// Mean steps taken per completed flow.
    pub mean_steps: f64,
    /// (sample, cell) groups that received at least one flow.
    pub cells_covered: usize,
    /// All (sample, cell) groups: B * S.
    pub cells_total: usize,
    /// Why the loop stopped: "no_active", "converged", "patience", "max_steps".
    pub stop_reason: &'static str,
}

impl FlowStats {
    /// All completed flows, whatever the way.
    pub fn completed(&self) -> usize {
        self.completed_z0 + self.completed_zd + self.completed_projected + self.completed_final
    }
}
