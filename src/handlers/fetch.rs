//! Fetch (key 1): serve whole record batches straight from segment bytes, long-polling until
//! `min_bytes` are available or `max_wait_ms` passes. Fetch sessions (KIP-227) are declined by
//! answering session id 0, as Kafka does when its session cache is full.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{HandlerResult, RequestContext};
use crate::broker::Partition;
use crate::log::LogError;

pub const VERSIONS: (i16, i16) = (4, 18);

/// One requested partition, resolved once and re-read on every wake-up.
struct Wanted {
    request: FetchPartition,
    partition: Result<Arc<Partition>, ResponseError>,
}

struct WantedTopic {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<Wanted>,
}

pub async fn handle(ctx: RequestContext, req: FetchRequest) -> HandlerResult {
    let v = ctx.api_version;
    if req.session_id != 0 {
        // We never hand out sessions, so any id the client names is unknown to us.
        let response = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return Ok(Some(response.into()));
    }
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let topics: Vec<WantedTopic> = req
        .topics
        .into_iter()
        .map(|t| {
            let (name, missing) = if v >= 13 {
                match image.topic_by_id(&t.topic_id) {
                    Some(info) => (
                        Some(info.name.clone()),
                        ResponseError::UnknownTopicOrPartition,
                    ),
                    None => (None, ResponseError::UnknownTopicId),
                }
            } else {
                (
                    Some(t.topic.0.to_string()),
                    ResponseError::UnknownTopicOrPartition,
                )
            };
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let partition = name
                        .as_deref()
                        .and_then(|n| broker.partitions.get(n, p.partition))
                        .ok_or_else(|| match name.as_deref() {
                            // A log this broker could not open: Kafka's offline partition.
                            Some(n) if broker.partitions.is_offline(n, p.partition) => {
                                ResponseError::KafkaStorageError
                            }
                            _ => missing,
                        });
                    Wanted {
                        request: p,
                        partition,
                    }
                })
                .collect();
            WantedTopic {
                name: t.topic,
                topic_id: t.topic_id,
                partitions,
            }
        })
        .collect();

    let mut watches: Vec<watch::Receiver<i64>> = topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|w| w.partition.as_ref().ok().map(|p| p.subscribe()))
        .collect();
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let read_committed = req.isolation_level == 1;
    loop {
        // Mark the current watermarks seen before reading, so an append after the read wakes us.
        for w in &mut watches {
            w.borrow_and_update();
        }
        let (responses, bytes, errored) = read_all(&topics, v, req.max_bytes, read_committed);
        if bytes >= req.min_bytes.max(0) as usize
            || errored
            || watches.is_empty()
            || Instant::now() >= deadline
        {
            let response = FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses);
            return Ok(Some(response.into()));
        }
        tokio::select! {
            _ = any_changed(&mut watches) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Reads every partition once. Returns the topics, the record bytes gathered, and whether any
/// partition answered with an error (Kafka then responds at once instead of waiting).
fn read_all(
    topics: &[WantedTopic],
    v: i16,
    max_bytes: i32,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut remaining = max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut errored = false;
    let mut out = Vec::with_capacity(topics.len());
    for topic in topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            let req = &wanted.request;
            // KIP-74: the first batch of the first non-empty partition is returned even if too big.
            let min_one = total == 0;
            let limit = (req.partition_max_bytes.max(0) as usize).min(remaining);
            let data = match &wanted.partition {
                Err(code) => error_data(req.partition, *code),
                Ok(p) => read_partition(p, req, limit, min_one, read_committed),
            };
            if data.error_code != 0 {
                errored = true;
            }
            let n = data.records.as_ref().map_or(0, Bytes::len);
            total += n;
            remaining = remaining.saturating_sub(n);
            partitions.push(data);
        }
        let response = FetchableTopicResponse::default().with_partitions(partitions);
        out.push(if v >= 13 {
            response.with_topic_id(topic.topic_id)
        } else {
            response.with_topic(topic.name.clone())
        });
    }
    (out, total, errored)
}

fn read_partition(
    p: &Partition,
    req: &FetchPartition,
    limit: usize,
    min_one: bool,
    read_committed: bool,
) -> PartitionData {
    // Leader epoch fencing (KIP-320): -1 means the client does not know the epoch.
    if req.current_leader_epoch >= 0 && req.current_leader_epoch != p.leader_epoch {
        let code = if req.current_leader_epoch < p.leader_epoch {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        };
        return error_data(req.partition, code);
    }
    let hw = p.high_watermark();
    let log_start = p.log_start_offset();
    let base = PartitionData::default()
        .with_partition_index(req.partition)
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(log_start)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(read_committed.then(Vec::new));
    match p.read(req.fetch_offset, limit, min_one) {
        Ok(slice) => base.with_records(Some(slice.bytes)),
        Err(LogError::OffsetOutOfRange { .. }) => base
            .with_error_code(ResponseError::OffsetOutOfRange.code())
            .with_records(Some(Bytes::new())),
        Err(e) => {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "fetch read failed");
            base.with_error_code(ResponseError::KafkaStorageError.code())
                .with_records(Some(Bytes::new()))
        }
    }
}

fn error_data(partition: i32, code: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(code.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(Bytes::new()))
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
