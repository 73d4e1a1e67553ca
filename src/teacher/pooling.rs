//! Sentence pooling as sentence-transformers' Pooling module does it: token
//! vectors of one batch in, one vector per text out, padding ignored through
//! the attention mask. Also the final L2 normalisation.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// One pooling mode of sentence-transformers (several are concatenated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// The first token ([CLS]).
    Cls,
    /// Element-wise maximum over the real tokens.
    Max,
    /// Mean over the real tokens.
    Mean,
    /// Sum over the real tokens divided by sqrt(token count).
    MeanSqrtLen,
}

impl PoolMode {
    fn parse(name: &str) -> Option<PoolMode> {
        match name {
            "cls" => Some(PoolMode::Cls),
            "max" => Some(PoolMode::Max),
            "mean" => Some(PoolMode::Mean),
            "mean_sqrt_len_tokens" => Some(PoolMode::MeanSqrtLen),
            _ => None,
        }
    }
}

/// A parsed 1_Pooling/config.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pooling {
    pub word_embedding_dimension: usize,
    /// Output is these modes' vectors concatenated, in this order.
    pub modes: Vec<PoolMode>,
}

/// Both spellings of the config: the legacy `pooling_mode_*` booleans that
/// model folders ship, and the newer single `pooling_mode` key.
#[derive(Deserialize)]
struct RawPooling {
    word_embedding_dimension: Option<usize>,
    embedding_dimension: Option<usize>,
    pooling_mode: Option<serde_json::Value>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

impl Pooling {
    /// Parses the pooling config `text` read from `path` (named in errors).
    pub fn from_config(path: &Path, text: &str) -> Result<Pooling> {
        let file = path.display();
        let raw: RawPooling = serde_json::from_str(text).map_err(|e| Error::input(format!("{file}: {e}")))?;
        let word_embedding_dimension = raw
            .word_embedding_dimension
            .or(raw.embedding_dimension)
            .ok_or_else(|| Error::input(format!("{file}: missing word_embedding_dimension")))?;
        // Same order as sentence-transformers when it converts the booleans.
        let names: Vec<String> = match &raw.pooling_mode {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::input(format!("{file}: pooling_mode entries must be strings")))
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(Error::input(format!(
                    "{file}: pooling_mode {other} is neither a string nor a list"
                )));
            }
            None => {
                let flags = [
                    (raw.pooling_mode_cls_token, "cls"),
                    (raw.pooling_mode_max_tokens, "max"),
                    (raw.pooling_mode_mean_tokens, "mean"),
                    (raw.pooling_mode_mean_sqrt_len_tokens, "mean_sqrt_len_tokens"),
                    (raw.pooling_mode_weightedmean_tokens, "weightedmean"),
                    (raw.pooling_mode_lasttoken, "lasttoken"),
                ];
                let on: Vec<String> = flags.iter().filter(|f| f.0).map(|f| f.1.to_string()).collect();
                if on.is_empty() { vec!["mean".to_string()] } else { on }
            }
        };
        if names.is_empty() {
            return Err(Error::input(format!("{file}: pooling_mode is an empty list")));
        }
        let modes = names
            .iter()
            .map(|n| {
                PoolMode::parse(n).ok_or_else(|| {
                    Error::input(format!(
                        "{file}: pooling mode \"{n}\" is not supported (supported: cls, max, mean, mean_sqrt_len_tokens)"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Pooling {
            word_embedding_dimension,
            modes,
        })
    }

    /// Width of one pooled vector.
    pub fn output_dim(&self) -> usize {
        self.modes.len() * self.word_embedding_dimension
    }

    /// Pools `hidden` ([batch, seq, dim], row-major) with `mask` ([batch, seq],
    /// 1 = real token, 0 = padding) into [batch, output_dim].
    pub fn pool(&self, hidden: &[f32], mask: &[u32], batch: usize, seq: usize) -> Vec<f32> {
        let dim = self.word_embedding_dimension;
        debug_assert_eq!(hidden.len(), batch * seq * dim);
        debug_assert_eq!(mask.len(), batch * seq);
        let mut out = Vec::with_capacity(batch * self.output_dim());
        let mut sum = vec![0f64; dim];
        for b in 0..batch {
            let tokens = |t: usize| &hidden[(b * seq + t) * dim..(b * seq + t + 1) * dim];
            let real: Vec<usize> = (0..seq).filter(|&t| mask[b * seq + t] != 0).collect();
            for mode in &self.modes {
                match mode {
                    PoolMode::Cls => out.extend_from_slice(tokens(real.first().copied().unwrap_or(0))),
                    PoolMode::Max => {
                        let mut m = vec![f32::NEG_INFINITY; dim];
                        for &t in &real {
                            for (mi, v) in m.iter_mut().zip(tokens(t)) {
                                *mi = mi.max(*v);
                            }
                        }
                        out.extend(m);
                    }
                    PoolMode::Mean | PoolMode::MeanSqrtLen => {
                        sum.iter_mut().for_each(|s| *s = 0.0);
                        for &t in &real {
                            for (s, v) in sum.iter_mut().zip(tokens(t)) {
                                *s += f64::from(*v);
                            }
                        }
                        // sentence-transformers clamps the count at 1e-9.
                        let n = (real.len() as f64).max(1e-9);
                        let denom = if *mode == PoolMode::Mean { n } else { n.sqrt() };
                        out.extend(sum.iter().map(|s| (s / denom) as f32));
                    }
                }
            }
        }
        out
    }
}

/// Scales every row of the row-major [rows, cols] `data` to unit L2 norm,
/// like torch's `F.normalize` (a zero row stays zero).
pub fn l2_normalize_rows(data: &mut [f32], cols: usize) {
    for row in data.chunks_exact_mut(cols) {
        let norm = row.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt();
        let scale = 1.0 / norm.max(1e-12);
        row.iter_mut().for_each(|v| *v = (f64::from(*v) * scale) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pooling> {
        Pooling::from_config(Path::new("p/config.json"), text)
    }

    #[test]
    fn legacy_and_new_configs_parse() {
        let legacy = r#"{"word_embedding_dimension": 4, "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false}"#;
        assert_eq!(parse(legacy).unwrap().modes, vec![PoolMode::Mean]);
        let new = r#"{"embedding_dimension": 4, "pooling_mode": ["cls", "mean"]}"#;
        let p = parse(new).unwrap();
        assert_eq!(p.modes, vec![PoolMode::Cls, PoolMode::Mean]);
        assert_eq!(p.output_dim(), 8);
        let err = parse(r#"{"word_embedding_dimension": 4, "pooling_mode_lasttoken": true}"#).unwrap_err();
        assert!(err.to_string().contains("\"lasttoken\" is not supported"), "{err}");
    }

    #[test]
    fn mean_ignores_padding_and_max_cls_follow_the_mask() {
        // batch 1, seq 3 (last token is padding), dim 2.
        let hidden = [1.0, 2.0, 3.0, -4.0, 100.0, 100.0];
        let mask = [1, 1, 0];
        let p = |modes| Pooling {
            word_embedding_dimension: 2,
            modes,
        };
        assert_eq!(p(vec![PoolMode::Mean]).pool(&hidden, &mask, 1, 3), vec![2.0, -1.0]);
        assert_eq!(p(vec![PoolMode::Max]).pool(&hidden, &mask, 1, 3), vec![3.0, 2.0]);
        assert_eq!(p(vec![PoolMode::Cls]).pool(&hidden, &mask, 1, 3), vec![1.0, 2.0]);
        let s = p(vec![PoolMode::MeanSqrtLen]).pool(&hidden, &mask, 1, 3);
        assert!((s[0] - 4.0 / 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn normalize_gives_unit_rows_and_keeps_zero_rows() {
        let mut d = vec![3.0, 4.0, 0.0, 0.0];
        l2_normalize_rows(&mut d, 2);
        assert_eq!(d, vec![0.6, 0.8, 0.0, 0.0]);
    }
}
