//! The command-line interface: one file per command. This is the only
//! place that prints; every command returns `Result<()>` and `main` turns an
//! error into one line on stderr and exit code 2 (user error) or 1.

pub mod bench;
pub mod data;
pub mod embed;
pub mod eval;
pub mod infer;
pub mod train;

use crate::config::{EnergyConfig, Preset};
use crate::error::Result;
use std::path::PathBuf;

/// Options shared by every command that builds a model config.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Preset to start from.
    #[arg(long, value_enum, default_value = "debug")]
    pub preset: Preset,
    /// TOML file whose keys override the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<EnergyConfig> {
        match &self.config {
            Some(path) => EnergyConfig::from_toml_file(path, self.preset),
            None => {
                let c = EnergyConfig::preset(self.preset);
                c.validate()?;
                Ok(c)
            }
        }
    }
}
