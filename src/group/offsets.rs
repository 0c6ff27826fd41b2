//! The durable side of the coordinator: the internal `__consumer_offsets` topic on the broker's own
//! segmented log. Committed offsets and group metadata are appended as ordinary v2 record batches
//! whose keys and values use Kafka's formats (see `records.rs`); a group lives on partition
//! `abs(javaHashCode(group)) % offsets_topic_num_partitions`. When this broker comes to lead a partition
//! (at start-up, or later) it is read from its log start to its end and the last record per key wins (a null value deletes), so what
//! was acknowledged survives a SIGKILL. Appending and reading go through the broker's
//! [`InternalTopic`] handle, so the log's flush policy applies before a commit is acknowledged.
//!
//! The topic is compacted (`cleanup.policy=compact`, as in Kafka): the log cleaner keeps the latest
//! record per key and drops tombstones after `delete.retention.ms`, so it stays about as large as the
//! live offsets and groups, plus its active segment (`offsets_topic_segment_bytes`).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use tracing::{info, warn};

use super::records::{GroupValue, OffsetValue, RecordKey};
use crate::broker::internal_topic::{InternalTopic, InternalTopicSpec};
use crate::config::Config;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The state replayed from the offsets topic, per group.
#[derive(Default)]
pub struct Replayed {
    pub offsets: HashMap<(String, i32), OffsetValue>,
    pub group: Option<GroupValue>,
}

/// `__consumer_offsets` as Kafka creates it: compacted, kept forever, with its own segment size and
/// replication factor; writes wait at most `offsets.commit.timeout.ms` for the in-sync replicas.
pub fn topic_spec(config: &Config) -> InternalTopicSpec {
    let segment_bytes = config.offsets_topic_segment_bytes.to_string();
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("segment.bytes", segment_bytes.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    InternalTopicSpec {
        name: OFFSETS_TOPIC,
        partitions: config.offsets_topic_num_partitions,
        replication_factor: config.offsets_topic_replication_factor,
        configs,
        write_timeout: std::time::Duration::from_millis(config.offsets_commit_timeout_ms),
    }
}

/// Reads one offsets partition and folds it into per-group state; `None` when it is not open here.
pub fn replay_partition(
    topic: &InternalTopic,
    partition: i32,
) -> Option<HashMap<String, Replayed>> {
    let mut groups: HashMap<String, Replayed> = HashMap::new();
    let mut records = 0u64;
    let hosted = topic.replay(partition, |r| {
        records += 1;
        apply(&mut groups, r.key, r.value);
    });
    if !hosted {
        return None;
    }
    info!(
        partition,
        groups = groups.len(),
        records,
        "replayed consumer group state from {OFFSETS_TOPIC}"
    );
    Some(groups)
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
