//! `energyflow bench step --json` as a user runs it: the figures issue 9
//! asked for, consistent with each other.

mod common;
use common::{TINY, energyflow, s, setup_with};
use energyflow::io::StoreDtype;

#[test]
fn bench_step_reports_consistent_per_flow_step_figures() {
    let st = setup_with(TINY, 4, StoreDtype::F32);
    let out = energyflow(&[
        "bench",
        "step",
        "--config",
        s(&st.config),
        "--runs",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| d[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {d}"));
    assert!(f("flow_steps") > 0.0 && f("infer_flow_steps") > 0.0);
    // Two timed steps: the per-flow-step cost is their time over their rows,
    // within the spread between the two steps' flow counts.
    let per = f("train_us_per_flow_step");
    let rough = f("train_step_ms") * 1e3 / f("flow_steps");
    assert!(per > 0.3 * rough && per < 3.0 * rough, "{per} against {rough}");
    let infer = f("infer_us_per_flow_step");
    assert!((infer - f("infer_ms") * 1e3 / f("infer_flow_steps")).abs() <= 1e-6 * infer.max(1.0));
    // CPU use leaves the kept-awake workers' spinning out; together they
    // are at most the cores (a little over for clock granularity), and
    // only the workers other than the caller spin.
    let (cpu, spin) = (f("cpu_utilisation"), f("cpu_spin"));
    let cores = d["cores"].as_f64().unwrap();
    assert!(cpu >= 0.0 && spin >= 0.0 && cpu + spin <= 1.1, "cpu {cpu} spin {spin}");
    assert!(spin <= (cores - 1.0) / cores + 0.05, "spin {spin} of {cores} cores");
    assert_eq!(
        d["cores"].as_u64(),
        Some(std::thread::available_parallelism().unwrap().get() as u64)
    );
    // The transfer counts (issue 20): the host step reads the positions back
    // at every propagation step, so at least one read per propagation step,
    // each moving bytes; the batch goes up as uploads.
    let steps = f("propagation_steps");
    assert!(steps >= 1.0, "{steps}");
    assert!(f("host_reads") >= steps, "{d}");
    assert!(f("host_read_bytes") >= 4.0 * f("host_reads"), "{d}");
    assert!(f("host_writes") >= 2.0 && f("host_write_bytes") > 0.0, "{d}");
    assert_eq!(d["backend"], "cpu (Flex)", "{d}");
}

#[test]
fn bench_collect_reports_every_collection_equal_to_the_reference() {
    let out = energyflow(&[
        "bench",
        "collect",
        "--flows",
        "2000",
        "--samples",
        "4",
        "--preset",
        "debug",
        "--runs",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| d[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {d}"));
    assert_eq!(d["diff_against"], "naive", "{d}");
    for k in ["max_abs_diff", "device_max_abs_diff", "device_composed_max_abs_diff"] {
        assert!(f(k) < 1e-5, "{k} in {d}");
    }
    for k in ["optimized_ms", "naive_ms", "device_ms", "device_composed_ms"] {
        assert!(f(k) > 0.0, "{k} in {d}");
    }
    assert!(f("groups") > 0.0 && f("groups") <= 2000.0, "{d}");
    assert_eq!(d["backend"], "cpu (Flex)", "{d}");
}
