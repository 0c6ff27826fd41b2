//! Why the partition layer refused or failed a request, and the one place where that (and every
//! `LogError` behind it) becomes a Kafka error code.

use kafka_protocol::error::ResponseError;

use crate::broker::disk::BelowFloor;
use crate::cluster::BrokerInfo;
use crate::log::{BatchError, LogError, ProducerError};

/// The leader a refused client should go to instead (KIP-951): the image's leader of the
/// partition, its epoch, and its endpoint when that broker is registered.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentLeader {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub endpoint: Option<BrokerInfo>,
}

impl CurrentLeader {
    /// No leader known (Kafka answers -1/-1).
    pub fn unknown() -> Self {
        CurrentLeader {
            leader_id: -1,
            leader_epoch: -1,
            endpoint: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("unknown topic id")]
    UnknownTopicId,
    /// The partition exists but this broker does not lead it.
    #[error("this broker is not the leader of the partition")]
    NotLeaderOrFollower,
    /// The client's leader epoch is older than ours (KIP-320).
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// The client's leader epoch is newer than ours: our metadata is behind.
    #[error("leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    /// A log assigned here that could not be opened: Kafka's offline partition.
    #[error("the partition is offline here")]
    Offline,
    /// acks=all while the ISR is smaller than min.insync.replicas: nothing was appended.
    #[error("the ISR has {isr} members, fewer than min.insync.replicas {min_insync}")]
    NotEnoughReplicas { isr: usize, min_insync: i32 },
    /// Appended, and the ISR has it, but the ISR shrank under min.insync.replicas meanwhile.
    #[error("appended, but the ISR shrank to {isr} members, fewer than min.insync.replicas {min_insync}")]
    NotEnoughReplicasAfterAppend { isr: usize, min_insync: i32 },
    /// acks=all: the ISR did not have the records within the request's timeout.
    #[error("the in-sync replicas did not acknowledge the records in time")]
    RequestTimedOut,
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    /// Internal topics (__consumer_offsets) are written by the broker only, as in Kafka.
    #[error("Cannot append to internal topic {0}")]
    InternalTopic(String),
    /// Records without a key sent to a compacted topic, by their index within the batch.
    #[error("records without a key on a compacted topic")]
    KeylessRecords {
        topic: String,
        partition: i32,
        indices: Vec<i32>,
        log_start_offset: i64,
    },
    /// Records of a log that is only compacted are not deleted by offset.
    #[error("the topic's cleanup.policy does not include delete")]
    PolicyViolation,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A transactional batch verified with its coordinator, but its producer's transaction ended
    /// (a marker came in) before it could be appended.
    #[error("the transaction ended while the partition was being verified")]
    TxnVerificationLost,
    /// The transaction coordinator's answer when asked whether the partition is in the producer's
    /// transaction (KIP-890), already in the code the Produce version knows.
    #[error("transaction verification failed: {message}")]
    TxnVerification { code: i16, message: String },
    #[error(transparent)]
    BelowFloor(#[from] BelowFloor),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl ReplicaError {
    /// Kafka's code for this error.
    pub fn code(&self) -> ResponseError {
        match self {
            ReplicaError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            ReplicaError::UnknownTopicId => ResponseError::UnknownTopicId,
            ReplicaError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
            ReplicaError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            ReplicaError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            ReplicaError::Offline | ReplicaError::BelowFloor(_) => ResponseError::KafkaStorageError,
            ReplicaError::InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
            ReplicaError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            ReplicaError::NotEnoughReplicasAfterAppend { .. } => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            ReplicaError::RequestTimedOut => ResponseError::RequestTimedOut,
            ReplicaError::InternalTopic(_) => ResponseError::InvalidTopicException,
            ReplicaError::KeylessRecords { .. } => ResponseError::InvalidRecord,
            ReplicaError::PolicyViolation => ResponseError::PolicyViolation,
            ReplicaError::InvalidRequest(_) => ResponseError::InvalidRequest,
            ReplicaError::TxnVerificationLost => ResponseError::InvalidTxnState,
            ReplicaError::TxnVerification { code, .. } => {
                ResponseError::try_from_code(*code).unwrap_or(ResponseError::UnknownServerError)
            }
            ReplicaError::Batch(b) => batch_code(b),
            ReplicaError::Log(e) => log_code(e),
        }
    }

    /// The message sent with the code: the cause for refused records and failed writes; none for
    /// routing answers, which clients act on by their code alone.
    pub fn message(&self) -> Option<String> {
        match self {
            ReplicaError::UnknownTopicOrPartition
            | ReplicaError::UnknownTopicId
            | ReplicaError::NotLeaderOrFollower
            | ReplicaError::FencedLeaderEpoch { .. }
            | ReplicaError::UnknownLeaderEpoch { .. }
            | ReplicaError::Offline
            | ReplicaError::InvalidRequiredAcks(_)
            | ReplicaError::PolicyViolation => None,
            ReplicaError::KeylessRecords { indices, .. } => {
                let shown: Vec<String> = self
                    .record_errors()
                    .into_iter()
                    .take(3)
                    .map(|(i, message)| format!("RecordError(batchIndex={i}, message='{message}')"))
                    .collect();
                Some(format!(
                    "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                    indices.len(),
                    shown.join(", ")
                ))
            }
            _ => Some(self.to_string()),
        }
    }

    /// The records refused one by one (KIP-467), by index within the batch, with their message.
    pub fn record_errors(&self) -> Vec<(i32, String)> {
        match self {
            ReplicaError::KeylessRecords {
                topic,
                partition,
                indices,
                ..
            } => {
                let message = format!(
                    "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
                );
                indices.iter().map(|&i| (i, message.clone())).collect()
            }
            _ => Vec::new(),
        }
    }

    /// A storage failure (already logged by the partition, once per burst).
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            ReplicaError::Log(LogError::Io(_) | LogError::Corrupt(_))
        )
    }
}

fn log_code(e: &LogError) -> ResponseError {
    match e {
        LogError::Batch(b) => batch_code(b),
        LogError::Producer(p) => producer_code(p),
        LogError::Io(_) | LogError::Corrupt(_) => ResponseError::KafkaStorageError,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::InvalidConfig(_) | LogError::Encode(_) | LogError::NotChained { .. } => {
            ResponseError::UnknownServerError
        }
    }
}

/// Kafka's codes for refused idempotent batches. A stale epoch is INVALID_PRODUCER_EPOCH for every
/// Produce version: since 2.7 (KIP-588) Kafka no longer answers PRODUCER_FENCED on Produce.
fn producer_code(e: &ProducerError) -> ResponseError {
    match e {
        ProducerError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        ProducerError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        ProducerError::InvalidRecord(_) => ResponseError::InvalidRecord,
        ProducerError::CoordinatorFenced(_) => ResponseError::TransactionCoordinatorFenced,
    }
}

fn batch_code(e: &BatchError) -> ResponseError {
    match e {
        BatchError::Corrupt(_) => ResponseError::CorruptMessage,
        BatchError::InvalidRecord(_) => ResponseError::InvalidRecord,
        BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        BatchError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
    }
}
