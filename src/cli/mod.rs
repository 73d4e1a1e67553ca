//! The command-line interface: one file per command, each parsing its
//! arguments, calling the library and printing. This is the only code that
//! prints; every command returns `Result<()>` and `main` turns an error into
//! one line on stderr and exit code 2 (user error) or 1. No command calls
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
pub mod train;

use burn::tensor::Device;
use clap::ValueEnum;
use energyflow::config::{ConfigSource, Preset};
use energyflow::device::{self, DeviceKind};
use energyflow::error::{Error, Result};
use std::path::PathBuf;
use std::process::Command;

/// Options shared by every command that builds a model config.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Preset to start from [default: debug].
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
        }
    }
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
