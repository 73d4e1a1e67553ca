//! Collection: the host path (`Aggregator`) and the device path
//! (`kernels::flow_collect`) equal the naive oracle (values and
//! gradients), their gradients match finite differences, samples never mix.

use burn::tensor::{Device, Tensor};
use energyflow::device;
use energyflow::flow::naive::{collect_naive, collect_reference_f64};
use energyflow::flow::{Aggregator, CompletedMeta};
use energyflow::kernels::flow_collect::{DoneOnDevice, collect_on_device};
use proptest::prelude::*;

fn dev() -> Device {
    Device::flex().autodiff()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    Naive,
    Host,
    Device,
}

/// The device path's collection of `e` with `meta`, and its group count.
fn on_device(e: Tensor<1>, meta: &CompletedMeta, n_keys: usize) -> (Tensor<1>, usize) {
    let d = e.device();
    let done = DoneOnDevice {
        energy: e,
        key: device::indices(&meta.key, &d),
        steps: device::indices(&meta.steps, &d),
        z: device::vector(meta.z.clone(), &d),
    };
    let (surface, groups) = collect_on_device(done, n_keys);
    (surface, device::ints_to_vec(groups).unwrap()[0] as usize)
}

/// Value and gradient of sum(surface * upstream) for one collection method.
fn value_and_grad(
    energy: &[f32],
    meta: &CompletedMeta,
    n_keys: usize,
    upstream: &[f32],
    method: Method,
) -> (Vec<f32>, Vec<f32>) {
    let d = dev();
    let e = device::vector(energy.to_vec(), &d).require_grad();
    let surface = match method {
        Method::Naive => collect_naive(e.clone(), meta, n_keys),
        Method::Host => Aggregator::new().collect(e.clone(), meta, n_keys).unwrap().0,
        Method::Device => on_device(e.clone(), meta, n_keys).0,
    };
    let loss = (surface.clone() * device::vector(upstream.to_vec(), &d)).sum();
    let grads = loss.backward();
    let g = device::to_vec(e.grad(&grads).unwrap()).unwrap();
    (device::to_vec(surface.inner()).unwrap(), g)
}

fn meta_from(keys: &[u32], steps: &[u32], z: &[f32]) -> CompletedMeta {
    let mut m = CompletedMeta::default();
    for i in 0..keys.len() {
        m.push(keys[i], steps[i], z[i]);
    }
    m
}

prop_compose! {
    /// Up to 3 samples x 6 cells; several flows per cell, of several samples.
    fn flow_set()(n in 1usize..60, samples in 1usize..4)
        (cells in Just(6usize), samples in Just(samples),
         sample in prop::collection::vec(0u32..samples as u32, n),
         cell in prop::collection::vec(0u32..6, n),
         steps in prop::collection::vec(0u32..12, n),
         plane in prop::collection::vec(prop::bool::ANY, n),
         energy in prop::collection::vec(prop_oneof![-1.0f32..-0.05, 0.05f32..1.0], n))
        -> (Vec<f32>, CompletedMeta, usize)
    {
        let keys: Vec<u32> = sample.iter().zip(&cell).map(|(s, c)| s * cells as u32 + c).collect();
        let z: Vec<f32> = plane.iter().map(|&p| if p { 1.0 } else { -1.0 }).collect();
        (energy, meta_from(&keys, &steps, &z), samples * cells)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn optimized_equals_naive((energy, meta, n_keys) in flow_set()) {
        let upstream: Vec<f32> = (0..n_keys).map(|i| (i as f32 * 0.37).sin()).collect();
        let (v_naive, g_naive) = value_and_grad(&energy, &meta, n_keys, &upstream, Method::Naive);
        let reference = collect_reference_f64(&energy, &meta, n_keys);
        for method in [Method::Host, Method::Device] {
            let (v_opt, g_opt) = value_and_grad(&energy, &meta, n_keys, &upstream, method);
            for k in 0..n_keys {
                prop_assert!((v_opt[k] - v_naive[k]).abs() < 1e-5, "{method:?} value {k}: {} vs {}", v_opt[k], v_naive[k]);
                prop_assert!((v_opt[k] as f64 - reference[k]).abs() < 1e-5);
            }
            for i in 0..energy.len() {
                prop_assert!((g_opt[i] - g_naive[i]).abs() < 1e-5, "{method:?} grad {i}: {} vs {}", g_opt[i], g_naive[i]);
            }
        }
    }
}

#[test]
fn gradients_match_central_finite_differences() {
    // 3 samples x 4 cells, 20 flows; energies away from the |e| kink at 0.
    let n = 20;
    let keys: Vec<u32> = (0..n).map(|i| ((i * 7) % 12) as u32).collect();
    let steps: Vec<u32> = (0..n).map(|i| (i % 5) as u32).collect();
    let z: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
    // Include flows off the planes too, so the 1/(1+d) factor is exercised.
    let mut z = z;
    z[1] = 0.4;
    z[2] = -0.7;
    let meta = meta_from(&keys, &steps, &z);
    let energy: Vec<f32> = (0..n)
        .map(|i| {
            let v = ((i as f32) * 1.3).sin() * 0.9;
            if v.abs() < 0.1 { 0.3 } else { v }
        })
        .collect();
    let upstream: Vec<f32> = (0..12).map(|i| 0.5 - (i as f32) * 0.1).collect();
    let loss = |e: &[f32]| -> f64 {
        collect_reference_f64(e, &meta, 12)
            .iter()
            .zip(&upstream)
            .map(|(v, u)| v * *u as f64)
            .sum()
    };
    let h = 1e-3f32;
    for method in [Method::Host, Method::Device] {
        let (_, grad) = value_and_grad(&energy, &meta, 12, &upstream, method);
        for i in 0..n {
            let mut plus = energy.clone();
            plus[i] += h;
            let mut minus = energy.clone();
            minus[i] -= h;
            let fd = (loss(&plus) - loss(&minus)) / (2.0 * h as f64);
            assert!(
                (fd - grad[i] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "{method:?} flow {i}: finite difference {fd} vs autodiff {}",
                grad[i]
            );
        }
    }
}

#[test]
fn samples_never_mix() {
    // Two samples, 4 cells each; both samples put flows in cell 2.
    let cells = 4u32;
    let meta = meta_from(
        &[2, 2, cells + 2, cells + 2, cells + 2, 0],
        &[1, 3, 2, 2, 5, 1],
        &[1.0, -1.0, 1.0, 1.0, -1.0, 1.0],
    );
    let energy = [0.9f32, -0.4, 0.2, 0.6, -0.8, 0.5];
    let d = Device::flex();
    let (surface, summary) = Aggregator::new()
        .collect(device::vector(energy.to_vec(), &d), &meta, 8)
        .unwrap();
    let v = device::to_vec(surface).unwrap();
    assert_eq!(summary.groups, 3);
    let (on_dev, groups) = on_device(device::vector(energy.to_vec(), &d), &meta, 8);
    assert_eq!(groups, 3);
    let w = device::to_vec(on_dev).unwrap();
    assert!(v.iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-6), "{v:?} vs {w:?}");
    let softmax_mean = |e: &[f32], st: &[u32]| -> f32 {
        let w: Vec<f32> = e
            .iter()
            .zip(st)
            .map(|(e, s)| e.abs() * (1.0 + 0.1 * *s as f32))
            .collect();
        let m = w.iter().copied().fold(f32::MIN, f32::max);
        let den: f32 = w.iter().map(|x| (x - m).exp()).sum();
        e.iter().zip(&w).map(|(e, x)| (x - m).exp() / den * e).sum()
    };
    // Sample 0: cell 2 holds only sample 0's two flows, cell 0 one flow.
    assert!((v[2] - softmax_mean(&energy[0..2], &[1, 3])).abs() < 1e-6);
    assert!((v[0] - 0.5).abs() < 1e-6);
    assert_eq!(v[1], 0.0);
    assert_eq!(v[3], 0.0);
    // Sample 1: cell 2 holds only sample 1's three flows.
    assert!((v[6] - softmax_mean(&energy[2..5], &[2, 2, 5])).abs() < 1e-6);
    assert_eq!(v[4], 0.0);
    // Mixing the samples would have produced a different value.
    let mixed = softmax_mean(&energy[0..5], &[1, 3, 2, 2, 5]);
    assert!((v[2] - mixed).abs() > 1e-3 && (v[6] - mixed).abs() > 1e-3);
    let _ = Tensor::<1>::zeros([1], &d);
}
