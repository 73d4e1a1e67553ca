//! The learning-rate schedule: linear warm-up, then cosine decay to a floor.
//!
//! The horizon is the planned number of optimizer steps of the whole run
//! (epochs x steps per epoch), never `--max-steps`: stopping a run early, or
//! resuming it, must not change the rate any step sees.

use serde::{Deserialize, Serialize};

/// Warm-up + cosine decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warm-up from lr / warmup to lr.
    pub warmup: usize,
    /// Planned optimizer steps of the run.
    pub total: usize,
    /// The floor, as a fraction of `lr`.
    pub min_ratio: f64,
}

impl Schedule {
    /// The rate of optimizer step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let t = ((step - self.warmup) as f64 / span as f64).min(1.0);
        let floor = self.lr * self.min_ratio;
        floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_the_floor() {
        let s = Schedule {
            lr: 1.0,
            warmup: 4,
            total: 14,
            min_ratio: 0.1,
        };
        assert_eq!(s.lr_at(0), 0.25);
        assert_eq!(s.lr_at(3), 1.0);
        assert_eq!(s.lr_at(4), 1.0);
        assert!((s.lr_at(9) - 0.55).abs() < 1e-12);
        assert!((s.lr_at(14) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(1000) - 0.1).abs() < 1e-12);
        for k in 4..14 {
            assert!(s.lr_at(k + 1) <= s.lr_at(k));
        }
        let no_warmup = Schedule { warmup: 0, ..s };
        assert_eq!(no_warmup.lr_at(0), 1.0);
    }
}
