//! `energyflow plot RUN [--out DIR]`: the learning curves of a run folder
//! as PNG pictures with an index.html (`viz::plot_run`); prints the paths.

use energyflow::error::Result;
use energyflow::viz::{plot_run, run_plots};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Training run folder (holding metrics.jsonl).
    pub run: PathBuf,
    /// Where to write the pictures and index.html [default: RUN/plots].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &PlotArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| run_plots::default_dir(&args.run));
    let plots = plot_run(&args.run, &out)?;
    for note in &plots.notes {
        eprintln!("energyflow plot: {note}");
    }
    for f in &plots.files {
        println!("{}", f.display());
    }
    println!("{}", plots.index.display());
    Ok(())
}
