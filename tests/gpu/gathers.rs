//! Several gathers by one index (`kernels::gather_rows_each`, the device
//! step's energy and hidden states): the rows and gradients of separate
//! gathers to the bit, with one inverse of the index built for all of
//! their backwards.

use crate::common::gpu::{gpu, host, launches};
use crate::kernels::{compaction, count, matrix};
use burn::tensor::Tensor;
use energyflow::device;
use energyflow::kernels::{gather_rows, gather_rows_each};

#[test]
fn gathers_by_one_index_share_its_inverse_and_equal_separate_gathers() {
    let dev = gpu().autodiff();
    let rows = 40;
    let idx = device::indices(&compaction(rows), &dev);
    let widths = [1, 17, 3];
    let sources = || -> Vec<Tensor<2>> {
        widths
            .iter()
            .enumerate()
            .map(|(k, &w)| matrix(rows, w, k as f32, 1.0, &dev).require_grad())
            .collect()
    };
    let weights: Vec<Tensor<2>> = widths
        .iter()
        .enumerate()
        .map(|(k, &w)| matrix(idx.dims()[0], w, 3.0 + k as f32, 1.0, &dev))
        .collect();
    // The rows, each source's gradient of sum(rows * w), and the kernels
    // of the gathers and the backward together (with a shared inverse it
    // is built in the forward).
    let run = |shared: bool| {
        let xs = sources();
        let ((ys, g), names) = launches(|| {
            let ys: Vec<Tensor<2>> = if shared {
                gather_rows_each(xs.clone(), idx.clone())
            } else {
                xs.iter().map(|x| gather_rows(x.clone(), idx.clone())).collect()
            };
            let loss = ys
                .iter()
                .zip(&weights)
                .map(|(y, w)| (y.clone() * w.clone()).sum())
                .reduce(|a, b| a + b);
            let g = loss.unwrap().backward();
            (ys, g)
        });
        let grads: Vec<_> = xs.iter().map(|x| host(x.grad(&g).unwrap())).collect();
        (ys.into_iter().map(host).collect::<Vec<_>>(), grads, names)
    };
    let (ys, gs, names) = run(true);
    let (ys1, gs1, names1) = run(false);
    assert_eq!(ys, ys1);
    assert_eq!(gs, gs1);
    // One inverse (count, scan, fill, sort) for the three backwards, one sum each.
    assert_eq!(count(&names, "count_kernel"), 1, "{names:?}");
    assert_eq!(count(&names, "rows_cube::sum_kernel"), 3, "{names:?}");
    assert_eq!(count(&names1, "count_kernel"), 3, "{names1:?}");
    // Untracked (on a plain device, or not tracked on an autodiff one),
    // nothing is built ahead: one gather kernel per tensor.
    for d in [gpu(), dev.clone()] {
        let xs: Vec<Tensor<2>> = widths.iter().map(|&w| matrix(rows, w, 0.5, 1.0, &d)).collect();
        let ix = device::indices(&compaction(rows), &d);
        let (_, names) = launches(|| gather_rows_each(xs, ix));
        assert_eq!(names.len(), 3, "{names:?}");
    }
}
