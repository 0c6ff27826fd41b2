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

/// Kafka's topic configs (4.x) with the type of their values. Defaults come from `defaults`.
const TOPIC_CONFIGS: &[(&str, Kind)] = &[
    ("cleanup.policy", Kind::CleanupPolicy),
    ("compression.type", Kind::Compression),
    ("delete.retention.ms", Kind::Long),
    ("file.delete.delay.ms", Kind::Long),
    ("flush.messages", Kind::Long),
    ("flush.ms", Kind::Long),
    ("follower.replication.throttled.replicas", Kind::Text),
    ("index.interval.bytes", Kind::Int),
    ("leader.replication.throttled.replicas", Kind::Text),
    ("local.retention.bytes", Kind::Long),
    ("local.retention.ms", Kind::Long),
    ("max.compaction.lag.ms", Kind::Long),
    ("max.message.bytes", Kind::Int),
    ("message.timestamp.after.max.ms", Kind::Long),
    ("message.timestamp.before.max.ms", Kind::Long),
    ("message.timestamp.type", Kind::TimestampType),
    ("min.cleanable.dirty.ratio", Kind::Ratio),
    ("min.compaction.lag.ms", Kind::Long),
    ("min.insync.replicas", Kind::Int),
    ("preallocate", Kind::Bool),
    ("remote.storage.enable", Kind::Bool),
    ("retention.bytes", Kind::Long),
    ("retention.ms", Kind::Long),
    ("segment.bytes", Kind::Int),
    ("segment.index.bytes", Kind::Int),
    ("segment.jitter.ms", Kind::Long),
    ("segment.ms", Kind::Long),
    ("unclean.leader.election.enable", Kind::Bool),
];

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
        ("message.timestamp.after.max.ms", "3600000".into()),
        ("message.timestamp.before.max.ms", long_max),
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
    let Some((_, kind)) = TOPIC_CONFIGS.iter().find(|(n, _)| *n == name) else {
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
