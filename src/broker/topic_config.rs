//! The topic-level configs Kafka knows, their defaults, and validation of user-supplied values.

use std::collections::BTreeMap;

use crate::log::{LogConfig, TimestampType};

/// A config value's type, for validation.
#[derive(Clone, Copy)]
enum Kind {
    Long,
    Int,
    Bool,
    Ratio,
    CleanupPolicy,
    TimestampType,
    Compression,
    Text,
}

/// Kafka's topic configs (4.x): the type of their values and the broker setting whose value a topic
/// gets when it sets none (Kafka's `ServerTopicConfigSynonyms`). Defaults come from `defaults`.
const TOPIC_CONFIGS: &[(&str, Kind, Option<&str>)] = &[
    (
        "cleanup.policy",
        Kind::CleanupPolicy,
        Some("log.cleanup.policy"),
    ),
    (
        "compression.type",
        Kind::Compression,
        Some("compression.type"),
    ),
    (
        "delete.retention.ms",
        Kind::Long,
        Some("log.cleaner.delete.retention.ms"),
    ),
    (
        "file.delete.delay.ms",
        Kind::Long,
        Some("log.segment.delete.delay.ms"),
    ),
    (
        "flush.messages",
        Kind::Long,
        Some("log.flush.interval.messages"),
    ),
    ("flush.ms", Kind::Long, Some("log.flush.interval.ms")),
    ("follower.replication.throttled.replicas", Kind::Text, None),
    (
        "index.interval.bytes",
        Kind::Int,
        Some("log.index.interval.bytes"),
    ),
    ("leader.replication.throttled.replicas", Kind::Text, None),
    (
        "local.retention.bytes",
        Kind::Long,
        Some("log.local.retention.bytes"),
    ),
    (
        "local.retention.ms",
        Kind::Long,
        Some("log.local.retention.ms"),
    ),
    (
        "max.compaction.lag.ms",
        Kind::Long,
        Some("log.cleaner.max.compaction.lag.ms"),
    ),
    ("max.message.bytes", Kind::Int, Some("message.max.bytes")),
    (
        "message.timestamp.after.max.ms",
        Kind::Long,
        Some("log.message.timestamp.after.max.ms"),
    ),
    (
        "message.timestamp.before.max.ms",
        Kind::Long,
        Some("log.message.timestamp.before.max.ms"),
    ),
    (
        "message.timestamp.type",
        Kind::TimestampType,
        Some("log.message.timestamp.type"),
    ),
    (
        "min.cleanable.dirty.ratio",
        Kind::Ratio,
        Some("log.cleaner.min.cleanable.ratio"),
    ),
    (
        "min.compaction.lag.ms",
        Kind::Long,
        Some("log.cleaner.min.compaction.lag.ms"),
    ),
    (
        "min.insync.replicas",
        Kind::Int,
        Some("min.insync.replicas"),
    ),
    ("preallocate", Kind::Bool, Some("log.preallocate")),
    ("remote.storage.enable", Kind::Bool, None),
    ("retention.bytes", Kind::Long, Some("log.retention.bytes")),
    ("retention.ms", Kind::Long, Some("log.retention.ms")),
    ("segment.bytes", Kind::Int, Some("log.segment.bytes")),
    (
        "segment.index.bytes",
        Kind::Int,
        Some("log.index.size.max.bytes"),
    ),
    ("segment.jitter.ms", Kind::Long, Some("log.roll.jitter.ms")),
    ("segment.ms", Kind::Long, Some("log.roll.ms")),
    (
        "unclean.leader.election.enable",
        Kind::Bool,
        Some("unclean.leader.election.enable"),
    ),
];

/// One topic config as DescribeConfigs reports it.
pub struct TopicConfigInfo {
    pub name: &'static str,
    /// Kafka's `ConfigType` of the value (DescribeConfigs v3+).
    pub config_type: i8,
    /// The broker setting that supplies the value when the topic sets none.
    pub broker_synonym: Option<&'static str>,
    /// A comma-separated list (IncrementalAlterConfigs may append to it and subtract from it).
    pub is_list: bool,
}

/// Every topic config Kafka knows, in name order.
pub fn topic_configs() -> impl Iterator<Item = TopicConfigInfo> {
    TOPIC_CONFIGS
        .iter()
        .map(|(name, kind, synonym)| TopicConfigInfo {
            name,
            config_type: kind.config_type(),
            broker_synonym: *synonym,
            is_list: matches!(kind, Kind::CleanupPolicy | Kind::Text),
        })
}

impl Kind {
    /// Kafka's `DescribeConfigsResponse.ConfigType`.
    fn config_type(self) -> i8 {
        const BOOLEAN: i8 = 1;
        const STRING: i8 = 2;
        const INT: i8 = 3;
        const LONG: i8 = 5;
        const DOUBLE: i8 = 6;
        const LIST: i8 = 7;
        match self {
            Kind::Long => LONG,
            Kind::Int => INT,
            Kind::Bool => BOOLEAN,
            Kind::Ratio => DOUBLE,
            Kind::CleanupPolicy | Kind::Text => LIST,
            Kind::TimestampType | Kind::Compression => STRING,
        }
    }
}

/// Every topic config with the value a topic gets when it sets none (the broker's log defaults).
pub fn defaults(log: &LogConfig) -> BTreeMap<&'static str, String> {
    let ts = match log.timestamp_type {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    };
    let long_max = i64::MAX.to_string();
    [
        ("cleanup.policy", "delete".to_string()),
        ("compression.type", "producer".into()),
        ("delete.retention.ms", "86400000".into()),
        ("file.delete.delay.ms", "60000".into()),
        ("flush.messages", long_max.clone()),
        ("flush.ms", long_max.clone()),
        ("follower.replication.throttled.replicas", String::new()),
        ("index.interval.bytes", log.index_interval_bytes.to_string()),
        ("leader.replication.throttled.replicas", String::new()),
        ("local.retention.bytes", "-2".into()),
        ("local.retention.ms", "-2".into()),
        ("max.compaction.lag.ms", long_max.clone()),
        ("max.message.bytes", log.max_message_bytes.to_string()),
        (
            "message.timestamp.after.max.ms",
            log.timestamp_after_max_ms.to_string(),
        ),
        (
            "message.timestamp.before.max.ms",
            log.timestamp_before_max_ms.to_string(),
        ),
        ("message.timestamp.type", ts.into()),
        ("min.cleanable.dirty.ratio", "0.5".into()),
        ("min.compaction.lag.ms", "0".into()),
        ("min.insync.replicas", "1".into()),
        ("preallocate", "false".into()),
        ("remote.storage.enable", "false".into()),
        ("retention.bytes", log.retention_bytes.to_string()),
        ("retention.ms", log.retention_ms.to_string()),
        ("segment.bytes", log.segment_bytes.to_string()),
        ("segment.index.bytes", log.segment_index_bytes.to_string()),
        ("segment.jitter.ms", "0".into()),
        ("segment.ms", log.segment_ms.to_string()),
        ("unclean.leader.election.enable", "false".into()),
    ]
    .into_iter()
    .collect()
}

/// Checks one config as Kafka would: the name must be a topic config and the value must parse.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some((_, kind, _)) = TOPIC_CONFIGS.iter().find(|(n, _, _)| *n == name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let ok = match kind {
        Kind::Long => value.parse::<i64>().is_ok(),
        Kind::Int => value.parse::<i32>().is_ok(),
        Kind::Bool => matches!(value, "true" | "false"),
        Kind::Ratio => value.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r)),
        Kind::CleanupPolicy => {
            !value.is_empty()
                && value
                    .split(',')
                    .all(|p| matches!(p.trim(), "delete" | "compact"))
        }
        Kind::TimestampType => matches!(value, "CreateTime" | "LogAppendTime"),
        Kind::Compression => matches!(
            value,
            "uncompressed" | "zstd" | "lz4" | "snappy" | "gzip" | "producer"
        ),
        Kind::Text => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid value {value} for configuration {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_config_has_a_default_that_validates() {
        let d = defaults(&LogConfig::default());
        assert_eq!(d.len(), TOPIC_CONFIGS.len());
        for (name, value) in &d {
            validate(name, value).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn rejects_unknown_names_and_bad_values() {
        assert!(validate("no.such.config", "1").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
    }
}
