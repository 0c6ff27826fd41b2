//! The coordinator's errors, each one a Kafka error code; mapped to the wire at one edge
//! ([`TxnError::code_for`]), where older request versions get their older codes.

use kafka_protocol::error::ResponseError;

use crate::broker::internal_topic::InternalTopicError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("invalid request")]
    InvalidRequest,
    #[error("not the transaction coordinator")]
    NotCoordinator,
    #[error("the transaction coordinator is loading")]
    CoordinatorLoadInProgress,
    #[error("the transaction coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("a transition of this transactional id is in progress")]
    ConcurrentTransactions,
    #[error("transaction timeout out of range")]
    InvalidTransactionTimeout,
    #[error("the producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    #[error("the producer has been fenced by a newer epoch")]
    ProducerFenced,
    #[error("the transaction is in a state that does not allow this")]
    InvalidTxnState,
    #[error("unexpected coordinator state")]
    UnknownServerError,
    #[error("no such transactional id")]
    TransactionalIdNotFound,
}

/// The APIs whose answer for a fenced producer depends on their version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnApi {
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
}

impl TxnError {
    pub fn response_error(self) -> ResponseError {
        match self {
            TxnError::InvalidRequest => ResponseError::InvalidRequest,
            TxnError::NotCoordinator => ResponseError::NotCoordinator,
            TxnError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
            TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
            TxnError::UnknownServerError => ResponseError::UnknownServerError,
            TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
        }
    }

    /// The error code for `api` at `version`: PRODUCER_FENCED (90) exists from InitProducerId v4 and
    /// AddPartitionsToTxn / AddOffsetsToTxn / EndTxn v2; older clients get INVALID_PRODUCER_EPOCH,
    /// as KafkaApis answers them.
    pub fn code_for(self, api: TxnApi, version: i16) -> i16 {
        let since = match api {
            TxnApi::InitProducerId => 4,
            _ => 2,
        };
        if self == TxnError::ProducerFenced && version < since {
            return ResponseError::InvalidProducerEpoch.code();
        }
        self.response_error().code()
    }
}

/// Kafka's TransactionStateManager maps a failed append to the transaction log so: the client finds
/// its coordinator again and retries.
impl From<InternalTopicError> for TxnError {
    fn from(e: InternalTopicError) -> TxnError {
        match e {
            InternalTopicError::NotLeader(_) | InternalTopicError::Storage(_) => {
                TxnError::NotCoordinator
            }
            InternalTopicError::TooLarge { .. } | InternalTopicError::Encode(_) => {
                TxnError::UnknownServerError
            }
            InternalTopicError::ShuttingDown
            | InternalTopicError::NotHosted(_)
            | InternalTopicError::NotEnoughReplicas(_)
            | InternalTopicError::NotEnoughReplicasAfterAppend(_)
            | InternalTopicError::TimedOut(_) => TxnError::CoordinatorNotAvailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_producers_get_the_code_their_version_knows() {
        let f = TxnError::ProducerFenced;
        assert_eq!(f.code_for(TxnApi::InitProducerId, 3), 47);
        assert_eq!(f.code_for(TxnApi::InitProducerId, 4), 90);
        assert_eq!(f.code_for(TxnApi::EndTxn, 1), 47);
        assert_eq!(f.code_for(TxnApi::AddPartitionsToTxn, 2), 90);
        assert_eq!(
            TxnError::ConcurrentTransactions.code_for(TxnApi::EndTxn, 0),
            51
        );
        assert_eq!(
            TxnError::InvalidProducerIdMapping.code_for(TxnApi::EndTxn, 0),
            49
        );
        assert_eq!(TxnError::InvalidTxnState.code_for(TxnApi::EndTxn, 0), 48);
        assert_eq!(
            TxnError::InvalidTransactionTimeout.code_for(TxnApi::InitProducerId, 0),
            50
        );
    }
}
