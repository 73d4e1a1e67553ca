//! `energyflow embed` and `energyflow data wordnet` end to end, and their
//! refusals of bad input: one line on stderr, exit code 2, never a panic.
//! The embed runs need the all-MiniLM-L6-v2 folder (see tests/teacher.rs).

use energyflow::io::cosine;
use energyflow::io::load_matrix;
use std::path::Path;

mod common;
use common::{assert_refused, energyflow, teacher_model_dir as model_dir};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The fixture's first text and its reference vector.
fn reference_first() -> (String, Vec<f32>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/teacher/reference.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let text = v["texts"][0].as_str().unwrap().to_string();
    let e = v["embeddings"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_f64().unwrap() as f32)
        .collect();
    (text, e)
}

#[test]
fn embed_pairs_writes_tensors_texts_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_ref) = reference_first();
    let long = "word ".repeat(400);
    let input = dir.path().join("pairs.tsv");
    std::fs::write(
        &input,
        format!("{first}\tA man is playing a guitar.\n\nshort\t{long}\nCafé\tnaïve\n"),
    )
    .unwrap();
    let output = dir.path().join("x.safetensors");
    let out = energyflow(&[
        "embed",
        "--model",
        s(&model_dir()),
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--batch",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 empty line(s) skipped"), "{stderr}");
    assert!(
        stderr.contains("1 text(s) longer than 256 tokens truncated (line(s) 3)"),
        "{stderr}"
    );

    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["rows"], 3);
    assert_eq!(summary["sentences"], 6);
    assert_eq!(summary["truncated"], 1);
    assert_eq!(summary["empty_lines_skipped"], 1);
    assert!(summary["sentences_per_s"].as_f64().unwrap() > 0.0);

    let x = load_matrix(&output, "input").unwrap();
    let y = load_matrix(&output, "target").unwrap();
    assert_eq!((x.rows, x.cols, y.rows, y.cols), (3, 384, 3, 384));
    assert!(cosine(x.row(0), &first_ref) >= 0.9999);

    let jsonl = std::fs::read_to_string(dir.path().join("x.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["input"], first.as_str());
    assert_eq!(rows[2]["target"], "naïve");
}

#[test]
fn embed_lines_in_f16_writes_only_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, "one text\nanother text\n").unwrap();
    let output = dir.path().join("t.safetensors");
    let out = energyflow(&[
        "embed",
        "--model",
        s(&model_dir()),
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--dtype",
        "f16",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let x = load_matrix(&output, "input").unwrap();
    assert_eq!((x.rows, x.cols), (2, 384));
    let err = load_matrix(&output, "target").unwrap_err();
    assert!(err.to_string().contains("no tensor named \"target\""));
    let bytes = std::fs::read(&output).unwrap();
    assert!(String::from_utf8_lossy(&bytes[..200]).contains("F16"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("t.jsonl")).unwrap(),
        "{\"input\":\"one text\"}\n{\"input\":\"another text\"}\n"
    );
}

#[test]
fn embed_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let model = model_dir();
    let out_path = p("x.safetensors");
    let good = p("good.txt");
    std::fs::write(&good, "a text\n").unwrap();
    let run = |model: &Path, input: &Path, extra: &[&str]| {
        let mut args = vec![
            "embed",
            "--model",
            s(model),
            "--input",
            s(input),
            "--output",
            s(&out_path),
        ];
        args.extend_from_slice(extra);
        energyflow(&args)
    };

    assert_refused(&run(&p("no-model"), &good, &[]), "model folder not found");
    let incomplete = p("incomplete");
    std::fs::create_dir(&incomplete).unwrap();
    std::fs::copy(model.join("config.json"), incomplete.join("config.json")).unwrap();
    assert_refused(&run(&incomplete, &good, &[]), "tokenizer.json is missing");

    assert_refused(&run(&model, &p("missing.txt"), &[]), "missing.txt");
    std::fs::write(p("latin1.txt"), b"caf\xe9\n").unwrap();
    assert_refused(&run(&model, &p("latin1.txt"), &[]), "not UTF-8 text");
    std::fs::write(p("pairs.tsv"), "a\tb\nno tab\n").unwrap();
    assert_refused(&run(&model, &p("pairs.tsv"), &[]), "line 2 has no tab");
    std::fs::write(p("blank.txt"), "\n\n").unwrap();
    assert_refused(&run(&model, &p("blank.txt"), &[]), "no texts");

    assert_refused(&run(&model, &good, &["--batch", "0"]), "--batch 0");
    assert_refused(
        &run(&model, &good, &["--batch", "18446744073709551615"]),
        "between 1 and 4096",
    );
    assert_refused(&run(&model, &good, &["--max-length", "1000"]), "--max-length 1000");
    // The bound is in --help, as the refusal states it.
    let help = String::from_utf8_lossy(&energyflow(&["embed", "--help"]).stdout).to_string();
    let bound = format!("1..={}", energyflow::teacher::job::MAX_BATCH);
    assert!(help.contains(&bound), "{help}");
    let jsonl_out = energyflow(&[
        "embed",
        "--model",
        s(&model),
        "--input",
        s(&good),
        "--output",
        s(&p("x.jsonl")),
    ]);
    assert_refused(&jsonl_out, "must not end in .jsonl");
    assert!(!out_path.exists(), "nothing written on refusal");

    // Outputs never destroy inputs, however the paths are spelled: the
    // sidecar t.jsonl of t.safetensors is the input ./t.jsonl here.
    let texts = p("t.jsonl");
    std::fs::write(&texts, "a text\n").unwrap();
    let spelled = dir.path().join(".").join("t.jsonl");
    let out = energyflow(&[
        "embed",
        "--model",
        s(&model),
        "--input",
        s(&spelled),
        "--output",
        s(&p("t.safetensors")),
    ]);
    assert_refused(&out, "sidecar");
    assert_refused(&out, "destroy");
    assert_eq!(std::fs::read_to_string(&texts).unwrap(), "a text\n");
    let out = energyflow(&[
        "embed",
        "--model",
        s(&model),
        "--input",
        s(&good),
        "--output",
        s(&model.join("model.safetensors")),
    ]);
    assert_refused(&out, "a file of --model");
    let out = energyflow(&[
        "embed",
        "--model",
        s(&model),
        "--input",
        s(&good),
        "--output",
        "/dev/null",
    ]);
    assert_refused(&out, "/dev/null is a device");
}

/// Two synsets in WordNet's database format (one without an example).
const DATA_NOUN: &str = "  1 This software and database is being provided to you, the LICENSEE, by  \n\
00007846 03 n 01 person 0 000 | a human being; \"there was too much for one person to do\"  \n\
00002137 03 n 01 abstraction 0 000 | a general concept formed by extracting common features  \n";
const DATA_VERB: &str = "00001740 29 v 01 breathe 0 000 | draw air into, and expel out of, the lungs; \"I can breathe better now\"; \"Breathe deeply\"  \n";

#[test]
fn data_wordnet_writes_pairs_and_refuses_a_wrong_folder() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dir.path().join("wordnet");
    std::fs::create_dir(&dict).unwrap();
    std::fs::write(dict.join("data.noun"), DATA_NOUN).unwrap();
    std::fs::write(dict.join("data.verb"), DATA_VERB).unwrap();
    std::fs::write(dict.join("data.adj"), "").unwrap();
    std::fs::write(dict.join("data.adv"), "").unwrap();
    let tsv = dir.path().join("pairs.tsv");
    let out = energyflow(&["data", "wordnet", "--dict", s(&dict), "--out", s(&tsv), "--count", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["synsets"].as_u64(), summary["written"].as_u64()),
        (Some(3), Some(2))
    );
    let mut lines: Vec<String> = std::fs::read_to_string(&tsv)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "a human being\tthere was too much for one person to do",
            "draw air into, and expel out of, the lungs\tI can breathe better now",
        ]
    );

    let out = energyflow(&["data", "wordnet", "--dict", s(&dict), "--out", s(&tsv), "--count", "3"]);
    assert_refused(&out, "--count 3");
    let out = energyflow(&["data", "wordnet", "--dict", s(dir.path()), "--out", s(&tsv)]);
    assert_refused(&out, "no WordNet database file data.noun");
    let out = energyflow(&[
        "data",
        "wordnet",
        "--dict",
        s(&dict),
        "--out",
        s(&dict.join("data.noun")),
    ]);
    assert_refused(&out, "is --dict");
    assert_eq!(std::fs::read_to_string(dict.join("data.noun")).unwrap(), DATA_NOUN);
}
