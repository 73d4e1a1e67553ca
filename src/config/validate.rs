//! Range checks of every config field: a refusal names the field (dotted,
//! as in the TOML file), its value and the allowed range.

use super::{EnergyConfig, LossKind, Part};
use crate::error::{Error, Result};

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

impl EnergyConfig {
    /// Refuses every value outside its allowed range, naming the field.
    pub fn validate(&self) -> Result<()> {
        let m = &self.model;
        range_usize("model.lattice_width", m.lattice_width, 2, 1024)?;
        range_usize("model.lattice_height", m.lattice_height, 2, 1024)?;
        range_usize("model.input_embedding_dim", m.input_embedding_dim, 1, 65_536)?;
        range_usize("model.output_embedding_dim", m.output_embedding_dim, 1, 65_536)?;
        if let Some(i) = m.mapper_hidden {
            range_usize("model.mapper_hidden", i, 1, 65_536)?;
        }
        range_usize("model.neuron_hidden_dim", m.neuron_hidden_dim, 1, 4096)?;
        range_usize("model.neuron_output_dim", m.neuron_output_dim, 1, 4096)?;
        range_usize("model.carrier_hidden_dim", m.carrier_hidden_dim, 2, 8192)?;
        range_usize("model.carrier_layers", m.carrier_layers, 1, 16)?;

        let f = &self.flow;
        range_usize("flow.lattice_depth", f.lattice_depth, 2, 4096)?;
        range_f64("flow.max_displacement", f.max_displacement, 1e-6, 2.0, "(0, 2]")?;
        positive("flow.displacement_scale", f.displacement_scale)?;
        positive("flow.displacement_scale_min", f.displacement_scale_min)?;
        if f.displacement_scale_min > f.displacement_scale {
            return Err(Error::config(
                "flow.displacement_scale_min",
                f.displacement_scale_min,
                format!("must be <= flow.displacement_scale ({})", f.displacement_scale),
            ));
        }
        range_f64(
            "flow.displacement_scale_decay",
            f.displacement_scale_decay,
            1e-9,
            1.0,
            "(0, 1]",
        )?;
        let (b, s) = (self.train.batch_size, m.surface_cells());
        range_usize("train.batch_size", b, 1, 65_536)?;
        let start = b * s;
        if f.max_active_flows < start || f.max_active_flows > 100_000_000 {
            return Err(Error::config(
                "flow.max_active_flows",
                f.max_active_flows,
                format!("allowed range is {start}..=100000000 (train.batch_size {b} x {s} cells start {start} flows)"),
            ));
        }
        if let Some(n) = f.propagation_steps {
            range_usize("flow.propagation_steps", n, 1, 100_000)?;
        }
        if let Some(n) = f.projection_steps {
            range_usize("flow.projection_steps", n, 1, 100_000)?;
        }
        if f.propagation_steps() == 0 {
            return Err(Error::config(
                "flow.propagation_steps",
                0,
                "D div 2 is 0; set flow.propagation_steps >= 1",
            ));
        }
        range_f64(
            "flow.spawn_movement_threshold",
            f.spawn_movement_threshold,
            1e-6,
            10.0,
            "(0, 10]",
        )?;
        range_usize("flow.max_spawn_per_step", f.max_spawn_per_step, 0, 64)?;
        range_f64("flow.exploration_noise", f.exploration_noise, 0.0, 1.0, "[0, 1]")?;
        range_f64(
            "flow.convergence_threshold",
            f.convergence_threshold,
            1e-6,
            1.0,
            "(0, 1]",
        )?;
        range_usize("flow.convergence_min_steps", f.convergence_min_steps, 0, 100_000)?;
        range_usize("flow.convergence_patience", f.convergence_patience, 1, 100_000)?;

        let t = &self.train;
        range_f64("train.lambda_cos", t.lambda_cos, 0.0, 1e6, "[0, 1e6]")?;
        range_f64("train.mse_weight", t.mse_weight, 0.0, 1e6, "[0, 1e6]")?;
        if t.mse_weight == 0.0 && t.lambda_cos == 0.0 && t.loss == LossKind::Embedding {
            return Err(Error::config(
                "train.mse_weight",
                0,
                "and train.lambda_cos are both 0: the embedding loss would be 0",
            ));
        }
        // The largest rate at 1 is 0.1: a scale of 9 keeps every rate < 1.
        range_f64(
            "train.dropout_scale",
            t.dropout_scale,
            0.0,
            9.0,
            "[0, 9] (0 turns dropout off)",
        )?;
        if let Some(n) = t.validate_every_steps {
            range_usize("train.validate_every_steps", n, 1, 1_000_000_000)?;
        }
        for (i, p) in t.frozen.iter().enumerate() {
            if t.frozen[..i].contains(p) {
                return Err(Error::config("train.frozen", p.name(), "is listed twice"));
            }
        }
        if Part::ALL.iter().all(|p| t.frozen.contains(p)) {
            return Err(Error::config(
                "train.frozen",
                "all four modules",
                "nothing would be trained; leave at least one module out",
            ));
        }
        range_f64("train.learning_rate", t.learning_rate, 1e-12, 10.0, "(0, 10]")?;
        range_f64("train.beta1", t.beta1, 0.0, 0.999_999, "[0, 1)")?;
        range_f64("train.beta2", t.beta2, 0.0, 0.999_999_9, "[0, 1)")?;
        range_f64("train.epsilon", t.epsilon, 1e-12, 1.0, "(0, 1]")?;
        range_f64("train.weight_decay", t.weight_decay, 0.0, 1.0, "[0, 1]")?;
        range_f64("train.grad_clip", t.grad_clip, 0.0, 1e6, "[0, 1e6] (0 disables)")?;
        range_usize("train.accumulate_batches", t.accumulate_batches, 1, 4096)?;
        if let Some(n) = t.samples_per_pass {
            // Larger than the batch simply means one pass per batch.
            range_usize("train.samples_per_pass", n, 1, 65_536)?;
        }
        range_usize("train.warmup_steps", t.warmup_steps, 0, 10_000_000)?;
        range_f64("train.min_lr_ratio", t.min_lr_ratio, 0.0, 1.0, "[0, 1]")?;
        range_usize("train.epochs", t.epochs, 1, 1_000_000)?;
        if let Some(n) = t.planned_steps {
            range_usize("train.planned_steps", n, 1, 1_000_000_000)?;
        }
        if let Some(n) = t.checkpoint_every_steps {
            range_usize("train.checkpoint_every_steps", n, 1, 1_000_000_000)?;
        }
        range_f64(
            "train.checkpoint_every_seconds",
            t.checkpoint_every_seconds,
            0.0,
            604_800.0,
            "[0, 604800] seconds (0 disables)",
        )?;
        if !t.val_fraction.is_finite() || t.val_fraction <= 0.0 || t.val_fraction >= 1.0 {
            return Err(Error::config(
                "train.val_fraction",
                t.val_fraction,
                "allowed range is (0, 1)",
            ));
        }
        if !t.test_fraction.is_finite() || t.test_fraction <= 0.0 || t.val_fraction + t.test_fraction >= 1.0 {
            return Err(Error::config(
                "train.test_fraction",
                t.test_fraction,
                format!(
                    "allowed range is (0, 1 - train.val_fraction), here (0, {})",
                    1.0 - t.val_fraction
                ),
            ));
        }
        Ok(())
    }
}
