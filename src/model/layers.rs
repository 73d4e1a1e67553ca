//! Building blocks shared by the model's modules: a seeded host-side weight
//! initialiser and a dropout driven by a host RNG.
//!
//! Why not burn's initialisers and `Dropout`: both draw from burn's global
//! device RNG, which every thread of a process shares, so two models built
//! (or trained) at once in one process interleave their draws and a seed no
//! longer fixes the weights. Drawing from our own seeded `StdRng` makes a
//! model a pure function of its seed, and a training step a pure function of
//! (seed, step), which is what exact resume needs. MODEL.md s.3 also asks
//! for He, Xavier and orthogonal inits with zero biases, which
//! `LinearConfig` cannot express (it uses one initialiser for both).

use crate::kernels::Kernels;
use crate::kernels::norm::norm_module;
use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, StandardNormal, Uniform};

/// How a Linear layer's weight is drawn.
#[derive(Debug, Clone, Copy)]
pub enum WeightInit {
    /// PyTorch's nn.Linear default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    Default,
    /// He / Kaiming normal (fan-in, gain sqrt 2), zero bias.
    He,
    /// Xavier (Glorot) normal, zero bias.
    XavierNormal,
    /// Xavier (Glorot) uniform, zero bias.
    XavierUniform,
    /// (Semi-)orthogonal, zero bias.
    Orthogonal,
}

/// Seeded parameter factory.
pub struct Init {
    rng: StdRng,
    device: Device,
}

impl Init {
    pub fn new(seed: u64, device: &Device) -> Self {
        Init {
            rng: StdRng::seed_from_u64(seed),
            device: device.clone(),
        }
    }

    fn param<const D: usize>(&self, data: Vec<f32>, shape: [usize; D]) -> Param<Tensor<D>> {
        crate::device::param(data, shape, &self.device)
    }

    /// A learned tensor filled with `value`.
    pub fn constant<const D: usize>(&mut self, shape: [usize; D], value: f32) -> Param<Tensor<D>> {
        let n = shape.iter().product();
        self.param(vec![value; n], shape)
    }

    /// N(0, std^2) entries.
    pub fn normal<const D: usize>(&mut self, shape: [usize; D], std: f64) -> Param<Tensor<D>> {
        let n = shape.iter().product();
        let d = Normal::new(0.0, std).expect("finite std");
        let v = (0..n).map(|_| d.sample(&mut self.rng) as f32).collect();
        self.param(v, shape)
    }

    fn uniform_vec(&mut self, n: usize, a: f64) -> Vec<f32> {
        if a <= 0.0 {
            return vec![0.0; n];
        }
        let d = Uniform::new(-a, a).expect("a > 0");
        (0..n).map(|_| d.sample(&mut self.rng) as f32).collect()
    }

    /// A [rows, cols] matrix with orthonormal rows or columns (whichever
    /// are fewer), as PyTorch's `orthogonal_`: QR of a Gaussian matrix by
    /// modified Gram-Schmidt in f64, signs fixed so the draw is uniform.
    pub fn orthogonal_vec(&mut self, rows: usize, cols: usize) -> Vec<f32> {
        let (n, m) = if rows >= cols { (rows, cols) } else { (cols, rows) };
        let q = random_orthonormal(m, n, &mut self.rng);
        let mut out = vec![0.0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                out[r * cols + c] = if rows >= cols { q[c][r] } else { q[r][c] } as f32;
            }
        }
        out
    }

    /// Linear(d_in, d_out): weight [d_in, d_out] drawn as `init` says.
    pub fn linear(&mut self, d_in: usize, d_out: usize, init: WeightInit) -> Linear {
        let (w, bias) = self.draw(d_in, d_out, init);
        self.linear_from(w, bias, d_in)
    }

    /// A Linear layer holding the given weight (row-major [d_in, d_out]) and bias.
    pub fn linear_from(&mut self, w: Vec<f32>, bias: Vec<f32>, d_in: usize) -> Linear {
        let d_out = bias.len();
        Linear {
            weight: self.param(w, [d_in, d_out]),
            bias: Some(self.param(bias, [d_out])),
        }
    }

    /// The host values of a Linear(d_in, d_out) drawn as `init` says:
    /// (weight [d_in, d_out] row-major, bias [d_out]).
    pub fn draw(&mut self, d_in: usize, d_out: usize, init: WeightInit) -> (Vec<f32>, Vec<f32>) {
        let n = d_in * d_out;
        let xavier_std = (2.0 / (d_in + d_out) as f64).sqrt();
        let (w, bias) = match init {
            WeightInit::Default => {
                let a = 1.0 / (d_in as f64).sqrt();
                (self.uniform_vec(n, a), self.uniform_vec(d_out, a))
            }
            WeightInit::He => {
                let d = Normal::new(0.0, (2.0 / d_in as f64).sqrt()).expect("valid");
                (
                    (0..n).map(|_| d.sample(&mut self.rng) as f32).collect(),
                    vec![0.0; d_out],
                )
            }
            WeightInit::XavierNormal => {
                let d = Normal::new(0.0, xavier_std).expect("valid");
                (
                    (0..n).map(|_| d.sample(&mut self.rng) as f32).collect(),
                    vec![0.0; d_out],
                )
            }
            WeightInit::XavierUniform => (self.uniform_vec(n, 3f64.sqrt() * xavier_std), vec![0.0; d_out]),
            WeightInit::Orthogonal => (self.orthogonal_vec(d_in, d_out), vec![0.0; d_out]),
        };
        (w, bias)
    }
}

/// `m` orthonormal vectors of length `n` (m <= n): modified Gram-Schmidt
/// of Gaussian draws in f64, which gives a uniformly (Haar) distributed
/// frame.
pub fn random_orthonormal(m: usize, n: usize, rng: &mut StdRng) -> Vec<Vec<f64>> {
    let mut q: Vec<Vec<f64>> = (0..m)
        .map(|_| (0..n).map(|_| StandardNormal.sample(&mut *rng)).collect())
        .collect();
    for j in 0..m {
        let (head, tail) = q.split_at_mut(j);
        let v = &mut tail[0];
        for u in head.iter() {
            let dot: f64 = u.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(x, y)| *x -= dot * y);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        v.iter_mut().for_each(|x| *x /= norm);
    }
    q
}

/// Training-mode dropout: the seeded generator of its masks (see module
/// docs) and the factor every rate is multiplied by (`train.dropout_scale`).
pub struct DropoutMasks {
    rng: StdRng,
    scale: f64,
}

impl DropoutMasks {
    /// Masks drawn from `seed`; every rate multiplied by `scale`.
    pub fn new(seed: u64, scale: f64) -> Self {
        DropoutMasks {
            rng: StdRng::seed_from_u64(seed),
            scale,
        }
    }
}

/// Inverted dropout at rate `p` times the masks' scale. `masks = None`
/// (inference) is the identity, and so is a rate of 0 (no mask is drawn).
pub fn dropout<const D: usize>(x: Tensor<D>, p: f64, masks: Option<&mut DropoutMasks>) -> Tensor<D> {
    let Some(masks) = masks else { return x };
    let p = p * masks.scale;
    if p <= 0.0 {
        return x;
    }
    let shape = x.shape();
    let n = shape.num_elements();
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    let rng = &mut masks.rng;
    let mask: Vec<f32> = (0..n)
        .map(|_| if rng.random_bool(keep) { scale } else { 0.0 })
        .collect();
    let dims: [usize; D] = x.dims();
    let m = crate::device::tensor(mask, dims, &x.device());
    x * m
}

/// A LayerNorm of width `d` when `on` (`model.mapper_collector_layer_norm`).
pub fn optional_norm(on: bool, d: usize, device: &Device) -> Option<LayerNorm> {
    on.then(|| norm_module(d, device))
}

/// `x` through `norm` on `kernels` when there is one.
pub fn normed(kernels: Kernels, norm: &Option<LayerNorm>, x: Tensor<2>) -> Tensor<2> {
    match norm {
        Some(n) => kernels.layer_norm(n, x),
        None => x,
    }
}
