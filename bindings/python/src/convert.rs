//! Python values to the library's and back: numpy arrays to `io::Matrix`
//! (f16, f32 or f64, any memory order, checked as a file's tensors are),
//! matrices to float32 arrays, dicts to config TOML, serde values to dicts.

use crate::lib_err;
use energyflow::config::{ConfigSource, ConfigText, Preset};
use energyflow::io::Matrix;
use energyflow::train::{DataChoice, PairData};
use half::f16;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::path::PathBuf;

/// A numpy array of `label` as a row-major f32 matrix, with whether it
/// was one row [E] (`allow_row`) rather than [N, E].
pub fn matrix(obj: &Bound<'_, PyAny>, label: &str, allow_row: bool) -> PyResult<(Matrix, bool)> {
    let Ok(arr) = obj.cast::<PyUntypedArray>() else {
        return Err(PyValueError::new_err(format!(
            "{label}: expected a numpy array, got {}",
            obj.get_type().name()?
        )));
    };
    let shape = arr.shape().to_vec();
    let (rows, cols, row) = match shape[..] {
        [r, c] => (r, c, false),
        [c] if allow_row => (1, c, true),
        _ => {
            return Err(PyValueError::new_err(format!(
                "{label}: shape {shape:?}, expected 2-D [N, E]{}",
                if allow_row { " or one row [E]" } else { "" }
            )));
        }
    };
    let data: Vec<f32> = if let Ok(a) = arr.cast::<PyArrayDyn<f32>>() {
        a.readonly().as_array().iter().copied().collect()
    } else if let Ok(a) = arr.cast::<PyArrayDyn<f64>>() {
        a.readonly().as_array().iter().map(|v| *v as f32).collect()
    } else if let Ok(a) = arr.cast::<PyArrayDyn<f16>>() {
        a.readonly().as_array().iter().map(|v| v.to_f32()).collect()
    } else {
        return Err(PyValueError::new_err(format!(
            "{label}: dtype {}, expected float16, float32 or float64",
            arr.dtype()
        )));
    };
    let m = Matrix { rows, cols, data };
    // f64 values beyond f32's range became infinite: refused here too.
    m.check_values(label).map_err(lib_err)?;
    Ok((m, row))
}

/// A matrix as a float32 numpy array [rows, cols] (or [cols] for `row`).
pub fn array<'py>(py: Python<'py>, m: Matrix, row: bool) -> PyResult<Bound<'py, PyAny>> {
    if row {
        return Ok(m.data.into_pyarray(py).into_any());
    }
    let a = Array2::from_shape_vec((m.rows, m.cols), m.data).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py).into_any())
}

/// A serde value as Python objects (dicts, lists, floats...), through
/// JSON: the dict is the JSON line the CLI prints or writes.
pub fn to_py<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A path argument: str or os.PathLike.
pub fn path(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    obj.extract::<PathBuf>()
}

/// `preset` and `config` (a dict in the nested layout, or a path to a TOML
/// file) as the CLI's `--preset` and `--config`. A dict is written out as
/// TOML and read as a file would be, under the origin "config"; its None
/// values are left out (TOML has no null: the preset's value stays).
pub fn config_source(preset: Option<&str>, config: Option<&Bound<'_, PyAny>>) -> PyResult<ConfigSource> {
    let preset = preset.map(Preset::parse).transpose().map_err(lib_err)?;
    let mut source = ConfigSource {
        preset,
        file: None,
        text: None,
    };
    let Some(config) = config.filter(|c| !c.is_none()) else {
        return Ok(source);
    };
    if let Ok(dict) = config.cast::<PyDict>() {
        let py = config.py();
        let json: String = py
            .import("json")?
            .call_method1("dumps", (dict,))
            .map_err(|e| PyValueError::new_err(format!("config: not a dict of TOML values ({e})")))?
            .extract()?;
        let mut value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| PyValueError::new_err(format!("config: {e}")))?;
        drop_nulls(&mut value);
        let toml = toml::to_string(&value).map_err(|e| PyValueError::new_err(format!("config: {e}")))?;
        source.text = Some(ConfigText {
            origin: "config".to_string(),
            toml,
        });
    } else {
        source.file = Some(
            path(config).map_err(|_| PyValueError::new_err("config: expected a dict or the path of a TOML file"))?,
        );
    }
    Ok(source)
}

/// Removes the null values (and so the keys holding them) of `v`.
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The pairs `(inputs, targets)` given in memory.
pub fn pairs(obj: &Bound<'_, PyAny>, label: &str) -> PyResult<PairData> {
    let Some((a, b)) = obj
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .map(|t| (t.get_item(0), t.get_item(1)))
    else {
        return Err(PyValueError::new_err(format!(
            "{label}: expected a path or a pair (inputs, targets) of 2-D numpy arrays"
        )));
    };
    let (a, b) = (a?, b?);
    let (input, _) = matrix(&a, &format!("{label}: inputs"), false)?;
    let (target, _) = matrix(&b, &format!("{label}: targets"), false)?;
    PairData::from_matrices(input, target, label).map_err(lib_err)
}

/// `data=` of `train`: None, a path (or "synthetic", as `--data`), or a
/// pair of arrays.
pub fn data_choice(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<DataChoice>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(p) = path(obj) {
        return Ok(Some(DataChoice::parse(&p.to_string_lossy())));
    }
    Ok(Some(DataChoice::Pairs(Box::new(pairs(obj, "data")?))))
}

/// `data=` of `evaluate`: None, a path, or a pair of arrays.
pub fn pair_data(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<PairData>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(p) = path(obj) {
        return PairData::load(&p).map(Some).map_err(lib_err);
    }
    pairs(obj, "data").map(Some)
}
