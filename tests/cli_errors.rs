//! How failures read on the command line: one line, exit code 2, details
//! only with `--verbose`, and a panic (here: stdout closed under `infer`)
//! caught and reported in one line too, as a bug (exit code 70).

use burn::tensor::Device;
use energyflow::checkpoint;
use energyflow::config::RuntimeConfig;
use energyflow::config::{EnergyConfig, Preset};
use energyflow::io::{Matrix, StoreDtype, save_matrices};
use energyflow::train::{PairData, Trainer};
use std::process::{Command, Stdio};

mod common;
use common::{assert_refused, energyflow};

fn tiny() -> EnergyConfig {
    let mut c = EnergyConfig::preset(Preset::Debug);
    c.model.lattice_width = 4;
    c.model.lattice_height = 3;
    c.flow.lattice_depth = 4;
    c.train.batch_size = 4;
    c.model.input_embedding_dim = 5;
    c.model.output_embedding_dim = 5;
    c.model.mapper_hidden = Some(16);
    c.model.neuron_hidden_dim = 4;
    c.model.neuron_output_dim = 4;
    c.model.carrier_hidden_dim = 8;
    c.model.carrier_layers = 1;
    c.flow.max_active_flows = 200;
    c
}

#[test]
fn a_weights_file_with_a_renamed_tensor_is_one_line_and_verbose_lists_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = PairData::synthetic_rotation(12, 5, 1);
    let ckpt = dir.path().join("ckpt");
    Trainer::new(tiny(), &RuntimeConfig::default(), &data, 0, &Device::flex())
        .unwrap()
        .save(&ckpt)
        .unwrap();
    let weights = ckpt.join(checkpoint::read_meta(&ckpt).unwrap().weights);
    let bytes = std::fs::read(&weights).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    let renamed: Vec<(String, safetensors::tensor::TensorView)> = names
        .iter()
        .map(|n| {
            let new = if *n == names[0] {
                format!("{n}_renamed")
            } else {
                n.to_string()
            };
            (new, st.tensor(n).unwrap())
        })
        .collect();
    std::fs::write(&weights, safetensors::serialize(renamed, None).unwrap()).unwrap();
    let c = ckpt.to_str().unwrap();
    let out = energyflow(&["eval", "--checkpoint", c]);
    assert_refused(
        &out,
        &format!("weights do not fit the model: missing tensor {}", names[0]),
    );
    assert_refused(&out, "(and 1 more problem(s); --verbose lists them)");
    let out = energyflow(&["eval", "--checkpoint", c, "--verbose"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.lines().count() >= 3, "{err}");
    assert!(
        err.contains(&format!("unexpected tensor {}_renamed", names[0])),
        "{err}"
    );
}

#[test]
fn a_toml_error_is_one_line_and_verbose_shows_the_excerpt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[model]\nlattice_width = = 3\n").unwrap();
    let x = dir.path().join("x.safetensors");
    let m = Matrix {
        rows: 1,
        cols: 768,
        data: vec![0.1; 768],
    };
    save_matrices(&x, &[("input", &m)], StoreDtype::F32).unwrap();
    let args = |verbose: bool| {
        let mut a = vec![
            "infer",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            x.to_str().unwrap(),
            "--output",
            "/tmp/never-written.safetensors",
        ];
        if verbose {
            a.push("--verbose");
        }
        energyflow(&a)
    };
    assert_refused(&args(false), "line 2, column 17");
    let err = String::from_utf8_lossy(&args(true).stderr).to_string();
    assert!(err.lines().count() > 1 && err.contains("lattice_width = = 3"), "{err}");
}

#[test]
fn a_panic_is_reported_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.safetensors");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[model]\nlattice_width = 4\nlattice_height = 3\ninput_embedding_dim = 5\nmapper_hidden = 16\n\
         carrier_hidden_dim = 8\ncarrier_layers = 1\n[flow]\nlattice_depth = 4\nmax_active_flows = 200\n\
         [train]\nbatch_size = 4\n",
    )
    .unwrap();
    let m = Matrix {
        rows: 2,
        cols: 5,
        data: vec![0.1; 10],
    };
    save_matrices(&x, &[("input", &m)], StoreDtype::F32).unwrap();
    let y = dir.path().join("y.safetensors");
    // stdout is a pipe nobody reads: printing the statistics line fails
    // (EPIPE), which std turns into a panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args(["infer", "--config", cfg.to_str().unwrap()])
        .args(["--input", x.to_str().unwrap(), "--output", y.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert_eq!(out.status.code(), Some(70), "{err}");
    assert!(
        last.starts_with("energyflow: error: internal error, a bug in energyflow")
            && last.contains("failed printing to stdout"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(y.is_file(), "the output was written before the print");
}

/// Values inside every range that together need far more memory than any
/// machine has, and count flags near usize::MAX: refused before allocating.
#[test]
fn numbers_that_would_abort_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::write(
        &huge,
        "preset = \"debug\"\n[model]\nlattice_width = 1024\nlattice_height = 1024\n[flow]\nmax_active_flows = 8388608\n",
    )
    .unwrap();
    let x = dir.path().join("x.safetensors");
    let m = Matrix {
        rows: 1,
        cols: 768,
        data: vec![0.1; 768],
    };
    save_matrices(&x, &[("input", &m)], StoreDtype::F32).unwrap();
    let y = dir.path().join("y.safetensors");
    let h = huge.to_str().unwrap();
    let out = energyflow(&[
        "infer",
        "--config",
        h,
        "--input",
        x.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    assert_refused(&out, "needs at least");
    assert_refused(&out, "is available");
    let run = dir.path().join("run");
    let out = energyflow(&[
        "train",
        "--config",
        h,
        "--data",
        "synthetic",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_refused(&out, "training with this config");
    assert!(!run.exists(), "a refused run leaves no folder behind");
    let wide = dir.path().join("wide.toml");
    std::fs::write(&wide, "[model]\ninput_embedding_dim = 65536\n").unwrap();
    let out = energyflow(&[
        "train",
        "--config",
        wide.to_str().unwrap(),
        "--data",
        "synthetic",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_refused(&out, "width (model.input_embedding_dim) must be 1..=2048");

    let max = usize::MAX.to_string();
    for (args, needle) in [
        (vec!["bench", "collect", "--flows", &max], "--flows"),
        (vec!["bench", "collect", "--samples", &max], "--samples"),
        (vec!["bench", "collect", "--runs", "0"], "--runs 0"),
        (vec!["bench", "step", "--runs", &max], "--runs"),
        (vec!["bench", "step", "--warmup", &max], "--warmup"),
        (vec!["bench", "step", "--batch", &max], "train.batch_size"),
    ] {
        assert_refused(&energyflow(&args), needle);
    }
}

#[test]
fn a_checkpoint_with_nan_weights_is_refused_and_eval_never_prints_null() {
    let dir = tempfile::tempdir().unwrap();
    let data = PairData::synthetic_rotation(12, 5, 1);
    let ckpt = dir.path().join("ckpt");
    Trainer::new(tiny(), &RuntimeConfig::default(), &data, 0, &Device::flex())
        .unwrap()
        .save(&ckpt)
        .unwrap();
    let weights = ckpt.join(checkpoint::read_meta(&ckpt).unwrap().weights);
    let bytes = std::fs::read(&weights).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("collector.fc3.weight").unwrap();
    let offset = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
    let mut broken = bytes.clone();
    broken[offset..offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&weights, broken).unwrap();
    let d = dir.path().join("d.safetensors");
    save_matrices(&d, &[("input", &data.input), ("target", &data.target)], StoreDtype::F32).unwrap();
    let out = energyflow(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        d.to_str().unwrap(),
        "--json",
    ]);
    assert_refused(&out, "tensor collector.fc3.weight holds a non-finite value");
    assert!(out.stdout.is_empty());
}
