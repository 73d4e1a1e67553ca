//! `energyflow probe-device` (hidden): tries a device in this process and
//! exits 0, or prints the one-line reason and exits 2. Every `--device`
//! other than the CPU is first tried this way in a child process
//! ([`super::select_device`]), so a driver that crashes takes only the child.

use energyflow::device::{self, DeviceKind};
use energyflow::error::Result;

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    #[arg(long, value_enum)]
    pub device: DeviceKind,
}

pub fn run(args: &ProbeArgs) -> Result<()> {
    device::select(args.device).map(|_| ())
}
