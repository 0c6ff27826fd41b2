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

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use tracing::{info, warn};

use super::group::{Committed, PendingTxnOffsets};
use super::records::{GroupValue, OffsetValue, RecordKey};
use crate::broker::internal_topic::{InternalTopic, InternalTopicSpec, ReplayEvent};
use crate::config::Config;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The state replayed from the offsets topic, per group.
#[derive(Default)]
pub struct Replayed {
    /// Committed offsets, each with its record's log offset as its order.
    pub offsets: HashMap<(String, i32), Committed>,
    pub group: Option<GroupValue>,
    /// Transactional offsets whose producer's marker is not in the log (yet).
    pub pending: PendingTxnOffsets,
    /// After the last record of the partition: the order of the group's next write.
    pub next_order: i64,
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
/// As Kafka's loader: records of a transactional batch wait per producer id until that producer's
/// marker commits them (a commit replaces a committed offset only if written after it) or aborts
/// them; a tombstone removes the committed offset and any pending one of its partition.
pub fn replay_partition(
    topic: &InternalTopic,
    partition: i32,
) -> Option<HashMap<String, Replayed>> {
    let mut state = Replay::default();
    let mut records = 0u64;
    let mut next_order = 0i64;
    let hosted = topic.replay_events(partition, |event| {
        records += 1;
        match event {
            ReplayEvent::Record {
                record,
                producer_id,
                transactional,
            } => {
                next_order = next_order.max(record.offset + 1);
                let producer = transactional.then_some(producer_id);
                state.apply(record.offset, producer, record.key, record.value);
            }
            ReplayEvent::Marker {
                offset,
                producer_id,
                commit,
            } => {
                next_order = next_order.max(offset + 1);
                state.end_txn(producer_id, commit);
            }
        }
    });
    if !hosted {
        return None;
    }
    let mut groups = state.groups;
    for g in groups.values_mut() {
        g.next_order = next_order;
    }
    info!(
        partition,
        groups = groups.len(),
        records,
        "replayed consumer group state from {OFFSETS_TOPIC}"
    );
    Some(groups)
}

/// The fold of one partition's records.
#[derive(Default)]
struct Replay {
    groups: HashMap<String, Replayed>,
    /// Producer id -> the groups it holds pending offsets of (Kafka's `openTransactionsByGroup`).
    open: HashMap<i64, HashSet<String>>,
}

impl Replay {
    /// One data record at `offset`; `producer` for a transactional batch's.
    fn apply(
        &mut self,
        offset: i64,
        producer: Option<i64>,
        key: Option<Bytes>,
        value: Option<Bytes>,
    ) {
        let Some(key) = key else { return };
        let key = match RecordKey::decode(key) {
            Ok(Some(k)) => k,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "skipping offsets record");
                return;
            }
        };
        let group = key.group().to_string();
        let entry = self.groups.entry(group.clone()).or_default();
        match key {
            RecordKey::Offset {
                topic, partition, ..
            } => {
                let k = (topic, partition);
                match value.map(OffsetValue::decode) {
                    None => {
                        entry.offsets.remove(&k);
                        for p in entry.pending.values_mut() {
                            p.remove(&k);
                        }
                        entry.pending.retain(|_, p| !p.is_empty());
                    }
                    Some(Ok(v)) => {
                        let c = Committed {
                            order: offset,
                            ..Committed::from(v)
                        };
                        match producer {
                            None => {
                                entry.offsets.insert(k, c);
                            }
                            Some(pid) => {
                                entry.pending.entry(pid).or_default().insert(k, c);
                                self.open.entry(pid).or_default().insert(group);
                            }
                        }
                    }
                    Some(Err(e)) => warn!(error = %e, "skipping offset commit record"),
                }
            }
            RecordKey::Group { .. } => match value.map(GroupValue::decode) {
                None => entry.group = None,
                Some(Ok(v)) => entry.group = Some(v),
                Some(Err(e)) => warn!(error = %e, "skipping group metadata record"),
            },
        }
    }

    /// `producer_id`'s marker: its pending offsets become committed (`commit`) or are dropped.
    fn end_txn(&mut self, producer_id: i64, commit: bool) {
        for group in self.open.remove(&producer_id).unwrap_or_default() {
            let Some(g) = self.groups.get_mut(&group) else {
                continue;
            };
            let Some(pending) = g.pending.remove(&producer_id) else {
                continue;
            };
            if commit {
                for (k, c) in pending {
                    if g.offsets.get(&k).is_none_or(|old| c.order > old.order) {
                        g.offsets.insert(k, c);
                    }
                }
            }
        }
    }
}
