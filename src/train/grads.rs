//! Whole-model gradient operations burn does not offer: the global L2 norm
//! over every parameter's gradient, and scaling all of them by one factor.
//!
//! burn's `GradientClippingConfig::Norm` clips each tensor on its own, which
//! changes the gradient's direction; global clipping (PyTorch's
//! `clip_grad_norm_`) scales every gradient by the same `max / norm`.

use crate::error::Result;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Sum of squares of every gradient, gathered as scalars on the device.
struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.parts.push(g.square().sum());
        }
    }
}

/// The global L2 norm of all gradients (one device read). NaN or infinite
/// when any gradient is; 0 when there are none.
pub fn global_norm<M: Module>(model: &M, grads: &GradientsParams) -> Result<f64> {
    let mut v = SquaredNorms {
        grads,
        parts: Vec::new(),
    };
    model.visit(&mut v);
    if v.parts.is_empty() {
        return Ok(0.0);
    }
    // Summed on the host in f64: one read, no f32 overflow of the total.
    let squares = crate::device::to_vec(Tensor::cat(v.parts, 0))?;
    Ok(squares.iter().map(|&s| s as f64).sum::<f64>().sqrt())
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g * self.factor);
        }
    }
}

/// Multiplies every gradient by `factor`.
pub fn scale<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    model.visit(&mut Scale { grads, factor });
}

/// Clips to a global norm of at most `max_norm` (0 disables); returns the
/// norm before clipping.
pub fn clip_global<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) -> Result<f64> {
    let norm = global_norm(model, grads)?;
    if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
        // The 1e-6 guard is PyTorch's, so both clip to the same value.
        scale(model, grads, max_norm / (norm + 1e-6));
    }
    Ok(norm)
}
