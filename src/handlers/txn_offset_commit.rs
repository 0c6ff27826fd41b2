//! TxnOffsetCommit (key 28): a transactional producer's offsets for a consumer group
//! (`sendOffsetsToTransaction`), pending until the transaction's marker commits or aborts them.
//! v0-2 carry only the producer; v3 (KIP-447) adds the consumer's generation, member id and
//! instance id, which the coordinator checks. v4 (KIP-890) knows TRANSACTION_ABORTABLE; v5 is a
//! Transactions V2 client, which skips AddOffsetsToTxn: the offsets partition is added to its
//! transaction here.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, RequestContext};
use crate::group::{code_of, CommitPartition, TxnCommit};

pub const VERSIONS: (i16, i16) = (0, 5);

pub async fn handle(ctx: RequestContext, req: TxnOffsetCommitRequest) -> HandlerResult {
    // Writes go to __consumer_offsets, created on first use.
    ctx.broker.group.ensure_offsets_topic().await;
    let v = ctx.api_version;
    let topics: Vec<(String, Vec<CommitPartition>)> = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| CommitPartition {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 2 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.map(|m| m.to_string()),
                    retention_ms: None,
                })
                .collect();
            (t.name.0.to_string(), partitions)
        })
        .collect();
    // As Kafka's coordinator does with `transaction.partition.verification.enable` (KIP-890), the
    // group's offsets partition must be in the producer's ongoing transaction (AddOffsetsToTxn),
    // or, for v5, is added to it.
    let offsets_partition = crate::group::records::partition_for(
        req.group_id.0.as_str(),
        ctx.broker.group.offsets_partition_count(),
    );
    let guard = match ctx
        .broker
        .replicas
        .verify_txn_partition(
            req.transactional_id.0.as_str(),
            (req.producer_id.0, req.producer_epoch),
            (crate::group::offsets::OFFSETS_TOPIC, offsets_partition),
            v >= 5,
        )
        .await
    {
        Ok(guard) => guard,
        Err(code) => {
            let code = verification_code(code, v);
            let topics = topics
                .into_iter()
                .map(|(t, ps)| {
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            return Ok(Some(
                TxnOffsetCommitResponse::default()
                    .with_topics(topics)
                    .into(),
            ));
        }
    };
    let commit = TxnCommit {
        guard,
        transactional_id: req.transactional_id.0.to_string(),
        group_id: req.group_id.0.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        generation: if v >= 3 { req.generation_id } else { -1 },
        member_id: if v >= 3 {
            req.member_id.to_string()
        } else {
            String::new()
        },
        instance_id: if v >= 3 {
            req.group_instance_id.map(|i| i.to_string())
        } else {
            None
        },
        topics,
    };
    let results = ctx.broker.group.commit_txn_offsets(commit).await;
    let topics = results
        .into_iter()
        .map(|(t, ps)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, r)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(version_code(v, code_of(&r)))
                        })
                        .collect(),
                )
        })
        .collect();
    Ok(Some(
        TxnOffsetCommitResponse::default()
            .with_topics(topics)
            .into(),
    ))
}

/// KafkaApis: clients before v2 (0.11-2.0 producers) may crash on COORDINATOR_LOAD_IN_PROGRESS
/// (KAFKA-7296); they are told COORDINATOR_NOT_AVAILABLE instead.
fn version_code(version: i16, code: i16) -> i16 {
    if version < 2 && code == ResponseError::CoordinatorLoadInProgress.code() {
        ResponseError::CoordinatorNotAvailable.code()
    } else {
        code
    }
}

/// A coordinator's verification answer as TxnOffsetCommit clients of `version` know it (Kafka's
/// AddPartitionsToTxnManager and `maybeConvertOffsetCommitError`): fencing as
/// INVALID_PRODUCER_EPOCH, a partition not in the transaction as TRANSACTION_ABORTABLE
/// (INVALID_TXN_STATE before v4), and the retriable coordinator errors as
/// COORDINATOR_LOAD_IN_PROGRESS, which the client retries — CONCURRENT_TRANSACTIONS stays as it is
/// for v5 (Transactions V2: the previous transaction still completing is common and retried).
fn verification_code(code: i16, version: i16) -> i16 {
    let e = match ResponseError::try_from_code(code) {
        Some(ResponseError::ProducerFenced) => ResponseError::InvalidProducerEpoch,
        Some(ResponseError::TransactionAbortable) if version < 4 => ResponseError::InvalidTxnState,
        Some(ResponseError::ConcurrentTransactions) if version >= 5 => {
            ResponseError::ConcurrentTransactions
        }
        Some(
            ResponseError::NetworkException
            | ResponseError::ConcurrentTransactions
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator,
        ) => ResponseError::CoordinatorLoadInProgress,
        Some(e) => e,
        None => ResponseError::UnknownServerError,
    };
    e.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_clients_are_not_told_load_in_progress() {
        let loading = ResponseError::CoordinatorLoadInProgress.code();
        let unavailable = ResponseError::CoordinatorNotAvailable.code();
        assert_eq!(version_code(0, loading), unavailable);
        assert_eq!(version_code(1, loading), unavailable);
        assert_eq!(version_code(2, loading), loading);
        assert_eq!(version_code(3, 0), 0);
    }
}
