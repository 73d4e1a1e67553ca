//! `EnergyConfig`: every setting of a run in three sections, the three
//! presets of MODEL.md s.6, and loading a TOML file on top of a preset.
//!
//! - [`ModelConfig`] (`[model]`): exactly what the weights' shapes depend
//!   on. Two models with equal model sections load each other's weights;
//!   the architecture check of a checkpoint compares these sections.
//! - [`FlowConfig`] (`[flow]`): the engine's rules: lattice depth, motion,
//!   walls, spawning, capacity, step budgets, convergence.
//! - [`TrainConfig`] (`[train]`): batch, objective, optimizer, schedule,
//!   split and memory settings.
//!
//! These three are a run's identity: a resume refuses to change them. How
//! a run executes (kernels, spinning, threads, device) is [`RuntimeConfig`]
//! (`[runtime]`, `runtime.rs`), which a resume may change.
//!
//! TOML loading lives in `load.rs`, range checks in `validate.rs`. Choices where MODEL.md is silent
//! (also listed in README.md):
//! - `mapper_hidden` (I) defaults to max(E_in/2, 2S) but the `optimized`
//!   preset sets 2048: the formula gives 20 000 there.
//! - The reference's `optimized` preset starts 32 x 100 x 100 = 320 000 flows
//!   but caps active flows at 200 000, which MODEL.md s.4.1 must refuse; we
//!   raise its `max_active_flows` to 400 000.
//! - `noise_on_z` defaults to false: the z motion is what the carrier learns.

mod load;
mod presets;
pub mod resources;
mod runtime;
mod validate;

pub use load::{ConfigSource, ConfigText, LoadedConfig};
pub use presets::Preset;
pub use runtime::{MAX_THREADS, RuntimeConfig};

use crate::geometry::Lattice;
use serde::{Deserialize, Serialize};

/// Training objective (MODEL.md s.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// MSE(y_hat, y) + lambda_cos * (1 - cos(y_hat, y)).
    Embedding,
    /// MSE(surface, InputMapper(y) detached); the input mapper stays frozen.
    Surface,
}

/// A module of the model, as `train.frozen` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The input mapper (embedding -> energies).
    Mapper,
    /// The SimpleNeuron (position, energy -> features).
    Neuron,
    /// The GRU stack and its heads.
    Carrier,
    /// The readout (surface -> embedding).
    Collector,
}

impl Part {
    /// The four modules in model order.
    pub const ALL: [Part; 4] = [Part::Mapper, Part::Neuron, Part::Carrier, Part::Collector];

    /// The name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            Part::Mapper => "mapper",
            Part::Neuron => "neuron",
            Part::Carrier => "carrier",
            Part::Collector => "collector",
        }
    }
}

impl LossKind {
    /// The name as written in configs and flags.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Embedding => "embedding",
            LossKind::Surface => "surface",
        }
    }
}

/// `[model]`: everything the weights' shapes depend on (MODEL.md s.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Lattice width W (x cells): the surface has S = W * H cells.
    pub lattice_width: usize,
    /// Lattice height H (y cells).
    pub lattice_height: usize,
    /// Teacher embedding width of the inputs (E_in). Default 768.
    pub input_embedding_dim: usize,
    /// Teacher embedding width of the targets (E_out). Default 768.
    pub output_embedding_dim: usize,
    /// Hidden width I of the mapper and collector; None = max(E_in/2, 2S).
    pub mapper_hidden: Option<usize>,
    /// SimpleNeuron hidden width. Default 32.
    pub neuron_hidden_dim: usize,
    /// SimpleNeuron output width F. Default 64.
    pub neuron_output_dim: usize,
    /// GRU hidden size Hd.
    pub carrier_hidden_dim: usize,
    /// GRU layers L.
    pub carrier_layers: usize,
    /// The LayerNorms of the input mapper's and the output collector's
    /// hidden layers (MODEL.md s.3). Default true, as MODEL.md;
    /// docs/QUALITY.md measures the two networks without them. (Named
    /// `mapper_layer_norm` in checkpoints before [runtime] existed.)
    #[serde(default = "yes", alias = "mapper_layer_norm")]
    pub mapper_collector_layer_norm: bool,
    /// A linear map beside each of the two MLPs: the mapper computes
    /// `MLP(x) + L_in x` (E_in -> S) and the collector `MLP(v) + L_out v`
    /// (S -> E_out). Default false (MODEL.md's readout); docs/QUALITY.md
    /// measures it.
    #[serde(default)]
    pub linear_path: bool,
    /// How the linear paths start: "random" (PyTorch's Linear default) or
    /// "identity" (`L_in = Q`, `L_out = Q^T` for a random Q with orthonormal
    /// columns, the MLPs' last layers and the positional table at zero: at
    /// initialisation mapper-then-collector is the identity when S >= E, a
    /// rank-S projection when S < E).
    #[serde(default)]
    pub linear_path_init: LinearPathInit,
}

/// `model.linear_path_init`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinearPathInit {
    #[default]
    Random,
    Identity,
}

impl ModelConfig {
    /// Surface cells S = W * H.
    pub fn surface_cells(&self) -> usize {
        self.lattice_width * self.lattice_height
    }

    /// Mapper/collector hidden width I.
    pub fn mapper_hidden_dim(&self) -> usize {
        self.mapper_hidden
            .unwrap_or_else(|| (self.input_embedding_dim / 2).max(2 * self.surface_cells()))
    }

    /// What a run of this model should be told at its start, one line
    /// each: allowed choices that do not do what their name suggests.
    pub fn notes(&self) -> Vec<String> {
        let (s, e_in, e_out) = (
            self.surface_cells(),
            self.input_embedding_dim,
            self.output_embedding_dim,
        );
        let mut notes = Vec::new();
        if !(self.linear_path && self.linear_path_init == LinearPathInit::Identity) {
            return notes;
        }
        let e = e_in.max(e_out);
        if s < e {
            notes.push(format!(
                "model.linear_path_init = \"identity\" with {s} surface cells < {e} embedding components: the readout starts as a rank-{s} projection, not the identity"
            ));
        }
        if e_in != e_out {
            notes.push(format!(
                "model.linear_path_init = \"identity\" with input width {e_in} != output width {e_out}: the readout starts as the partial identity (the first {} components carried), not the identity",
                e_in.min(e_out)
            ));
        }
        notes
    }

    /// The same model with every derived width written out.
    fn resolved(&self) -> ModelConfig {
        ModelConfig {
            mapper_hidden: Some(self.mapper_hidden_dim()),
            ..self.clone()
        }
    }

    /// The fields whose values differ from `other`'s (derived widths
    /// compared by value), as "model.field (a vs b)" with `a` from `self`:
    /// the architecture check.
    pub fn differences(&self, other: &ModelConfig) -> Vec<String> {
        table_differences(
            "model",
            &section_table(&self.resolved()),
            &section_table(&other.resolved()),
        )
    }
}

/// `[flow]`: the engine's rules (MODEL.md s.2 and s.4); none of them
/// changes the weights' shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Lattice depth D (z layers; z runs over 0..=D).
    pub lattice_depth: usize,
    /// Displacement clamp m. Default 0.5.
    pub max_displacement: f64,
    /// Displacement scale after warm-up. Default 1.
    pub displacement_scale: f64,
    /// Floor the scale decays to. Default 1 (no-op schedule).
    pub displacement_scale_min: f64,
    /// Training steps of linear scale warm-up (from the floor). Default 0.
    pub displacement_scale_warmup: usize,
    /// Multiplicative decay per training step after warm-up. Default 1.
    pub displacement_scale_decay: f64,
    /// Cap on simultaneously active flows.
    pub max_active_flows: usize,
    /// Propagation steps of one forward at most; None = D div 2.
    pub propagation_steps: Option<usize>,
    /// Steps after which a flow is projected; None = D div 2.
    pub projection_steps: Option<usize>,
    /// Reflect x, y at the lattice walls (else clamp).
    pub reflection: bool,
    /// Movement spawn on/off.
    pub movement_spawn: bool,
    /// Step length above which a flow spawns children.
    pub spawn_movement_threshold: f64,
    /// Cap on children per flow per step.
    pub max_spawn_per_step: usize,
    /// Exploration noise sigma (training only).
    pub exploration_noise: f64,
    /// Apply the exploration noise to z too.
    pub noise_on_z: bool,
    /// Early stop on convergence.
    pub convergence_enabled: bool,
    /// Completed share of created flows that counts as converged.
    pub convergence_threshold: f64,
    /// No convergence stop before this many steps.
    pub convergence_min_steps: usize,
    /// Stop when the completed count has not improved for this many steps.
    pub convergence_patience: usize,
    /// A flow's new energy is its energy plus the carrier's energy head
    /// (a flow carries its energy and the network changes it) instead of
    /// the head's output alone (MODEL.md s.3). Default false, as MODEL.md;
    /// docs/QUALITY.md shows that with it off the lattice passes almost
    /// nothing of the input to the surface.
    #[serde(default)]
    pub energy_residual: bool,
    /// The propagation replaced by a pass-through: the mapped energies are
    /// the surface, and no flow starts (the neuron and the carrier are
    /// unused). Default false; for measuring what the lattice adds
    /// (docs/QUALITY.md; `eval --lesion passthrough` does the same to any
    /// checkpoint).
    #[serde(default)]
    pub pass_through: bool,
}

impl FlowConfig {
    /// Propagation step budget (default D div 2).
    pub fn propagation_steps(&self) -> usize {
        self.propagation_steps.unwrap_or(self.lattice_depth / 2)
    }

    /// Steps after which a flow is projected (default D div 2).
    pub fn projection_steps(&self) -> usize {
        self.projection_steps.unwrap_or(self.lattice_depth / 2)
    }

    /// Displacement scale at training step `step` (MODEL.md s.3): linear
    /// warm-up from the floor, then multiplicative decay down to the floor.
    pub fn displacement_scale_at(&self, step: usize) -> f64 {
        let (base, min) = (self.displacement_scale, self.displacement_scale_min);
        if step < self.displacement_scale_warmup {
            let t = (step + 1) as f64 / self.displacement_scale_warmup as f64;
            min + (base - min) * t
        } else {
            // Past ~2^31 steps of decay any rate < 1 has reached the floor.
            let k = i32::try_from(step - self.displacement_scale_warmup).unwrap_or(i32::MAX);
            (base * self.displacement_scale_decay.powi(k)).max(min)
        }
    }

    /// The scale of a trained model (inference): where the schedule ends,
    /// the floor when it decays and the base scale when it does not.
    pub fn inference_displacement_scale(&self) -> f64 {
        if self.displacement_scale_decay < 1.0 {
            self.displacement_scale_min
        } else {
            self.displacement_scale
        }
    }
}

/// `[train]`: batch, objective, optimizer, schedule and split (MODEL.md s.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Samples per batch B (also the batch of `eval` and `infer`).
    pub batch_size: usize,
    /// Objective: "embedding" (default) or "surface".
    pub loss: LossKind,
    /// Weight of (1 - cosine) in the embedding loss. Default 1.
    pub lambda_cos: f64,
    /// Weight of the MSE in the embedding loss; 0 trains on the cosine
    /// alone. Default 1.
    #[serde(default = "one")]
    pub mse_weight: f64,
    /// AdamW learning rate. Default 1e-4.
    pub learning_rate: f64,
    /// AdamW beta1. Default 0.9.
    pub beta1: f64,
    /// AdamW beta2. Default 0.999.
    pub beta2: f64,
    /// AdamW epsilon. Default 1e-8 (PyTorch's; burn's default is 1e-5).
    pub epsilon: f64,
    /// AdamW decoupled weight decay. Default 1e-5.
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 disables. Default 1.0.
    pub grad_clip: f64,
    /// Batches whose gradients are summed into one optimizer step (the
    /// effective batch is batch_size x accumulate_batches). Default 1.
    pub accumulate_batches: usize,
    /// Linear warm-up steps before cosine decay. Default 100.
    pub warmup_steps: usize,
    /// Floor of the cosine decay as a fraction of the learning rate. Default 0.1.
    pub min_lr_ratio: f64,
    /// Epochs over the training split. Default 10.
    pub epochs: usize,
    /// Optimizer steps planned for the run when fewer than `epochs` would
    /// take: the run's length and the schedule's horizon. None (default) =
    /// epochs x steps per epoch. The debug preset sets 150, so that its run
    /// on the bundled data takes minutes on two cores.
    pub planned_steps: Option<usize>,
    /// Fraction of the data held out for validation: it chooses `best/`
    /// and feeds the held-out curves. Default 0.1.
    pub val_fraction: f64,
    /// Fraction held out as the test split: seen only at the end, what
    /// `eval` and the run's closing line report. Default 0.1.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Validate on the held-out split every this many optimizer steps as
    /// well as at every epoch's end (learning curves with points inside an
    /// epoch; best/ is chosen among all validations). None (default): at
    /// epoch ends only. Validation never changes the training trajectory.
    #[serde(default)]
    pub validate_every_steps: Option<usize>,
    /// Modules kept at their initial weights (a lesion for studies: which
    /// module's learning matters). Default none. The "surface" loss freezes
    /// the mapper in any case.
    #[serde(default)]
    pub frozen: Vec<Part>,
    /// Multiplies every dropout rate of the mapper and the collector
    /// (0.1, 0.05, 0.05, 0.1 at 1); 0 turns dropout off. Default 1.
    #[serde(default = "one")]
    pub dropout_scale: f64,
    /// Samples per forward/backward pass, a memory setting: a batch is run
    /// in passes of this many samples whose gradients add up to the
    /// batch's. None = the whole batch in one pass. A pass gets its share of
    /// max_active_flows, and the early stop is decided per pass.
    pub samples_per_pass: Option<usize>,
    /// burn's gradient checkpointing (recompute memory-bound ops in the
    /// backward pass instead of keeping their outputs). Default false.
    pub gradient_checkpointing: bool,
    /// Save `latest/` every this many optimizer steps as well (epoch ends
    /// always save). None (default): by time only. Not part of what a run
    /// computes: a resumed run may change it.
    #[serde(default)]
    pub checkpoint_every_steps: Option<usize>,
    /// Save `latest/` once this many seconds have passed since the last
    /// save (checked between steps); 0 disables. Default 60, so a crash
    /// loses about a minute of work at most (plus the step in progress).
    /// Not part of what a run computes: a resumed run may change it.
    #[serde(default = "default_checkpoint_seconds")]
    pub checkpoint_every_seconds: f64,
    /// Fit the learned baselines (an MLP and a residual MLP on the run's
    /// training split, docs/QUALITY.md) when a run starts, and report them
    /// beside the model in `train`, `eval` and `plot`. Default true; false
    /// skips the fit (most of a small run's time) and leaves their keys
    /// null. Not part of what a run computes: a resumed run may change it.
    #[serde(default = "yes")]
    pub learned_baselines: bool,
}

fn default_test_fraction() -> f64 {
    0.1
}

fn default_checkpoint_seconds() -> f64 {
    60.0
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 8,
            loss: LossKind::Embedding,
            lambda_cos: 1.0,
            mse_weight: 1.0,
            learning_rate: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 1e-5,
            grad_clip: 1.0,
            accumulate_batches: 1,
            warmup_steps: 100,
            min_lr_ratio: 0.1,
            epochs: 10,
            planned_steps: None,
            val_fraction: 0.1,
            test_fraction: default_test_fraction(),
            validate_every_steps: None,
            frozen: Vec::new(),
            dropout_scale: 1.0,
            samples_per_pass: None,
            gradient_checkpointing: false,
            checkpoint_every_steps: None,
            checkpoint_every_seconds: default_checkpoint_seconds(),
            learned_baselines: true,
        }
    }
}

/// Every setting of one Energy Flow model and its training (MODEL.md s.2-s.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyConfig {
    pub model: ModelConfig,
    pub flow: FlowConfig,
    pub train: TrainConfig,
}

impl EnergyConfig {
    /// Every field whose value differs from `other`'s (derived widths
    /// compared by value), as "section.field (a vs b)" with `a` from `self`.
    pub fn differences(&self, other: &EnergyConfig) -> Vec<String> {
        let mut d = self.model.differences(&other.model);
        d.extend(table_differences(
            "flow",
            &section_table(&self.flow),
            &section_table(&other.flow),
        ));
        d.extend(table_differences(
            "train",
            &section_table(&self.train),
            &section_table(&other.train),
        ));
        d
    }

    /// The lattice W x H x D.
    pub fn lattice(&self) -> Lattice {
        Lattice::new(
            self.model.lattice_width,
            self.model.lattice_height,
            self.flow.lattice_depth,
        )
    }
}

/// The fields of section `section` whose values differ between `a` and
/// `b`, as "section.field (a vs b)"; a field one side leaves unset (None)
/// shows as "none".
pub(crate) fn table_differences(section: &str, a: &toml::Table, b: &toml::Table) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |t: &toml::Table, k: &str| t.get(k).map_or("none".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{section}.{k} ({} vs {})", show(a, k), show(b, k)))
        .collect()
}

/// A serialisable value as a TOML table (its fields by name).
pub(crate) fn section_table<T: Serialize>(v: &T) -> toml::Table {
    // Serialising our own plain structs cannot fail.
    toml::Table::try_from(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for p in [Preset::Debug, Preset::Experiment, Preset::Optimized, Preset::Tuned] {
            EnergyConfig::preset(p).validate().unwrap();
            assert_eq!(Preset::parse(p.name()).unwrap(), p);
        }
    }

    #[test]
    fn the_tuned_preset_keeps_each_flow_in_its_cell() {
        // docs/QUALITY.md's choice rests on this: a step shorter than half
        // a cell in x and y, and no children.
        let c = EnergyConfig::preset(Preset::Tuned);
        let half_cell = 1.0 / (c.model.lattice_width.max(c.model.lattice_height) - 1) as f64;
        assert!(c.flow.max_displacement * (c.flow.propagation_steps() as f64) < half_cell);
        assert!(!c.flow.movement_spawn && c.flow.energy_residual && !c.model.mapper_collector_layer_norm);
    }

    #[test]
    fn model_differences_name_the_fields() {
        let a = EnergyConfig::preset(Preset::Debug).model;
        assert!(a.differences(&a).is_empty());
        let b = EnergyConfig::preset(Preset::Experiment).model;
        let d = a.differences(&b);
        assert!(
            d.iter().any(|s| s.starts_with("model.lattice_width (20 vs 28)")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|s| s.starts_with("model.carrier_layers (2 vs 3)")),
            "{d:?}"
        );
        // I = max(E_in/2, 2S): 800 vs 1568.
        assert!(
            d.iter().any(|s| s.starts_with("model.mapper_hidden (800 vs 1568)")),
            "{d:?}"
        );
        assert_eq!(d.len(), 5, "{d:?}");
        // An explicit width equal to the derived one is the same model.
        let explicit = ModelConfig {
            mapper_hidden: Some(800),
            ..a.clone()
        };
        assert!(a.differences(&explicit).is_empty());
    }

    #[test]
    fn displacement_schedule_defaults_to_one() {
        let f = EnergyConfig::preset(Preset::Debug).flow;
        for s in [0, 1, 100, 10_000, usize::MAX / 2] {
            assert_eq!(f.displacement_scale_at(s), 1.0);
        }
        assert_eq!(f.inference_displacement_scale(), 1.0);
    }

    #[test]
    fn a_decaying_schedule_ends_at_its_floor() {
        let mut f = EnergyConfig::preset(Preset::Debug).flow;
        f.displacement_scale = 2.0;
        f.displacement_scale_min = 0.5;
        f.displacement_scale_warmup = 4;
        f.displacement_scale_decay = 0.9;
        assert_eq!(f.displacement_scale_at(0), 0.5 + 1.5 * 0.25);
        assert_eq!(f.displacement_scale_at(4), 2.0);
        assert!((f.displacement_scale_at(5) - 1.8).abs() < 1e-12);
        // Far past the end, and at a step count that does not fit an i32.
        assert_eq!(f.displacement_scale_at(1_000), 0.5);
        assert_eq!(f.displacement_scale_at(usize::MAX / 2), 0.5);
        assert_eq!(f.inference_displacement_scale(), 0.5);
        // Without decay the schedule ends at its base scale.
        f.displacement_scale_decay = 1.0;
        assert_eq!(f.inference_displacement_scale(), 2.0);
    }
}
