//! Pictures: the learning curves of a run (`run_plots`, `energyflow plot`)
//! and what the flows do inside the lattice in one forward (`inspect`,
//! `energyflow inspect`), each with an `index.html` that shows them.
//!
//! Drawn with plotters into PNG files (`style.rs`: embedded font, palette,
//! encoding), from panels of two kinds (`chart.rs`: line charts and heat
//! maps); `inspect_draw.rs` draws a row's pictures from the numbers that
//! `inspect.rs` gathers; `html.rs` writes the pages. Library code: it
//! returns the paths it wrote and never prints.
//!
//! Not here: the numbers themselves (`train::metrics`, `train::eval`,
//! `flow::trace`, `flow::spatial`), which these modules only read.

pub mod chart;
pub mod html;
pub mod inspect;
mod inspect_draw;
pub mod run_plots;
pub mod style;

pub use inspect::{InspectRequest, Inspection, inspect};
pub use run_plots::{RunPlots, plot_run};
