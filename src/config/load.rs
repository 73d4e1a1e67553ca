//! Loading a config: a preset, overlaid by the keys of a TOML file. This
//! is the one way every command gets its config ([`ConfigSource::load`]).

use super::{EnergyConfig, Preset, section_table};
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

impl EnergyConfig {
    /// Parses TOML on top of preset `base`: keys in the text override the
    /// preset's. A `preset = "name"` key in the text selects the base
    /// instead. Unknown keys and wrong types are refused naming the key.
    /// Returns the config and the dotted keys the text sets
    /// ("model.input_embedding_dim", ...).
    pub fn from_toml_str(text: &str, base: Preset, origin: &str) -> Result<(Self, BTreeSet<String>)> {
        let mut overlay: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::input_quoting(origin, &e.to_string()))?;
        let base = match overlay.remove("preset") {
            Some(toml::Value::String(s)) => Preset::parse(&s)?,
            Some(other) => return Err(Error::config("preset", other, "expected a string")),
            None => base,
        };
        let mut merged = section_table(&Self::preset(base));
        check_sections(&overlay, &merged, origin)?;
        let mut keys = BTreeSet::new();
        dotted_keys(&overlay, "", &mut keys);
        merge(&mut merged, overlay);
        let cfg: EnergyConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| Error::input_quoting(origin, &e.to_string()))?;
        cfg.validate()?;
        Ok((cfg, keys))
    }
}

/// Where a command's config comes from: a preset, optionally overlaid by a
/// TOML file. The one way every command loads its config.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// Preset to start from (debug when None and the file names none).
    pub preset: Option<Preset>,
    /// TOML file whose keys override the preset.
    pub file: Option<PathBuf>,
}

/// A loaded, validated config and the keys its file set explicitly.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: EnergyConfig,
    /// Dotted keys set by the file ("train.learning_rate", ...).
    pub file_keys: BTreeSet<String>,
}

impl LoadedConfig {
    /// True when the file sets `key` (dotted, e.g. "model.input_embedding_dim").
    pub fn file_sets(&self, key: &str) -> bool {
        self.file_keys.contains(key)
    }
}

impl ConfigSource {
    /// Loads and validates the config.
    pub fn load(&self) -> Result<LoadedConfig> {
        let preset = self.preset.unwrap_or_default();
        match &self.file {
            Some(path) => {
                let text = read_config_file(path)?;
                let (config, file_keys) = EnergyConfig::from_toml_str(&text, preset, &path.display().to_string())?;
                Ok(LoadedConfig { config, file_keys })
            }
            None => {
                let config = EnergyConfig::preset(preset);
                config.validate()?;
                Ok(LoadedConfig {
                    config,
                    file_keys: BTreeSet::new(),
                })
            }
        }
    }

    /// True when neither a preset nor a file is named.
    pub fn is_default(&self) -> bool {
        self.preset.is_none() && self.file.is_none()
    }
}

fn read_config_file(path: &Path) -> Result<String> {
    crate::io::read_text(path)
}

/// Refuses a top-level key that is not a section, saying which section a
/// known field moved to (the flat layout of checkpoint format 1).
fn check_sections(overlay: &toml::Table, preset: &toml::Table, origin: &str) -> Result<()> {
    for (key, value) in overlay {
        if preset.contains_key(key) && value.is_table() {
            continue;
        }
        if let Some((section, _)) = preset
            .iter()
            .find(|(_, t)| t.as_table().is_some_and(|t| t.contains_key(key)))
        {
            return Err(Error::input(format!(
                "{origin}: key `{key}` belongs in the [{section}] section (write it under [{section}])"
            )));
        }
        return Err(Error::input(format!(
            "{origin}: unknown key `{key}` (expected `preset` or a [model], [flow] or [train] section)"
        )));
    }
    Ok(())
}

fn dotted_keys(t: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let key = format!("{prefix}{k}");
        match v {
            toml::Value::Table(sub) => dotted_keys(sub, &format!("{key}."), out),
            _ => {
                out.insert(key);
            }
        }
    }
}

/// Recursively overlays `over` onto `base` (tables merge, values replace).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_preset_and_reports_its_keys() {
        let (c, keys) = EnergyConfig::from_toml_str(
            "[model]\nlattice_width = 8\n[train]\nlearning_rate = 0.01\n",
            Preset::Debug,
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.model.lattice_width, 8);
        assert_eq!(c.model.lattice_height, 20);
        assert_eq!(c.train.learning_rate, 0.01);
        assert_eq!(c.train.beta1, 0.9);
        let want: BTreeSet<String> = ["model.lattice_width", "train.learning_rate"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(keys, want);
        let (c, _) = EnergyConfig::from_toml_str("preset = \"experiment\"\n", Preset::Debug, "t").unwrap();
        assert_eq!(c.flow.lattice_depth, 40);
    }

    #[test]
    fn a_flat_key_is_refused_naming_its_section() {
        let e = EnergyConfig::from_toml_str("lattice_width = 8\n", Preset::Debug, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lattice_width") && e.contains("[model]"), "{e}");
        let e = EnergyConfig::from_toml_str("max_active_flows = 8\n", Preset::Debug, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[flow]"), "{e}");
        let e = EnergyConfig::from_toml_str("[lattice]\nwidth = 8\n", Preset::Debug, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `lattice`"), "{e}");
    }
}
