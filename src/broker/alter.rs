//! Changes to existing topics: more partitions (CreatePartitions) and new config overrides
//! (AlterConfigs, IncrementalAlterConfigs); and to the dynamic broker configs (the same two APIs
//! on the BROKER resource). Each is validated here, then written through Raft; the hosted logs
//! follow when the partition manager reconciles with the new image.

use std::collections::BTreeMap;

use super::dynamic::{is_dynamic, not_dynamic_message, topic_name, DynamicConfigs};
use super::topics::TopicError;
use super::{topic_config, Broker};
use crate::cluster::placement;
use crate::cluster::{CommandResult, MetadataCommand, PartitionInfo, TopicInfo};

/// One IncrementalAlterConfigs operation (Kafka's `AlterConfigOp.OpType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    pub fn from_code(code: i8) -> Option<ConfigOp> {
        match code {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }
}

impl Broker {
    fn existing_topic(&self, name: &str) -> Result<TopicInfo, TopicError> {
        self.metadata
            .image()
            .topics
            .get(name)
            .cloned()
            .ok_or(TopicError::UnknownTopic)
    }

    /// Validates growing `name` to `count` partitions and places the new replicas (`assignments`:
    /// one replica list per new partition, or `None` for the broker's placement). Nothing is written.
    pub fn plan_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
    ) -> Result<Vec<PartitionInfo>, TopicError> {
        let image = self.metadata.image();
        let topic = image.topics.get(name).ok_or(TopicError::UnknownTopic)?;
        if topic.internal {
            // The coordinator of a group is found by hashing into the offsets topic's partitions.
            return Err(TopicError::InvalidRequest(format!(
                "Cannot add partitions to the internal topic {name}"
            )));
        }
        let current = topic.partitions.len();
        let wanted = usize::try_from(count).unwrap_or(0);
        if wanted < current {
            return Err(TopicError::InvalidPartitionCount(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        if wanted == current {
            return Err(TopicError::InvalidPartitionCount(format!(
                "Topic already has {current} partition(s)."
            )));
        }
        let added = wanted - current;
        let existing: usize = image.topics.values().map(|t| t.partitions.len()).sum();
        let max = self.config.limits.max_partitions;
        if existing.saturating_add(added) > max {
            return Err(TopicError::TooManyPartitions {
                requested: added,
                max,
            });
        }
        let brokers: Vec<i32> = image.brokers.keys().copied().collect();
        let rf = topic
            .partitions
            .first()
            .map_or(1, |p| p.replicas.len())
            .max(1);
        if brokers.len() < rf {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "Unable to replicate the new partitions {rf} time(s): only {} broker(s) are registered.",
                brokers.len()
            )));
        }
        let replica_lists: Vec<Vec<i32>> = match assignments {
            Some(lists) => {
                if lists.len() != added {
                    return Err(TopicError::InvalidReplicaAssignment(format!(
                        "Attempted to add {added} additional partitions, but only {} assignments were specified.",
                        lists.len()
                    )));
                }
                for replicas in lists {
                    let mut unique = replicas.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    if replicas.len() != rf
                        || unique.len() != replicas.len()
                        || replicas.iter().any(|b| !brokers.contains(b))
                    {
                        return Err(TopicError::InvalidReplicaAssignment(format!(
                            "Replica assignment {replicas:?} must name {rf} distinct registered broker(s)"
                        )));
                    }
                }
                lists.to_vec()
            }
            // Kafka's placement (round-robin from a random start, rack-aware) over live brokers.
            None => placement::place(&placement::candidates(&image), current, added, rf)?,
        };
        Ok(replica_lists
            .into_iter()
            .enumerate()
            .map(|(i, replicas)| PartitionInfo {
                partition: (current + i) as i32,
                leader: replicas[0],
                leader_epoch: 0,
                isr: replicas.clone(),
                partition_epoch: 0,
                replicas,
            })
            .collect())
    }

    /// Commits planned partitions through Raft and brings the local ones online before returning.
    pub async fn create_partitions(
        &self,
        name: &str,
        partitions: Vec<PartitionInfo>,
    ) -> Result<(), TopicError> {
        let result = self
            .metadata
            .write(MetadataCommand::CreatePartitions {
                name: name.to_string(),
                partitions,
            })
            .await?;
        match result {
            CommandResult::UnknownTopic => return Err(TopicError::UnknownTopic),
            CommandResult::InvalidPartitions => {
                return Err(TopicError::InvalidPartitionCount(
                    "The topic's partitions changed while these were added; retry.".into(),
                ))
            }
            _ => {}
        }
        self.partitions.reconcile(&self.metadata.image());
        Ok(())
    }

    /// The overrides `name` would have after `ops` (IncrementalAlterConfigs), validated. Nothing is written.
    pub fn plan_incremental_configs(
        &self,
        name: &str,
        ops: &[(String, ConfigOp, Option<String>)],
    ) -> Result<BTreeMap<String, String>, TopicError> {
        let topic = self.existing_topic(name)?;
        let mut seen = std::collections::HashSet::new();
        if let Some((dup, _, _)) = ops.iter().find(|(k, _, _)| !seen.insert(k.as_str())) {
            return Err(TopicError::InvalidRequest(format!(
                "Error due to duplicate config keys: {dup}"
            )));
        }
        let defaults = topic_config::defaults(&self.partitions.defaults());
        let mut configs = topic.configs.clone();
        for (key, op, value) in ops {
            let known = topic_config::topic_configs().find(|c| c.name == key.as_str());
            let Some(info) = known else {
                return Err(TopicError::InvalidConfig(format!(
                    "Unknown topic config name: {key}"
                )));
            };
            let value = || {
                value.clone().ok_or_else(|| {
                    TopicError::InvalidRequest(format!("Null value not supported for : {key}"))
                })
            };
            match op {
                ConfigOp::Set => {
                    configs.insert(key.clone(), value()?);
                }
                ConfigOp::Delete => {
                    configs.remove(key);
                }
                ConfigOp::Append | ConfigOp::Subtract => {
                    if !info.is_list {
                        return Err(list_op_refused(*op, key));
                    }
                    let current = configs
                        .get(key)
                        .or_else(|| defaults.get(key.as_str()))
                        .cloned()
                        .unwrap_or_default();
                    let merged = merge_list(&current, &value()?, *op == ConfigOp::Append);
                    configs.insert(key.clone(), merged);
                }
            }
        }
        self.check_configs(&topic, configs)
    }

    /// The overrides `name` would have with AlterConfigs' whole new set, validated.
    pub fn plan_replaced_configs(
        &self,
        name: &str,
        entries: &[(String, Option<String>)],
    ) -> Result<BTreeMap<String, String>, TopicError> {
        let topic = self.existing_topic(name)?;
        let mut configs = BTreeMap::new();
        for (key, value) in entries {
            let value = value.clone().ok_or_else(|| {
                TopicError::InvalidRequest(format!("Null value not supported for : {key}"))
            })?;
            configs.insert(key.clone(), value);
        }
        self.check_configs(&topic, configs)
    }

    /// Every value must be one Kafka accepts, and together they must make a usable log config.
    fn check_configs(
        &self,
        topic: &TopicInfo,
        configs: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, TopicError> {
        for (k, v) in &configs {
            topic_config::validate(k, v).map_err(TopicError::InvalidConfig)?;
        }
        let candidate = TopicInfo {
            configs,
            ..topic.clone()
        };
        self.partitions
            .topic_log_config(&candidate)
            .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        Ok(candidate.configs)
    }

    /// Writes a topic's new overrides through Raft; its hosted logs use them before this returns.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let result = self
            .metadata
            .write(MetadataCommand::SetTopicConfigs {
                name: name.to_string(),
                configs,
            })
            .await?;
        if result == CommandResult::UnknownTopic {
            return Err(TopicError::UnknownTopic);
        }
        self.partitions.reconcile(&self.metadata.image());
        Ok(())
    }
}

impl Broker {
    /// The stored name of a BROKER resource: "" (the cluster-wide defaults) or this broker's id.
    fn broker_resource(&self, name: &str) -> Result<String, TopicError> {
        if name.is_empty() {
            return Ok(String::new());
        }
        match name.parse::<i32>() {
            Ok(id) if id == self.node_id => Ok(id.to_string()),
            _ => Err(TopicError::InvalidRequest(format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                self.node_id
            ))),
        }
    }

    /// The dynamic configs broker resource `name` would have after `ops` (IncrementalAlterConfigs),
    /// validated. Nothing is written.
    pub fn plan_incremental_broker_configs(
        &self,
        name: &str,
        ops: &[(String, ConfigOp, Option<String>)],
    ) -> Result<BTreeMap<String, String>, TopicError> {
        let resource = self.broker_resource(name)?;
        let mut seen = std::collections::HashSet::new();
        if let Some((dup, _, _)) = ops.iter().find(|(k, _, _)| !seen.insert(k.as_str())) {
            return Err(TopicError::InvalidRequest(format!(
                "Error due to duplicate config keys: {dup}"
            )));
        }
        refuse_static(ops.iter().map(|(k, _, _)| k.as_str()))?;
        let in_force = topic_config::defaults(&self.partitions.defaults());
        let mut configs = self
            .metadata
            .image()
            .broker_configs
            .get(&resource)
            .cloned()
            .unwrap_or_default();
        for (key, op, value) in ops {
            let value = || {
                value.clone().ok_or_else(|| {
                    TopicError::InvalidRequest(format!("Null value not supported for : {key}"))
                })
            };
            match op {
                ConfigOp::Set => {
                    configs.insert(key.clone(), value()?);
                }
                ConfigOp::Delete => {
                    configs.remove(key);
                }
                ConfigOp::Append | ConfigOp::Subtract => {
                    if key != "log.cleanup.policy" {
                        return Err(list_op_refused(*op, key));
                    }
                    let current = configs
                        .get(key)
                        .cloned()
                        .or_else(|| topic_name(key).and_then(|t| in_force.get(t).cloned()))
                        .unwrap_or_default();
                    let merged = merge_list(&current, &value()?, *op == ConfigOp::Append);
                    configs.insert(key.clone(), merged);
                }
            }
        }
        self.check_broker_configs(&resource, configs)
    }

    /// The dynamic configs broker resource `name` would have with AlterConfigs' whole new set.
    pub fn plan_replaced_broker_configs(
        &self,
        name: &str,
        entries: &[(String, Option<String>)],
    ) -> Result<BTreeMap<String, String>, TopicError> {
        let resource = self.broker_resource(name)?;
        refuse_static(entries.iter().map(|(k, _)| k.as_str()))?;
        let mut configs = BTreeMap::new();
        for (key, value) in entries {
            let value = value.clone().ok_or_else(|| {
                TopicError::InvalidRequest(format!("Null value not supported for : {key}"))
            })?;
            configs.insert(key.clone(), value);
        }
        self.check_broker_configs(&resource, configs)
    }

    /// Every value must be one Kafka accepts for the topic config it is the default of, and with
    /// the other dynamic values they must make usable log defaults.
    fn check_broker_configs(
        &self,
        resource: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, TopicError> {
        for (k, v) in &configs {
            let topic = topic_name(k)
                .ok_or_else(|| TopicError::InvalidRequest(not_dynamic_message(&[k.as_str()])))?;
            topic_config::validate(topic, v).map_err(|_| {
                TopicError::InvalidConfig(format!("Invalid value {v} for configuration {k}"))
            })?;
        }
        let mut candidate = self.metadata.image().broker_configs.clone();
        candidate.insert(resource.to_string(), configs.clone());
        let image = crate::cluster::MetadataImage {
            broker_configs: candidate,
            ..crate::cluster::MetadataImage::empty()
        };
        DynamicConfigs::from_image(&image, self.node_id)
            .effective(self.partitions.static_defaults())
            .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
        Ok(configs)
    }

    /// Writes a broker resource's new dynamic configs through Raft; the hosted logs of topics that
    /// do not override them use them before this returns.
    pub async fn set_broker_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let resource = self.broker_resource(name)?;
        self.metadata
            .write(MetadataCommand::SetBrokerConfigs { resource, configs })
            .await?;
        self.partitions.reconcile(&self.metadata.image());
        Ok(())
    }
}

/// Broker settings other than the dynamic ones are refused, all named at once as Kafka does.
fn refuse_static<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), TopicError> {
    let mut fixed: Vec<&str> = names.filter(|k| !is_dynamic(k)).collect();
    fixed.dedup();
    if fixed.is_empty() {
        Ok(())
    } else {
        Err(TopicError::InvalidRequest(not_dynamic_message(&fixed)))
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// APPEND or SUBTRACT on a config that is not a list: Kafka's INVALID_CONFIG.
fn list_op_refused(op: ConfigOp, key: &str) -> TopicError {
    let verb = if op == ConfigOp::Append {
        "append"
    } else {
        "subtract"
    };
    TopicError::InvalidConfig(format!(
        "Config value {verb} is not allowed for config key: {key}"
    ))
}

/// A list config after APPEND (items not yet there, in order) or SUBTRACT of `change`'s items.
fn merge_list(current: &str, change: &str, append: bool) -> String {
    let mut items = split_list(current);
    for item in split_list(change) {
        if append {
            if !items.contains(&item) {
                items.push(item);
            }
        } else {
            items.retain(|i| *i != item);
        }
    }
    items.join(",")
}
