//! OffsetFetch (key 9): committed offsets of one group (v1-7) or several (v8+); -1 where none.
//! `require_stable` needs no waiting: without transactions no offset is ever pending.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::group::{Committed, FetchedOffsets, GroupError};

pub const VERSIONS: (i16, i16) = (1, 9);

fn values(c: Option<Committed>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

pub async fn handle(ctx: RequestContext, req: OffsetFetchRequest) -> HandlerResult {
    let v = ctx.api_version;
    let coordinator = &ctx.broker.group;
    if v >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let result = coordinator.fetch_offsets(&g.group_id.0, topics);
                let (code, fetched) = split(result);
                let topics = fetched
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, c)| {
                                        let (offset, epoch, meta) = values(c);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(StrBytes::from_string(meta)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
                    .with_error_code(code)
            })
            .collect();
        return Ok(Some(
            OffsetFetchResponse::default().with_groups(groups).into(),
        ));
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let (code, fetched) = split(coordinator.fetch_offsets(&req.group_id.0, topics));
    let topics = fetched
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, c)| {
                            let (offset, epoch, meta) = values(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(if v >= 5 { epoch } else { -1 })
                                .with_metadata(Some(StrBytes::from_string(meta)))
                                // v1 has no top-level error: the group error goes on each partition.
                                .with_error_code(if v < 2 { code } else { 0 })
                        })
                        .collect(),
                )
        })
        .collect();
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if v >= 2 {
        response = response.with_error_code(code);
    }
    Ok(Some(response.into()))
}

fn split(result: Result<FetchedOffsets, GroupError>) -> (i16, FetchedOffsets) {
    match result {
        Ok(f) => (0, f),
        Err(e) => (e.code(), Vec::new()),
    }
}
