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

    /// Adds the statistics of another batch: counts add up, `steps` is the
    /// most steps any batch ran, `active_per_step` adds step by step,
    /// `mean_steps` is re-weighted by completed flows, and `stop_reason` is
    /// the last batch's.
    pub fn absorb(&mut self, s: &FlowStats) {
        let completed_before = self.completed();
        self.created += s.created;
        self.spawned += s.spawned;
        self.dropped += s.dropped;
        self.completed_z0 += s.completed_z0;
        self.completed_zd += s.completed_zd;
        self.completed_projected += s.completed_projected;
        self.completed_final += s.completed_final;
        self.steps = self.steps.max(s.steps);
        if self.active_per_step.len() < s.active_per_step.len() {
            self.active_per_step.resize(s.active_per_step.len(), 0);
        }
        for (t, a) in self.active_per_step.iter_mut().zip(&s.active_per_step) {
            *t += a;
        }
        let n = self.completed();
        self.mean_steps = if n == 0 {
            0.0
        } else {
            (self.mean_steps * completed_before as f64 + s.mean_steps * s.completed() as f64) / n as f64
        };
        self.cells_covered += s.cells_covered;
        self.cells_total += s.cells_total;
        self.stop_reason = s.stop_reason;
    }
}
