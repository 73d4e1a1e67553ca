//! `energyflow infer`: embeddings in, embeddings out (`model::infer_batches`),
//! flow statistics as one JSON line on stdout.

use super::{ConfigArgs, RuntimeArgs, print_json};
use energyflow::checkpoint;
use energyflow::config::resources::{self, Purpose};
use energyflow::error::{Error, Result};
use energyflow::io::{Read, StoreDtype, check_output, load_matrix, save_matrices};
use energyflow::model::{EnergyFlowModel, ForwardSettings, infer_batches};
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
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub fn run(args: &InferArgs) -> Result<()> {
    let runtime = args.runtime.resolve_with(&args.config)?;
    let dev = super::select_device(runtime.device)?;
    let mut reads = vec![Read {
        label: "--input",
        path: &args.input,
    }];
    // A folder: none of its files (checkpoint or run) may be replaced.
    if let Some(dir) = &args.checkpoint {
        reads.push(Read {
            label: "--checkpoint",
            path: dir,
        });
    }
    if let Some(file) = &args.config.config {
        reads.push(Read {
            label: "--config",
            path: file,
        });
    }
    check_output("--output", &args.output, &reads)?;
    // Config and input are checked before any weights are built or loaded.
    let ckpt = args.checkpoint.as_deref().map(checkpoint::resolve).transpose()?;
    let cfg = match &ckpt {
        Some(dir) => checkpoint::read_config(dir)?,
        None => args.config.source().load()?.config,
    };
    let input = load_matrix(&args.input, "input")?;
    if input.cols != cfg.model.input_embedding_dim {
        return Err(Error::input(format!(
            "{}: tensor \"input\" has width {}, the model expects {} (model.input_embedding_dim)",
            args.input.display(),
            input.cols,
            cfg.model.input_embedding_dim
        )));
    }
    // With a checkpoint, the config used is the one its weights came with
    // (a running train may have committed a newer checkpoint meanwhile).
    let (model, cfg) = match &ckpt {
        Some(dir) => {
            let (model, meta) = checkpoint::load_model(dir, runtime.kernels, &dev)?;
            (model, meta.config)
        }
        None => {
            resources::ensure_fits(&cfg, Purpose::Inference, 0.0)?;
            eprintln!(
                "energyflow infer: no --checkpoint given, using seeded random weights (seed {}, {})",
                args.seed,
                match (&args.config.config, args.config.preset) {
                    (Some(file), _) => format!("config {}", file.display()),
                    (None, p) => format!("preset {}", p.unwrap_or_default().name()),
                }
            );
            (EnergyFlowModel::new(&cfg, runtime.kernels, &dev, args.seed), cfg)
        }
    };
    let settings = ForwardSettings::for_runtime(&cfg, &runtime, &dev);
    let (output, stats) = infer_batches(&model, &settings, cfg.train.batch_size, &input, &dev)?;
    output.check_finite("the model's output (not written)")?;
    save_matrices(&args.output, &[("output", &output)], StoreDtype::F32)?;
    print_json(&stats)
}
