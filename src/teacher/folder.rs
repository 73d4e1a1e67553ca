//! A sentence-transformers model folder on disk: which files must be there,
//! and what its small JSON configs say (BERT shape, token limit, pooling,
//! normalisation). Everything is checked before any weights are read, so a
//! missing or incomplete folder is a one-line error naming the file.

use super::pooling::Pooling;
use crate::error::{Error, Result};
use candle_transformers::models::bert;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The checked contents of a model folder (weights not loaded yet).
#[derive(Debug, Clone)]
pub struct ModelFolder {
    pub dir: PathBuf,
    /// config.json, parsed as a BERT config.
    pub bert: bert::Config,
    /// Token limit (special tokens included) from sentence_bert_config.json;
    /// the model's position limit when that file is absent.
    pub max_seq_length: usize,
    pub pooling: Pooling,
    /// Whether modules.json ends with a Normalize module.
    pub normalize: bool,
}

/// The fewest tokens a text can have: [CLS], one token, [SEP].
pub const MIN_TOKENS: usize = 3;

const ST_TRANSFORMER: &str = "sentence_transformers.models.Transformer";
const ST_POOLING: &str = "sentence_transformers.models.Pooling";
const ST_NORMALIZE: &str = "sentence_transformers.models.Normalize";

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl ModelFolder {
    /// Checks the folder and parses its configs.
    pub fn open(dir: &Path) -> Result<ModelFolder> {
        let shown = dir.display();
        if !dir.is_dir() {
            let msg = format!(
                "{shown}: model folder not found (expected a sentence-transformers folder such as all-MiniLM-L6-v2)"
            );
            return Err(if dir.exists() {
                Error::input(msg)
            } else {
                Error::NotFound(msg)
            });
        }
        // The weights and tokenizer are read later; check they exist now so
        // an incomplete copy fails before anything slow happens.
        for name in ["config.json", "tokenizer.json", "model.safetensors", "modules.json"] {
            require_file(dir, name)?;
        }

        let modules: Vec<Module> = read_json(&dir.join("modules.json"))?;
        let (pooling_path, normalize) = read_pipeline(dir, &modules)?;

        let bert: bert::Config = read_json(&dir.join("config.json"))?;
        let config_path = dir.join("config.json");
        if let Some(t) = bert.model_type.as_deref()
            && t != "bert"
        {
            return Err(Error::input(format!(
                "{}: model_type \"{t}\" is not supported (only \"bert\")",
                config_path.display()
            )));
        }
        if bert.num_attention_heads == 0 || !bert.hidden_size.is_multiple_of(bert.num_attention_heads) {
            return Err(Error::input(format!(
                "{}: hidden_size {} is not a multiple of num_attention_heads {}",
                config_path.display(),
                bert.hidden_size,
                bert.num_attention_heads
            )));
        }

        let pooling_file = require_file(dir, &format!("{pooling_path}/config.json"))?;
        let pooling = Pooling::from_config(&pooling_file, &read_file_string(&pooling_file)?)?;
        if pooling.word_embedding_dimension != bert.hidden_size {
            return Err(Error::input(format!(
                "{}: word_embedding_dimension {} does not match hidden_size {} in config.json",
                pooling_file.display(),
                pooling.word_embedding_dimension,
                bert.hidden_size
            )));
        }

        // sentence_bert_config.json is optional in sentence-transformers too.
        let sbert_path = dir.join("sentence_bert_config.json");
        let max_seq_length = if sbert_path.is_file() {
            let c: SentenceBertConfig = read_json(&sbert_path)?;
            c.max_seq_length.unwrap_or(bert.max_position_embeddings)
        } else {
            bert.max_position_embeddings
        };
        // Below 3 the tokenizer has no room for a token between [CLS] and [SEP].
        if !(MIN_TOKENS..=bert.max_position_embeddings).contains(&max_seq_length) {
            return Err(Error::input(format!(
                "{}: max_seq_length {max_seq_length} must be between {MIN_TOKENS} and max_position_embeddings {} of config.json",
                sbert_path.display(),
                bert.max_position_embeddings
            )));
        }
        Ok(ModelFolder {
            dir: dir.to_path_buf(),
            bert,
            max_seq_length,
            pooling,
            normalize,
        })
    }

    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }

    pub fn weights_path(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
}

/// Accepts exactly Transformer, Pooling and an optional Normalize, in that
/// order; anything else (Dense, a second pooling, ...) would change the
/// vectors and is refused rather than silently skipped. Returns the pooling
/// module's folder and whether to normalise.
fn read_pipeline(dir: &Path, modules: &[Module]) -> Result<(String, bool)> {
    let file = dir.join("modules.json");
    let kinds: Vec<&str> = modules.iter().map(|m| m.kind.as_str()).collect();
    let unsupported = || {
        Error::input(format!(
            "{}: unsupported module list [{}] (expected Transformer, Pooling and optionally Normalize)",
            file.display(),
            kinds.join(", ")
        ))
    };
    match kinds.as_slice() {
        [ST_TRANSFORMER, ST_POOLING] => Ok((modules[1].path.clone(), false)),
        [ST_TRANSFORMER, ST_POOLING, ST_NORMALIZE] => Ok((modules[1].path.clone(), true)),
        _ => Err(unsupported()),
    }
    .and_then(|(p, n)| {
        if p.is_empty() || p.contains("..") {
            Err(Error::input(format!(
                "{}: bad Pooling module path {p:?}",
                file.display()
            )))
        } else {
            Ok((p, n))
        }
    })
}

fn require_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::input(format!(
            "{}: incomplete model folder: {name} is missing",
            dir.display()
        )))
    }
}

fn read_file_string(path: &Path) -> Result<String> {
    crate::io::read_text(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_file_string(path)?;
    serde_json::from_str(&text).map_err(|e| Error::input(format!("{}: {e}", path.display())))
}
