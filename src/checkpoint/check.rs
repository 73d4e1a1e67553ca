//! A checkpoint is untrusted input: every field of `checkpoint.json` and
//! every tensor of the optimizer state is checked here before use, so a
//! hand-edited, truncated or foreign file is refused in one line naming the
//! file and the field instead of panicking (or allocating without bound)
//! inside burn or our own code.
//!
//! The weights file needs no check of its own: burn-store reports a
//! missing, extra or misshapen tensor as an error (`load_weights_bytes`).
//! The optimizer file does: burn's `load_record` trusts parameter ids and
//! ranks, and AdamW panics at the first step on a moment of another shape.

use super::{Meta, TrainState};
use crate::error::{Error, Result};
use crate::model::EnergyFlowModel;
use burn::module::{Module, ModuleVisitor, Param};
use burn::store::burn_pack::Reader;
use burn::tensor::{Bytes, DType, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Steps, epochs and pair counts above this are not from a real run.
const MAX_COUNT: usize = 1_000_000_000_000;

/// A file name the checkpoint may name: a plain name inside its folder.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Checks the fields of a parsed `checkpoint.json` (at `path`) that the
/// config's own range checks do not cover.
pub(super) fn check_meta(meta: &Meta, path: &Path) -> Result<()> {
    let bad = |field: &str, why: String| Error::input(format!("{}: field `{field}` {why}", path.display()));
    for (field, name) in [("weights", Some(&meta.weights)), ("optimizer", meta.optimizer.as_ref())] {
        if let Some(n) = name
            && !plain_name(n)
        {
            return Err(bad(
                field,
                format!("= {n:?} is not a file name inside the checkpoint folder"),
            ));
        }
    }
    if let Some(t) = &meta.train {
        check_state(t).map_err(|(field, why)| bad(&format!("train.{field}"), why))?;
    }
    if let Some(d) = &meta.data {
        if !(2..=MAX_COUNT).contains(&d.n) {
            return Err(bad("data.n", format!("= {} is outside 2..={MAX_COUNT}", d.n)));
        }
        if !(d.val_fraction > 0.0 && d.val_fraction < 1.0) {
            return Err(bad(
                "data.val_fraction",
                format!("= {} is outside (0, 1)", d.val_fraction),
            ));
        }
        if let Some(t) = d.test_fraction
            && !(t > 0.0 && t < 1.0 && d.val_fraction + t < 1.0)
        {
            return Err(bad(
                "data.test_fraction",
                format!("= {t} is outside (0, 1 - data.val_fraction)"),
            ));
        }
        if d.origin.is_empty() || d.origin.len() > 4096 {
            return Err(bad("data.origin", "must hold 1 to 4096 characters".to_string()));
        }
    }
    Ok(())
}

/// The training state's own invariants: (field, what is wrong).
fn check_state(t: &TrainState) -> std::result::Result<(), (&'static str, String)> {
    let count = |field, v: usize| {
        if v > MAX_COUNT {
            Err((field, format!("= {v} is above {MAX_COUNT}")))
        } else {
            Ok(())
        }
    };
    count("step", t.step)?;
    count("epoch", t.epoch)?;
    count("batch_in_epoch", t.batch_in_epoch)?;
    if !(1..=MAX_COUNT).contains(&t.total_steps) {
        return Err(("total_steps", format!("= {} is outside 1..={MAX_COUNT}", t.total_steps)));
    }
    // Each epoch ends after at least one step.
    if t.epoch > t.step {
        return Err((
            "epoch",
            format!("= {} is more than the {} steps taken", t.epoch, t.step),
        ));
    }
    if t.skipped > t.step {
        return Err((
            "skipped",
            format!("= {} is more than the {} steps taken", t.skipped, t.step),
        ));
    }
    if t.epoch_loss_count > t.step {
        return Err((
            "epoch_loss_count",
            format!("= {} is more than the {} steps taken", t.epoch_loss_count, t.step),
        ));
    }
    if !t.epoch_loss_sum.is_finite() {
        return Err(("epoch_loss_sum", format!("= {} is not finite", t.epoch_loss_sum)));
    }
    match (t.best_step, t.best_val_loss) {
        (None, None) => {}
        (Some(s), Some(l)) => {
            if s > t.step {
                return Err(("best_step", format!("= {s} is after the {} steps taken", t.step)));
            }
            if !(l.is_finite() && l >= 0.0) {
                return Err(("best_val_loss", format!("= {l} is not a finite loss >= 0")));
            }
        }
        _ => {
            return Err((
                "best_step",
                "and best_val_loss must be both set or both null".to_string(),
            ));
        }
    }
    Ok(())
}

/// One parameter of the model: its id, shape, path and whether it trains.
struct ParamInfo {
    shape: Vec<usize>,
    path: String,
    trains: bool,
}

/// Collects every float parameter of a model by id.
#[derive(Default)]
struct Params {
    path: Vec<String>,
    found: HashMap<u64, ParamInfo>,
}

impl ModuleVisitor for Params {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        self.found.insert(
            param.id.val(),
            ParamInfo {
                shape: t.shape().to_vec(),
                path: self.path.join("."),
                trains: t.is_require_grad(),
            },
        );
    }
}

/// Checks the burnpack optimizer state `bytes` (the file at `path`)
/// against `model`: every state tensor belongs to one of its parameters
/// (by id) and has that parameter's shape and dtype, every recorded rank
/// is that parameter's, and, once `updates` optimizer updates were made,
/// some parameter has its state (one that never had a gradient has none).
pub fn check_optimizer(model: &EnergyFlowModel, bytes: &[u8], path: &Path, updates: usize) -> Result<()> {
    let shown = path.display();
    let bad = |why: String| Error::input(format!("{shown}: {why}; this optimizer state is not this model's"));
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| Error::input(format!("{shown}: not a valid optimizer state ({e})")))?;
    let scalars = reader.scalars().clone();
    let tensors = reader
        .into_tensors()
        .map_err(|e| Error::input(format!("{shown}: not a valid optimizer state ({e})")))?;
    let mut params = Params::default();
    model.visit(&mut params);
    let params = params.found;
    let mut with_state = std::collections::HashSet::new();
    for t in &tensors {
        let id = t
            .param_id
            .ok_or_else(|| bad(format!("tensor {:?} names no parameter", t.name)))?;
        let p = params.get(&id).ok_or_else(|| {
            bad(format!(
                "tensor {:?} is for parameter {id}, which the model does not have",
                t.name
            ))
        })?;
        if !t.name.starts_with(&format!("{id}.")) {
            return Err(bad(format!("tensor {:?} does not belong to parameter {id}", t.name)));
        }
        if t.shape.to_vec() != p.shape {
            return Err(bad(format!(
                "tensor {:?} has shape {:?}, but parameter {id} ({}) has shape {:?}",
                t.name,
                t.shape.to_vec(),
                p.path,
                p.shape
            )));
        }
        if t.dtype != DType::F32 {
            return Err(bad(format!(
                "tensor {:?} has dtype {:?}, expected F32",
                t.name, t.dtype
            )));
        }
        with_state.insert(id);
    }
    for (key, value) in &scalars {
        let Some(id) = key.strip_suffix(".__rank") else {
            continue;
        };
        let p = id
            .parse::<u64>()
            .ok()
            .and_then(|id| params.get(&id))
            .ok_or_else(|| bad(format!("entry {key:?} is for a parameter the model does not have")))?;
        if usize::try_from(*value).ok() != Some(p.shape.len()) {
            return Err(bad(format!("entry {key:?} gives a rank other than {}", p.shape.len())));
        }
    }
    // AdamW creates a parameter's state at its first gradient, so a
    // parameter that never had one (the displacement head when every flow
    // completes in its first step) has none, in this run as in any other;
    // a state without any moments after updates is not this run's.
    if updates > 0 && params.values().any(|p| p.trains) && with_state.is_empty() {
        return Err(bad(format!(
            "it holds no state for any parameter after {updates} update(s)"
        )));
    }
    Ok(())
}
