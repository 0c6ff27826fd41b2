//! OffsetForLeaderEpoch (key 23), v2-4 (KIP-320, KIP-279): for each partition, the largest leader epoch at
//! or below the one asked for and the offset where it ends, from the partition's leader-epoch cache.
//! Consumers use it to check after a leader change that their position was not truncated away; followers to
//! find where their log diverges. Versions 0-1 are gone from Kafka 4 (KIP-896).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{HandlerResult, RequestContext};
use crate::log::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};

pub const VERSIONS: (i16, i16) = (2, 4);

pub async fn handle(ctx: RequestContext, req: OffsetForLeaderEpochRequest) -> HandlerResult {
    let broker = &ctx.broker;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(UNDEFINED_EPOCH)
                        .with_end_offset(UNDEFINED_EPOCH_OFFSET);
                    let Some(partition) = broker.partitions.get(&t.topic.0, p.partition) else {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(code) = partition.check_leader_epoch(p.current_leader_epoch) {
                        return answer.with_error_code(code.code());
                    }
                    let (epoch, end) = partition.end_offset_for_epoch(p.leader_epoch);
                    answer.with_leader_epoch(epoch).with_end_offset(end)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(
        OffsetForLeaderEpochResponse::default()
            .with_topics(topics)
            .into(),
    ))
}
