//! `[runtime]`: how a run executes, apart from what it computes.
//!
//! The kernels, the spinning of idle workers, the thread count, the
//! device and where the step's bookkeeping runs change the speed (and the
//! float rounding, within the tested tolerances), not the run: they are not part of [`super::EnergyConfig`],
//! a resume may change them, and a checkpoint records them for the record
//! only (`checkpoint.json`'s `runtime`). Each has a flag of the same name
//! on the commands that run a model (`--kernels`, `--spin-wait`,
//! `--threads`, `--device`, `--step`), which overrides the config file's
//! section.
//!
//! Not for anything that changes the weights' shapes or the flows' rules:
//! those are `[model]` and `[flow]`.

use crate::device::DeviceKind;
use crate::error::{Error, Result};
use crate::flow::StepPath;
use crate::kernels::Kernels;
use serde::{Deserialize, Serialize};

/// The most threads a run may ask for (far above any machine we know: a
/// typo such as 20000 is refused rather than spawned).
pub const MAX_THREADS: usize = 1024;

/// Execution settings of a command (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// "fused" (our kernels, the default) or "composed" (burn's reference
    /// ops, for comparison).
    #[serde(default)]
    pub kernels: Kernels,
    /// Keep the CPU pool's other workers spinning through a forward or a
    /// training step (`pool::awake`), so each parallel operation starts on
    /// every core instead of waiting for a sleeping thread to wake; false
    /// lets them sleep between operations (their cores free for other
    /// programs, the step a few percent slower). Default true.
    #[serde(default = "yes")]
    pub spin_wait: bool,
    /// Threads of the CPU pool; None (default) = one per core.
    #[serde(default)]
    pub threads: Option<usize>,
    /// The compute device: "cpu" (default) or "vulkan".
    #[serde(default)]
    pub device: DeviceKind,
    /// Where a propagation step decides the flows' fates and the
    /// collection runs: "host" (one read of the positions per step) or
    /// "device" (one read of a few counts per step); None (default) = the
    /// host on the CPU, the device on a GPU. Same flows either way.
    #[serde(default)]
    pub step: Option<StepPath>,
}

fn yes() -> bool {
    true
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            kernels: Kernels::Fused,
            spin_wait: true,
            threads: None,
            device: DeviceKind::Cpu,
            step: None,
        }
    }
}

impl RuntimeConfig {
    /// Refuses a thread count outside 1..=[`MAX_THREADS`], naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.threads
            && !(1..=MAX_THREADS).contains(&t)
        {
            return Err(Error::config(
                "runtime.threads",
                t,
                format!("allowed range is 1..={MAX_THREADS}"),
            ));
        }
        Ok(())
    }

    /// The same settings with the thread count written out (`threads`
    /// threads when None): what a checkpoint records and a resume compares.
    pub fn resolved(&self, threads: usize) -> RuntimeConfig {
        RuntimeConfig {
            threads: Some(self.threads.unwrap_or(threads)),
            ..self.clone()
        }
    }

    /// The fields whose values differ from `other`'s, as
    /// "runtime.field (a vs b)" with `a` from `self`.
    pub fn differences(&self, other: &RuntimeConfig) -> Vec<String> {
        super::table_differences("runtime", &super::section_table(self), &super::section_table(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fused_spinning_all_cores_on_the_cpu() {
        let r: RuntimeConfig = toml::from_str("").unwrap();
        assert_eq!(r, RuntimeConfig::default());
        assert_eq!(r.kernels, Kernels::Fused);
        assert!(r.spin_wait && r.threads.is_none() && r.device == DeviceKind::Cpu);
    }

    #[test]
    fn differences_name_the_fields() {
        let a = RuntimeConfig::default().resolved(2);
        let b = RuntimeConfig {
            kernels: Kernels::Composed,
            threads: Some(1),
            ..RuntimeConfig::default()
        };
        let d = a.differences(&b);
        assert_eq!(
            d,
            vec![
                "runtime.kernels (\"fused\" vs \"composed\")".to_string(),
                "runtime.threads (2 vs 1)".to_string()
            ]
        );
        assert!(a.differences(&RuntimeConfig::default().resolved(2)).is_empty());
    }

    #[test]
    fn a_thread_count_out_of_range_is_refused_naming_the_field() {
        for t in [0, MAX_THREADS + 1] {
            let r = RuntimeConfig {
                threads: Some(t),
                ..RuntimeConfig::default()
            };
            let e = r.validate().unwrap_err().to_string();
            assert!(e.contains("runtime.threads") && e.contains(&t.to_string()), "{e}");
        }
        RuntimeConfig {
            threads: Some(3),
            ..RuntimeConfig::default()
        }
        .validate()
        .unwrap();
    }
}
