//! `energyflow bench`: timing figures as JSON (see docs/BENCHMARKS.md).

use crate::bench;
use crate::config::{EnergyConfig, Preset};
use crate::device::{self, DeviceKind};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchWhat {
    /// Collection (grouping + segment softmax), forward + backward:
    /// optimized vs the naive baseline.
    Collect(CollectArgs),
}

#[derive(clap::Args, Debug)]
pub struct CollectArgs {
    /// Completed flows to aggregate.
    #[arg(long, default_value_t = 12_544)]
    pub flows: usize,
    /// Samples in the batch.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Preset giving the surface size (W x H).
    #[arg(long, value_enum, default_value = "experiment")]
    pub preset: Preset,
    /// Timed runs (after 3 warm-up runs).
    #[arg(long, default_value_t = 21)]
    pub runs: usize,
    /// Skip the naive baseline above this many flows.
    #[arg(long, default_value_t = 50_000)]
    pub naive_limit: usize,
    /// Print one JSON object (the only output format for now).
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchWhat::Collect(a) => {
            if a.flows == 0 || a.samples == 0 || a.runs == 0 {
                return Err(Error::input("bench collect: --flows, --samples and --runs must be > 0"));
            }
            let cfg = EnergyConfig::preset(a.preset);
            let dev = device::select(a.device)?;
            let r = bench::bench_collect(a.flows, a.samples, cfg.surface_cells(), a.runs, a.naive_limit, &dev)?;
            println!(
                "{}",
                serde_json::to_string(&r).map_err(|e| Error::Internal(e.to_string()))?
            );
            Ok(())
        }
    }
}
