//! Whether partitions are in a producer's ongoing transaction, for a partition leader about to take
//! the first transactional batch of that producer (AddPartitionsToTxn v4 `verify_only`, KIP-890
//! part 1): Kafka's `handleVerifyPartitionsInTransaction`. A batch arriving after its transaction
//! ended (a late retry, a zombie) would otherwise open a transaction no coordinator will ever end.

use kafka_protocol::error::ResponseError;

use super::coordinator::TransactionCoordinator;
use super::error::TxnError;
use super::state::{TopicPartition, TxnState};

impl TransactionCoordinator {
    /// Every partition's code: NONE when it is in the ongoing transaction of `producer_id` at
    /// `producer_epoch`, TRANSACTION_ABORTABLE when not; one code for all when the id is not
    /// coordinated here, unknown, of another producer id (INVALID_PRODUCER_ID_MAPPING), another
    /// epoch (PRODUCER_FENCED) or completing (CONCURRENT_TRANSACTIONS).
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, i16)> {
        let all = |code: i16| partitions.iter().map(|tp| (tp.clone(), code)).collect();
        if transactional_id.is_empty() {
            return all(ResponseError::InvalidRequest.code());
        }
        if let Err(e) = self.coordinator_epoch(transactional_id) {
            return all(e.response_error().code());
        }
        let txns = self.lock();
        let Some(md) = txns.get(transactional_id) else {
            return all(TxnError::InvalidProducerIdMapping.response_error().code());
        };
        if md.producer_id != producer_id {
            return all(TxnError::InvalidProducerIdMapping.response_error().code());
        }
        if md.producer_epoch != producer_epoch {
            return all(TxnError::ProducerFenced.response_error().code());
        }
        if matches!(md.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return all(TxnError::ConcurrentTransactions.response_error().code());
        }
        partitions
            .iter()
            .map(|tp| {
                let code = if md.partitions.contains(tp) {
                    0
                } else {
                    ResponseError::TransactionAbortable.code()
                };
                (tp.clone(), code)
            })
            .collect()
    }
}
