//! Checkpoints on disk.
//!
//! A checkpoint is a folder holding `checkpoint.json` (format version, the
//! config, the training state and the names of its weight files), the model
//! weights as safetensors (written through burn-store) and, for training
//! checkpoints, the AdamW state (burn's burnpack format). A training run
//! folder holds `latest/` and `best/` (see [`resolve`]).
//!
//! Saving is atomic as a whole: the weight files get names carrying the
//! step (`model-00000120.safetensors`), each is written to a temporary file
//! and renamed, and only then is `checkpoint.json` replaced, again by a
//! rename. That last rename is the commit point: a crash at any moment
//! leaves either the old checkpoint or the new one, never a mix. Weight
//! files no longer referenced are removed afterwards.
//!
//! Everything read back is untrusted (`check.rs`): `checkpoint.json`'s
//! fields and the optimizer state's tensors are checked before use.
//!
//! Randomness needs no saved generator state: every random stream of a run
//! (split, shuffles, dropout, exploration noise) is derived from the run's
//! seed and counters (`train::data::mix`), which the JSON holds.

mod check;

pub use check::check_optimizer;

use crate::config::resources::{self, Purpose};
use crate::config::{EnergyConfig, RuntimeConfig};
use crate::error::{Error, Result, one_line};
use crate::io::write_atomic;
use crate::kernels::Kernels;
use crate::model::EnergyFlowModel;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const META_FILE: &str = "checkpoint.json";
/// Version of the checkpoint layout; bumped on incompatible changes.
/// Format 2 nests the config in [model], [flow] and [train] sections.
pub const FORMAT: u32 = 2;

/// Counters and settings that make a training run resumable exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Seed every random stream is derived from.
    pub seed: u64,
    /// Optimizer steps taken (skipped ones included).
    pub step: usize,
    /// Current epoch (0-based) and the next micro-batch within it.
    pub epoch: usize,
    pub batch_in_epoch: usize,
    /// Steps skipped because the loss or the gradient norm was not finite.
    pub skipped: usize,
    /// Lowest held-out loss so far, and the step it was measured at.
    pub best_val_loss: Option<f64>,
    pub best_step: Option<usize>,
    /// Planned optimizer steps of the run (the schedule's horizon).
    pub total_steps: usize,
    /// Running sum and count of the current epoch's training losses.
    pub epoch_loss_sum: f64,
    pub epoch_loss_count: usize,
}

/// What the run was trained on, so `eval` can rebuild the held-out split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// File path, or "synthetic:..." for generated data.
    pub origin: String,
    /// Pairs in the file.
    pub n: usize,
    pub val_fraction: f64,
    /// The test split's fraction; None in checkpoints written before the
    /// test split existed (their held-out rows also chose `best/`).
    #[serde(default)]
    pub test_fraction: Option<f64>,
    /// Seed of the split.
    pub seed: u64,
}

/// Contents of `checkpoint.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub format: u32,
    pub config: EnergyConfig,
    /// Weights file name, relative to the checkpoint folder.
    pub weights: String,
    /// Optimizer state file (training checkpoints only).
    #[serde(default)]
    pub optimizer: Option<String>,
    #[serde(default)]
    pub train: Option<TrainState>,
    #[serde(default)]
    pub data: Option<DataInfo>,
    /// How the session that wrote it executed (kernels, spinning, threads,
    /// device): for the record only, not part of the run. None in
    /// checkpoints written before `[runtime]` existed whose config held no
    /// such settings.
    #[serde(default)]
    pub runtime: Option<RuntimeConfig>,
}

/// Serialises the model's weights to safetensors bytes.
pub fn weights_to_bytes(model: &EnergyFlowModel) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| Error::Internal(format!("saving weights: {e}")))?;
    store
        .get_bytes()
        .map_err(|e| Error::Internal(format!("saving weights: {e}")))
}

/// Loads weights from safetensors bytes into `model`: every tensor must be
/// there with its shape, and nothing else. A refusal names the first
/// problem and counts the rest; the whole list is the `--verbose` detail.
pub fn load_weights_bytes(model: &mut EnergyFlowModel, bytes: Vec<u8>, origin: &Path) -> Result<()> {
    check_finite_weights(&bytes, origin)?;
    // Partial and unvalidated: we read the result ourselves rather than
    // pass on burn's multi-line report.
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .allow_partial(true)
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| Error::input_quoting(format!("{}: cannot load weights", origin.display()), &e.to_string()))?;
    let mut problems: Vec<String> = result.errors.iter().map(|e| one_line(&e.to_string())).collect();
    problems.extend(result.missing.iter().map(|(path, _)| format!("missing tensor {path}")));
    problems.extend(result.unused.iter().map(|path| format!("unexpected tensor {path}")));
    if problems.is_empty() {
        return Ok(());
    }
    let more = match problems.len() {
        1 => String::new(),
        n => format!(" (and {} more problem(s); --verbose lists them)", n - 1),
    };
    Err(Error::input(format!(
        "{}: weights do not fit the model: {}{more}",
        origin.display(),
        problems[0]
    ))
    .with_detail(problems.join("\n")))
}

/// Refuses a weights file holding NaN or an infinity (a model that could
/// only produce NaN), naming the tensor. Other problems are burn-store's.
fn check_finite_weights(bytes: &[u8], origin: &Path) -> Result<()> {
    let Ok(st) = safetensors::SafeTensors::deserialize(bytes) else {
        return Ok(());
    };
    for (name, view) in st.tensors() {
        let finite = match view.dtype() {
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
            _ => true,
        };
        if !finite {
            return Err(Error::input(format!(
                "{}: tensor {name} holds a non-finite value; these weights cannot be used",
                origin.display()
            )));
        }
    }
    Ok(())
}

/// Writes a checkpoint into `dir` (created if needed), atomically (see the
/// module docs). `optimizer` is the burnpack bytes of the optimizer state.
pub fn save(dir: &Path, model: &EnergyFlowModel, optimizer: Option<&[u8]>, mut meta: Meta) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tag = meta.train.as_ref().map_or(0, |t| t.step);
    meta.format = FORMAT;
    meta.weights = format!("model-{tag:08}.safetensors");
    write_atomic(&dir.join(&meta.weights), &weights_to_bytes(model)?)?;
    meta.optimizer = match optimizer {
        Some(bytes) => {
            let name = format!("optimizer-{tag:08}.bpk");
            write_atomic(&dir.join(&name), bytes)?;
            Some(name)
        }
        None => None,
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomic(&dir.join(META_FILE), &json)?;
    // Only after the commit point: drop files the new JSON no longer names.
    drop_unnamed(dir, &[meta.weights.as_str(), meta.optimizer.as_deref().unwrap_or("")]);
    Ok(())
}

/// Removes the weight and optimizer files of `dir` not in `keep`; returns
/// their names.
fn drop_unnamed(dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let ours = name.starts_with("model-") || name.starts_with("optimizer-");
            if ours && !keep.contains(&name.as_str()) && std::fs::remove_file(entry.path()).is_ok() {
                removed.push(name);
            }
        }
    }
    removed.sort();
    removed
}

/// Removes what a killed save left in checkpoint folder `dir`: weight and
/// optimizer files its `checkpoint.json` does not name (all of them when it
/// has none yet). Leaves everything when the JSON cannot be read. Only for
/// a folder no other process is writing (the run lock). Returns the names.
pub fn remove_unreferenced(dir: &Path) -> Vec<String> {
    if !dir.join(META_FILE).exists() {
        return drop_unnamed(dir, &[]);
    }
    match read_meta(dir) {
        Ok(meta) => drop_unnamed(dir, &[meta.weights.as_str(), meta.optimizer.as_deref().unwrap_or("")]),
        Err(_) => Vec::new(),
    }
}

/// Finds the checkpoint folder for a user-given path: a checkpoint folder
/// itself, or a run folder holding `best/` (preferred) or `latest/`.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join(META_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    for sub in crate::train::plan::names::CHECKPOINTS {
        if dir.join(sub).join(META_FILE).is_file() {
            return Ok(dir.join(sub));
        }
    }
    let msg = format!(
        "{}: not a checkpoint (no {META_FILE} there, nor in best/ or latest/)",
        dir.display()
    );
    Err(if dir.exists() {
        Error::input(msg)
    } else {
        Error::NotFound(msg)
    })
}

/// Reads and checks `checkpoint.json` of the checkpoint folder `ckpt`.
pub fn read_meta(ckpt: &Path) -> Result<Meta> {
    let path = ckpt.join(META_FILE);
    parse_meta(&crate::io::read_text(&path)?, &path)
}

/// Parses and checks the text of a `checkpoint.json` read from `path`.
pub fn parse_meta(text: &str, path: &Path) -> Result<Meta> {
    let invalid = |e: serde_json::Error| Error::input(format!("{}: not a valid checkpoint file ({e})", path.display()));
    // The version first: another format's fields would not parse.
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let version: Version = serde_json::from_str(text).map_err(invalid)?;
    if version.format != FORMAT {
        return Err(Error::input(format!(
            "{}: checkpoint format {} is not supported (this build reads format {FORMAT}; retrain with this build)",
            path.display(),
            version.format
        )));
    }
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
    migrate_runtime(&mut value);
    let meta: Meta = serde_json::from_value(value).map_err(invalid)?;
    meta.config
        .validate()
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    check::check_meta(&meta, path)?;
    Ok(meta)
}

/// Moves the execution settings that checkpoints written before
/// `[runtime]` existed kept in their config (`flow.fused_kernels`,
/// `flow.spin_wait`) into the `runtime` record, where they are now kept
/// for the record only. (`model.mapper_layer_norm`, the old name of
/// `model.mapper_collector_layer_norm`, is read by a serde alias.)
fn migrate_runtime(meta: &mut serde_json::Value) {
    let Some(flow) = meta.pointer_mut("/config/flow").and_then(|f| f.as_object_mut()) else {
        return;
    };
    let fused = flow.remove("fused_kernels").and_then(|v| v.as_bool());
    let spin = flow.remove("spin_wait").and_then(|v| v.as_bool());
    if fused.is_none() && spin.is_none() {
        return;
    }
    if let Some(m) = meta.as_object_mut()
        && m.get("runtime").is_none_or(|r| r.is_null())
    {
        let defaults = RuntimeConfig::default();
        let old = RuntimeConfig {
            kernels: match fused {
                Some(false) => Kernels::Composed,
                Some(true) => Kernels::Fused,
                None => defaults.kernels,
            },
            spin_wait: spin.unwrap_or(defaults.spin_wait),
            ..defaults
        };
        m.insert(
            "runtime".to_string(),
            serde_json::to_value(old).unwrap_or(serde_json::Value::Null),
        );
    }
}

/// The config stored in a checkpoint.
pub fn read_config(ckpt: &Path) -> Result<EnergyConfig> {
    Ok(read_meta(ckpt)?.config)
}

/// Reads the bytes of a file the checkpoint names.
pub fn read_part(ckpt: &Path, name: &str) -> Result<Vec<u8>> {
    let path = ckpt.join(name);
    crate::io::read_file(&path)
}

/// How often a reader starts over when a checkpoint changed under it.
const READ_ATTEMPTS: usize = 100;

/// Loads a model and its metadata from a checkpoint (or run) folder; the
/// model runs on `kernels` (an execution choice of the caller's).
///
/// Safe beside a `train` writing the folder: the weights read are those
/// the `checkpoint.json` read names (a file name carries its step and is
/// never rewritten with other contents), and when the writer committed a
/// newer checkpoint and removed those weights between the two reads, the
/// read starts over from the new `checkpoint.json`.
pub fn load_model(dir: &Path, kernels: Kernels, device: &Device) -> Result<(EnergyFlowModel, Meta)> {
    let mut attempt = 0;
    loop {
        let ckpt = resolve(dir)?;
        let meta = read_meta(&ckpt)?;
        match model_from(&ckpt, &meta, kernels, device) {
            Ok(model) => return Ok((model, meta)),
            Err(e) if e.is_not_found() && attempt + 1 < READ_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The model of checkpoint folder `ckpt` (described by `meta`) on
/// `device`, running on `kernels`.
pub fn model_from(ckpt: &Path, meta: &Meta, kernels: Kernels, device: &Device) -> Result<EnergyFlowModel> {
    resources::ensure_fits(&meta.config, Purpose::Inference, 0.0)?;
    // The seed only draws initial weights, which the file then replaces.
    let mut model = EnergyFlowModel::new(&meta.config, kernels, device, 0);
    let bytes = read_part(ckpt, &meta.weights)?;
    load_weights_bytes(&mut model, bytes, &ckpt.join(&meta.weights))?;
    Ok(model)
}
