//! Model weights on disk: safetensors written through burn-store, atomically,
//! plus the config they belong to. A checkpoint is a folder holding
//! `model.safetensors` and `checkpoint.json`; a training run folder holds
//! `latest/` and `best/` checkpoints (see `resolve`).

use crate::config::EnergyConfig;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::EnergyFlowModel;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use std::path::{Path, PathBuf};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const META_FILE: &str = "checkpoint.json";

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

/// Writes the model's weights to `path` atomically.
pub fn save_weights(model: &EnergyFlowModel, path: &Path) -> Result<()> {
    write_atomic(path, &weights_to_bytes(model)?)
}

/// Loads weights from safetensors bytes into `model` (shapes must match).
pub fn load_weights_bytes(model: &mut EnergyFlowModel, bytes: Vec<u8>, origin: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = model
        .load_from(&mut store)
        .map_err(|e| Error::input(format!("{}: cannot load weights ({e})", origin.display())))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(Error::input(format!(
            "{}: weights do not fit the model ({} errors, {} missing tensors{})",
            origin.display(),
            result.errors.len(),
            result.missing.len(),
            result
                .errors
                .first()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// Finds the checkpoint folder for a user-given path: a checkpoint folder
/// itself, or a run folder holding `best/` (preferred) or `latest/`.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join(META_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    for sub in ["best", "latest"] {
        if dir.join(sub).join(META_FILE).is_file() {
            return Ok(dir.join(sub));
        }
    }
    Err(Error::input(format!(
        "{}: not a checkpoint (no {META_FILE} there, nor in best/ or latest/)",
        dir.display()
    )))
}

/// The config stored in a checkpoint's `checkpoint.json` (key "config").
pub fn read_config(ckpt: &Path) -> Result<EnergyConfig> {
    let path = ckpt.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::input(format!("{}: not valid JSON ({e})", path.display())))?;
    let cfg: EnergyConfig = serde_json::from_value(v.get("config").cloned().unwrap_or_default())
        .map_err(|e| Error::input(format!("{}: field \"config\": {e}", path.display())))?;
    cfg.validate()?;
    Ok(cfg)
}

/// Loads a model and its config from a checkpoint (or run) folder.
pub fn load_model(dir: &Path, device: &Device) -> Result<(EnergyFlowModel, EnergyConfig)> {
    let ckpt = resolve(dir)?;
    let cfg = read_config(&ckpt)?;
    let mut model = EnergyFlowModel::new(&cfg, device, 0);
    let wpath = ckpt.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&wpath).map_err(|e| Error::io(&wpath, e))?;
    load_weights_bytes(&mut model, bytes, &wpath)?;
    Ok((model, cfg))
}

/// Architecture fields that must agree between a checkpoint and a config.
pub fn architecture_mismatch(a: &EnergyConfig, b: &EnergyConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name} ({x} vs {y})"));
        }
    };
    check(
        "lattice_width",
        a.lattice_width.to_string(),
        b.lattice_width.to_string(),
    );
    check(
        "lattice_height",
        a.lattice_height.to_string(),
        b.lattice_height.to_string(),
    );
    check(
        "input_embedding_dim",
        a.input_embedding_dim.to_string(),
        b.input_embedding_dim.to_string(),
    );
    check(
        "output_embedding_dim",
        a.output_embedding_dim.to_string(),
        b.output_embedding_dim.to_string(),
    );
    check(
        "mapper_hidden",
        a.mapper_hidden_dim().to_string(),
        b.mapper_hidden_dim().to_string(),
    );
    check(
        "neuron_hidden_dim",
        a.neuron_hidden_dim.to_string(),
        b.neuron_hidden_dim.to_string(),
    );
    check(
        "neuron_output_dim",
        a.neuron_output_dim.to_string(),
        b.neuron_output_dim.to_string(),
    );
    check(
        "carrier_hidden_dim",
        a.carrier_hidden_dim.to_string(),
        b.carrier_hidden_dim.to_string(),
    );
    check(
        "carrier_layers",
        a.carrier_layers.to_string(),
        b.carrier_layers.to_string(),
    );
    out
}
