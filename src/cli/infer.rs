//! `energyflow infer`: embeddings in, embeddings out, flow statistics as one
//! JSON line on stdout.

use super::ConfigArgs;
use crate::checkpoint;
use crate::device::{self, DeviceKind};
use crate::error::{Error, Result};
use crate::flow::FlowStats;
use crate::io::{Matrix, StoreDtype, load_matrix, save_matrices};
use crate::model::{EnergyFlowModel, ForwardOptions, Workspace};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InferArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// safetensors file with tensor "input" [N, E_in] (f32 or f16).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write tensor "output" [N, E_out] (f32).
    #[arg(long)]
    pub output: PathBuf,
    /// Checkpoint (or training run) folder; without it, seeded random
    /// weights. A checkpoint carries its own config, so --preset and
    /// --config are refused with it rather than silently ignored.
    #[arg(long, conflicts_with_all = ["preset", "config"])]
    pub checkpoint: Option<PathBuf>,
    /// Seed of the random weights (without --checkpoint).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

pub fn run(args: &InferArgs) -> Result<()> {
    let dev = device::select(args.device)?;
    // Config and input are checked before any weights are built or loaded.
    let ckpt = args.checkpoint.as_deref().map(checkpoint::resolve).transpose()?;
    let cfg = match &ckpt {
        Some(dir) => checkpoint::read_config(dir)?,
        None => args.config.load()?,
    };
    let input = load_matrix(&args.input, "input")?;
    if input.cols != cfg.input_embedding_dim {
        return Err(Error::input(format!(
            "{}: tensor \"input\" has width {}, the model expects {} (input_embedding_dim)",
            args.input.display(),
            input.cols,
            cfg.input_embedding_dim
        )));
    }
    let model = match &ckpt {
        Some(dir) => checkpoint::load_model(dir, &dev)?.0,
        None => {
            eprintln!(
                "energyflow infer: no --checkpoint given, using seeded random weights (seed {}, preset {})",
                args.seed,
                args.config.preset.name()
            );
            EnergyFlowModel::new(&cfg, &dev, args.seed)
        }
    };
    let (output, stats) = infer_matrix(&model, &cfg, &input, &dev)?;
    save_matrices(&args.output, &[("output", &output)], StoreDtype::F32)?;
    let line = serde_json::to_string(&stats).map_err(|e| Error::Internal(e.to_string()))?;
    println!("{line}");
    Ok(())
}

/// Runs the model over all rows of `input` in batches of `cfg.batch_size`.
pub fn infer_matrix(
    model: &EnergyFlowModel,
    cfg: &crate::EnergyConfig,
    input: &Matrix,
    dev: &burn::tensor::Device,
) -> Result<(Matrix, FlowStats)> {
    let mut ws = Workspace::default();
    let opts = ForwardOptions::inference(cfg);
    let mut out = Vec::with_capacity(input.rows * cfg.output_embedding_dim);
    let mut stats = FlowStats::default();
    for start in (0..input.rows).step_by(cfg.batch_size) {
        let end = (start + cfg.batch_size).min(input.rows);
        let rows = input.data[start * input.cols..end * input.cols].to_vec();
        let x = device::matrix(rows, end - start, input.cols, dev);
        let f = model.forward(cfg, x, &mut ws, &opts)?;
        out.extend(device::to_vec(f.output)?);
        stats.absorb(&f.stats);
    }
    Ok((
        Matrix {
            rows: input.rows,
            cols: cfg.output_embedding_dim,
            data: out,
        },
        stats,
    ))
}
