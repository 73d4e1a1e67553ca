//! The three presets of MODEL.md s.6 (`debug`, `experiment`, `optimized`):
//! named starting points that a TOML file overrides field by field.

use super::{EnergyConfig, FlowConfig, ModelConfig, TrainConfig};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Named starting points (MODEL.md s.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    #[default]
    Debug,
    Experiment,
    Optimized,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Debug => "debug",
            Preset::Experiment => "experiment",
            Preset::Optimized => "optimized",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "debug" => Ok(Preset::Debug),
            "experiment" => Ok(Preset::Experiment),
            "optimized" => Ok(Preset::Optimized),
            other => Err(Error::config(
                "preset",
                format!("\"{other}\""),
                "expected one of \"debug\", \"experiment\", \"optimized\"",
            )),
        }
    }
}

impl EnergyConfig {
    /// The named preset (MODEL.md s.6).
    pub fn preset(p: Preset) -> Self {
        let model = ModelConfig {
            lattice_width: 20,
            lattice_height: 20,
            input_embedding_dim: 768,
            output_embedding_dim: 768,
            mapper_hidden: None,
            neuron_hidden_dim: 32,
            neuron_output_dim: 64,
            carrier_hidden_dim: 256,
            carrier_layers: 2,
            mapper_layer_norm: true,
        };
        let flow = FlowConfig {
            lattice_depth: 10,
            max_displacement: 0.5,
            displacement_scale: 1.0,
            displacement_scale_min: 1.0,
            displacement_scale_warmup: 0,
            displacement_scale_decay: 1.0,
            max_active_flows: 50_000,
            propagation_steps: None,
            projection_steps: None,
            reflection: true,
            movement_spawn: true,
            spawn_movement_threshold: 0.15,
            max_spawn_per_step: 1,
            exploration_noise: 0.05,
            noise_on_z: false,
            convergence_enabled: true,
            convergence_threshold: 0.8,
            convergence_min_steps: 3,
            convergence_patience: 5,
            energy_residual: false,
            fused_kernels: true,
        };
        let train = TrainConfig::default();
        match p {
            // Passes of 4: 400 MB peak instead of 700 MB, same speed.
            Preset::Debug => EnergyConfig {
                model,
                flow,
                train: TrainConfig {
                    planned_steps: Some(150),
                    samples_per_pass: Some(4),
                    ..train
                },
            },
            Preset::Experiment => EnergyConfig {
                model: ModelConfig {
                    lattice_width: 28,
                    lattice_height: 28,
                    carrier_hidden_dim: 512,
                    carrier_layers: 3,
                    ..model
                },
                flow: FlowConfig {
                    lattice_depth: 40,
                    max_active_flows: 200_000,
                    spawn_movement_threshold: 0.5,
                    convergence_patience: 8,
                    ..flow
                },
                // Back-propagating 16 samples through 20 steps of a 512x3
                // GRU at once needs about 10 GB; two passes of 8 about 5.
                train: TrainConfig {
                    batch_size: 16,
                    samples_per_pass: Some(8),
                    ..train
                },
            },
            Preset::Optimized => EnergyConfig {
                model: ModelConfig {
                    lattice_width: 100,
                    lattice_height: 100,
                    mapper_hidden: Some(2048),
                    carrier_hidden_dim: 1024,
                    carrier_layers: 3,
                    ..model
                },
                flow: FlowConfig {
                    lattice_depth: 50,
                    max_active_flows: 400_000,
                    spawn_movement_threshold: 0.1,
                    max_spawn_per_step: 3,
                    exploration_noise: 0.1,
                    convergence_threshold: 0.95,
                    convergence_min_steps: 5,
                    convergence_patience: 12,
                    ..flow
                },
                train: TrainConfig {
                    batch_size: 32,
                    ..train
                },
            },
        }
    }
}
