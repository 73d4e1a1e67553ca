//! `energyflow plot` and `train --plot` as a user runs them: real PNGs of a
//! readable size, pages that refer only to files that exist, the same bytes
//! for the same input, and refusals.

use energyflow::io::{StoreDtype, save_matrices};
use energyflow::train::PairData;
use energyflow::viz::html::references;
use energyflow::viz::style::png_size;
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
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
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
fn bad_input_is_refused_in_one_line() {
    let (st, _) = trained("1", &[]);
    let dir = st.dir.path();
    assert_refused(&energyflow(&["plot", s(dir)]), "no metrics.jsonl");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("metrics.jsonl"), "").unwrap();
    assert_refused(&energyflow(&["plot", s(&empty)]), "no training step");
}
