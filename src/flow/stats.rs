//! Flow statistics of one forward pass: the real counts the reference
//! reported as constants (MODEL.md s.5, s.7). This is the one set of flow
//! counters: a propagation step adds to it (`rules::advance`), `infer`
//! prints it and every metrics record carries it.

use serde::{Deserialize, Serialize};

/// Why a forward's propagation loop stopped (MODEL.md s.4.2g).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopStop {
    /// The step budget (`flow.propagation_steps`) ran out.
    #[default]
    StepBudget,
    /// No flow was left active.
    NoActive,
    /// The completed share of created flows reached the threshold.
    Converged,
    /// The completed count did not improve for `convergence_patience` steps.
    Patience,
}

/// What happened to the flows during one forward (or, summed with
/// [`FlowStats::absorb`], several).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowStats {
    /// Flows created: the B*S starting flows plus spawned children.
    pub flows_created: usize,
    /// Children spawned (and kept).
    pub flows_spawned: usize,
    /// Children dropped because max_active_flows was reached.
    pub flows_dropped: usize,
    /// Flows that crossed z = -1.
    pub completed_z0: usize,
    /// Flows that crossed z = +1.
    pub completed_zd: usize,
    /// Flows projected in the loop after projection_steps.
    pub completed_projected: usize,
    /// Flows projected after the loop (still active at its end).
    pub completed_final: usize,
    /// Propagation steps run (of several forwards, [`FlowStats::absorb`]
    /// keeps the most any ran).
    pub propagation_steps: usize,
    /// Propagation steps run, summed over the forwards absorbed (one
    /// forward: `propagation_steps`).
    #[serde(default)]
    pub steps_run: usize,
    /// Active flows at the start of each propagation step: the rows the
    /// shared network processed at that step.
    pub active_per_step: Vec<usize>,
    /// Mean propagation steps taken per completed flow.
    pub mean_flow_steps: f64,
    /// (sample, cell) groups that received at least one flow.
    pub cells_covered: usize,
    /// All (sample, cell) groups: B * S.
    pub cells_total: usize,
    /// Why the loop stopped.
    pub stop_reason: LoopStop,
}

impl FlowStats {
    /// All completed flows, whatever the way.
    pub fn completed(&self) -> usize {
        self.completed_z0 + self.completed_zd + self.completed_projected + self.completed_final
    }

    /// Flow-steps: the rows the shared network processed over the whole
    /// loop (the fair unit of work, since flow counts depend on the weights).
    pub fn flow_steps(&self) -> usize {
        self.active_per_step.iter().sum()
    }

    /// Adds the statistics of another batch: counts add up,
    /// `propagation_steps` is the most steps any batch ran,
    /// `active_per_step` adds step by step, `mean_flow_steps` is re-weighted
    /// by completed flows, and `stop_reason` is the last batch's.
    pub fn absorb(&mut self, s: &FlowStats) {
        let completed_before = self.completed();
        self.flows_created += s.flows_created;
        self.flows_spawned += s.flows_spawned;
        self.flows_dropped += s.flows_dropped;
        self.completed_z0 += s.completed_z0;
        self.completed_zd += s.completed_zd;
        self.completed_projected += s.completed_projected;
        self.completed_final += s.completed_final;
        self.propagation_steps = self.propagation_steps.max(s.propagation_steps);
        self.steps_run += s.steps_run;
        if self.active_per_step.len() < s.active_per_step.len() {
            self.active_per_step.resize(s.active_per_step.len(), 0);
        }
        for (t, a) in self.active_per_step.iter_mut().zip(&s.active_per_step) {
            *t += a;
        }
        let n = self.completed();
        self.mean_flow_steps = if n == 0 {
            0.0
        } else {
            (self.mean_flow_steps * completed_before as f64 + s.mean_flow_steps * s.completed() as f64) / n as f64
        };
        self.cells_covered += s.cells_covered;
        self.cells_total += s.cells_total;
        self.stop_reason = s.stop_reason;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_adds_counts_and_reweights_the_mean() {
        let a = FlowStats {
            flows_created: 4,
            completed_z0: 4,
            propagation_steps: 2,
            steps_run: 2,
            active_per_step: vec![4, 2],
            mean_flow_steps: 1.5,
            cells_total: 4,
            stop_reason: LoopStop::NoActive,
            ..FlowStats::default()
        };
        let b = FlowStats {
            flows_created: 2,
            completed_final: 2,
            propagation_steps: 3,
            steps_run: 3,
            active_per_step: vec![2, 2, 2],
            mean_flow_steps: 3.0,
            cells_total: 4,
            stop_reason: LoopStop::Patience,
            ..FlowStats::default()
        };
        let mut t = FlowStats::default();
        t.absorb(&a);
        t.absorb(&b);
        assert_eq!(t.flows_created, 6);
        assert_eq!(t.completed(), 6);
        assert_eq!(t.propagation_steps, 3);
        assert_eq!(t.steps_run, 5);
        assert_eq!(t.active_per_step, vec![6, 4, 2]);
        assert_eq!(t.flow_steps(), 12);
        assert_eq!(t.mean_flow_steps, (1.5 * 4.0 + 3.0 * 2.0) / 6.0);
        assert_eq!(t.cells_total, 8);
        assert_eq!(t.stop_reason, LoopStop::Patience);
    }

    #[test]
    fn serialises_the_stop_reason_in_snake_case() {
        let s = FlowStats {
            stop_reason: LoopStop::StepBudget,
            ..FlowStats::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["stop_reason"], "step_budget");
        let back: FlowStats = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}
