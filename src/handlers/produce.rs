//! Produce (key 0): validate each partition's record batches (header, lengths, CRC) and append the
//! client's bytes as they are; only the base offset and leader epoch are written into them. Batches of
//! idempotent producers are checked against the partition's producer state by the log, under its lock.

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, warn};

use super::{HandlerResult, RequestContext};
use crate::clock::now_ms;
use crate::log::{
    keyless_records, validate_batches, BatchError, BatchHeader, LogError, ProducerError,
    TimestampType,
};

/// Kafka's RecordBatch.NO_TIMESTAMP: the record has no timestamp, and none is checked.
const NO_TIMESTAMP: i64 = -1;

pub const VERSIONS: (i16, i16) = (3, 13);

/// How far a batch for a compacted topic may be decompressed to check its keys.
const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 << 20;

pub async fn handle(ctx: RequestContext, req: ProduceRequest) -> HandlerResult {
    let broker = &ctx.broker;
    let v = ctx.api_version;
    let acks_valid = matches!(req.acks, -1..=1);
    let image = broker.metadata.image();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        // v13 names topics by id only.
        let (name, unknown_topic) = if v >= 13 {
            match image.topic_by_id(&topic.topic_id) {
                Some(t) => (Some(t.name.clone()), ResponseError::UnknownTopicOrPartition),
                None => (None, ResponseError::UnknownTopicId),
            }
        } else {
            (
                Some(topic.name.0.to_string()),
                ResponseError::UnknownTopicOrPartition,
            )
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let response = PartitionProduceResponse::default().with_index(data.index);
            if !acks_valid {
                partitions.push(failed(response, ResponseError::InvalidRequiredAcks, None));
                continue;
            }
            let Some(partition) = name
                .as_deref()
                .and_then(|n| broker.partitions.get(n, data.index))
            else {
                let code = match name.as_deref().and_then(|n| image.topics.get(n)) {
                    // A log this broker could not open: Kafka's offline partition.
                    Some(t) if broker.partitions.is_offline(&t.name, data.index) => {
                        ResponseError::KafkaStorageError
                    }
                    Some(t)
                        if t.partitions
                            .iter()
                            .any(|p| p.partition == data.index && p.leader != broker.node_id) =>
                    {
                        ResponseError::NotLeaderOrFollower
                    }
                    _ => unknown_topic,
                };
                partitions.push(failed(response, code, None));
                continue;
            };
            // Internal topics (__consumer_offsets) are written by the broker only, as in Kafka.
            if name
                .as_deref()
                .and_then(|n| image.topics.get(n))
                .is_some_and(|t| t.internal)
            {
                warn!(peer = %ctx.peer, topic = %partition.topic, "rejected produce to an internal topic");
                partitions.push(failed(
                    response,
                    ResponseError::InvalidTopicException,
                    Some(format!(
                        "Cannot append to internal topic {}",
                        partition.topic
                    )),
                ));
                continue;
            }
            let records = data.records.unwrap_or_default();
            let (max_message_bytes, compacted, window) = partition.with_log(|l| {
                let c = l.config();
                let window = (c.timestamp_type == TimestampType::CreateTime)
                    .then_some((c.timestamp_before_max_ms, c.timestamp_after_max_ms));
                (c.max_message_bytes, c.cleanup_compact, window)
            });
            let checked = validate_batches(&records, max_message_bytes)
                .and_then(|h| client_batch_violation(&h).map_or(Ok(h), Err))
                .and_then(|h| timestamp_violation(&h, window, now_ms()).map_or(Ok(h), Err))
                .and_then(|h| {
                    // As Kafka's LogValidator: only compacted topics look inside the batch.
                    let keyless = if compacted {
                        keyless_records(&records, MAX_DECOMPRESSED_BATCH_BYTES)?
                    } else {
                        Vec::new()
                    };
                    Ok((h, keyless))
                });
            let headers = match checked {
                Ok((_, keyless)) if !keyless.is_empty() => {
                    warn!(peer = %ctx.peer, topic = %partition.topic, partition = data.index,
                        records = keyless.len(), "rejected produce: records without a key on a compacted topic");
                    let refused = keyless_refusal(response, &keyless, &partition.topic, data.index);
                    partitions.push(refused.with_log_start_offset(partition.log_start_offset()));
                    continue;
                }
                Ok((h, _)) => h,
                Err(e) => {
                    warn!(peer = %ctx.peer, topic = %partition.topic, partition = data.index, error = %e,
                        "rejected produce");
                    partitions.push(failed(response, batch_error_code(&e), Some(e.to_string())));
                    continue;
                }
            };
            if let Err(e) = broker.disk.admit(records.len() as u64, now_ms()) {
                partitions.push(failed(
                    response,
                    ResponseError::KafkaStorageError,
                    Some(e.to_string()),
                ));
                continue;
            }
            // One copy of the client's bytes into a buffer the log may patch (offsets, epoch).
            let owned = BytesMut::from(&records[..]);
            match partition.append(owned, &headers, now_ms()) {
                Ok(info) => {
                    if info.duplicate {
                        debug!(peer = %ctx.peer, topic = %partition.topic, partition = data.index,
                            base_offset = info.base_offset, "retried batch acknowledged, not written again");
                    }
                    partitions.push(
                        response
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(info.log_append_time)
                            .with_log_start_offset(info.log_start_offset),
                    )
                }
                Err(e) => {
                    // Storage failures are logged by the partition, once per burst.
                    if !matches!(e, LogError::Io(_) | LogError::Corrupt(_)) {
                        warn!(topic = %partition.topic, partition = data.index, error = %e, "append failed");
                    }
                    let code = match &e {
                        LogError::Batch(b) => batch_error_code(b),
                        LogError::Producer(p) => producer_error_code(p),
                        LogError::Io(_) | LogError::Corrupt(_) => ResponseError::KafkaStorageError,
                        _ => ResponseError::UnknownServerError,
                    };
                    partitions.push(failed(response, code, Some(e.to_string())));
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(if v >= 13 {
                    TopicName::default()
                } else {
                    topic.name
                })
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if req.acks == 0 {
        return Ok(None);
    }
    Ok(Some(
        ProduceResponse::default().with_responses(responses).into(),
    ))
}

fn failed(
    response: PartitionProduceResponse,
    error: ResponseError,
    message: Option<String>,
) -> PartitionProduceResponse {
    response
        .with_error_code(error.code())
        .with_error_message(message.map(StrBytes::from_string))
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// A batch refused because records at `keyless` (indices within the batch) have no key, answered as
/// Kafka's `LogValidator` does (KIP-467): INVALID_RECORD, each record in `record_errors` (v8+), and
/// the first three of them in the error message.
fn keyless_refusal(
    response: PartitionProduceResponse,
    keyless: &[i32],
    topic: &str,
    partition: i32,
) -> PartitionProduceResponse {
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    );
    let shown: Vec<String> = keyless
        .iter()
        .take(3)
        .map(|i| format!("RecordError(batchIndex={i}, message='{message}')"))
        .collect();
    let summary = format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        keyless.len(),
        shown.join(", ")
    );
    let errors = keyless
        .iter()
        .map(|&i| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(Some(StrBytes::from_string(message.clone())))
        })
        .collect();
    failed(response, ResponseError::InvalidRecord, Some(summary)).with_record_errors(errors)
}

/// Kafka's codes for refused idempotent batches. A stale epoch is INVALID_PRODUCER_EPOCH for every Produce
/// version: since 2.7 (KIP-588) Kafka no longer answers PRODUCER_FENCED on Produce.
fn producer_error_code(e: &ProducerError) -> ResponseError {
    match e {
        ProducerError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        ProducerError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        ProducerError::InvalidRecord(_) => ResponseError::InvalidRecord,
    }
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

fn batch_error_code(e: &BatchError) -> ResponseError {
    match e {
        BatchError::Corrupt(_) => ResponseError::CorruptMessage,
        BatchError::InvalidRecord(_) => ResponseError::InvalidRecord,
        BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        BatchError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
    }
}
