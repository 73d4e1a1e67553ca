//! Every refusal of `train` names a command that works: for each one, this
//! test runs the command the message proposes and checks that it succeeds
//! (a folder that holds a run, one holding only what a run killed before
//! its first checkpoint left, a lock left by a dead process, a resume with
//! changes, nothing to resume, a folder another process is writing).

mod common;

use common::{Setup, TINY, assert_refused, energyflow, s, setup_with};
use energyflow::io::StoreDtype;
use energyflow::train::lock::RunLock;
use std::path::Path;
use std::process::Output;

fn train(st: &Setup, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--config",
        s(&st.config),
        "--data",
        s(&st.data),
        "--out",
        s(out),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    energyflow(&args)
}

fn ok(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what}: {err}");
    err
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// What a run killed before its first checkpoint leaves: its step
/// records and its lock file naming a process that is gone.
fn killed_before_first_checkpoint(out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("metrics.jsonl"), "{\"kind\":\"step\",\"step\":1}\n").unwrap();
    std::fs::write(out.join("run.lock"), "999999999\nenergyflow train --out x\n").unwrap();
}

#[test]
fn a_folder_that_holds_a_run_is_told_resume_overwrite_or_another_out() {
    let st = setup_with(TINY, 40, StoreDtype::F32);
    ok(&train(&st, &st.out, &["--max-steps", "2"]), "first run");
    let refused = train(&st, &st.out, &["--max-steps", "2"]);
    assert_refused(
        &refused,
        "pass --resume to continue it, --overwrite to start over, or another --out",
    );
    ok(&train(&st, &st.out, &["--resume", "--max-steps", "3"]), "--resume");
    ok(
        &train(&st, &st.out, &["--overwrite", "--max-steps", "1"]),
        "--overwrite",
    );
    ok(
        &train(&st, &st.dir.path().join("other"), &["--max-steps", "1"]),
        "another --out",
    );
}

#[test]
fn a_run_killed_before_its_first_checkpoint_is_told_overwrite_by_both_starts() {
    let st = setup_with(TINY, 40, StoreDtype::F32);
    killed_before_first_checkpoint(&st.out);
    let fresh = train(&st, &st.out, &["--max-steps", "1"]);
    assert_refused(&fresh, "with nothing to resume; pass --overwrite to start over");
    let resume = train(&st, &st.out, &["--resume", "--max-steps", "1"]);
    assert_refused(&resume, "pass --overwrite instead of --resume to start over");
    // Both refusals leave the traces as they were.
    assert!(st.out.join("metrics.jsonl").is_file());
    let err = ok(
        &train(&st, &st.out, &["--overwrite", "--max-steps", "1"]),
        "--overwrite",
    );
    assert!(
        err.contains("took over the run.lock left by process 999999999"),
        "{err}"
    );
}

#[test]
fn a_lock_left_by_a_dead_process_beside_a_checkpoint_is_told_resume() {
    let st = setup_with(TINY, 40, StoreDtype::F32);
    ok(&train(&st, &st.out, &["--max-steps", "2"]), "first run");
    std::fs::write(st.out.join("run.lock"), "999999999\nenergyflow train --out x\n").unwrap();
    let refused = train(&st, &st.out, &["--max-steps", "3"]);
    assert_refused(&refused, "a run.lock left by process 999999999");
    assert!(stderr(&refused).contains("pass --resume to continue it"));
    let err = ok(&train(&st, &st.out, &["--resume", "--max-steps", "3"]), "--resume");
    assert!(err.contains("took over the run.lock"), "{err}");
}

#[test]
fn a_resume_with_changes_is_told_to_drop_them() {
    let st = setup_with(TINY, 40, StoreDtype::F32);
    ok(&train(&st, &st.out, &["--max-steps", "2", "--seed", "3"]), "first run");
    let refused = train(&st, &st.out, &["--resume", "--seed", "4", "--max-steps", "3"]);
    assert_refused(&refused, "--seed 4 (the run's is 3); drop them to resume it as it is");
    ok(
        &train(&st, &st.out, &["--resume", "--max-steps", "3"]),
        "--resume without --seed",
    );
}

#[test]
fn nothing_to_resume_is_told_to_drop_resume() {
    let st = setup_with(TINY, 40, StoreDtype::F32);
    let refused = train(&st, &st.out, &["--resume", "--max-steps", "1"]);
    assert_refused(&refused, "holds no run to resume; drop --resume to start one there");
    ok(&train(&st, &st.out, &["--max-steps", "1"]), "without --resume");
}

#[test]
fn a_folder_in_use_is_told_another_out() {
    let st = setup_with(TINY, 40, StoreDtype::F32);
    let (_held, _) = RunLock::acquire(&st.out).unwrap();
    let refused = train(&st, &st.out, &["--max-steps", "1"]);
    assert_refused(&refused, "or choose another --out");
    ok(
        &train(&st, &st.dir.path().join("other"), &["--max-steps", "1"]),
        "another --out",
    );
}
