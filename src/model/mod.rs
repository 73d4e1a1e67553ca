//! The Energy Flow model: the four modules of MODEL.md s.3 and the forward
//! pass of s.4.
//!
//! - `mapper`: teacher embedding -> one energy per surface cell;
//! - `neuron`: (position, energy) -> features, shared by all flows;
//! - `carrier`: the GRU stack carrying each flow's memory, and its heads;
//! - `collector`: the readout, surface -> embedding;
//! - `forward`: MODEL.md s.4 as one function (map, propagate, collect, read
//!   out); `step`: the flows' bookkeeping it runs, on the host (`flow/`) or
//!   on the device (`kernels::flow_step`);
//! - `infer`: the forward over many rows, batch by batch;
//! - `layers`: seeded initialisation and dropout shared by the modules;
//! - `lesion`: deliberate damage to a forward, for studies (`eval --lesion`).
//!
//! Not here: the loss and the optimizer (`train/`), the step rules and the
//! collection (`flow/`), the fused kernels the modules call (`kernels/`).

pub mod carrier;
pub mod collector;
pub mod forward;
pub mod infer;
pub mod layers;
pub mod lesion;
pub mod mapper;
pub mod neuron;
mod step;

pub use forward::{ForwardOptions, ForwardOutput, ForwardSettings, ForwardTimings, Workspace};
pub use infer::infer_batches;
pub use lesion::Lesion;

use crate::config::{EnergyConfig, LinearPathInit, ModelConfig};
use crate::kernels::Kernels;
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use carrier::{EnergyCarrier, StepSettings};
use collector::OutputCollector;
use layers::{Init, WeightInit};
use mapper::InputMapper;
use neuron::SimpleNeuron;

/// The whole model: every learned parameter lives here (both mappers too).
#[derive(Module, Debug)]
pub struct EnergyFlowModel {
    pub input_mapper: InputMapper,
    pub neuron: SimpleNeuron,
    pub carrier: EnergyCarrier,
    pub collector: OutputCollector,
    /// The kernels every module runs on, and the compaction's row gather
    /// (an execution choice, fixed at `new`).
    #[module(skip)]
    pub kernels: Kernels,
}

/// Renumbers every parameter 0, 1, 2, ... in module order. burn draws
/// parameter ids at random, and the optimizer's saved state is keyed by id:
/// with random ids a resumed run would silently restart AdamW's moments.
struct StableIds(u64);

impl ModuleMapper for StableIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), value, mapper)
    }
}

impl EnergyFlowModel {
    /// Builds the model of `cfg` (its `[model]` shapes, and the two flow
    /// rules the carrier applies: the displacement clamp and the energy
    /// residual) with its specified initialisation on `device`, running on
    /// `kernels`; the weights are a pure function of `seed`, and so are the
    /// parameter ids (see [`StableIds`]).
    pub fn new(cfg: &EnergyConfig, kernels: Kernels, device: &Device, seed: u64) -> Self {
        let m = &cfg.model;
        let mut init = Init::new(crate::seeds::mix(seed, crate::seeds::stream::WEIGHTS, 0), device);
        let mut model = EnergyFlowModel {
            input_mapper: InputMapper::new(m, kernels, &mut init, device),
            neuron: SimpleNeuron::new(m, kernels, &mut init, device),
            carrier: EnergyCarrier::new(m, StepSettings::new(&cfg.flow, kernels), &mut init, device),
            collector: OutputCollector::new(m, kernels, &mut init, device),
            kernels,
        };
        // Drawn after everything else, so that a model without the paths
        // has the weights it had before they existed.
        if m.linear_path {
            linear_paths(m, &mut model.input_mapper, &mut model.collector, &mut init);
        }
        model.map(&mut StableIds(0))
    }
}

/// `model.linear_path`: `L_in` beside the mapper's MLP and `L_out` beside
/// the collector's. Random: PyTorch's Linear default. Identity: `L_in = Q`,
/// `L_out = Q^T` (Q: S x E, orthonormal columns when S >= E, rows when
/// S < E; zero biases), with the mapper's last layer, its bias scalar and
/// positional table and the collector's last layer at zero, so that the
/// two MLP branches start at 0 and mapper-then-collector is `Q^T Q`: the
/// identity, or a rank-S projection (the partial identity when the input
/// and output widths differ).
fn linear_paths(m: &ModelConfig, mapper: &mut InputMapper, collector: &mut OutputCollector, init: &mut Init) {
    let (s, e_in, e_out) = (m.surface_cells(), m.input_embedding_dim, m.output_embedding_dim);
    match m.linear_path_init {
        LinearPathInit::Random => {
            mapper.linear = Some(init.linear(e_in, s, WeightInit::Default));
            collector.linear = Some(init.linear(s, e_out, WeightInit::Default));
        }
        LinearPathInit::Identity => {
            // Q: S x E with E the wider of the two; L_in takes its first
            // e_in columns and L_out its first e_out, so that with unequal
            // widths the readout starts as the partial identity (the first
            // min(e_in, e_out) components carried, the rest zero or dropped).
            let e = e_in.max(e_out);
            let q = init.orthogonal_vec(s, e);
            let mut l_in = vec![0.0; e_in * s];
            for r in 0..s {
                for c in 0..e_in {
                    l_in[c * s + r] = q[r * e + c];
                }
            }
            let l_out: Vec<f32> = (0..s).flat_map(|r| q[r * e..r * e + e_out].iter().copied()).collect();
            mapper.linear = Some(init.linear_from(l_in, vec![0.0; s], e_in));
            collector.linear = Some(init.linear_from(l_out, vec![0.0; e_out], s));
            let [h, w] = mapper.positional.dims();
            mapper.positional = init.constant([h, w], 0.0);
            mapper.bias = init.constant([1], 0.0);
            mapper.fc3 = zero_linear(&mapper.fc3, init);
            collector.fc3 = zero_linear(&collector.fc3, init);
        }
    }
}

/// A Linear of `like`'s shape with zero weight and bias.
fn zero_linear(like: &Linear, init: &mut Init) -> Linear {
    let [d_in, d_out] = like.weight.dims();
    init.linear_from(vec![0.0; d_in * d_out], vec![0.0; d_out], d_in)
}
