//! SIGINT (Ctrl-C), SIGTERM and SIGHUP, for every command.
//!
//! One handler for the process, installed by `main` before a command runs:
//! a signal removes the temporary files of the writes in flight (every file
//! is replaced by a rename, so none is torn) and exits with
//! [`EXIT_STOPPED`]. A training run asks for a graceful stop instead while
//! its loop runs ([`graceful`]): the first signal raises the flag the loop
//! checks between steps (the run then checkpoints, validates and ends;
//! `main` exits with [`EXIT_STOPPED`] because [`stopped`] is true), a second
//! one exits at once. Only the binary installs it: the library (and the
//! Python package over it) never touches signal handlers.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit code of a command stopped by a signal (128 + SIGINT, as shells
/// report it), after whatever it had to write was written.
pub const EXIT_STOPPED: i32 = 130;

/// Raised by the first signal of a graceful phase.
static STOP: AtomicBool = AtomicBool::new(false);
/// True while a training loop can stop between steps.
static GRACEFUL: AtomicBool = AtomicBool::new(false);

/// Installs the process's handler. A failure (a handler already there)
/// leaves the default behaviour: the signal ends the process.
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if GRACEFUL.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
            // Writes to a hung-up terminal may fail: ignored.
            let _ = writeln!(
                std::io::stderr(),
                "\nenergyflow train: stopping after this step (signal again to quit at once)"
            );
            return;
        }
        STOP.store(true, Ordering::SeqCst);
        energyflow::io::remove_temp_files();
        std::process::exit(EXIT_STOPPED);
    });
}

/// Starts a graceful phase: until [`end_graceful`], a first signal only
/// raises the returned flag.
pub fn graceful() -> &'static AtomicBool {
    GRACEFUL.store(true, Ordering::SeqCst);
    &STOP
}

/// Ends the graceful phase: a signal from now on exits at once.
pub fn end_graceful() {
    GRACEFUL.store(false, Ordering::SeqCst);
}

/// True when a signal asked the command to stop.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}
