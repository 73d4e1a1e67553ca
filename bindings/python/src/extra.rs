//! The presets, the bundled data and the teacher (`energyflow embed`).

use crate::convert::{array, to_py};
use crate::{lib_err, on_pool};
use clap::ValueEnum;
use energyflow::config::{EnergyConfig, Preset};
use energyflow::error::Error;
use energyflow::teacher::Teacher;
use energyflow::teacher::job::MAX_BATCH;
use energyflow::train::PairData;
use energyflow::train::data::BUNDLED_TEXTS;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::path::PathBuf;

/// The presets' names.
#[pyfunction]
pub fn presets() -> Vec<&'static str> {
    Preset::value_variants().iter().map(|p| p.name()).collect()
}

/// Preset `name`'s config, nested as a TOML file holds it, every field
/// present (an unset optional field is None).
#[pyfunction]
pub fn preset_config<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let preset = Preset::parse(name).map_err(lib_err)?;
    to_py(py, &EnergyConfig::preset(preset))
}

/// The bundled WordNet pairs: inputs and targets (float32 [4000, 384])
/// and the pair texts, a list of (input text, target text).
#[pyfunction]
pub fn bundled_data(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let data = PairData::bundled().map_err(lib_err)?;
    let texts = PyList::empty(py);
    for (i, line) in BUNDLED_TEXTS.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| lib_err(Error::Internal(format!("bundled texts, line {}: {e}", i + 1))))?;
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        texts.append((text("input"), text("target")))?;
    }
    (array(py, data.input, false)?, array(py, data.target, false)?, texts).into_pyobject(py)
}

/// Teacher embeddings of `texts` (float32 [N, D]) from the
/// sentence-transformers folder `model`, as `energyflow embed` computes
/// them: `batch_size` texts per forward (1..=4096), `max_length` tokens at
/// most (default: the folder's max_seq_length).
#[pyfunction]
#[pyo3(signature = (texts, model, *, batch_size=32, max_length=None))]
pub fn embed<'py>(
    py: Python<'py>,
    texts: Vec<String>,
    model: PathBuf,
    batch_size: usize,
    max_length: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    if !(1..=MAX_BATCH).contains(&batch_size) {
        return Err(PyValueError::new_err(format!(
            "batch_size {batch_size}: must be between 1 and {MAX_BATCH}"
        )));
    }
    let embedded = py.detach(|| {
        on_pool(|| {
            let teacher = Teacher::load(&model, max_length)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            Ok(teacher.embed(&refs, batch_size, &mut |_| {})?)
        })
    })?;
    array(py, embedded.matrix, false)
}
