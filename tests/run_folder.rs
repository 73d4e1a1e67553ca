//! The run folder under stress, through the library: one writer at a time,
//! any trace of a run protects it, best/ and latest/ agree after a crash
//! between their writes, periodic checkpoints, and resume requests that
//! would change the run.

use burn::tensor::Device;
use energyflow::checkpoint;
use energyflow::config::RuntimeConfig;
use energyflow::config::{ConfigSource, LossKind};
use energyflow::io::StoreDtype;
use energyflow::kernels::Kernels;
use energyflow::train::eval::evaluate_checkpoint;
use energyflow::train::{DataChoice, Event, PairData, Run, RunRequest, Start, Trainer};
use std::path::Path;
use std::sync::atomic::AtomicBool;

mod common;
use common::{Setup, setup_with};

const TINY: &str = "preset = \"debug\"\n[model]\nlattice_width = 5\nlattice_height = 4\nmapper_hidden = 32\n\
neuron_hidden_dim = 8\nneuron_output_dim = 8\ncarrier_hidden_dim = 16\ncarrier_layers = 1\n\
[flow]\nlattice_depth = 4\nmax_active_flows = 400\n\
[train]\nbatch_size = 4\nepochs = 50\nplanned_steps = 1000000\nwarmup_steps = 2\n";

fn setup(extra_toml: &str) -> Setup {
    setup_with(&format!("{TINY}{extra_toml}"), 40, StoreDtype::F32)
}

fn request(st: &Setup, start: Start) -> RunRequest {
    RunRequest {
        config: ConfigSource {
            preset: None,
            file: Some(st.config.clone()),
            text: None,
        },
        runtime: RuntimeConfig::default(),
        data: Some(DataChoice::File(st.data.clone())),
        epochs: None,
        val_fraction: None,
        test_fraction: None,
        loss: None,
        seed: None,
        out: st.out.clone(),
        start,
    }
}

fn open(req: &RunRequest) -> energyflow::Result<Run> {
    Run::open(req, &Device::flex())
}

/// Opens and trains up to `steps` steps in total; returns the run.
fn train_to(req: &RunRequest, steps: usize) -> Run {
    let mut run = open(req).unwrap();
    run.train(Some(steps), &AtomicBool::new(false), &mut |_| {}).unwrap();
    run
}

fn meta_step(dir: &Path) -> usize {
    checkpoint::read_meta(dir).unwrap().train.unwrap().step
}

#[test]
fn a_folder_in_use_is_refused_and_freed_when_the_run_ends() {
    let st = setup("");
    let run = open(&request(&st, Start::Fresh)).unwrap();
    let pid = std::process::id().to_string();
    for start in [Start::Fresh, Start::Resume, Start::Overwrite] {
        let e = open(&request(&st, start)).err().unwrap().to_string();
        assert!(e.contains("is in use by process") && e.contains(&pid), "{start:?}: {e}");
    }
    drop(run);
    assert!(!st.out.join("run.lock").exists());
    // The refused opens left nothing behind, and the folder is free again.
    open(&request(&st, Start::Fresh)).unwrap();
}

#[test]
fn any_trace_of_an_earlier_run_is_protected() {
    let st = setup("");
    train_to(&request(&st, Start::Fresh), 2);
    let keep = st.dir.path().join("keep");
    std::fs::rename(&st.out, &keep).unwrap();
    for (name, shown) in [
        ("best", "best/"),
        ("latest", "latest/"),
        ("metrics.jsonl", "metrics.jsonl"),
    ] {
        std::fs::create_dir_all(&st.out).unwrap();
        let from = keep.join(name);
        let to = st.out.join(name);
        std::fs::rename(&from, &to).unwrap();
        let e = open(&request(&st, Start::Fresh)).err().unwrap().to_string();
        assert!(e.contains(shown) && e.contains("--overwrite"), "{name}: {e}");
        std::fs::rename(&to, &from).unwrap();
    }
    // A lock file left by a killed process counts too.
    std::fs::write(st.out.join("run.lock"), "4000000\nenergyflow train\n").unwrap();
    let e = open(&request(&st, Start::Fresh)).err().unwrap().to_string();
    assert!(e.contains("run.lock left by process 4000000"), "{e}");
    // --overwrite takes over and removes every old file.
    std::fs::rename(keep.join("metrics.jsonl"), st.out.join("metrics.jsonl")).unwrap();
    let run = open(&request(&st, Start::Overwrite)).unwrap();
    assert!(run.notes.iter().any(|n| n.contains("took over")), "{:?}", run.notes);
    assert!(!st.out.join("metrics.jsonl").exists());
}

#[test]
fn what_a_killed_run_left_is_cleaned_when_the_folder_is_next_used() {
    let st = setup("");
    train_to(&request(&st, Start::Fresh), 2);
    let dead = 4_000_000;
    let stale = [
        st.out.join(format!(".metrics.jsonl.tmp-{dead}")),
        st.out.join(format!("latest/.model-00000003.safetensors.tmp-{dead}")),
        st.out.join("latest/model-00000003.safetensors"),
        st.out.join("best/optimizer-00000003.bpk"),
    ];
    for p in &stale {
        std::fs::write(p, b"partial").unwrap();
    }
    let run = open(&request(&st, Start::Resume)).unwrap();
    for p in &stale {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    let note = run.notes.iter().find(|n| n.contains("removed 4 file(s)"));
    assert!(note.is_some(), "{:?}", run.notes);
    // What the checkpoints name is untouched.
    checkpoint::load_model(&st.out.join("latest"), Kernels::Fused, &Device::flex()).unwrap();
}

/// The folder as a crash leaves it between writing best/ (first) and
/// latest/: best/ is one checkpoint newer. Resume continues from best/,
/// and the closing evaluation is that of the model best/ holds.
#[test]
fn a_crash_between_the_best_and_latest_writes_leaves_a_consistent_folder() {
    let st = setup("");
    let req = request(&st, Start::Fresh);
    train_to(&req, 3);
    assert_eq!(
        (meta_step(&st.out.join("latest")), meta_step(&st.out.join("best"))),
        (3, 3)
    );
    // What validate_and_save writes at step 5 when the loss improves, up
    // to the moment of the crash: best/ only.
    let data = PairData::load(&st.data).unwrap();
    let dev = Device::flex();
    let mut t = Trainer::resume(&st.out.join("latest"), &data, &RuntimeConfig::default(), &dev).unwrap();
    t.train_step(&data).unwrap();
    t.train_step(&data).unwrap();
    let loss = t.validate(&data).unwrap().loss;
    t.state.best_step = Some(5);
    t.state.best_val_loss = Some(loss);
    t.save(&st.out.join("best")).unwrap();

    let resume = request(&st, Start::Resume);
    let mut run = open(&resume).unwrap();
    assert_eq!(run.trainer.state.step, 5, "resumes from the newer best/");
    assert_eq!(
        (run.trainer.state.best_step, run.trainer.state.best_val_loss),
        (Some(5), Some(loss))
    );
    assert!(
        run.notes.iter().any(|n| n.contains("newer than latest/")),
        "{:?}",
        run.notes
    );
    run.train(Some(5), &AtomicBool::new(false), &mut |_| {}).unwrap();
    let report = run.final_report(&dev).unwrap();
    drop(run);
    let (again, _) = evaluate_checkpoint(&st.out, None, &RuntimeConfig::default(), &dev).unwrap();
    assert_eq!(report.loss, again.loss);
    assert_eq!(meta_step(&st.out.join("latest")), 5);
    assert_eq!(
        checkpoint::read_meta(&st.out.join("latest"))
            .unwrap()
            .train
            .unwrap()
            .best_step,
        Some(5)
    );
}

/// The other order (as builds before this one wrote them): latest/ names
/// a best model best/ does not hold. best/ is what counts.
#[test]
fn latest_naming_a_best_model_that_best_does_not_hold_is_corrected() {
    let st = setup("");
    train_to(&request(&st, Start::Fresh), 3);
    let old_best = st.dir.path().join("best-at-3");
    std::fs::rename(st.out.join("best"), &old_best).unwrap();
    let best3 = checkpoint::read_meta(&old_best).unwrap().train.unwrap().best_val_loss;
    // latest/ at step 5 claims a best model at step 5 that was never written.
    let data = PairData::load(&st.data).unwrap();
    let mut t = Trainer::resume(
        &st.out.join("latest"),
        &data,
        &RuntimeConfig::default(),
        &Device::flex(),
    )
    .unwrap();
    t.train_step(&data).unwrap();
    t.train_step(&data).unwrap();
    t.state.best_step = Some(5);
    t.state.best_val_loss = Some(1e-9);
    t.save(&st.out.join("latest")).unwrap();

    // Without best/, the claim is dropped.
    let run = open(&request(&st, Start::Resume)).unwrap();
    assert_eq!(
        (run.trainer.state.best_step, run.trainer.state.best_val_loss),
        (None, None)
    );
    assert!(
        run.notes.iter().any(|n| n.contains("best/ holds none")),
        "{:?}",
        run.notes
    );
    drop(run);
    // With the real best/ (step 3) back, its figures replace the claim.
    std::fs::rename(&old_best, st.out.join("best")).unwrap();
    let run = open(&request(&st, Start::Resume)).unwrap();
    assert_eq!(run.trainer.state.step, 5);
    assert_eq!(
        (run.trainer.state.best_step, run.trainer.state.best_val_loss),
        (Some(3), best3)
    );
    drop(run);
    // A best/ of another run (another seed) is refused, not trusted.
    let other = setup("");
    let mut req = request(&other, Start::Fresh);
    req.seed = Some(9);
    train_to(&req, 1);
    std::fs::remove_dir_all(st.out.join("best")).unwrap();
    std::fs::rename(other.out.join("best"), st.out.join("best")).unwrap();
    let e = open(&request(&st, Start::Resume)).err().unwrap().to_string();
    assert!(e.contains("not a checkpoint of the run"), "{e}");
}

#[test]
fn latest_is_checkpointed_periodically_inside_an_epoch() {
    let st = setup("checkpoint_every_steps = 2\ncheckpoint_every_seconds = 0.0\n");
    let mut run = open(&request(&st, Start::Fresh)).unwrap();
    let latest = st.out.join("latest");
    let mut saved = Vec::new();
    run.train(Some(5), &AtomicBool::new(false), &mut |e| {
        if let Event::Saved { dir, best } = e {
            saved.push((meta_step(dir), best));
        }
    })
    .unwrap();
    // Steps 2 and 4 by the interval; 5 at the end: best/ first, then latest/.
    assert_eq!(saved, vec![(2, false), (4, false), (5, true), (5, false)]);
    assert_eq!(meta_step(&latest), 5);

    // Without an interval only the end of the run saves; with a tiny time
    // interval every step does.
    for (toml, want) in [
        ("checkpoint_every_seconds = 0.0\n", 2),
        ("checkpoint_every_seconds = 0.000001\n", 5),
    ] {
        let st = setup(toml);
        let mut run = open(&request(&st, Start::Fresh)).unwrap();
        let mut n = 0;
        run.train(Some(4), &AtomicBool::new(false), &mut |e| {
            n += matches!(e, Event::Saved { .. }) as usize;
        })
        .unwrap();
        assert_eq!(n, want, "{toml}");
    }
}

#[test]
fn resume_refuses_what_would_change_the_run_and_reports_epochs() {
    let st = setup("");
    let mut req = request(&st, Start::Fresh);
    req.seed = Some(4);
    train_to(&req, 2);
    let resume = request(&st, Start::Resume);
    let refused = |f: &dyn Fn(&mut RunRequest), needle: &str| {
        let mut r = resume.clone();
        f(&mut r);
        let e = open(&r).err().unwrap().to_string();
        assert!(
            e.contains(needle) && e.contains("would change the run"),
            "{needle}: {e}"
        );
        assert_eq!(e.lines().count(), 1);
    };
    // Other data of the same size: allowed (a moved file), and said.
    let moved = st.dir.path().join("moved.safetensors");
    std::fs::copy(&st.data, &moved).unwrap();
    let mut r = resume.clone();
    r.data = Some(DataChoice::File(moved));
    let run = open(&r).unwrap();
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("moved.safetensors (the run recorded")),
        "{:?}",
        run.notes
    );
    drop(run);
    refused(&|r| r.seed = Some(5), "--seed 5 (the run's is 4)");
    refused(&|r| r.val_fraction = Some(0.3), "--val-fraction 0.3 (the run's is 0.1)");
    refused(
        &|r| r.loss = Some(LossKind::Surface),
        "--loss surface (the run's is embedding)",
    );
    let changed = st.dir.path().join("changed.toml");
    std::fs::write(&changed, format!("{TINY}learning_rate = 0.5\n")).unwrap();
    refused(
        &|r| r.config.file = Some(changed.clone()),
        "train.learning_rate (0.0001 vs 0.5)",
    );
    // Values equal to the run's change nothing; the checkpoint interval
    // may change; --epochs re-plans and says so.
    let mut same = resume.clone();
    same.seed = Some(4);
    same.val_fraction = Some(0.1);
    same.loss = Some(LossKind::Embedding);
    let interval = st.dir.path().join("interval.toml");
    std::fs::write(&interval, format!("{TINY}checkpoint_every_steps = 7\n")).unwrap();
    same.config.file = Some(interval);
    same.epochs = Some(2);
    let run = open(&same).unwrap();
    assert_eq!(run.trainer.plan.config.train.checkpoint_every_steps, Some(7));
    // 40 pairs: 4 validate, 4 test, 32 train in batches of 4: 8 steps per epoch.
    assert_eq!(run.trainer.plan.planned_steps, 16);
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("--epochs 2") && n.contains("16 steps")),
        "{:?}",
        run.notes
    );
}
