//! What the GPU tests (tests/gpu/) share:
//! opening the device after a probe in a child process (so a driver that
//! crashes fails the tests instead of killing the test process), host
//! read-backs, and a count of the kernels a piece of work launches.

use burn::tensor::{Device, Tensor};
use burn_cubecl::cubecl::logging::{LaunchObservation, LaunchObserver};
use energyflow::device::{self, ADAPTER_VAR, DeviceKind};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, ThreadId};

/// The Vulkan device (probed in a child process once); fails, never skips.
pub fn gpu() -> Device {
    static GPU: OnceLock<Result<Device, String>> = OnceLock::new();
    let opened = GPU.get_or_init(|| {
        let mut probe = Command::new(env!("CARGO_BIN_EXE_energyflow"));
        probe.args(["probe-device", "--device", "vulkan"]);
        device::select_isolated(DeviceKind::Vulkan, probe).map_err(|e| e.to_string())
    });
    opened.clone().unwrap_or_else(|e| {
        panic!("{e} (a software adapter runs these tests with {ADAPTER_VAR}=Cpu; see scripts/gpu-tests.sh)")
    })
}

pub fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.618 + seed).sin() * 2.5).collect()
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    device::to_vec(t).unwrap()
}

/// The kernels launched from one thread, by name.
struct Launches {
    thread: ThreadId,
    names: Mutex<Vec<&'static str>>,
}

impl LaunchObserver for Launches {
    fn launched(&self, kernel: &'static str) {
        // The observer is process-wide; other tests launch from their own
        // threads (burn's Cube backend launches on the calling thread).
        if thread::current().id() == self.thread {
            self.names.lock().unwrap().push(kernel);
        }
    }
}

/// `f`'s result and the names of the kernels it launched, in order. One
/// count at a time: cubecl has a single observer slot for the process.
pub fn launches<T>(f: impl FnOnce() -> T) -> (T, Vec<&'static str>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let seen = Arc::new(Launches {
        thread: thread::current().id(),
        names: Mutex::new(Vec::new()),
    });
    let watching = LaunchObservation::new(seen.clone());
    let out = f();
    drop(watching);
    let names = seen.names.lock().unwrap().clone();
    (out, names)
}
