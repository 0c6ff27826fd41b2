//! The partition layer between the handlers and the logs (Kafka's ReplicaManager): resolves
//! topic-partitions, enforces who may read and write them, appends produced records, serves and
//! long-polls fetches, and answers offset lookups. Handlers only translate wire types to and from it.

mod append;
mod error;
mod fetch;
pub mod fetcher;
#[cfg(test)]
mod fetcher_tests;
mod isr_changes;
#[cfg(test)]
mod isr_tests;
mod markers;
mod offsets;
mod peer;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
mod verify;

use std::sync::Arc;

use uuid::Uuid;

pub use append::{AppendOrigin, AppendParams, ProducePartition, ProduceTopic, ProducedPartition};
pub use error::{CurrentLeader, ReplicaError};
pub use fetch::{FetchParams, FetchPartition, FetchTopic, FetchedPartition, Isolation};
pub use markers::TxnMarker;
pub use offsets::OffsetFound;
pub use verify::{TxnProduce, TxnVerifier, VerifyFuture};

use super::disk::DiskSpace;
use super::partition::Partition;
use super::partitions::PartitionManager;
use crate::cluster::{MetadataImage, MetadataStore, PartitionInfo, TopicInfo};

/// How a request names a topic: by name, or (Produce v13+, Fetch v13+) by id.
#[derive(Clone, Debug)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

pub struct ReplicaManager {
    node_id: i32,
    partitions: Arc<PartitionManager>,
    disk: Arc<DiskSpace>,
    metadata: MetadataStore,
    isr_changes: isr_changes::IsrChanges,
    /// Checks transactional batches with their coordinator (set once the broker is built).
    verifier: std::sync::OnceLock<Arc<dyn TxnVerifier>>,
}

impl ReplicaManager {
    pub fn new(
        node_id: i32,
        partitions: Arc<PartitionManager>,
        disk: Arc<DiskSpace>,
        metadata: MetadataStore,
    ) -> Self {
        ReplicaManager {
            node_id,
            partitions,
            disk,
            metadata,
            isr_changes: isr_changes::IsrChanges::default(),
            verifier: std::sync::OnceLock::new(),
        }
    }

    /// Starts sending the ISR changes this broker's leaderships ask for to the controller.
    pub fn start(&self) {
        self.isr_changes.start(self.metadata.clone(), self.node_id);
    }

    /// Asks the controller to drop from the ISRs of the partitions led here the followers that have
    /// not caught up for `lag_max_ms` (`replica.lag.time.max.ms`).
    pub fn shrink_lagging_isrs(&self, now_ms: i64, lag_max_ms: i64) {
        for p in self.partitions.all() {
            if let Some(change) = p.lagging_isr_change(now_ms, lag_max_ms) {
                self.isr_changes.submit(p, change);
            }
        }
    }

    /// The topic `topic` names in `image`, or why the request's partitions of it fail.
    fn resolve<'a>(
        image: &'a MetadataImage,
        topic: &TopicRef,
    ) -> Result<Option<&'a TopicInfo>, ReplicaError> {
        match topic {
            TopicRef::Name(name) => Ok(image.topics.get(name)),
            TopicRef::Id(id) => image
                .topic_by_id(id)
                .map(Some)
                .ok_or(ReplicaError::UnknownTopicId),
        }
    }

    /// The hosted partition, or Kafka's answer for one that is not (`getPartitionOrError`): an
    /// offline log is a storage error, a partition of a known topic that this broker does not host
    /// is NOT_LEADER_OR_FOLLOWER (with the leader to go to), anything else is unknown.
    fn hosted(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
    ) -> Result<Arc<Partition>, ReplicaError> {
        if let Some(p) = self.partitions.get(topic, index) {
            return Ok(p);
        }
        if self.partitions.is_offline(topic, index) {
            return Err(ReplicaError::Offline);
        }
        match partition_info(image, topic, index) {
            Some(info) if info.leader != self.node_id => Err(ReplicaError::NotLeaderOrFollower),
            _ => Err(ReplicaError::UnknownTopicOrPartition),
        }
    }

    /// The leader of a partition as the image has it, for the KIP-951 hints that go with
    /// NOT_LEADER_OR_FOLLOWER (and, in Fetch, FENCED_LEADER_EPOCH).
    pub fn current_leader(&self, topic: &TopicRef, index: i32) -> CurrentLeader {
        let image = self.metadata.image();
        let name = match topic {
            TopicRef::Name(n) => Some(n.as_str()),
            TopicRef::Id(id) => image.topic_by_id(id).map(|t| t.name.as_str()),
        };
        name.and_then(|n| partition_info(&image, n, index))
            .map_or_else(CurrentLeader::unknown, |info| current_leader(&image, info))
    }
}

fn partition_info<'a>(
    image: &'a MetadataImage,
    topic: &str,
    index: i32,
) -> Option<&'a PartitionInfo> {
    image
        .topics
        .get(topic)?
        .partitions
        .iter()
        .find(|p| p.partition == index)
}

fn current_leader(image: &MetadataImage, info: &PartitionInfo) -> CurrentLeader {
    CurrentLeader {
        leader_id: info.leader,
        leader_epoch: info.leader_epoch,
        endpoint: image.brokers.get(&info.leader).cloned(),
    }
}
