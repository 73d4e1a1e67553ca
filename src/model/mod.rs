//! `EnergyFlowModel`: the four modules of MODEL.md s.3 and the forward pass
//! of s.4 (map, propagate, collect, read out).

pub mod carrier;
pub mod collector;
pub mod layers;
pub mod mapper;
pub mod neuron;

use crate::config::EnergyConfig;
use crate::error::{Error, Result};
use crate::flow::step::{PropagateOptions, propagate};
use crate::flow::{Collector, FlowStats, FlowStore};
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Device, Tensor};
use carrier::{CarrierConfig, EnergyCarrier};
use collector::{CollectorConfig, OutputCollector};
use layers::Init;
use mapper::{InputMapper, MapperConfig};
use neuron::{NeuronConfig, SimpleNeuron};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::{Duration, Instant};

/// The whole model: every learned parameter lives here (both mappers too).
#[derive(Module, Debug)]
pub struct EnergyFlowModel {
    pub input_mapper: InputMapper,
    pub neuron: SimpleNeuron,
    pub carrier: EnergyCarrier,
    pub collector: OutputCollector,
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

/// Reusable host buffers of the forward pass (flow store and collection
/// scratch): keep one per training loop so nothing is re-allocated per batch.
#[derive(Debug, Default)]
pub struct Workspace {
    pub store: FlowStore,
    pub collector: Collector,
}

/// Options of one forward.
#[derive(Debug, Clone, Copy)]
pub struct ForwardOptions {
    /// Training mode: dropout and exploration noise on.
    pub training: bool,
    /// Displacement scale for this step (`EnergyConfig::displacement_scale_at`).
    pub displacement_scale: f64,
    /// Seed of this forward's randomness (dropout masks, exploration noise).
    pub noise_seed: u64,
}

impl ForwardOptions {
    /// Deterministic inference.
    pub fn inference(cfg: &EnergyConfig) -> Self {
        ForwardOptions {
            training: false,
            displacement_scale: cfg.displacement_scale_at(usize::MAX / 2),
            noise_seed: 0,
        }
    }
}

/// Wall-clock split of one forward.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardTimings {
    /// Input mapping.
    pub map: Duration,
    /// The propagation loop (MODEL.md s.4.2), without the final projection.
    pub propagate: Duration,
    /// From the end of the last step until the surface is ready: final
    /// projection, concatenation, collection, statistics.
    pub end_of_batch: Duration,
    /// Collection alone (part of end_of_batch).
    pub collect: Duration,
    /// Output collector.
    pub readout: Duration,
}

/// Result of one forward.
pub struct ForwardOutput {
    /// Output embedding [B, E_out].
    pub output: Tensor<2>,
    /// Aggregated surface [B, S].
    pub surface: Tensor<2>,
    /// Mapped input energies [B, S] (for the "surface" loss).
    pub mapped: Tensor<2>,
    pub stats: FlowStats,
    pub timings: ForwardTimings,
}

impl EnergyFlowModel {
    /// Builds the model with its specified initialisation on `device`;
    /// the weights are a pure function of `seed`, and so are the parameter
    /// ids (see [`StableIds`]).
    pub fn new(cfg: &EnergyConfig, device: &Device, seed: u64) -> Self {
        let i = cfg.mapper_hidden_dim();
        let mut init = Init::new(seed, device);
        let model = EnergyFlowModel {
            input_mapper: MapperConfig {
                d_input: cfg.input_embedding_dim,
                d_hidden: i,
                width: cfg.lattice_width,
                height: cfg.lattice_height,
            }
            .init(&mut init, device),
            neuron: NeuronConfig {
                d_hidden: cfg.neuron_hidden_dim,
                d_output: cfg.neuron_output_dim,
            }
            .init(&mut init, device),
            carrier: CarrierConfig {
                d_input: cfg.neuron_output_dim + 1,
                d_hidden: cfg.carrier_hidden_dim,
                layers: cfg.carrier_layers,
                max_displacement: cfg.max_displacement,
            }
            .init(&mut init, device),
            collector: CollectorConfig {
                width: cfg.lattice_width,
                height: cfg.lattice_height,
                d_hidden: i,
                d_output: cfg.output_embedding_dim,
            }
            .init(&mut init, device),
        };
        model.map(&mut StableIds(0))
    }

    /// MODEL.md s.4 for a batch `input` [B, E_in].
    pub fn forward(
        &self,
        cfg: &EnergyConfig,
        input: Tensor<2>,
        ws: &mut Workspace,
        opts: &ForwardOptions,
    ) -> Result<ForwardOutput> {
        let [b, e_in] = input.dims();
        if e_in != cfg.input_embedding_dim {
            return Err(Error::input(format!(
                "input width {e_in} does not match input_embedding_dim {}",
                cfg.input_embedding_dim
            )));
        }
        let s = cfg.surface_cells();
        let t0 = Instant::now();
        // Dropout masks come from a host RNG derived from the step's seed.
        let mut drop_rng = opts
            .training
            .then(|| StdRng::seed_from_u64(opts.noise_seed ^ 0x9E37_79B9_7F4A_7C15));
        let mapped = self.input_mapper.forward(input, drop_rng.as_mut());
        let t1 = Instant::now();
        let mut stats = propagate(
            &self.neuron,
            &self.carrier,
            cfg,
            mapped.clone(),
            &mut ws.store,
            &PropagateOptions {
                training: opts.training,
                displacement_scale: opts.displacement_scale,
                noise_seed: opts.noise_seed,
            },
        )?;
        let t2 = Instant::now();
        let energy = ws
            .store
            .take_done_energy()
            .ok_or_else(|| Error::Internal("no completed flows".into()))?;
        let tc = Instant::now();
        let (flat, summary) = ws.collector.collect(energy, &ws.store.done, b * s)?;
        let collect = tc.elapsed();
        stats.cells_covered = summary.groups;
        let surface = flat.reshape([b, s]);
        let t3 = Instant::now();
        let output = self.collector.forward(surface.clone(), drop_rng.as_mut());
        let t4 = Instant::now();
        Ok(ForwardOutput {
            output,
            surface,
            mapped,
            stats,
            timings: ForwardTimings {
                map: t1 - t0,
                propagate: t2 - t1,
                end_of_batch: t3 - t2,
                collect,
                readout: t4 - t3,
            },
        })
    }
}
