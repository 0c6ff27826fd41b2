//! What the transaction coordinator works through instead of the broker, so that its logic runs
//! in-process on injected parts: the durable log ([`TxnLog`], `__transaction_state` through
//! [`InternalTopic`] in the broker), the producer-id allocator ([`ProducerIdSource`]) and the writer
//! of commit/abort markers ([`MarkerWriter`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;

use bytes::Bytes;

use super::state::TopicPartition;
use crate::broker::internal_topic::{InternalTopic, InternalTopicError, ReplayedRecord};
use crate::broker::Broker;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Resolves once an append is committed (acks=all), or with why not.
pub type PendingWrite = BoxFuture<'static, Result<(), InternalTopicError>>;

/// The transaction log's partitions: queue appends in order, replay on load.
pub trait TxnLog: Send + Sync {
    /// The topic's partition count (configured until it exists).
    fn partition_count(&self) -> i32;
    fn exists(&self) -> bool;
    /// Creates the topic unless it exists; the error says why it could not be.
    fn ensure_exists(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Queues `records` on `partition` (call it under the coordinator lock: per-id order is the
    /// lock's order); the result resolves once they are committed.
    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
        now_ms: i64,
    ) -> Result<PendingWrite, InternalTopicError>;
    /// Reads `partition` from its start to its end; false when it is not hosted here.
    fn replay(&self, partition: i32, visit: &mut dyn FnMut(ReplayedRecord)) -> bool;
}

impl TxnLog for InternalTopic {
    fn partition_count(&self) -> i32 {
        InternalTopic::partition_count(self)
    }

    fn exists(&self) -> bool {
        InternalTopic::exists(self)
    }

    fn ensure_exists(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            InternalTopic::ensure_exists(self)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
        now_ms: i64,
    ) -> Result<PendingWrite, InternalTopicError> {
        let pending = InternalTopic::append(self, partition, records, now_ms)?;
        Ok(Box::pin(pending.wait()))
    }

    fn replay(&self, partition: i32, visit: &mut dyn FnMut(ReplayedRecord)) -> bool {
        InternalTopic::replay(self, partition, visit)
    }
}

/// Where new producer ids come from (the Raft-allocated blocks in the broker).
pub trait ProducerIdSource: Send + Sync {
    fn next_id(&self) -> BoxFuture<'_, Result<i64, String>>;
}

/// The broker's own allocator, as InitProducerId uses it for idempotent producers.
pub struct BrokerProducerIds(pub Weak<Broker>);

impl ProducerIdSource for BrokerProducerIds {
    fn next_id(&self) -> BoxFuture<'_, Result<i64, String>> {
        Box::pin(async move {
            let broker = self.0.upgrade().ok_or("the broker is shutting down")?;
            broker
                .producer_ids
                .next(&broker.metadata)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// One round of markers for a transaction decided by the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    /// The leader epoch of the coordinator's `__transaction_state` partition: a partition leader
    /// refuses markers from an older coordinator (TRANSACTION_COORDINATOR_FENCED).
    pub coordinator_epoch: i32,
    pub partitions: Vec<TopicPartition>,
}

/// What became of one partition's marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarkerOutcome {
    Written,
    /// The partition no longer exists (topic deleted): nothing to mark, as Kafka drops it.
    PartitionGone,
    /// Not written this time (leader moving, ISR too small, timeout, unreachable broker): retried.
    Retry(String),
    /// A newer coordinator or producer epoch owns the partition's state: this coordinator stops
    /// sending markers for the transaction (its successor completes it).
    Fenced,
}

impl MarkerOutcome {
    /// A WriteTxnMarkers partition error code, as Kafka's TransactionMarkerRequestCompletionHandler
    /// treats it.
    pub fn from_error_code(code: i16) -> MarkerOutcome {
        match code {
            0 => MarkerOutcome::Written,
            // UNSUPPORTED_FOR_MESSAGE_FORMAT: the partition cannot hold markers; skipped.
            43 => MarkerOutcome::PartitionGone,
            // INVALID_PRODUCER_EPOCH, PRODUCER_FENCED, TRANSACTION_COORDINATOR_FENCED
            47 | 90 | 52 => MarkerOutcome::Fenced,
            c => MarkerOutcome::Retry(format!("error code {c}")),
        }
    }
}

/// Writes markers to the partitions of a transaction: the local ones through the log, the others
/// with WriteTxnMarkers to their leaders. A partition missing from the answer is retried.
pub trait MarkerWriter: Send + Sync {
    fn write_markers(
        &self,
        request: MarkerRequest,
    ) -> BoxFuture<'_, Vec<(TopicPartition, MarkerOutcome)>>;
}
