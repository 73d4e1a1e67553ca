//! `energyflow embed`: texts in, teacher embeddings out (`teacher::EmbedJob`:
//! safetensors plus a JSONL sidecar with the texts), a progress bar on
//! stderr and one JSON summary line on stdout (see docs/EMBED.md).

use super::print_json;
use energyflow::error::{Error, Result};
use energyflow::io::StoreDtype;
use energyflow::teacher::{DEFAULT_BATCH, EmbedJob, TextFormat};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// sentence-transformers model folder (config.json, tokenizer.json,
    /// model.safetensors, modules.json, 1_Pooling/config.json).
    #[arg(long)]
    pub model: PathBuf,
    /// UTF-8 text file: one text per line, or a TSV of input<TAB>target pairs.
    #[arg(long)]
    pub input: PathBuf,
    /// safetensors file to write: tensor "input" [N, dim], plus "target" for
    /// pairs. The texts go to the same path with extension .jsonl.
    #[arg(long)]
    pub output: PathBuf,
    /// Texts per forward pass, 1..=4096 (teacher::MAX_BATCH; a test keeps
    /// the two equal).
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Token limit, special tokens included (default: the folder's
    /// max_seq_length); longer texts are truncated and counted.
    #[arg(long)]
    pub max_length: Option<usize>,
    /// How to read --input.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: TextFormat,
    /// Element type of the written tensors.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: OutDtype,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutDtype {
    F32,
    F16,
}

pub fn run(args: &EmbedArgs) -> Result<()> {
    let job = EmbedJob {
        model: args.model.clone(),
        input: args.input.clone(),
        output: args.output.clone(),
        batch: args.batch,
        max_length: args.max_length,
        format: args.format,
        dtype: match args.dtype {
            OutDtype::F32 => StoreDtype::F32,
            OutDtype::F16 => StoreDtype::F16,
        },
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("embed {bar:40} {pos}/{len} sentences, {per_sec}, eta {eta}")
            .map_err(|e| Error::Internal(e.to_string()))?,
    );
    let summary = job.run(&mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let summary = summary?;
    for w in &summary.warnings {
        eprintln!("energyflow embed: warning: {w}");
    }
    print_json(&summary)
}
