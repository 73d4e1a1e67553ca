//! How much the signal varies from sample to sample on its way through the
//! model: the spread across samples of the mapped energies, of the surface
//! and of the output embedding, each as the mean over columns (cells or
//! dimensions) of the standard deviation across rows.
//!
//! A diagnostic of held-out validation (docs/QUALITY.md): a surface whose
//! spread is near 0 while the mapped energies vary means the lattice loses
//! the input; an output that does not vary means the model predicts one
//! embedding for every input (the targets' mean direction). Not a metric
//! to select models by.

use crate::error::Result;
use burn::tensor::Tensor;
use serde::Serialize;

/// Mean over columns of the across-row standard deviation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Of the input mapper's energies [B, S] (inference mode).
    pub mapped: f64,
    /// Of the collected surface [B, S].
    pub surface: f64,
    /// Of the output embedding [B, E_out].
    pub output: f64,
}

/// Running per-column sums over rows.
#[derive(Debug, Default)]
struct Columns {
    sum: Vec<f64>,
    sumsq: Vec<f64>,
    rows: usize,
}

impl Columns {
    /// Adds the rows of `values` (row-major, `cols` wide).
    fn add(&mut self, values: &[f32], cols: usize) {
        if self.sum.len() != cols {
            self.sum = vec![0.0; cols];
            self.sumsq = vec![0.0; cols];
            self.rows = 0;
        }
        for row in values.chunks_exact(cols.max(1)) {
            for ((s, q), &v) in self.sum.iter_mut().zip(&mut self.sumsq).zip(row) {
                *s += v as f64;
                *q += v as f64 * v as f64;
            }
            self.rows += 1;
        }
    }

    /// Mean over columns of the (population) standard deviation; 0 for
    /// no rows.
    fn mean_std(&self) -> f64 {
        if self.rows == 0 || self.sum.is_empty() {
            return 0.0;
        }
        let n = self.rows as f64;
        let total: f64 = self
            .sum
            .iter()
            .zip(&self.sumsq)
            .map(|(s, q)| (q / n - (s / n) * (s / n)).max(0.0).sqrt())
            .sum();
        total / self.sum.len() as f64
    }
}

/// Accumulates the spreads over the batches of an evaluation.
#[derive(Debug, Default)]
pub struct SpreadProbe {
    mapped: Columns,
    surface: Columns,
    output: Columns,
}

impl SpreadProbe {
    /// Adds one batch: `mapped` and `surface` [B, S], `output` [B, E] (one
    /// device read for the three).
    pub fn add(&mut self, mapped: Tensor<2>, surface: Tensor<2>, output: Tensor<2>) -> Result<()> {
        let ([b, s], [_, e]) = (mapped.dims(), output.dims());
        let all = Tensor::cat(
            vec![
                mapped.reshape([b * s]),
                surface.reshape([b * s]),
                output.reshape([b * e]),
            ],
            0,
        );
        let v = crate::device::to_vec(all)?;
        self.mapped.add(&v[..b * s], s);
        self.surface.add(&v[b * s..2 * b * s], s);
        self.output.add(&v[2 * b * s..], e);
        Ok(())
    }

    /// The spreads over every row added.
    pub fn finish(&self) -> Spread {
        Spread {
            mapped: self.mapped.mean_std(),
            surface: self.surface.mean_std(),
            output: self.output.mean_std(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device;
    use burn::tensor::Device;

    #[test]
    fn spreads_are_per_column_stds_over_all_batches() {
        let dev = Device::flex();
        let mut p = SpreadProbe::default();
        // Column 0 of the mapped energies takes 0, 2 over two batches (std
        // 1), column 1 is constant (std 0): mean 0.5. The surface is
        // constant; the output's one column takes -1, 1 (std 1).
        let m = |v: Vec<f32>, c| device::matrix(v, 1, c, &dev);
        p.add(m(vec![0.0, 5.0], 2), m(vec![3.0, 3.0], 2), m(vec![-1.0], 1))
            .unwrap();
        p.add(m(vec![2.0, 5.0], 2), m(vec![3.0, 3.0], 2), m(vec![1.0], 1))
            .unwrap();
        let s = p.finish();
        assert!((s.mapped - 0.5).abs() < 1e-12, "{s:?}");
        assert_eq!(s.surface, 0.0);
        assert!((s.output - 1.0).abs() < 1e-12, "{s:?}");
        assert_eq!(SpreadProbe::default().finish(), Spread::default());
    }
}
