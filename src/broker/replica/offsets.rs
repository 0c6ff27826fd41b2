//! Offset lookups (ListOffsets, OffsetForLeaderEpoch) and log-start moves (DeleteRecords) on the partitions
//! led here.

use tracing::{info, warn};

use super::{ReplicaError, ReplicaManager};
use crate::log::LogError;

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

/// Kafka's `ListOffsetsRequest.DEBUGGING_REPLICA_ID`: may ask a follower.
const DEBUGGING_REPLICA_ID: i32 = -2;

/// An offset ListOffsets found: its record's timestamp (-1 for the earliest and latest queries)
/// and the partition's current leader epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetFound {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: i32,
}

impl ReplicaManager {
    /// Kafka's `fetchOffsetForTimestamp`: earliest (-2), latest (-1, the high watermark, or the
    /// last stable offset when `read_committed`: isolation level 1), max timestamp (-3), or the
    /// first offset at or after `timestamp` (below the same bound). `Ok(None)`: no such offset.
    /// Only the leader answers, except to `replica_id` -2 (debugging tools).
    pub fn fetch_offset_for_timestamp(
        &self,
        replica_id: i32,
        topic: &str,
        index: i32,
        timestamp: i64,
        current_leader_epoch: i32,
        read_committed: bool,
    ) -> Result<Option<OffsetFound>, ReplicaError> {
        let p = self.hosted(&self.metadata.image(), topic, index)?;
        let epoch =
            p.check_leader_epoch(current_leader_epoch, replica_id != DEBUGGING_REPLICA_ID)?;
        let found = |offset: i64, timestamp: i64| {
            Some(OffsetFound {
                offset,
                timestamp,
                leader_epoch: epoch,
            })
        };
        let storage = |e: LogError| {
            warn!(topic = %p.topic, partition = p.index, error = %e, "timestamp lookup failed");
            ReplicaError::from(e)
        };
        // Kafka's `lastFetchableOffset` for the isolation level.
        let fetchable = || {
            if read_committed {
                p.last_stable_offset()
            } else {
                p.high_watermark()
            }
        };
        match timestamp {
            // Everything is local and there is no tiered storage: these collapse to the plain answers.
            EARLIEST | EARLIEST_LOCAL => Ok(found(p.log_start_offset(), -1)),
            LATEST => Ok(found(fetchable(), -1)),
            // Nothing is tiered: Kafka answers -1 ("no such offset") for these.
            LATEST_TIERED | EARLIEST_PENDING_UPLOAD => Ok(None),
            MAX_TIMESTAMP => match p.max_timestamp().map_err(storage)? {
                Some((ts, offset)) => Ok(found(offset, ts)),
                None => Ok(None),
            },
            ts if ts >= 0 => match p.offset_for_timestamp(ts).map_err(storage)? {
                Some((offset, found_ts)) if offset < fetchable() => Ok(found(offset, found_ts)),
                _ => Ok(None),
            },
            ts => Err(ReplicaError::InvalidRequest(format!(
                "unknown special timestamp {ts}"
            ))),
        }
    }

    /// Kafka's `lastOffsetForLeaderEpoch`: the largest epoch at or below `leader_epoch` and where it
    /// ends, from the leader's epoch cache ((-1, -1) when unknown). Leaders only, for consumers and
    /// followers alike, after the KIP-320 check of `current_leader_epoch`.
    pub fn last_offset_for_leader_epoch(
        &self,
        topic: &str,
        index: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<(i32, i64), ReplicaError> {
        let p = self.hosted(&self.metadata.image(), topic, index)?;
        p.check_leader_epoch(current_leader_epoch, true)?;
        Ok(p.end_offset_for_epoch(leader_epoch))
    }

    /// DeleteRecords: records below `offset` (-1: the high watermark) become unreadable. Returns
    /// the new log start offset (the low watermark).
    pub fn delete_records(
        &self,
        topic: &str,
        index: i32,
        offset: i64,
    ) -> Result<i64, ReplicaError> {
        let image = self.metadata.image();
        // As in Kafka: internal topics are never truncated by clients.
        if image.topics.get(topic).is_some_and(|t| t.internal) {
            return Err(ReplicaError::InternalTopic(topic.to_string()));
        }
        let p = self.hosted(&image, topic, index)?;
        p.check_leader_epoch(-1, true)?;
        if !p.with_log(|l| l.config().cleanup_delete) {
            return Err(ReplicaError::PolicyViolation);
        }
        match p.delete_records_before(offset) {
            Ok(low) => {
                info!(
                    topic,
                    partition = index,
                    log_start_offset = low,
                    "records deleted"
                );
                Ok(low)
            }
            Err(e) => {
                if !matches!(e, LogError::OffsetOutOfRange { .. }) {
                    warn!(topic, partition = index, error = %e, "delete records failed");
                }
                Err(e.into())
            }
        }
    }
}
