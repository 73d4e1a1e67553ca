//! A model in training: one optimizer step of MODEL.md s.5 at a time, with
//! everything needed to save and continue it. The loop around it, the run
//! folder and its checkpoints are `run.rs`.
//!
//! One optimizer step consumes `accumulate_batches` batches of
//! `batch_size` samples from the current epoch's shuffled order (the last
//! step of an epoch may take fewer), each run as one pass or, with
//! `samples_per_pass`, as several smaller ones. Each pass's loss is
//! weighted by its share of the step's samples, so the accumulated gradient
//! is the mean over the step's samples whatever the split into passes. The
//! gradient is clipped to a global norm; a step whose loss or gradient norm
//! is not finite is skipped and counted, and leaves the weights alone.
//!
//! Determinism: the split, each epoch's order and each pass's dropout and
//! exploration noise are seeded from (seed, counter) alone, and parameter
//! ids are stable (`EnergyFlowModel::new`), so the optimizer state reloads
//! onto the right tensors: a run resumed from a checkpoint computes the
//! same weights as one that never stopped.

use super::adamw::FusedAdamW;
use super::data::{PairData, epoch_order};
use super::eval::{self, ModelMetrics};
use super::grads;
use super::loss;
use super::metrics::{StepRecord, peak_rss_mb};
use super::plan::RunPlan;
use crate::checkpoint::{self, Meta, TrainState};
use crate::config::resources::{self, Purpose};
use crate::config::{EnergyConfig, LossKind, Part, RuntimeConfig};
use crate::device;
use crate::error::{Error, Result};
use crate::kernels::Kernels;
use crate::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Workspace};
use crate::seeds::{mix, stream};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use std::path::Path;
use std::time::Instant;

/// The optimizer the config asks for (every hyper-parameter explicit: burn's
/// defaults differ from PyTorch's): our fused AdamW, or burn's with
/// `runtime.kernels = "composed"` (same values, same state format).
/// Clipping is done globally by us.
fn optimizer(cfg: &EnergyConfig, kernels: Kernels) -> ModuleOptimizer {
    let t = &cfg.train;
    let ours = FusedAdamW {
        beta_1: t.beta1 as f32,
        beta_2: t.beta2 as f32,
        epsilon: t.epsilon as f32,
        weight_decay: t.weight_decay as f32,
    };
    if kernels.fused() {
        return ours.init();
    }
    AdamWConfig::new()
        .with_beta_1(ours.beta_1)
        .with_beta_2(ours.beta_2)
        .with_epsilon(ours.epsilon)
        .with_weight_decay(ours.weight_decay)
        .init()
}

/// The autodiff device of a run.
fn autodiff(device: &Device, cfg: &EnergyConfig) -> Device {
    let ad = device.clone().autodiff();
    if cfg.train.gradient_checkpointing {
        ad.gradient_checkpointing()
    } else {
        ad
    }
}

/// Applies the training-mode parameter settings: the modules of
/// `train.frozen` get no gradients (so AdamW leaves them alone), and with
/// the "surface" loss neither does the input mapper (MODEL.md s.5:
/// trained, it could collapse every target onto one surface).
fn prepare(mut model: EnergyFlowModel, cfg: &EnergyConfig) -> EnergyFlowModel {
    let frozen = |p: Part| cfg.train.frozen.contains(&p);
    if cfg.train.loss == LossKind::Surface || frozen(Part::Mapper) {
        model.input_mapper = model.input_mapper.set_require_grad(false);
    }
    if frozen(Part::Neuron) {
        model.neuron = model.neuron.set_require_grad(false);
    }
    if frozen(Part::Carrier) {
        model.carrier = model.carrier.set_require_grad(false);
    }
    if frozen(Part::Collector) {
        model.collector = model.collector.set_require_grad(false);
    }
    model
}

/// The model of `Trainer::model`, which is always there outside the
/// optimizer's update.
fn held(model: &Option<EnergyFlowModel>) -> &EnergyFlowModel {
    model.as_ref().expect("the model is held between steps")
}

/// A model in training with everything needed to continue it.
pub struct Trainer {
    /// The run's plan: config, execution settings, split, epochs, horizon.
    pub plan: RunPlan,
    /// The forward's settings, prepared once from the plan.
    settings: ForwardSettings,
    /// The model being trained; None only while the optimizer's update
    /// holds it by value, so that every parameter has one owner there and
    /// the GPU's AdamW writes it in place instead of copying it first.
    model: Option<EnergyFlowModel>,
    optim: ModuleOptimizer,
    pub state: TrainState,
    ws: Workspace,
    device: Device,
    /// The device without autodiff (for work outside the model's training).
    plain: Device,
}

impl Trainer {
    /// A fresh run of `cfg` on `data` with `seed`, executing as `runtime`
    /// says (`device` is a plain device; autodiff is added).
    pub fn new(
        cfg: EnergyConfig,
        runtime: &RuntimeConfig,
        data: &PairData,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::start(RunPlan::fresh(cfg, runtime, data, seed)?, data, device)
    }

    /// A fresh run as `plan` says, on `data`.
    pub fn start(plan: RunPlan, data: &PairData, device: &Device) -> Result<Self> {
        let cfg = &plan.config;
        data.check_fits(cfg)?;
        resources::ensure_fits(cfg, Purpose::Training, 0.0)?;
        let settings = ForwardSettings::for_runtime(cfg, &plan.runtime, device);
        let plain = device.clone();
        let device = autodiff(device, cfg);
        let model = prepare(EnergyFlowModel::new(cfg, plan.runtime.kernels, &device, plan.seed), cfg);
        Ok(Trainer {
            optim: optimizer(cfg, plan.runtime.kernels),
            settings,
            model: Some(model),
            state: TrainState {
                seed: plan.seed,
                step: 0,
                epoch: 0,
                batch_in_epoch: 0,
                skipped: 0,
                best_val_loss: None,
                best_step: None,
                total_steps: plan.planned_steps,
                epoch_loss_sum: 0.0,
                epoch_loss_count: 0,
            },
            plan,
            ws: Workspace::default(),
            device,
            plain,
        })
    }

    /// Continues the run saved in checkpoint folder `ckpt` on `data`, which
    /// must be the data it was trained on (same number of pairs and
    /// widths), executing as `runtime` says (which may differ from the
    /// session that wrote the checkpoint).
    pub fn resume(ckpt: &Path, data: &PairData, runtime: &RuntimeConfig, device: &Device) -> Result<Self> {
        let meta = checkpoint::read_meta(ckpt)?;
        let (plan, _) = RunPlan::resumed(&meta, ckpt, runtime, data, None)?;
        Self::continue_from(plan, ckpt, &meta, data, device)
    }

    /// Continues the run of checkpoint `ckpt` (read as `meta`) as `plan`
    /// says (`RunPlan::resumed` of the same checkpoint, maybe re-planned).
    pub fn continue_from(plan: RunPlan, ckpt: &Path, meta: &Meta, data: &PairData, device: &Device) -> Result<Self> {
        let (Some(state), Some(opt_name)) = (meta.train.clone(), meta.optimizer.clone()) else {
            return Err(Error::input(format!(
                "{}: not a training checkpoint (no optimizer or training state); it can be used by infer and eval only",
                ckpt.display()
            )));
        };
        let cfg = &plan.config;
        data.check_fits(cfg)?;
        resources::ensure_fits(cfg, Purpose::Training, 0.0)?;
        let settings = ForwardSettings::for_runtime(cfg, &plan.runtime, device);
        let plain = device.clone();
        let device = autodiff(device, cfg);
        let model = prepare(checkpoint::model_from(ckpt, meta, plan.runtime.kernels, &device)?, cfg);
        let bytes = checkpoint::read_part(ckpt, &opt_name)?;
        checkpoint::check_optimizer(&model, &bytes, &ckpt.join(&opt_name), state.step - state.skipped)?;
        let optim = optimizer(cfg, plan.runtime.kernels)
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| {
                Error::input(format!(
                    "{}: cannot read the optimizer state ({e})",
                    ckpt.join(&opt_name).display()
                ))
            })?;
        let state = TrainState {
            total_steps: plan.planned_steps,
            ..state
        };
        Ok(Trainer {
            plan,
            settings,
            model: Some(model),
            optim,
            state,
            ws: Workspace::default(),
            device,
            plain,
        })
    }

    /// The forward's settings of this run (prepared once at its start).
    pub fn settings(&self) -> &ForwardSettings {
        &self.settings
    }

    /// The model being trained (on the autodiff device).
    pub fn model(&self) -> &EnergyFlowModel {
        held(&self.model)
    }

    /// True when the current epoch's batches are all used.
    pub fn epoch_done(&self) -> bool {
        self.state.batch_in_epoch >= self.plan.batches_per_epoch
    }

    /// The batches of the next optimizer step (row indices).
    fn next_batches(&self) -> Vec<Vec<usize>> {
        let order = epoch_order(&self.plan.split.train, self.state.seed, self.state.epoch);
        let t = &self.plan.config.train;
        let b = t.batch_size;
        let first = self.state.batch_in_epoch;
        let last = (first + t.accumulate_batches).min(self.plan.batches_per_epoch);
        (first..last)
            .map(|j| order[j * b..((j + 1) * b).min(order.len())].to_vec())
            .collect()
    }

    /// One optimizer step: forward and backward over the step's passes,
    /// global clipping, AdamW; or, when the loss or the gradient norm is
    /// not finite, nothing (the step is counted as skipped and the weights
    /// and optimizer state stay as they were).
    pub fn train_step(&mut self, data: &PairData) -> Result<StepRecord> {
        crate::pool::awake(self.settings.spin, || self.step(data))
    }

    fn step(&mut self, data: &PairData) -> Result<StepRecord> {
        let t_step = Instant::now();
        let batches = self.next_batches();
        let rows: usize = batches.iter().map(Vec::len).sum();
        let cfg = &self.plan.config;
        let lr = self.plan.schedule().lr_at(self.state.step);
        let scale = cfg.flow.displacement_scale_at(self.state.step);
        let mut rec = StepRecord {
            step: self.state.step + 1,
            epoch: self.state.epoch,
            lr,
            samples: rows,
            ..StepRecord::default()
        };
        let mut acc = GradientsAccumulator::<EnergyFlowModel>::new();
        let per_pass = cfg.train.samples_per_pass.unwrap_or(cfg.train.batch_size);
        let passes: Vec<&[usize]> = batches.iter().flat_map(|b| b.chunks(per_pass)).collect();
        let mut losses = Vec::with_capacity(passes.len());
        // Room for any number of passes per step in the noise-seed counter.
        let per_step = (cfg.train.accumulate_batches * cfg.train.batch_size) as u64;
        for (j, idx) in passes.into_iter().enumerate() {
            let t0 = Instant::now();
            let (x, y) = data.gather(idx);
            let b = idx.len();
            let x = device::matrix(x, b, data.input.cols, &self.device);
            let y = device::matrix(y, b, data.target.cols, &self.device);
            let opts = ForwardOptions {
                training: true,
                displacement_scale: scale,
                noise_seed: mix(
                    self.state.seed,
                    stream::STEP,
                    self.state.step as u64 * per_step + j as u64,
                ),
                lesion: None,
            };
            let pass = self.settings.for_pass(b, cfg.train.batch_size);
            let model = held(&self.model);
            let out = model.forward(x, &pass, &mut self.ws, &opts)?;
            let parts = loss::objective(cfg, &model.input_mapper, out.output, out.surface, y);
            let share = b as f64 / rows as f64;
            rec.end_of_batch_ms += out.timings.end_of_batch.as_secs_f64() * 1e3;
            rec.collect_ms += out.timings.collect.as_secs_f64() * 1e3;
            rec.flows.absorb(&out.stats);
            let t1 = Instant::now();
            rec.forward_ms += (t1 - t0).as_secs_f64() * 1e3;
            // Read after the passes, all at once: each read waits for the device.
            losses.push((
                loss::LossParts {
                    loss: parts.loss.clone().detach(),
                    mse: parts.mse.detach(),
                    cosine: parts.cosine.detach(),
                },
                share,
            ));
            let g = (parts.loss * share).backward();
            let g = GradientsParams::from_grads(g, model);
            acc.accumulate(model, g);
            rec.backward_ms += t1.elapsed().as_secs_f64() * 1e3;
        }
        let (parts, shares): (Vec<_>, Vec<f64>) = losses.into_iter().unzip();
        for ([l, m, c], share) in loss::LossParts::all_to_host(&parts)?.into_iter().zip(shares) {
            rec.loss += l * share;
            rec.mse += m * share;
            rec.cosine += c * share;
        }
        let t_opt = Instant::now();
        let mut g = acc.grads();
        let (norm, [mapper, neuron, carrier, collector]) = grads::module_norms(self.model(), &g)?;
        grads::clip_global(self.model(), &mut g, norm, self.plan.config.train.grad_clip);
        rec.grad_norm = norm;
        rec.grad_norm_mapper = mapper;
        rec.grad_norm_neuron = neuron;
        rec.grad_norm_carrier = carrier;
        rec.grad_norm_collector = collector;
        rec.skipped = !(rec.loss.is_finite() && norm.is_finite());
        if rec.skipped {
            self.state.skipped += 1;
        } else {
            let model = self.model.take().expect("the model is held between steps");
            self.model = Some(self.optim.step(lr, model, g));
            self.state.epoch_loss_sum += rec.loss;
            self.state.epoch_loss_count += 1;
        }
        rec.optimizer_ms = t_opt.elapsed().as_secs_f64() * 1e3;
        self.state.step += 1;
        self.state.batch_in_epoch += batches.len();
        rec.skipped_total = self.state.skipped;
        rec.step_ms = t_step.elapsed().as_secs_f64() * 1e3;
        rec.samples_per_s = rows as f64 / t_step.elapsed().as_secs_f64().max(1e-9);
        rec.peak_rss_mb = peak_rss_mb();
        Ok(rec)
    }

    /// The run's device, without autodiff.
    pub fn plain_device(&self) -> &Device {
        &self.plain
    }

    /// Starts the next epoch (after its last batch was used).
    pub fn next_epoch(&mut self) {
        self.state.epoch += 1;
        self.state.batch_in_epoch = 0;
        self.state.epoch_loss_sum = 0.0;
        self.state.epoch_loss_count = 0;
    }

    /// Metrics on the held-out split (inference mode).
    pub fn validate(&self, data: &PairData) -> Result<ModelMetrics> {
        let p = &self.plan;
        eval::evaluate(&self.model().valid(), &p.config, &self.settings, data, &p.split.val)
    }

    /// Writes a checkpoint of the current state into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let optim = self
            .optim
            .into_bytes()
            .map_err(|e| Error::Internal(format!("saving the optimizer: {e}")))?;
        let meta = Meta {
            format: checkpoint::FORMAT,
            config: self.plan.config.clone(),
            weights: String::new(),
            optimizer: None,
            train: Some(self.state.clone()),
            data: Some(self.plan.data.clone()),
            runtime: Some(self.plan.runtime.clone()),
        };
        checkpoint::save(dir, self.model(), Some(&optim), meta)
    }
}
