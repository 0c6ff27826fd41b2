//! Creating and deleting topics: validation, replica placement, and the Raft write.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::{topic_config, Broker};
use crate::cluster::{
    placement, ClusterError, CommandResult, MetadataCommand, PartitionInfo, TopicInfo,
};

/// Why a topic could not be created or deleted, with the Kafka error code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("{0}")]
    InvalidName(String),
    #[error("Number of partitions must be larger than 0.")]
    InvalidPartitions,
    #[error("{0}")]
    InvalidPartitionCount(String),
    #[error("{requested} more partitions would exceed the cluster's limit of {max} (limits.max_partitions).")]
    TooManyPartitions { requested: usize, max: usize },
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    #[error("metadata write failed: {0}")]
    Cluster(#[from] ClusterError),
    #[error("cannot host new partitions: {0}")]
    Storage(#[from] super::disk::BelowFloor),
}

impl From<placement::PlacementError> for TopicError {
    fn from(e: placement::PlacementError) -> Self {
        match e {
            placement::PlacementError::InvalidReplicationFactor(m) => {
                TopicError::InvalidReplicationFactor(m)
            }
            placement::PlacementError::InvalidReplicaAssignment(m) => {
                TopicError::InvalidReplicaAssignment(m)
            }
        }
    }
}

impl TopicError {
    pub fn code(&self) -> i16 {
        match self {
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException.code(),
            TopicError::InvalidPartitions
            | TopicError::InvalidPartitionCount(_)
            | TopicError::TooManyPartitions { .. } => ResponseError::InvalidPartitions.code(),
            TopicError::InvalidReplicationFactor(_) => {
                ResponseError::InvalidReplicationFactor.code()
            }
            TopicError::InvalidReplicaAssignment(_) => {
                ResponseError::InvalidReplicaAssignment.code()
            }
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
            TopicError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
            TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
            TopicError::UnknownTopic => ResponseError::UnknownTopicOrPartition.code(),
            TopicError::Cluster(ClusterError::NotLeader { .. }) => {
                ResponseError::NotController.code()
            }
            // The metadata log could not be written (disk full, I/O error). Kafka's controller
            // passes a KafkaStorageException through as KAFKA_STORAGE_ERROR, which is retriable;
            // the message says why.
            TopicError::Cluster(ClusterError::StorageUnavailable(_)) => {
                ResponseError::KafkaStorageError.code()
            }
            TopicError::Cluster(_) => ResponseError::RequestTimedOut.code(),
            TopicError::Storage(_) => ResponseError::KafkaStorageError.code(),
        }
    }
}

/// What a client asked for; -1 means "the broker default" for counts.
pub struct TopicRequest {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Explicit replica lists per partition, in partition order (CreateTopics assignments).
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// Kafka's rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let bad = |why: String| Err(TopicError::InvalidName(why));
    if name.is_empty() {
        return bad("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return bad("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return bad(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

impl Broker {
    /// Validates a request and places its replicas; nothing is written.
    pub fn plan_topic(&self, req: &TopicRequest) -> Result<TopicInfo, TopicError> {
        validate_topic_name(&req.name)?;
        let image = self.metadata.image();
        if image.topics.contains_key(&req.name) {
            return Err(TopicError::AlreadyExists(req.name.clone()));
        }
        for (k, v) in &req.configs {
            topic_config::validate(k, v).map_err(TopicError::InvalidConfig)?;
        }
        // Checked before anything is allocated per partition: the count comes from the client.
        let requested = if req.assignments.is_empty() {
            match req.num_partitions {
                -1 => self.config.num_partitions.max(0) as usize,
                n => n.max(0) as usize,
            }
        } else {
            req.assignments.len()
        };
        let existing: usize = image.topics.values().map(|t| t.partitions.len()).sum();
        let max = self.config.limits.max_partitions;
        if existing.saturating_add(requested) > max {
            return Err(TopicError::TooManyPartitions { requested, max });
        }
        let replica_lists: Vec<Vec<i32>> = if !req.assignments.is_empty() {
            if req.num_partitions != -1 || req.replication_factor != -1 {
                return Err(TopicError::InvalidRequest(
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                ));
            }
            placement::validate_assignments(&image, &req.assignments)?;
            req.assignments.clone()
        } else {
            let partitions = match req.num_partitions {
                -1 => self.config.num_partitions,
                n if n < 1 => return Err(TopicError::InvalidPartitions),
                n => n,
            };
            let rf = match req.replication_factor {
                -1 => self.config.default_replication_factor,
                n if n < 1 => {
                    return Err(TopicError::InvalidReplicationFactor(
                        "Replication factor must be larger than 0.".into(),
                    ))
                }
                n => n,
            };
            let brokers = placement::candidates(&image);
            placement::place(&brokers, 0, partitions as usize, rf as usize)?
        };
        let partitions = replica_lists
            .into_iter()
            .enumerate()
            .map(|(i, replicas)| PartitionInfo {
                partition: i as i32,
                leader: replicas[0],
                leader_epoch: 0,
                isr: replicas.clone(),
                partition_epoch: 0,
                replicas,
            })
            .collect();
        Ok(TopicInfo {
            name: req.name.clone(),
            id: Uuid::new_v4(),
            configs: req.configs.clone(),
            partitions,
            internal: false,
        })
    }

    /// Commits a planned topic through Raft and brings its local partitions online before returning.
    /// A topic with partitions here is refused while the data directory is below its free-space floor
    /// (internal topics are not: the floor keeps room for them).
    pub async fn create_topic(&self, topic: TopicInfo) -> Result<TopicInfo, TopicError> {
        let name = topic.name.clone();
        let hosted_here = topic
            .partitions
            .iter()
            .any(|p| p.replicas.contains(&self.node_id));
        if hosted_here && !topic.internal {
            self.disk.admit(0, crate::clock::now_ms())?;
        }
        let result = self
            .metadata
            .write(MetadataCommand::CreateTopic(topic))
            .await?;
        if result == CommandResult::TopicAlreadyExists {
            return Err(TopicError::AlreadyExists(name));
        }
        let image = self.metadata.image();
        self.partitions.reconcile(&image);
        image
            .topics
            .get(&name)
            .cloned()
            .ok_or(TopicError::UnknownTopic)
    }

    /// Deletes a topic through Raft and removes its local data before returning.
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        let result = self
            .metadata
            .write(MetadataCommand::DeleteTopic {
                name: name.to_string(),
            })
            .await?;
        if result == CommandResult::UnknownTopic {
            return Err(TopicError::UnknownTopic);
        }
        self.partitions.reconcile(&self.metadata.image());
        self.group.on_topic_deleted(name).await;
        Ok(())
    }

    /// Auto-creation on Metadata requests (`auto.create.topics.enable`), with broker defaults.
    pub async fn auto_create_topic(&self, name: &str) -> Result<TopicInfo, TopicError> {
        let req = TopicRequest {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        };
        let planned = self.plan_topic(&req)?;
        match self.create_topic(planned).await {
            // Another request created it first: that is success for the caller.
            Err(TopicError::AlreadyExists(_)) => self
                .metadata
                .image()
                .topics
                .get(name)
                .cloned()
                .ok_or(TopicError::UnknownTopic),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "orders.v1", "A_b-c", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "has space",
            "slash/x",
            "ünï",
            &"x".repeat(250),
        ] {
            let err = validate_topic_name(bad).unwrap_err();
            assert_eq!(err.code(), 17, "{bad}");
        }
    }

    #[test]
    fn metadata_write_failures_map_to_retriable_codes() {
        let unavailable = TopicError::Cluster(ClusterError::StorageUnavailable(
            "No space left on device (os error 28)".into(),
        ));
        assert_eq!(unavailable.code(), ResponseError::KafkaStorageError.code());
        assert!(ResponseError::KafkaStorageError.is_retriable());
        assert!(unavailable.to_string().contains("No space left on device"));
        let timeout = TopicError::Cluster(ClusterError::Timeout("slow".into()));
        assert_eq!(timeout.code(), ResponseError::RequestTimedOut.code());
        let moved = TopicError::Cluster(ClusterError::NotLeader { leader: Some(2) });
        assert_eq!(moved.code(), ResponseError::NotController.code());
    }
}
