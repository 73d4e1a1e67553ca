//! `energyflow embed`: texts in, teacher embeddings out (safetensors plus a
//! JSONL sidecar with the texts), a progress bar on stderr and one JSON
//! summary line on stdout (see docs/EMBED.md).

use crate::error::{Error, Result};
use crate::io::{Matrix, StoreDtype, save_matrices, write_atomic};
use crate::teacher::{DEFAULT_BATCH, Teacher, TextFormat, text};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// sentence-transformers model folder (config.json, tokenizer.json,
    /// model.safetensors, modules.json, 1_Pooling/config.json).
    #[arg(long)]
    pub model: PathBuf,
    /// UTF-8 text file: one text per line, or a TSV of input<TAB>target pairs.
    #[arg(long)]
    pub input: PathBuf,
    /// safetensors file to write: tensor "input" [N, dim], plus "target" for
    /// pairs. The texts go to the same path with extension .jsonl.
    #[arg(long)]
    pub output: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Token limit, special tokens included (default: the folder's
    /// max_seq_length); longer texts are truncated and counted.
    #[arg(long)]
    pub max_length: Option<usize>,
    /// How to read --input.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: TextFormat,
    /// Element type of the written tensors.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: OutDtype,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutDtype {
    F32,
    F16,
}

/// The summary line printed on stdout.
#[derive(Debug, serde::Serialize)]
struct Summary {
    rows: usize,
    sentences: usize,
    dim: usize,
    seconds: f64,
    sentences_per_s: f64,
    truncated: usize,
    max_length: usize,
    empty_lines_skipped: usize,
    output: String,
    texts: String,
}

pub fn run(args: &EmbedArgs) -> Result<()> {
    if args.batch == 0 {
        return Err(Error::input("--batch must be at least 1"));
    }
    let sidecar = text::sidecar_path(&args.output);
    if sidecar == args.output {
        return Err(Error::input(format!(
            "--output {}: the texts are written to <output>.jsonl, so the output must not end in .jsonl",
            args.output.display()
        )));
    }
    if args.output == args.input || sidecar == args.input {
        return Err(Error::input(format!(
            "--output {} would overwrite --input",
            args.output.display()
        )));
    }
    // Cheap checks first: the folder's configs and the text file, then the weights.
    crate::teacher::ModelFolder::open(&args.model)?;
    let texts = text::load_text_file(&args.input, args.format)?;
    let teacher = Teacher::load(&args.model, args.max_length)?;

    let all = texts.all_texts();
    let bar = indicatif::ProgressBar::new(all.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("embed {bar:40} {pos}/{len} sentences, {per_sec}, eta {eta}")
            .map_err(|e| Error::Internal(e.to_string()))?,
    );
    let start = Instant::now();
    let embedded = teacher.embed(&all, args.batch, &mut |done| bar.set_position(done as u64))?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let rows = texts.rows();
    let dim = teacher.dim();
    let split = |from: usize| Matrix {
        rows,
        cols: dim,
        data: embedded.matrix.data[from * dim..(from + rows) * dim].to_vec(),
    };
    let input = split(0);
    let dtype = match args.dtype {
        OutDtype::F32 => StoreDtype::F32,
        OutDtype::F16 => StoreDtype::F16,
    };
    match texts.targets {
        Some(_) => save_matrices(&args.output, &[("input", &input), ("target", &split(rows))], dtype)?,
        None => save_matrices(&args.output, &[("input", &input)], dtype)?,
    }
    write_atomic(&sidecar, text::to_jsonl(&texts).as_bytes())?;

    if texts.empty_lines > 0 {
        eprintln!(
            "energyflow embed: warning: {}: {} empty line(s) skipped",
            args.input.display(),
            texts.empty_lines
        );
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
        eprintln!(
            "energyflow embed: warning: {}: {} text(s) longer than {} tokens truncated (line(s) {}{more})",
            args.input.display(),
            embedded.truncated.len(),
            teacher.max_length(),
            lines.join(", ")
        );
    }
    let summary = Summary {
        rows,
        sentences: all.len(),
        dim,
        seconds,
        sentences_per_s: all.len() as f64 / seconds.max(1e-9),
        truncated: embedded.truncated.len(),
        max_length: teacher.max_length(),
        empty_lines_skipped: texts.empty_lines,
        output: args.output.display().to_string(),
        texts: sidecar.display().to_string(),
    };
    println!(
        "{}",
        serde_json::to_string(&summary).map_err(|e| Error::Internal(e.to_string()))?
    );
    Ok(())
}
