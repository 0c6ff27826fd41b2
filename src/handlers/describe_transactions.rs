//! DescribeTransactions (key 65, KIP-664): the coordinator's state of each transactional id it
//! holds (TRANSACTIONAL_ID_NOT_FOUND for one it does not know, NOT_COORDINATOR for one it does not
//! coordinate).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (0, 0);

pub async fn handle(ctx: RequestContext, req: DescribeTransactionsRequest) -> HandlerResult {
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let row = TransactionState::default().with_transactional_id(id.clone());
            match ctx.broker.txn.describe_transaction(id.0.as_str()) {
                Err(e) => row.with_error_code(e.response_error().code()),
                Ok(md) => {
                    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (t, p) in &md.partitions {
                        topics.entry(t.as_str()).or_default().push(*p);
                    }
                    row.with_transaction_state(StrBytes::from_static_str(md.state.name()))
                        .with_transaction_timeout_ms(md.timeout_ms)
                        .with_transaction_start_time_ms(md.start_ms)
                        .with_producer_id(ProducerId(md.producer_id))
                        .with_producer_epoch(md.producer_epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(t, partitions)| {
                                    TopicData::default()
                                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                                        .with_partitions(partitions)
                                })
                                .collect(),
                        )
                }
            }
        })
        .collect();
    Ok(Some(
        DescribeTransactionsResponse::default()
            .with_transaction_states(states)
            .into(),
    ))
}
