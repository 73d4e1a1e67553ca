//! `energyflow train` killed and signalled as a user (or a machine) does:
//! SIGTERM and SIGHUP stop a run like Ctrl-C (exit code 130 once the
//! checkpoint is written), a second signal exits at
//! once without leaving a torn or temporary file, a second writer is
//! refused naming the running process, and a run killed with SIGKILL is
//! taken over by the next `--resume`, which continues from its last
//! periodic checkpoint.

use energyflow::checkpoint;
use energyflow::io::StoreDtype;
use energyflow::kernels::Kernels;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Setup, assert_refused, energyflow, s, setup_with};

const TINY: &str = "preset = \"debug\"\n[model]\nlattice_width = 5\nlattice_height = 4\nmapper_hidden = 32\n\
neuron_hidden_dim = 8\nneuron_output_dim = 8\ncarrier_hidden_dim = 16\ncarrier_layers = 1\n\
[flow]\nlattice_depth = 4\nmax_active_flows = 400\n\
[train]\nbatch_size = 4\nepochs = 100000\nplanned_steps = 1000000\ncheckpoint_every_steps = 2\nlearned_baselines = false\n";

fn setup() -> Setup {
    setup_with(TINY, 400, StoreDtype::F16)
}

fn args<'a>(st: &'a Setup, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--config",
        s(&st.config),
        "--data",
        s(&st.data),
        "--out",
        s(&st.out),
        "--quiet",
    ];
    a.extend_from_slice(extra);
    a
}

fn spawn(st: &Setup, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args(args(st, extra))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn step_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"kind\":\"step\""))
        .count()
}

/// Waits until the run has logged `n` steps (and its first periodic
/// checkpoint, at step 2, exists).
fn wait_for_steps(run: &Path, n: usize) {
    let t0 = Instant::now();
    while step_lines(run) < n || !run.join("latest/checkpoint.json").is_file() {
        assert!(t0.elapsed().as_secs() < 120, "training never got to step {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every file under `dir`, relative names.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if e.path().is_dir() {
            out.extend(files(&e.path()).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(name);
        }
    }
    out
}

fn latest_step(run: &Path) -> usize {
    checkpoint::read_meta(&run.join("latest")).unwrap().train.unwrap().step
}

#[test]
fn sigterm_and_sighup_stop_a_run_like_ctrl_c() {
    for sig in ["-TERM", "-HUP"] {
        let st = setup();
        let child = spawn(&st, &[]);
        wait_for_steps(&st.out, 3);
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{sig}: {err}");
        assert!(err.contains("interrupted"), "{sig}: {err}");
        let step = latest_step(&st.out);
        assert_eq!(
            step_lines(&st.out),
            step,
            "{sig}: every finished step is logged and saved"
        );
        assert_eq!(files(&st.out).iter().filter(|f| f.contains(".tmp-")).count(), 0);
        assert!(!st.out.join("run.lock").exists());
    }
}

#[test]
fn a_second_signal_exits_at_once_and_leaves_no_torn_or_temporary_file() {
    let st = setup();
    let child = spawn(&st, &[]);
    wait_for_steps(&st.out, 3);
    signal(&child, "-INT");
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let all = files(&st.out);
    assert!(all.iter().all(|f| !f.contains(".tmp-")), "{all:?}");
    // Whatever checkpoint is there is whole, and the run resumes from it.
    for sub in ["latest", "best"] {
        if st.out.join(sub).join("checkpoint.json").exists() {
            checkpoint::load_model(&st.out.join(sub), Kernels::Fused, &burn::tensor::Device::flex()).unwrap();
        }
    }
    let out = energyflow(&args(&st, &["--resume", "--max-steps", "6"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_second_writer_is_refused_and_a_killed_run_is_taken_over() {
    let st = setup();
    let mut child = spawn(&st, &[]);
    wait_for_steps(&st.out, 5);
    let pid = child.id().to_string();
    let holder = format!("in use by process {pid}");
    assert_refused(&energyflow(&args(&st, &["--resume"])), &holder);
    assert_refused(&energyflow(&args(&st, &[])), &holder);
    assert_refused(&energyflow(&args(&st, &["--overwrite"])), &holder);

    signal(&child, "-KILL");
    child.wait().unwrap();
    let saved = latest_step(&st.out);
    assert!(
        saved >= 4 && saved.is_multiple_of(2),
        "periodic checkpoint at step {saved}"
    );
    let out = energyflow(&args(&st, &["--resume", "--max-steps", &(saved + 2).to_string()]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("took over the run.lock left by process {pid}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("resuming {} at step {saved}", st.out.display())),
        "{err}"
    );
    assert_eq!(latest_step(&st.out), saved + 2);
    assert_eq!(step_lines(&st.out), saved + 2);
    let all = files(&st.out);
    assert!(all.iter().all(|f| !f.contains(".tmp-") && f != "run.lock"), "{all:?}");
}
