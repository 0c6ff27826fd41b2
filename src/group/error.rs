//! Why a group operation failed, and the Kafka error code each reason maps to at the handler edge.

use kafka_protocol::error::ResponseError;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("The configured groupId is invalid.")]
    InvalidGroupId,
    #[error("The session timeout is not within the range allowed by the broker.")]
    InvalidSessionTimeout,
    #[error("The coordinator is not available.")]
    CoordinatorNotAvailable,
    #[error("This is not the correct coordinator.")]
    NotCoordinator,
    #[error("The coordinator is loading and hence can't process requests.")]
    CoordinatorLoadInProgress,
    #[error(
        "The group member's supported protocols are incompatible with those of existing members."
    )]
    InconsistentGroupProtocol,
    #[error("The coordinator is not aware of this member.")]
    UnknownMemberId,
    #[error("The group member needs to have a valid member id before actually entering a consumer group.")]
    MemberIdRequired,
    #[error("The consumer group has reached its max size.")]
    GroupMaxSizeReached,
    #[error("The broker rejected this static consumer since another consumer with the same group.instance.id has registered with a different member.id.")]
    FencedInstanceId,
    #[error("Specified group generation id is not valid.")]
    IllegalGeneration,
    #[error("The group is rebalancing, so a rejoin is needed.")]
    RebalanceInProgress,
    #[error("The group id does not exist.")]
    GroupIdNotFound,
    #[error("The group is not empty.")]
    NonEmptyGroup,
    #[error("The consumer group is actively subscribed to the topic.")]
    GroupSubscribedToTopic,
    #[error("The metadata field of the offset request was too large.")]
    OffsetMetadataTooLarge,
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    #[error("cannot write to __consumer_offsets: {0}")]
    Storage(String),
    /// The group's or the commit's record is larger than the offsets topic's `max.message.bytes`.
    #[error("record of {size} bytes exceeds the offsets topic's max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: u32 },
    /// Kafka's UNKNOWN_SERVER_ERROR, which it answers for a group assignment it cannot store.
    #[error("The server experienced an unexpected error when processing the request.")]
    UnknownServerError,
    /// A transactional offset commit from a producer epoch older than the one the offsets
    /// partition has seen (the log's producer-state check).
    #[error("Producer attempted to produce with an old epoch.")]
    InvalidProducerEpoch,
    /// OffsetFetch with `require_stable`: a transaction holds an offset of the partition.
    #[error("There are unstable offsets that need to be cleared.")]
    UnstableOffsetCommit,
    /// TxnOffsetCommit whose producer's transaction ended (a marker came in) after the offsets
    /// partition was verified to be in it.
    #[error("The producer attempted a transactional operation in an invalid state.")]
    InvalidTxnState,
}

impl GroupError {
    pub fn code(&self) -> i16 {
        let e = match self {
            GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
            GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            GroupError::NotCoordinator => ResponseError::NotCoordinator,
            GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
            GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
            GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
            GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
            GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
            GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
            GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            // Kafka answers an offsets-log append that failed for storage (KAFKA_STORAGE_ERROR, a
            // full disk) with NOT_COORDINATOR: the client rediscovers the coordinator and retries.
            GroupError::Storage(_) => ResponseError::NotCoordinator,
            // Kafka's storeOffsets: MESSAGE_TOO_LARGE becomes INVALID_COMMIT_OFFSET_SIZE.
            GroupError::RecordTooLarge { .. } => ResponseError::InvalidCommitOffsetSize,
            GroupError::UnknownServerError => ResponseError::UnknownServerError,
            GroupError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
            GroupError::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
            GroupError::InvalidTxnState => ResponseError::InvalidTxnState,
        };
        e.code()
    }
}

impl From<crate::broker::internal_topic::InternalTopicError> for GroupError {
    fn from(e: crate::broker::internal_topic::InternalTopicError) -> GroupError {
        use crate::broker::internal_topic::InternalTopicError as E;
        match e {
            // Kafka's coordinators (CoordinatorOperationExceptionHelper, GroupMetadataManager):
            // NOT_ENOUGH_REPLICAS(_AFTER_APPEND) and REQUEST_TIMED_OUT become
            // COORDINATOR_NOT_AVAILABLE; the client retries at the same coordinator.
            E::ShuttingDown
            | E::NotHosted(_)
            | E::NotEnoughReplicas(_)
            | E::NotEnoughReplicasAfterAppend(_)
            | E::TimedOut(_) => GroupError::CoordinatorNotAvailable,
            E::TooLarge { size, max } => GroupError::RecordTooLarge { size, max },
            E::Encode(_) => GroupError::UnknownServerError,
            E::Storage(s) => GroupError::Storage(s),
            E::NotLeader(_) => GroupError::NotCoordinator,
        }
    }
}

/// The code of a result: 0 on success.
pub fn code_of<T>(r: &Result<T, GroupError>) -> i16 {
    match r {
        Ok(_) => 0,
        Err(e) => e.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::internal_topic::InternalTopicError as E;

    /// Kafka 4.x's coordinator error normalisation (CoordinatorOperationExceptionHelper; the classic
    /// GroupMetadataManager for NOT_ENOUGH_REPLICAS_AFTER_APPEND): replication shortfalls and
    /// timeouts are COORDINATOR_NOT_AVAILABLE, a lost leadership NOT_COORDINATOR.
    #[test]
    fn offsets_write_failures_map_as_kafkas_coordinator_does() {
        let unavailable = ResponseError::CoordinatorNotAvailable.code();
        for e in [
            E::NotEnoughReplicas(0),
            E::NotEnoughReplicasAfterAppend(0),
            E::TimedOut(0),
            E::NotHosted(0),
        ] {
            assert_eq!(GroupError::from(e.clone()).code(), unavailable, "{e:?}");
        }
        assert_eq!(
            GroupError::from(E::NotLeader(0)).code(),
            ResponseError::NotCoordinator.code()
        );
        assert_eq!(
            GroupError::from(E::Storage("full".into())).code(),
            ResponseError::NotCoordinator.code()
        );
    }
}
