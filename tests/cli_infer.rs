//! `energyflow infer` end to end, and its refusals of bad input: one line on
//! stderr naming the problem, exit code 2, never a panic.

use energyflow::io::{Matrix, StoreDtype, load_matrix, save_matrices};
use std::path::Path;

mod common;
use common::{assert_refused, energyflow};

fn write(path: &Path, name: &str, rows: usize, cols: usize, f: impl Fn(usize) -> f32, dtype: StoreDtype) {
    let m = Matrix {
        rows,
        cols,
        data: (0..rows * cols).map(f).collect(),
    };
    save_matrices(path, &[(name, &m)], dtype).unwrap();
}

#[test]
fn infer_writes_output_and_prints_stats_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.safetensors");
    let output = dir.path().join("y.safetensors");
    write(&input, "input", 3, 768, |i| ((i as f32) * 0.01).sin(), StoreDtype::F16);
    let out = energyflow(&[
        "infer",
        "--preset",
        "debug",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--seed",
        "4",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("random weights"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let stats: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // 3 rows in one batch of the debug preset: 3 x 400 starting flows.
    assert_eq!(stats["cells_total"], 3 * 400);
    let created = stats["flows_created"].as_u64().unwrap();
    let spawned = stats["flows_spawned"].as_u64().unwrap();
    assert_eq!(created, 3 * 400 + spawned);
    let completed = ["completed_z0", "completed_zd", "completed_projected", "completed_final"]
        .iter()
        .map(|k| stats[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(created, completed);
    let y = load_matrix(&output, "output").unwrap();
    assert_eq!((y.rows, y.cols), (3, 768));
    assert!(y.data.iter().all(|v| v.is_finite()));
}

#[test]
fn large_but_allowed_inputs_give_finite_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x.safetensors"), dir.path().join("y.safetensors"));
    // Row norm 1e15 * sqrt(768) = 2.8e16, under the 1e18 limit.
    write(
        &x,
        "input",
        2,
        768,
        |i| if i % 2 == 0 { 1e15 } else { -1e15 },
        StoreDtype::F32,
    );
    let out = energyflow(&["infer", "--input", x.to_str().unwrap(), "--output", y.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(load_matrix(&y, "output").unwrap().data.iter().all(|v| v.is_finite()));
}

#[test]
fn infer_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let out_path = p("y.safetensors");
    let o = out_path.to_str().unwrap();
    let run = |input: &Path| energyflow(&["infer", "--input", input.to_str().unwrap(), "--output", o]);

    assert_refused(&run(&p("missing.safetensors")), "missing.safetensors");

    write(&p("other.safetensors"), "embeddings", 2, 768, |_| 0.1, StoreDtype::F32);
    assert_refused(&run(&p("other.safetensors")), "no tensor named \"input\"");

    write(&p("narrow.safetensors"), "input", 2, 10, |_| 0.1, StoreDtype::F32);
    assert_refused(&run(&p("narrow.safetensors")), "width 10");

    write(
        &p("nan.safetensors"),
        "input",
        2,
        768,
        |i| if i == 5 { f32::NAN } else { 0.1 },
        StoreDtype::F32,
    );
    assert_refused(&run(&p("nan.safetensors")), "non-finite");

    write(
        &p("inf.safetensors"),
        "input",
        2,
        768,
        |i| if i == 800 { f32::INFINITY } else { 0.1 },
        StoreDtype::F32,
    );
    assert_refused(&run(&p("inf.safetensors")), "row 1");

    // Finite but so large that the mapping overflows (it gave NaN outputs).
    write(&p("huge.safetensors"), "input", 2, 768, |_| 3e38, StoreDtype::F32);
    assert_refused(&run(&p("huge.safetensors")), "row 0 has norm");

    write(&p("empty.safetensors"), "input", 0, 768, |_| 0.0, StoreDtype::F32);
    assert_refused(&run(&p("empty.safetensors")), "zero rows");

    std::fs::write(p("garbage.safetensors"), b"not a safetensors file").unwrap();
    assert_refused(&run(&p("garbage.safetensors")), "not a valid safetensors");

    let bad_cfg = p("bad.toml");
    std::fs::write(&bad_cfg, "[train]\nbatch_size = 0\n").unwrap();
    write(&p("x.safetensors"), "input", 1, 768, |_| 0.1, StoreDtype::F32);
    let out = energyflow(&[
        "infer",
        "--config",
        bad_cfg.to_str().unwrap(),
        "--input",
        p("x.safetensors").to_str().unwrap(),
        "--output",
        o,
    ]);
    assert_refused(&out, "train.batch_size");
    assert!(!out_path.exists(), "nothing is written on failure");
}

#[test]
fn infer_never_replaces_an_input_or_a_special_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let x = p("x.safetensors");
    write(&x, "input", 1, 768, |_| 0.1, StoreDtype::F32);
    let before = std::fs::read(&x).unwrap();
    let infer = |extra: &[&str], output: &Path| {
        let mut args = vec![
            "infer",
            "--input",
            x.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        energyflow(&args)
    };
    // The input spelled differently.
    let spelled = dir.path().join(".").join("x.safetensors");
    assert_refused(&infer(&[], &spelled), "is --input");
    assert_refused(&infer(&[], Path::new("/dev/null")), "/dev/null is a device");
    assert_refused(&infer(&[], dir.path()), "is a folder");
    // A file of the checkpoint (or run) folder, and the config file.
    let ckpt = p("run");
    std::fs::create_dir(&ckpt).unwrap();
    std::fs::write(ckpt.join("metrics.jsonl"), "{}\n").unwrap();
    let c = ckpt.to_str().unwrap();
    assert_refused(
        &infer(&["--checkpoint", c], &ckpt.join("metrics.jsonl")),
        "a file of --checkpoint",
    );
    let cfg = p("c.toml");
    std::fs::write(&cfg, "[train]\nbatch_size = 2\n").unwrap();
    assert_refused(&infer(&["--config", cfg.to_str().unwrap()], &cfg), "is --config");
    assert_eq!(std::fs::read(&x).unwrap(), before);
    assert_eq!(std::fs::read_to_string(ckpt.join("metrics.jsonl")).unwrap(), "{}\n");
}
