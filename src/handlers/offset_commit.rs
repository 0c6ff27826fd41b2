//! OffsetCommit (key 8): committed offsets, acknowledged once they are in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::group::{code_of, CommitPartition};

pub const VERSIONS: (i16, i16) = (2, 9);

pub async fn handle(ctx: RequestContext, req: OffsetCommitRequest) -> HandlerResult {
    // Writes go to __consumer_offsets, created on first use.
    ctx.broker.group.ensure_offsets_topic(&ctx.broker).await;
    let v = ctx.api_version;
    let requested: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| CommitPartition {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.map(|m| m.to_string()),
                })
                .collect();
            (t.name.0.to_string(), partitions)
        })
        .collect();
    let result = ctx.broker.group.commit(
        &req.group_id.0,
        req.generation_id_or_member_epoch,
        &req.member_id,
        req.group_instance_id.as_deref(),
        topics,
    );
    let topics: Vec<OffsetCommitResponseTopic> = match result {
        Ok(per_topic) => per_topic
            .into_iter()
            .map(|(t, ps)| topic(t, ps.into_iter().map(|(p, r)| (p, code_of(&r))).collect()))
            .collect(),
        Err(e) => requested
            .into_iter()
            .map(|(t, ps)| topic(t, ps.into_iter().map(|p| (p, e.code())).collect()))
            .collect(),
    };
    Ok(Some(
        OffsetCommitResponse::default().with_topics(topics).into(),
    ))
}

fn topic(name: String, partitions: Vec<(i32, i16)>) -> OffsetCommitResponseTopic {
    OffsetCommitResponseTopic::default()
        .with_name(TopicName(StrBytes::from_string(name)))
        .with_partitions(
            partitions
                .into_iter()
                .map(|(p, code)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect(),
        )
}
