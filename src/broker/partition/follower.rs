//! The follower side of a partition: what it tells the leader, the fetched batches it appends as
//! they are, and the truncation where it diverged from the leader.

use bytes::Bytes;

use super::{Partition, Role};
use crate::broker::replica::ReplicaError;
use crate::log::{AppendInfo, BatchHeader, FetchSlice, FlushPolicy, LogError};

impl Partition {
    /// A follower's read (Kafka's `FetchIsolation.LOG_END`): up to the log end offset, past the high
    /// watermark.
    pub fn read_to_log_end(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<FetchSlice, LogError> {
        self.lock().read(offset, max_bytes, min_one)
    }

    /// What a follower sends the leader: (log end offset, its latest leader epoch if any).
    pub fn follower_fetch_state(&self) -> (i64, Option<i32>) {
        let log = self.lock();
        (log.log_end_offset(), log.leader_epochs().latest_epoch())
    }

    /// Appends batches fetched from `leader` at `leader_epoch` as they are (Kafka's
    /// `appendRecordsToFollowerOrFutureReplica`), if this broker still follows that leader at that
    /// epoch; the role cannot change until the append is done. The high watermark follows the
    /// leader's, never past this log's end, and so does the log start (the leader's retention or
    /// DeleteRecords, as Kafka's `maybeIncrementLogStartOffset` on followers).
    pub fn append_as_follower(
        &self,
        records: Bytes,
        headers: &[BatchHeader],
        fetched_from: (i32, i32),
        (leader_high_watermark, leader_log_start): (i64, i64),
        now_ms: i64,
    ) -> Result<Option<AppendInfo>, ReplicaError> {
        let state = self.read_state();
        let (leader, leader_epoch) = fetched_from;
        if state.role != (Role::Follower { leader }) || state.leader_epoch != leader_epoch {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        let mut log = self.lock();
        let info = if headers.is_empty() {
            None
        } else {
            let result = if log.config().flush == FlushPolicy::Always {
                tokio::task::block_in_place(|| log.append_as_follower(records, headers, now_ms))
            } else {
                log.append_as_follower(records, headers, now_ms)
            };
            self.note_storage(&result);
            Some(result?)
        };
        let end = log.log_end_offset();
        self.log_end.send_replace(end);
        log.note_high_watermark(leader_high_watermark.min(end));
        if leader_log_start > log.log_start_offset() {
            log.advance_log_start_offset(leader_log_start.min(end))?;
        }
        let hw = leader_high_watermark.min(end);
        self.high_watermark.send_if_modified(|old| {
            let moved = *old != hw;
            *old = hw;
            moved
        });
        Ok(info)
    }

    /// A follower cuts its log back to `offset` where it diverged from the leader (or empties it and
    /// restarts at the leader's log start when `restart` is set). Returns the new log end offset.
    pub fn truncate_as_follower(
        &self,
        fetched_from: (i32, i32),
        offset: i64,
        restart: bool,
    ) -> Result<i64, ReplicaError> {
        let state = self.read_state();
        let (leader, leader_epoch) = fetched_from;
        if state.role != (Role::Follower { leader }) || state.leader_epoch != leader_epoch {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        let mut log = self.lock();
        let end = if restart {
            log.truncate_fully_and_start_at(offset)?
        } else {
            log.truncate_to(offset)?
        };
        self.log_end.send_replace(end);
        self.high_watermark.send_if_modified(|old| {
            let moved = *old > end;
            *old = (*old).min(end);
            moved
        });
        Ok(end)
    }
}
