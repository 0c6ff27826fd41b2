//! The transactional APIs' answers, built from the coordinator's results: InitProducerId with a
//! transactional id, AddPartitionsToTxn (client form, v0-3), AddOffsetsToTxn, EndTxn and
//! FindCoordinator's TRANSACTION key.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};

use super::coordinator::TransactionCoordinator;
use super::error::{TxnApi, TxnError};
use super::state::TV_2;
use crate::cluster::{BrokerInfo, MetadataImage};

/// InitProducerId for a request that carries a transactional id (the handler keeps the
/// idempotent path and the malformed-request checks).
pub async fn init_producer_id(
    txn: &TransactionCoordinator,
    req: &InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let id = req.transactional_id.as_ref().map_or("", |t| t.0.as_str());
    let expected = (req.producer_id.0 != -1).then_some((req.producer_id.0, req.producer_epoch));
    match txn
        .init_producer_id(id, req.transaction_timeout_ms, expected)
        .await
    {
        Ok((pid, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code_for(TxnApi::InitProducerId, version))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// AddPartitionsToTxn v0-3. As KafkaApis does: partitions the metadata does not know get
/// UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, without asking the
/// coordinator; otherwise every partition gets the coordinator's answer.
pub async fn add_partitions_to_txn(
    txn: &TransactionCoordinator,
    image: &MetadataImage,
    req: &AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let known = |topic: &str, p: i32| {
        image
            .topics
            .get(topic)
            .is_some_and(|t| p >= 0 && (p as usize) < t.partitions.len())
    };
    let all_known = req
        .v3_and_below_topics
        .iter()
        .all(|t| t.partitions.iter().all(|p| known(t.name.0.as_str(), *p)));
    // The coordinator's one answer for every partition, when it is asked at all.
    let answered = if all_known {
        let partitions = req
            .v3_and_below_topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
            .collect();
        let result = txn
            .add_partitions(
                req.v3_and_below_transactional_id.0.as_str(),
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                partitions,
            )
            .await;
        Some(result.map_or_else(|e| e.code_for(TxnApi::AddPartitionsToTxn, version), |_| 0))
    } else {
        None
    };
    let code = |topic: &str, p: i32| match answered {
        Some(c) => c,
        None if known(topic, p) => ResponseError::OperationNotAttempted.code(),
        None => ResponseError::UnknownTopicOrPartition.code(),
    };
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code(t.name.0.as_str(), *p))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddOffsetsToTxn: the group's partition of `__consumer_offsets` (of `offsets_partitions`).
pub async fn add_offsets_to_txn(
    txn: &TransactionCoordinator,
    req: &AddOffsetsToTxnRequest,
    version: i16,
    offsets_partitions: i32,
) -> AddOffsetsToTxnResponse {
    let result = txn
        .add_offsets(
            req.transactional_id.0.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            req.group_id.0.as_str(),
            offsets_partitions,
        )
        .await;
    AddOffsetsToTxnResponse::default().with_error_code(
        result.map_or_else(|e| e.code_for(TxnApi::AddOffsetsToTxn, version), |_| 0),
    )
}

/// EndTxn: v5+ is Transactions V2 (the epoch bumped with every transaction; the producer id and
/// epoch to continue with are in the answer).
pub async fn end_txn(
    txn: &TransactionCoordinator,
    req: &EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let client_tv = if version >= 5 { TV_2 } else { 0 };
    let result = txn
        .end_txn_at(
            req.transactional_id.0.as_str(),
            (req.producer_id.0, req.producer_epoch),
            req.committed,
            client_tv,
        )
        .await;
    match result {
        Ok((id, epoch)) if client_tv == TV_2 => EndTxnResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Ok(_) => EndTxnResponse::default(),
        Err(e) => EndTxnResponse::default()
            .with_error_code(e.code_for(TxnApi::EndTxn, version))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// FindCoordinator with key type TRANSACTION: the leader of the id's `__transaction_state`
/// partition, the topic created on first use (COORDINATOR_NOT_AVAILABLE until it can be, or while
/// the partition has no leader).
pub async fn find_coordinator(
    txn: &TransactionCoordinator,
    transactional_id: &str,
) -> Result<BrokerInfo, TxnError> {
    if transactional_id.is_empty() {
        return Err(TxnError::InvalidRequest);
    }
    if !txn.ensure_topic().await {
        return Err(TxnError::CoordinatorNotAvailable);
    }
    txn.coordinator_for(transactional_id)
        .ok_or(TxnError::CoordinatorNotAvailable)
}
