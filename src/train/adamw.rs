//! AdamW with each parameter's update as one parallel pass
//! (`kernels::AdamOps`), the optimizer of a run on `runtime.kernels = "fused"`.
//!
//! It keeps burn's `AdamWState` (step count and both moments), so its
//! state saves and loads in the same format as burn's `AdamW`, and a run
//! resumes across the two; the values are the same to the bit (tested).
//! Not supported: AMSGrad and cautious weight decay, which no config asks
//! for.

use crate::kernels::{AdamStep, adamw_step};
use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};

/// AdamW's hyper-parameters (decoupled weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedAdamW {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

impl FusedAdamW {
    /// The optimizer over a whole module.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // Zero moments before the first step give burn's first-step values
        // exactly (0 * beta + x = x).
        let (time, m1, m2) = match state {
            Some(s) => (s.momentum.time + 1, s.momentum.moment_1, s.momentum.moment_2),
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        let s = AdamStep::new(self.beta_1, self.beta_2, self.epsilon, self.weight_decay, lr, time);
        let (tensor, m1, m2) = adamw_step(tensor, grad, m1, m2, s);
        let momentum = AdaptiveMomentumState::new(time, m1, m2);
        (tensor, Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, GradientsParams};

    const HYPER: FusedAdamW = FusedAdamW {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: 1e-2,
    };

    fn burns() -> ModuleOptimizer {
        AdamWConfig::new()
            .with_beta_1(HYPER.beta_1)
            .with_beta_2(HYPER.beta_2)
            .with_epsilon(HYPER.epsilon)
            .with_weight_decay(HYPER.weight_decay)
            .init()
    }

    /// Gradients for every parameter of `m`, different at each step `k`
    /// (the same for both optimizers), on the inner device as autodiff's.
    fn grads(m: &Linear, k: u64) -> GradientsParams {
        let dev = Device::flex();
        let wave = |n: usize, off: f32| -> Vec<f32> {
            (0..n)
                .map(|i| ((i as f32 + off) * 0.37 + k as f32).sin() * (1.0 + k as f32))
                .collect()
        };
        let mut g = GradientsParams::new();
        let [i, o] = m.weight.val().dims();
        g.register(m.weight.id, device::matrix(wave(i * o, 0.0), i, o, &dev));
        let b = m.bias.as_ref().expect("bias");
        g.register(b.id, device::vector(wave(o, 0.5), &dev));
        g
    }

    /// The layer's values, bit patterns of weight then bias.
    fn bits(m: &Linear) -> Vec<u32> {
        values(m).into_iter().map(f32::to_bits).collect()
    }

    fn values(m: &Linear) -> Vec<f32> {
        let mut v = device::to_vec(m.weight.val()).unwrap();
        v.extend(device::to_vec(m.bias.as_ref().unwrap().val()).unwrap());
        v
    }

    /// Three steps with changing learning rates, on a small layer (odd
    /// sizes, one thread) and one above the parallel threshold.
    #[test]
    fn steps_equal_burns_adamw_to_the_bit() {
        let dev = Device::flex().autodiff();
        for (i, o) in [(37, 13), (1, 1), (300, 101)] {
            let start = LinearConfig::new(i, o).init(&dev);
            let (mut a, mut b) = (start.clone(), start.clone());
            let (mut oa, mut ob) = (HYPER.init(), burns());
            for (k, lr) in [(1, 1e-3), (2, 5e-4), (3, 2e-3)] {
                a = oa.step(lr, a, grads(&start, k));
                b = ob.step(lr, b, grads(&start, k));
                let (va, vb) = (values(&a), values(&b));
                let worst = va.iter().zip(&vb).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
                assert!(bits(&a) == bits(&b), "{i}x{o} step {k}: differs by up to {worst}");
            }
            assert_ne!(bits(&a), bits(&start), "{i}x{o}: nothing moved");
        }
    }

    /// A state saved by burn's AdamW resumes in ours (and the other way
    /// round) with the same next step.
    #[test]
    fn state_saved_by_either_resumes_in_the_other() {
        let dev = Device::flex().autodiff();
        let start = LinearConfig::new(40, 30).init(&dev);
        let mut ob = burns();
        let mut oa = HYPER.init();
        let (mut a, mut b) = (start.clone(), start.clone());
        for k in 1..=2 {
            a = oa.step(1e-3, a, grads(&start, k));
            b = ob.step(1e-3, b, grads(&start, k));
        }
        let from_burn = HYPER.init().from_bytes(ob.into_bytes().unwrap()).unwrap();
        let from_ours = burns().from_bytes(oa.into_bytes().unwrap()).unwrap();
        for (mut opt, m) in [(from_burn, a.clone()), (from_ours, b.clone())] {
            let next = opt.step(1e-3, m, grads(&start, 3));
            let mut reference = burns().from_bytes(ob_bytes_after_two(&start)).unwrap();
            let want = reference.step(1e-3, b.clone(), grads(&start, 3));
            assert!(bits(&next) == bits(&want));
        }
    }

    /// burn's optimizer state after steps 1 and 2 from `start`.
    fn ob_bytes_after_two(start: &Linear) -> burn::tensor::Bytes {
        let mut ob = burns();
        let mut m = start.clone();
        for k in 1..=2 {
            m = ob.step(1e-3, m, grads(start, k));
        }
        ob.into_bytes().unwrap()
    }
}
