//! The command-line interface: one file per command, each parsing its
//! arguments, calling the library and printing. This is the only code that
//! prints; every command returns `Result<()>` and `main` turns an error into
//! one line on stderr and its exit code (README, "Exit codes"). No command calls
//! another, and none holds policy: what a run does is decided in the
//! library (`train::Run`, `model::infer_batches`, `train::eval`, `bench`).

pub mod bench;
pub mod data;
pub mod embed;
pub mod eval;
pub mod infer;
pub mod inspect;
pub mod plot;
pub mod probe;
pub mod signals;
pub mod train;

use burn::tensor::Device;
use clap::ValueEnum;
use energyflow::config::{ConfigSource, MAX_THREADS, Preset, RuntimeConfig};
use energyflow::device::{self, DeviceKind};
use energyflow::error::{Error, Result};
use energyflow::flow::StepPath;
use energyflow::kernels::Kernels;
use std::path::PathBuf;
use std::process::Command;

/// Options shared by every command that builds a model config.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Preset to start from [default: tuned, the preset that learns on the
    /// bundled data; MODEL.md's debug preset ends below the identity
    /// baseline there (docs/QUALITY.md)].
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// TOML file whose keys override the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn source(&self) -> ConfigSource {
        ConfigSource {
            preset: self.preset,
            file: self.config.clone(),
            text: None,
        }
    }
}

/// Execution settings on the command line, shared by every command that
/// runs a model: each overrides the config file's `[runtime]` field (see
/// `config::RuntimeConfig`), and none is part of a run's identity.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// Compute device [default: runtime.device, else cpu].
    #[arg(long, value_enum)]
    pub device: Option<DeviceKind>,
    /// Threads of the CPU pool [default: runtime.threads, else one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Our fused kernels or burn's composed reference ops [default:
    /// runtime.kernels, else fused].
    #[arg(long, value_enum)]
    pub kernels: Option<Kernels>,
    /// Keep idle CPU workers spinning through a step (faster; false frees
    /// their cores between operations) [default: runtime.spin_wait, else true].
    #[arg(long, value_name = "BOOL")]
    pub spin_wait: Option<bool>,
    /// Where a propagation step's bookkeeping runs: on the host (one read
    /// of the positions per step) or on the device (a few counts) [default:
    /// runtime.step, else host on the CPU, device on a GPU].
    #[arg(long, value_enum)]
    pub step: Option<StepPath>,
}

impl RuntimeArgs {
    /// `base` (a config file's `[runtime]` section, or the defaults) with
    /// the flags given here on top, checked.
    pub fn over(&self, base: RuntimeConfig) -> Result<RuntimeConfig> {
        if let Some(t) = self.threads
            && !(1..=MAX_THREADS).contains(&t)
        {
            return Err(Error::input(format!(
                "--threads {t}: must be between 1 and {MAX_THREADS}"
            )));
        }
        Ok(RuntimeConfig {
            kernels: self.kernels.unwrap_or(base.kernels),
            spin_wait: self.spin_wait.unwrap_or(base.spin_wait),
            threads: self.threads.or(base.threads),
            device: self.device.unwrap_or(base.device),
            step: self.step.or(base.step),
        })
    }

    /// The settings of a command without a config file.
    pub fn resolve(&self) -> Result<RuntimeConfig> {
        self.over(RuntimeConfig::default())
    }

    /// The settings of a command with `config`: its file's `[runtime]`
    /// section under these flags.
    pub fn resolve_with(&self, config: &ConfigArgs) -> Result<RuntimeConfig> {
        self.over(config.source().load()?.runtime)
    }
}

/// The thread count a command asks for (`--threads`, else its config
/// file's `runtime.threads`); None for one thread per core. The binary
/// builds its pool with it before the command runs.
pub fn pool_threads(command: &super::Command) -> Result<Option<usize>> {
    use super::Command as C;
    Ok(match command {
        C::Train(a) => a.runtime.resolve_with(&a.config)?.threads,
        C::Infer(a) => a.runtime.resolve_with(&a.config)?.threads,
        C::Bench(a) => match &a.what {
            bench::BenchWhat::Step(s) => s.runtime.resolve_with(&s.config)?.threads,
            bench::BenchWhat::Collect(_) => None,
        },
        C::Eval(a) => a.runtime.resolve()?.threads,
        C::Inspect(a) => a.runtime.resolve()?.threads,
        C::Embed(_) | C::Data(_) | C::Plot(_) | C::ProbeDevice(_) => None,
    })
}

/// Prints `value` as one JSON line on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))?
    );
    Ok(())
}

/// The device for `--device`, tried first in a child process running the
/// hidden `probe-device` command of this same binary (see
/// `device::select_isolated`).
pub fn select_device(kind: DeviceKind) -> Result<Device> {
    let exe = std::env::current_exe().map_err(|e| Error::Internal(format!("finding this program's path: {e}")))?;
    let mut probe = Command::new(exe);
    probe.args([
        "probe-device",
        "--device",
        kind.to_possible_value().expect("no skipped variant").get_name(),
    ]);
    device::select_isolated(kind, probe)
}
