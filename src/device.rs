//! Backend and device selection (Flex on CPU by default, Vulkan with the
//! `vulkan` or `wgpu` cargo feature), the probe that tries a GPU in a child
//! process first, and the few host <-> device conversions the engine needs.
//!
//! Those conversions are the only place where data crosses between the host
//! and the device, so they count what crosses ([`Transfers`], per thread: a
//! forward and a training step run on the calling thread). On a GPU every
//! read waits for the queue to drain, which is why `bench step` reports them.
//!
//! Not for choosing kernels or policies per device: that is the model's.

use crate::error::{Error, Result, one_line};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;
use std::cell::Cell;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Which compute device a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's Flex backend on the CPU.
    #[default]
    Cpu,
    /// burn's wgpu backend on Vulkan; needs the `vulkan` cargo feature
    /// (SPIR-V shaders) or the `wgpu` one (WGSL shaders through naga).
    Vulkan,
}

/// cubecl's own adapter selector. Setting it is how a user asks for an
/// adapter explicitly, a software one (`Cpu`) included.
pub const ADAPTER_VAR: &str = "CUBECL_WGPU_DEFAULT_DEVICE";

/// How long a probe may take: a first kernel compiles in well under a
/// second on a GPU and in seconds on a software driver; a hung driver must
/// not hang the command.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// The device for `kind`, tried in this process: a driver that crashes
/// takes the process with it (use [`select_isolated`] where that matters).
/// A software Vulkan adapter (device type CPU) is refused unless
/// [`ADAPTER_VAR`] is set; no adapter, a failing first kernel or a wrong
/// result become an error.
pub fn select(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Vulkan => gpu::vulkan(),
    }
}

/// [`select`], after `probe` has done the same selection in a child
/// process and exited 0. Drivers have crashed the process inside their
/// shader compiler (Mesa's lavapipe on cubecl's SPIR-V: a segmentation
/// fault no `catch_unwind` sees); in the child such a death becomes an
/// error. `probe` must run `select(kind)` and exit non-zero with one line
/// on stderr when it fails (the binary's hidden `probe-device` command).
/// The CPU, and a build without a GPU backend, need no probe.
pub fn select_isolated(kind: DeviceKind, probe: Command) -> Result<Device> {
    if kind != DeviceKind::Cpu && gpu::BUILT {
        run_probe(probe, PROBE_TIMEOUT).map_err(|e| match e {
            Error::Input(m) => Error::input(format!("--device vulkan: {m}")),
            other => other,
        })?;
    }
    select(kind)
}

/// Runs `probe` to its end (killing it after `timeout`): Ok on exit 0,
/// else an error quoting the last line it wrote on stderr, or naming the
/// signal that killed it. Its whole stderr goes into the detail.
pub fn run_probe(mut probe: Command, timeout: Duration) -> Result<()> {
    use wait_timeout::ChildExt;
    let mut child = probe
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Internal(format!("starting the device probe {probe:?}: {e}")))?;
    // Read while it runs so a chatty driver cannot fill the pipe and stall it.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let waited = child.wait_timeout(timeout);
    let status = match waited {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::input(format!(
                "the device probe did not finish within {timeout:?} (a hung driver?)"
            )));
        }
    };
    let text = reader.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let e = match status.code() {
        // It refused, in its own words (the binary's "energyflow: error: ...").
        Some(_) => {
            let last = text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            let said = last.strip_prefix("energyflow: error: ").unwrap_or(last);
            let said = said.strip_prefix("--device vulkan: ").unwrap_or(said);
            Error::input(if said.is_empty() {
                format!("the device probe failed ({status})")
            } else {
                one_line(said)
            })
        }
        // Killed by a signal: the driver crashed.
        None => Error::input(format!(
            "the graphics driver crashed in the device probe ({status}); run with --device cpu"
        )),
    };
    Err(if text.trim().is_empty() {
        e
    } else {
        e.with_detail(text.trim())
    })
}

#[cfg(gpu)]
mod gpu {
    use super::{ADAPTER_VAR, Device, Error, Result, Tensor, one_line};
    use burn::tensor::wgpu::{WgpuBackend, wgpu::DeviceType};
    use std::sync::OnceLock;

    pub const BUILT: bool = true;

    /// How this build hands its shaders to the driver.
    const SHADERS: &str = if cfg!(feature = "vulkan") { "SPIR-V" } else { "WGSL" };

    /// The device `open` gave, with its adapter in words (name, driver,
    /// kind, shaders), or why there is none: opened once per process
    /// (burn registers a runtime once; a second registration is an error).
    static OPENED: OnceLock<std::result::Result<(Device, String), String>> = OnceLock::new();

    /// The Vulkan device.
    pub fn vulkan() -> Result<Device> {
        OPENED
            .get_or_init(open)
            .clone()
            .map(|(device, _)| device)
            .map_err(|m| Error::input(format!("--device vulkan: {m}")))
    }

    /// The opened adapter in words; None before `vulkan` has opened one.
    pub fn adapter() -> Option<String> {
        OPENED.get()?.as_ref().ok().map(|(_, adapter)| adapter.clone())
    }

    fn open() -> std::result::Result<(Device, String), String> {
        let (device, setup) = Device::wgpu_options()
            .graphics_api(WgpuBackend::Vulkan)
            .init_with_setup()
            .map_err(|e| {
                format!(
                    "no usable Vulkan adapter found on this machine ({})",
                    one_line(&e.to_string())
                )
            })?;
        let info = setup.adapter.get_info();
        // wgpu prefers a hardware adapter, so a CPU one here means there is
        // no other. It is far slower than the Flex backend and some drivers
        // crash on cubecl's shaders: used only when asked for by name.
        if info.device_type == DeviceType::Cpu && std::env::var_os(ADAPTER_VAR).is_none() {
            return Err(format!(
                "the only Vulkan adapter is a software one ({}, {}), slower than --device cpu; \
                 set {ADAPTER_VAR}=Cpu to use it anyway",
                info.name, info.driver_info
            ));
        }
        probe(&device)?;
        let adapter = format!(
            "{} ({}, {:?}, {SHADERS})",
            info.name, info.driver_info, info.device_type
        );
        Ok((device, adapter))
    }

    /// A first reduction and matmul: burn panics inside a first op when the
    /// adapter cannot run it; the panic becomes an error.
    fn probe(device: &Device) -> std::result::Result<(), String> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(|| {
            let a = Tensor::<2>::from_floats([[1.0f32, 2.0]], device);
            let b = Tensor::<2>::from_floats([[3.0f32], [4.0]], device);
            let sum: f32 = a.clone().sum().into_scalar();
            let dot: f32 = a.matmul(b).sum().into_scalar();
            (sum, dot)
        });
        std::panic::set_hook(hook);
        match result {
            Ok((3.0, 11.0)) => Ok(()),
            Ok(got) => Err(format!(
                "the Vulkan adapter computed a wrong result in a probe ({got:?})"
            )),
            Err(_) => Err("the Vulkan adapter failed to run a first kernel".to_string()),
        }
    }
}

#[cfg(not(gpu))]
mod gpu {
    use super::{Device, Error, Result};

    pub const BUILT: bool = false;

    pub fn adapter() -> Option<String> {
        None
    }

    pub fn vulkan() -> Result<Device> {
        Err(Error::input(
            "--device vulkan: this binary was built without the `vulkan` feature (cargo build --release --features vulkan)",
        ))
    }
}

impl DeviceKind {
    /// The name as written in configs and flags.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Vulkan => "vulkan",
        }
    }
}

/// What `device` runs on, in words, for a benchmark's record: "cpu
/// (Flex)", or "vulkan: " and the adapter (name, driver, kind, shaders).
pub fn describe(device: &Device) -> String {
    if is_cpu(device) {
        return "cpu (Flex)".into();
    }
    format!("vulkan: {}", gpu::adapter().unwrap_or_else(|| "not opened".into()))
}

/// Whether `device` is the CPU (Flex), with or without autodiff.
pub fn is_cpu(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// Host <-> device transfers made through this module's helpers on the
/// current thread since it started (see the module docs). Differences of
/// two readings measure a piece of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Transfers {
    /// Reads back to the host (each one waits for the device).
    pub reads: u64,
    pub read_bytes: u64,
    /// Uploads from the host.
    pub writes: u64,
    pub write_bytes: u64,
}

impl std::ops::Sub for Transfers {
    type Output = Transfers;

    fn sub(self, o: Transfers) -> Transfers {
        Transfers {
            reads: self.reads - o.reads,
            read_bytes: self.read_bytes - o.read_bytes,
            writes: self.writes - o.writes,
            write_bytes: self.write_bytes - o.write_bytes,
        }
    }
}

thread_local! {
    static TRANSFERS: Cell<Transfers> = const { Cell::new(Transfers { reads: 0, read_bytes: 0, writes: 0, write_bytes: 0 }) };
}

/// This thread's transfer counters.
pub fn transfers() -> Transfers {
    TRANSFERS.with(Cell::get)
}

fn count(read: bool, bytes: usize) {
    TRANSFERS.with(|c| {
        let mut t = c.get();
        if read {
            t.reads += 1;
            t.read_bytes += bytes as u64;
        } else {
            t.writes += 1;
            t.write_bytes += bytes as u64;
        }
        c.set(t);
    });
}

/// Uploads `data` (counted).
fn upload<const D: usize, K: burn::tensor::kind::Basic>(data: TensorData, device: &Device) -> Tensor<D, K> {
    count(false, data.as_bytes().len());
    Tensor::from_data(data, device)
}

/// Reads `t` back (counted: the bytes the device sent, before conversion).
fn download<const D: usize, K: burn::tensor::kind::Basic>(t: Tensor<D, K>) -> TensorData {
    let data = t.into_data();
    count(true, data.as_bytes().len());
    data
}

/// A float tensor [rows, cols] from host data.
pub fn matrix(data: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    upload(TensorData::new(data, [rows, cols]), device)
}

/// A float tensor of any shape from host data (`data.len()` = the product of `shape`).
pub fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    upload(TensorData::new(data, shape), device)
}

/// A learned parameter of any shape from host data (`Param::from_data`,
/// counted like every upload).
pub fn param<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> burn::module::Param<Tensor<D>> {
    let data = TensorData::new(data, shape);
    count(false, data.as_bytes().len());
    burn::module::Param::from_data(data, device)
}

/// A float vector from host data.
pub fn vector(data: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = data.len();
    upload(TensorData::new(data, [n]), device)
}

/// An index vector from host data.
pub fn indices(idx: &[u32], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    let n = v.len();
    upload(TensorData::new(v, [n]), device)
}

/// Reads a float tensor back to the host (one device synchronisation).
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    download(t)
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Internal(format!("reading a tensor back: {e:?}")))
}

/// Reads an int tensor back to the host (one device synchronisation).
pub fn ints_to_vec<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>> {
    download(t)
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| Error::Internal(format!("reading an int tensor back: {e:?}")))
}

/// Kernel launches on a GPU backend while it lives, counted by cubecl's
/// process-wide launch observer (every launch of every thread: the counts
/// are meant for a process that runs one piece of work, as `bench`
/// does). On the CPU burn exposes no count: [`Self::stop`] gives None.
pub struct LaunchCount(
    #[cfg(gpu)]
    Option<(
        std::sync::Arc<Launches>,
        burn_cubecl::cubecl::logging::LaunchObservation,
    )>,
);

#[cfg(gpu)]
#[derive(Default)]
struct Launches(std::sync::atomic::AtomicU64);

#[cfg(gpu)]
impl burn_cubecl::cubecl::logging::LaunchObserver for Launches {
    fn launched(&self, _kernel: &'static str) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl LaunchCount {
    /// Starts counting the launches on `dev` (nothing on the CPU).
    pub fn start(dev: &Device) -> Self {
        #[cfg(gpu)]
        {
            if is_cpu(dev) {
                return LaunchCount(None);
            }
            let seen = std::sync::Arc::new(Launches::default());
            let watching = burn_cubecl::cubecl::logging::LaunchObservation::new(seen.clone());
            LaunchCount(Some((seen, watching)))
        }
        #[cfg(not(gpu))]
        {
            let _ = dev;
            LaunchCount()
        }
    }

    /// The launches counted; None on the CPU.
    pub fn stop(self) -> Option<u64> {
        #[cfg(gpu)]
        {
            self.0.map(|(seen, watching)| {
                drop(watching);
                seen.0.load(std::sync::atomic::Ordering::Relaxed)
            })
        }
        #[cfg(not(gpu))]
        {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn a_probe_that_exits_0_passes() {
        run_probe(sh("exit 0"), PROBE_TIMEOUT).unwrap();
    }

    #[test]
    fn a_refusing_probe_is_quoted_in_one_line_with_its_stderr_as_detail() {
        let e = run_probe(
            sh("echo 'driver noise' >&2; echo 'energyflow: error: --device vulkan: no adapter here' >&2; exit 2"),
            PROBE_TIMEOUT,
        )
        .unwrap_err();
        assert!(e.is_user());
        assert_eq!(e.to_string(), "no adapter here");
        assert!(e.detail().unwrap().contains("driver noise"));
    }

    #[test]
    fn a_probe_killed_by_a_segfault_becomes_a_one_line_user_error() {
        let e = run_probe(sh("kill -SEGV $$"), PROBE_TIMEOUT).unwrap_err();
        let m = e.to_string();
        assert!(e.is_user());
        assert!(m.contains("crashed") && m.contains("SIGSEGV"), "{m}");
        assert_eq!(m.lines().count(), 1, "{m}");
    }

    #[test]
    fn a_hung_probe_is_killed_at_the_timeout() {
        let e = run_probe(sh("exec sleep 30"), Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("did not finish within 200ms"), "{e}");
    }

    #[test]
    fn transfers_are_counted_per_thread_in_bytes_sent() {
        let dev = Device::flex();
        let t0 = transfers();
        let m = matrix(vec![1.0; 6], 2, 3, &dev);
        let i = indices(&[1, 2, 3], &dev);
        assert_eq!(to_vec(m).unwrap(), vec![1.0; 6]);
        assert_eq!(ints_to_vec(i).unwrap(), vec![1, 2, 3]);
        let d = transfers() - t0;
        // Index uploads are i64 on the host side.
        assert_eq!((d.writes, d.write_bytes), (2, 24 + 24));
        assert_eq!(d.reads, 2);
        assert!(d.read_bytes >= 24 + 12, "{d:?}");
        // Another thread's transfers are its own.
        std::thread::spawn(move || {
            to_vec(vector(vec![0.0; 4], &dev)).unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(transfers() - t0, d);
    }

    #[test]
    fn the_cpu_needs_no_probe() {
        // A probe that would fail is never run for the CPU.
        select_isolated(DeviceKind::Cpu, sh("exit 3")).unwrap();
    }
}
