//! Fetch (key 1): the wire side of `ReplicaManager::fetch_messages`, which serves whole record
//! batches straight from segment bytes and long-polls. Fetch sessions (KIP-227) are declined by
//! answering session id 0, as Kafka does when its session cache is full. A partition led elsewhere
//! (or asked at an older epoch) carries the leader from v12 and its endpoint from v16 (KIP-951).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::broker::replica::{
    CurrentLeader, FetchParams, FetchPartition, FetchTopic, FetchedPartition, Isolation, TopicRef,
};

pub const VERSIONS: (i16, i16) = (4, 18);

pub async fn handle(ctx: RequestContext, req: FetchRequest) -> HandlerResult {
    let v = ctx.api_version;
    if req.session_id != 0 {
        // We never hand out sessions, so any id the client names is unknown to us.
        let response = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return Ok(Some(response.into()));
    }
    // v15+ moved the replica id into ReplicaState (KIP-903).
    let (replica_id, replica_epoch) = if v >= 15 {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    let params = FetchParams {
        replica_id,
        replica_epoch,
        isolation: if req.isolation_level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        },
        max_wait: Duration::from_millis(req.max_wait_ms.max(0) as u64),
        min_bytes: req.min_bytes.max(0) as usize,
        max_bytes: req.max_bytes.max(0) as usize,
    };
    let mut names = Vec::with_capacity(req.topics.len());
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = if v >= 13 {
                TopicRef::Id(t.topic_id)
            } else {
                TopicRef::Name(t.topic.0.to_string())
            };
            names.push((t.topic, t.topic_id, topic.clone()));
            FetchTopic {
                topic,
                partitions: t
                    .partitions
                    .into_iter()
                    .map(|p| FetchPartition {
                        index: p.partition,
                        fetch_offset: p.fetch_offset,
                        current_leader_epoch: p.current_leader_epoch,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                        last_fetched_epoch: if v >= 12 { p.last_fetched_epoch } else { -1 },
                    })
                    .collect(),
            }
        })
        .collect();
    let results = ctx.broker.replicas.fetch_messages(&params, topics).await;
    let mut endpoints = BTreeMap::new();
    let responses = names
        .into_iter()
        .zip(results)
        .map(|((name, id, topic), partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    let index = p.index;
                    let data = partition_data(p);
                    let moved = [
                        ResponseError::NotLeaderOrFollower,
                        ResponseError::FencedLeaderEpoch,
                    ];
                    if !moved.iter().any(|e| e.code() == data.error_code) {
                        return data;
                    }
                    let leader = ctx.broker.replicas.current_leader(&topic, index);
                    data.with_current_leader(hint(leader, ctx.session.listener(), &mut endpoints))
                })
                .collect();
            let response = FetchableTopicResponse::default().with_partitions(partitions);
            if v >= 13 {
                response.with_topic_id(id)
            } else {
                response.with_topic(name)
            }
        })
        .collect();
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
        .with_node_endpoints(endpoints.into_values().collect());
    Ok(Some(response.into()))
}

/// KIP-951: where a refused client should go, collecting the leader's endpoint once per broker.
fn hint(
    leader: CurrentLeader,
    listener: &str,
    endpoints: &mut BTreeMap<i32, NodeEndpoint>,
) -> LeaderIdAndEpoch {
    if let Some(b) = leader.endpoint {
        let (host, port) = b.endpoint(listener);
        let (host, port) = (host.to_string(), port);
        endpoints.entry(b.id).or_insert_with(|| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
                .with_rack(b.rack.map(StrBytes::from_string))
        });
    }
    LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(leader.leader_id))
        .with_leader_epoch(leader.leader_epoch)
}

fn partition_data(p: FetchedPartition) -> PartitionData {
    let diverging = p
        .diverging_epoch
        .map_or_else(EpochEndOffset::default, |(epoch, end)| {
            EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end)
        });
    PartitionData::default()
        .with_diverging_epoch(diverging)
        .with_partition_index(p.index)
        .with_error_code(p.error.as_ref().map_or(0, |e| e.code().code()))
        .with_high_watermark(p.high_watermark)
        .with_last_stable_offset(p.last_stable_offset)
        .with_log_start_offset(p.log_start_offset)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(p.aborted_transactions.map(|txns| {
            txns.into_iter()
                .map(|(producer_id, first_offset)| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(producer_id))
                        .with_first_offset(first_offset)
                })
                .collect()
        }))
        .with_records(Some(p.records))
}
