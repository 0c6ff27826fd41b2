//! OffsetDelete (key 47): removes a group's committed offsets for topics it is not subscribed to.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{HandlerResult, RequestContext};
use crate::group::code_of;

pub const VERSIONS: (i16, i16) = (0, 0);

pub async fn handle(ctx: RequestContext, req: OffsetDeleteRequest) -> HandlerResult {
    // Writes go to __consumer_offsets, created on first use.
    ctx.broker.group.ensure_offsets_topic().await;
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
    let result = ctx
        .broker
        .group
        .delete_offsets(&req.group_id.0, requested)
        .await;
    let response = match result {
        Ok(per_topic) => OffsetDeleteResponse::default().with_topics(
            per_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(kafka_protocol::messages::TopicName(
                            kafka_protocol::protocol::StrBytes::from_string(t),
                        ))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, r)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code_of(&r))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    Ok(Some(response.into()))
}
