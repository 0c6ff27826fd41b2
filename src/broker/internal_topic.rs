//! An internal topic as a coordinator uses it (`__consumer_offsets` now, `__transaction_state` later):
//! created on first use with the coordinator's configs, appended to as plain key/value record batches,
//! and replayed partition by partition from log start to high watermark. The coordinator sees only this
//! handle, not the broker: keys and values are opaque bytes here, their formats are the coordinator's.

use std::collections::BTreeMap;
use std::sync::Weak;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use tracing::{info, warn};

use super::topics::{TopicError, TopicRequest};
use super::Broker;
use crate::log::{encode_batch, plain_record, validate_batches, BatchError};

/// What an internal topic is: its name, partition count and topic configs at creation.
#[derive(Clone, Debug)]
pub struct InternalTopicSpec {
    pub name: &'static str,
    /// Used until the topic exists; afterwards the topic's actual count is.
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// Why an append to an internal topic failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InternalTopicError {
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("partition {0} of the internal topic is not hosted here")]
    NotHosted(i32),
    /// Larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: u32 },
    /// Our own encoder produced something the log refuses: a bug, not a storage condition.
    #[error("cannot build a record batch: {0}")]
    Encode(String),
    #[error("storage: {0}")]
    Storage(String),
}

/// One record read back by [`InternalTopic::replay`].
pub struct ReplayedRecord {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

pub struct InternalTopic {
    broker: Weak<Broker>,
    spec: InternalTopicSpec,
}

impl InternalTopic {
    pub fn new(broker: Weak<Broker>, spec: InternalTopicSpec) -> InternalTopic {
        InternalTopic { broker, spec }
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The topic's partition count: the actual one once it exists, the configured one before.
    pub fn partition_count(&self) -> i32 {
        self.broker
            .upgrade()
            .and_then(|b| {
                b.metadata
                    .image()
                    .topics
                    .get(self.spec.name)
                    .map(|t| t.partitions.len() as i32)
            })
            .filter(|n| *n > 0)
            .unwrap_or(self.spec.partitions)
    }

    pub fn exists(&self) -> bool {
        self.broker
            .upgrade()
            .is_some_and(|b| b.metadata.image().topics.contains_key(self.spec.name))
    }

    /// Creates the topic unless it exists (Kafka creates `__consumer_offsets` on first use).
    pub async fn ensure_exists(&self) -> Result<(), TopicError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| TopicError::InvalidRequest("the broker is shutting down".into()))?;
        if broker.metadata.image().topics.contains_key(self.spec.name) {
            return Ok(());
        }
        let mut planned = broker.plan_topic(&TopicRequest {
            name: self.spec.name.to_string(),
            num_partitions: self.spec.partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: self.spec.configs.clone(),
        })?;
        planned.internal = true;
        match broker.create_topic(planned).await {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => {
                info!(
                    topic = self.spec.name,
                    partitions = self.spec.partitions,
                    "internal topic ready"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Appends `records` (key, value or tombstone) to `partition` as one uncompressed batch and
    /// returns once the log has them (and, under `flush = always`, once they are fsynced).
    pub fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
        now_ms: i64,
    ) -> Result<(), InternalTopicError> {
        if records.is_empty() {
            return Ok(());
        }
        let broker = self
            .broker
            .upgrade()
            .ok_or(InternalTopicError::ShuttingDown)?;
        let p = broker
            .partitions
            .get(self.spec.name, partition)
            .ok_or(InternalTopicError::NotHosted(partition))?;
        let records: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| plain_record(i as i64, now_ms, Some(key), value))
            .collect();
        let buf = encode_batch(&records, Compression::None)
            .map_err(|e| InternalTopicError::Encode(e.to_string()))?;
        let max = p.with_log(|l| l.config().max_message_bytes);
        let headers = validate_batches(&buf, max).map_err(|e| match e {
            BatchError::TooLarge { size, max } => InternalTopicError::TooLarge { size, max },
            e => InternalTopicError::Encode(e.to_string()),
        })?;
        p.append(buf, &headers, now_ms)
            .map_err(|e| InternalTopicError::Storage(e.to_string()))?;
        Ok(())
    }

    /// Reads `partition` from its log start to its high watermark, handing every data record to
    /// `visit` in offset order. Returns false when the partition is not hosted here. An unreadable
    /// or undecodable stretch ends the replay of that partition with a warning (what was read stays).
    pub fn replay(&self, partition: i32, mut visit: impl FnMut(ReplayedRecord)) -> bool {
        let Some(broker) = self.broker.upgrade() else {
            return false;
        };
        let Some(p) = broker.partitions.get(self.spec.name, partition) else {
            return false;
        };
        let topic = self.spec.name;
        let end = p.high_watermark();
        let mut offset = p.log_start_offset();
        while offset < end {
            let slice = match p.read(offset, 1 << 20, true) {
                Ok(s) => s,
                Err(e) => {
                    warn!(topic, partition, offset, error = %e, "cannot read internal topic; rest of partition skipped");
                    break;
                }
            };
            let mut bytes = slice.bytes;
            if bytes.is_empty() {
                break;
            }
            let before = offset;
            while !bytes.is_empty() {
                let set = match RecordBatchDecoder::decode(&mut bytes) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(topic, partition, offset, error = %e, "undecodable batch in internal topic; rest of partition skipped");
                        offset = end;
                        break;
                    }
                };
                for r in set.records {
                    offset = offset.max(r.offset + 1);
                    if r.control || r.offset < before {
                        continue;
                    }
                    visit(ReplayedRecord {
                        offset: r.offset,
                        key: r.key,
                        value: r.value,
                    });
                }
            }
            if offset == before {
                // A slice that did not advance (empty batches only): stop rather than loop.
                break;
            }
        }
        true
    }
}
