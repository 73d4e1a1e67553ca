//! Inference over many rows: the model's forward batch by batch, in
//! inference mode (no dropout, no noise), outputs gathered on the host.

use super::{EnergyFlowModel, ForwardOptions, ForwardSettings, Workspace};
use crate::device;
use crate::error::Result;
use crate::flow::FlowStats;
use crate::io::Matrix;
use burn::tensor::Device;

/// Runs `model` under `settings` over every row of `input` [N, E_in] in
/// batches of `batch` rows; returns the outputs [N, E_out] and the flow
/// statistics of all batches together.
pub fn infer_batches(
    model: &EnergyFlowModel,
    settings: &ForwardSettings,
    batch: usize,
    input: &Matrix,
    dev: &Device,
) -> Result<(Matrix, FlowStats)> {
    let mut ws = Workspace::default();
    let opts = ForwardOptions::inference(settings);
    let b = batch.max(1);
    let cols = model.collector.fc3.weight.dims()[1];
    let mut out = Vec::with_capacity(input.rows * cols);
    let mut stats = FlowStats::default();
    for start in (0..input.rows).step_by(b) {
        let end = (start + b).min(input.rows);
        let rows = input.data[start * input.cols..end * input.cols].to_vec();
        let x = device::matrix(rows, end - start, input.cols, dev);
        let f = model.forward(x, settings, &mut ws, &opts)?;
        out.extend(device::to_vec(f.output)?);
        stats.absorb(&f.stats);
    }
    Ok((
        Matrix {
            rows: input.rows,
            cols,
            data: out,
        },
        stats,
    ))
}
