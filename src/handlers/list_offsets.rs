//! ListOffsets (key 2): the wire side of `ReplicaManager::fetch_offset_for_timestamp` (earliest,
//! latest, max timestamp, or the first offset at or after a timestamp).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (1, 10);

pub async fn handle(ctx: RequestContext, req: ListOffsetsRequest) -> HandlerResult {
    let replicas = &ctx.broker.replicas;
    let v = ctx.api_version;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    match replicas.fetch_offset_for_timestamp(
                        req.replica_id.0,
                        &t.name.0,
                        p.partition_index,
                        p.timestamp,
                        p.current_leader_epoch,
                        req.isolation_level == 1,
                    ) {
                        // The leader epoch field exists from v4 on.
                        Ok(Some(found)) => response
                            .with_offset(found.offset)
                            .with_timestamp(found.timestamp)
                            .with_leader_epoch(if v >= 4 { found.leader_epoch } else { -1 }),
                        Ok(None) => response,
                        Err(e) => response.with_error_code(e.code().code()),
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
