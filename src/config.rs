//! `EnergyConfig`: every knob of the model, the flow engine and training,
//! the three presets of MODEL.md s.6, TOML loading on top of a preset, and
//! validation that names the field, the value and the allowed range.
//!
//! Choices where MODEL.md is silent (also listed in README.md):
//! - `mapper_hidden` (I) defaults to max(E_in/2, 2S) but the `optimized`
//!   preset sets 2048: the formula gives 20 000 there.
//! - The reference's `optimized` preset starts 32 x 100 x 100 = 320 000 flows
//!   but caps active flows at 200 000, which MODEL.md s.4.1 must refuse; we
//!   raise its `max_active_flows` to 400 000.
//! - `noise_on_z` defaults to false: the z motion is what the carrier learns.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Named starting points (MODEL.md s.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
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

/// Training objective (MODEL.md s.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// MSE(y_hat, y) + lambda_cos * (1 - cos(y_hat, y)).
    Embedding,
    /// MSE(surface, InputMapper(y) detached); the input mapper stays frozen.
    Surface,
}

/// Optimiser, schedule and data-split settings (MODEL.md s.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Objective: "embedding" (default) or "surface".
    pub loss: LossKind,
    /// Weight of (1 - cosine) in the embedding loss. Default 1.
    pub lambda_cos: f64,
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
    /// Micro-batches accumulated per optimizer step. Default 1.
    pub grad_accumulation: usize,
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
    pub steps: Option<usize>,
    /// Held-out fraction of the data. Default 0.1.
    pub val_fraction: f64,
    /// Samples per forward/backward pass: a batch is run in chunks of this
    /// many samples whose gradients are accumulated, so peak memory follows
    /// the chunk, not the batch. None = the whole batch at once. Flows of
    /// different samples never interact; a chunk gets its share of
    /// max_active_flows, and the early stop is decided per chunk.
    pub micro_batch: Option<usize>,
    /// burn's gradient checkpointing (recompute memory-bound ops in the
    /// backward pass instead of keeping their outputs). Default false.
    pub gradient_checkpointing: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: LossKind::Embedding,
            lambda_cos: 1.0,
            learning_rate: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 1e-5,
            grad_clip: 1.0,
            grad_accumulation: 1,
            warmup_steps: 100,
            min_lr_ratio: 0.1,
            epochs: 10,
            steps: None,
            val_fraction: 0.1,
            micro_batch: None,
            gradient_checkpointing: false,
        }
    }
}

/// Every setting of one Energy Flow model (MODEL.md s.2-s.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyConfig {
    /// Lattice width W (x cells).
    pub lattice_width: usize,
    /// Lattice height H (y cells).
    pub lattice_height: usize,
    /// Lattice depth D (z layers; z runs over 0..=D).
    pub lattice_depth: usize,
    /// Samples per batch B.
    pub batch_size: usize,
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
    /// Propagation step budget; None = D div 2.
    pub max_steps: Option<usize>,
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
    /// Training settings.
    #[serde(default)]
    pub train: TrainConfig,
}

impl EnergyConfig {
    /// The named preset (MODEL.md s.6).
    pub fn preset(p: Preset) -> Self {
        let base = EnergyConfig {
            lattice_width: 20,
            lattice_height: 20,
            lattice_depth: 10,
            batch_size: 8,
            input_embedding_dim: 768,
            output_embedding_dim: 768,
            mapper_hidden: None,
            neuron_hidden_dim: 32,
            neuron_output_dim: 64,
            carrier_hidden_dim: 256,
            carrier_layers: 2,
            max_displacement: 0.5,
            displacement_scale: 1.0,
            displacement_scale_min: 1.0,
            displacement_scale_warmup: 0,
            displacement_scale_decay: 1.0,
            max_active_flows: 50_000,
            max_steps: None,
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
            train: TrainConfig::default(),
        };
        match p {
            // Passes of 4: 400 MB peak instead of 700 MB, same speed.
            Preset::Debug => EnergyConfig {
                train: TrainConfig {
                    steps: Some(150),
                    micro_batch: Some(4),
                    ..TrainConfig::default()
                },
                ..base
            },
            Preset::Experiment => EnergyConfig {
                lattice_width: 28,
                lattice_height: 28,
                lattice_depth: 40,
                batch_size: 16,
                carrier_hidden_dim: 512,
                carrier_layers: 3,
                max_active_flows: 200_000,
                spawn_movement_threshold: 0.5,
                convergence_patience: 8,
                // Back-propagating 16 samples through 20 steps of a 512x3
                // GRU at once needs about 10 GB; two passes of 8 about 5.
                train: TrainConfig {
                    micro_batch: Some(8),
                    ..TrainConfig::default()
                },
                ..base
            },
            Preset::Optimized => EnergyConfig {
                lattice_width: 100,
                lattice_height: 100,
                lattice_depth: 50,
                batch_size: 32,
                mapper_hidden: Some(2048),
                carrier_hidden_dim: 1024,
                carrier_layers: 3,
                max_active_flows: 400_000,
                spawn_movement_threshold: 0.1,
                max_spawn_per_step: 3,
                exploration_noise: 0.1,
                convergence_threshold: 0.95,
                convergence_min_steps: 5,
                convergence_patience: 12,
                ..base
            },
        }
    }

    /// Parses TOML on top of `base`: keys in the text override the preset's.
    /// A `preset = "name"` key in the text selects the base instead.
    /// Unknown keys and wrong types are refused naming the key.
    pub fn from_toml_str(text: &str, base: Preset, origin: &str) -> Result<Self> {
        let mut overlay: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::input(format!("{origin}: {}", one_line(&e.to_string()))))?;
        let base = match overlay.remove("preset") {
            Some(toml::Value::String(s)) => Preset::parse(&s)?,
            Some(other) => {
                return Err(Error::config("preset", other, "expected a string"));
            }
            None => base,
        };
        let mut merged = toml::Table::try_from(Self::preset(base)).map_err(|e| Error::Internal(e.to_string()))?;
        merge(&mut merged, overlay);
        let cfg: EnergyConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| Error::input(format!("{origin}: {}", one_line(&e.to_string()))))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads a TOML file on top of a preset.
    pub fn from_toml_file(path: &std::path::Path, base: Preset) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, base, &path.display().to_string())
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Surface cells S = W * H.
    pub fn surface_cells(&self) -> usize {
        self.lattice_width * self.lattice_height
    }

    /// Mapper/collector hidden width I.
    pub fn mapper_hidden_dim(&self) -> usize {
        self.mapper_hidden
            .unwrap_or_else(|| (self.input_embedding_dim / 2).max(2 * self.surface_cells()))
    }

    /// Step budget (default D div 2).
    pub fn max_steps(&self) -> usize {
        self.max_steps.unwrap_or(self.lattice_depth / 2)
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
            let k = (step - self.displacement_scale_warmup) as i32;
            (base * self.displacement_scale_decay.powi(k)).max(min)
        }
    }

    /// Refuses every value outside its allowed range, naming the field.
    pub fn validate(&self) -> Result<()> {
        fn range_usize(field: &str, v: usize, lo: usize, hi: usize) -> Result<()> {
            if v < lo || v > hi {
                return Err(Error::config(field, v, format!("allowed range is {lo}..={hi}")));
            }
            Ok(())
        }
        fn range_f64(field: &str, v: f64, lo: f64, hi: f64, what: &str) -> Result<()> {
            if !v.is_finite() || v < lo || v > hi {
                return Err(Error::config(field, v, format!("allowed range is {what}")));
            }
            Ok(())
        }
        fn positive(field: &str, v: f64) -> Result<()> {
            if !v.is_finite() || v <= 0.0 {
                return Err(Error::config(field, v, "must be a finite number > 0"));
            }
            Ok(())
        }
        range_usize("lattice_width", self.lattice_width, 2, 1024)?;
        range_usize("lattice_height", self.lattice_height, 2, 1024)?;
        range_usize("lattice_depth", self.lattice_depth, 2, 4096)?;
        range_usize("batch_size", self.batch_size, 1, 65_536)?;
        range_usize("input_embedding_dim", self.input_embedding_dim, 1, 65_536)?;
        range_usize("output_embedding_dim", self.output_embedding_dim, 1, 65_536)?;
        if let Some(i) = self.mapper_hidden {
            range_usize("mapper_hidden", i, 1, 65_536)?;
        }
        range_usize("neuron_hidden_dim", self.neuron_hidden_dim, 1, 4096)?;
        range_usize("neuron_output_dim", self.neuron_output_dim, 1, 4096)?;
        range_usize("carrier_hidden_dim", self.carrier_hidden_dim, 2, 8192)?;
        range_usize("carrier_layers", self.carrier_layers, 1, 16)?;
        range_f64("max_displacement", self.max_displacement, 1e-6, 2.0, "(0, 2]")?;
        positive("displacement_scale", self.displacement_scale)?;
        positive("displacement_scale_min", self.displacement_scale_min)?;
        if self.displacement_scale_min > self.displacement_scale {
            return Err(Error::config(
                "displacement_scale_min",
                self.displacement_scale_min,
                format!("must be <= displacement_scale ({})", self.displacement_scale),
            ));
        }
        range_f64(
            "displacement_scale_decay",
            self.displacement_scale_decay,
            1e-9,
            1.0,
            "(0, 1]",
        )?;
        let start = self.batch_size * self.surface_cells();
        if self.max_active_flows < start || self.max_active_flows > 100_000_000 {
            return Err(Error::config(
                "max_active_flows",
                self.max_active_flows,
                format!(
                    "allowed range is {start}..=100000000 (batch_size {} x {} cells start {start} flows)",
                    self.batch_size,
                    self.surface_cells()
                ),
            ));
        }
        if let Some(s) = self.max_steps {
            range_usize("max_steps", s, 1, 100_000)?;
        }
        if let Some(s) = self.projection_steps {
            range_usize("projection_steps", s, 1, 100_000)?;
        }
        if self.max_steps() == 0 {
            return Err(Error::config("max_steps", 0, "D div 2 is 0; set max_steps >= 1"));
        }
        range_f64(
            "spawn_movement_threshold",
            self.spawn_movement_threshold,
            1e-6,
            10.0,
            "(0, 10]",
        )?;
        range_usize("max_spawn_per_step", self.max_spawn_per_step, 0, 64)?;
        range_f64("exploration_noise", self.exploration_noise, 0.0, 1.0, "[0, 1]")?;
        range_f64("convergence_threshold", self.convergence_threshold, 1e-6, 1.0, "(0, 1]")?;
        range_usize("convergence_min_steps", self.convergence_min_steps, 0, 100_000)?;
        range_usize("convergence_patience", self.convergence_patience, 1, 100_000)?;
        let t = &self.train;
        range_f64("train.lambda_cos", t.lambda_cos, 0.0, 1e6, "[0, 1e6]")?;
        range_f64("train.learning_rate", t.learning_rate, 1e-12, 10.0, "(0, 10]")?;
        range_f64("train.beta1", t.beta1, 0.0, 0.999_999, "[0, 1)")?;
        range_f64("train.beta2", t.beta2, 0.0, 0.999_999_9, "[0, 1)")?;
        range_f64("train.epsilon", t.epsilon, 1e-12, 1.0, "(0, 1]")?;
        range_f64("train.weight_decay", t.weight_decay, 0.0, 1.0, "[0, 1]")?;
        range_f64("train.grad_clip", t.grad_clip, 0.0, 1e6, "[0, 1e6] (0 disables)")?;
        range_usize("train.grad_accumulation", t.grad_accumulation, 1, 4096)?;
        if let Some(m) = t.micro_batch {
            // Larger than the batch simply means one pass per batch.
            range_usize("train.micro_batch", m, 1, 65_536)?;
        }
        range_usize("train.warmup_steps", t.warmup_steps, 0, 10_000_000)?;
        range_f64("train.min_lr_ratio", t.min_lr_ratio, 0.0, 1.0, "[0, 1]")?;
        range_usize("train.epochs", t.epochs, 1, 1_000_000)?;
        if let Some(n) = t.steps {
            range_usize("train.steps", n, 1, 1_000_000_000)?;
        }
        if !t.val_fraction.is_finite() || t.val_fraction <= 0.0 || t.val_fraction >= 1.0 {
            return Err(Error::config(
                "train.val_fraction",
                t.val_fraction,
                "allowed range is (0, 1)",
            ));
        }
        Ok(())
    }
}

/// Recursively overlays `over` onto `base` (tables merge, values replace).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// toml's errors span several lines with a source excerpt; keep one line.
fn one_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let first = lines.first().copied().unwrap_or("");
    // The last line carries the reason ("unknown field `x`, expected ...").
    match lines.last() {
        Some(last) if lines.len() > 1 => format!("{first}: {last}"),
        _ => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for p in [Preset::Debug, Preset::Experiment, Preset::Optimized] {
            EnergyConfig::preset(p).validate().unwrap();
        }
    }

    #[test]
    fn toml_overrides_preset() {
        let c = EnergyConfig::from_toml_str(
            "lattice_width = 8\n[train]\nlearning_rate = 0.01\n",
            Preset::Debug,
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.lattice_width, 8);
        assert_eq!(c.lattice_height, 20);
        assert_eq!(c.train.learning_rate, 0.01);
        assert_eq!(c.train.beta1, 0.9);
        let c = EnergyConfig::from_toml_str("preset = \"experiment\"\n", Preset::Debug, "t").unwrap();
        assert_eq!(c.lattice_depth, 40);
    }

    #[test]
    fn displacement_schedule_defaults_to_one() {
        let c = EnergyConfig::preset(Preset::Debug);
        for s in [0, 1, 100, 10_000] {
            assert_eq!(c.displacement_scale_at(s), 1.0);
        }
    }
}
