//! The durable side of the coordinator: the internal `__consumer_offsets` topic on the broker's own
//! segmented log. Committed offsets and group metadata are appended as ordinary v2 record batches
//! whose keys and values use Kafka's formats (see `records.rs`); a group lives on partition
//! `abs(javaHashCode(group)) % offsets_topic_num_partitions`. On start-up every partition is read
//! from its log start to its end and the last record per key wins (a null value deletes), so what
//! was acknowledged survives a SIGKILL. Appends go through `Partition::append`, so the log's flush
//! policy applies before a commit is acknowledged.
//!
//! The topic is compacted (`cleanup.policy=compact`, as in Kafka): the log cleaner keeps the latest
//! record per key and drops tombstones after `delete.retention.ms`, so it stays about as large as the
//! live offsets and groups, plus its active segment (`offsets_topic_segment_bytes`).

use std::collections::BTreeMap;
use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use tracing::{info, warn};

use super::error::GroupError;
use super::records::{partition_for, GroupValue, OffsetValue, RecordKey};
use crate::broker::topics::{TopicError, TopicRequest};
use crate::broker::Broker;
use crate::log::{encode_batch, plain_record, validate_batches, BatchError};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The state replayed from the offsets topic, per group.
#[derive(Default)]
pub struct Replayed {
    pub offsets: HashMap<(String, i32), OffsetValue>,
    pub group: Option<GroupValue>,
}

/// The partition of the offsets topic that holds `group`.
pub fn partition_of(broker: &Broker, group: &str) -> i32 {
    partition_for(group, offsets_partitions(broker))
}

/// The actual partition count of the offsets topic (the configured count until it exists).
fn offsets_partitions(broker: &Broker) -> i32 {
    broker
        .metadata
        .image()
        .topics
        .get(OFFSETS_TOPIC)
        .map(|t| t.partitions.len() as i32)
        .filter(|n| *n > 0)
        .unwrap_or(broker.config.offsets_topic_num_partitions)
}

/// Creates the internal offsets topic unless it exists.
pub async fn ensure_topic(broker: &Broker) -> Result<(), TopicError> {
    if broker.metadata.image().topics.contains_key(OFFSETS_TOPIC) {
        return Ok(());
    }
    let segment_bytes = broker.config.offsets_topic_segment_bytes.to_string();
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("segment.bytes", segment_bytes.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut planned = broker.plan_topic(&TopicRequest {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: broker.config.offsets_topic_num_partitions,
        replication_factor: -1,
        assignments: Vec::new(),
        configs,
    })?;
    planned.internal = true;
    match broker.create_topic(planned).await {
        Ok(_) | Err(TopicError::AlreadyExists(_)) => {
            info!(
                topic = OFFSETS_TOPIC,
                partitions = broker.config.offsets_topic_num_partitions,
                "offsets topic ready"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Appends `records` (key, value-or-tombstone) for `group` as one batch and returns once the log has
/// them (and, under `flush = always`, once they are fsynced).
pub fn append(
    broker: &Broker,
    group: &str,
    records: Vec<(RecordKey, Option<Bytes>)>,
    now_ms: i64,
) -> Result<(), GroupError> {
    if records.is_empty() {
        return Ok(());
    }
    let index = partition_of(broker, group);
    let partition = broker
        .partitions
        .get(OFFSETS_TOPIC, index)
        .ok_or(GroupError::CoordinatorNotAvailable)?;
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| plain_record(i as i64, now_ms, Some(key.encode()), value))
        .collect();
    // Our own encoder's batch failing to encode or validate is a bug, not a storage condition.
    let unexpected = |e: &dyn std::fmt::Display| {
        warn!(group, error = %e, "cannot build a __consumer_offsets batch");
        GroupError::UnknownServerError
    };
    let buf = encode_batch(&records, Compression::None).map_err(|e| unexpected(&e))?;
    let max = partition.with_log(|l| l.config().max_message_bytes);
    let headers = validate_batches(&buf, max).map_err(|e| match e {
        BatchError::TooLarge { size, max } => GroupError::RecordTooLarge { size, max },
        e => unexpected(&e),
    })?;
    partition
        .append(buf, &headers, now_ms)
        .map_err(|e| GroupError::Storage(e.to_string()))?;
    Ok(())
}

/// Reads every offsets partition hosted here and folds it into per-group state.
pub fn replay(broker: &Broker) -> HashMap<String, Replayed> {
    let mut groups: HashMap<String, Replayed> = HashMap::new();
    let mut records = 0u64;
    for index in 0..offsets_partitions(broker) {
        let Some(partition) = broker.partitions.get(OFFSETS_TOPIC, index) else {
            continue;
        };
        let end = partition.high_watermark();
        let mut offset = partition.log_start_offset();
        while offset < end {
            let slice = match partition.read(offset, 1 << 20, true) {
                Ok(s) => s,
                Err(e) => {
                    warn!(partition = index, offset, error = %e, "cannot read offsets log; rest of partition skipped");
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
                        warn!(partition = index, offset, error = %e, "undecodable batch in offsets log; rest of partition skipped");
                        offset = end;
                        break;
                    }
                };
                for r in set.records {
                    offset = offset.max(r.offset + 1);
                    if r.control || r.offset < before {
                        continue;
                    }
                    records += 1;
                    apply(&mut groups, r.key, r.value);
                }
            }
            if offset == before {
                // A slice that did not advance (empty batches only): stop rather than loop.
                break;
            }
        }
    }
    info!(
        groups = groups.len(),
        records, "replayed consumer group state from {OFFSETS_TOPIC}"
    );
    groups
}

fn apply(groups: &mut HashMap<String, Replayed>, key: Option<Bytes>, value: Option<Bytes>) {
    let Some(key) = key else { return };
    let key = match RecordKey::decode(key) {
        Ok(Some(k)) => k,
        Ok(None) => return,
        Err(e) => {
            warn!(error = %e, "skipping offsets record");
            return;
        }
    };
    let entry = groups.entry(key.group().to_string()).or_default();
    match key {
        RecordKey::Offset {
            topic, partition, ..
        } => match value.map(OffsetValue::decode) {
            None => {
                entry.offsets.remove(&(topic, partition));
            }
            Some(Ok(v)) => {
                entry.offsets.insert((topic, partition), v);
            }
            Some(Err(e)) => warn!(error = %e, "skipping offset commit record"),
        },
        RecordKey::Group { .. } => match value.map(GroupValue::decode) {
            None => entry.group = None,
            Some(Ok(v)) => entry.group = Some(v),
            Some(Err(e)) => warn!(error = %e, "skipping group metadata record"),
        },
    }
}
