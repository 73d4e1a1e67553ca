//! LayerNorm (`kernels::norm`) on the GPU backend: one kernel forward, one
//! kernel and burn's column sums backward, equal to burn's LayerNorm on the
//! same device and to the CPU loops (forward 1e-5, gradients 1e-4), and the
//! gradient of x against finite differences.

use crate::common::gpu::{gpu, host, launches, max_diff};
use crate::kernels::{check_finite_differences, count, matrix, weighted_sum};
use burn::module::Param;
use burn::nn::LayerNorm;
use burn::tensor::{Device, Tensor};
use energyflow::device;
use energyflow::kernels::Kernels;
use energyflow::kernels::norm::norm_module;

/// A LayerNorm of width `d` on `dev` whose gamma and beta are not ones and zeros.
fn norm(d: usize, dev: &Device) -> LayerNorm {
    let mut ln = norm_module(d, dev);
    let v = |seed: f32| device::vector((0..d).map(|i| (i as f32 * 1.3 + seed).cos()).collect(), dev);
    ln.gamma = Param::from_tensor(v(0.4));
    ln.beta = Some(Param::from_tensor(v(2.0)));
    ln
}

/// What one run gives: y, and on an autodiff device dL/dx, dL/dgamma and
/// dL/dbeta of sum(y * w); the kernels of the forward and of the backward.
struct Run {
    y: Vec<f32>,
    grads: Option<[Vec<f32>; 3]>,
    forward: Vec<&'static str>,
    backward: Vec<&'static str>,
}

fn run(kernels: Kernels, rows: usize, d: usize, dev: &Device) -> Run {
    let ln = norm(d, dev);
    let tracked = dev.is_autodiff();
    let x = matrix(rows, d, 0.3, 2.0, dev);
    let x = if tracked { x.require_grad() } else { x };
    let w = matrix(rows, d, 5.1, 1.0, dev);
    let (y, forward) = launches(|| kernels.layer_norm(&ln, x.clone()));
    let out = host(y.clone());
    let (mut grads, mut backward) = (None, Vec::new());
    if tracked {
        let loss = (y * w).sum();
        let (g, names) = launches(|| loss.backward());
        let of = |t: Tensor<1>| host(t.grad(&g).unwrap());
        grads = Some([
            host(x.grad(&g).unwrap()),
            of(ln.gamma.val()),
            of(ln.beta.as_ref().unwrap().val()),
        ]);
        backward = names;
    }
    Run {
        y: out,
        grads,
        forward,
        backward,
    }
}

#[test]
fn layer_norm_is_one_kernel_equal_to_burns_and_the_cpu() {
    for autodiff in [false, true] {
        let (gpu, cpu) = if autodiff {
            (gpu().autodiff(), Device::flex().autodiff())
        } else {
            (gpu(), Device::flex())
        };
        for (rows, d) in [(1, 1), (1, 17), (5, 3), (33, 32), (3000, 3)] {
            let ours = run(Kernels::Fused, rows, d, &gpu);
            assert_eq!(ours.forward.len(), 1, "{rows}x{d}: {:?}", ours.forward);
            assert_eq!(count(&ours.forward, "norm_kernel"), 1, "{:?}", ours.forward);
            let burns = run(Kernels::Composed, rows, d, &gpu);
            let cpus = run(Kernels::Fused, rows, d, &cpu);
            assert!(max_diff(&ours.y, &burns.y) <= 1e-5, "against burn's, {rows}x{d}");
            assert!(max_diff(&ours.y, &cpus.y) <= 1e-5, "against the CPU, {rows}x{d}");
            assert_eq!(ours.grads.is_some(), autodiff);
            let (Some(g), Some(gb), Some(gc)) = (ours.grads, burns.grads, cpus.grads) else {
                continue;
            };
            for (k, what) in ["dx", "dgamma", "dbeta"].iter().enumerate() {
                // dgamma and dbeta are sums over the rows: held to 1e-4 of
                // their size, as f32 sums in another order differ by that.
                let scale = gb[k].iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let (db, dc) = (max_diff(&g[k], &gb[k]), max_diff(&g[k], &gc[k]));
                assert!(
                    db <= 1e-4 * scale,
                    "{what} against burn's, {rows}x{d}: {db} (scale {scale})"
                );
                assert!(
                    dc <= 1e-4 * scale,
                    "{what} against the CPU, {rows}x{d}: {dc} (scale {scale})"
                );
            }
            assert_eq!(count(&ours.backward, "norm_backward_kernel"), 1, "{:?}", ours.backward);
            // burn's LayerNorm backward is a graph of some 30 launches; ours is
            // one kernel and the two column sums (plus the loss's own nodes).
            assert!(
                ours.backward.len() + 15 <= burns.backward.len(),
                "{rows}x{d}: ours {:?}, burn's {:?}",
                ours.backward,
                burns.backward
            );
        }
    }
}

#[test]
fn layer_norm_gradient_matches_finite_differences() {
    let gpu = gpu();
    let (rows, d) = (3, 5);
    let ad = gpu.clone().autodiff();
    let [dx, _, _] = run(Kernels::Fused, rows, d, &ad).grads.unwrap();
    let (ln, w) = (norm(d, &gpu), host(matrix(rows, d, 5.1, 1.0, &gpu)));
    let x = host(matrix(rows, d, 0.3, 2.0, &gpu));
    check_finite_differences(&[x], &[dx], |v| {
        weighted_sum(
            host(Kernels::Fused.layer_norm(&ln, device::matrix(v[0].clone(), rows, d, &gpu))),
            &w,
        )
    });
}
