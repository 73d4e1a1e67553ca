//! `energyflow.load`, `Model` and `energyflow.evaluate`: a checkpoint's
//! model for inference (`model::infer_batches`, as `energyflow infer`
//! runs it) and evaluation (`train::eval`, as `energyflow eval`).

use crate::convert::{array, matrix, pair_data, to_py};
use crate::{Failure, lib_err, on_pool, select_device};
use burn::tensor::Device;
use energyflow::checkpoint::{self, Meta};
use energyflow::config::RuntimeConfig;
use energyflow::error::Error;
use energyflow::model::{EnergyFlowModel, ForwardSettings, infer_batches};
use energyflow::train::eval::{baselines, evaluate as evaluate_rows, evaluate_checkpoint_on};
use energyflow::train::{PairData, SplitName};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// A trained model, loaded once; `infer` may be called from several
/// threads at once.
#[pyclass(module = "energyflow", frozen)]
pub struct Model {
    model: EnergyFlowModel,
    meta: Meta,
    settings: ForwardSettings,
    device: Device,
}

/// Loads the model of a run folder (its `best/`) or a checkpoint folder.
#[pyfunction]
#[pyo3(signature = (path, *, device="cpu"))]
pub fn load(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<Model> {
    let dev = select_device(device)?;
    let runtime = RuntimeConfig::default();
    let (model, meta) = py.detach(|| on_pool(|| Ok(checkpoint::load_model(&path, runtime.kernels, &dev)?)))?;
    // The CLI's choices for this device: the spin policy, and the step's
    // bookkeeping on the host on the CPU, on the device on a GPU.
    let settings = ForwardSettings::for_runtime(&meta.config, &runtime, &dev);
    Ok(Model {
        model,
        meta,
        settings,
        device: dev,
    })
}

/// What `energyflow eval --checkpoint PATH --json` prints: the checkpoint
/// on its run's test split (of `data` when given: a path or a pair of
/// arrays), next to the baselines. A note about the split (not the run's
/// own, or one that also chose `best/`) becomes a `UserWarning`.
#[pyfunction]
#[pyo3(signature = (path, *, data=None))]
pub fn evaluate<'py>(py: Python<'py>, path: PathBuf, data: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let data = pair_data(data.as_ref())?;
    let runtime = RuntimeConfig::default();
    let dev = select_device("cpu")?;
    let (report, note) = py.detach(|| {
        on_pool(|| {
            Ok(evaluate_checkpoint_on(
                &path,
                data.as_ref(),
                &runtime,
                &dev,
                SplitName::Test,
                None,
            )?)
        })
    })?;
    if let Some(n) = note {
        PyErr::warn(
            py,
            &py.get_type::<pyo3::exceptions::PyUserWarning>(),
            &std::ffi::CString::new(n)?,
            1,
        )?;
    }
    to_py(py, &report)
}

#[pymethods]
impl Model {
    /// The model's config, nested as the TOML file holds it.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.meta.config)
    }

    #[getter]
    fn input_dim(&self) -> usize {
        self.meta.config.model.input_embedding_dim
    }

    #[getter]
    fn output_dim(&self) -> usize {
        self.meta.config.model.output_embedding_dim
    }

    /// The optimizer step of the checkpoint (None when it is not a
    /// training checkpoint).
    #[getter]
    fn step(&self) -> Option<usize> {
        self.meta.train.as_ref().map(|t| t.step)
    }

    /// The model over rows `x` ([N, E_in] or one row [E_in]; f16, f32 or
    /// f64) in batches of `batch_size` (default: the config's
    /// `train.batch_size`, as `energyflow infer`): float32 [N, E_out] (or
    /// [E_out]); with `return_stats`, also the flow statistics.
    #[pyo3(signature = (x, *, batch_size=None, return_stats=false))]
    fn infer<'py>(
        &self,
        py: Python<'py>,
        x: Bound<'py, PyAny>,
        batch_size: Option<usize>,
        return_stats: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (input, row) = matrix(&x, "x", true)?;
        let want = self.input_dim();
        if input.cols != want {
            return Err(PyValueError::new_err(format!(
                "x: rows of width {}, the model expects {want} (model.input_embedding_dim)",
                input.cols
            )));
        }
        if batch_size == Some(0) {
            return Err(PyValueError::new_err("batch_size 0: must be at least 1"));
        }
        let batch = batch_size.unwrap_or(self.meta.config.train.batch_size);
        let (output, stats) = py.detach(|| {
            on_pool(|| {
                let (out, stats) = infer_batches(&self.model, &self.settings, batch, &input, &self.device)?;
                out.check_finite("the model's output")?;
                Ok((out, stats))
            })
        })?;
        let output = array(py, output, row)?;
        if return_stats {
            Ok((output, to_py(py, &stats)?).into_pyobject(py)?.into_any())
        } else {
            Ok(output)
        }
    }

    /// The `eval` figures on the given rows (all of them): the model's
    /// `n`, `loss`, `mse`, `cosine`; `identity_cosine` (target = input;
    /// None when the widths differ) and `linear_cosine`, a ridge map fitted
    /// on these same rows (in-sample: what the best linear map reaches on
    /// them).
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        inputs: Bound<'py, PyAny>,
        targets: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (input, _) = matrix(&inputs, "inputs", false)?;
        let (target, _) = matrix(&targets, "targets", false)?;
        let data = PairData::from_matrices(input, target, "inputs/targets").map_err(lib_err)?;
        data.check_fits(&self.meta.config).map_err(lib_err)?;
        let rows: Vec<usize> = (0..data.len()).collect();
        let (m, b) = py.detach(|| {
            on_pool(|| {
                let m = evaluate_rows(&self.model, &self.meta.config, &self.settings, &data, &rows)?;
                let b = baselines(&data, &rows, &rows)?;
                Ok::<_, Failure>((m, b))
            })
        })?;
        let figures = [("loss", m.loss), ("mse", m.mse), ("cosine", m.cosine)];
        if let Some((name, v)) = figures.iter().find(|(_, v)| !v.is_finite()) {
            return Err(lib_err(Error::input(format!(
                "inputs/targets: the {name} is {v}: the model's outputs or the errors overflow on these rows"
            ))));
        }
        let d = PyDict::new(py);
        d.set_item("n", m.n)?;
        d.set_item("loss", m.loss)?;
        d.set_item("mse", m.mse)?;
        d.set_item("cosine", m.cosine)?;
        d.set_item("identity_cosine", b.identity_cosine)?;
        d.set_item("linear_cosine", b.linear_cosine)?;
        Ok(d.into_any())
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(input_dim={}, output_dim={}, step={})",
            self.input_dim(),
            self.output_dim(),
            self.step().map_or("None".to_string(), |s| s.to_string())
        )
    }
}
