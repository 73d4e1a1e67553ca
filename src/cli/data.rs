//! `energyflow data`: builds the text side of the bundled datasets from
//! their public sources (`data::wordnet`, see data/README.md).

use super::print_json;
use energyflow::data::wordnet;
use energyflow::error::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub what: DataWhat,
}

#[derive(clap::Subcommand, Debug)]
pub enum DataWhat {
    /// (definition, example) pairs from WordNet 3.0 as a TSV for `energyflow embed`.
    Wordnet(WordnetArgs),
}

#[derive(clap::Args, Debug)]
pub struct WordnetArgs {
    /// Folder with WordNet's data.noun, data.verb, data.adj and data.adv
    /// (usr/share/wordnet of Debian's wordnet-base).
    #[arg(long)]
    pub dict: PathBuf,
    /// TSV file to write: definition<TAB>example per line.
    #[arg(long)]
    pub out: PathBuf,
    /// Pairs to keep (chosen deterministically).
    #[arg(long, default_value_t = 4000)]
    pub count: usize,
}

pub fn run(args: &DataArgs) -> Result<()> {
    match &args.what {
        DataWhat::Wordnet(a) => print_json(&wordnet::build_tsv(&a.dict, &a.out, a.count)?),
    }
}
