//! ListOffsets (key 2): earliest, latest (the high watermark), max timestamp, or the first offset
//! at or after a timestamp (through the time index).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{HandlerResult, RequestContext};
use crate::broker::Partition;

pub const VERSIONS: (i16, i16) = (1, 10);

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

pub async fn handle(ctx: RequestContext, req: ListOffsetsRequest) -> HandlerResult {
    let broker = &ctx.broker;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match broker.partitions.get(&t.name.0, p.partition_index) {
                        None => response
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                        Some(partition) => lookup(
                            &partition,
                            p.timestamp,
                            p.current_leader_epoch,
                            ctx.api_version,
                            response,
                        ),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(
        ListOffsetsResponse::default().with_topics(topics).into(),
    ))
}

fn lookup(
    p: &Partition,
    timestamp: i64,
    current_epoch: i32,
    v: i16,
    response: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    if current_epoch >= 0 && current_epoch != p.leader_epoch {
        let code = if current_epoch < p.leader_epoch {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        };
        return response
            .with_error_code(code.code())
            .with_timestamp(-1)
            .with_offset(-1);
    }
    // The leader epoch field exists from v4 on.
    let epoch = if v >= 4 { p.leader_epoch } else { -1 };
    let found = |offset: i64, ts: i64| {
        response
            .clone()
            .with_offset(offset)
            .with_timestamp(ts)
            .with_leader_epoch(epoch)
    };
    match timestamp {
        // Everything is local and there is no tiered storage: these collapse to the plain answers.
        EARLIEST | EARLIEST_LOCAL => found(p.log_start_offset(), -1),
        LATEST | LATEST_TIERED | EARLIEST_PENDING_UPLOAD => {
            if timestamp == LATEST {
                found(p.high_watermark(), -1)
            } else {
                // Nothing is tiered: Kafka answers -1 ("no such offset") for these.
                response.with_offset(-1).with_timestamp(-1)
            }
        }
        MAX_TIMESTAMP => match p.max_timestamp() {
            Ok(Some((ts, offset))) => found(offset, ts),
            Ok(None) => response.with_offset(-1).with_timestamp(-1),
            Err(e) => storage_error(p, e, response),
        },
        ts if ts >= 0 => match p.offset_for_timestamp(ts) {
            Ok(Some((offset, found_ts))) if offset < p.high_watermark() => found(offset, found_ts),
            Ok(_) => response.with_offset(-1).with_timestamp(-1),
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "timestamp lookup failed");
                response
                    .with_error_code(ResponseError::KafkaStorageError.code())
                    .with_offset(-1)
                    .with_timestamp(-1)
            }
        },
        _ => response
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_offset(-1)
            .with_timestamp(-1),
    }
}

fn storage_error(
    p: &Partition,
    e: crate::log::LogError,
    response: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "timestamp lookup failed");
    response
        .with_error_code(ResponseError::KafkaStorageError.code())
        .with_offset(-1)
        .with_timestamp(-1)
}
