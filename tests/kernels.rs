//! The fused GRU cell against its composed reference: forward values within
//! 1e-5, gradients within 1e-4, and both gradients against finite
//! differences; single rows, odd widths, non-contiguous inputs, plain,
//! autodiff and gradient-checkpointing devices.

use burn::tensor::{Device, Tensor};
use energyflow::device;
use energyflow::model::kernels::{gru_cell, gru_cell_composed};

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.618 + seed).sin() * 2.5).collect()
}

/// (gx, gh, h) of `rows` x `hd`, on `dev`.
fn inputs(rows: usize, hd: usize, dev: &Device) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    (
        device::matrix(values(rows * 3 * hd, 0.1), rows, 3 * hd, dev),
        device::matrix(values(rows * 3 * hd, 1.7), rows, 3 * hd, dev),
        device::matrix(values(rows * hd, 2.9).iter().map(|v| v * 0.4).collect(), rows, hd, dev),
    )
}

fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    let (a, b) = (device::to_vec(a).unwrap(), device::to_vec(b).unwrap());
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

type Cell = fn(Tensor<2>, Tensor<2>, Tensor<2>) -> Tensor<2>;

/// Gradients of sum(h' * w) into (gx, gh, h) for one cell implementation.
fn grads(cell: Cell, rows: usize, hd: usize, dev: &Device) -> [Tensor<2>; 3] {
    let (gx, gh, h) = inputs(rows, hd, dev);
    let (gx, gh, h) = (gx.require_grad(), gh.require_grad(), h.require_grad());
    let w = device::matrix(values(rows * hd, 4.2), rows, hd, dev);
    let loss = (cell(gx.clone(), gh.clone(), h.clone()) * w).sum();
    let g = loss.backward();
    [gx.grad(&g).unwrap(), gh.grad(&g).unwrap(), h.grad(&g).unwrap()]
}

#[test]
fn fused_forward_equals_composed_within_1e5() {
    let dev = Device::flex();
    for (rows, hd) in [(1, 1), (1, 7), (5, 3), (33, 17), (300, 130)] {
        let (gx, gh, h) = inputs(rows, hd, &dev);
        let d = max_diff(
            gru_cell(gx.clone(), gh.clone(), h.clone()),
            gru_cell_composed(gx, gh, h),
        );
        assert!(d <= 1e-5, "rows {rows}, hd {hd}: {d}");
    }
}

#[test]
fn fused_gradients_equal_composed_within_1e4_on_every_autodiff_device() {
    let plain = Device::flex();
    for dev in [plain.clone().autodiff(), plain.autodiff().gradient_checkpointing()] {
        for (rows, hd) in [(1, 1), (1, 5), (7, 3), (300, 130)] {
            let fused = grads(gru_cell, rows, hd, &dev);
            let composed = grads(gru_cell_composed, rows, hd, &dev);
            for (k, (a, b)) in fused.into_iter().zip(composed).enumerate() {
                let d = max_diff(a.inner(), b.inner());
                assert!(d <= 1e-4, "input {k}, rows {rows}, hd {hd}: {d}");
            }
        }
    }
}

#[test]
fn fused_gradients_match_finite_differences() {
    let dev = Device::flex().autodiff();
    let (rows, hd) = (3, 4);
    let analytic = grads(gru_cell, rows, hd, &dev);
    let plain = Device::flex();
    let w = values(rows * hd, 4.2);
    // Loss in f64 from f32 host inputs, through the fused forward.
    let loss = |x: [Vec<f32>; 3]| -> f64 {
        let [gx, gh, h] = x;
        let out = gru_cell(
            device::matrix(gx, rows, 3 * hd, &plain),
            device::matrix(gh, rows, 3 * hd, &plain),
            device::matrix(h, rows, hd, &plain),
        );
        device::to_vec(out)
            .unwrap()
            .iter()
            .zip(&w)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    let (gx, gh, h) = inputs(rows, hd, &plain);
    let base = [
        device::to_vec(gx).unwrap(),
        device::to_vec(gh).unwrap(),
        device::to_vec(h).unwrap(),
    ];
    let eps = 1e-2f32;
    for (k, grad) in analytic.into_iter().enumerate() {
        let grad = device::to_vec(grad.inner()).unwrap();
        for i in 0..base[k].len() {
            let (mut up, mut down) = (base.clone(), base.clone());
            up[k][i] += eps;
            down[k][i] -= eps;
            let fd = (loss(up) - loss(down)) / (2.0 * eps as f64);
            assert!(
                (fd - grad[i] as f64).abs() <= 2e-3 * (1.0 + fd.abs()),
                "input {k}[{i}]: finite difference {fd} vs {}",
                grad[i]
            );
        }
    }
}

#[test]
fn non_contiguous_inputs_give_the_same_cell() {
    let dev = Device::flex();
    let (rows, hd) = (6, 5);
    let (gx, gh, h) = inputs(rows, hd, &dev);
    let want = gru_cell(gx.clone(), gh.clone(), h.clone());
    // The same values reached through a transpose and a narrow.
    let gx_t = gx.clone().transpose().transpose();
    let wide = Tensor::cat(vec![h.clone(), h.clone()], 1);
    let h_view = wide.narrow(1, 0, hd);
    assert_eq!(max_diff(gru_cell(gx_t, gh, h_view), want), 0.0);
}

#[test]
fn untracked_inputs_on_an_autodiff_device_need_no_backward() {
    let dev = Device::flex().autodiff();
    let (gx, gh, h) = inputs(4, 3, &dev);
    let out = gru_cell(gx.clone(), gh.clone(), h.clone());
    let plain = Device::flex();
    let (px, ph, pc) = inputs(4, 3, &plain);
    assert_eq!(max_diff(out.inner(), gru_cell(px, ph, pc)), 0.0);
}

/// GELU: the fused op against burn's, forward and gradient, on odd shapes.
#[test]
fn fused_gelu_equals_burns_gelu() {
    use energyflow::model::kernels::gelu;
    let plain = Device::flex();
    for dev in [
        plain.clone(),
        plain.clone().autodiff(),
        plain.autodiff().gradient_checkpointing(),
    ] {
        for (rows, cols) in [(1, 1), (3, 7), (200, 300)] {
            let x = device::matrix(
                values(rows * cols, 0.3).iter().map(|v| v * 2.0).collect(),
                rows,
                cols,
                &dev,
            );
            let w = device::matrix(values(rows * cols, 5.1), rows, cols, &dev);
            let run = |fused: bool| {
                let x = x.clone().require_grad();
                let y = gelu(x.clone(), fused);
                let g = (y.clone() * w.clone()).sum().backward();
                (y, x.grad(&g))
            };
            if dev.is_autodiff() {
                let ((ya, ga), (yb, gb)) = (run(true), run(false));
                assert!(max_diff(ya.inner(), yb.inner()) <= 1e-5, "rows {rows}");
                assert!(max_diff(ga.unwrap(), gb.unwrap()) <= 1e-4, "rows {rows}");
            } else {
                assert!(
                    max_diff(gelu(x.clone(), true), gelu(x.clone(), false)) <= 1e-5,
                    "rows {rows}"
                );
            }
        }
    }
}
