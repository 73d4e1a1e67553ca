//! How much memory a config needs, estimated before anything is
//! allocated, and the refusal when it cannot fit.
//!
//! Counted, in f32 values:
//! - weights: every parameter, counted from the config exactly as the
//!   modules of `model/` create them (a test checks the count against a
//!   built model);
//! - training adds the gradients, the gradient accumulator and AdamW's two
//!   moments: four more copies of the weights;
//! - activations: training keeps every propagation step's GRU state for
//!   the backward pass. Per pass that is (starting flows = samples per pass
//!   x S) x (propagation steps) x (L x Hd) x [`KEPT_PER_UNIT`] values, plus
//!   the mapper's and the readout's. Inference keeps one step at a time.
//!
//! The estimate is a floor: it assumes no flow spawns children (spawning
//! can raise the active flows up to `flow.max_active_flows`) and none stops
//! early. Calibration (docs/BENCHMARKS.md, `bench step`, passes as in the
//! presets): the experiment preset, which spawns no children, measured
//! 5.27 GB peak RSS and is estimated at 5.17 GB; the debug preset, whose
//! flows spawn about five children each, measured 0.40 GB and is estimated
//! at 0.26 GB. A config is refused only when even the floor exceeds the
//! memory available: it certainly cannot run.

use super::EnergyConfig;
use crate::error::{Error, Result};

/// Values the backward pass keeps per flow, step, GRU layer and hidden
/// unit (gates, candidate, products; calibrated, see the module docs).
pub const KEPT_PER_UNIT: f64 = 5.7;
/// Values one inference step holds per flow, layer and hidden unit.
const STEP_PER_UNIT: f64 = 4.0;
/// The process itself: code, burn's runtime, thread stacks.
const BASE_BYTES: f64 = 64.0 * 1024.0 * 1024.0;

/// What the memory is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Optimizer steps: weights, gradients, AdamW state, kept activations.
    Training,
    /// Forward passes only (eval, infer).
    Inference,
}

/// An estimate in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEstimate {
    pub weights: f64,
    /// Gradients, their accumulator and AdamW's moments (training only).
    pub optimizer: f64,
    /// Activations: kept for the backward pass (training) or one step's.
    pub activations: f64,
    /// Data held by the caller (tensors of pairs, generated inputs).
    pub data: f64,
    pub total: f64,
}

/// Parameters of each module: (mapper, neuron, carrier, readout).
pub fn parameter_counts(cfg: &EnergyConfig) -> [f64; 4] {
    let m = &cfg.model;
    let (e_in, e_out) = (m.input_embedding_dim as f64, m.output_embedding_dim as f64);
    let (s, i) = (m.surface_cells() as f64, m.mapper_hidden_dim() as f64);
    let linear = |a: f64, b: f64| a * b + b;
    let norm = |a: f64| 2.0 * a;
    let head_norm = |a: f64| if m.mapper_collector_layer_norm { norm(a) } else { 0.0 };
    let mapper =
        linear(e_in, i) + head_norm(i) + linear(i, 2.0 * s) + head_norm(2.0 * s) + linear(2.0 * s, s) + 2.0 + s;
    let h = m.neuron_hidden_dim as f64;
    let f = m.neuron_output_dim as f64;
    let neuron = linear(3.0, 3.0) + linear(4.0, h) + norm(h) + linear(h, h) + norm(h) + linear(h, f);
    let hd = m.carrier_hidden_dim as f64;
    let gru = |d_in: f64| 3.0 * (linear(d_in, hd) + linear(hd, hd));
    let layers = gru(f + 1.0) + (m.carrier_layers as f64 - 1.0) * gru(hd);
    let half = (m.carrier_hidden_dim / 2) as f64;
    let heads = linear(hd, half) + linear(half, 1.0) + linear(hd, 64.0) + linear(64.0, 3.0);
    let readout = s + linear(s, 2.0 * s) + head_norm(2.0 * s) + linear(2.0 * s, i) + head_norm(i) + linear(i, e_out);
    let (path_in, path_out) = if m.linear_path {
        (linear(e_in, s), linear(s, e_out))
    } else {
        (0.0, 0.0)
    };
    [mapper + path_in, neuron, layers + heads, readout + path_out]
}

/// The memory `cfg` needs for `purpose` (see the module docs), with
/// `data_bytes` held besides.
pub fn estimate(cfg: &EnergyConfig, purpose: Purpose, data_bytes: f64) -> MemoryEstimate {
    let params: f64 = parameter_counts(cfg).iter().sum();
    let weights = 4.0 * params;
    let m = &cfg.model;
    let (s, i) = (m.surface_cells() as f64, m.mapper_hidden_dim() as f64);
    let unit = (m.carrier_layers * m.carrier_hidden_dim) as f64;
    // Per flow and step besides the GRU: position, energy, neuron, heads.
    let per_flow = 16.0 + 8.0 * m.neuron_hidden_dim as f64 + m.neuron_output_dim as f64 + m.carrier_hidden_dim as f64;
    // Mapper and readout per sample.
    let per_sample = 6.0 * (i + 3.0 * s) + (m.input_embedding_dim + m.output_embedding_dim) as f64;
    let t = &cfg.train;
    let (optimizer, activations) = match purpose {
        Purpose::Training => {
            let samples = t.samples_per_pass.unwrap_or(t.batch_size).min(t.batch_size) as f64;
            let flow_steps = samples * s * cfg.flow.propagation_steps() as f64;
            let kept = flow_steps * (KEPT_PER_UNIT * unit + per_flow) + samples * per_sample;
            (4.0 * weights, 4.0 * kept)
        }
        Purpose::Inference => {
            let flows = t.batch_size as f64 * s;
            let step = flows * (STEP_PER_UNIT * unit + per_flow) + t.batch_size as f64 * per_sample;
            (0.0, 4.0 * step)
        }
    };
    MemoryEstimate {
        weights,
        optimizer,
        activations,
        data: data_bytes,
        total: BASE_BYTES + weights + optimizer + activations + data_bytes,
    }
}

/// Memory this process may still use, in bytes, and where that figure
/// comes from: MemAvailable of /proc/meminfo, lowered to the cgroup's
/// limit (containers) when that is less. None where neither is known.
pub fn available() -> Option<(f64, &'static str)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb * 1024.0)
    });
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let cgroup = match (read("/sys/fs/cgroup/memory.max"), read("/sys/fs/cgroup/memory.current")) {
        (Some(max), Some(used)) => Some((max - used).max(0.0)),
        _ => None,
    };
    match (meminfo, cgroup) {
        (Some(a), Some(c)) if c < a => Some((c, "the cgroup's memory.max")),
        (Some(a), _) => Some((a, "MemAvailable in /proc/meminfo")),
        (None, Some(c)) => Some((c, "the cgroup's memory.max")),
        (None, None) => None,
    }
}

/// Bytes as "1.5 GB" / "300 MB".
pub fn show_bytes(b: f64) -> String {
    let gb = b / 1e9;
    if gb >= 1000.0 {
        format!("{:.0} TB", gb / 1000.0)
    } else if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.0} MB", b / 1e6)
    }
}

/// Refuses, naming both figures, `what` needing `bytes` when less is
/// available. Unknown availability (not Linux) passes.
pub fn ensure_available(what: &str, bytes: f64, hint: &str) -> Result<()> {
    match available() {
        Some((free, source)) if bytes > free => Err(Error::input(format!(
            "{what} needs at least {}, but {} is available ({source}){hint}",
            show_bytes(bytes),
            show_bytes(free)
        ))),
        _ => Ok(()),
    }
}

/// [`estimate`], refused when it cannot fit in the memory available. The
/// message gives the parts and the settings that drive the largest.
pub fn ensure_fits(cfg: &EnergyConfig, purpose: Purpose, data_bytes: f64) -> Result<MemoryEstimate> {
    let e = estimate(cfg, purpose, data_bytes);
    let m = &cfg.model;
    let [mapper, _, carrier, readout] = parameter_counts(cfg);
    let hint = if e.activations > e.weights + e.optimizer {
        match purpose {
            Purpose::Training => "; lower train.samples_per_pass, flow.propagation_steps or the lattice".to_string(),
            Purpose::Inference => "; lower train.batch_size or the lattice".to_string(),
        }
    } else if carrier >= mapper.max(readout) {
        format!(
            "; most of it is the carrier's weights (model.carrier_hidden_dim {}, model.carrier_layers {})",
            m.carrier_hidden_dim, m.carrier_layers
        )
    } else {
        format!(
            "; most of it is the mapper's and readout's weights (model.input_embedding_dim {}, model.mapper_hidden {}, {} lattice cells)",
            m.input_embedding_dim,
            m.mapper_hidden_dim(),
            m.surface_cells()
        )
    };
    let mut parts = vec![format!("weights {}", show_bytes(e.weights))];
    if purpose == Purpose::Training {
        parts.push(format!("optimizer state {}", show_bytes(e.optimizer)));
    }
    parts.push(format!("activations {}", show_bytes(e.activations)));
    if e.data > 0.0 {
        parts.push(format!("data {}", show_bytes(e.data)));
    }
    let what = format!(
        "{} with this config ({})",
        match purpose {
            Purpose::Training => "training",
            Purpose::Inference => "running the model",
        },
        parts.join(", ")
    );
    ensure_available(&what, e.total, &hint)?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    #[test]
    fn the_estimate_matches_the_measured_presets() {
        // docs/BENCHMARKS.md: bench step uses 768-D data, as the presets.
        let exp = estimate(&EnergyConfig::preset(Preset::Experiment), Purpose::Training, 0.0);
        assert!(
            exp.total <= 5.27e9 && exp.total > 0.9 * 5.27e9,
            "experiment {}",
            show_bytes(exp.total)
        );
        let debug = estimate(&EnergyConfig::preset(Preset::Debug), Purpose::Training, 0.0);
        assert!(
            debug.total < 0.40e9 && debug.total > 0.1e9,
            "debug {}",
            show_bytes(debug.total)
        );
        // Inference keeps no graph.
        let inf = estimate(&EnergyConfig::preset(Preset::Experiment), Purpose::Inference, 0.0);
        assert!(inf.total < exp.total / 4.0);
    }

    #[test]
    fn absurd_configs_are_refused_naming_the_estimate_and_what_is_available() {
        let mut c = EnergyConfig::preset(Preset::Debug);
        c.model.lattice_width = 1024;
        c.model.lattice_height = 1024;
        c.flow.max_active_flows = 8 * 1024 * 1024;
        c.validate().unwrap();
        let e = ensure_fits(&c, Purpose::Inference, 0.0).unwrap_err().to_string();
        assert!(e.contains("needs at least") && e.contains("is available"), "{e}");
        assert!(e.contains("mapper's and readout's weights"), "{e}");
        let mut c = EnergyConfig::preset(Preset::Debug);
        c.model.carrier_hidden_dim = 8192;
        c.model.carrier_layers = 16;
        c.validate().unwrap();
        let est = estimate(&c, Purpose::Training, 0.0);
        // 16 layers x 6 matrices of 8192^2: 6.4e9 parameters, 5 copies.
        assert!(est.weights > 25e9 && est.optimizer > 100e9, "{est:?}");
        if available().is_some_and(|(free, _)| free < est.total) {
            let e = ensure_fits(&c, Purpose::Training, 0.0).unwrap_err().to_string();
            assert!(e.contains("carrier's weights"), "{e}");
        }
    }
}
