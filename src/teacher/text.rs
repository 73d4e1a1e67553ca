//! The text files `energyflow embed` reads (one text per line, or a TSV of
//! input/target pairs) and the JSONL sidecar it writes beside the vectors.

use crate::error::{Error, Result};
use std::path::Path;

/// How to read an input text file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextFormat {
    /// Pairs when the file name ends in .tsv or its first non-empty line has
    /// a tab; lines otherwise.
    Auto,
    /// One text per line.
    Lines,
    /// `input<TAB>target` on every line.
    Pairs,
}

/// The texts of one file, in file order, empty lines left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFile {
    pub inputs: Vec<String>,
    /// Present for a pairs file, same length as `inputs`.
    pub targets: Option<Vec<String>>,
    /// 1-based line number of each row in the file.
    pub line_numbers: Vec<usize>,
    /// Blank (or whitespace-only) lines skipped.
    pub empty_lines: usize,
}

impl TextFile {
    pub fn rows(&self) -> usize {
        self.inputs.len()
    }

    /// Every text to embed: the inputs, then the targets.
    pub fn all_texts(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.inputs.iter().map(String::as_str).collect();
        if let Some(t) = &self.targets {
            v.extend(t.iter().map(String::as_str));
        }
        v
    }
}

/// Reads and parses the text file at `path`.
pub fn load_text_file(path: &Path, format: TextFormat) -> Result<TextFile> {
    let bytes = crate::io::read_file(path)?;
    parse_text_file(path, &bytes, format)
}

/// Parses `bytes`, the contents of `path` (named in every error).
///
/// Texts are trimmed; blank lines are skipped and counted. A pairs file
/// must have exactly one tab on every non-blank line and text on both sides.
pub fn parse_text_file(path: &Path, bytes: &[u8], format: TextFormat) -> Result<TextFile> {
    let file = path.display();
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::input(format!(
            "{file}: not UTF-8 text (invalid byte 0x{:02x} on line {line})",
            bytes[at]
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // A final newline ends the last line; it does not start an empty one.
    let text = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect()
    };

    let pairs = match format {
        TextFormat::Lines => false,
        TextFormat::Pairs => true,
        TextFormat::Auto => {
            path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
                || lines
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.contains('\t'))
        }
    };

    let mut out = TextFile {
        inputs: Vec::new(),
        targets: pairs.then(Vec::new),
        line_numbers: Vec::new(),
        empty_lines: 0,
    };
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            out.empty_lines += 1;
            continue;
        }
        if let Some(targets) = &mut out.targets {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != 2 {
                return Err(Error::input(if fields.len() == 1 {
                    format!("{file}: line {n} has no tab; a pairs file needs input<TAB>target on every line")
                } else {
                    format!(
                        "{file}: line {n} has {} tab-separated fields, expected 2 (input<TAB>target)",
                        fields.len()
                    )
                }));
            }
            let (input, target) = (fields[0].trim(), fields[1].trim());
            for (value, what) in [(input, "input (before the tab)"), (target, "target (after the tab)")] {
                if value.is_empty() {
                    return Err(Error::input(format!("{file}: line {n} has an empty {what}")));
                }
            }
            out.inputs.push(input.to_string());
            targets.push(target.to_string());
        } else {
            out.inputs.push(line.trim().to_string());
        }
        out.line_numbers.push(n);
    }
    if out.inputs.is_empty() {
        return Err(Error::input(format!(
            "{file}: no texts ({} line(s), all empty)",
            lines.len()
        )));
    }
    Ok(out)
}

/// The sidecar of an embeddings file: same path, extension `.jsonl`.
pub fn sidecar_path(output: &Path) -> std::path::PathBuf {
    output.with_extension("jsonl")
}

/// One JSON object per row, `{"input": ..}` or `{"input": .., "target": ..}`;
/// row i describes row i of the tensors.
pub fn to_jsonl(texts: &TextFile) -> String {
    let mut s = String::new();
    for (i, input) in texts.inputs.iter().enumerate() {
        let obj = match &texts.targets {
            Some(t) => serde_json::json!({ "input": input, "target": t[i] }),
            None => serde_json::json!({ "input": input }),
        };
        s.push_str(&obj.to_string());
        s.push('\n');
    }
    s
}
