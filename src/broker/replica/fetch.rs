//! Reading partitions for Fetch: whole record batches straight from segment bytes, long-polling on
//! the high watermarks until `min_bytes` are there or `max_wait` passes. Shaped for consumers and,
//! later, follower replicas alike (Kafka's `fetchMessages` with its `FetchParams`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::isr_changes::IsrChanges;
use super::{ReplicaError, ReplicaManager, TopicRef};
use crate::broker::Partition;
use crate::log::LogError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

/// What applies to the whole fetch.
#[derive(Clone, Debug)]
pub struct FetchParams {
    /// -1 for a consumer; the fetching broker's id for a follower replica.
    pub replica_id: i32,
    /// The follower's broker epoch (-1 unknown or a consumer).
    pub replica_epoch: i64,
    pub isolation: Isolation,
    pub max_wait: Duration,
    pub min_bytes: usize,
    pub max_bytes: usize,
}

impl FetchParams {
    pub fn is_from_follower(&self) -> bool {
        self.replica_id >= 0
    }
}

#[derive(Clone, Debug)]
pub struct FetchPartition {
    pub index: i32,
    pub fetch_offset: i64,
    /// -1: the client does not know the leader epoch (no KIP-320 check).
    pub current_leader_epoch: i32,
    pub max_bytes: usize,
    /// A follower's latest epoch in its log (Fetch v12+, -1 none): the leader checks that its log
    /// agrees up to `fetch_offset` and else answers a diverging epoch.
    pub last_fetched_epoch: i32,
}

pub struct FetchTopic {
    pub topic: TopicRef,
    pub partitions: Vec<FetchPartition>,
}

/// One partition's answer. Errors found before the log was reached carry -1 offsets.
#[derive(Debug)]
pub struct FetchedPartition {
    pub index: i32,
    pub error: Option<ReplicaError>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
    /// (producer id, first offset) of aborted transactions in range: `Some` for read-committed
    /// fetches (empty until transactions exist), and for errors, as Kafka's defaults have it.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// To a follower whose log diverged: (epoch, end offset) of the largest epoch the leader has at
    /// or below its `last_fetched_epoch` (Kafka's `divergingEpoch`), the records left empty.
    pub diverging_epoch: Option<(i32, i64)>,
}

impl FetchedPartition {
    fn failed(index: i32, error: ReplicaError) -> Self {
        FetchedPartition {
            index,
            error: Some(error),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Bytes::new(),
            aborted_transactions: Some(Vec::new()),
            diverging_epoch: None,
        }
    }
}

/// One requested partition, resolved once and re-read on every wake-up.
struct Slot {
    request: FetchPartition,
    partition: Option<Arc<Partition>>,
    /// Why it could not be resolved; taken into the answer, which is then sent at once.
    error: Option<ReplicaError>,
    /// A follower's fetch position was recorded (once per request, at its first read).
    recorded: bool,
}

impl ReplicaManager {
    /// Reads every requested partition, waiting (up to `max_wait`) until at least `min_bytes` are
    /// there. Answers per partition, in request order; any error answers at once, as Kafka does.
    pub async fn fetch_messages(
        &self,
        params: &FetchParams,
        topics: Vec<FetchTopic>,
    ) -> Vec<Vec<FetchedPartition>> {
        let image = self.metadata.image();
        let mut slots: Vec<Vec<Slot>> = topics
            .into_iter()
            .map(|topic| {
                let resolved = Self::resolve(&image, &topic.topic);
                topic
                    .partitions
                    .into_iter()
                    .map(|request| {
                        let name = match (&resolved, &topic.topic) {
                            (Ok(Some(t)), _) => Ok(t.name.as_str()),
                            (Ok(None), TopicRef::Name(n)) => Ok(n.as_str()),
                            (Ok(None), TopicRef::Id(_)) | (Err(_), _) => {
                                Err(ReplicaError::UnknownTopicId)
                            }
                        };
                        let found = name.and_then(|n| self.hosted(&image, n, request.index));
                        match found {
                            Ok(p) => Slot {
                                request,
                                partition: Some(p),
                                error: None,
                                recorded: false,
                            },
                            Err(e) => Slot {
                                request,
                                partition: None,
                                error: Some(e),
                                recorded: false,
                            },
                        }
                    })
                    .collect()
            })
            .collect();

        // Consumers wait for records to be committed, followers for records to be appended.
        let follower = params.is_from_follower();
        let mut watches: Vec<watch::Receiver<i64>> = slots
            .iter()
            .flatten()
            .filter_map(|s| {
                let p = s.partition.as_ref()?;
                Some(if follower {
                    p.subscribe_log_end()
                } else {
                    p.subscribe()
                })
            })
            .collect();
        let deadline = Instant::now() + params.max_wait;
        loop {
            // Mark the current watermarks seen before reading, so an append after the read wakes us.
            for w in &mut watches {
                w.borrow_and_update();
            }
            let (results, bytes, errored) = read_all(&mut slots, params, &self.isr_changes);
            if bytes >= params.min_bytes
                || errored
                || watches.is_empty()
                || Instant::now() >= deadline
            {
                return results;
            }
            tokio::select! {
                _ = any_changed(&mut watches) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Reads every partition once. Returns the answers, the record bytes gathered, and whether any
/// partition answered with an error (Kafka then responds at once instead of waiting).
fn read_all(
    slots: &mut [Vec<Slot>],
    params: &FetchParams,
    isr_changes: &IsrChanges,
) -> (Vec<Vec<FetchedPartition>>, usize, bool) {
    let mut remaining = params.max_bytes;
    let mut total = 0usize;
    let mut errored = false;
    let mut out = Vec::with_capacity(slots.len());
    for topic in slots.iter_mut() {
        let mut partitions = Vec::with_capacity(topic.len());
        for slot in topic.iter_mut() {
            let req = &slot.request;
            // KIP-74: the first batch of the first non-empty partition is returned even if too big.
            let min_one = total == 0;
            let limit = req.max_bytes.min(remaining);
            let record = !std::mem::replace(&mut slot.recorded, true);
            let data = match (&slot.partition, slot.error.take()) {
                (_, Some(e)) => FetchedPartition::failed(req.index, e),
                (Some(p), None) => {
                    let record = record.then_some(isr_changes);
                    read_partition(p, req, limit, min_one, params, record)
                }
                (None, None) => {
                    FetchedPartition::failed(req.index, ReplicaError::UnknownTopicOrPartition)
                }
            };
            if data.error.is_some() {
                errored = true;
            }
            let n = data.records.len();
            total += n;
            remaining = remaining.saturating_sub(n);
            partitions.push(data);
        }
        out.push(partitions);
    }
    (out, total, errored)
}

/// One partition's read. `record`: this is a follower's first read for the request, whose position
/// the leader records (and whose ISR changes go to `record`'s queue).
fn read_partition(
    p: &Arc<Partition>,
    req: &FetchPartition,
    limit: usize,
    min_one: bool,
    params: &FetchParams,
    record: Option<&IsrChanges>,
) -> FetchedPartition {
    // Consumers and followers alike read from the leader only (no KIP-392 replica selector).
    if let Err(e) = p.check_leader_epoch(req.current_leader_epoch, true) {
        return FetchedPartition::failed(req.index, e);
    }
    let follower = params.is_from_follower();
    // Kafka's `followerReplicaOrThrow`: only a replica of the partition may fetch as one. At our
    // epoch, the stranger may be a replica we do not know of yet (a reassignment): it retries.
    if follower && !p.state().replicas.contains(&params.replica_id) {
        let error = if req.current_leader_epoch >= 0 {
            ReplicaError::UnknownLeaderEpoch {
                requested: req.current_leader_epoch,
                current: p.leader_epoch(),
            }
        } else {
            ReplicaError::NotLeaderOrFollower
        };
        return FetchedPartition::failed(req.index, error);
    }
    let mut diverging_epoch = None;
    if follower && req.last_fetched_epoch >= 0 {
        // Kafka's `Partition.readRecords`: the follower's last epoch must end where the leader's
        // log says it does, at or after its fetch offset; else it truncates first. An epoch the
        // leader cannot place, or an offset below its log start, is out of range.
        let (epoch, end) = p.end_offset_for_epoch(req.last_fetched_epoch);
        let log_start = p.log_start_offset();
        if epoch < 0 || end < 0 || req.fetch_offset < log_start {
            let error = ReplicaError::from(LogError::OffsetOutOfRange {
                offset: req.fetch_offset,
                start: log_start,
                end: p.high_watermark(),
            });
            let mut data = FetchedPartition::failed(req.index, error);
            data.high_watermark = p.high_watermark();
            data.log_start_offset = log_start;
            return data;
        }
        if epoch < req.last_fetched_epoch || end < req.fetch_offset {
            diverging_epoch = Some((epoch, end));
        }
    }
    // A follower's fetch offset is its log end: it may move the high watermark and the ISR, before
    // the answer tells it the high watermark (not when it is diverging: that offset is not its log's).
    if let (Some(changes), None) = (record.filter(|_| follower), diverging_epoch) {
        let now = crate::clock::now_ms();
        if let Some(change) = p.record_follower_fetch(
            params.replica_id,
            params.replica_epoch,
            req.fetch_offset,
            now,
        ) {
            changes.submit(p.clone(), change);
        }
    }
    let hw = p.high_watermark();
    let mut data = FetchedPartition {
        index: req.index,
        error: None,
        high_watermark: hw,
        last_stable_offset: hw,
        log_start_offset: p.log_start_offset(),
        records: Bytes::new(),
        aborted_transactions: (params.isolation == Isolation::ReadCommitted).then(Vec::new),
        diverging_epoch,
    };
    if diverging_epoch.is_some() {
        return data;
    }
    let read = if follower {
        p.read_to_log_end(req.fetch_offset, limit, min_one)
    } else {
        p.read(req.fetch_offset, limit, min_one)
    };
    match read {
        Ok(slice) => data.records = slice.bytes,
        Err(e) => {
            if !matches!(e, LogError::OffsetOutOfRange { .. }) {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "fetch read failed");
            }
            data.error = Some(e.into());
        }
    }
    data
}

/// Resolves when any of the watched high watermarks moves (or its partition goes away).
async fn any_changed(watches: &mut [watch::Receiver<i64>]) {
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = watches
        .iter_mut()
        .map(|w| {
            Box::pin(async move {
                let _ = w.changed().await;
            }) as Pin<Box<dyn Future<Output = ()> + Send>>
        })
        .collect();
    std::future::poll_fn(|cx| {
        for w in waits.iter_mut() {
            if w.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}
