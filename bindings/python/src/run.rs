//! `energyflow.train`: `train::Run` as `energyflow train` drives it, with
//! the callback and Python's signals in place of the progress bar and the
//! binary's signal handler.
//!
//! The run goes on a worker of rayon's pool (as the binary runs it); the
//! calling thread waits for its records with the GIL released, and for
//! each one takes the GIL, calls `callback(record)` and checks Python's
//! signals, while the run waits. A callback that raises, or Ctrl-C
//! (`KeyboardInterrupt`), raises the run's stop flag before the next step
//! starts: the run checkpoints `latest/` as on the CLI's Ctrl-C, validates,
//! and `train` raises that exception. No signal handler is installed.

use crate::convert::{config_source, data_choice};
use crate::{Failure, lib_err, on_pool, select_device};
use energyflow::train::{Event, Run, RunRequest, Start};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How often the waiting thread checks Python's signals between records.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// What the run's thread tells the calling thread.
enum Msg {
    /// A line of `metrics.jsonl` (JSON); the run waits for the reply.
    Record(String),
    /// A note about how the run was set up.
    Note(String),
    /// The run ended: its closing `eval` line (JSON), or why not.
    Done(Result<String, Failure>),
}

#[pyfunction]
#[pyo3(signature = (out, *, preset=None, config=None, data=None, epochs=None, max_steps=None, seed=None, resume=false, overwrite=false, device="cpu", callback=None, progress=false))]
#[allow(clippy::too_many_arguments)]
pub fn train<'py>(
    py: Python<'py>,
    out: PathBuf,
    preset: Option<&str>,
    config: Option<Bound<'py, PyAny>>,
    data: Option<Bound<'py, PyAny>>,
    epochs: Option<usize>,
    max_steps: Option<usize>,
    seed: Option<u64>,
    resume: bool,
    overwrite: bool,
    device: &str,
    callback: Option<Py<PyAny>>,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if resume && overwrite {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "resume and overwrite: pass one of them, not both",
        ));
    }
    let source = config_source(preset, config.as_ref())?;
    let mut runtime = source.load().map_err(lib_err)?.runtime;
    runtime.device = crate::device_kind(device)?;
    let dev = select_device(device)?;
    let mut req = RunRequest::new(
        out,
        match (resume, overwrite) {
            (true, _) => Start::Resume,
            (false, true) => Start::Overwrite,
            (false, false) => Start::Fresh,
        },
    );
    req.config = source;
    req.runtime = runtime;
    req.data = data_choice(data.as_ref())?;
    req.epochs = epochs;
    req.seed = seed;

    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Msg>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let (done, raised) = std::thread::scope(|s| {
        let (req, dev, stop) = (&req, &dev, &stop);
        s.spawn(move || {
            let tx2 = tx.clone();
            let result = on_pool(move || {
                let mut run = Run::open(req, dev)?;
                for note in run.notes.drain(..) {
                    let _ = tx2.send(Msg::Note(note));
                }
                let mut on_event = |e: Event| {
                    if let Event::Logged(rec) = e
                        && let Ok(line) = serde_json::to_string(rec)
                        && tx2.send(Msg::Record(line)).is_ok()
                    {
                        // The reply: the stop flag is set (or not) before
                        // the next step starts.
                        let _ = ack_rx.recv();
                    }
                };
                run.train(max_steps, stop, &mut on_event)?;
                if stop.load(Ordering::SeqCst) {
                    // Stopped by an exception, which `train` raises.
                    return Ok(String::new());
                }
                let report = run.final_report(dev)?;
                serde_json::to_string(&report).map_err(|e| energyflow::Error::Internal(e.to_string()).into())
            });
            let _ = tx.send(Msg::Done(result));
        });
        let callback = callback.as_ref();
        py.detach(move || {
            let mut raised: Option<PyErr> = None;
            let done = loop {
                match rx.recv_timeout(SIGNAL_POLL) {
                    Ok(Msg::Done(r)) => break r,
                    Ok(Msg::Note(n)) => {
                        if progress {
                            Python::attach(|py| say(py, &format!("energyflow train: {n}")));
                        }
                    }
                    Ok(Msg::Record(line)) => {
                        Python::attach(|py| {
                            if raised.is_none()
                                && let Err(e) = on_record(py, &line, callback, progress)
                            {
                                raised = Some(e);
                                stop.store(true, Ordering::SeqCst);
                            }
                        });
                        let _ = ack_tx.send(());
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => Python::attach(|py| {
                        if raised.is_none()
                            && let Err(e) = py.check_signals()
                        {
                            raised = Some(e);
                            stop.store(true, Ordering::SeqCst);
                        }
                    }),
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        break Err(Failure::Panic("the training thread ended without a result".into()));
                    }
                }
            };
            (done, raised)
        })
    });
    // The exception that stopped the run comes first; then the run's own.
    if let Some(e) = raised {
        return Err(e);
    }
    let report = done?;
    py.import("json")?.call_method1("loads", (report,))
}

/// One record: to the callback (a dict), to stderr with `progress`, then
/// Python's signals.
fn on_record(py: Python<'_>, line: &str, callback: Option<&Py<PyAny>>, progress: bool) -> PyResult<()> {
    let record = py.import("json")?.call_method1("loads", (line,))?;
    if progress && record.get_item("kind")?.extract::<String>()? == "validation" {
        let get = |k: &str| record.get_item(k).and_then(|v| v.extract::<f64>());
        say(
            py,
            &format!(
                "energyflow train: step {}: validation loss {:.4}, cosine {:.4}",
                get("step")?,
                get("val_loss")?,
                get("val_cosine")?
            ),
        );
    }
    if let Some(cb) = callback {
        cb.call1(py, (record,))?;
    }
    py.check_signals()
}

/// A line on Python's `sys.stderr` (which a notebook shows).
fn say(py: Python<'_>, line: &str) {
    let _ = py
        .import("sys")
        .and_then(|sys| sys.getattr("stderr"))
        .and_then(|err| err.call_method1("write", (format!("{line}\n"),)));
}
