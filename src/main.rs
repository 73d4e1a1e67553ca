//! The `energyflow` binary: parse, dispatch to `cli::<command>`, render errors.
//!
//! Exit codes (README, "Exit codes"): 0 done; 2 bad input (an error the
//! library names as the user's); 70 an internal error, which is a bug: an
//! `Error::Internal`, or a panic in any code, ours or a dependency's,
//! caught here; 130 stopped by SIGINT, SIGTERM or SIGHUP (`cli::signals`),
//! after what had to be written was written. Whatever goes wrong, the user
//! reads one line on stderr; `--verbose` adds the details: a dependency's
//! full report, the panic's location.

mod cli;

// Training allocates and frees tensors of the same few sizes every step.
// glibc returns the large ones to the OS and faults them back in; so does
// mimalloc after its purge delay, unless told to keep them: page faults and
// the kernel's page clearing were a fifth of the main thread's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (include/mimalloc.h; the crate
/// names no constant for it). -1: freed memory stays with the process.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn keep_freed_memory() {
    // SAFETY: sets a process-wide integer option, before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Stack of rayon's workers: what the main thread gets by default, since
/// every command now runs on a worker.
const WORKER_STACK: usize = 8 << 20;

/// Runs `f` on a worker of rayon's global pool (built here with main-sized
/// stacks), the pool our kernels and Flex split their work over. Why: from
/// the main thread, every parallel operation hands all its work to the pool
/// and sleeps until a worker wakes it, so each one pays two thread wake-ups
/// and, with the main thread and two workers on two cores, the second half
/// of a split often started late. On a worker, an operation's first half
/// runs on the calling thread (the gain: docs/BENCHMARKS.md).
/// `threads` workers (None: one per core, or RAYON_NUM_THREADS).
fn on_pool<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    // Fails only if the pool already exists; then it is used as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK)
        .num_threads(threads.unwrap_or(0))
        .build_global();
    rayon::scope(|_| f())
}

use clap::{Parser, Subcommand};
use std::io::Write;
use std::sync::Mutex;

#[derive(Parser, Debug)]
#[command(
    name = "energyflow",
    version,
    about = "Energy Flow lattice models: train, evaluate, infer, embed, bench, plot, inspect"
)]
struct Cli {
    /// On an error, also print its details (a dependency's full report, a
    /// panic's location).
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model (default: the bundled WordNet pairs, tuned preset).
    Train(cli::train::TrainArgs),
    /// Evaluate a checkpoint on its held-out split, with baselines.
    Eval(cli::eval::EvalArgs),
    /// Run a model over embeddings: --input X.safetensors -> --output Y.safetensors.
    Infer(cli::infer::InferArgs),
    /// Timing benchmarks.
    Bench(cli::bench::BenchArgs),
    /// Teacher embeddings from text: --model DIR --input FILE -> --output X.safetensors (+ X.jsonl).
    Embed(cli::embed::EmbedArgs),
    /// Build the text side of the bundled datasets (see data/README.md).
    Data(cli::data::DataArgs),
    /// Learning curves of a run folder: PNG pictures and an index.html.
    Plot(cli::plot::PlotArgs),
    /// Pictures of one forward per row: energies, surface, flow paths, steps, density.
    Inspect(cli::inspect::InspectArgs),
    /// Tries a device and exits (what every --device does first, in a child process).
    #[command(hide = true)]
    ProbeDevice(cli::probe::ProbeArgs),
}

fn dispatch(command: &Command) -> energyflow::Result<()> {
    match command {
        Command::Train(a) => cli::train::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Infer(a) => cli::infer::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Embed(a) => cli::embed::run(a),
        Command::Data(a) => cli::data::run(a),
        Command::Plot(a) => cli::plot::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::ProbeDevice(a) => cli::probe::run(a),
    }
}

/// The first panic's message and location, kept by the quiet hook.
static PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

fn panic_message(info: &std::panic::PanicHookInfo) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Prints, ignoring a stderr that is gone (a hung-up terminal).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Exit code of a finished command.
const EXIT_DONE: i32 = 0;
/// Exit code of bad input: a file, a flag or a config the command refused.
const EXIT_BAD_INPUT: i32 = 2;
/// Exit code of an internal error, a bug (EX_SOFTWARE of sysexits.h).
const EXIT_INTERNAL: i32 = 70;
/// What an internal error's line says besides its message.
const BUG: &str = "internal error, a bug in energyflow (please report it; --verbose shows where)";

fn main() {
    keep_freed_memory();
    let args = Cli::parse();
    cli::signals::install();
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let mut first = PANIC.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert((panic_message(info), location));
    }));
    let outcome = std::panic::catch_unwind(|| {
        let threads = cli::pool_threads(&args.command)?;
        on_pool(threads, || dispatch(&args.command))
    });
    let code = match outcome {
        Ok(Ok(())) if cli::signals::stopped() => cli::signals::EXIT_STOPPED,
        Ok(Ok(())) => EXIT_DONE,
        Ok(Err(e)) => {
            let text = e.to_string();
            let line = energyflow::error::one_line(&text);
            if e.is_user() {
                say(&format!("energyflow: error: {line}"));
            } else {
                let line = line.strip_prefix("internal error: ").unwrap_or(&line);
                say(&format!("energyflow: error: {BUG}: {line}"));
            }
            if args.verbose {
                if text.lines().count() > 1 {
                    say(&text);
                }
                if let Some(d) = e.detail() {
                    say(d);
                }
            }
            if e.is_user() { EXIT_BAD_INPUT } else { EXIT_INTERNAL }
        }
        Err(_) => {
            let (msg, location) = PANIC
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_else(|| ("a panic without a message".to_string(), String::new()));
            say(&format!(
                "energyflow: error: {BUG}: {}",
                energyflow::error::one_line(&msg)
            ));
            if args.verbose {
                say(&format!("panicked at {location}:\n{msg}"));
            }
            EXIT_INTERNAL
        }
    };
    // Runs no destructors of other threads; the run lock is released by
    // the operating system when the process ends.
    std::process::exit(code);
}
