//! AddPartitionsToTxn (key 24): a transactional producer adds partitions to its transaction before
//! producing to them (v0-3, one transaction); from v4 (KIP-890) brokers send batches of
//! transactions: `verify_only`, a partition leader asking whether a producer's first
//! transactional batch belongs to its ongoing transaction, or not, the leader adding the partition
//! for a Transactions V2 client (Produce v12+, TxnOffsetCommit v5+).

use std::collections::BTreeMap;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::txn::state::TV_2;
use crate::txn::TopicPartition;

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(ctx: RequestContext, req: AddPartitionsToTxnRequest) -> HandlerResult {
    let txn = &ctx.broker.txn;
    if ctx.api_version <= 3 {
        let image = ctx.broker.metadata.image();
        let answer =
            crate::txn::api::add_partitions_to_txn(txn, &image, &req, ctx.api_version).await;
        return Ok(Some(answer.into()));
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let id = t.transactional_id.0.as_str();
        let partitions: Vec<TopicPartition> = t
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|p| (topic.name.0.to_string(), *p))
            })
            .collect();
        let codes: Vec<(TopicPartition, i16)> = if t.verify_only {
            txn.verify_partitions(id, t.producer_id.0, t.producer_epoch, &partitions)
        } else {
            let producer = (t.producer_id.0, t.producer_epoch);
            let code = txn
                .add_partitions_at(id, producer, partitions.clone(), TV_2)
                .await
                .map_or_else(|e| e.response_error().code(), |_| 0);
            partitions.into_iter().map(|tp| (tp, code)).collect()
        };
        let mut by_topic: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> =
            BTreeMap::new();
        for ((topic, p), code) in codes {
            by_topic.entry(topic).or_default().push(
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(p)
                    .with_partition_error_code(code),
            );
        }
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(
                    by_topic
                        .into_iter()
                        .map(|(name, partitions)| {
                            AddPartitionsToTxnTopicResult::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_results_by_partition(partitions)
                        })
                        .collect(),
                ),
        );
    }
    Ok(Some(
        AddPartitionsToTxnResponse::default()
            .with_results_by_transaction(results)
            .into(),
    ))
}
