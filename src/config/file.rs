//! Reading `--config`: vltava's TOML or Kafka's `server.properties`, told apart by extension or
//! content, and the `CLUSTER_ID` environment variable.

use std::path::{Path, PathBuf};

use super::{kafka, properties, Config, ConfigError};

/// The two file formats `--config` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Toml,
    Properties,
}

impl FileFormat {
    /// By extension (`.toml`, `.properties`); otherwise by content: Kafka's keys are dotted
    /// (`node.id=1`), vltava's TOML keys never are and its sections start with `[`, so the first
    /// setting line decides.
    pub fn detect(path: &Path, text: &str) -> FileFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => return FileFormat::Toml,
            Some("properties") => return FileFormat::Properties,
            _ => {}
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'));
        match first {
            Some(line) if !line.starts_with('[') => {
                let key_end = line
                    .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
                    .unwrap_or(line.len());
                if line[..key_end].contains('.') {
                    FileFormat::Properties
                } else {
                    FileFormat::Toml
                }
            }
            _ => FileFormat::Toml,
        }
    }
}

/// A configuration file as read: the configuration, and the Kafka keys it sets that vltava accepts
/// without using (to be named in one log line).
pub struct LoadedFile {
    pub config: Config,
    pub format: FileFormat,
    pub ignored_kafka_keys: Vec<String>,
}

impl Config {
    /// Reads a TOML or `server.properties` file (see [`FileFormat::detect`]); absent keys keep
    /// their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::load_file(path).map(|l| l.config)
    }

    /// [`Config::from_file`], also returning the Kafka keys the file sets that vltava ignores.
    pub fn load_file(path: &Path) -> Result<LoadedFile, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // Java reads properties files as ISO-8859-1; UTF-8 (and so ASCII) files read the same.
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| e.into_bytes().iter().map(|&b| char::from(b)).collect());
        let format = FileFormat::detect(path, &text);
        match format {
            FileFormat::Toml => Ok(LoadedFile {
                config: toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_path_buf(),
                    source,
                })?,
                format,
                ignored_kafka_keys: Vec::new(),
            }),
            FileFormat::Properties => {
                let props = properties::parse(&text).map_err(|reason| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    reason,
                })?;
                let loaded = kafka::load(&props)?;
                Ok(LoadedFile {
                    config: loaded.config,
                    format,
                    ignored_kafka_keys: loaded.ignored,
                })
            }
        }
    }

    /// Parses `server.properties` text (for tests and tools).
    pub fn from_properties(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let props = properties::parse(text).map_err(|reason| ConfigError::Syntax {
            path: PathBuf::from("<text>"),
            reason,
        })?;
        kafka::load(&props).map(|l| (l.config, l.ignored))
    }

    /// The `CLUSTER_ID` environment variable (as Kafka's container images read it): used when the
    /// file sets no `cluster.id`; a different one is an error.
    pub fn apply_cluster_id_env(&mut self, env: Option<String>) -> Result<(), ConfigError> {
        let Some(env) = env.filter(|e| !e.trim().is_empty()) else {
            return Ok(());
        };
        match &self.cluster_id {
            Some(own) if own != env.trim() => Err(ConfigError::Invalid(format!(
                "cluster.id: {own:?} differs from the CLUSTER_ID environment variable {env:?}"
            ))),
            _ => {
                self.cluster_id = Some(env.trim().to_string());
                Ok(())
            }
        }
    }
}
