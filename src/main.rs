//! The `energyflow` binary: parse, dispatch to `cli::<command>`, render errors.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "energyflow",
    version,
    about = "Energy Flow lattice models: train, evaluate, infer, embed, bench, plot, inspect"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model (default: the bundled WordNet pairs, debug preset).
    Train(cli::train::TrainArgs),
    /// Evaluate a checkpoint on its held-out split, with baselines.
    Eval(cli::eval::EvalArgs),
    /// Run a model over embeddings: --input X.safetensors -> --output Y.safetensors.
    Infer(cli::infer::InferArgs),
    /// Timing benchmarks.
    Bench(cli::bench::BenchArgs),
    /// Teacher embeddings from text: --model DIR --input FILE -> --output X.safetensors (+ X.jsonl).
    Embed(cli::embed::EmbedArgs),
    /// Build the text side of the bundled datasets (see data/README.md).
    Data(cli::data::DataArgs),
    /// Learning curves of a run folder: PNG pictures and an index.html.
    Plot(cli::plot::PlotArgs),
    /// Pictures of one forward per row: energies, surface, flow paths, steps, density.
    Inspect(cli::inspect::InspectArgs),
}

fn main() {
    let args = Cli::parse();
    let result = match &args.command {
        Command::Train(a) => cli::train::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Infer(a) => cli::infer::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Embed(a) => cli::embed::run(a),
        Command::Data(a) => cli::data::run(a),
        Command::Plot(a) => cli::plot::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
    };
    if let Err(e) = result {
        eprintln!("energyflow: error: {e}");
        std::process::exit(if e.is_user() { 2 } else { 1 });
    }
}
