//! DescribeProducers (key 61, KIP-664): each hosted replica's producer state (id, epoch, last
//! sequence and timestamp, coordinator epoch, open transaction's first offset), as the admin
//! client's `describeProducers` and `kafka-transactions.sh find-hanging` read it.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 0);

pub async fn handle(ctx: RequestContext, req: DescribeProducersRequest) -> HandlerResult {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let answer = PartitionResponse::default().with_partition_index(p);
                    match ctx.broker.replicas.active_producers(t.name.0.as_str(), p) {
                        Err(e) => answer
                            .with_error_code(e.code().code())
                            .with_error_message(e.message().map(StrBytes::from_string)),
                        Ok(producers) => answer.with_active_producers(
                            producers
                                .into_iter()
                                .map(|s| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(s.producer_id))
                                        .with_producer_epoch(i32::from(s.producer_epoch))
                                        .with_last_sequence(s.last_sequence)
                                        .with_last_timestamp(s.last_timestamp)
                                        .with_coordinator_epoch(s.coordinator_epoch)
                                        .with_current_txn_start_offset(s.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Ok(Some(
        DescribeProducersResponse::default()
            .with_topics(topics)
            .into(),
    ))
}
