//! `energyflow plot`, `train --plot` and `energyflow inspect` as a user runs
//! them: real PNGs of a readable size, pages that refer only to files that
//! exist, the same bytes for the same input, inspect.json agreeing with the
//! forward's flow statistics (as `infer` prints them), and refusals.

use energyflow::io::{Matrix, StoreDtype, load_matrix, save_matrices};
use energyflow::train::PairData;
use energyflow::viz::html::references;
use energyflow::viz::style::png_size;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{TINY, assert_refused, energyflow};

struct Setup {
    dir: tempfile::TempDir,
    data: PathBuf,
    run: PathBuf,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A tiny run of `steps` steps on 40 synthetic 6-D pairs (9 steps per
/// epoch), with `extra` flags.
fn trained(steps: &str, extra: &[&str]) -> (Setup, Output) {
    trained_with(TINY, steps, extra)
}

/// [`trained`] with the config `toml`.
fn trained_with(toml: &str, steps: &str, extra: &[&str]) -> (Setup, Output) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, toml).unwrap();
    let data = dir.path().join("pairs.safetensors");
    let d = PairData::synthetic_rotation(40, 6, 2);
    save_matrices(&data, &[("input", &d.input), ("target", &d.target)], StoreDtype::F32).unwrap();
    let run = dir.path().join("run");
    let mut args = vec![
        "train",
        "--config",
        s(&config),
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--quiet",
        "--max-steps",
        steps,
    ];
    args.extend_from_slice(extra);
    let out = energyflow(&args);
    ok(&out);
    (Setup { dir, data, run }, out)
}

/// `energyflow inspect` of checkpoint `run` on `rows` of `data` into `out`.
fn inspect_rows(run: &Path, data: &Path, rows: &str, out: &Path) -> Output {
    energyflow(&[
        "inspect",
        "--checkpoint",
        s(run),
        "--input",
        s(data),
        "--rows",
        rows,
        "--out",
        s(out),
    ])
}

/// Every picture a page shows is a real PNG of at least 800 x 500, and
/// every file it refers to exists. Returns the pictures' names.
fn check_page(dir: &Path) -> Vec<String> {
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let refs = references(&html);
    assert!(!refs.is_empty(), "{html}");
    let mut pngs = Vec::new();
    for r in refs {
        let path = dir.join(&r);
        assert!(path.is_file(), "index.html refers to {r}, which is missing");
        if r.ends_with(".png") {
            let (w, h) = png_size(&std::fs::read(&path).unwrap()).unwrap_or_else(|| panic!("{r} is not a PNG"));
            assert!(w >= 800 && h >= 500, "{r} is {w} x {h}");
            pngs.push(r);
        }
    }
    pngs
}

fn same_bytes(a: &Path, b: &Path, files: &[String]) {
    for f in files {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two drawings of the same input"
        );
    }
}

#[test]
fn plot_draws_every_curve_with_baselines_identically_each_time() {
    // 20 steps: validations at 9, 18 and 20.
    let (st, out) = trained("20", &["--plot"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let plots = st.run.join("plots");
    assert!(
        err.contains(&format!("learning curves in {}", plots.join("index.html").display())),
        "{err}"
    );
    let pngs = check_page(&plots);
    for name in ["loss.png", "cosine.png", "optimizer.png", "flows.png", "speed.png"] {
        assert!(pngs.contains(&name.to_string()), "{name} not in {pngs:?}");
    }
    let html = std::fs::read_to_string(plots.join("index.html")).unwrap();
    assert!(html.contains("Baselines recomputed"), "{html}");
    assert!(
        html.contains("20 optimizer steps recorded") && html.contains("3 validations"),
        "{html}"
    );

    // The same metrics drawn again: the same bytes; stdout lists the files.
    let again = st.dir.path().join("again");
    let listed = ok(&energyflow(&["plot", s(&st.run), "--out", s(&again)]));
    assert_eq!(listed.lines().count(), pngs.len() + 1, "{listed}");
    assert!(listed.lines().all(|l| Path::new(l).is_file()), "{listed}");
    same_bytes(&plots, &again, &pngs);

    // Without the run's data the baselines cannot be computed: drawn
    // without them, and the user is told why.
    std::fs::remove_file(&st.data).unwrap();
    let third = st.dir.path().join("third");
    let out = energyflow(&["plot", s(&st.run), "--out", s(&third)]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no baselines") && err.contains("pairs.safetensors"),
        "{err}"
    );
    check_page(&third);
    let html = std::fs::read_to_string(third.join("index.html")).unwrap();
    assert!(html.contains("Drawn without baselines"), "{html}");
}

#[test]
fn train_says_where_the_curves_will_be() {
    let (st, out) = trained("2", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("energyflow plot {}", st.run.display())), "{err}");
    assert!(!st.run.join("plots").exists(), "drawn only when asked");
}

#[test]
fn inspect_agrees_with_the_forward_and_draws_identically() {
    let (st, _) = trained("3", &[]);
    let (a, b) = (st.dir.path().join("a"), st.dir.path().join("b"));
    let inspect = |out: &Path| inspect_rows(&st.run, &st.data, "3,0", out);
    let listed = ok(&inspect(&a));
    assert!(listed.lines().all(|l| Path::new(l).is_file()), "{listed}");
    let pngs = check_page(&a);
    assert_eq!(pngs.len(), 12, "six pictures per row: {pngs:?}");
    ok(&inspect(&b));
    same_bytes(&a, &b, &pngs);
    same_bytes(&a, &b, &["inspect.json".to_string()]);

    let report: Value = serde_json::from_slice(&std::fs::read(a.join("inspect.json")).unwrap()).unwrap();
    let row = &report["rows"][0];
    assert_eq!(row["row"], 3);
    let stats = &row["stats"];
    let n = |v: &Value| v.as_u64().unwrap() as usize;

    // The row's statistics are the forward's: infer over that row alone.
    let one = st.dir.path().join("row3.safetensors");
    let x = load_matrix(&st.data, "input").unwrap();
    let m = Matrix {
        rows: 1,
        cols: x.cols,
        data: x.row(3).to_vec(),
    };
    save_matrices(&one, &[("input", &m)], StoreDtype::F32).unwrap();
    let y = st.dir.path().join("y.safetensors");
    let infer = ok(&energyflow(&[
        "infer",
        "--checkpoint",
        s(&st.run),
        "--input",
        s(&one),
        "--output",
        s(&y),
    ]));
    let infer_stats: Value = serde_json::from_str(infer.trim()).unwrap();
    assert_eq!(stats, &infer_stats);
    let output: Vec<f32> = serde_json::from_value(row["output"].clone()).unwrap();
    assert_eq!(output, load_matrix(&y, "output").unwrap().data);

    // What each picture shows adds up to those statistics.
    let steps = row["steps"].as_array().unwrap();
    assert_eq!(steps.len(), n(&stats["propagation_steps"]));
    let sum = |key: &str| steps.iter().map(|s| n(&s[key])).sum::<usize>();
    assert_eq!(sum("completed_z0"), n(&stats["completed_z0"]));
    assert_eq!(sum("completed_zd"), n(&stats["completed_zd"]));
    assert_eq!(sum("completed_projected"), n(&stats["completed_projected"]));
    assert_eq!(sum("spawned"), n(&stats["flows_spawned"]));
    assert_eq!(sum("dropped"), n(&stats["flows_dropped"]));
    assert_eq!(n(&row["final_projected"]), n(&stats["completed_final"]));
    assert_eq!(n(&row["flows_traced"]), n(&stats["flows_created"]));
    for (t, step) in steps.iter().enumerate() {
        let active = n(&stats["active_per_step"][t]);
        assert_eq!(n(&step["active"]), active);
        let layers: usize = step["layer_counts"].as_array().unwrap().iter().map(n).sum();
        assert_eq!(layers, active, "the grid's layers hold every active flow");
        assert_eq!(step["layer_counts"].as_array().unwrap().len(), 4 + 1);
    }
    let (w, h) = (5, 4);
    for key in ["input_energy", "surface"] {
        let map = row[key].as_array().unwrap();
        assert_eq!(map.len(), h, "{key}");
        assert!(map.iter().all(|r| r.as_array().unwrap().len() == w), "{key}");
    }
    assert_eq!(
        row["trajectories"].as_array().unwrap().len(),
        n(&stats["flows_created"])
    );
    assert!(row["cosine"].as_f64().unwrap().abs() <= 1.0);

    // An input without targets: drawn without them, and said so.
    let c = st.dir.path().join("c");
    let out = energyflow(&[
        "inspect",
        "--checkpoint",
        s(&st.run),
        "--input",
        s(&one),
        "--out",
        s(&c),
    ]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tensor \"target\""));
    check_page(&c);
}

#[test]
fn bad_input_is_refused_in_one_line() {
    let (st, _) = trained("1", &[]);
    let dir = st.dir.path();
    assert_refused(&energyflow(&["plot", s(dir)]), "no metrics.jsonl");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("metrics.jsonl"), "").unwrap();
    assert_refused(&energyflow(&["plot", s(&empty)]), "no training step");

    let inspect = |ckpt: &Path, input: &Path, rows: &str| {
        energyflow(&[
            "inspect",
            "--checkpoint",
            s(ckpt),
            "--input",
            s(input),
            "--rows",
            rows,
            "--out",
            s(&dir.join("never")),
        ])
    };
    assert_refused(&inspect(&st.run, &st.data, "2,40"), "row 40 is out of range");
    assert_refused(&inspect(&st.run, &st.data, "1,x"), "--rows");
    assert_refused(&inspect(&st.run, &st.data, "1,1"), "listed twice");
    assert_refused(&inspect(&empty, &st.data, "0"), "not a checkpoint");
    let wide = dir.join("wide.safetensors");
    let m = Matrix {
        rows: 2,
        cols: 7,
        data: vec![0.5; 14],
    };
    save_matrices(&wide, &[("input", &m)], StoreDtype::F32).unwrap();
    assert_refused(&inspect(&st.run, &wide, "0"), "width 7");
    assert!(!dir.join("never").exists(), "nothing written for a refused request");
}

/// A model whose propagation is a pass-through starts no flow: inspect
/// still draws every picture (the flow ones empty), says why, and the
/// surface is the mapped input energies.
#[test]
fn inspect_draws_a_pass_through_model_and_says_so() {
    let toml = TINY.replace("[flow]\n", "[flow]\npass_through = true\n");
    let (st, _) = trained_with(&toml, "2", &[]);
    let out = st.dir.path().join("p");
    let run = inspect_rows(&st.run, &st.data, "1", &out);
    ok(&run);
    assert!(String::from_utf8_lossy(&run.stderr).contains("pass-through"));
    assert_eq!(check_page(&out).len(), 6);
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("inspect.json")).unwrap()).unwrap();
    let row = &report["rows"][0];
    assert_eq!(row["stats"]["flows_created"].as_u64(), Some(0), "{row}");
    assert_eq!(row["surface"], row["input_energy"], "{row}");
}
