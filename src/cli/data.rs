//! `energyflow data`: builds the text side of the bundled datasets from
//! their public sources (see data/README.md).

use crate::data::wordnet;
use crate::error::{Error, Result};
use crate::io::write_atomic;
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
        DataWhat::Wordnet(a) => {
            let (pairs, counts) = wordnet::read_pairs(&a.dict)?;
            let chosen = wordnet::select(pairs, a.count)?;
            write_atomic(&a.out, wordnet::to_tsv(&chosen).as_bytes())?;
            let line = serde_json::json!({
                "synsets": counts.synsets,
                "with_example": counts.with_example,
                "unique": counts.unique,
                "written": chosen.len(),
                "out": a.out.display().to_string(),
            });
            println!(
                "{}",
                serde_json::to_string(&line).map_err(|e| Error::Internal(e.to_string()))?
            );
            Ok(())
        }
    }
}
