//! The wall rule and the displacement's clamp as kernels (`kernels::walls`)
//! on the GPU backend: one launch forward and one
//! backward, the composed ops' values and gradients exactly (on the same
//! device), with and without reflection, on the boundaries and far past
//! them.

use crate::common::gpu::{gpu, host, launches};
use crate::kernels::count;
use burn::tensor::{Device, Tensor};
use energyflow::device;
use energyflow::flow::rules;
use energyflow::kernels::Kernels;
use energyflow::kernels::walls::{scale_clamp, wall};

/// Raw positions [N, 3] that cover every branch: inside, exactly on +-1,
/// just past, past by more than 2 (reflected out again, then clamped),
/// NaN-free.
fn raw_values(rows: usize) -> Vec<f32> {
    let special = [
        -3.5f32, -3.0, -2.0, -1.5, -1.0, -0.999, 0.0, 0.5, 1.0, 1.0001, 1.7, 3.0, 4.25,
    ];
    (0..rows * 3)
        .map(|i| {
            if i < special.len() * 3 {
                special[i / 3 % special.len()] * if i % 2 == 0 { 1.0 } else { -1.0 }
            } else {
                ((i as f32) * 0.618).sin() * 3.2
            }
        })
        .collect()
}

/// The walled positions and, on an autodiff device, dL/draw of
/// sum(walled * w); the launches of the forward and of the backward.
struct Run(Vec<f32>, Option<Vec<f32>>, Vec<&'static str>, Vec<&'static str>);

fn run(f: impl Fn(Tensor<2>) -> Tensor<2>, rows: usize, dev: &Device) -> Run {
    let raw = device::matrix(raw_values(rows), rows, 3, dev);
    let tracked = dev.is_autodiff();
    let raw = if tracked { raw.require_grad() } else { raw };
    let w = device::matrix((0..rows * 3).map(|i| (i as f32 * 0.37).cos()).collect(), rows, 3, dev);
    let (walled, fwd) = launches(|| f(raw.clone()));
    let out = host(walled.clone());
    if !tracked {
        return Run(out, None, fwd, Vec::new());
    }
    let loss = (walled * w).sum();
    let (g, bwd) = launches(|| loss.backward());
    Run(out, Some(host(raw.grad(&g).unwrap())), fwd, bwd)
}

#[test]
fn the_wall_kernel_is_the_rule_exactly_in_one_launch_each_way() {
    for autodiff in [false, true] {
        let dev = if autodiff { gpu().autodiff() } else { gpu() };
        for reflection in [true, false] {
            for rows in [1, 13, 700] {
                let ours = run(|r| wall(r, reflection, Kernels::Fused), rows, &dev);
                let rule = run(|r| rules::wall(r, reflection), rows, &dev);
                assert_eq!(ours.0, rule.0, "values, reflection {reflection}, {rows} rows");
                assert_eq!(ours.2.len(), 1, "{:?}", ours.2);
                assert_eq!(count(&ours.2, "bound_kernel"), 1, "{:?}", ours.2);
                assert!(ours.0.iter().all(|v| (-1.0..=1.0).contains(v)));
                if let (Some(g), Some(gr)) = (ours.1, rule.1) {
                    // The same values up to the sign of a zero.
                    assert!(
                        g.iter().zip(&gr).all(|(a, b)| a == b),
                        "gradients, reflection {reflection}, {rows} rows"
                    );
                    assert_eq!(count(&ours.3, "bound_backward_kernel"), 1, "{:?}", ours.3);
                    // Beside the loss's own nodes, none of the rule's masks,
                    // slices and concatenation.
                    for part in ["mask", "slice"] {
                        assert_eq!(count(&ours.3, part), 0, "{:?}", ours.3);
                        assert!(count(&rule.3, part) > 0, "{:?}", rule.3);
                    }
                }
                let composed = run(|r| wall(r, reflection, Kernels::Composed), rows, &dev);
                assert_eq!(composed.0, rule.0);
                assert_eq!(count(&composed.2, "bound_kernel"), 0, "{:?}", composed.2);
            }
        }
    }
}

#[test]
fn the_clamp_kernel_is_the_composed_clamp_exactly_in_one_launch_each_way() {
    for autodiff in [false, true] {
        let dev = if autodiff { gpu().autodiff() } else { gpu() };
        // Scale 0.5 and bound 0.75: raw values of +-1.5 land exactly on it.
        for (s, m, rows) in [(0.5, 0.75, 13), (0.5, 0.75, 700), (2.0, 0.1, 700)] {
            let ours = run(|x| scale_clamp(x, s, m, Kernels::Fused), rows, &dev);
            let theirs = run(|x| (x * s).clamp(-m, m), rows, &dev);
            assert_eq!(ours.0, theirs.0, "values, s {s}, m {m}, {rows} rows");
            assert!(ours.0.iter().all(|v| v.abs() <= m as f32));
            assert_eq!(ours.2.len(), 1, "{:?}", ours.2);
            assert_eq!(count(&ours.2, "bound_kernel"), 1, "{:?}", ours.2);
            if let (Some(g), Some(gt)) = (ours.1, theirs.1) {
                assert!(
                    g.iter().zip(&gt).all(|(a, b)| a == b),
                    "gradients, s {s}, m {m}, {rows} rows"
                );
                assert!(g.contains(&0.0) && g.iter().any(|v| *v != 0.0));
                assert_eq!(count(&ours.3, "bound_backward_kernel"), 1, "{:?}", ours.3);
                assert_eq!(count(&ours.3, "mask"), 0, "{:?}", ours.3);
            }
            let composed = run(|x| scale_clamp(x, s, m, Kernels::Composed), rows, &dev);
            assert_eq!(composed.0, theirs.0);
            assert_eq!(count(&composed.2, "bound_kernel"), 0, "{:?}", composed.2);
        }
    }
}
