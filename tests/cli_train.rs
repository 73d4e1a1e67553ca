//! `energyflow train` and `eval` as a user runs them: the eval line, the
//! run folder, resume, refusals (exit code 2, one line), Ctrl-C.

use energyflow::io::{Matrix, StoreDtype, save_matrices};
use energyflow::train::PairData;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::{Setup, TINY, assert_refused, energyflow, s, setup_with};

fn setup() -> Setup {
    setup_with(TINY, 40, StoreDtype::F16)
}

/// The arguments of a quiet training run of the tiny config on the setup.
fn train_args(st: &Setup) -> Vec<&str> {
    vec![
        "train",
        "--config",
        s(&st.config),
        "--data",
        s(&st.data),
        "--out",
        s(&st.out),
        "--quiet",
    ]
}

fn train(st: &Setup, extra: &[&str]) -> Output {
    let mut args = train_args(st);
    args.extend_from_slice(extra);
    energyflow(&args)
}

fn step_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"kind\":\"step\""))
        .count()
}

fn eval_line(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in ["n", "loss", "mse", "cosine", "identity_cosine", "linear_cosine"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    v
}

#[test]
fn train_resume_and_eval_end_to_end() {
    let st = setup();
    let out = train(&st, &["--max-steps", "3", "--seed", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = eval_line(&out);
    assert_eq!(v["n"], 4);
    // train's closing line is exactly what eval says of the run's best/.
    let e = energyflow(&["eval", "--checkpoint", s(&st.out), "--json"]);
    assert_eq!(eval_line(&e), v);
    assert!(st.out.join("latest/checkpoint.json").is_file() && st.out.join("best/checkpoint.json").is_file());
    assert_eq!(step_lines(&st.out), 3);

    // A second fresh run into the same folder is refused.
    assert_refused(&train(&st, &["--max-steps", "3"]), "--resume");

    let out = train(&st, &["--resume", "--max-steps", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    assert_eq!(step_lines(&st.out), 5);

    // A different architecture is refused, naming the fields.
    let out = energyflow(&[
        "train",
        "--preset",
        "experiment",
        "--data",
        s(&st.data),
        "--out",
        s(&st.out),
        "--resume",
    ]);
    assert_refused(&out, "model.lattice_width (5 vs 28)");

    // --overwrite starts over (old checkpoints gone); --epochs plans by
    // epochs: 40 pairs less 4 validation and 4 test ones leave 32 training
    // pairs, in batches of 4 8 steps per epoch.
    let out = train(&st, &["--overwrite", "--epochs", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 steps planned"));
    assert_eq!(step_lines(&st.out), 8);
    let meta = std::fs::read_to_string(st.out.join("latest/checkpoint.json")).unwrap();
    assert!(meta.contains("\"step\": 8"), "{meta}");

    let out = energyflow(&["eval", "--checkpoint", s(&st.out), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e = eval_line(&out);
    assert_eq!(e["n"], 4);
    // identity and linear baselines are real numbers on this task.
    assert!(e["linear_cosine"].as_f64().unwrap() > 0.3);

    // A lesion changes the model's figures, in the same format, and leaves
    // the baselines alone; an unknown lesion is refused.
    for lesion in ["shuffle-cells", "shuffle-samples"] {
        let out = energyflow(&["eval", "--checkpoint", s(&st.out), "--json", "--lesion", lesion]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let l = eval_line(&out);
        assert_ne!(l["cosine"], e["cosine"], "{lesion}");
        assert_eq!((&l["n"], &l["linear_cosine"]), (&e["n"], &e["linear_cosine"]));
    }
    let out = energyflow(&["eval", "--checkpoint", s(&st.out), "--lesion", "everything"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_data_and_flags_are_refused() {
    let st = setup();
    let dir = st.data.parent().unwrap();
    let missing = dir.join("missing.safetensors");
    let out = energyflow(&["train", "--data", s(&missing), "--out", s(&st.out)]);
    assert_refused(&out, "missing.safetensors");

    let only_input = dir.join("only.safetensors");
    let m = Matrix {
        rows: 4,
        cols: 6,
        data: vec![0.1; 24],
    };
    save_matrices(&only_input, &[("input", &m)], StoreDtype::F32).unwrap();
    let out = energyflow(&["train", "--data", s(&only_input), "--out", s(&st.out)]);
    assert_refused(&out, "no tensor named \"target\"");

    let uneven = dir.join("uneven.safetensors");
    let t = Matrix {
        rows: 3,
        cols: 6,
        data: vec![0.1; 18],
    };
    save_matrices(&uneven, &[("input", &m), ("target", &t)], StoreDtype::F32).unwrap();
    let out = energyflow(&["train", "--data", s(&uneven), "--out", s(&st.out)]);
    assert_refused(&out, "has 4 rows but \"target\" has 3");

    // The config file pins a width the data does not have.
    let pinned = dir.join("pinned.toml");
    std::fs::write(
        &pinned,
        TINY.replace("[model]\n", "[model]\ninput_embedding_dim = 10\n"),
    )
    .unwrap();
    let out = energyflow(&[
        "train",
        "--config",
        s(&pinned),
        "--data",
        s(&st.data),
        "--out",
        s(&st.out),
    ]);
    assert_refused(&out, "model.input_embedding_dim = 10");

    let out = train(&st, &["--val-fraction", "1.5"]);
    assert_refused(&out, "val_fraction");

    let out = energyflow(&["train", "--resume", "--out", s(&dir.join("nothing"))]);
    assert_refused(&out, "holds no run to resume; drop --resume");

    let out = energyflow(&["eval", "--checkpoint", s(&dir.join("nothing"))]);
    assert_refused(&out, "not a checkpoint");
}

#[test]
fn ctrl_c_finishes_the_step_saves_and_exits() {
    let st = setup();
    let child = Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args(train_args(&st))
        .args(["--max-steps", "100000", "--epochs", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = st.out.join("metrics.jsonl");
    let t0 = std::time::Instant::now();
    while !(metrics.is_file() && step_lines(&st.out) >= 2) {
        assert!(t0.elapsed().as_secs() < 120, "training never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Stopped by a signal, after the checkpoint was written: 130.
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(st.out.join("latest/checkpoint.json")).unwrap()).unwrap();
    let step = meta["train"]["step"].as_u64().unwrap() as usize;
    assert!((2..100_000).contains(&step), "{step}");
    assert_eq!(
        step_lines(&st.out),
        step,
        "every finished step is logged, and only those"
    );
    eval_line(&out);
}

/// The bundled pairs are part of the binary: a run without --data works
/// from any folder (nothing is looked up next to the source tree) and
/// records an origin that eval and --resume re-open without a file.
#[test]
fn the_bundled_data_needs_no_file() {
    let st = setup();
    let tiny = TINY.replace("epochs = 50\nplanned_steps = 1000000\n", "planned_steps = 1\n");
    std::fs::write(&st.config, tiny).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args(["train", "--config", s(&st.config), "--out", s(&st.out), "--quiet"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(eval_line(&out)["n"], 400);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(st.out.join("latest/checkpoint.json")).unwrap()).unwrap();
    assert_eq!(meta["data"]["origin"], "bundled:wordnet-pairs");
    let data = PairData::from_origin("bundled:wordnet-pairs").unwrap();
    assert_eq!((data.len(), data.input.cols, data.target.cols), (4000, 384, 384));
    let e = PairData::from_origin("bundled:other").unwrap_err().to_string();
    assert!(e.contains("bundles only"), "{e}");
}

#[test]
fn the_learned_baselines_are_fitted_kept_and_reported_unless_switched_off() {
    for fit in [true, false] {
        let st = setup();
        let config = TINY.replace("learned_baselines = false", &format!("learned_baselines = {fit}"));
        std::fs::write(&st.config, config).unwrap();
        let out = train(&st, &["--max-steps", "1"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v = eval_line(&out);
        assert_eq!(st.out.join("baselines.json").is_file(), fit, "fit {fit}");
        for key in ["mlp_cosine", "residual_mlp_cosine"] {
            let c = v[key].as_f64();
            assert_eq!(c.is_some(), fit, "{key} with fit {fit}: {v}");
            assert!(c.is_none_or(|c| (-1.0..=1.0).contains(&c)), "{key}: {v}");
        }
        // eval reads the kept fit (or reports none), the same as train's line.
        let e = energyflow(&["eval", "--checkpoint", s(&st.out), "--json"]);
        assert_eq!(eval_line(&e), v, "fit {fit}");
    }
}
