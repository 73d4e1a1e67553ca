//! The `[runtime]` section: execution settings are recorded in each
//! checkpoint but are not a run's identity (a resume with other ones goes
//! on and says what differs), and a run folder written before the section
//! existed (tests/fixtures/run-before-runtime, with `flow.fused_kernels`,
//! `flow.spin_wait` and `model.mapper_layer_norm` in its config) still
//! loads, evaluates to the figures its build printed, and resumes.

mod common;

use burn::tensor::Device;
use common::{TINY, energyflow, s, setup_with};
use energyflow::checkpoint;
use energyflow::config::RuntimeConfig;
use energyflow::io::StoreDtype;
use energyflow::kernels::Kernels;
use energyflow::train::eval::evaluate_checkpoint;
use energyflow::train::{Run, RunRequest, Start};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-before-runtime")
}

/// A copy of the fixture run folder that a test may write into.
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    for sub in ["", "latest", "best"] {
        std::fs::create_dir_all(out.join(sub)).unwrap();
        for entry in std::fs::read_dir(fixture().join(sub)).unwrap().flatten() {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), out.join(sub).join(entry.file_name())).unwrap();
            }
        }
    }
    (dir, out)
}

#[test]
fn an_old_checkpoint_moves_its_execution_settings_into_the_runtime_record() {
    let meta = checkpoint::read_meta(&fixture().join("latest")).unwrap();
    let r = meta.runtime.expect("migrated");
    assert_eq!(r.kernels, Kernels::Composed);
    assert!(!r.spin_wait);
    assert!(!meta.config.model.mapper_collector_layer_norm);
    // The run's identity no longer holds them.
    let flow = serde_json::to_value(&meta.config.flow).unwrap();
    assert!(flow.get("fused_kernels").is_none() && flow.get("spin_wait").is_none());
}

#[test]
fn an_old_checkpoint_evaluates_to_what_its_build_printed() {
    let dev = Device::flex();
    // The closing line of the build that wrote it (tests/fixtures/README.md).
    let (loss, cosine) = (1.092050873041153, -0.015214180424809456);
    let composed = RuntimeConfig {
        kernels: Kernels::Composed,
        ..RuntimeConfig::default()
    };
    let (r, note) = evaluate_checkpoint(&fixture(), None, &composed, &dev).unwrap();
    // Its two-way split: the held-out rows that chose best/ are reported.
    let note = note.unwrap_or_default();
    assert!(
        note.contains("predates the test split") && note.contains("optimistic"),
        "{note}"
    );
    assert!(
        (r.loss - loss).abs() < 1e-6 && (r.cosine - cosine).abs() < 1e-6,
        "{r:?}"
    );
    assert_eq!(r.n, 200);
    // On our kernels: the same within float rounding.
    let (f, _) = evaluate_checkpoint(&fixture(), None, &RuntimeConfig::default(), &dev).unwrap();
    assert!(
        (f.loss - loss).abs() < 1e-4 && (f.cosine - cosine).abs() < 1e-4,
        "{f:?}"
    );
}

#[test]
fn an_old_run_resumes_saying_how_its_execution_differs() {
    let (_dir, out) = fixture_copy();
    let req = RunRequest::new(out.clone(), Start::Resume);
    let dev = Device::flex();
    let mut run = Run::open(&req, &dev).unwrap();
    let note = run
        .notes
        .iter()
        .find(|n| n.contains("executing differently"))
        .unwrap_or_else(|| panic!("{:?}", run.notes));
    assert!(
        note.contains("runtime.kernels (\"composed\" vs \"fused\")")
            && note.contains("runtime.spin_wait (false vs true)"),
        "{note}"
    );
    let summary = run.train(Some(5), &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(summary.steps, 5);
    // The new checkpoint records this session's settings, threads written out.
    let meta = checkpoint::read_meta(&out.join("latest")).unwrap();
    let r = meta.runtime.unwrap();
    assert_eq!(r.kernels, Kernels::Fused);
    assert!(r.spin_wait && r.threads.is_some_and(|t| t >= 1));
}

/// The flags and the config file's section reach the checkpoint; a resume
/// with other settings goes on and names them; a moved field is refused
/// naming `[runtime]`.
#[test]
fn runtime_flags_and_section_are_recorded_and_may_change_on_resume() {
    let toml = format!("{TINY}[runtime]\nkernels = \"composed\"\nspin_wait = false\n");
    let st = setup_with(&toml, 40, StoreDtype::F32);
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            s(&st.config),
            "--data",
            s(&st.data),
            "--out",
            s(&st.out),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        energyflow(&args)
    };
    let out = train(&["--max-steps", "2", "--threads", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = checkpoint::read_meta(&st.out.join("latest")).unwrap().runtime.unwrap();
    assert_eq!(
        r,
        RuntimeConfig {
            kernels: Kernels::Composed,
            spin_wait: false,
            threads: Some(1),
            ..RuntimeConfig::default()
        }
    );
    // Other kernels and threads on resume: not refused, said in one line.
    let out = train(&["--resume", "--max-steps", "4", "--threads", "2", "--kernels", "fused"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("executing differently"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("runtime.kernels") && line.contains("runtime.threads (1 vs 2)"),
        "{line}"
    );
    let r = checkpoint::read_meta(&st.out.join("latest")).unwrap().runtime.unwrap();
    assert_eq!((r.kernels, r.threads), (Kernels::Fused, Some(2)));

    let moved = st.dir.path().join("moved.toml");
    std::fs::write(&moved, TINY.replace("[flow]\n", "[flow]\nfused_kernels = true\n")).unwrap();
    let out = energyflow(&[
        "train",
        "--config",
        s(&moved),
        "--data",
        s(&st.data),
        "--out",
        s(&st.out),
    ]);
    common::assert_refused(&out, "is now [runtime] kernels");
    let out = energyflow(&["train", "--threads", "0", "--out", s(&st.out)]);
    common::assert_refused(&out, "--threads 0: must be between 1 and");
}
