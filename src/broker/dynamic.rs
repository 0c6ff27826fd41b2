//! Dynamic broker configs (KIP-226): the topic-default settings that IncrementalAlterConfigs and
//! AlterConfigs may change on the BROKER resource, cluster-wide ("") or for one broker (its id).
//! They are stored in the metadata image under Kafka's broker names; the effective log defaults
//! are the static config file, then the cluster-wide values, then this broker's own.

use std::collections::BTreeMap;

use super::topic_config::topic_configs;
use crate::cluster::MetadataImage;
use crate::log::{LogConfig, LogError};

/// The broker settings that can change while vltava runs (each is a topic config's default, as
/// Kafka's `DynamicLogConfig` has them). Every other broker setting is read-only.
pub const DYNAMIC_CONFIGS: &[&str] = &[
    "log.cleanup.policy",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "message.max.bytes",
];

/// Whether a broker setting can be changed at run time.
pub fn is_dynamic(name: &str) -> bool {
    DYNAMIC_CONFIGS.contains(&name)
}

/// The topic config a dynamic broker setting is the default of (Kafka's synonyms).
pub fn topic_name(broker_name: &str) -> Option<&'static str> {
    if !is_dynamic(broker_name) {
        return None;
    }
    topic_configs()
        .find(|c| c.broker_synonym == Some(broker_name))
        .map(|c| c.name)
}

/// The dynamic broker configs that apply to one broker, under Kafka's broker names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicConfigs {
    /// The cluster-wide defaults (resource name "").
    pub cluster: BTreeMap<String, String>,
    /// This broker's own values (resource name: its id).
    pub broker: BTreeMap<String, String>,
}

impl DynamicConfigs {
    pub fn from_image(image: &MetadataImage, node_id: i32) -> DynamicConfigs {
        let get = |resource: &str| {
            image
                .broker_configs
                .get(resource)
                .cloned()
                .unwrap_or_default()
        };
        DynamicConfigs {
            cluster: get(""),
            broker: get(&node_id.to_string()),
        }
    }

    /// The values as topic config overrides: the cluster-wide ones, then this broker's over them.
    pub fn topic_overrides(&self) -> BTreeMap<&'static str, String> {
        let mut out = BTreeMap::new();
        for (name, value) in self.cluster.iter().chain(&self.broker) {
            if let Some(topic) = topic_name(name) {
                out.insert(topic, value.clone());
            }
        }
        out
    }

    /// The log defaults of this broker: `static_log` (the config file) with these values applied.
    pub fn effective(&self, static_log: &LogConfig) -> Result<LogConfig, LogError> {
        let overrides = self.topic_overrides();
        static_log.with_overrides(overrides.iter().map(|(k, v)| (*k, v.as_str())))
    }
}

impl super::Broker {
    /// The dynamic broker configs of this broker in the current metadata image.
    pub fn dynamic_configs(&self) -> DynamicConfigs {
        DynamicConfigs::from_image(&self.metadata.image(), self.node_id)
    }

    /// DescribeConfigs' entries for `topic`, with the defaults in force on this broker.
    pub fn describe_topic_configs(
        &self,
        topic: &crate::cluster::TopicInfo,
    ) -> Vec<super::configs::ConfigEntry> {
        super::configs::describe_topic(
            topic,
            self.partitions.static_defaults(),
            &self.dynamic_configs(),
        )
    }
}

/// Kafka's message for settings that cannot change at run time (a Scala `Set`'s rendering).
pub fn not_dynamic_message(names: &[&str]) -> String {
    format!(
        "Cannot update these configs dynamically: Set({})",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_broker_values_win_over_cluster_defaults_over_the_file() {
        let dynamic = DynamicConfigs {
            cluster: [
                ("log.retention.ms".to_string(), "1000".to_string()),
                ("log.segment.bytes".to_string(), "2048".to_string()),
            ]
            .into(),
            broker: [("log.retention.ms".to_string(), "2000".to_string())].into(),
        };
        let file = LogConfig {
            retention_bytes: 77,
            ..LogConfig::default()
        };
        let c = dynamic.effective(&file).unwrap();
        assert_eq!(
            (c.retention_ms, c.segment_bytes, c.retention_bytes),
            (2000, 2048, 77)
        );
        for name in DYNAMIC_CONFIGS {
            assert!(topic_name(name).is_some(), "{name}");
        }
        assert_eq!(topic_name("log.roll.ms"), Some("segment.ms"));
        assert_eq!(topic_name("num.partitions"), None);
        assert_eq!(
            not_dynamic_message(&["node.id", "num.partitions"]),
            "Cannot update these configs dynamically: Set(node.id, num.partitions)"
        );
    }
}
