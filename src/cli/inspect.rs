//! `energyflow inspect --checkpoint DIR --input X.safetensors [--rows 0,3,7]
//! [--out DIR]`: one forward per row with every intermediate kept, drawn as
//! PNG pictures with inspect.json and an index.html (`viz::inspect`);
//! prints the paths.

use super::RuntimeArgs;
use energyflow::error::Result;
use energyflow::viz::inspect::{self, InspectRequest};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Checkpoint folder, or a run folder (its best/ checkpoint is used).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// safetensors file with tensor "input" [N, E_in] and, for the output
    /// picture's cosine, "target" [N, E_out].
    #[arg(long)]
    pub input: PathBuf,
    /// Rows to inspect, comma-separated.
    #[arg(long, default_value = "0")]
    pub rows: String,
    /// Where to write [default: CHECKPOINT/inspect].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let req = InspectRequest {
        rows: inspect::parse_rows(&args.rows)?,
        checkpoint: args.checkpoint.clone(),
        input: args.input.clone(),
        out: args
            .out
            .clone()
            .unwrap_or_else(|| inspect::default_dir(&args.checkpoint)),
    };
    let runtime = args.runtime.resolve()?;
    let dev = super::select_device(runtime.device)?;
    let done = inspect::inspect(&req, &runtime, &dev)?;
    for note in &done.notes {
        eprintln!("energyflow inspect: {note}");
    }
    for f in &done.files {
        println!("{}", f.display());
    }
    println!("{}", done.json.display());
    println!("{}", done.index.display());
    Ok(())
}
