//! Keeping rayon's other workers awake through a stretch of fine-grained
//! parallel work (a training step, a forward pass on the CPU).
//!
//! A training step is hundreds of parallel operations (GEMM blocks, GRU
//! row blocks, row gathers) separated by short single-threaded stretches
//! (burn's elementwise ops). In each gap rayon's idle workers go to sleep,
//! and the next operation's first blocks run on the calling worker alone
//! until the sleeper has been woken: a scheduler trace put a quarter of
//! the step's single-worker time there. [`awake`] runs the other workers
//! in a loop that takes pool work as soon as it is queued and spins (with
//! a pause hint) while there is none, the wait policy of OpenMP runtimes
//! such as the one PyTorch uses. The spinning is counted ([`spin_seconds`])
//! so that CPU-use figures can leave it out.
//!
//! Not for long or I/O-bound stretches: the spinners hold their cores for
//! as long as the guarded closure runs.

use crate::config::RuntimeConfig;
use burn::tensor::Device;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long [`awake`] waits for its spinners to leave: they check their
/// stop flag every iteration, so only a descheduled one takes longer.
const LEAVE_WAIT: Duration = Duration::from_millis(5);

/// Nanoseconds the spinners have spent finding no work, process-wide.
static SPIN_NS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread is inside [`awake`] (a nested call adds nothing).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Seconds [`awake`]'s spinners have spent finding no work so far.
pub fn spin_seconds() -> f64 {
    SPIN_NS.load(Ordering::Relaxed) as f64 * 1e-9
}

/// Whether a run keeps the workers awake on `device`: when its execution
/// settings ask for it (`runtime.spin_wait`) and `device` is the CPU
/// (spinners would only burn cores while a GPU works).
pub fn wanted(runtime: &RuntimeConfig, device: &Device) -> bool {
    runtime.spin_wait && crate::device::is_cpu(device)
}

/// Runs `f` with the pool's other workers kept awake when `spin` is set.
/// Outside a rayon worker, with a pool of one thread, or nested in another
/// `awake`, it only runs `f`.
pub fn awake<R>(spin: bool, f: impl FnOnce() -> R) -> R {
    awake_with(spin, |_| f())
}

/// What the spinners of one [`awake`] share with it.
#[derive(Default)]
struct Spinners {
    stop: AtomicBool,
    /// How many are in their loop (for the tests).
    running: AtomicUsize,
}

/// [`awake`], handing `f` the spinners it started (None when it did not).
fn awake_with<R>(spin: bool, f: impl FnOnce(Option<&Arc<Spinners>>) -> R) -> R {
    let me = match rayon::current_thread_index() {
        Some(i) if spin && rayon::current_num_threads() > 1 && !INSIDE.get() => i,
        _ => return f(None),
    };
    let shared = Arc::new(Spinners::default());
    let theirs = Arc::clone(&shared);
    rayon::spawn_broadcast(move |ctx| {
        // The caller's own copy returns at once: run inside one of the
        // caller's waits it would never give the thread back.
        if ctx.index() != me {
            theirs.running.fetch_add(1, Ordering::SeqCst);
            spin_until(&theirs.stop);
            theirs.running.fetch_sub(1, Ordering::Release);
        }
    });
    // Stops the spinners however `f` ends, a panic included, and waits
    // (briefly) for those that started to leave, so that their spinning is
    // counted within the call: a spinner still running would add its idle
    // time to whatever is measured next.
    struct Release(Arc<Spinners>);
    impl Drop for Release {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::Release);
            let t = Instant::now();
            while self.0.running.load(Ordering::Acquire) > 0 && t.elapsed() < LEAVE_WAIT {
                std::hint::spin_loop();
            }
            INSIDE.set(false);
        }
    }
    INSIDE.set(true);
    let release = Release(shared);
    f(Some(&release.0))
}

/// Takes pool work until `stop` is set; the stretches with none are
/// added to [`SPIN_NS`].
fn spin_until(stop: &AtomicBool) {
    let mut idle_since: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        // Read before looking: a job found runs inside `yield_now`, and
        // its time is work, not spinning.
        let now = Instant::now();
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {
                if let Some(t) = idle_since.take() {
                    SPIN_NS.fetch_add((now - t).as_nanos() as u64, Ordering::Relaxed);
                }
            }
            Some(rayon::Yield::Idle) => {
                idle_since.get_or_insert(now);
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
            }
            None => return,
        }
    }
    if let Some(t) = idle_since {
        SPIN_NS.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
    }

    /// Integer work: the same sum however rayon splits it.
    fn work() -> u64 {
        (0..200_000u64).into_par_iter().map(|i| i * i % 1009).sum()
    }

    /// Waits up to two seconds for `cond`.
    fn eventually(cond: impl Fn() -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn the_other_worker_spins_while_f_runs_and_stops_after() {
        let p = pool(2);
        let before = spin_seconds();
        let (seen, shared) = p.install(|| {
            awake_with(true, |s| {
                let s = Arc::clone(s.expect("two workers: spinners started"));
                let seen = eventually(|| s.running.load(Ordering::SeqCst) == 1);
                // Parallel work inside still completes, stolen or not.
                assert_eq!(work(), work_serial());
                std::thread::sleep(Duration::from_millis(20));
                (seen, s)
            })
        });
        assert!(seen, "no spinner ran on the other worker");
        assert!(
            eventually(|| shared.running.load(Ordering::SeqCst) == 0),
            "spinner did not stop"
        );
        // Its idle time (most of the 20 ms) was counted.
        assert!(spin_seconds() - before > 0.005);
    }

    fn work_serial() -> u64 {
        (0..200_000u64).map(|i| i * i % 1009).sum()
    }

    #[test]
    fn no_spinners_when_off_nested_alone_or_outside_a_pool() {
        let p = pool(2);
        assert!(p.install(|| awake_with(false, |s| s.is_none())));
        let nested = p.install(|| {
            awake_with(true, |outer| {
                (outer.is_some(), awake_with(true, |inner| inner.is_none()))
            })
        });
        assert_eq!(nested, (true, true));
        assert!(pool(1).install(|| awake_with(true, |s| s.is_none())));
        assert!(awake_with(true, |s| s.is_none()));
        assert_eq!(p.install(|| awake(true, work)), work_serial());
    }

    #[test]
    fn a_panic_inside_stops_the_spinners() {
        let p = pool(2);
        let mut kept = None;
        let r = p.install(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                awake_with(true, |s| {
                    kept = s.cloned();
                    panic!("inside")
                })
            }))
        });
        assert!(r.is_err());
        let s = kept.expect("spinners started");
        assert!(s.stop.load(Ordering::SeqCst));
        assert!(eventually(|| s.running.load(Ordering::SeqCst) == 0));
        // The worker is no longer marked inside: a later call spins again.
        assert!(p.install(|| awake_with(true, |s| s.is_some())));
    }
}
