//! The feature MLP (`kernels::neuron`) on the GPU backend: one kernel
//! forward; one kernel, one column sum and the weight products backward;
//! the output and every gradient equal to its layers run one by one on the
//! same device (our fused ops, as the module does without the kernel) and
//! to the module on the CPU (forward 1e-5, gradients 1e-4 of their size),
//! on odd widths and a single row; dL/dpos and dL/denergy against finite
//! differences; the same with the energy appended as a last column (the
//! carrier's input). (burn's composed GELU backward is the derivative of the
//! tanh approximation, 1e-3 off: tests/gpu/kernels.rs.)

use crate::common::gpu::{gpu, host, launches, max_diff, values};
use crate::kernels::{assert_grads_close, check_finite_differences, count, matrix, weighted_sum};
use burn::module::Param;
use burn::tensor::{Device, Tensor};
use energyflow::config::{EnergyConfig, Preset};
use energyflow::device;
use energyflow::kernels::Kernels;
use energyflow::model::layers::Init;
use energyflow::model::neuron::SimpleNeuron;

/// The neuron of width `h` and `f` outputs on `dev`, with biases and
/// LayerNorm weights that are not zeros and ones (the model's start).
fn neuron(h: usize, f: usize, kernels: Kernels, dev: &Device) -> SimpleNeuron {
    let cfg = energyflow::config::ModelConfig {
        neuron_hidden_dim: h,
        neuron_output_dim: f,
        ..EnergyConfig::preset(Preset::Debug).model
    };
    let mut n = SimpleNeuron::new(&cfg, kernels, &mut Init::new(7, dev), dev);
    let v = |len: usize, seed: f32, scale: f32| {
        Param::from_tensor(device::vector(
            values(len, seed).iter().map(|x| x * scale).collect(),
            dev,
        ))
    };
    for (k, l) in [&mut n.pos, &mut n.fc1, &mut n.fc2, &mut n.fc3].into_iter().enumerate() {
        let len = l.weight.dims()[1];
        l.bias = Some(v(len, k as f32 * 0.7, 0.2));
    }
    for (k, ln) in [&mut n.ln1, &mut n.ln2].into_iter().enumerate() {
        ln.gamma = v(h, 3.0 + k as f32, 0.4);
        ln.beta = Some(v(h, 5.0 + k as f32, 0.3));
    }
    n
}

/// What one run gives: y; on an autodiff device the gradients of sum(y *
/// w) in pos, energy, then the parameters in the kernel's order; the
/// kernels launched forward and backward.
struct Run {
    y: Vec<f32>,
    grads: Vec<Vec<f32>>,
    forward: Vec<&'static str>,
    backward: Vec<&'static str>,
}

/// How the MLP runs: the module's forward (the kernel where the backend
/// has one), or its layers one by one on the fused ops
/// (`SimpleNeuron::layers`, the module's fallback, on the GPU too).
#[derive(Clone, Copy)]
enum Path {
    Module,
    Layers,
}

/// One run; `with_energy`: the carrier's input [features, energy].
fn run(path: Path, with_energy: bool, rows: usize, h: usize, f: usize, dev: &Device) -> Run {
    let n = neuron(h, f, Kernels::Fused, dev);
    let tracked = dev.is_autodiff();
    let (pos, energy) = (matrix(rows, 3, 0.3, 0.4, dev), matrix(rows, 1, 1.7, 0.3, dev));
    let (pos, energy) = if tracked {
        (pos.require_grad(), energy.require_grad())
    } else {
        (pos, energy)
    };
    let w = matrix(rows, f + usize::from(with_energy), 5.1, 1.0, dev);
    let (y, forward) = launches(|| match (path, with_energy) {
        (Path::Module, false) => n.forward(pos.clone(), energy.clone()),
        (Path::Module, true) => n.carrier_input(pos.clone(), energy.clone()),
        (Path::Layers, false) => n.layers(pos.clone(), energy.clone()),
        (Path::Layers, true) => Tensor::cat(vec![n.layers(pos.clone(), energy.clone()), energy.clone()], 1),
    });
    let out = host(y.clone());
    let (mut grads, mut backward) = (Vec::new(), Vec::new());
    if tracked {
        let loss = (y * w).sum();
        let (g, names) = launches(|| loss.backward());
        let two = |t: Tensor<2>| host(t.grad(&g).unwrap());
        let one = |t: Tensor<1>| host(t.grad(&g).unwrap());
        let bias = |l: &burn::nn::Linear| one(l.bias.as_ref().unwrap().val());
        let ln = |l: &burn::nn::LayerNorm| [one(l.gamma.val()), one(l.beta.as_ref().unwrap().val())];
        grads = vec![two(pos), two(energy)];
        grads.extend([two(n.pos.weight.val()), bias(&n.pos)]);
        grads.extend([two(n.fc1.weight.val()), bias(&n.fc1)]);
        grads.extend(ln(&n.ln1));
        grads.extend([two(n.fc2.weight.val()), bias(&n.fc2)]);
        grads.extend(ln(&n.ln2));
        grads.extend([two(n.fc3.weight.val()), bias(&n.fc3)]);
        backward = names;
    }
    Run {
        y: out,
        grads,
        forward,
        backward,
    }
}

const NAMES: [&str; 14] = [
    "pos", "energy", "wp", "bp", "w1", "b1", "g1", "be1", "w2", "b2", "g2", "be2", "w3", "b3",
];

#[test]
fn the_neuron_is_one_kernel_equal_to_its_layers_and_the_cpu() {
    for autodiff in [false, true] {
        let (gpu, cpu) = if autodiff {
            (gpu().autodiff(), Device::flex().autodiff())
        } else {
            (gpu(), Device::flex())
        };
        let cases = [(1, 32, 64), (7, 5, 9), (333, 32, 64), (3, 1, 2)];
        for ((rows, h, f), e) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            let case = format!("{rows} rows, H {h}, F {f}, energy appended {e}, autodiff {autodiff}");
            let ours = run(Path::Module, e, rows, h, f, &gpu);
            assert_eq!(ours.forward.len(), 1, "{case}: {:?}", ours.forward);
            assert_eq!(count(&ours.forward, "neuron_kernel"), 1, "{case}: {:?}", ours.forward);
            let layers = run(Path::Layers, e, rows, h, f, &gpu);
            let cpus = run(Path::Module, e, rows, h, f, &cpu);
            assert!(max_diff(&ours.y, &layers.y) <= 1e-5, "{case}: against the layers");
            assert!(max_diff(&ours.y, &cpus.y) <= 1e-5, "{case}: against the CPU");
            assert_eq!(ours.grads.len(), if autodiff { 14 } else { 0 });
            // Sums over the rows in another order: held to 1e-4 of their size.
            assert_grads_close(&case, &NAMES, &ours.grads, &layers.grads, &cpus.grads);
            // The layers are some 14 launches forward and 20 backward; ours
            // one, and backward one, the column sum, its split and the four
            // products, whose operands are views (no slice copies).
            assert!(
                ours.forward.len() + 10 <= layers.forward.len(),
                "{case}: {:?}",
                layers.forward
            );
            if autodiff {
                let b = &ours.backward;
                assert_eq!(count(b, "neuron_backward_kernel"), 1, "{case}: {b:?}");
                assert_eq!(count(b, "split_kernel"), 1, "{case}: {b:?}");
                assert_eq!(count(b, "SliceKernel"), 0, "{case}: {b:?}");
                assert!(
                    b.len() + 12 <= layers.backward.len(),
                    "{case}: ours {b:?}, the layers' {:?}",
                    layers.backward
                );
            }
        }
    }
}

#[test]
fn the_neurons_input_gradients_match_finite_differences() {
    let gpu = gpu();
    let (rows, h, f) = (3, 4, 5);
    let ad = run(Path::Module, false, rows, h, f, &gpu.clone().autodiff());
    let n = neuron(h, f, Kernels::Fused, &gpu);
    let w = host(matrix(rows, f, 5.1, 1.0, &gpu));
    let base = [
        host(matrix(rows, 3, 0.3, 0.4, &gpu)),
        host(matrix(rows, 1, 1.7, 0.3, &gpu)),
    ];
    check_finite_differences(&base, &ad.grads[..2], |v| {
        let pos = device::matrix(v[0].clone(), rows, 3, &gpu);
        let energy = device::matrix(v[1].clone(), rows, 1, &gpu);
        weighted_sum(host(n.forward(pos, energy)), &w)
    });
}
