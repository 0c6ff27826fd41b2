//! The leader's appends of produced batches: the role and acks=all checked under the same locks as
//! the append, transactional batches against their verification guard, storage failures noted.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tracing::{info, warn};

use super::Partition;
use crate::broker::replica::ReplicaError;
use crate::broker::txn_guard::TxnGuard;
use crate::log::{AppendInfo, AppendOrigin, BatchHeader, FlushPolicy, LogError};

impl Partition {
    /// Appends validated batches if this broker leads the partition (Kafka's
    /// `appendRecordsToLeader`); the role cannot change until the append is done.
    pub fn append_as_leader(
        &self,
        records: BytesMut,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<AppendInfo, ReplicaError> {
        self.append_as_leader_with_acks(records, headers, now_ms, false)
            .map(|(info, _)| info)
    }

    /// [`Self::append_as_leader`], and for `acks_all` first the check that the ISR has at least
    /// min.insync.replicas members (NOT_ENOUGH_REPLICAS, under the same lock as the append, as
    /// Kafka). Returns the leader epoch it appended at, for [`Self::wait_committed_at`].
    pub fn append_as_leader_with_acks(
        &self,
        records: BytesMut,
        headers: &[BatchHeader],
        now_ms: i64,
        acks_all: bool,
    ) -> Result<(AppendInfo, i32), ReplicaError> {
        self.append_as_leader_guarded(
            records,
            headers,
            now_ms,
            acks_all,
            None,
            AppendOrigin::Client,
        )
    }

    /// [`Self::append_as_leader_with_acks`] with acks=all of batches a coordinator writes for a
    /// producer (the group coordinator's transactional offset commits): their producer epoch is
    /// checked, not their sequence (Kafka's `AppendOrigin.COORDINATOR`).
    pub fn append_as_coordinator(
        &self,
        records: BytesMut,
        headers: &[BatchHeader],
        now_ms: i64,
        guard: Option<TxnGuard>,
    ) -> Result<(AppendInfo, i32), ReplicaError> {
        self.append_as_leader_guarded(
            records,
            headers,
            now_ms,
            true,
            guard,
            AppendOrigin::Coordinator,
        )
    }

    /// [`Self::append_as_leader_with_acks`] of a transactional batch verified with its coordinator
    /// under `guard` (refused before the log if a marker for its producer came in meanwhile), from
    /// `origin`.
    pub fn append_as_leader_guarded(
        &self,
        records: BytesMut,
        headers: &[BatchHeader],
        now_ms: i64,
        acks_all: bool,
        guard: Option<TxnGuard>,
        origin: AppendOrigin,
    ) -> Result<(AppendInfo, i32), ReplicaError> {
        let state = self.read_state();
        let mut log = self.lock();
        let min_insync = log.config().min_insync_replicas;
        state.check_can_append(min_insync, acks_all)?;
        if let Some(guard) = guard {
            // A batch verified alongside one appended first finds the transaction open (Kafka's
            // `hasOngoingTransaction` before the guard).
            let open = headers.first().is_some_and(|h| {
                log.producer_state().get(h.producer_id).is_some_and(|e| {
                    e.epoch == h.producer_epoch && e.current_txn_first_offset.is_some()
                })
            });
            if !open {
                self.lock_txn_guards().take(guard)?;
            }
        }
        let epoch = state.leader_epoch;
        let result = if log.config().flush == FlushPolicy::Always {
            tokio::task::block_in_place(|| log.append_from(records, headers, epoch, now_ms, origin))
        } else {
            log.append_from(records, headers, epoch, now_ms, origin)
        };
        self.note_storage(&result);
        let info = result?;
        let leo = log.log_end_offset();
        drop(log);
        self.log_end.send_replace(leo);
        // A leader alone in its ISR commits at once; others wait for their followers' fetches.
        self.advance_high_watermark(&state, &self.lock_isr(), leo, min_insync);
        Ok((info, epoch))
    }

    /// acks=all's precondition, for writers that append through [`Self::append_as_leader`]: this
    /// broker leads and the ISR has at least min.insync.replicas members.
    pub fn check_enough_replicas(&self) -> Result<(), ReplicaError> {
        let state = self.read_state();
        let min_insync = self.lock().config().min_insync_replicas;
        state.check_can_append(min_insync, true)
    }

    /// One log line when appends start failing for storage reasons (a full disk: every retry of every
    /// producer would fail the same way) and one when they succeed again.
    pub(super) fn note_storage(&self, result: &Result<AppendInfo, LogError>) {
        match result {
            Err(e @ (LogError::Io(_) | LogError::Corrupt(_))) => {
                if !self.storage_failing.swap(true, Ordering::Relaxed) {
                    warn!(topic = %self.topic, partition = self.index, error = %e,
                        "appends failing (KAFKA_STORAGE_ERROR until they succeed again)");
                }
            }
            Ok(_) => {
                if self.storage_failing.swap(false, Ordering::Relaxed) {
                    info!(topic = %self.topic, partition = self.index, "appends succeed again");
                }
            }
            Err(_) => {}
        }
    }
}
