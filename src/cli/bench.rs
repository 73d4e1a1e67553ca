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
    /// Whole training steps of a preset on generated data: medians of the
    /// forward, backward, optimizer, end-of-batch and inference times.
    Step(StepArgs),
}

#[derive(clap::Args, Debug)]
pub struct StepArgs {
    /// Preset to time.
    #[arg(long, value_enum, default_value = "debug")]
    pub preset: Preset,
    /// TOML file whose keys override the preset.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Batch size (default: the preset's).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Print one JSON object (the only output format for now).
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
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
            print_json(&r)
        }
        BenchWhat::Step(a) => {
            if a.runs == 0 {
                return Err(Error::input("bench step: --runs must be > 0"));
            }
            let mut cfg = match &a.config {
                Some(p) => EnergyConfig::from_toml_file(p, a.preset)?,
                None => EnergyConfig::preset(a.preset),
            };
            if let Some(b) = a.batch {
                cfg.batch_size = b;
            }
            cfg.validate()?;
            let dev = device::select(a.device)?;
            print_json(&bench::bench_step(&cfg, a.preset.name(), a.runs, a.warmup, &dev)?)
        }
    }
}

fn print_json<T: serde::Serialize>(r: &T) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string(r).map_err(|e| Error::Internal(e.to_string()))?
    );
    Ok(())
}
