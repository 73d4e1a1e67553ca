//! The readout of issue 23: the linear paths and their identity init, the
//! pass-through, and the learned baselines that `eval` reports.

use burn::tensor::Device;
use energyflow::config::{EnergyConfig, LinearPathInit, Preset};
use energyflow::device;
use energyflow::kernels::Kernels;
use energyflow::model::{EnergyFlowModel, ForwardOptions, ForwardSettings, Lesion, Workspace};
use energyflow::train::eval::Ridge;
use energyflow::train::{PairData, Split, baselines};

mod common;

fn config(w: usize, h: usize, e: usize, init: LinearPathInit) -> EnergyConfig {
    let mut cfg = EnergyConfig::preset(Preset::Tuned);
    cfg.model.lattice_width = w;
    cfg.model.lattice_height = h;
    cfg.model.input_embedding_dim = e;
    cfg.model.output_embedding_dim = e;
    cfg.model.mapper_hidden = Some(32);
    cfg.model.linear_path = true;
    cfg.model.linear_path_init = init;
    cfg
}

/// Random-looking embeddings, `rows` x `e`.
fn embeddings(rows: usize, e: usize) -> Vec<f32> {
    (0..rows * e)
        .map(|i| ((i as f32 * 0.731).sin() * 43.7).fract() - 0.5)
        .collect()
}

/// mapper-then-collector of a fresh model of `cfg` on `x`.
fn readout(cfg: &EnergyConfig, x: &[f32], rows: usize) -> Vec<f32> {
    let dev = Device::flex();
    let m = EnergyFlowModel::new(cfg, Kernels::Fused, &dev, 3);
    let e = cfg.model.input_embedding_dim;
    let t = device::matrix(x.to_vec(), rows, e, &dev);
    device::to_vec(m.collector.forward(m.input_mapper.forward(t, None), None)).unwrap()
}

#[test]
fn the_identity_init_makes_mapper_then_collector_the_identity_when_s_is_at_least_e() {
    let cfg = config(4, 3, 10, LinearPathInit::Identity);
    assert!(cfg.model.notes().is_empty());
    let x = embeddings(5, 10);
    let y = readout(&cfg, &x, 5);
    for (a, b) in x.iter().zip(&y) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    // The random init is not the identity.
    let r = readout(&config(4, 3, 10, LinearPathInit::Random), &x, 5);
    assert!(x.iter().zip(&r).any(|(a, b)| (a - b).abs() > 1e-2));
}

#[test]
fn with_fewer_cells_than_components_it_is_a_projection_and_says_so() {
    let cfg = config(3, 2, 10, LinearPathInit::Identity);
    let note = cfg.model.notes();
    assert_eq!(note.len(), 1);
    assert!(note[0].contains("rank-6 projection"), "{}", note[0]);
    let x = embeddings(4, 10);
    let once = readout(&cfg, &x, 4);
    // A projection: applying it again changes nothing, and it shortens.
    let twice = readout(&cfg, &once, 4);
    for (a, b) in once.iter().zip(&twice) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
    assert!(norm(&once) < norm(&x));
}

#[test]
fn identity_init_with_other_widths_is_the_partial_identity_and_says_so() {
    // 10 in, 7 out: the first 7 components carried; 7 in, 10 out: carried
    // and padded with zeros.
    for (e_in, e_out) in [(10, 7), (7, 10)] {
        let mut cfg = config(4, 3, e_in, LinearPathInit::Identity);
        cfg.model.output_embedding_dim = e_out;
        cfg.validate().unwrap();
        let note = cfg.model.notes();
        assert!(note.len() == 1 && note[0].contains("partial identity"), "{note:?}");
        let x = embeddings(3, e_in);
        let y = readout(&cfg, &x, 3);
        assert_eq!(y.len(), 3 * e_out);
        for r in 0..3 {
            for c in 0..e_out {
                let want = if c < e_in { x[r * e_in + c] } else { 0.0 };
                assert!((y[r * e_out + c] - want).abs() <= 1e-5, "{e_in}->{e_out} [{r},{c}]");
            }
        }
    }
}

#[test]
fn the_passthrough_lesion_reads_out_the_mapped_energies() {
    let mut cfg = config(4, 3, 10, LinearPathInit::Identity);
    // The default preset is itself a pass-through; the lesion is for a
    // model that propagates.
    cfg.flow.pass_through = false;
    let dev = Device::flex();
    let m = EnergyFlowModel::new(&cfg, Kernels::Fused, &dev, 3);
    let settings = ForwardSettings::new(&cfg, false);
    let x = device::matrix(embeddings(2, 10), 2, 10, &dev);
    let opts = ForwardOptions {
        lesion: Some(Lesion::Passthrough),
        ..ForwardOptions::inference(&settings)
    };
    let out = m
        .forward(x.clone(), &settings, &mut Workspace::default(), &opts)
        .unwrap();
    let mapped = device::to_vec(m.input_mapper.forward(x.clone(), None)).unwrap();
    assert_eq!(device::to_vec(out.surface).unwrap(), mapped);
    assert_eq!(out.stats.flows_created, 0);
    // Without it, flows carry the energies and change them.
    let plain = m
        .forward(
            x,
            &settings,
            &mut Workspace::default(),
            &ForwardOptions::inference(&settings),
        )
        .unwrap();
    assert_eq!(plain.stats.flows_created, 2 * 12);
    assert_ne!(device::to_vec(plain.surface).unwrap(), mapped);
}

#[test]
fn the_learned_baselines_are_deterministic_and_the_residual_mlp_beats_ridge() {
    let dev = Device::flex();
    let train = EnergyConfig::preset(Preset::Tuned).train;
    // Determinism on a small task.
    let small = PairData::synthetic(120, 16, 1).unwrap();
    let split = Split::new(small.len(), 0.2, 0.2, 1).unwrap();
    let a = baselines::fit(&small, &split, 5, &train, &dev).unwrap();
    let b = baselines::fit(&small, &split, 5, &train, &dev).unwrap();
    assert_eq!(
        (a.mlp.validation_cosine, a.mlp.test_cosine),
        (b.mlp.validation_cosine, b.mlp.test_cosine)
    );
    assert_eq!(a.key, b.key);
    let c = baselines::fit(&small, &split, 6, &train, &dev).unwrap();
    assert_ne!(a.mlp.validation_cosine, c.mlp.validation_cosine);
    // On the bundled pairs, the residual MLP is the stronger baseline.
    let data = PairData::bundled().unwrap();
    let split = Split::new(data.len(), 0.1, 0.1, 0).unwrap();
    let fitted = baselines::fit(&data, &split, 0, &train, &dev).unwrap();
    let ridge = Ridge::fit(&data, &split.train).unwrap().predict(&data, &split.test);
    let ridge_cos = mean_cosine(&ridge, &data, &split.test);
    let residual = fitted.residual_mlp.unwrap().test_cosine.unwrap();
    assert!(
        residual > ridge_cos + 0.02,
        "residual MLP {residual} vs ridge {ridge_cos}"
    );
}

fn mean_cosine(pred: &[f32], data: &PairData, rows: &[usize]) -> f64 {
    let c = data.target.cols;
    rows.iter()
        .enumerate()
        .map(|(k, &i)| energyflow::io::cosine(&pred[k * c..(k + 1) * c], data.target.row(i)))
        .sum::<f64>()
        / rows.len() as f64
}

/// The default preset's model after one epoch on the bundled data: the
/// lesions (another sample's surface; the mapped energies permuted across
/// cells) drop it below the identity baseline, so its output depends on its
/// input and on the cells, while the model itself is above identity.
#[test]
fn the_lesions_drop_the_default_model_below_identity() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run = common::s(&run);
    let out = common::energyflow(&["train", "--quiet", "--max-steps", "100", "--out", run]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let eval = |lesion: Option<&str>| -> serde_json::Value {
        let mut args = vec!["eval", "--checkpoint", run, "--split", "validation", "--json"];
        if let Some(l) = lesion {
            args.extend(["--lesion", l]);
        }
        let out = common::energyflow(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(text.lines().last().unwrap()).unwrap()
    };
    let plain = eval(None);
    let identity = plain["identity_cosine"].as_f64().unwrap();
    assert!(plain["cosine"].as_f64().unwrap() > identity, "{plain}");
    for lesion in ["shuffle-samples", "shuffle-cells"] {
        let l = eval(Some(lesion));
        assert!(l["cosine"].as_f64().unwrap() < identity, "{lesion}: {l}");
    }
}
