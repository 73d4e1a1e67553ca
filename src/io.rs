//! File helpers shared by every command: atomic writes and their
//! temporary files (`atomic`), the check that an output never destroys an
//! input (`outputs`), safetensors reading/writing of f32 matrices (f16
//! accepted on read), and the host-side cosine of two rows.

mod atomic;
mod outputs;

pub use atomic::{parent_dir, process_alive, remove_stale_temp_files, remove_temp_files, write_atomic};
pub use outputs::{Read, check_output};

use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::path::Path;

/// A row-major f32 matrix read from or written to a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Cosine similarity of two rows in f64, as PyTorch's `cosine_similarity`:
/// `a.b / max(|a| |b|, 1e-8)` (0 when either row is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-8)
}

/// Reads the whole file at `path` (error names the file). A folder or a
/// device is refused before it is opened: reading /dev/zero would never
/// end. Pipes are read (`--input /dev/stdin` with stdin piped).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if let Some(kind) = outputs::special_kind(&meta).filter(|k| matches!(*k, "a folder" | "a device")) {
        return Err(Error::input(format!("{} is {kind}; expected a file", path.display())));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// [`read_file`] as UTF-8 text (error names the file).
pub fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read_file(path)?).map_err(|e| Error::input(format!("{}: not UTF-8 text ({e})", path.display())))
}

/// Parses `bytes` (the contents of `path`) as safetensors and returns the
/// 2-D tensor `name` as f32. Accepts f32 and f16 (and bf16); refuses other
/// dtypes, other ranks, zero rows and non-finite values, naming the file and
/// the tensor.
pub fn read_matrix(path: &Path, bytes: &[u8], name: &str) -> Result<Matrix> {
    let file = path.display();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::input(format!("{file}: not a valid safetensors file ({e})")))?;
    let view = st.tensor(name).map_err(|_| {
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        Error::input(format!(
            "{file}: no tensor named \"{name}\" (found: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    })?;
    let shape = view.shape();
    if shape.len() != 2 {
        return Err(Error::input(format!(
            "{file}: tensor \"{name}\" has shape {shape:?}, expected 2 dimensions [rows, width]"
        )));
    }
    let (rows, cols) = (shape[0], shape[1]);
    if rows == 0 {
        return Err(Error::input(format!("{file}: tensor \"{name}\" has zero rows")));
    }
    let raw = view.data();
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::input(format!(
                "{file}: tensor \"{name}\" has dtype {other:?}, expected F32 or F16"
            )));
        }
    };
    let m = Matrix { rows, cols, data };
    m.check_values(&format!("{file}: tensor \"{name}\""))?;
    Ok(m)
}

/// Largest row norm a matrix read from a file may have: squared errors of
/// such rows stay finite in f32 (1e36 < 3.4e38), and so does the mapper's
/// first layer. Embeddings have norms near 1.
pub const MAX_ROW_NORM: f64 = 1e18;

impl Matrix {
    /// Refuses what no input matrix may hold, naming `what`: a non-finite
    /// value, or a row whose norm exceeds [`MAX_ROW_NORM`]. Every matrix
    /// read from a file is checked so ([`read_matrix`]).
    pub fn check_values(&self, what: &str) -> Result<()> {
        self.check_finite(what)?;
        if let Some((i, norm)) = (0..self.rows)
            .map(|i| (i, self.row(i).iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt()))
            .find(|(_, n)| *n > MAX_ROW_NORM)
        {
            return Err(Error::input(format!(
                "{what} row {i} has norm {norm:.3e}, above {MAX_ROW_NORM:e}: squared errors and the model's first layer would overflow f32"
            )));
        }
        Ok(())
    }

    /// Refuses a non-finite value, naming `what`, its row and column.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        match self.data.iter().position(|v| !v.is_finite()) {
            Some(pos) => Err(Error::input(format!(
                "{what} holds a non-finite value ({}) at row {}, column {}",
                self.data[pos],
                pos / self.cols.max(1),
                pos % self.cols.max(1)
            ))),
            None => Ok(()),
        }
    }
}

/// Reads tensor `name` from the safetensors file at `path`.
pub fn load_matrix(path: &Path, name: &str) -> Result<Matrix> {
    let bytes = read_file(path)?;
    read_matrix(path, &bytes, name)
}

/// Element type used when writing matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreDtype {
    F32,
    F16,
}

/// Serialises named matrices to safetensors bytes in the given dtype.
pub fn matrices_to_bytes(tensors: &[(&str, &Matrix)], dtype: StoreDtype) -> Result<Vec<u8>> {
    let buffers: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, m)| {
            let bytes: Vec<u8> = match dtype {
                StoreDtype::F32 => m.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                StoreDtype::F16 => m
                    .data
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            (name.to_string(), bytes, vec![m.rows, m.cols])
        })
        .collect();
    let st_dtype = match dtype {
        StoreDtype::F32 => Dtype::F32,
        StoreDtype::F16 => Dtype::F16,
    };
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(n, b, s)| {
            TensorView::new(st_dtype, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Internal(format!("tensor {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, None).map_err(|e| Error::Internal(e.to_string()))
}

/// Writes named matrices to `path` atomically.
pub fn save_matrices(path: &Path, tensors: &[(&str, &Matrix)], dtype: StoreDtype) -> Result<()> {
    let bytes = matrices_to_bytes(tensors, dtype)?;
    write_atomic(path, &bytes)
}
