//! `energyflow bench`: timing figures (`bench` module), as a table or as one
//! JSON line with `--json` (see docs/BENCHMARKS.md).

use super::{ConfigArgs, RuntimeArgs, print_json};
use energyflow::bench;
use energyflow::config::Preset;
use energyflow::device::DeviceKind;
use energyflow::error::{Error, Result};

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
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Batch size (default: the config's train.batch_size).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
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
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchWhat::Collect(a) => {
            let dev = super::select_device(a.device)?;
            let r = bench::bench_collect(a.flows, a.samples, a.preset, a.runs, a.naive_limit, &dev)?;
            show(&r, a.json)
        }
        BenchWhat::Step(a) => {
            let loaded = a.config.source().load()?;
            let runtime = a.runtime.over(loaded.runtime)?;
            let dev = super::select_device(runtime.device)?;
            let name = a.config.preset.unwrap_or_default().name();
            let r = bench::bench_step(loaded.config, &runtime, name, a.batch, a.runs, a.warmup, &dev)?;
            show(&r, a.json)
        }
    }
}

/// One JSON line, or one "field  value" line per field.
fn show<T: serde::Serialize>(r: &T, json: bool) -> Result<()> {
    if json {
        return print_json(r);
    }
    let v = serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string()))?;
    if let serde_json::Value::Object(fields) = v {
        for (k, v) in fields {
            println!("{k:<24} {v}");
        }
    }
    Ok(())
}
