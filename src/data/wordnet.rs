//! (definition, example sentence) pairs from the WordNet 3.0 database files
//! (`data.noun`, `data.verb`, `data.adj`, `data.adv`, as in Debian's
//! wordnet-base package): the text side of data/wordnet-pairs.*.
//!
//! A synset line ends in `| gloss`, the gloss being the definition followed
//! by quoted examples: `a human being; "there was too much for one person to do"`.

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::Path;

/// Database files read, in this order.
pub const FILES: [(&str, char); 4] = [
    ("data.noun", 'n'),
    ("data.verb", 'v'),
    ("data.adj", 'a'),
    ("data.adv", 'r'),
];

/// Examples shorter than this many words (mostly adjective phrases such as
/// "declarable income") are passed over for a longer one of the same synset.
pub const MIN_EXAMPLE_WORDS: usize = 3;

/// One pair and the synset it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Part of speech letter and byte offset, e.g. `n00007846`.
    pub synset: String,
    pub definition: String,
    pub example: String,
}

/// Counts reported by [`read_pairs`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub synsets: usize,
    /// Synsets with an example of at least [`MIN_EXAMPLE_WORDS`] words.
    pub with_example: usize,
    /// Left after dropping repeated definitions and examples.
    pub unique: usize,
}

/// Splits a gloss into its definition and its quoted examples. The examples
/// start at the first `"` that opens the gloss or follows `;`, `:` or `)`
/// (spaces aside; a few glosses write `experience of:"We felt ..."`); a quote
/// inside the definition (`the letter "a"`) does not count. None when there
/// is no example, the quotes do not pair up, or the definition is only a
/// parenthesised usage note such as `(of persons)`.
pub fn parse_gloss(gloss: &str) -> Option<(String, Vec<String>)> {
    let gloss = gloss.trim();
    let start = gloss
        .match_indices('"')
        .map(|(i, _)| i)
        .find(|&i| matches!(gloss[..i].trim_end().chars().last(), None | Some(';' | ':' | ')')))?;
    let definition = gloss[..start].trim().trim_end_matches([';', ':']).trim();
    if definition.starts_with('(') && definition.ends_with(')') {
        return None;
    }
    let rest = &gloss[start..];
    if !rest.matches('"').count().is_multiple_of(2) {
        return None;
    }
    // Quoted stretches alternate with separators and attributions
    // (`"..." - Shakespeare`), which are dropped.
    let examples: Vec<String> = rest
        .split('"')
        .skip(1)
        .step_by(2)
        .map(clean)
        .filter(|e| !e.is_empty())
        .collect();
    if examples.is_empty() {
        return None;
    }
    Some((clean(definition), examples))
}

/// Collapses whitespace (no tabs or newlines may reach the TSV).
fn clean(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads every pair from the database folder `dict`: per synset the first
/// example of at least [`MIN_EXAMPLE_WORDS`] words, in file order, a pair
/// dropped when its definition or its example was already used.
pub fn read_pairs(dict: &Path) -> Result<(Vec<Pair>, Counts)> {
    let mut counts = Counts::default();
    let mut pairs = Vec::new();
    let mut seen_def = HashSet::new();
    let mut seen_ex = HashSet::new();
    for (name, pos) in FILES {
        let path = dict.join(name);
        // Not is_file: a pipe is read as every input is (`io::read_file`).
        if !path.exists() {
            return Err(Error::input(format!(
                "{}: no WordNet database file {name} here (expected the folder usr/share/wordnet of wordnet-base)",
                dict.display()
            )));
        }
        let bytes = crate::io::read_file(&path)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| Error::input(format!("{}: not UTF-8 text ({e})", path.display())))?;
        for (i, line) in text.lines().enumerate() {
            // The licence header lines start with two spaces.
            if line.starts_with("  ") || line.trim().is_empty() {
                continue;
            }
            let (head, gloss) = line.split_once(" | ").ok_or_else(|| {
                Error::input(format!(
                    "{}: line {} is not a synset line (no \" | \")",
                    path.display(),
                    i + 1
                ))
            })?;
            let offset = head.split(' ').next().unwrap_or_default();
            counts.synsets += 1;
            let Some((definition, examples)) = parse_gloss(gloss) else {
                continue;
            };
            let Some(example) = examples.into_iter().find(|e| e.split(' ').count() >= MIN_EXAMPLE_WORDS) else {
                continue;
            };
            counts.with_example += 1;
            if definition.is_empty() || seen_def.contains(&definition) || seen_ex.contains(&example) {
                continue;
            }
            seen_def.insert(definition.clone());
            seen_ex.insert(example.clone());
            pairs.push(Pair {
                synset: format!("{pos}{offset}"),
                definition,
                example,
            });
        }
    }
    counts.unique = pairs.len();
    Ok((pairs, counts))
}

/// FNV-1a, 64 bit: a fixed, dependency-free hash for the selection order.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Chooses `count` pairs deterministically: ordered by the FNV-1a hash of
/// the synset id (a fixed shuffle, so any prefix mixes all parts of speech)
/// and cut after `count`.
pub fn select(mut pairs: Vec<Pair>, count: usize) -> Result<Vec<Pair>> {
    if count == 0 || count > pairs.len() {
        return Err(Error::input(format!(
            "--count {count}: must be between 1 and {} (the pairs available)",
            pairs.len()
        )));
    }
    pairs.sort_by_cached_key(|p| (fnv1a(&p.synset), p.synset.clone()));
    pairs.truncate(count);
    Ok(pairs)
}

/// `definition<TAB>example` lines, the input format of `energyflow embed`.
pub fn to_tsv(pairs: &[Pair]) -> String {
    pairs
        .iter()
        .map(|p| format!("{}\t{}\n", p.definition, p.example))
        .collect()
}

/// What [`build_tsv`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildSummary {
    #[serde(flatten)]
    pub counts: Counts,
    /// Pairs written.
    pub written: usize,
    pub out: String,
}

/// Reads the WordNet folder `dict`, keeps `count` pairs and writes them to
/// `out` as TSV (atomically).
pub fn build_tsv(dict: &Path, out: &Path, count: usize) -> Result<BuildSummary> {
    let files: Vec<_> = FILES.iter().map(|(name, _)| dict.join(name)).collect();
    let reads: Vec<_> = files
        .iter()
        .map(|path| crate::io::Read { label: "--dict", path })
        .collect();
    crate::io::check_output("--out", out, &reads)?;
    let (pairs, counts) = read_pairs(dict)?;
    let chosen = select(pairs, count)?;
    crate::io::write_atomic(out, to_tsv(&chosen).as_bytes())?;
    Ok(BuildSummary {
        counts,
        written: chosen.len(),
        out: out.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gloss_splits_into_definition_and_examples() {
        let (d, e) = parse_gloss(r#"owned up to; "his admitted doubts"; "the conceded error"  "#).unwrap();
        assert_eq!(d, "owned up to");
        assert_eq!(e, vec!["his admitted doubts", "the conceded error"]);
        let (d, e) = parse_gloss(r#"purported; commonly put forth; "the putative father""#).unwrap();
        assert_eq!(d, "purported; commonly put forth");
        assert_eq!(e, vec!["the putative father"]);
        // A quote inside the definition, an attribution after an example.
        let (d, e) = parse_gloss(r#"the letter "a" as a word; "to be or not to be" - Shakespeare"#).unwrap();
        assert_eq!(d, r#"the letter "a" as a word"#);
        assert_eq!(e, vec!["to be or not to be"]);
        let (d, e) = parse_gloss(r#"undergo passive experience of:"We felt it"; "she felt his contempt""#).unwrap();
        assert_eq!(d, "undergo passive experience of");
        assert_eq!(e, vec!["We felt it", "she felt his contempt"]);
        assert_eq!(
            parse_gloss(r#"(of persons) "his father was a hard-to-please taskmaster""#),
            None
        );
        assert_eq!(parse_gloss("a human being"), None);
        assert_eq!(parse_gloss(r#"odd; "unclosed quote"#), None);
    }

    #[test]
    fn selection_is_deterministic_and_order_independent() {
        let pairs: Vec<Pair> = (0..50)
            .map(|i| Pair {
                synset: format!("n{i:08}"),
                definition: format!("d{i}"),
                example: format!("e{i}"),
            })
            .collect();
        let a = select(pairs.clone(), 10).unwrap();
        let mut rev = pairs.clone();
        rev.reverse();
        assert_eq!(a, select(rev, 10).unwrap());
        assert!(select(pairs, 51).is_err());
    }
}
