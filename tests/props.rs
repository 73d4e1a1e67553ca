//! Inputs that no one wrote by hand: property tests (proptest, fixed seed)
//! of the four readers of user files — the TOML config loader, the
//! safetensors reader, the checkpoint reader, and `embed`'s text reader —
//! on random and mutated inputs, 10 000 cases each. None panics, none
//! makes an allocation out of proportion to its input (a counting
//! allocator watches the largest single one), and every refusal is one
//! line naming its file or field.

use energyflow::checkpoint::parse_meta;
use energyflow::config::{LoadedConfig, Preset};
use energyflow::io::{Matrix, StoreDtype, matrices_to_bytes, read_matrix};
use energyflow::teacher::text::{TextFormat, parse_text_file};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, remembering the largest single allocation.
struct Watch;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// No single allocation beyond this while reading an input of at most a
/// few kilobytes (the readers refuse what would need more before
/// allocating it).
const MAX_ALLOCATION: usize = 16 << 20;

fn config() -> Config {
    Config {
        cases: 10_000,
        rng_seed: RngSeed::Fixed(20261203),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs a reader on one input: it returns (never panics), allocates within
/// bounds, and a refusal is one line containing one of `names`.
fn check<T>(names: &[&str], read: impl FnOnce() -> energyflow::Result<T>) -> std::result::Result<(), TestCaseError> {
    LARGEST.store(0, Ordering::Relaxed);
    let result = read();
    let largest = LARGEST.load(Ordering::Relaxed);
    prop_assert!(largest <= MAX_ALLOCATION, "an allocation of {largest} bytes");
    if let Err(e) = result {
        let m = e.to_string();
        prop_assert_eq!(m.lines().count(), 1, "{}", m);
        prop_assert!(names.iter().any(|n| m.contains(n)), "{m}");
    }
    Ok(())
}

/// `base` with `edits` applied: each (position, kind, byte) deletes,
/// replaces or inserts one byte.
fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(at, kind, byte) in edits {
        let at = if v.is_empty() { 0 } else { at % (v.len() + 1) };
        match kind % 3 {
            0 if at < v.len() => {
                v.remove(at);
            }
            1 if at < v.len() => v[at] = byte,
            _ => v.insert(at, byte),
        }
    }
    v
}

/// Bytes that matter to the formats: digits, signs, quotes, brackets,
/// separators, newlines, a high byte.
fn telling_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        proptest::sample::select(b"0123456789-+.eE\"'[]{}=:,\t\n #_xn".to_vec()),
        any::<u8>(),
    ]
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), telling_byte()), 1..8)
}

/// A valid config file setting fields of every section.
const TOML: &str = "preset = \"debug\"\n[model]\nlattice_width = 12\ncarrier_layers = 1\n\
[flow]\nlattice_depth = 6\nmax_displacement = 0.25\n[train]\nbatch_size = 4\nlearning_rate = 3e-4\n\
val_fraction = 0.1\n[runtime]\nkernels = \"composed\"\nthreads = 2\n";

/// Refusals name the file, or the config field.
const TOML_NAMES: &[&str] = &["fuzz.toml", "config field `"];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_loader_survives_mutated_files(e in edits()) {
        let text = String::from_utf8_lossy(&mutate(TOML.as_bytes(), &e)).to_string();
        check(TOML_NAMES, || LoadedConfig::parse(&text, Preset::Tuned, "fuzz.toml"))?;
    }

    #[test]
    fn config_loader_survives_random_text(text in "[a-z_\\[\\]=\"0-9.\\n -]{0,200}") {
        check(TOML_NAMES, || LoadedConfig::parse(&text, Preset::Tuned, "fuzz.toml"))?;
    }

    #[test]
    fn safetensors_reader_survives_mutated_files(e in edits(), rows in 1usize..4, cols in 1usize..5, f16 in any::<bool>()) {
        let m = Matrix { rows, cols, data: (0..rows * cols).map(|i| i as f32 * 0.25 - 1.0).collect() };
        let dtype = if f16 { StoreDtype::F16 } else { StoreDtype::F32 };
        let bytes = mutate(&matrices_to_bytes(&[("input", &m)], dtype).unwrap(), &e);
        check(&["fuzz.safetensors"], || read_matrix(Path::new("fuzz.safetensors"), &bytes, "input"))?;
    }

    #[test]
    fn safetensors_reader_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(&["fuzz.safetensors"], || read_matrix(Path::new("fuzz.safetensors"), &bytes, "input"))?;
    }

    #[test]
    fn checkpoint_reader_survives_mutated_files(e in edits()) {
        let text = String::from_utf8_lossy(&mutate(checkpoint_json().as_bytes(), &e)).to_string();
        check(&["fuzz/checkpoint.json"], || parse_meta(&text, Path::new("fuzz/checkpoint.json")))?;
    }

    #[test]
    fn text_reader_survives_random_and_mutated_files(
        bytes in proptest::collection::vec(telling_byte(), 0..200),
        e in edits(),
        format in 0u8..3,
    ) {
        let format = [TextFormat::Auto, TextFormat::Lines, TextFormat::Pairs][format as usize];
        check(&["fuzz.txt"], || parse_text_file(Path::new("fuzz.txt"), &bytes, format))?;
        let pairs = mutate(b"a dog\tthe dog runs\nrain\tit rains today\n", &e);
        check(&["fuzz.txt"], || parse_text_file(Path::new("fuzz.txt"), &pairs, format))?;
    }
}

/// A real checkpoint.json (the fixture run's), read once.
fn checkpoint_json() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-before-runtime/latest/checkpoint.json");
        std::fs::read_to_string(path).unwrap()
    })
}

#[test]
fn the_unmutated_inputs_are_read() {
    LoadedConfig::parse(TOML, Preset::Tuned, "fuzz.toml").unwrap();
    parse_meta(checkpoint_json(), Path::new("fuzz/checkpoint.json")).unwrap();
    let m = Matrix {
        rows: 2,
        cols: 3,
        data: vec![0.5; 6],
    };
    let bytes = matrices_to_bytes(&[("input", &m)], StoreDtype::F32).unwrap();
    assert_eq!(read_matrix(Path::new("x"), &bytes, "input").unwrap().data, m.data);
    let t = parse_text_file(Path::new("t.txt"), b"a\tb\n", TextFormat::Auto).unwrap();
    assert_eq!(t.targets.unwrap(), vec!["b".to_string()]);
}
