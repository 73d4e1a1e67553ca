//! The carrier's heads (`kernels::head`) on the GPU backend: one product
//! and one kernel forward; backward one kernel, two column sums and the
//! products; the output and every gradient equal to the head op by op on
//! the same device (`head_layers` on our fused ops, the fallback) and on
//! the CPU (forward 1e-5, gradients 1e-4 of their size), on odd widths and
//! a single row, for both finishes (tanh, and a clamp that cuts some
//! values); dL/dx against finite differences.

use crate::common::gpu::{gpu, host, launches, max_diff, values};
use crate::kernels::{assert_grads_close, check_finite_differences, count, matrix, weighted_sum};
use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use energyflow::device;
use energyflow::kernels::Kernels;
use energyflow::kernels::head::{Finish, head, head_layers};
use energyflow::model::layers::{Init, WeightInit};

/// fc1 [d, k] and fc2 [k, m] on `dev`, with biases that are not zeros.
fn layers(d: usize, k: usize, m: usize, dev: &Device) -> (Linear, Linear) {
    let mut init = Init::new(11, dev);
    let mut fc1 = init.linear(d, k, WeightInit::XavierNormal);
    let mut fc2 = init.linear(k, m, WeightInit::XavierNormal);
    let bias = |len: usize, seed: f32| {
        Param::from_tensor(device::vector(values(len, seed).iter().map(|v| v * 0.3).collect(), dev))
    };
    fc1.bias = Some(bias(k, 0.9));
    fc2.bias = Some(bias(m, 2.3));
    (fc1, fc2)
}

/// What one run gives: y; on an autodiff device the gradients of sum(y *
/// w) in x, W1, b1, W2, b2; the kernels launched forward and backward.
struct Run {
    y: Vec<f32>,
    grads: Vec<Vec<f32>>,
    forward: Vec<&'static str>,
    backward: Vec<&'static str>,
}

/// One run of `head` (the kernel where the backend has it), or with
/// `by_ops` of the first layer and `head_layers`.
fn run(by_ops: bool, finish: Finish, shape: (usize, usize, usize, usize), dev: &Device) -> Run {
    let (rows, d, k, m) = shape;
    let (fc1, fc2) = layers(d, k, m, dev);
    let x = matrix(rows, d, 0.4, 0.8, dev);
    let tracked = dev.is_autodiff();
    let x = if tracked { x.require_grad() } else { x };
    let f = Kernels::Fused;
    let (y, forward) = launches(|| match by_ops {
        false => head(&fc1, &fc2, x.clone(), finish, f),
        true => head_layers(&fc2, f.linear(&fc1, x.clone()), finish, f),
    });
    let out = host(y.clone());
    let (mut grads, mut backward) = (Vec::new(), Vec::new());
    if tracked {
        let w = matrix(rows, m, 5.1, 1.0, dev);
        let (g, names) = launches(|| (y * w).sum().backward());
        let two = |t: Tensor<2>| host(t.grad(&g).unwrap());
        let one = |l: &Linear| host(l.bias.as_ref().unwrap().val().grad(&g).unwrap());
        grads = vec![
            two(x),
            two(fc1.weight.val()),
            one(&fc1),
            two(fc2.weight.val()),
            one(&fc2),
        ];
        backward = names;
    }
    Run {
        y: out,
        grads,
        forward,
        backward,
    }
}

const NAMES: [&str; 5] = ["x", "w1", "b1", "w2", "b2"];

/// The displacement head's finish with a limit that cuts some outputs.
const CUTTING: Finish = Finish::Clamp { scale: 2.0, limit: 0.3 };

#[test]
fn a_head_is_a_product_and_one_kernel_equal_to_its_ops_and_the_cpu() {
    for autodiff in [false, true] {
        let (gpu, cpu) = if autodiff {
            (gpu().autodiff(), Device::flex().autodiff())
        } else {
            (gpu(), Device::flex())
        };
        let shapes = [
            (1, 8, 4, 1),
            (7, 5, 9, 3),
            (333, 16, 128, 1),
            (333, 16, 64, 3),
            (3, 2, 1, 1),
        ];
        for (shape, finish) in shapes.into_iter().flat_map(|s| [(s, Finish::Tanh), (s, CUTTING)]) {
            let case = format!("{shape:?}, {finish:?}, autodiff {autodiff}");
            let ours = run(false, finish, shape, &gpu);
            assert_eq!(count(&ours.forward, "head_kernel"), 1, "{case}: {:?}", ours.forward);
            let by_ops = run(true, finish, shape, &gpu);
            let cpus = run(false, finish, shape, &cpu);
            assert!(max_diff(&ours.y, &by_ops.y) <= 1e-5, "{case}: against the ops");
            assert!(max_diff(&ours.y, &cpus.y) <= 1e-5, "{case}: against the CPU");
            if finish == CUTTING && shape.0 > 100 {
                let cut = ours.y.iter().filter(|v| v.abs() == 0.3).count();
                assert!(cut > 0 && cut < ours.y.len(), "{case}: the clamp cut {cut} values");
            }
            assert_eq!(ours.grads.len(), if autodiff { 5 } else { 0 });
            assert_grads_close(&case, &NAMES, &ours.grads, &by_ops.grads, &cpus.grads);
            // The ops are the product, the bias, GELU, the product, the
            // bias and the finish; ours the product and the kernel.
            assert_eq!(
                ours.forward.len() + 4,
                by_ops.forward.len(),
                "{case}: {:?}",
                by_ops.forward
            );
            if autodiff {
                let b = &ours.backward;
                assert_eq!(count(b, "head_backward_kernel"), 1, "{case}: {b:?}");
                // dL/dp and the products' operands are views, not copies.
                assert_eq!(count(b, "SliceKernel") + count(b, "ontiguous"), 0, "{case}: {b:?}");
                // Ours: the kernel, dL/dW2, the two bias sums; the ops: the
                // finish's backward (one for the clamp, more for tanh), two
                // products, GELU's, and the two bias sums, which burn skips
                // for a single row.
                let fewer = if shape.0 > 1 { 2 } else { 0 };
                assert!(
                    b.len() + fewer <= by_ops.backward.len(),
                    "{case}: ours {b:?}, the ops' {:?}",
                    by_ops.backward
                );
            }
        }
    }
}

#[test]
fn a_heads_input_gradient_matches_finite_differences() {
    let gpu = gpu();
    let (rows, d, k, m) = (3, 4, 5, 3);
    let wide = Finish::Clamp {
        scale: 0.7,
        limit: 10.0,
    };
    for finish in [Finish::Tanh, wide] {
        let ad = run(false, finish, (rows, d, k, m), &gpu.clone().autodiff());
        let (fc1, fc2) = layers(d, k, m, &gpu);
        let w = host(matrix(rows, m, 5.1, 1.0, &gpu));
        let base = [host(matrix(rows, d, 0.4, 0.8, &gpu))];
        check_finite_differences(&base, &ad.grads[..1], |v| {
            let x = device::matrix(v[0].clone(), rows, d, &gpu);
            weighted_sum(host(head(&fc1, &fc2, x, finish, Kernels::Fused)), &w)
        });
    }
}
