//! The fused GRU cell against its composed reference: forward values within
//! 1e-5, gradients within 1e-4, and both gradients against finite
//! differences; single rows, odd widths, non-contiguous inputs, plain,
//! autodiff and gradient-checkpointing devices. Also the fused GELU against
//! burn's, and the compaction's row gather against `select`.

use burn::tensor::{Device, Tensor};
use energyflow::device;
use energyflow::kernels::{gru_cell, gru_cell_composed};

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.618 + seed).sin() * 2.5).collect()
}

/// The inputs of one GRU step, `rows` x `hd`, on `dev`.
struct Inputs {
    gx: Tensor<2>,
    gh: Tensor<2>,
    h: Tensor<2>,
    bi: Tensor<1>,
    bh: Tensor<1>,
}

fn inputs(rows: usize, hd: usize, dev: &Device) -> Inputs {
    Inputs {
        gx: device::matrix(values(rows * 3 * hd, 0.1), rows, 3 * hd, dev),
        gh: device::matrix(values(rows * 3 * hd, 1.7), rows, 3 * hd, dev),
        h: device::matrix(values(rows * hd, 2.9).iter().map(|v| v * 0.4).collect(), rows, hd, dev),
        bi: device::vector(values(3 * hd, 3.3).iter().map(|v| v * 0.2).collect(), dev),
        bh: device::vector(values(3 * hd, 0.7).iter().map(|v| v * 0.2).collect(), dev),
    }
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let (a, b) = (device::to_vec(a).unwrap(), device::to_vec(b).unwrap());
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn fused(x: Inputs) -> Tensor<2> {
    gru_cell(x.gx, x.gh, x.h, x.bi, x.bh)
}

/// The composed reference, with the biases added the ordinary way.
fn composed(x: Inputs) -> Tensor<2> {
    gru_cell_composed(x.gx + x.bi.unsqueeze(), x.gh + x.bh.unsqueeze(), x.h)
}

type Cell = fn(Inputs) -> Tensor<2>;

/// Flex plain, with autodiff, and with gradient checkpointing.
fn every_device() -> [Device; 3] {
    let plain = Device::flex();
    [
        plain.clone(),
        plain.clone().autodiff(),
        plain.autodiff().gradient_checkpointing(),
    ]
}

/// Gradients of sum(h' * w) into (gx, gh, h) and the two biases.
fn grads(cell: Cell, rows: usize, hd: usize, dev: &Device) -> ([Tensor<2>; 3], [Tensor<1>; 2]) {
    let x = inputs(rows, hd, dev);
    let x = Inputs {
        gx: x.gx.require_grad(),
        gh: x.gh.require_grad(),
        h: x.h.require_grad(),
        bi: x.bi.require_grad(),
        bh: x.bh.require_grad(),
    };
    let (gx, gh, h, bi, bh) = (x.gx.clone(), x.gh.clone(), x.h.clone(), x.bi.clone(), x.bh.clone());
    let w = device::matrix(values(rows * hd, 4.2), rows, hd, dev);
    let g = (cell(x) * w).sum().backward();
    (
        [gx.grad(&g).unwrap(), gh.grad(&g).unwrap(), h.grad(&g).unwrap()],
        [bi.grad(&g).unwrap(), bh.grad(&g).unwrap()],
    )
}

#[test]
fn fused_forward_equals_composed_within_1e5() {
    let dev = Device::flex();
    for (rows, hd) in [(1, 1), (1, 7), (5, 3), (33, 17), (300, 130)] {
        let d = max_diff(fused(inputs(rows, hd, &dev)), composed(inputs(rows, hd, &dev)));
        assert!(d <= 1e-5, "rows {rows}, hd {hd}: {d}");
    }
}

#[test]
fn fused_gradients_equal_composed_within_1e4_on_every_autodiff_device() {
    for dev in every_device().into_iter().filter(|d| d.is_autodiff()) {
        for (rows, hd) in [(1, 1), (1, 5), (7, 3), (300, 130)] {
            let (fm, fb) = grads(fused, rows, hd, &dev);
            let (cm, cb) = grads(composed, rows, hd, &dev);
            for (k, (a, b)) in fm.into_iter().zip(cm).enumerate() {
                let d = max_diff(a.inner(), b.inner());
                assert!(d <= 1e-4, "input {k}, rows {rows}, hd {hd}: {d}");
            }
            // Bias gradients sum over the rows: compare relatively.
            for (k, (a, b)) in fb.into_iter().zip(cb).enumerate() {
                let scale = device::to_vec(b.clone().inner().abs().max()).unwrap()[0].max(1.0);
                let d = max_diff(a.inner(), b.inner());
                assert!(d <= 1e-4 * scale, "bias {k}, rows {rows}, hd {hd}: {d}");
            }
        }
    }
}

#[test]
fn fused_gradients_match_finite_differences() {
    let dev = Device::flex().autodiff();
    let (rows, hd) = (3, 4);
    let (matrices, biases) = grads(fused, rows, hd, &dev);
    let analytic: Vec<Vec<f32>> = matrices
        .into_iter()
        .map(|g| device::to_vec(g.inner()).unwrap())
        .chain(biases.into_iter().map(|g| device::to_vec(g.inner()).unwrap()))
        .collect();
    let plain = Device::flex();
    let w = values(rows * hd, 4.2);
    let x = inputs(rows, hd, &plain);
    let base: Vec<Vec<f32>> = vec![
        device::to_vec(x.gx).unwrap(),
        device::to_vec(x.gh).unwrap(),
        device::to_vec(x.h).unwrap(),
        device::to_vec(x.bi).unwrap(),
        device::to_vec(x.bh).unwrap(),
    ];
    // Loss in f64 from f32 host inputs, through the fused forward.
    let loss = |v: &[Vec<f32>]| -> f64 {
        let out = fused(Inputs {
            gx: device::matrix(v[0].clone(), rows, 3 * hd, &plain),
            gh: device::matrix(v[1].clone(), rows, 3 * hd, &plain),
            h: device::matrix(v[2].clone(), rows, hd, &plain),
            bi: device::vector(v[3].clone(), &plain),
            bh: device::vector(v[4].clone(), &plain),
        });
        device::to_vec(out)
            .unwrap()
            .iter()
            .zip(&w)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    let eps = 1e-2f32;
    for (k, grad) in analytic.iter().enumerate() {
        for i in 0..base[k].len() {
            let (mut up, mut down) = (base.clone(), base.clone());
            up[k][i] += eps;
            down[k][i] -= eps;
            let fd = (loss(&up) - loss(&down)) / (2.0 * eps as f64);
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
    let want = fused(inputs(rows, hd, &dev));
    let x = inputs(rows, hd, &dev);
    // The same values reached through a transpose and a narrow.
    let wide = Tensor::cat(vec![x.h.clone(), x.h.clone()], 1);
    let got = fused(Inputs {
        gx: x.gx.transpose().transpose(),
        h: wide.narrow(1, 0, hd),
        ..x
    });
    assert_eq!(max_diff(got, want), 0.0);
}

#[test]
fn untracked_inputs_on_an_autodiff_device_need_no_backward() {
    let out = fused(inputs(4, 3, &Device::flex().autodiff()));
    assert_eq!(max_diff(out.inner(), fused(inputs(4, 3, &Device::flex()))), 0.0);
}

/// GELU: the fused op against burn's, forward and gradient, on odd shapes.
#[test]
fn fused_gelu_equals_burns_gelu() {
    use energyflow::kernels::Kernels;
    let gelu = |x, fused: bool| if fused { Kernels::Fused } else { Kernels::Composed }.gelu(x);
    for dev in every_device() {
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

/// The row gather of the flow compaction against `select`: the same rows,
/// and the same gradient where rows repeat (children share a parent row),
/// on plain, autodiff and checkpointing devices, small and parallel sizes.
#[test]
fn gather_rows_equals_select_forward_and_gradient() {
    use energyflow::kernels::gather_rows;
    for dev in every_device() {
        for (rows, cols) in [(1, 1), (7, 3), (900, 256)] {
            let x = device::matrix(values(rows * cols, 0.9), rows, cols, &dev);
            let mut idx: Vec<u32> = (0..rows as u32).filter(|i| i % 5 != 2).collect();
            idx.extend((0..rows as u32).filter(|i| i % 7 == 0).flat_map(|i| [i, i, i]));
            let m = idx.len();
            let w = device::matrix(values(m * cols, 2.2), m, cols, &dev);
            let gather = |x: Tensor<2>, ours: bool| {
                let ix = device::indices(&idx, &dev);
                if ours { gather_rows(x, ix) } else { x.select(0, ix) }
            };
            let (ya, yb) = (gather(x.clone(), true), gather(x.clone(), false));
            assert_eq!(ya.dims(), [m, cols]);
            assert_eq!(max_diff(ya, yb), 0.0, "{rows}x{cols}");
            if dev.is_autodiff() {
                let grad = |ours: bool| {
                    let x = x.clone().require_grad();
                    let g = (gather(x.clone(), ours) * w.clone()).sum().backward();
                    x.grad(&g).unwrap()
                };
                // Sums of the same rows in the same order: equal to the bit.
                assert_eq!(max_diff(grad(true), grad(false)), 0.0, "{rows}x{cols}");
            }
        }
    }
}
