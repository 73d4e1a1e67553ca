//! How a run starts in its folder: fresh, resumed or over an old run.
//!
//! Every start takes the folder's lock first (`lock.rs`), before anything
//! in the folder is read or touched, then removes what a killed process
//! left there (temporary files, unnamed weight files). Then:
//! - fresh: refused when the folder holds any trace of an earlier run
//!   (`latest/`, `best/`, `metrics.jsonl`, a lock left by a killed run);
//! - overwrite: the old run's files are removed once the new run is set up;
//! - resume: continues from the newer of `latest/` and `best/` (a crash
//!   between the writes of `best/` and `latest/` leaves `best/` newer),
//!   trusts `best/` about the best model (it is written first), and refuses
//!   flags or a config that would change the run, naming them.
//!
//! Every refusal names a command that works (tests/run_folder.rs runs each):
//! a folder holding a run is told `--resume`, `--overwrite` or another
//! `--out`; a folder holding only what a run killed before its first
//! checkpoint left (no checkpoint to resume) is told `--overwrite`, by a
//! fresh start and by `--resume` alike; a resume that would change the run
//! is told to drop what changes it; `--resume` on a folder without a run is
//! told to drop `--resume`.

use super::data::{PairData, SYNTHETIC_PAIRS, SYNTHETIC_SEED};
use super::lock::RunLock;
use super::plan::{RunPlan, names};
use super::run::Run;
use super::trainer::Trainer;
use crate::checkpoint::{self, Meta};
use crate::config::{ConfigSource, EnergyConfig, LossKind, RuntimeConfig};
use crate::error::{Error, Result};
use crate::io::remove_stale_temp_files;
use burn::tensor::Device;
use std::path::{Path, PathBuf};

/// Which data a run trains on.
#[derive(Debug, Clone, PartialEq)]
pub enum DataChoice {
    /// The bundled WordNet pairs (data/README.md), compiled into the binary.
    Bundled,
    /// The built-in synthetic rotation task.
    Synthetic,
    /// A safetensors file with "input" and "target".
    File(PathBuf),
    /// Pairs given in memory (`PairData::from_matrices`).
    Pairs(Box<PairData>),
}

impl DataChoice {
    /// `--data` as users write it: "synthetic" or a path.
    pub fn parse(s: &str) -> Self {
        match s {
            "synthetic" => DataChoice::Synthetic,
            path => DataChoice::File(PathBuf::from(path)),
        }
    }
}

/// How a run starts in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run; the folder must hold no trace of one.
    Fresh,
    /// Continue the run in the folder.
    Resume,
    /// A new run replacing the folder's old one.
    Overwrite,
}

/// What a user asks of `train`.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub config: ConfigSource,
    /// How this session executes (the config file's `[runtime]` under the
    /// flags): free to differ from the session that wrote a resumed run.
    pub runtime: RuntimeConfig,
    /// None: the bundled data for a new run, the run's own for a resumed one.
    pub data: Option<DataChoice>,
    /// Plan by epochs (clears `train.planned_steps`).
    pub epochs: Option<usize>,
    /// Overrides `train.val_fraction`.
    pub val_fraction: Option<f64>,
    /// Overrides `train.test_fraction`.
    pub test_fraction: Option<f64>,
    /// Overrides `train.loss`.
    pub loss: Option<LossKind>,
    /// None: 0 for a new run, the run's own for a resumed one.
    pub seed: Option<u64>,
    /// The run folder.
    pub out: PathBuf,
    pub start: Start,
}

impl RunRequest {
    /// A request to start (`start`) a run of the default preset on the
    /// bundled data in `out`, with no override: set the fields to ask
    /// for more.
    pub fn new(out: impl Into<PathBuf>, start: Start) -> Self {
        RunRequest {
            config: ConfigSource::default(),
            runtime: RuntimeConfig::default(),
            data: None,
            epochs: None,
            val_fraction: None,
            test_fraction: None,
            loss: None,
            seed: None,
            out: out.into(),
            start,
        }
    }
}

/// Takes the lock of `out` and removes what killed processes left there;
/// returns the lock, who left a lock behind (if anyone) and notes.
fn lock_and_clean(out: &Path, clean: bool) -> Result<(RunLock, Option<String>, Vec<String>)> {
    let (lock, previous) = RunLock::acquire(out)?;
    let mut notes = Vec::new();
    if clean {
        let mut removed = remove_stale_temp_files(out, None, true);
        for sub in names::CHECKPOINTS {
            let dir = out.join(sub);
            removed.extend(remove_stale_temp_files(&dir, None, true));
            removed.extend(checkpoint::remove_unreferenced(&dir));
        }
        if !removed.is_empty() {
            notes.push(format!(
                "removed {} file(s) a killed run left in {}: {}",
                removed.len(),
                out.display(),
                removed.join(", ")
            ));
        }
    }
    if let Some(p) = &previous {
        notes.push(format!(
            "took over the {} left by {p}, which is no longer running",
            names::LOCK
        ));
    }
    Ok((lock, previous, notes))
}

/// What in `out` shows that a run was there: the traces, and whether one
/// of them is a checkpoint (something `--resume` can continue).
struct Traces {
    found: Vec<String>,
    checkpoint: bool,
}

impl Traces {
    fn of(out: &Path, previous_lock: Option<&str>) -> Self {
        let mut found: Vec<String> = [names::LATEST, names::BEST, names::METRICS]
            .iter()
            .filter(|n| out.join(n).exists())
            .map(|n| {
                if out.join(n).is_dir() {
                    format!("{n}/")
                } else {
                    n.to_string()
                }
            })
            .collect();
        if let Some(p) = previous_lock {
            found.push(format!("a {} left by {p}", names::LOCK));
        }
        let checkpoint = names::CHECKPOINTS
            .iter()
            .any(|sub| out.join(sub).join(checkpoint::META_FILE).is_file());
        Traces { found, checkpoint }
    }

    /// The refusal of a fresh start, naming what works.
    fn refusal(&self, out: &Path) -> Error {
        let found = self.found.join(", ");
        Error::RunExists(if self.checkpoint {
            format!(
                "{} holds an earlier run ({found}); pass --resume to continue it, --overwrite to start over, or another --out",
                out.display()
            )
        } else {
            format!(
                "{} holds what a run killed before its first checkpoint left ({found}), with nothing to resume; pass --overwrite to start over, or another --out",
                out.display()
            )
        })
    }
}

impl Run {
    /// Sets up the run `req` asks for (see the module docs).
    pub fn open(req: &RunRequest, dev: &Device) -> Result<Self> {
        match req.start {
            Start::Resume => Self::resume(req, dev),
            Start::Fresh | Start::Overwrite => Self::fresh(req, dev),
        }
    }

    fn fresh(req: &RunRequest, dev: &Device) -> Result<Self> {
        let overwrite = req.start == Start::Overwrite;
        let (lock, previous, mut notes) = lock_and_clean(&req.out, overwrite)?;
        let traces = Traces::of(&req.out, previous.as_deref());
        if !overwrite && !traces.found.is_empty() {
            return Err(traces.refusal(&req.out));
        }
        if !overwrite {
            // Nothing of a run is there: only stray temporary files can be.
            remove_stale_temp_files(&req.out, None, true);
        }
        let data = load_data(req, req.data.as_ref().unwrap_or(&DataChoice::Bundled))?;
        let plan = RunPlan::fresh(
            requested_config(req, &data)?,
            &req.runtime,
            &data,
            req.seed.unwrap_or(0),
        )?;
        let trainer = Trainer::start(plan, &data, dev)?;
        if overwrite {
            // The old run's files must not pass for the new run's.
            for sub in names::CHECKPOINTS {
                let dir = req.out.join(sub);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                }
            }
            let metrics = req.out.join(names::METRICS);
            if metrics.exists() {
                std::fs::remove_file(&metrics).map_err(|e| Error::io(&metrics, e))?;
            }
        }
        notes.extend(trainer.plan.config.model.notes());
        Ok(Run::locked(trainer, data, &req.out, lock, notes))
    }

    /// The run in OUT, on the data it recorded unless the request names
    /// other data (with the same number of pairs).
    fn resume(req: &RunRequest, dev: &Device) -> Result<Self> {
        let (lock, previous, mut notes) = lock_and_clean(&req.out, true)?;
        let Some((ckpt, meta)) = newest_checkpoint(&req.out)? else {
            let traces = Traces::of(&req.out, previous.as_deref());
            return Err(Error::input(if traces.found.is_empty() {
                format!(
                    "--resume: {} holds no run to resume; drop --resume to start one there",
                    req.out.display()
                )
            } else {
                format!(
                    "--resume: {} holds no checkpoint to resume, only what a run killed before its first checkpoint left ({}); pass --overwrite instead of --resume to start over",
                    req.out.display(),
                    traces.found.join(", ")
                )
            }));
        };
        let data = match (&req.data, &meta.data) {
            (None, Some(info)) => PairData::from_origin(&info.origin)?,
            (choice, _) => load_data(req, choice.as_ref().unwrap_or(&DataChoice::Bundled))?,
        };
        refuse_changes(req, &meta, &data, &ckpt)?;
        if let (Some(_), Some(info)) = (&req.data, &meta.data)
            && info.origin != data.origin
        {
            // Allowed for a data file that moved; the trainer checks the
            // pair count and the widths.
            notes.push(format!(
                "resuming on {} (the run recorded {})",
                data.origin, info.origin
            ));
        }
        let (mut plan, replanned) = RunPlan::resumed(&meta, &ckpt, &req.runtime, &data, req.epochs)?;
        if !req.config.is_default() {
            // Settings that do not change what the run computes.
            let wanted = requested_config(req, &data)?.train;
            plan.config.train.checkpoint_every_steps = wanted.checkpoint_every_steps;
            plan.config.train.checkpoint_every_seconds = wanted.checkpoint_every_seconds;
            plan.config.train.learned_baselines = wanted.learned_baselines;
        }
        let mut trainer = Trainer::continue_from(plan, &ckpt, &meta, &data, dev)?;
        if let Some(before) = &meta.runtime {
            let changed = before.differences(&trainer.plan.runtime);
            if !changed.is_empty() {
                notes.push(format!(
                    "executing differently from the session that wrote {}: {} (was vs now); execution settings do not change the run, so it goes on",
                    ckpt.display(),
                    changed.join(", ")
                ));
            }
        }
        if ckpt.ends_with(names::BEST) {
            notes.push(format!(
                "{} is newer than latest/ (the last run stopped between writing the two): resuming from it",
                ckpt.display()
            ));
        }
        notes.extend(reconcile_best(&req.out, &mut trainer)?);
        notes.extend(replanned);
        if !trainer.plan.split.separate_test {
            notes.push(
                "this run predates the test split: its held-out rows choose best/ and are also what its closing line reports"
                    .to_string(),
            );
        }
        notes.push(format!(
            "resuming {} at step {} (epoch {})",
            req.out.display(),
            trainer.state.step,
            trainer.state.epoch
        ));
        notes.extend(trainer.plan.config.model.notes());
        Ok(Run::locked(trainer, data, &req.out, lock, notes))
    }
}

/// The newer (by optimizer step) of OUT/latest and OUT/best; None when
/// neither holds a checkpoint.
fn newest_checkpoint(out: &Path) -> Result<Option<(PathBuf, Meta)>> {
    let mut found: Option<(PathBuf, Meta)> = None;
    for sub in [names::LATEST, names::BEST] {
        let dir = out.join(sub);
        if !dir.join(checkpoint::META_FILE).is_file() {
            continue;
        }
        let meta = checkpoint::read_meta(&dir)?;
        let step = |m: &Meta| m.train.as_ref().map_or(0, |t| t.step);
        if found.as_ref().is_none_or(|(_, m)| step(&meta) > step(m)) {
            found = Some((dir, meta));
        }
    }
    Ok(found)
}

/// Refuses a resume request whose flags or config would change the run,
/// naming each. `--epochs` is allowed (the run is re-planned and says so),
/// and so are the checkpoint intervals, which do not change what it computes.
fn refuse_changes(req: &RunRequest, meta: &Meta, data: &PairData, ckpt: &Path) -> Result<()> {
    let mut changed = Vec::new();
    let run = &meta.config.train;
    if let (Some(s), Some(t)) = (req.seed, &meta.train)
        && s != t.seed
    {
        changed.push(format!("--seed {s} (the run's is {})", t.seed));
    }
    if let Some(v) = req.val_fraction {
        let theirs = meta.data.as_ref().map_or(run.val_fraction, |d| d.val_fraction);
        if v != theirs {
            changed.push(format!("--val-fraction {v} (the run's is {theirs})"));
        }
    }
    if let Some(v) = req.test_fraction {
        let theirs = meta.data.as_ref().map_or(Some(run.test_fraction), |d| d.test_fraction);
        if Some(v) != theirs {
            let theirs = theirs.map_or("none: it predates the test split".to_string(), |t| t.to_string());
            changed.push(format!("--test-fraction {v} (the run's is {theirs})"));
        }
    }
    if let Some(l) = req.loss
        && l != run.loss
    {
        changed.push(format!("--loss {} (the run's is {})", l.name(), run.loss.name()));
    }
    if !req.config.is_default() {
        let wanted = requested_config(req, data)?;
        let mut have = meta.config.clone();
        if let Some(e) = req.epochs {
            have.train.epochs = e;
            have.train.planned_steps = None;
        }
        have.train.checkpoint_every_steps = wanted.train.checkpoint_every_steps;
        have.train.checkpoint_every_seconds = wanted.train.checkpoint_every_seconds;
        have.train.learned_baselines = wanted.train.learned_baselines;
        // A field a flag already names is not repeated.
        let by_flag = |d: &String| {
            (req.val_fraction.is_some() && d.starts_with("train.val_fraction "))
                || (req.test_fraction.is_some() && d.starts_with("train.test_fraction "))
                || (req.loss.is_some() && d.starts_with("train.loss "))
        };
        let source = req.config.describe();
        let fields: Vec<String> = have.differences(&wanted).into_iter().filter(|d| !by_flag(d)).collect();
        if !fields.is_empty() {
            changed.push(format!("{source}: {} (run vs requested)", fields.join(", ")));
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "--resume: these would change the run in {}: {}; drop them to resume it as it is, or start a new run with --overwrite or another --out",
        ckpt.display(),
        changed.join("; ")
    )))
}

/// Makes what the trainer's state says about the best model agree with
/// `OUT/best`, which is always written before `latest/`: after a crash
/// between the two writes, and for run folders of builds that wrote them
/// the other way round. Returns a note when they disagreed.
fn reconcile_best(out: &Path, trainer: &mut Trainer) -> Result<Option<String>> {
    let dir = out.join(names::BEST);
    let s = &mut trainer.state;
    let before = (s.best_step, s.best_val_loss);
    if !dir.join(checkpoint::META_FILE).is_file() {
        s.best_step = None;
        s.best_val_loss = None;
    } else {
        let meta = checkpoint::read_meta(&dir)?;
        let foreign = || {
            Error::input(format!(
                "{}: not a checkpoint of the run in {} (another seed, model or data); move it away to resume",
                dir.display(),
                out.display()
            ))
        };
        let (Some(bs), Some(info)) = (&meta.train, &meta.data) else {
            return Err(foreign());
        };
        let plan = &trainer.plan;
        let same = bs.seed == s.seed
            && meta.config.model == plan.config.model
            && info.n == plan.data.n
            && info.val_fraction == plan.data.val_fraction
            && info.test_fraction == plan.data.test_fraction;
        let Some(loss) = bs.best_val_loss.filter(|_| same && bs.step <= s.step) else {
            return Err(foreign());
        };
        s.best_step = Some(bs.step);
        s.best_val_loss = Some(loss);
    }
    let after = (s.best_step, s.best_val_loss);
    Ok((before != after).then(|| {
        let show = |(step, loss): (Option<usize>, Option<f64>)| match (step, loss) {
            (Some(step), Some(loss)) => format!("step {step} (held-out loss {loss:.4})"),
            _ => "none".to_string(),
        };
        format!(
            "the checkpoint recorded the best model as {}, best/ holds {}: best/ is what counts",
            show(before),
            show(after)
        )
    }))
}

/// The config a request asks for (preset, file, flag overrides), with the
/// embedding widths taken from the data unless the file sets them (a
/// mismatch is then refused by the trainer).
fn requested_config(req: &RunRequest, data: &PairData) -> Result<EnergyConfig> {
    let loaded = req.config.load()?;
    let mut cfg = loaded.config.clone();
    if let Some(e) = req.epochs {
        // Asking for epochs means planning by epochs: no step budget.
        cfg.train.epochs = e;
        cfg.train.planned_steps = None;
    }
    if let Some(v) = req.val_fraction {
        cfg.train.val_fraction = v;
    }
    if let Some(v) = req.test_fraction {
        cfg.train.test_fraction = v;
    }
    if let Some(l) = req.loss {
        cfg.train.loss = l;
    }
    if !loaded.file_sets("model.input_embedding_dim") {
        cfg.model.input_embedding_dim = data.input.cols;
    }
    if !loaded.file_sets("model.output_embedding_dim") {
        cfg.model.output_embedding_dim = data.target.cols;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The data `choice` names.
fn load_data(req: &RunRequest, choice: &DataChoice) -> Result<PairData> {
    match choice {
        DataChoice::Synthetic => {
            let dim = req.config.load()?.config.model.input_embedding_dim;
            PairData::synthetic(SYNTHETIC_PAIRS, dim, SYNTHETIC_SEED)
        }
        DataChoice::File(path) => PairData::load(path),
        DataChoice::Pairs(pairs) => Ok(pairs.as_ref().clone()),
        DataChoice::Bundled => PairData::bundled(),
    }
}
