//! `energyflow._core`, the compiled half of the Python package
//! (bindings/python/python/energyflow wraps it): the main crate's library
//! as the CLI uses it (`train::Run`, `checkpoint::load_model`,
//! `model::infer_batches`, `train::eval`, `teacher::Teacher`), with numpy
//! arrays and dicts in and out. No second implementation: every decision
//! is the library's; this layer converts, releases the GIL around long
//! work, and maps errors to Python's exception classes.
//!
//! Not for printing policy: the notes a run produces reach Python only
//! when `progress=True` asks for them.

mod convert;
mod extra;
mod model;
mod run;

use energyflow::device::DeviceKind;
use energyflow::error::Error;
use pyo3::exceptions::{PyFileExistsError, PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

// The binary's allocator and setting (src/main.rs says why): the same
// speed through Python.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (as src/main.rs).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Stack of rayon's workers, as the binary's (src/main.rs).
const WORKER_STACK: usize = 8 << 20;

/// A failure of work done without the GIL: the library's error, or a
/// panic caught (its message).
pub(crate) enum Failure {
    Lib(Error),
    Panic(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Lib(e)
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Lib(e) => lib_err(e),
            Failure::Panic(msg) => PyRuntimeError::new_err(format!("internal error (a panic): {msg}")),
        }
    }
}

/// The Python exception for a library error, with its one-line message:
/// a missing path `FileNotFoundError`, a folder holding a run
/// `FileExistsError`, a bug `RuntimeError`, other I/O `OSError`, and every
/// other bad input `ValueError`.
pub(crate) fn lib_err(e: Error) -> PyErr {
    let msg = e.to_string();
    let inner = match e {
        Error::Detailed { error, .. } => *error,
        other => other,
    };
    match inner {
        Error::NotFound(_) => PyFileNotFoundError::new_err(msg),
        Error::RunExists(_) => PyFileExistsError::new_err(msg),
        Error::Internal(_) => PyRuntimeError::new_err(msg),
        Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Io { .. } => PyOSError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// Runs `f` on a worker of rayon's global pool, as the binary runs every
/// command (src/main.rs, `on_pool`: an operation's first half then runs
/// on the calling thread), catching a panic.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> Result<R, Failure> + Send) -> Result<R, Failure> {
    static POOL: Once = Once::new();
    POOL.call_once(|| {
        // Fails only if the pool already exists; then it is used as it is.
        let _ = rayon::ThreadPoolBuilder::new().stack_size(WORKER_STACK).build_global();
    });
    catch_unwind(AssertUnwindSafe(|| rayon::scope(|_| f()))).unwrap_or_else(|p| Err(Failure::Panic(panic_message(&p))))
}

/// A panic's message, when it carries one.
pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

/// `device="cpu"` or `"vulkan"`.
pub(crate) fn device_kind(name: &str) -> PyResult<DeviceKind> {
    match name {
        "cpu" => Ok(DeviceKind::Cpu),
        "vulkan" => Ok(DeviceKind::Vulkan),
        other => Err(PyValueError::new_err(format!(
            "device \"{other}\": expected \"cpu\" or \"vulkan\""
        ))),
    }
}

/// The device `name` asks for.
pub(crate) fn select_device(name: &str) -> PyResult<burn::tensor::Device> {
    let kind = device_kind(name)?;
    energyflow::device::select(kind).map_err(lib_err)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // SAFETY: sets a process-wide integer option (as src/main.rs does).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(extra::presets, m)?)?;
    m.add_function(wrap_pyfunction!(extra::preset_config, m)?)?;
    m.add_function(wrap_pyfunction!(extra::bundled_data, m)?)?;
    m.add_function(wrap_pyfunction!(extra::embed, m)?)?;
    m.add_function(wrap_pyfunction!(run::train, m)?)?;
    m.add_function(wrap_pyfunction!(model::load, m)?)?;
    m.add_function(wrap_pyfunction!(model::evaluate, m)?)?;
    m.add_class::<model::Model>()?;
    Ok(())
}
