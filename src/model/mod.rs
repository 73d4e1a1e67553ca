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

use crate::config::EnergyConfig;
use crate::kernels::Kernels;
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Device, Tensor};
use carrier::{EnergyCarrier, StepSettings};
use collector::OutputCollector;
use layers::Init;
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
        let mut init = Init::new(seed, device);
        let model = EnergyFlowModel {
            input_mapper: InputMapper::new(m, kernels, &mut init, device),
            neuron: SimpleNeuron::new(m, kernels, &mut init, device),
            carrier: EnergyCarrier::new(m, StepSettings::new(&cfg.flow, kernels), &mut init, device),
            collector: OutputCollector::new(m, kernels, &mut init, device),
            kernels,
        };
        model.map(&mut StableIds(0))
    }
}
