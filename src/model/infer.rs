//! Inference over many rows: the model's forward batch by batch, in
//! inference mode (no dropout, no noise), outputs gathered on the host.

use super::{EnergyFlowModel, ForwardOptions, Workspace};
use crate::config::EnergyConfig;
use crate::device;
use crate::error::Result;
use crate::flow::FlowStats;
use crate::io::Matrix;
use burn::tensor::Device;

/// Runs `model` over every row of `input` [N, E_in] in batches of
/// `train.batch_size`; returns the outputs [N, E_out] and the flow
/// statistics of all batches together.
pub fn infer_batches(
    model: &EnergyFlowModel,
    cfg: &EnergyConfig,
    input: &Matrix,
    dev: &Device,
) -> Result<(Matrix, FlowStats)> {
    let mut ws = Workspace::default();
    let opts = ForwardOptions::inference(cfg);
    let b = cfg.train.batch_size;
    let mut out = Vec::with_capacity(input.rows * cfg.model.output_embedding_dim);
    let mut stats = FlowStats::default();
    for start in (0..input.rows).step_by(b) {
        let end = (start + b).min(input.rows);
        let rows = input.data[start * input.cols..end * input.cols].to_vec();
        let x = device::matrix(rows, end - start, input.cols, dev);
        let f = model.forward(cfg, x, &mut ws, &opts)?;
        out.extend(device::to_vec(f.output)?);
        stats.absorb(&f.stats);
    }
    Ok((
        Matrix {
            rows: input.rows,
            cols: cfg.model.output_embedding_dim,
            data: out,
        },
        stats,
    ))
}
