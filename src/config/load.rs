//! Loading a config: a preset, overlaid by the keys of a TOML file. This
//! is the one way every command gets its config ([`ConfigSource::load`]).

use super::{EnergyConfig, Preset, RuntimeConfig, section_table};
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

impl EnergyConfig {
    /// Parses TOML on top of preset `base`: keys in the text override the
    /// preset's. A `preset = "name"` key in the text selects the base
    /// instead. Unknown keys and wrong types are refused naming the key.
    /// Returns the config and the dotted keys the text sets
    /// ("model.input_embedding_dim", ...); a `[runtime]` section is
    /// checked and left out (see [`LoadedConfig::parse`]).
    pub fn from_toml_str(text: &str, base: Preset, origin: &str) -> Result<(Self, BTreeSet<String>)> {
        let loaded = LoadedConfig::parse(text, base, origin)?;
        Ok((loaded.config, loaded.file_keys))
    }
}

/// Fields that moved out of a section, with where they went: a file that
/// still sets one is refused with the new place (an old checkpoint's copy
/// is migrated by `checkpoint`).
const MOVED: [(&str, &str, &str); 3] = [
    ("flow", "fused_kernels", "[runtime] kernels = \"fused\" or \"composed\""),
    ("flow", "spin_wait", "[runtime] spin_wait"),
    ("model", "mapper_layer_norm", "[model] mapper_collector_layer_norm"),
];

/// Where a command's config comes from: a preset, optionally overlaid by a
/// TOML file (or TOML text in memory). The one way every command loads its
/// config.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// Preset to start from (the default preset when None and the file
    /// names none).
    pub preset: Option<Preset>,
    /// TOML file whose keys override the preset.
    pub file: Option<PathBuf>,
    /// TOML text in memory, read as a file would be when `file` is None
    /// (the Python package's `config` dict, written out as TOML).
    pub text: Option<ConfigText>,
}

/// TOML text standing for a config file, with the name its messages give
/// it (where a file's messages give its path).
#[derive(Debug, Clone)]
pub struct ConfigText {
    pub origin: String,
    pub toml: String,
}

/// A loaded, validated config, the execution settings of its file's
/// `[runtime]` section, and the keys its file set explicitly.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: EnergyConfig,
    /// The file's `[runtime]` section (defaults when it has none).
    pub runtime: RuntimeConfig,
    /// Dotted keys set by the file ("train.learning_rate", ...).
    pub file_keys: BTreeSet<String>,
}

impl LoadedConfig {
    /// True when the file sets `key` (dotted, e.g. "model.input_embedding_dim").
    pub fn file_sets(&self, key: &str) -> bool {
        self.file_keys.contains(key)
    }

    /// Parses TOML on top of preset `base` (see
    /// [`EnergyConfig::from_toml_str`]), with its `[runtime]` section.
    pub fn parse(text: &str, base: Preset, origin: &str) -> Result<Self> {
        let mut overlay: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::input_quoting(origin, &e.to_string()))?;
        let base = match overlay.remove("preset") {
            Some(toml::Value::String(s)) => Preset::parse(&s)?,
            Some(other) => return Err(Error::config("preset", other, "expected a string")),
            None => base,
        };
        let runtime_table = match overlay.remove(RUNTIME) {
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                return Err(Error::input(format!(
                    "{origin}: `{RUNTIME}` must be a section ([{RUNTIME}]), not {}",
                    other.type_str()
                )));
            }
            None => toml::Table::new(),
        };
        let mut merged = section_table(&EnergyConfig::preset(base));
        check_sections(&overlay, &merged, origin)?;
        refuse_moved(&overlay, origin)?;
        let mut file_keys = BTreeSet::new();
        dotted_keys(&overlay, "", &mut file_keys);
        dotted_keys(&runtime_table, "runtime.", &mut file_keys);
        merge(&mut merged, overlay);
        let config: EnergyConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| Error::input_quoting(origin, &e.to_string()))?;
        config.validate()?;
        let runtime: RuntimeConfig = toml::Value::Table(runtime_table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::input_quoting(format!("{origin}: [runtime]"), &e.to_string()))?;
        runtime.validate()?;
        Ok(LoadedConfig {
            config,
            runtime,
            file_keys,
        })
    }
}

/// The execution section's name.
const RUNTIME: &str = "runtime";

impl ConfigSource {
    /// Loads and validates the config.
    pub fn load(&self) -> Result<LoadedConfig> {
        let preset = self.preset.unwrap_or_default();
        match (&self.file, &self.text) {
            (Some(path), _) => {
                let text = read_config_file(path)?;
                LoadedConfig::parse(&text, preset, &path.display().to_string())
            }
            (None, Some(t)) => LoadedConfig::parse(&t.toml, preset, &t.origin),
            (None, None) => {
                let config = EnergyConfig::preset(preset);
                config.validate()?;
                Ok(LoadedConfig {
                    config,
                    runtime: RuntimeConfig::default(),
                    file_keys: BTreeSet::new(),
                })
            }
        }
    }

    /// True when neither a preset nor a file (nor text) is named.
    pub fn is_default(&self) -> bool {
        self.preset.is_none() && self.file.is_none() && self.text.is_none()
    }

    /// How messages name this source: `--config FILE`, the text's origin,
    /// or `--preset P`.
    pub fn describe(&self) -> String {
        match (&self.file, &self.text) {
            (Some(f), _) => format!("--config {}", f.display()),
            (None, Some(t)) => t.origin.clone(),
            (None, None) => format!("--preset {}", self.preset.unwrap_or_default().name()),
        }
    }
}

fn read_config_file(path: &Path) -> Result<String> {
    crate::io::read_text(path)
}

/// Refuses a top-level key that is not a section, saying which section a
/// known field moved to (the flat layout of checkpoint format 1).
fn check_sections(overlay: &toml::Table, preset: &toml::Table, origin: &str) -> Result<()> {
    for (key, value) in overlay {
        if preset.contains_key(key) {
            if value.is_table() {
                continue;
            }
            // One key of the section with its preset value, as an example.
            let section = preset.get(key).and_then(|t| t.as_table());
            let example = section
                .and_then(|t| {
                    ["lattice_width", "lattice_depth", "batch_size"]
                        .iter()
                        .find_map(|k| t.get_key_value(*k))
                        .or_else(|| t.iter().next())
                })
                .map(|(k, v)| format!(" (e.g. `[{key}]` then `{k} = {v}` on the next line)"))
                .unwrap_or_default();
            return Err(Error::input(format!(
                "{origin}: `{key}` is a section, not a value: write `[{key}]` on a line of its own and its keys below it{example}"
            )));
        }
        let runtime = section_table(&RuntimeConfig::default());
        if runtime.contains_key(key) || key == "threads" {
            return Err(Error::input(format!(
                "{origin}: key `{key}` belongs in the [{RUNTIME}] section (write it under [{RUNTIME}])"
            )));
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
            "{origin}: unknown key `{key}` (expected `preset` or a [model], [flow], [train] or [runtime] section)"
        )));
    }
    Ok(())
}

/// Refuses a field that moved to another section or name ([`MOVED`]).
fn refuse_moved(overlay: &toml::Table, origin: &str) -> Result<()> {
    for (section, key, now) in MOVED {
        if overlay
            .get(section)
            .and_then(|t| t.as_table())
            .is_some_and(|t| t.contains_key(key))
        {
            return Err(Error::input(format!(
                "{origin}: `{section}.{key}` is no longer a [{section}] field: it is now {now}"
            )));
        }
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
    fn a_runtime_section_is_read_apart_from_the_run() {
        let text = "[runtime]\nkernels = \"composed\"\nthreads = 1\nspin_wait = false\ndevice = \"cpu\"\n[train]\nlearning_rate = 0.01\n";
        let l = LoadedConfig::parse(text, Preset::Debug, "t.toml").unwrap();
        assert_eq!(l.runtime.kernels, crate::kernels::Kernels::Composed);
        assert_eq!(l.runtime.threads, Some(1));
        assert!(!l.runtime.spin_wait);
        assert_eq!(l.config, {
            let mut c = EnergyConfig::preset(Preset::Debug);
            c.train.learning_rate = 0.01;
            c
        });
        assert!(l.file_sets("runtime.threads") && l.file_sets("train.learning_rate"));
        // Without the section: the defaults.
        let l = LoadedConfig::parse("", Preset::Debug, "t.toml").unwrap();
        assert_eq!(l.runtime, RuntimeConfig::default());
        for (text, want) in [
            ("[runtime]\nthreads = 0\n", "runtime.threads"),
            ("[runtime]\nkernels = \"fast\"\n", "t.toml: [runtime]"),
            ("[runtime]\ncolour = 1\n", "colour"),
            ("runtime = 3\n", "t.toml: `runtime` must be a section"),
            (
                "threads = 2\n",
                "t.toml: key `threads` belongs in the [runtime] section",
            ),
            (
                "spin_wait = false\n",
                "t.toml: key `spin_wait` belongs in the [runtime] section",
            ),
        ] {
            let e = LoadedConfig::parse(text, Preset::Debug, "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn text_in_memory_loads_as_a_file_would_under_its_origin() {
        let source = |toml: &str| ConfigSource {
            preset: Some(Preset::Debug),
            file: None,
            text: Some(ConfigText {
                origin: "config".to_string(),
                toml: toml.to_string(),
            }),
        };
        let l = source("[model]\nlattice_width = 8\n[runtime]\nthreads = 1\n")
            .load()
            .unwrap();
        assert_eq!(l.config.model.lattice_width, 8);
        assert_eq!(l.config.flow.lattice_depth, 10, "the preset underneath");
        assert_eq!(l.runtime.threads, Some(1));
        assert!(l.file_sets("model.lattice_width"));
        assert!(!source("").is_default());
        assert_eq!(source("").describe(), "config");
        let e = source("[lattice]\nwidth = 8\n").load().unwrap_err().to_string();
        assert!(e.starts_with("config: unknown key `lattice`"), "{e}");
    }

    #[test]
    fn a_moved_field_is_refused_naming_where_it_went() {
        for (text, now) in [
            ("[flow]\nfused_kernels = false\n", "[runtime] kernels"),
            ("[flow]\nspin_wait = true\n", "[runtime] spin_wait"),
            ("[model]\nmapper_layer_norm = false\n", "mapper_collector_layer_norm"),
        ] {
            let e = EnergyConfig::from_toml_str(text, Preset::Debug, "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("t.toml") && e.contains(now), "{text}: {e}");
        }
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
        // A section written as a value says what a section is, and shows one.
        let e = EnergyConfig::from_toml_str("model = 5\n", Preset::Debug, "t.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "t.toml: `model` is a section, not a value: write `[model]` on a line of its own and its keys below it (e.g. `[model]` then `lattice_width = 20` on the next line)"
        );
        let e = EnergyConfig::from_toml_str("[lattice]\nwidth = 8\n", Preset::Debug, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `lattice`"), "{e}");
    }
}
