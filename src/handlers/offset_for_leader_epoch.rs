//! OffsetForLeaderEpoch (key 23), v2-4 (KIP-320, KIP-279): for each partition, the largest leader epoch at
//! or below the one asked for and the offset where it ends, from the partition's leader-epoch cache.
//! Consumers use it to check after a leader change that their position was not truncated away; followers to
//! find where their log diverges. Versions 0-1 are gone from Kafka 4 (KIP-896).

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
                    match broker.replicas.last_offset_for_leader_epoch(
                        &t.topic.0,
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    ) {
                        Ok((epoch, end)) => answer.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => answer.with_error_code(e.code().code()),
                    }
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
