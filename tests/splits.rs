//! Three splits: training, validation (chooses best/, the curves) and test
//! (seen only at the end: what `eval` and the closing line report).

mod common;

use common::{TINY, energyflow, s, setup_with};
use energyflow::io::StoreDtype;
use energyflow::train::metrics::{Record, read_records};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| l.starts_with('{')).expect("a JSON line");
    serde_json::from_str(last).unwrap()
}

#[test]
fn eval_reports_the_test_split_and_validation_chooses_best() {
    // 60 pairs: 6 validate, 12 test, 42 train.
    let st = setup_with(&format!("{TINY}test_fraction = 0.2\n"), 60, StoreDtype::F32);
    let train = energyflow(&[
        "train",
        "--config",
        s(&st.config),
        "--data",
        s(&st.data),
        "--out",
        s(&st.out),
        "--quiet",
        "--max-steps",
        "12",
    ]);
    let closing = json(&train);
    let err = String::from_utf8_lossy(&train.stderr);
    assert!(err.contains("(42 train / 6 validation / 12 test)"), "{err}");
    assert_eq!(closing["split"], "test");
    assert_eq!(closing["n"], 12);

    // `eval` of the run folder is the closing line, test split by default.
    let test = json(&energyflow(&["eval", "--checkpoint", s(&st.out), "--json"]));
    assert_eq!(test, closing);
    let val = json(&energyflow(&[
        "eval",
        "--checkpoint",
        s(&st.out),
        "--split",
        "validation",
        "--json",
    ]));
    assert_eq!(
        (val["split"].as_str(), val["n"].as_u64()),
        (Some("validation"), Some(6))
    );
    assert_eq!(val["step"], test["step"]);
    assert_ne!(val["cosine"], test["cosine"]);

    // The validation records are measured on the validation rows, and the
    // best one is the checkpoint in best/.
    let vals: Vec<_> = read_records(&st.out.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Validation(v) => Some(v),
            Record::Step(_) => None,
        })
        .collect();
    assert!(!vals.is_empty() && vals.iter().all(|v| v.val_n == 6));
    let best = vals.iter().rfind(|v| v.best).expect("a best validation");
    assert_eq!(test["step"].as_u64(), Some(best.step as u64));
    assert!(
        (val["loss"].as_f64().unwrap() - best.val_loss).abs() < 1e-9,
        "{val} vs {}",
        best.val_loss
    );
}

#[test]
fn fractions_that_leave_nothing_to_train_are_refused_naming_the_field() {
    let st = setup_with(TINY, 20, StoreDtype::F32);
    let out = energyflow(&[
        "train",
        "--config",
        s(&st.config),
        "--data",
        s(&st.data),
        "--out",
        s(&st.out),
        "--val-fraction",
        "0.5",
        "--test-fraction",
        "0.5",
    ]);
    common::assert_refused(&out, "train.test_fraction");
}
