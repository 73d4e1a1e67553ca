//! Whole-model gradient operations burn does not offer: the global L2 norm
//! over every parameter's gradient (and each module's share of it, a
//! diagnostic in every step record), and scaling all of them by one factor.
//!
//! burn's `GradientClippingConfig::Norm` clips each tensor on its own, which
//! changes the gradient's direction; global clipping (PyTorch's
//! `clip_grad_norm_`) scales every gradient by the same `max / norm`.

use crate::error::Result;
use crate::model::EnergyFlowModel;
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

/// The L2 norms of the gradients: of all of them (the global norm) and of
/// each module of the model (mapper, neuron, carrier, collector), from one
/// device read. A module without gradients (frozen) has norm 0; a norm is
/// NaN or infinite when a gradient is.
pub fn module_norms(model: &EnergyFlowModel, grads: &GradientsParams) -> Result<(f64, [f64; 4])> {
    let mut v = SquaredNorms {
        grads,
        parts: Vec::new(),
    };
    // Module order, as `model.visit` would go: the global sum is the same.
    let mut ends = [0usize; 4];
    model.input_mapper.visit(&mut v);
    ends[0] = v.parts.len();
    model.neuron.visit(&mut v);
    ends[1] = v.parts.len();
    model.carrier.visit(&mut v);
    ends[2] = v.parts.len();
    model.collector.visit(&mut v);
    ends[3] = v.parts.len();
    if v.parts.is_empty() {
        return Ok((0.0, [0.0; 4]));
    }
    // Summed on the host in f64: one read, no f32 overflow of the total.
    let squares: Vec<f64> = crate::device::to_vec(Tensor::cat(v.parts, 0))?
        .into_iter()
        .map(f64::from)
        .collect();
    let global = squares.iter().sum::<f64>().sqrt();
    let mut per = [0.0; 4];
    let mut start = 0;
    for (p, &end) in per.iter_mut().zip(&ends) {
        *p = squares[start..end].iter().sum::<f64>().sqrt();
        start = end;
    }
    Ok((global, per))
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

/// Clips gradients whose global norm is `norm` ([`module_norms`]) to a
/// global norm of at most `max_norm` (0 disables).
pub fn clip_global<M: Module>(model: &M, grads: &mut GradientsParams, norm: f64, max_norm: f64) {
    if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
        // The 1e-6 guard is PyTorch's, so both clip to the same value.
        scale(model, grads, max_norm / (norm + 1e-6));
    }
}
