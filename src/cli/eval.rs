//! `energyflow eval`: a checkpoint on its held-out split, next to the
//! identity and linear (ridge) baselines.

use crate::checkpoint;
use crate::device::{self, DeviceKind};
use crate::error::{Error, Result};
use crate::train::data::bundled_path;
use crate::train::eval::{EvalReport, report};
use crate::train::{PairData, Split};
use burn::tensor::Device;
use std::path::{Path, PathBuf};

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
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

/// Evaluates the checkpoint at `dir` on the held-out split of `data` (or
/// of the data it records). Returns the report and a note for stderr when
/// the split is not the one the run held out.
pub fn report_for(dir: &Path, data: Option<&PairData>, dev: &Device) -> Result<(EvalReport, Option<String>)> {
    let (model, meta) = checkpoint::load_model(dir, dev)?;
    let loaded;
    let data = match (data, &meta.data) {
        (Some(d), _) => d,
        (None, Some(info)) => {
            loaded = PairData::from_origin(&info.origin)?;
            &loaded
        }
        (None, None) => {
            loaded = PairData::load(&bundled_path())?;
            &loaded
        }
    };
    crate::train::trainer::check_data_fits(&meta.config, data)?;
    let (split, note) = match &meta.data {
        Some(info) if info.n == data.len() => (Split::new(data.len(), info.val_fraction, info.seed)?, None),
        Some(info) => (
            Split::new(data.len(), info.val_fraction, info.seed)?,
            Some(format!(
                "{} has {} pairs, the run trained on {}: this held-out split is not the run's",
                data.origin,
                data.len(),
                info.n
            )),
        ),
        None => (
            Split::new(data.len(), meta.config.train.val_fraction, 0)?,
            Some("the checkpoint records no training data: held-out split of seed 0".to_string()),
        ),
    };
    Ok((report(&model, &meta.config, data, &split.train, &split.val)?, note))
}

/// Prints the report as one JSON line, or as a small table.
pub fn print_report(r: &EvalReport, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(r).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(());
    }
    let opt = |v: Option<f64>| v.map_or("n/a (widths differ)".to_string(), |v| format!("{v:.4}"));
    println!("held-out pairs      {}", r.n);
    println!("loss                {:.4}", r.loss);
    println!("mse                 {:.6}", r.mse);
    println!("cosine (model)      {:.4}", r.cosine);
    println!("cosine (identity)   {}", opt(r.identity_cosine));
    println!("cosine (linear)     {:.4}", r.linear_cosine);
    Ok(())
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let dev = device::select(args.device)?;
    let data = args.data.as_deref().map(PairData::load).transpose()?;
    let (r, note) = report_for(&args.checkpoint, data.as_ref(), &dev)?;
    if let Some(n) = note {
        eprintln!("energyflow eval: note: {n}");
    }
    print_report(&r, args.json)
}
