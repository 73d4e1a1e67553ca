//! The exit codes of every command (README, "Exit codes"): 0 done, 2 bad
//! input, 70 an internal error (a bug: here a panic, stdout closed under the
//! command's last print), 130 stopped by SIGINT, SIGTERM or SIGHUP. For the
//! signal, each command is made to wait on a named pipe as one of its
//! inputs: once this test's end of the pipe opens, the command is inside
//! its work (its handler long installed), and the signal comes then.
//! `train`'s graceful stop (checkpoint first, then 130) is tests/cli_crash.rs.

use energyflow::io::StoreDtype;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Setup, TINY, energyflow, s, setup_with, teacher_model_dir};

/// What each command needs: a trained run, texts, a WordNet folder.
struct World {
    st: Setup,
    run: PathBuf,
    texts: PathBuf,
    dict: PathBuf,
}

fn p(w: &World, name: &str) -> PathBuf {
    w.st.dir.path().join(name)
}

fn world() -> World {
    let st = setup_with(TINY, 12, StoreDtype::F32);
    let run = st.dir.path().join("run");
    let texts = st.dir.path().join("t.txt");
    std::fs::write(&texts, "a text\n").unwrap();
    let dict = st.dir.path().join("wordnet");
    std::fs::create_dir(&dict).unwrap();
    std::fs::write(
        dict.join("data.noun"),
        "00007846 03 n 01 person 0 000 | a human being; \"too much for one person\"  \n",
    )
    .unwrap();
    for f in ["data.verb", "data.adj", "data.adv"] {
        std::fs::write(dict.join(f), "").unwrap();
    }
    World { st, run, texts, dict }
}

/// One command: arguments that work, arguments with bad input, and
/// arguments under which it reads the named pipe `fifo`.
struct Case {
    ok: Vec<String>,
    bad: Vec<String>,
    waits: Vec<String>,
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

fn train_args(w: &World, config: &Path, out: &str) -> Vec<String> {
    let out = p(w, out);
    strings(&[
        "train",
        "--config",
        s(config),
        "--data",
        s(&w.st.data),
        "--out",
        s(&out),
        "--quiet",
        "--max-steps",
        "2",
        // The same arguments run twice (done, then with stdout closed).
        "--overwrite",
    ])
}

fn cases(w: &World, fifo: &Path) -> Vec<(&'static str, Case)> {
    let (data, run, f) = (s(&w.st.data), s(&w.run), s(fifo));
    let model = teacher_model_dir();
    // A run folder whose metrics.jsonl is the pipe, and a WordNet folder
    // whose first database file is.
    let piped_run = p(w, "piped-run");
    let piped_dict = p(w, "piped-dict");
    for d in [&piped_run, &piped_dict] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::symlink(fifo, piped_run.join("metrics.jsonl")).unwrap();
    std::os::unix::fs::symlink(fifo, piped_dict.join("data.noun")).unwrap();
    let y = s(&p(w, "y.safetensors")).to_string();
    vec![
        (
            "train",
            Case {
                ok: train_args(w, &w.st.config, "train-ok"),
                bad: strings(&["train", "--data", s(&p(w, "missing.safetensors")), "--quiet"]),
                waits: train_args(w, fifo, "train-waits"),
            },
        ),
        (
            "eval",
            Case {
                ok: strings(&["eval", "--checkpoint", run, "--json"]),
                bad: strings(&["eval", "--checkpoint", s(&p(w, "missing"))]),
                waits: strings(&["eval", "--checkpoint", run, "--data", f]),
            },
        ),
        (
            "infer",
            Case {
                ok: strings(&["infer", "--checkpoint", run, "--input", data, "--output", &y]),
                bad: strings(&["infer", "--input", s(&p(w, "missing")), "--output", &y]),
                waits: strings(&["infer", "--checkpoint", run, "--input", f, "--output", &y]),
            },
        ),
        (
            "plot",
            Case {
                ok: strings(&["plot", run, "--out", s(&p(w, "plots"))]),
                bad: strings(&["plot", s(&p(w, "missing"))]),
                waits: strings(&["plot", s(&piped_run), "--out", s(&p(w, "plots2"))]),
            },
        ),
        (
            "inspect",
            Case {
                ok: strings(&[
                    "inspect",
                    "--checkpoint",
                    run,
                    "--input",
                    data,
                    "--out",
                    s(&p(w, "ins")),
                ]),
                bad: strings(&["inspect", "--checkpoint", run, "--input", data, "--rows", "99"]),
                waits: strings(&["inspect", "--checkpoint", run, "--input", f, "--out", s(&p(w, "ins2"))]),
            },
        ),
        (
            "embed",
            Case {
                ok: strings(&[
                    "embed",
                    "--model",
                    s(&model),
                    "--input",
                    s(&w.texts),
                    "--output",
                    s(&p(w, "e.safetensors")),
                ]),
                bad: strings(&[
                    "embed",
                    "--model",
                    s(&model),
                    "--input",
                    s(&w.texts),
                    "--output",
                    &y,
                    "--batch",
                    "0",
                ]),
                waits: strings(&[
                    "embed",
                    "--model",
                    s(&model),
                    "--input",
                    f,
                    "--output",
                    s(&p(w, "e2.safetensors")),
                ]),
            },
        ),
        (
            "data",
            Case {
                ok: strings(&[
                    "data",
                    "wordnet",
                    "--dict",
                    s(&w.dict),
                    "--out",
                    s(&p(w, "p.tsv")),
                    "--count",
                    "1",
                ]),
                bad: strings(&[
                    "data",
                    "wordnet",
                    "--dict",
                    s(&p(w, "missing")),
                    "--out",
                    s(&p(w, "p.tsv")),
                ]),
                waits: strings(&["data", "wordnet", "--dict", s(&piped_dict), "--out", s(&p(w, "p2.tsv"))]),
            },
        ),
        (
            "bench",
            Case {
                ok: strings(&[
                    "bench",
                    "step",
                    "--config",
                    s(&w.st.config),
                    "--runs",
                    "1",
                    "--warmup",
                    "0",
                    "--json",
                ]),
                bad: strings(&["bench", "step", "--config", s(&p(w, "missing.toml"))]),
                waits: strings(&["bench", "step", "--config", f, "--runs", "1", "--json"]),
            },
        ),
    ]
}

fn args(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn run_with_stdout_closed(args: &[String]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// Runs `args`, waits until the command opens the pipe `fifo` (this end
/// is opened without blocking, which succeeds once a reader has it open),
/// sends `sig` and returns what the command did.
fn stopped_while_reading(args: &[String], fifo: &Path, sig: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let writer = loop {
        match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo) {
            Ok(w) => break w,
            Err(_) => {
                if let Some(status) = child.try_wait().unwrap() {
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "{args:?} ended ({status}) before reading the pipe: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                assert!(t0.elapsed() < Duration::from_secs(120), "{args:?} never read the pipe");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    drop(writer);
    out
}

#[test]
fn every_command_exits_0_2_70_or_130() {
    let w = world();
    let made = energyflow(&args(&train_args(&w, &w.st.config, "run")));
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let fifo = p(&w, "pipe");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let signals = ["-INT", "-TERM", "-HUP"];
    for (i, (name, case)) in cases(&w, &fifo).into_iter().enumerate() {
        let out = energyflow(&args(&case.ok));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");

        let out = energyflow(&args(&case.bad));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} bad input: {err}");
        assert!(
            err.trim_end().lines().last().unwrap().starts_with("energyflow: error:"),
            "{name}: {err}"
        );

        let out = run_with_stdout_closed(&case.ok);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(70), "{name} panic: {err}");
        let last = err.trim_end().lines().last().unwrap();
        assert!(
            last.starts_with(
                "energyflow: error: internal error, a bug in energyflow (please report it; --verbose shows where)"
            ),
            "{name}: {err}"
        );
        assert!(
            !err.contains("panicked at"),
            "{name}: the location only with --verbose: {err}"
        );

        let sig = signals[i % signals.len()];
        let out = stopped_while_reading(&case.waits, &fifo, sig);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{name} {sig}: {err}");
    }
}

#[test]
fn verbose_shows_where_a_panic_happened() {
    let w = world();
    let mut a = train_args(&w, &w.st.config, "run");
    a.push("--verbose".into());
    let out = run_with_stdout_closed(&a);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{err}");
    assert!(err.contains("panicked at ") && err.contains(".rs:"), "{err}");
}
