//! Appending produced records to the partitions this broker leads: the checks Kafka makes before
//! the log (internal topics, one batch per partition, no control batches, timestamps, keys on
//! compacted topics, the free-space floor), then the append itself.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::{debug, warn};

use super::verify::{TxnProduce, Verdicts};
use super::{ReplicaError, ReplicaManager, TopicRef};
use crate::broker::{Partition, TxnGuard};
use crate::clock::now_ms;
use crate::log::{
    keyless_records, validate_batches, AppendInfo, BatchError, BatchHeader, TimestampType,
};

/// Kafka's RecordBatch.NO_TIMESTAMP: the record has no timestamp, and none is checked.
const NO_TIMESTAMP: i64 = -1;

/// How far a batch for a compacted topic may be decompressed to check its keys.
const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// Who is appending. Clients may not write internal topics, must send exactly one batch and no
/// control batches, and are held to the free-space floor; coordinators write internal topics and
/// are not (the floor keeps room for them).
#[derive(Clone, Copy, Debug)]
pub enum AppendOrigin {
    Client { peer: SocketAddr },
    Coordinator,
}

impl std::fmt::Display for AppendOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendOrigin::Client { peer } => write!(f, "{peer}"),
            AppendOrigin::Coordinator => f.write_str("coordinator"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct AppendParams {
    /// 0, 1 or -1 (all); anything else is refused per partition.
    pub acks: i16,
    /// How long acks=all may wait for the in-sync replicas to have the records.
    pub timeout_ms: i32,
    pub origin: AppendOrigin,
}

pub struct ProducePartition {
    pub index: i32,
    pub records: Bytes,
}

pub struct ProduceTopic {
    pub topic: TopicRef,
    pub partitions: Vec<ProducePartition>,
}

pub struct ProducedPartition {
    pub index: i32,
    pub result: Result<AppendInfo, ReplicaError>,
}

impl ReplicaManager {
    /// Appends each partition's records; answers per partition, in request order. With acks=all,
    /// answers once the ISR has every partition's records, or at the request's timeout (Kafka's
    /// DelayedProduce); other requests go on meanwhile.
    pub async fn append_records(
        &self,
        params: &AppendParams,
        topics: Vec<ProduceTopic>,
    ) -> Vec<Vec<ProducedPartition>> {
        self.append_records_txn(params, topics, None).await
    }

    /// [`Self::append_records`] for a request of transactional producer `txn`: a partition its
    /// batch would open the producer's transaction in is verified with the coordinator first.
    pub async fn append_records_txn(
        &self,
        params: &AppendParams,
        topics: Vec<ProduceTopic>,
        txn: Option<&TxnProduce>,
    ) -> Vec<Vec<ProducedPartition>> {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(params.timeout_ms.max(0) as u64);
        let mut verdicts = self.verify_transactional(txn, &topics).await;
        let mut waits = Vec::new();
        let mut answers = self.append_all(params, topics, &mut verdicts, &mut waits);
        for (t, i, partition, next_offset, epoch) in waits {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(e) = partition.wait_committed_at(next_offset, epoch, left).await {
                debug!(topic = %partition.topic, partition = partition.index, error = %e,
                    "acks=all produce not acknowledged");
                answers[t][i].result = Err(e);
            }
        }
        answers
    }

    /// The appends of [`Self::append_records`]; for acks=all, `waits` gets each appended partition's
    /// (topic index, partition index, partition, offset to commit, leader epoch).
    fn append_all(
        &self,
        params: &AppendParams,
        topics: Vec<ProduceTopic>,
        verdicts: &mut Verdicts,
        waits: &mut Vec<(usize, usize, Arc<Partition>, i64, i32)>,
    ) -> Vec<Vec<ProducedPartition>> {
        let image = self.metadata.image();
        topics
            .into_iter()
            .enumerate()
            .map(|(t, topic)| {
                let resolved = Self::resolve(&image, &topic.topic);
                topic
                    .partitions
                    .into_iter()
                    .enumerate()
                    .map(|(i, data)| {
                        let result = if !matches!(params.acks, -1..=1) {
                            Err(ReplicaError::InvalidRequiredAcks(params.acks))
                        } else {
                            let name = match (&resolved, &topic.topic) {
                                (Ok(Some(t)), _) => Ok(t.name.as_str()),
                                (Ok(None), TopicRef::Name(n)) => Ok(n.as_str()),
                                (Ok(None), TopicRef::Id(_)) | (Err(_), _) => {
                                    Err(ReplicaError::UnknownTopicId)
                                }
                            };
                            let internal = matches!(resolved, Ok(Some(t)) if t.internal);
                            let guard = verdicts.remove(&(t, i)).transpose();
                            name.and_then(|n| self.hosted(&image, n, data.index))
                                .and_then(|p| {
                                    let guard = guard?;
                                    let (info, epoch) =
                                        self.append_to(&p, internal, params, data.records, guard)?;
                                    if params.acks == -1 {
                                        waits.push((t, i, p, info.last_offset + 1, epoch));
                                    }
                                    Ok(info)
                                })
                        };
                        ProducedPartition {
                            index: data.index,
                            result,
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn append_to(
        &self,
        partition: &Partition,
        internal: bool,
        params: &AppendParams,
        records: Bytes,
        guard: Option<TxnGuard>,
    ) -> Result<(AppendInfo, i32), ReplicaError> {
        let (topic, index) = (&partition.topic, partition.index);
        let peer = params.origin;
        let client = matches!(peer, AppendOrigin::Client { .. });
        // Leadership first, as Kafka's `appendRecordsToLeader`: a follower refuses before validating.
        partition.check_leader_epoch(-1, true)?;
        if internal && client {
            warn!(peer = %peer, topic = %topic, "rejected produce to an internal topic");
            return Err(ReplicaError::InternalTopic(topic.clone()));
        }
        let headers = match check_batches(partition, &records, client) {
            Ok(h) => h,
            Err(e) => {
                if let ReplicaError::KeylessRecords { indices, .. } = &e {
                    warn!(peer = %peer, topic = %topic, partition = index, records = indices.len(),
                        "rejected produce: records without a key on a compacted topic");
                } else {
                    warn!(peer = %peer, topic = %topic, partition = index, error = %e, "rejected produce");
                }
                return Err(e);
            }
        };
        // The free-space floor keeps room for the broker's own writes (committed offsets).
        if client {
            self.disk.admit(records.len() as u64, now_ms())?;
        }
        // One copy of the client's bytes into a buffer the log may patch (offsets, epoch).
        let owned = BytesMut::from(&records[..]);
        let acks_all = params.acks == -1;
        match partition.append_as_leader_guarded(owned, &headers, now_ms(), acks_all, guard) {
            Ok((info, epoch)) => {
                if info.duplicate {
                    debug!(peer = %peer, topic = %topic, partition = index,
                        base_offset = info.base_offset, "retried batch acknowledged, not written again");
                }
                Ok((info, epoch))
            }
            Err(e) => {
                // Storage failures are logged by the partition, once per burst; a too-small ISR is
                // the cluster's state (logged as the ISR changes), answered to every acks=all produce.
                if matches!(e, ReplicaError::NotEnoughReplicas { .. }) {
                    debug!(topic = %topic, partition = index, error = %e, "acks=all produce refused");
                } else if !e.is_storage() {
                    warn!(topic = %topic, partition = index, error = %e, "append failed");
                }
                Err(e)
            }
        }
    }
}

/// The batch checks of Kafka's `ProduceRequest.validateRecords` and `LogValidator`, in its order.
/// `client`: the request-level rules of Kafka's `ProduceRequest` apply too.
fn check_batches(
    partition: &Partition,
    records: &Bytes,
    client: bool,
) -> Result<Vec<BatchHeader>, ReplicaError> {
    let (max_message_bytes, compacted, window) = partition.with_log(|l| {
        let c = l.config();
        let window = (c.timestamp_type == TimestampType::CreateTime)
            .then_some((c.timestamp_before_max_ms, c.timestamp_after_max_ms));
        (c.max_message_bytes, c.cleanup_compact, window)
    });
    let headers = validate_batches(records, max_message_bytes)?;
    if let Some(e) = client.then(|| client_batch_violation(&headers)).flatten() {
        return Err(e.into());
    }
    if let Some(e) = timestamp_violation(&headers, window, now_ms()) {
        return Err(e.into());
    }
    // As Kafka's LogValidator: only compacted topics look inside the batch.
    if compacted {
        let keyless = keyless_records(records, MAX_DECOMPRESSED_BATCH_BYTES)?;
        if !keyless.is_empty() {
            return Err(ReplicaError::KeylessRecords {
                topic: partition.topic.clone(),
                partition: partition.index,
                indices: keyless,
                log_start_offset: partition.log_start_offset(),
            });
        }
    }
    Ok(headers)
}

/// Rules for batches that come from clients, beyond the batch format itself (Kafka's
/// `ProduceRequest.validateRecords`): exactly one batch per partition from v3 on, and no control
/// batches (transaction markers are written by the broker).
fn client_batch_violation(headers: &[BatchHeader]) -> Option<BatchError> {
    if headers.len() != 1 {
        return Some(BatchError::InvalidRecord(format!(
            "produce requests of version 3 and later must hold exactly one record batch per partition, not {}",
            headers.len()
        )));
    }
    headers
        .iter()
        .any(|b| b.is_control())
        .then(|| BatchError::InvalidRecord("clients may not write control batches".into()))
}

/// KIP-937, for CreateTime topics: a batch whose newest timestamp is more than `after` ms ahead of
/// the broker's clock, or whose first is more than `before` ms behind it, is refused as Kafka's
/// LogValidator refuses such a record. Read from the batch header (its max and base timestamps):
/// records are not decoded on the produce path.
fn timestamp_violation(
    headers: &[BatchHeader],
    window: Option<(i64, i64)>,
    now: i64,
) -> Option<BatchError> {
    let (before, after) = window?;
    let (earliest, latest) = (now.saturating_sub(before), now.saturating_add(after));
    headers.iter().find_map(|h| {
        let out = |ts: i64| ts != NO_TIMESTAMP && !(earliest..=latest).contains(&ts);
        let ts = [h.max_timestamp, h.base_timestamp].into_iter().find(|ts| out(*ts))?;
        Some(BatchError::InvalidTimestamp(format!(
            "Timestamp {ts} of message with offset 0 is out of range. The timestamp should be within [{earliest}, {latest}]"
        )))
    })
}
