//! `energyflow eval`: a checkpoint on its held-out split, next to the
//! identity and linear (ridge) baselines (`train::eval`).

use super::{RuntimeArgs, print_json};
use energyflow::error::Result;
use energyflow::model::Lesion;
use energyflow::train::PairData;
use energyflow::train::SplitName;
use energyflow::train::eval::{EvalReport, evaluate_checkpoint_on};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint is used).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Data file; default: the data the checkpoint was trained on.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Evaluate the model with a lesion (`model::lesion`): shuffle-cells
    /// permutes each sample's mapped energies across the cells,
    /// shuffle-samples gives each sample another sample's surface. The
    /// baselines are unchanged.
    #[arg(long, value_enum)]
    pub lesion: Option<Lesion>,
    /// Which held-out rows: test (nothing was chosen on them: the figure to
    /// report) or validation (the rows that chose best/).
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitName,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// The report as a small table.
fn print_table(r: &EvalReport) {
    let opt = |v: Option<f64>| v.map_or("n/a (widths differ)".to_string(), |v| format!("{v:.4}"));
    println!("split               {} ({} pairs)", r.split.name(), r.n);
    if let Some(step) = r.step {
        println!("checkpoint step     {step}");
    }
    println!("loss                {:.4}", r.loss);
    println!("mse                 {:.6}", r.mse);
    println!("cosine (model)      {:.4}", r.cosine);
    println!("cosine (identity)   {}", opt(r.identity_cosine));
    println!("cosine (linear)     {:.4}", r.linear_cosine);
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let runtime = args.runtime.resolve()?;
    let dev = super::select_device(runtime.device)?;
    let data = args.data.as_deref().map(PairData::load).transpose()?;
    let (r, note) = evaluate_checkpoint_on(&args.checkpoint, data.as_ref(), &runtime, &dev, args.split, args.lesion)?;
    if let Some(n) = note {
        eprintln!("energyflow eval: note: {n}");
    }
    if args.json {
        print_json(&r)
    } else {
        print_table(&r);
        Ok(())
    }
}
