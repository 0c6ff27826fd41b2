//! Produce (key 0): the wire side of `ReplicaManager::append_records`, which validates each
//! partition's record batches and appends the client's bytes as they are (only the base offset and
//! leader epoch are written into them). A partition led elsewhere is refused with
//! NOT_LEADER_OR_FOLLOWER and, from v10, the leader and its endpoint (KIP-951).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::broker::replica::{
    AppendOrigin, AppendParams, CurrentLeader, ProducePartition, ProduceTopic, ProducedPartition,
    ReplicaError, TopicRef, TxnProduce,
};

pub const VERSIONS: (i16, i16) = (3, 13);

pub async fn handle(ctx: RequestContext, req: ProduceRequest) -> HandlerResult {
    let v = ctx.api_version;
    let params = AppendParams {
        acks: req.acks,
        timeout_ms: req.timeout_ms,
        origin: AppendOrigin::Client { peer: ctx.peer },
    };
    // Batches of a transactional producer are verified with its coordinator before they open its
    // transaction in a partition (KIP-890); v11+ clients know TRANSACTION_ABORTABLE; v12+ clients
    // (Transactions V2) leave adding the partition to the leader.
    let txn = req
        .transactional_id
        .as_ref()
        .filter(|t| !t.0.is_empty())
        .map(|t| TxnProduce {
            transactional_id: t.0.to_string(),
            abortable_supported: v > 10,
            add_partitions: v > 11,
        });
    let mut names = Vec::with_capacity(req.topic_data.len());
    let topics = req
        .topic_data
        .into_iter()
        .map(|t| {
            // v13 names topics by id only.
            let topic = if v >= 13 {
                TopicRef::Id(t.topic_id)
            } else {
                TopicRef::Name(t.name.0.to_string())
            };
            names.push((t.name, t.topic_id, topic.clone()));
            ProduceTopic {
                topic,
                partitions: t
                    .partition_data
                    .into_iter()
                    .map(|p| ProducePartition {
                        index: p.index,
                        records: p.records.unwrap_or_default(),
                    })
                    .collect(),
            }
        })
        .collect();
    let results = ctx
        .broker
        .replicas
        .append_records_txn(&params, topics, txn.as_ref())
        .await;
    if req.acks == 0 {
        return Ok(None);
    }
    let mut endpoints = BTreeMap::new();
    let responses = names
        .into_iter()
        .zip(results)
        .map(|((name, id, topic), partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    let index = p.index;
                    let response = partition_response(p);
                    if response.error_code != ResponseError::NotLeaderOrFollower.code() {
                        return response;
                    }
                    let leader = ctx.broker.replicas.current_leader(&topic, index);
                    response.with_current_leader(hint(
                        leader,
                        ctx.session.listener(),
                        &mut endpoints,
                    ))
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(if v >= 13 { TopicName::default() } else { name })
                .with_topic_id(id)
                .with_partition_responses(partitions)
        })
        .collect();
    Ok(Some(
        ProduceResponse::default()
            .with_responses(responses)
            .with_node_endpoints(endpoints.into_values().collect())
            .into(),
    ))
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

fn partition_response(produced: ProducedPartition) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(produced.index);
    match produced.result {
        Ok(info) => response
            .with_base_offset(info.base_offset)
            .with_log_append_time_ms(info.log_append_time)
            .with_log_start_offset(info.log_start_offset),
        Err(e) => match e {
            ReplicaError::KeylessRecords {
                log_start_offset, ..
            } => keyless_refusal(response, &e).with_log_start_offset(log_start_offset),
            _ => failed(response, &e),
        },
    }
}

fn failed(response: PartitionProduceResponse, e: &ReplicaError) -> PartitionProduceResponse {
    response
        .with_error_code(e.code().code())
        .with_error_message(e.message().map(StrBytes::from_string))
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// Records without a key on a compacted topic, answered as Kafka's `LogValidator` does (KIP-467):
/// INVALID_RECORD, each record in `record_errors` (v8+), and the first three in the error message.
fn keyless_refusal(
    response: PartitionProduceResponse,
    e: &ReplicaError,
) -> PartitionProduceResponse {
    let errors = e
        .record_errors()
        .into_iter()
        .map(|(i, message)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(Some(StrBytes::from_string(message)))
        })
        .collect();
    failed(response, e).with_record_errors(errors)
}
