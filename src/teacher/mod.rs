//! The teacher: sentence embeddings from text with a local
//! sentence-transformers BERT model (e.g. all-MiniLM-L6-v2), on the CPU.
//!
//! It reproduces sentence-transformers' `encode`: the folder's tokenizer
//! (padding switched from its fixed length to the longest text of each
//! batch, truncation at the folder's `max_seq_length`), candle's BERT, the
//! pooling of `1_Pooling/config.json`, then L2 normalisation when
//! `modules.json` lists a Normalize module.
//!
//! - `folder`: checks a model folder and reads its configs;
//! - `pooling`: pooling modes and normalisation;
//! - `text`: the input text files and the JSONL sidecar;
//! - `job`: a whole `embed` run, file in, files out.

pub mod folder;
pub mod job;
pub mod pooling;
pub mod text;

pub use folder::ModelFolder;
pub use job::{EmbedJob, EmbedSummary};
pub use text::{TextFile, TextFormat};

use crate::error::{Error, Result, one_line};
use crate::io::Matrix;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
use std::path::Path;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Texts per forward pass when the caller has no preference.
pub const DEFAULT_BATCH: usize = 32;

/// A loaded model folder, ready to embed.
pub struct Teacher {
    folder: ModelFolder,
    tokenizer: Tokenizer,
    model: BertModel,
    device: Device,
    max_length: usize,
    pad_id: u32,
}

/// Embeddings of a list of texts, in the given order.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// [texts, dim] row-major.
    pub matrix: Matrix,
    /// Indices of the texts that were cut at `max_length` tokens.
    pub truncated: Vec<usize>,
}

/// One text after tokenization (special tokens included, no padding).
struct Tokens {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
}

impl Teacher {
    /// Loads the model folder `dir`. `max_length` (tokens, special tokens
    /// included) defaults to the folder's `max_seq_length` and may not exceed
    /// the model's position limit.
    pub fn load(dir: &Path, max_length: Option<usize>) -> Result<Teacher> {
        let folder = ModelFolder::open(dir)?;
        // The folder's own max_seq_length was checked by ModelFolder::open;
        // only a --max-length given by the user is checked (and named) here.
        let limit = folder.bert.max_position_embeddings;
        if let Some(n) = max_length
            && !(folder::MIN_TOKENS..=limit).contains(&n)
        {
            return Err(Error::input(format!(
                "--max-length {n}: must be between {} and {limit} (the model's max_position_embeddings)",
                folder::MIN_TOKENS
            )));
        }
        let max_length = max_length.unwrap_or(folder.max_seq_length);

        let tok_path = folder.tokenizer_path();
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| {
            Error::input(format!(
                "{}: cannot load tokenizer ({})",
                tok_path.display(),
                one_line(&e.to_string())
            ))
        })?;
        // The file pads every text to a fixed length (128 for
        // all-MiniLM-L6-v2); batches are padded here, to their longest text.
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .unwrap_or(0);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::Internal(format!("tokenizer truncation: {}", one_line(&e.to_string()))))?;

        let device = Device::Cpu;
        let weights_path = folder.weights_path();
        let bytes = crate::io::read_file(&weights_path)?;
        let weights_err = |e: candle_core::Error| {
            Error::input_quoting(
                format!("{}: cannot load BERT weights", weights_path.display()),
                &e.to_string(),
            )
        };
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device).map_err(weights_err)?;
        let model = BertModel::load(vb, &folder.bert).map_err(weights_err)?;
        Ok(Teacher {
            folder,
            tokenizer,
            model,
            device,
            max_length,
            pad_id,
        })
    }

    /// Width of one embedding.
    pub fn dim(&self) -> usize {
        self.folder.pooling.output_dim()
    }

    /// Token limit in force (special tokens included).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn folder(&self) -> &ModelFolder {
        &self.folder
    }

    /// Embeds `texts` in batches of `batch`, calling `progress(done)` after
    /// each batch with the number of texts embedded so far.
    ///
    /// Texts are grouped by token count before batching (as
    /// sentence-transformers does) so a batch carries little padding; the
    /// output is in the input order.
    pub fn embed(&self, texts: &[&str], batch: usize, progress: &mut dyn FnMut(usize)) -> Result<Embedded> {
        if batch == 0 {
            return Err(Error::input("--batch must be at least 1"));
        }
        let tokens = self.tokenize(texts)?;
        let truncated: Vec<usize> = tokens
            .iter()
            .enumerate()
            .filter(|(_, (_, cut))| *cut)
            .map(|(i, _)| i)
            .collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (tokens[i].0.ids.len(), i));

        let dim = self.dim();
        let mut data = vec![0f32; texts.len() * dim];
        let mut done = 0;
        for chunk in order.chunks(batch) {
            let group: Vec<&Tokens> = chunk.iter().map(|&i| &tokens[i].0).collect();
            let vectors = self.forward(&group)?;
            for (k, &i) in chunk.iter().enumerate() {
                data[i * dim..(i + 1) * dim].copy_from_slice(&vectors[k * dim..(k + 1) * dim]);
            }
            done += chunk.len();
            progress(done);
        }
        Ok(Embedded {
            matrix: Matrix {
                rows: texts.len(),
                cols: dim,
                data,
            },
            truncated,
        })
    }

    /// The token ids of `text` as the model sees them (special tokens
    /// included, truncated at `max_length`).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenize(&[text])?.remove(0).0.ids)
    }

    /// Tokenizes every text; the flag says whether it was truncated.
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<(Tokens, bool)>> {
        texts
            .iter()
            .map(|t| {
                let enc = self
                    .tokenizer
                    .encode(*t, true)
                    .map_err(|e| Error::Internal(format!("tokenizer: {}", one_line(&e.to_string()))))?;
                // Truncation moves the cut-off tokens into `overflowing`.
                let cut = !enc.get_overflowing().is_empty();
                Ok((
                    Tokens {
                        ids: enc.get_ids().to_vec(),
                        type_ids: enc.get_type_ids().to_vec(),
                    },
                    cut,
                ))
            })
            .collect()
    }

    /// One padded batch through BERT, pooling and normalisation:
    /// [group.len(), dim] row-major.
    fn forward(&self, group: &[&Tokens]) -> Result<Vec<f32>> {
        let b = group.len();
        let seq = group.iter().map(|t| t.ids.len()).max().unwrap_or(0);
        let mut ids = vec![self.pad_id; b * seq];
        let mut type_ids = vec![0u32; b * seq];
        let mut mask = vec![0u32; b * seq];
        for (r, t) in group.iter().enumerate() {
            let n = t.ids.len();
            ids[r * seq..r * seq + n].copy_from_slice(&t.ids);
            type_ids[r * seq..r * seq + n].copy_from_slice(&t.type_ids);
            mask[r * seq..r * seq + n].iter_mut().for_each(|m| *m = 1);
        }
        let hidden = (|| {
            let ids_t = Tensor::from_vec(ids, (b, seq), &self.device)?;
            let type_t = Tensor::from_vec(type_ids, (b, seq), &self.device)?;
            let mask_t = Tensor::from_vec(mask.clone(), (b, seq), &self.device)?;
            let h = self.model.forward(&ids_t, &type_t, Some(&mask_t))?;
            h.flatten_all()?.to_vec1::<f32>()
        })()
        .map_err(|e: candle_core::Error| Error::Internal(format!("BERT forward: {}", one_line(&e.to_string()))))?;
        let mut pooled = self.folder.pooling.pool(&hidden, &mask, b, seq);
        if self.folder.normalize {
            pooling::l2_normalize_rows(&mut pooled, self.dim());
        }
        Ok(pooled)
    }
}
