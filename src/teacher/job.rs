//! `embed` as a job: a text file in, teacher embeddings out (safetensors
//! plus the JSONL sidecar with the texts), with the checks that keep the
//! outputs from destroying the inputs, and a summary of what was done.

use super::{Teacher, TextFormat, text};
use crate::error::{Error, Result};
use crate::io::{Matrix, Read, StoreDtype, check_output, save_matrices, write_atomic};
use std::path::PathBuf;
use std::time::Instant;

/// Largest `--batch`: a batch's attention scores grow with batch x
/// tokens^2, so an unbounded batch could exhaust memory on one forward.
pub const MAX_BATCH: usize = 4096;

/// What to embed, with what, into where.
#[derive(Debug, Clone)]
pub struct EmbedJob {
    /// sentence-transformers model folder.
    pub model: PathBuf,
    /// Text file: one text per line, or a TSV of input<TAB>target pairs.
    pub input: PathBuf,
    /// safetensors file to write; the texts go beside it as `.jsonl`.
    pub output: PathBuf,
    pub batch: usize,
    pub max_length: Option<usize>,
    pub format: TextFormat,
    pub dtype: StoreDtype,
}

/// What an embed job did (the summary line of `energyflow embed`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmbedSummary {
    pub rows: usize,
    pub sentences: usize,
    pub dim: usize,
    pub seconds: f64,
    pub sentences_per_s: f64,
    pub truncated: usize,
    pub max_length: usize,
    pub empty_lines_skipped: usize,
    pub output: String,
    pub texts: String,
    /// One line each: skipped empty lines, truncated texts.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl EmbedJob {
    /// Runs the job; `progress(done, total)` hears about each batch.
    pub fn run(&self, progress: &mut dyn FnMut(usize, usize)) -> Result<EmbedSummary> {
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(Error::input(format!(
                "--batch {}: must be between 1 and {MAX_BATCH}",
                self.batch
            )));
        }
        let sidecar = text::sidecar_path(&self.output);
        if sidecar == self.output {
            return Err(Error::input(format!(
                "--output {}: the texts are written to <output>.jsonl, so the output must not end in .jsonl",
                self.output.display()
            )));
        }
        let reads = [
            Read {
                label: "--input",
                path: &self.input,
            },
            Read {
                label: "--model",
                path: &self.model,
            },
        ];
        check_output("--output", &self.output, &reads)?;
        check_output("--output's texts sidecar", &sidecar, &reads)?;
        // Cheap checks first: the folder's configs and the text file, then the weights.
        super::ModelFolder::open(&self.model)?;
        let texts = text::load_text_file(&self.input, self.format)?;
        let teacher = Teacher::load(&self.model, self.max_length)?;

        let all = texts.all_texts();
        let total = all.len();
        progress(0, total);
        let start = Instant::now();
        let embedded = teacher.embed(&all, self.batch, &mut |done| progress(done, total))?;
        let seconds = start.elapsed().as_secs_f64();

        let rows = texts.rows();
        let dim = teacher.dim();
        let split = |from: usize| Matrix {
            rows,
            cols: dim,
            data: embedded.matrix.data[from * dim..(from + rows) * dim].to_vec(),
        };
        let input = split(0);
        match texts.targets {
            Some(_) => save_matrices(&self.output, &[("input", &input), ("target", &split(rows))], self.dtype)?,
            None => save_matrices(&self.output, &[("input", &input)], self.dtype)?,
        }
        write_atomic(&sidecar, text::to_jsonl(&texts).as_bytes())?;

        let mut warnings = Vec::new();
        if texts.empty_lines > 0 {
            warnings.push(format!(
                "{}: {} empty line(s) skipped",
                self.input.display(),
                texts.empty_lines
            ));
        }
        if !embedded.truncated.is_empty() {
            // Text i is row i % rows of line line_numbers[i % rows].
            let lines: Vec<String> = embedded
                .truncated
                .iter()
                .take(10)
                .map(|&i| texts.line_numbers[i % rows].to_string())
                .collect();
            let more = if embedded.truncated.len() > 10 { ", ..." } else { "" };
            warnings.push(format!(
                "{}: {} text(s) longer than {} tokens truncated (line(s) {}{more})",
                self.input.display(),
                embedded.truncated.len(),
                teacher.max_length(),
                lines.join(", ")
            ));
        }
        Ok(EmbedSummary {
            rows,
            sentences: total,
            dim,
            seconds,
            sentences_per_s: total as f64 / seconds.max(1e-9),
            truncated: embedded.truncated.len(),
            max_length: teacher.max_length(),
            empty_lines_skipped: texts.empty_lines,
            output: self.output.display().to_string(),
            texts: sidecar.display().to_string(),
            warnings,
        })
    }
}
