//! Building the project's bundled datasets from their public sources
//! (`energyflow data ...`); see data/README.md for the exact commands.

pub mod wordnet;
