//! What DescribeConfigs reports: a topic's configs (its own overrides, else the broker's defaults)
//! and this broker's settings under Kafka's names, each with where its value comes from: a topic
//! override, a dynamic broker config (this broker's, then the cluster-wide default), the static
//! config file, or Kafka's default.

use std::collections::BTreeMap;

use super::dynamic::{is_dynamic, DynamicConfigs};
use super::topic_config::{defaults, topic_configs};
use crate::cluster::TopicInfo;
use crate::config::{Config, KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS};
use crate::log::LogConfig;

/// Kafka's `ConfigSource`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

/// One place a config's value can come from (DescribeConfigs `include_synonyms`).
#[derive(Clone, Debug)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

#[derive(Clone, Debug)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub read_only: bool,
    /// Kafka's `ConfigType` (DescribeConfigs v3+).
    pub config_type: i8,
    /// Where the value could come from, the one in force first, as Kafka orders them.
    pub synonyms: Vec<Synonym>,
}

impl ConfigEntry {
    fn from_synonyms(name: &str, config_type: i8, read_only: bool, synonyms: Vec<Synonym>) -> Self {
        let (value, source) = synonyms
            .first()
            .map(|s| (s.value.clone(), s.source))
            .unwrap_or((String::new(), ConfigSource::DefaultConfig));
        ConfigEntry {
            name: name.to_string(),
            value,
            source,
            read_only,
            config_type,
            synonyms,
        }
    }
}

/// The dynamic synonyms of broker setting `name`, in Kafka's order: this broker's, the cluster's.
fn dynamic_synonyms(name: &str, dynamic: &DynamicConfigs) -> Vec<Synonym> {
    let mut out = Vec::new();
    if let Some(v) = dynamic.broker.get(name) {
        out.push(Synonym {
            name: name.to_string(),
            value: v.clone(),
            source: ConfigSource::DynamicBrokerConfig,
        });
    }
    if let Some(v) = dynamic.cluster.get(name) {
        out.push(Synonym {
            name: name.to_string(),
            value: v.clone(),
            source: ConfigSource::DynamicDefaultBrokerConfig,
        });
    }
    out
}

/// Every topic config of `topic`: its override, else the broker's dynamic setting (its own, then
/// the cluster-wide default), else its static setting (when the broker's config file changed it
/// from Kafka's default), else Kafka's default. `broker_log` is the static config's log defaults.
pub fn describe_topic(
    topic: &TopicInfo,
    broker_log: &LogConfig,
    dynamic: &DynamicConfigs,
) -> Vec<ConfigEntry> {
    let broker = defaults(broker_log);
    let kafka = defaults(&LogConfig::default());
    topic_configs()
        .map(|c| {
            let mut synonyms = Vec::new();
            if let Some(v) = topic.configs.get(c.name) {
                synonyms.push(Synonym {
                    name: c.name.to_string(),
                    value: v.clone(),
                    source: ConfigSource::TopicConfig,
                });
            }
            let default_name = c.broker_synonym.unwrap_or(c.name);
            if let Some(name) = c.broker_synonym {
                synonyms.extend(dynamic_synonyms(name, dynamic));
            }
            let kafka_value = kafka.get(c.name).cloned().unwrap_or_default();
            if let (Some(name), Some(v)) = (c.broker_synonym, broker.get(c.name)) {
                if *v != kafka_value {
                    synonyms.push(Synonym {
                        name: name.to_string(),
                        value: v.clone(),
                        source: ConfigSource::StaticBrokerConfig,
                    });
                }
            }
            synonyms.push(Synonym {
                name: default_name.to_string(),
                value: kafka_value,
                source: ConfigSource::DefaultConfig,
            });
            ConfigEntry::from_synonyms(c.name, c.config_type, false, synonyms)
        })
        .collect()
}

const BOOLEAN: i8 = 1;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

/// This broker's settings under Kafka's names with their `ConfigType`: its own settings, then the
/// broker-wide defaults of the topic configs.
fn broker_settings(c: &Config, advertised: &str) -> BTreeMap<String, (String, i8)> {
    let limits = &c.limits;
    let mut out: BTreeMap<String, (String, i8)> = [
        ("node.id", c.node_id.to_string(), INT),
        ("broker.id", c.node_id.to_string(), INT),
        ("process.roles", "broker,controller".into(), LIST),
        (
            "listeners",
            format!("{}://{}", c.security_protocol(), c.listen),
            LIST,
        ),
        (
            "advertised.listeners",
            format!("{}://{advertised}", c.security_protocol()),
            LIST,
        ),
        ("log.dirs", c.data_dir.display().to_string(), LIST),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            BOOLEAN,
        ),
        ("num.partitions", c.num_partitions.to_string(), INT),
        (
            "default.replication.factor",
            c.default_replication_factor.to_string(),
            INT,
        ),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            INT,
        ),
        ("max.connections", c.max_connections.to_string(), INT),
        (
            "max.connections.per.ip",
            limits.max_connections_per_ip.to_string(),
            INT,
        ),
        (
            "connections.max.idle.ms",
            limits.connections_max_idle_ms.to_string(),
            LONG,
        ),
        (
            "queued.max.request.bytes",
            limits.queued_max_request_bytes.to_string(),
            LONG,
        ),
        (
            "log.retention.check.interval.ms",
            c.retention_check_interval_ms.to_string(),
            LONG,
        ),
        (
            "log.cleaner.backoff.ms",
            c.log_cleaner_backoff_ms.to_string(),
            LONG,
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
            INT,
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout_ms.to_string(),
            INT,
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout_ms.to_string(),
            INT,
        ),
        ("group.max.size", c.group_max_size.to_string(), INT),
        (
            "offsets.topic.num.partitions",
            c.offsets_topic_num_partitions.to_string(),
            INT,
        ),
        (
            "offsets.topic.segment.bytes",
            c.offsets_topic_segment_bytes.to_string(),
            INT,
        ),
        (
            "offsets.retention.minutes",
            c.offsets_retention_minutes.to_string(),
            INT,
        ),
        (
            "offsets.retention.check.interval.ms",
            c.offsets_retention_check_interval_ms.to_string(),
            LONG,
        ),
        (
            "offset.metadata.max.bytes",
            c.offset_metadata_max_bytes.to_string(),
            INT,
        ),
        (
            "producer.id.expiration.ms",
            c.producer_id_expiration_ms.to_string(),
            INT,
        ),
    ]
    .into_iter()
    .map(|(n, v, t)| (n.to_string(), (v, t)))
    .collect();
    if let Ok(log) = c.log_config() {
        let values = defaults(&log);
        for t in topic_configs() {
            if let (Some(name), Some(v)) = (t.broker_synonym, values.get(t.name)) {
                out.entry(name.to_string())
                    .or_insert((v.clone(), t.config_type));
            }
        }
    }
    out
}

/// The broker's settings: set dynamically (for this broker, then cluster-wide), else in its config
/// file or flags (a value other than Kafka's default, or an explicit advertised address), else
/// Kafka's default. Only the dynamic ones (`dynamic::DYNAMIC_CONFIGS`) are not read-only.
/// `group.initial.rebalance.delay.ms` defaults to 0 as Kafka's shipped `server.properties` sets
/// it, so it is reported as Kafka reports that file's value: static, over the code default.
pub fn describe_broker(
    config: &Config,
    advertised: &str,
    dynamic: &DynamicConfigs,
) -> Vec<ConfigEntry> {
    let ours = broker_settings(config, advertised);
    let kafka_defaults = Config {
        group_initial_rebalance_delay_ms: KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS,
        ..Config::default()
    };
    let stock = broker_settings(&kafka_defaults, advertised);
    ours.into_iter()
        .map(|(name, (value, config_type))| {
            let default = stock.get(&name).map(|(v, _)| v.clone());
            let set = if name == "advertised.listeners" {
                config.advertise.is_some()
            } else {
                default.as_ref() != Some(&value)
            };
            let mut synonyms = dynamic_synonyms(&name, dynamic);
            if set {
                synonyms.push(Synonym {
                    name: name.clone(),
                    value,
                    source: ConfigSource::StaticBrokerConfig,
                });
            }
            if let Some(d) = default {
                synonyms.push(Synonym {
                    name: name.clone(),
                    value: d,
                    source: ConfigSource::DefaultConfig,
                });
            }
            ConfigEntry::from_synonyms(&name, config_type, !is_dynamic(&name), synonyms)
        })
        .collect()
}

/// The cluster-wide dynamic defaults (the BROKER resource ""): only the settings that have one,
/// with their synonyms other than a single broker's value.
pub fn describe_cluster_default(
    config: &Config,
    advertised: &str,
    dynamic: &DynamicConfigs,
) -> Vec<ConfigEntry> {
    let cluster_only = DynamicConfigs {
        cluster: dynamic.cluster.clone(),
        broker: BTreeMap::new(),
    };
    describe_broker(config, advertised, &cluster_only)
        .into_iter()
        .filter(|e| dynamic.cluster.contains_key(&e.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(configs: &[(&str, &str)]) -> TopicInfo {
        TopicInfo {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            partitions: Vec::new(),
            internal: false,
        }
    }

    fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
        entries.iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn topic_values_come_from_the_override_then_the_broker_then_kafka() {
        let broker = LogConfig {
            segment_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let entries = describe_topic(
            &topic(&[("retention.ms", "1000")]),
            &broker,
            &DynamicConfigs::default(),
        );
        let r = entry(&entries, "retention.ms");
        assert_eq!(
            (r.value.as_str(), r.source),
            ("1000", ConfigSource::TopicConfig)
        );
        let names: Vec<_> = r
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.source))
            .collect();
        assert_eq!(
            names,
            [
                ("retention.ms", ConfigSource::TopicConfig),
                ("log.retention.ms", ConfigSource::DefaultConfig)
            ]
        );
        let s = entry(&entries, "segment.bytes");
        assert_eq!(
            (s.value.as_str(), s.source),
            ("1048576", ConfigSource::StaticBrokerConfig)
        );
        assert_eq!(s.synonyms[0].name, "log.segment.bytes");
        let c = entry(&entries, "cleanup.policy");
        assert_eq!(
            (c.value.as_str(), c.source),
            ("delete", ConfigSource::DefaultConfig)
        );
        assert!(!c.read_only);
    }

    #[test]
    fn broker_settings_report_what_the_file_changed() {
        let config = Config {
            num_partitions: 3,
            ..Config::default()
        };
        let entries = describe_broker(&config, "127.0.0.1:9092", &DynamicConfigs::default());
        let n = entry(&entries, "num.partitions");
        assert_eq!(
            (n.value.as_str(), n.source),
            ("3", ConfigSource::StaticBrokerConfig)
        );
        let r = entry(&entries, "log.retention.ms");
        assert_eq!(
            (r.value.as_str(), r.source),
            ("604800000", ConfigSource::DefaultConfig)
        );
        let g = entry(&entries, "group.initial.rebalance.delay.ms");
        assert_eq!(
            (g.value.as_str(), g.source, g.synonyms[1].value.as_str()),
            ("0", ConfigSource::StaticBrokerConfig, "3000")
        );
        assert!(entries.iter().all(|e| e.read_only != is_dynamic(&e.name)));
        let a = entry(&entries, "advertised.listeners");
        assert_eq!(a.value, "PLAINTEXT://127.0.0.1:9092");
    }

    #[test]
    fn dynamic_values_come_before_the_file_in_kafkas_order() {
        let dynamic = DynamicConfigs {
            cluster: [("log.retention.ms".to_string(), "1000".to_string())].into(),
            broker: [("log.retention.ms".to_string(), "2000".to_string())].into(),
        };
        let config = Config::default();
        let entries = describe_broker(&config, "127.0.0.1:9092", &dynamic);
        let r = entry(&entries, "log.retention.ms");
        let sources: Vec<_> = r
            .synonyms
            .iter()
            .map(|s| (s.value.as_str(), s.source))
            .collect();
        assert_eq!(
            sources,
            [
                ("2000", ConfigSource::DynamicBrokerConfig),
                ("1000", ConfigSource::DynamicDefaultBrokerConfig),
                ("604800000", ConfigSource::DefaultConfig)
            ]
        );
        assert!(!r.read_only);
        let defaults = describe_cluster_default(&config, "127.0.0.1:9092", &dynamic);
        assert_eq!(defaults.len(), 1);
        assert_eq!(
            (defaults[0].value.as_str(), defaults[0].source),
            ("1000", ConfigSource::DynamicDefaultBrokerConfig)
        );
        let t = describe_topic(&topic(&[]), &LogConfig::default(), &dynamic);
        let r = entry(&t, "retention.ms");
        assert_eq!(
            (r.value.as_str(), r.source, r.synonyms[0].name.as_str()),
            (
                "2000",
                ConfigSource::DynamicBrokerConfig,
                "log.retention.ms"
            )
        );
    }
}
