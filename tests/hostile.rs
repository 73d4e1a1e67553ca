//! Hostile inputs, generated: random bytes and mutated valid files for the
//! safetensors, TOML and checkpoint readers. Every case must end in Ok or
//! in an error of one line, never in a panic. The loops are bounded and
//! seeded (fast, reproducible); a failure names the seed and the mutation.

use burn::tensor::Device;
use energyflow::checkpoint;
use energyflow::config::RuntimeConfig;
use energyflow::config::{EnergyConfig, Preset};
use energyflow::io::{Matrix, StoreDtype, matrices_to_bytes, read_matrix};
use energyflow::kernels::Kernels;
use energyflow::train::eval::evaluate_checkpoint;
use energyflow::train::{PairData, Trainer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Runs `f`; a panic fails the test naming `case`, an error must be one line.
fn survives<T>(case: &str, f: impl FnOnce() -> energyflow::Result<T>) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            let msg = e.to_string();
            assert_eq!(msg.lines().count(), 1, "{case}: error of several lines: {msg}");
            None
        }
        Err(_) => panic!("{case}: panicked"),
    }
}

/// A byte-level mutation of `bytes`, described.
fn mutate_bytes(rng: &mut StdRng, bytes: &[u8]) -> (Vec<u8>, String) {
    let mut b = bytes.to_vec();
    let len = b.len().max(1);
    let at = rng.random_range(0..len);
    let what = match rng.random_range(0..6) {
        0 => {
            let k = rng.random_range(1..=8);
            for _ in 0..k {
                let i = rng.random_range(0..len);
                if i < b.len() {
                    b[i] ^= 1 << rng.random_range(0..8);
                }
            }
            format!("{k} bit flips")
        }
        1 => {
            b.truncate(at);
            format!("truncated at {at}")
        }
        2 => {
            let n = rng.random_range(1..64);
            let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            b.splice(at.min(b.len())..at.min(b.len()), junk);
            format!("{n} random bytes inserted at {at}")
        }
        3 => {
            let v = if rng.random_bool(0.5) { 0xFF } else { 0x00 };
            let end = (at + rng.random_range(1..32)).min(b.len());
            b[at.min(end)..end].fill(v);
            format!("bytes {at}..{end} set to {v:#x}")
        }
        4 => {
            let end = (at + rng.random_range(1..64)).min(b.len());
            let slice = b[at.min(end)..end].to_vec();
            b.splice(at.min(b.len())..at.min(b.len()), slice);
            format!("bytes {at}..{end} duplicated")
        }
        _ => {
            let v: u64 = [u64::MAX, 1 << 32, 0, 1 << 62, 7][rng.random_range(0..5)];
            if at + 8 <= b.len() {
                b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            format!("u64 {v} written at {at}")
        }
    };
    (b, what)
}

/// Values no reader should accept where a number, a name or a flag goes.
fn hostile_value(rng: &mut StdRng) -> Value {
    let all = [
        json!(-1),
        json!(0),
        json!(2.5),
        json!(1e308),
        json!(-1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(""),
        json!("../../etc/passwd"),
        json!("/dev/zero"),
        json!("x".repeat(5000)),
        json!("synthetic:rotation(n=99999999999,dim=65536,seed=1)"),
        json!("synthetic:rotation(n=100000,dim=2048,seed=1)"),
        json!("synthetic:rotation(n=,dim=,seed=)"),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!([1, 2, 3]),
    ];
    all[rng.random_range(0..all.len())].clone()
}

/// Every leaf of a JSON value, as JSON pointers.
fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => m.iter().for_each(|(k, x)| leaves(x, format!("{at}/{k}"), out)),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| leaves(x, format!("{at}/{i}"), out)),
        _ => out.push(at),
    }
}

/// A structural mutation of a JSON document: a leaf replaced by a hostile
/// value, or removed.
fn mutate_json(rng: &mut StdRng, text: &str) -> (String, String) {
    let mut v: Value = serde_json::from_str(text).unwrap();
    let mut all = Vec::new();
    leaves(&v, String::new(), &mut all);
    let at = all[rng.random_range(0..all.len())].clone();
    let what = if rng.random_range(0..5) == 0 {
        let (parent, key) = at.rsplit_once('/').unwrap();
        if let Some(Value::Object(m)) = v.pointer_mut(parent) {
            m.remove(key);
        }
        format!("{at} removed")
    } else {
        let new = hostile_value(rng);
        let shown: String = new.to_string().chars().take(60).collect();
        *v.pointer_mut(&at).unwrap() = new;
        format!("{at} = {shown}")
    };
    (serde_json::to_string_pretty(&v).unwrap(), what)
}

fn tiny_config(dim: usize) -> EnergyConfig {
    let mut c = EnergyConfig::preset(Preset::Debug);
    c.model.lattice_width = 4;
    c.model.lattice_height = 3;
    c.flow.lattice_depth = 4;
    c.train.batch_size = 4;
    c.model.input_embedding_dim = dim;
    c.model.output_embedding_dim = dim;
    c.model.mapper_hidden = Some(16);
    c.model.neuron_hidden_dim = 4;
    c.model.neuron_output_dim = 4;
    c.model.carrier_hidden_dim = 8;
    c.model.carrier_layers = 1;
    c.flow.max_active_flows = 200;
    c.train.planned_steps = None;
    c.train.samples_per_pass = None;
    c.validate().unwrap();
    c
}

#[test]
fn the_safetensors_reader_survives_random_and_mutated_files() {
    let mut rng = StdRng::seed_from_u64(1);
    let m = Matrix {
        rows: 3,
        cols: 4,
        data: (0..12).map(|i| i as f32 * 0.25).collect(),
    };
    let mut valid = Vec::new();
    for dtype in [StoreDtype::F32, StoreDtype::F16] {
        valid.push(matrices_to_bytes(&[("input", &m), ("target", &m)], dtype).unwrap());
    }
    let path = Path::new("fuzz.safetensors");
    for i in 0..400 {
        let (bytes, what) = if i % 4 == 0 {
            let n = rng.random_range(0..200);
            ((0..n).map(|_| rng.random()).collect(), format!("{n} random bytes"))
        } else {
            mutate_bytes(&mut rng, &valid[i % 2])
        };
        let case = format!("safetensors case {i} ({what})");
        if let Some(x) = survives(&case, || read_matrix(path, &bytes, "input")) {
            assert_eq!(x.data.len(), x.rows * x.cols, "{case}");
            assert!(x.data.iter().all(|v| v.is_finite()), "{case}");
        }
    }
    // The header's fields set to hostile values.
    let header_len = u64::from_le_bytes(valid[0][..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&valid[0][8..8 + header_len]).unwrap().to_string();
    for i in 0..200 {
        let (text, what) = mutate_json(&mut rng, &header);
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(&valid[0][8 + header_len..]);
        survives(&format!("safetensors header case {i} ({what})"), || {
            read_matrix(path, &bytes, "input")
        });
    }
}

#[test]
fn the_toml_reader_survives_mutated_configs() {
    let mut rng = StdRng::seed_from_u64(2);
    let valid = "preset = \"debug\"\n[model]\nlattice_width = 5\ncarrier_hidden_dim = 16\nmapper_hidden = 32\n\
[flow]\nlattice_depth = 4\nmax_active_flows = 4000\nspawn_movement_threshold = 0.5\n\
[train]\nbatch_size = 4\nlearning_rate = 3e-4\nplanned_steps = 10\ncheckpoint_every_seconds = 30.0\n";
    let values = [
        "-1",
        "0",
        "1e400",
        "18446744073709551615",
        "9223372036854775807",
        "nan",
        "-inf",
        "\"x\"",
        "[]",
        "{}",
        "true",
        "1979-05-27",
        "0x7fffffff",
        "1_000_000_000_000",
    ];
    for i in 0..500 {
        let mut lines: Vec<String> = valid.lines().map(str::to_string).collect();
        let at = rng.random_range(0..lines.len());
        let what = match rng.random_range(0..5) {
            0 | 1 => {
                let v = values[rng.random_range(0..values.len())];
                if let Some((key, _)) = lines[at].split_once('=') {
                    lines[at] = format!("{key}= {v}");
                }
                format!("line {at} = {v}")
            }
            2 => {
                let l = lines[at].clone();
                lines.insert(at, l);
                format!("line {at} repeated")
            }
            3 => {
                lines.remove(at);
                format!("line {at} removed")
            }
            _ => {
                let (b, what) = mutate_bytes(&mut rng, lines[at].as_bytes());
                lines[at] = String::from_utf8_lossy(&b).to_string();
                format!("line {at}: {what}")
            }
        };
        let text = lines.join("\n");
        let case = format!("toml case {i} ({what})");
        if let Some((cfg, _)) = survives(&case, || EnergyConfig::from_toml_str(&text, Preset::Debug, "fuzz.toml")) {
            cfg.validate().unwrap();
        }
    }
}

/// A small trained checkpoint (two updates, so the optimizer holds state).
fn trained_checkpoint(dir: &Path, cfg: &EnergyConfig, data: &PairData) {
    let mut t = Trainer::new(cfg.clone(), &RuntimeConfig::default(), data, 3, &Device::flex()).unwrap();
    t.train_step(data).unwrap();
    t.train_step(data).unwrap();
    t.save(dir).unwrap();
}

/// Everything that reads a checkpoint, on `dir`; true when a resumed
/// step ran (the mutation was harmless).
fn read_everything(case: &str, dir: &Path, data: &PairData) -> bool {
    let dev = Device::flex();
    survives(case, || checkpoint::load_model(dir, Kernels::Fused, &dev));
    survives(case, || {
        evaluate_checkpoint(dir, Some(data), &RuntimeConfig::default(), &dev)
    });
    // On the data the checkpoint names (its origin).
    survives(case, || evaluate_checkpoint(dir, None, &RuntimeConfig::default(), &dev));
    if let Some(mut t) = survives(case, || Trainer::resume(dir, data, &RuntimeConfig::default(), &dev)) {
        // What a resumed run does first: a step (AdamW reads its moments).
        return survives(case, || t.train_step(data)).is_some();
    }
    false
}

#[test]
fn the_checkpoint_readers_survive_mutated_checkpoints() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut stepped = 0;
    let cfg = tiny_config(5);
    let data = PairData::synthetic_rotation(12, 5, 1);
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    trained_checkpoint(&good, &cfg, &data);
    let meta = checkpoint::read_meta(&good).unwrap();
    let files = [
        checkpoint::META_FILE.to_string(),
        meta.weights.clone(),
        meta.optimizer.clone().unwrap(),
    ];
    for i in 0..180 {
        let dir = tmp.path().join(format!("case{i}"));
        std::fs::create_dir(&dir).unwrap();
        for f in &files {
            std::fs::copy(good.join(f), dir.join(f)).unwrap();
        }
        let target = &files[i % 3];
        let original = std::fs::read(good.join(target)).unwrap();
        let (bytes, what) = if i % 3 == 0 && rng.random_bool(0.8) {
            let (t, w) = mutate_json(&mut rng, std::str::from_utf8(&original).unwrap());
            (t.into_bytes(), w)
        } else {
            mutate_bytes(&mut rng, &original)
        };
        std::fs::write(dir.join(target), bytes).unwrap();
        stepped += read_everything(&format!("checkpoint case {i} ({target}: {what})"), &dir, &data) as usize;
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // The loop reaches the deepest reader (a resumed optimizer step) too.
    assert!(stepped >= 20, "only {stepped} cases got to a resumed step");
    // Named origins that must not be read: a device, a huge synthetic task.
    let text = std::fs::read_to_string(good.join(checkpoint::META_FILE)).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    for (origin, needle) in [
        ("/dev/zero", "is a device"),
        ("synthetic:rotation(n=99999999999,dim=65536,seed=1)", "pair count"),
        ("synthetic:rotation(n=100000,dim=2048,seed=1)", "values per tensor"),
    ] {
        v["data"]["origin"] = json!(origin);
        std::fs::write(good.join(checkpoint::META_FILE), v.to_string()).unwrap();
        let e = evaluate_checkpoint(&good, None, &RuntimeConfig::default(), &Device::flex())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(needle), "{origin}: {e}");
    }
}

/// The optimizer state of a model of another width (the case: it
/// panicked inside burn's AdamW on the first resumed step).
#[test]
fn an_optimizer_state_of_another_model_is_refused_before_use() {
    let tmp = tempfile::tempdir().unwrap();
    let data = PairData::synthetic_rotation(12, 5, 1);
    let cfg = tiny_config(5);
    let mut wider = cfg.clone();
    wider.model.carrier_hidden_dim = 12;
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    trained_checkpoint(&a, &cfg, &data);
    trained_checkpoint(&b, &wider, &data);
    let (ma, mb) = (checkpoint::read_meta(&a).unwrap(), checkpoint::read_meta(&b).unwrap());
    let (oa, ob) = (ma.optimizer.unwrap(), mb.optimizer.unwrap());
    std::fs::copy(b.join(&ob), a.join(&oa)).unwrap();
    let e = Trainer::resume(&a, &data, &RuntimeConfig::default(), &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&oa) && e.contains("has shape") && e.contains("not this model's"),
        "{e}"
    );
    // A state with no moments at all after two updates is not this run's either.
    let empty = burn::optim::AdamWConfig::new().init().into_bytes().unwrap();
    std::fs::write(a.join(&oa), &*empty).unwrap();
    let e = Trainer::resume(&a, &data, &RuntimeConfig::default(), &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("holds no state for any parameter"), "{e}");
}
