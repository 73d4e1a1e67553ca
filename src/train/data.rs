//! Training data: pairs (input embedding, target embedding) from a
//! safetensors file, the deterministic held-out split, per-epoch shuffling,
//! and the small synthetic task used when no data is given and by tests.
//!
//! File format: tensors "input" [N, E_in] and "target" [N, E_out], f32 or
//! f16 (read through `io::read_matrix`, which refuses NaN/Inf, wrong ranks
//! and zero rows). An optional sidecar `<name>.jsonl` holds the texts; it is
//! not needed for training. The bundled WordNet pairs are compiled into
//! the binary ([`PairData::bundled`]).

use crate::config::{EnergyConfig, LossKind};
use crate::error::{Error, Result};
use crate::io::{Matrix, read_file, read_matrix};
use crate::model::layers::random_orthonormal;
use crate::seeds::{mix, stream};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;

/// A set of (input, target) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct PairData {
    pub input: Matrix,
    pub target: Matrix,
    /// Where it came from: a file path, or "synthetic:..." for generated data.
    pub origin: String,
}

impl PairData {
    /// Reads tensors "input" and "target" from `path` and checks that they
    /// have the same number of rows.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_file(path)?;
        // Absolute, so `eval` finds the file again from any folder.
        let origin = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Self::from_bytes(path, &bytes, origin.display().to_string())
    }

    /// The bundled WordNet pairs (data/README.md), compiled into the
    /// binary: a moved or `cargo install`ed binary has them too, and no
    /// file is looked up anywhere. Origin [`BUNDLED_ORIGIN`].
    pub fn bundled() -> Result<Self> {
        Self::from_bytes(Path::new(BUNDLED_ORIGIN), BUNDLED_BYTES, BUNDLED_ORIGIN.to_string())
    }

    /// Pairs given in memory (the Python package's `data=(inputs,
    /// targets)`), checked as a file's tensors are, with messages naming
    /// `label` where a file's name its path. The origin a run records is
    /// a description ([`MEMORY_ORIGIN`]), which [`PairData::from_origin`]
    /// cannot reopen: the pairs must be given again.
    pub fn from_matrices(input: Matrix, target: Matrix, label: &str) -> Result<Self> {
        input.check_values(&format!("{label}: tensor \"input\""))?;
        target.check_values(&format!("{label}: tensor \"target\""))?;
        let origin = format!(
            "{MEMORY_ORIGIN}pairs(n={},input_dim={},target_dim={})",
            input.rows, input.cols, target.cols
        );
        Self::checked(Path::new(label), input, target, origin)
    }

    /// The pairs in safetensors `bytes` (the contents of `path`).
    fn from_bytes(path: &Path, bytes: &[u8], origin: String) -> Result<Self> {
        let input = read_matrix(path, bytes, "input")?;
        let target = read_matrix(path, bytes, "target")?;
        Self::checked(path, input, target, origin)
    }

    /// Refuses pairs of `path` whose row counts differ or that are too few.
    fn checked(path: &Path, input: Matrix, target: Matrix, origin: String) -> Result<Self> {
        if input.rows != target.rows {
            return Err(Error::input(format!(
                "{}: tensor \"input\" has {} rows but \"target\" has {}",
                path.display(),
                input.rows,
                target.rows
            )));
        }
        if input.rows < 2 {
            return Err(Error::input(format!(
                "{}: {} pair(s); training needs at least 2 (one to train on, one held out)",
                path.display(),
                input.rows
            )));
        }
        Ok(PairData { input, target, origin })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.input.rows
    }

    pub fn is_empty(&self) -> bool {
        self.input.rows == 0
    }

    /// Checks that `cfg` fits this data (the embedding widths, and equal
    /// widths for the "surface" loss), naming the field when not.
    pub fn check_fits(&self, cfg: &EnergyConfig) -> Result<()> {
        let fits = |field: &str, want: usize, got: usize, tensor: &str| {
            if want == got {
                Ok(())
            } else {
                Err(Error::input(format!(
                    "{}: tensor \"{tensor}\" has width {got}, but {field} = {want}",
                    self.origin
                )))
            }
        };
        let m = &cfg.model;
        fits(
            "model.input_embedding_dim",
            m.input_embedding_dim,
            self.input.cols,
            "input",
        )?;
        fits(
            "model.output_embedding_dim",
            m.output_embedding_dim,
            self.target.cols,
            "target",
        )?;
        if cfg.train.loss == LossKind::Surface && m.input_embedding_dim != m.output_embedding_dim {
            return Err(Error::config(
                "train.loss",
                "\"surface\"",
                format!(
                    "the surface loss maps targets through the input mapper, so it needs model.input_embedding_dim ({}) = model.output_embedding_dim ({})",
                    m.input_embedding_dim, m.output_embedding_dim
                ),
            ));
        }
        Ok(())
    }

    /// Rows `idx` of the inputs and targets, flattened row-major.
    pub fn gather(&self, idx: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let mut x = Vec::with_capacity(idx.len() * self.input.cols);
        let mut y = Vec::with_capacity(idx.len() * self.target.cols);
        for &i in idx {
            x.extend_from_slice(self.input.row(i));
            y.extend_from_slice(self.target.row(i));
        }
        (x, y)
    }

    /// [`PairData::synthetic_rotation`] for sizes that come from outside
    /// (a config, a checkpoint's data origin): refused beyond
    /// [`SYNTHETIC_MAX_PAIRS`] pairs, [`SYNTHETIC_MAX_DIM`] wide, or
    /// [`SYNTHETIC_MAX_VALUES`] values, instead of allocating (and
    /// orthonormalising a dim x dim rotation) without bound.
    pub fn synthetic(n: usize, dim: usize, seed: u64) -> Result<Self> {
        let what = format!("synthetic rotation task of {n} pairs of width {dim}");
        if !(2..=SYNTHETIC_MAX_PAIRS).contains(&n) {
            return Err(Error::input(format!(
                "{what}: the pair count must be 2..={SYNTHETIC_MAX_PAIRS}"
            )));
        }
        if !(1..=SYNTHETIC_MAX_DIM).contains(&dim) {
            return Err(Error::input(format!(
                "{what}: the width (model.input_embedding_dim) must be 1..={SYNTHETIC_MAX_DIM}"
            )));
        }
        if n * dim > SYNTHETIC_MAX_VALUES {
            return Err(Error::input(format!(
                "{what}: more than {SYNTHETIC_MAX_VALUES} values per tensor"
            )));
        }
        Ok(Self::synthetic_rotation(n, dim, seed))
    }

    /// The synthetic task: inputs are random unit vectors of width `dim`,
    /// targets the same vectors turned by one fixed random rotation. A
    /// linear map solves it exactly, so it shows whether the model learns.
    /// Sizes are not checked (tests, benches): see [`PairData::synthetic`].
    pub fn synthetic_rotation(n: usize, dim: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let rotation: Vec<f64> = random_orthonormal(dim, dim, &mut rng).into_iter().flatten().collect();
        let mut input = Vec::with_capacity(n * dim);
        let mut target = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let mut v: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
            v.iter_mut().for_each(|a| *a /= norm);
            for r in 0..dim {
                let t: f64 = (0..dim).map(|c| rotation[r * dim + c] * v[c]).sum();
                target.push(t as f32);
            }
            input.extend(v.iter().map(|&a| a as f32));
        }
        PairData {
            input: Matrix {
                rows: n,
                cols: dim,
                data: input,
            },
            target: Matrix {
                rows: n,
                cols: dim,
                data: target,
            },
            origin: format!("synthetic:rotation(n={n},dim={dim},seed={seed})"),
        }
    }
}

/// data/wordnet-pairs.safetensors (6 MB), part of the binary.
const BUNDLED_BYTES: &[u8] = include_bytes!("../../data/wordnet-pairs.safetensors");
/// The texts of the bundled pairs (data/wordnet-pairs.jsonl, one JSON
/// object `{"input": ..., "target": ...}` per line, in the pairs' order),
/// part of the binary too: the Python package's `bundled_data()` returns
/// them.
pub const BUNDLED_TEXTS: &str = include_str!("../../data/wordnet-pairs.jsonl");
/// The data origin a run on the bundled pairs records.
pub const BUNDLED_ORIGIN: &str = "bundled:wordnet-pairs";
/// How the origin of pairs given in memory begins ([`PairData::from_matrices`]).
pub const MEMORY_ORIGIN: &str = "memory:";

/// Pairs and dimension of the synthetic task used when no data is given.
pub const SYNTHETIC_PAIRS: usize = 2000;
/// Seed of the synthetic task: fixed, so runs with other seeds see the same task.
pub const SYNTHETIC_SEED: u64 = 0x5EED;
/// Bounds of a synthetic task built from outside sizes ([`PairData::synthetic`]).
pub const SYNTHETIC_MAX_PAIRS: usize = 1_000_000;
pub const SYNTHETIC_MAX_DIM: usize = 2048;
pub const SYNTHETIC_MAX_VALUES: usize = 1 << 26;

impl PairData {
    /// Re-opens the data a run recorded as its origin: the bundled pairs
    /// ([`BUNDLED_ORIGIN`]), the "synthetic:rotation(n=..,dim=..,seed=..)"
    /// description, or a file path (runs on the bundled pairs by builds
    /// before the data was compiled in recorded its path too).
    pub fn from_origin(origin: &str) -> Result<Self> {
        if origin == BUNDLED_ORIGIN {
            return Self::bundled();
        }
        if origin.starts_with(MEMORY_ORIGIN) {
            return Err(Error::input(format!(
                "data origin \"{origin}\": the pairs were given in memory (data=(inputs, targets) in Python), so they cannot be reopened; give them again (--data with a file of the same pairs, or data=)"
            )));
        }
        if origin.starts_with("bundled:") {
            return Err(Error::input(format!(
                "data origin \"{origin}\": this build bundles only \"{BUNDLED_ORIGIN}\""
            )));
        }
        if let Some(args) = origin
            .strip_prefix("synthetic:rotation(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let mut n = None;
            let mut dim = None;
            let mut seed = None;
            for kv in args.split(',') {
                match kv.split_once('=') {
                    Some(("n", v)) => n = v.parse().ok(),
                    Some(("dim", v)) => dim = v.parse().ok(),
                    Some(("seed", v)) => seed = v.parse().ok(),
                    _ => {}
                }
            }
            return match (n, dim, seed) {
                (Some(n), Some(dim), Some(seed)) => {
                    Self::synthetic(n, dim, seed).map_err(|e| Error::input(format!("data origin \"{origin}\": {e}")))
                }
                _ => Err(Error::input(format!(
                    "data origin \"{origin}\" is not a synthetic task description"
                ))),
            };
        }
        Self::load(Path::new(origin))
    }
}

/// Which held-out rows a figure is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    /// The rows that choose `best/` and feed the learning curves.
    Validation,
    /// The rows nothing is chosen on: what `eval` and a run's closing line report.
    Test,
}

impl SplitName {
    /// The name as written in flags and JSON.
    pub fn name(self) -> &'static str {
        match self {
            SplitName::Validation => "validation",
            SplitName::Test => "test",
        }
    }
}

/// The split of a run's pairs into training, validation and test rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    /// Chooses `best/`; the held-out figures during a run.
    pub val: Vec<usize>,
    /// Seen only at the end. Equal to `val` in a two-way split.
    pub test: Vec<usize>,
    /// False for the two-way split of runs written before the test split
    /// existed: their held-out rows both chose `best/` and were reported.
    pub separate_test: bool,
}

impl Split {
    /// A seeded permutation of 0..n: its first round(n * val_fraction) rows
    /// validate, the next round(n * test_fraction) test (at least one row
    /// each, and one left to train), the rest train. It depends on n, the
    /// fractions and the seed only, never on the batch size; the validation
    /// rows are those a two-way split with the same seed held out.
    pub fn new(n: usize, val_fraction: f64, test_fraction: f64, seed: u64) -> Result<Self> {
        if n < 3 {
            return Err(Error::input(format!(
                "{n} pair(s): need at least 3 (one each to train, validate and test)"
            )));
        }
        fraction("val_fraction", val_fraction)?;
        fraction("test_fraction", test_fraction)?;
        if val_fraction + test_fraction >= 1.0 {
            return Err(Error::config(
                "train.test_fraction",
                test_fraction,
                format!("with train.val_fraction = {val_fraction} it leaves no pair to train on"),
            ));
        }
        let perm = permutation(n, seed);
        let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 2);
        let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n - 1 - n_val);
        Ok(Split {
            val: sorted(&perm[..n_val]),
            test: sorted(&perm[n_val..n_val + n_test]),
            train: sorted(&perm[n_val + n_test..]),
            separate_test: true,
        })
    }

    /// The two-way split of runs written before the test split existed:
    /// the first round(n * val_fraction) rows of the same permutation are
    /// held out, and serve as both validation and test rows.
    pub fn two_way(n: usize, val_fraction: f64, seed: u64) -> Result<Self> {
        if n < 2 {
            return Err(Error::input(format!("{n} pair(s): need at least 2 to hold one out")));
        }
        fraction("val_fraction", val_fraction)?;
        let perm = permutation(n, seed);
        let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
        let val = sorted(&perm[..n_val]);
        Ok(Split {
            test: val.clone(),
            val,
            train: sorted(&perm[n_val..]),
            separate_test: false,
        })
    }

    /// The rows of `which`.
    pub fn rows(&self, which: SplitName) -> &[usize] {
        match which {
            SplitName::Validation => &self.val,
            SplitName::Test => &self.test,
        }
    }
}

fn fraction(field: &str, v: f64) -> Result<()> {
    if v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(Error::config(&format!("train.{field}"), v, "allowed range is (0, 1)"))
    }
}

/// The split's seeded permutation of 0..n.
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut StdRng::seed_from_u64(mix(seed, stream::SPLIT, 0)));
    perm
}

/// Sorted, so a split reads the file in order and prints stably.
fn sorted(rows: &[usize]) -> Vec<usize> {
    let mut v = rows.to_vec();
    v.sort_unstable();
    v
}

/// The training rows of `epoch` in their shuffled order (a pure function
/// of the seed and the epoch, so a resumed run sees the same batches).
pub fn epoch_order(train: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = train.to_vec();
    order.shuffle(&mut StdRng::seed_from_u64(mix(seed, stream::SHUFFLE, epoch as u64)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let a = Split::new(100, 0.1, 0.2, 7).unwrap();
        assert_eq!(a, Split::new(100, 0.1, 0.2, 7).unwrap());
        assert_ne!(a, Split::new(100, 0.1, 0.2, 8).unwrap());
        assert_eq!((a.val.len(), a.test.len(), a.train.len()), (10, 20, 70));
        let mut all: Vec<usize> = a.train.iter().chain(&a.val).chain(&a.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        // The validation rows are the two-way split's held-out rows.
        let old = Split::two_way(100, 0.1, 7).unwrap();
        assert_eq!(old.val, a.val);
        assert_eq!(old.test, old.val);
        assert!(a.separate_test && !old.separate_test);
        // Tiny sets keep a row for each part.
        let t = Split::new(3, 0.01, 0.01, 1).unwrap();
        assert_eq!((t.val.len(), t.test.len(), t.train.len()), (1, 1, 1));
        let t = Split::new(3, 0.6, 0.3, 1).unwrap();
        assert_eq!((t.val.len(), t.test.len(), t.train.len()), (1, 1, 1));
    }

    #[test]
    fn a_split_that_leaves_nothing_to_train_is_refused_naming_the_field() {
        let e = Split::new(100, 0.5, 0.5, 1).unwrap_err().to_string();
        assert!(
            e.contains("train.test_fraction") && e.contains("no pair to train"),
            "{e}"
        );
        let e = Split::new(100, 0.1, 0.0, 1).unwrap_err().to_string();
        assert!(e.contains("train.test_fraction"), "{e}");
        assert!(Split::new(2, 0.1, 0.1, 1).is_err());
    }

    #[test]
    fn epochs_shuffle_differently_but_reproducibly() {
        let train: Vec<usize> = (0..50).collect();
        assert_eq!(epoch_order(&train, 1, 0), epoch_order(&train, 1, 0));
        assert_ne!(epoch_order(&train, 1, 0), epoch_order(&train, 1, 1));
        let mut e = epoch_order(&train, 1, 3);
        e.sort_unstable();
        assert_eq!(e, train);
    }

    #[test]
    fn pairs_in_memory_are_checked_as_a_file_and_not_reopened() {
        let m = |rows: usize, v: f32| Matrix {
            rows,
            cols: 2,
            data: vec![v; rows * 2],
        };
        let d = PairData::from_matrices(m(3, 0.5), m(3, 0.25), "data").unwrap();
        assert_eq!(d.origin, "memory:pairs(n=3,input_dim=2,target_dim=2)");
        let e = PairData::from_origin(&d.origin).unwrap_err().to_string();
        assert!(e.contains("given in memory") && e.contains("data="), "{e}");
        let e = PairData::from_matrices(m(3, 0.5), m(4, 0.5), "data")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "data: tensor \"input\" has 3 rows but \"target\" has 4");
        let mut nan = m(3, 0.5);
        nan.data[3] = f32::NAN;
        let e = PairData::from_matrices(m(3, 0.5), nan, "data").unwrap_err().to_string();
        assert!(
            e.starts_with("data: tensor \"target\" holds a non-finite value (NaN) at row 1, column 1"),
            "{e}"
        );
        let e = PairData::from_matrices(m(3, 1e30), m(3, 0.5), "data")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("data: tensor \"input\" row 0 has norm"), "{e}");
        assert!(PairData::from_matrices(m(1, 0.5), m(1, 0.5), "data").is_err());
    }

    #[test]
    fn synthetic_rotation_keeps_norms() {
        let d = PairData::synthetic_rotation(5, 8, 3);
        for i in 0..5 {
            let nx: f32 = d.input.row(i).iter().map(|v| v * v).sum();
            let ny: f32 = d.target.row(i).iter().map(|v| v * v).sum();
            assert!((nx - 1.0).abs() < 1e-5 && (ny - 1.0).abs() < 1e-5);
        }
    }
}
