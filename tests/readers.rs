//! Readers beside a writer: `eval`, `infer`, `inspect` and `plot` on a run
//! folder that a `train` checkpoints at every step never fail on a file
//! that vanished or was replaced under them, and never mix two
//! checkpoints' files: every `eval` of the same checkpoint step prints the
//! same figures.

mod common;

use common::{TINY, energyflow, s, setup_with};
use energyflow::io::StoreDtype;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

#[test]
fn readers_never_fail_beside_a_train_that_checkpoints_every_step() {
    let st = setup_with(&format!("{TINY}checkpoint_every_steps = 1\n"), 40, StoreDtype::F32);
    let mut writer = Command::new(env!("CARGO_BIN_EXE_energyflow"))
        .args([
            "train",
            "--config",
            s(&st.config),
            "--data",
            s(&st.data),
            "--out",
            s(&st.out),
            "--quiet",
            "--max-steps",
            "200",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Readers start once there is a first checkpoint to read.
    let latest = st.out.join("latest");
    while !latest.join("checkpoint.json").is_file() {
        assert!(
            writer.try_wait().unwrap().is_none(),
            "train ended before its first checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let y = st.dir.path().join("y.safetensors");
    let (mut figures, mut during) = (BTreeMap::<u64, String>::new(), 0);
    for i in 0..50 {
        // The run folder (best/ when there is one) and latest/ in turn.
        let dir = if i % 2 == 0 { &st.out } else { &latest };
        let out = energyflow(&["eval", "--checkpoint", s(dir), "--json"]);
        assert!(
            out.status.success(),
            "eval {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let step = v["step"].as_u64().expect("a training checkpoint");
        let line = format!("{} {} {}", v["loss"], v["mse"], v["cosine"]);
        assert_eq!(
            figures.entry(step).or_insert_with(|| line.clone()),
            &line,
            "step {step}"
        );
        if writer.try_wait().unwrap().is_none() {
            during += 1;
        }
        if i % 10 == 0 {
            for args in [
                vec![
                    "infer",
                    "--checkpoint",
                    s(dir),
                    "--input",
                    s(&st.data),
                    "--output",
                    s(&y),
                ],
                vec![
                    "inspect",
                    "--checkpoint",
                    s(dir),
                    "--input",
                    s(&st.data),
                    "--out",
                    s(&st.dir.path().join("inspect")),
                ],
                vec!["plot", s(&st.out), "--out", s(&st.dir.path().join("plots"))],
            ] {
                let out = energyflow(&args);
                assert!(
                    out.status.success(),
                    "{args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let done = writer.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    // The readers did run beside the writer, over several checkpoints.
    assert!(
        during >= 10 && figures.len() >= 3,
        "{during} evals during the run, steps {:?}",
        figures.keys()
    );
}
