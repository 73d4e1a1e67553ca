//! What a training run reports: one record per optimizer step and one per
//! validation (end of an epoch, every `train.validate_every_steps` steps,
//! or the end of a run that stopped inside an epoch), appended to `metrics.jsonl` as one JSON object per line, and read
//! back with [`read_records`].

use crate::error::{Error, Result};
use crate::flow::FlowStats;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `metrics.jsonl`, tagged by its `kind`.
// Records are made and written one at a time: boxing the larger variant
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// `"kind": "step"`: one optimizer step.
    Step(StepRecord),
    /// `"kind": "validation"`: one held-out validation.
    Validation(ValidationRecord),
}

impl Record {
    /// The optimizer step the record belongs to (steps done when validating).
    pub fn step(&self) -> usize {
        match self {
            Record::Step(r) => r.step,
            Record::Validation(r) => r.step,
        }
    }
}

/// One optimizer step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based number of this optimizer step.
    pub step: usize,
    /// 0-based epoch the step's batches came from.
    pub epoch: usize,
    #[serde(deserialize_with = "null_as_nan")]
    pub loss: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mse: f64,
    /// Mean output/target cosine of the step's training samples.
    #[serde(deserialize_with = "null_as_nan")]
    pub cosine: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub lr: f64,
    /// Global gradient norm before clipping.
    #[serde(deserialize_with = "null_as_nan")]
    pub grad_norm: f64,
    /// The input mapper's share: the norm of its gradients alone (0 when
    /// frozen). The four module norms' squares add up to grad_norm's.
    #[serde(default, deserialize_with = "null_as_nan")]
    pub grad_norm_mapper: f64,
    /// The SimpleNeuron's gradient norm.
    #[serde(default, deserialize_with = "null_as_nan")]
    pub grad_norm_neuron: f64,
    /// The carrier's (GRU and heads) gradient norm.
    #[serde(default, deserialize_with = "null_as_nan")]
    pub grad_norm_carrier: f64,
    /// The readout's gradient norm.
    #[serde(default, deserialize_with = "null_as_nan")]
    pub grad_norm_collector: f64,
    /// True when the step was skipped (non-finite loss or gradient norm).
    pub skipped: bool,
    /// Skipped steps so far in the run.
    pub skipped_total: usize,
    pub samples: usize,
    #[serde(deserialize_with = "null_as_nan")]
    pub samples_per_s: f64,
    /// The whole optimizer step.
    #[serde(deserialize_with = "null_as_nan")]
    pub step_ms: f64,
    /// The passes' forwards and losses, with the batch upload (the
    /// losses are read back once, after the last pass's backward).
    #[serde(deserialize_with = "null_as_nan")]
    pub forward_ms: f64,
    /// The passes' backward and gradient accumulation.
    #[serde(deserialize_with = "null_as_nan")]
    pub backward_ms: f64,
    /// Global clipping and the AdamW update.
    #[serde(deserialize_with = "null_as_nan")]
    pub optimizer_ms: f64,
    /// From the end of the propagation loop until the surface is ready:
    /// final projection, concatenation, collection (summed over passes).
    #[serde(deserialize_with = "null_as_nan")]
    pub end_of_batch_ms: f64,
    /// The collection alone (grouping + segment softmax), part of end_of_batch.
    #[serde(deserialize_with = "null_as_nan")]
    pub collect_ms: f64,
    /// The flow counters of the step's passes together.
    #[serde(flatten)]
    pub flows: FlowStats,
    /// Peak resident memory of the process so far.
    #[serde(deserialize_with = "null_as_nan")]
    pub peak_rss_mb: f64,
}

/// One validation on the held-out split: at an epoch's end, or at the end
/// of a run that stopped inside one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// 0-based epoch.
    pub epoch: usize,
    /// Optimizer steps done when validating.
    pub step: usize,
    /// False for a validation inside the epoch: a periodic one
    /// (`train.validate_every_steps`) or the last of a run that stopped
    /// inside it (max steps, Ctrl-C).
    pub complete: bool,
    /// Mean training loss of the epoch's steps (not skipped) so far.
    #[serde(deserialize_with = "null_as_nan")]
    pub train_loss: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub val_loss: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub val_mse: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub val_cosine: f64,
    pub val_n: usize,
    /// Across the held-out rows, the mean per-cell standard deviation of
    /// the mapped energies (`train::spread`).
    #[serde(default, deserialize_with = "null_as_nan")]
    pub val_mapped_std: f64,
    /// The same of the surface: near 0 while the mapped energies vary, the
    /// lattice loses the input.
    #[serde(default, deserialize_with = "null_as_nan")]
    pub val_surface_std: f64,
    /// The mean per-dimension standard deviation of the output embedding:
    /// near 0, the model gives every input the same output.
    #[serde(default, deserialize_with = "null_as_nan")]
    pub val_output_std: f64,
    /// True when this validation set a new best held-out loss.
    pub best: bool,
}

/// JSON has no NaN: serde_json writes a NaN (a skipped step's loss, the
/// training loss of an epoch without a finished step) as null. Read back,
/// null is NaN again, so every line the log writes is a record it reads.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Peak resident set size of this process in MB (Linux VmHWM; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) this process has used so far, in seconds,
/// from its CPU clock (nanoseconds; 0 where there is none).
pub fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    0.0
}

/// Appends records to `metrics.jsonl`.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens `path` for a run. A fresh run starts an empty file; a resumed
    /// run keeps the lines of steps up to `keep_until_step` (later ones
    /// belong to the part of the interrupted run that is redone).
    pub fn open(path: &Path, keep_until_step: Option<usize>) -> Result<Self> {
        let kept = match keep_until_step {
            Some(limit) => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let mut out = String::new();
                for line in text.lines() {
                    let step = serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()));
                    if step.is_some_and(|s| s as usize <= limit) {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                out
            }
            None => String::new(),
        };
        crate::io::write_atomic(path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record as a line and flushes it.
    pub fn write(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_string(record).map_err(|e| Error::Internal(e.to_string()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads the records of a `metrics.jsonl` file; a line that is not a record
/// is refused naming the file and the line number. A last line without its
/// newline is a record a running `train` is still appending: left out.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let text = crate::io::read_text(path)?;
    let whole = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    whole
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::input(format!(
                    "{}: line {}: not a metrics record ({e})",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::LoopStop;

    #[test]
    fn records_round_trip_with_their_kind_and_flat_flow_counters() {
        let step = Record::Step(StepRecord {
            step: 3,
            loss: 0.5,
            flows: FlowStats {
                flows_created: 10,
                completed_z0: 10,
                active_per_step: vec![10],
                stop_reason: LoopStop::NoActive,
                ..FlowStats::default()
            },
            ..StepRecord::default()
        });
        let val = Record::Validation(ValidationRecord {
            step: 3,
            val_cosine: 0.25,
            best: true,
            ..ValidationRecord::default()
        });
        let line = serde_json::to_string(&step).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kind"], "step");
        assert_eq!(v["flows_created"], 10);
        assert_eq!(v["stop_reason"], "no_active");
        assert!(v.get("flows").is_none(), "flattened: {line}");
        let line2 = serde_json::to_string(&val).unwrap();
        assert!(line2.contains("\"kind\":\"validation\""), "{line2}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut log = MetricsLog::open(&path, None).unwrap();
        log.write(&step).unwrap();
        log.write(&val).unwrap();
        assert_eq!(read_records(&path).unwrap(), vec![step.clone(), val]);
        // A resumed run keeps the lines up to its step only.
        let mut later = step.clone();
        if let Record::Step(r) = &mut later {
            r.step = 4;
        }
        let mut log = MetricsLog::open(&path, None).unwrap();
        log.write(&step).unwrap();
        log.write(&later).unwrap();
        drop(log);
        MetricsLog::open(&path, Some(3)).unwrap();
        assert_eq!(read_records(&path).unwrap(), vec![step]);
        // A NaN is written as null and read back as NaN.
        let nan = Record::Validation(ValidationRecord {
            step: 5,
            train_loss: f64::NAN,
            ..ValidationRecord::default()
        });
        let mut log = MetricsLog::open(&path, None).unwrap();
        log.write(&nan).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"train_loss\":null"));
        match &read_records(&path).unwrap()[..] {
            [Record::Validation(v)] => assert!(v.train_loss.is_nan() && v.step == 5),
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, "{\"kind\":\"nothing\"}\n").unwrap();
        let e = read_records(&path).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
