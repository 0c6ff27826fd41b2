//! One partition replica hosted here: its log behind a lock, its role and epochs as the metadata
//! image last assigned them, what it knows of its followers while it leads, and watches of its high
//! watermark (consumers' long polls and acks=all wait on it) and log end (followers' long polls).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use super::isr::IsrTracker;
use super::replica::ReplicaError;
use super::txn_guard::{TxnGuard, TxnGuards};
use crate::cluster::{IsrChange, PartitionInfo};
use crate::log::{
    AppendInfo, AppendOrigin, BatchHeader, CleanStats, FetchSlice, FileSync, FlushPolicy, LogError,
    PartitionLog,
};

/// What this broker is for a partition (Kafka's `Partition.isLeader` / `leaderReplicaIdOpt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// `leader` is -1 while the partition has none.
    Follower {
        leader: i32,
    },
    /// The log is still here but the image no longer assigns the partition to this broker.
    NotReplica,
}

/// The partition's assignment as the image has it, seen from this broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    /// This broker.
    pub node_id: i32,
    pub role: Role,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl ReplicaState {
    pub fn from_image(info: &PartitionInfo, node_id: i32) -> Self {
        let role = if !info.replicas.contains(&node_id) {
            Role::NotReplica
        } else if info.leader == node_id {
            Role::Leader
        } else {
            Role::Follower {
                leader: info.leader,
            }
        };
        ReplicaState {
            node_id,
            role,
            leader_epoch: info.leader_epoch,
            partition_epoch: info.partition_epoch,
            replicas: info.replicas.clone(),
            isr: info.isr.clone(),
        }
    }
}

/// A leadership this broker gained or lost, or whose epoch moved, as a reconcile applied it:
/// what coordinators (groups, later transactions) load or unload on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadershipChange {
    pub topic: String,
    pub partition: i32,
    pub is_leader: bool,
    pub leader_epoch: i32,
}

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    /// Written by reconcile; appends hold it for reading, so an epoch change waits for them.
    state: RwLock<ReplicaState>,
    log: Mutex<PartitionLog>,
    /// Locked after `state` and `log` when more than one is needed.
    isr: Mutex<IsrTracker>,
    high_watermark: watch::Sender<i64>,
    log_end: watch::Sender<i64>,
    /// The last append failed for want of storage: logged once, then again when appends resume.
    storage_failing: AtomicBool,
    /// Transactional producers being verified with their coordinator; locked after `log`.
    txn_guards: Mutex<TxnGuards>,
}

impl Partition {
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        state: ReplicaState,
        mut log: PartitionLog,
    ) -> Self {
        let mut isr = IsrTracker::default();
        let leo = log.log_end_offset();
        if state.role == Role::Leader {
            log.assign_epoch_start(state.leader_epoch);
            isr.reset(
                &state.replicas,
                &state.isr,
                state.node_id,
                crate::clock::now_ms(),
                leo,
            );
        }
        // No high watermark is kept across restarts yet: the log's end stands in for it (a leader's
        // unreplicated tail becomes visible at once, but it is the log the followers adopt).
        Partition {
            topic,
            topic_id,
            index,
            state: RwLock::new(state),
            log: Mutex::new(log),
            isr: Mutex::new(isr),
            high_watermark: watch::Sender::new(leo),
            log_end: watch::Sender::new(leo),
            storage_failing: AtomicBool::new(false),
            txn_guards: Mutex::new(TxnGuards::default()),
        }
    }

    pub(super) fn lock_txn_guards(&self) -> std::sync::MutexGuard<'_, TxnGuards> {
        self.txn_guards.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_isr(&self) -> std::sync::MutexGuard<'_, IsrTracker> {
        self.isr.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, ReplicaState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The role, epoch, replicas and ISR in force.
    pub fn state(&self) -> ReplicaState {
        self.read_state().clone()
    }

    pub fn role(&self) -> Role {
        self.read_state().role
    }

    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.read_state().leader_epoch
    }

    /// Takes up the image's assignment (Kafka's `makeLeader`/`makeFollower`). Returns the change
    /// to report when leadership was gained or lost or the epoch moved.
    pub fn apply(&self, info: &PartitionInfo, node_id: i32) -> Option<LeadershipChange> {
        let new = ReplicaState::from_image(info, node_id);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if *state == new {
            return None;
        }
        let was_leader = state.role == Role::Leader;
        let changed =
            was_leader != (new.role == Role::Leader) || state.leader_epoch != new.leader_epoch;
        if changed {
            info!(topic = %self.topic, partition = self.index, role = ?new.role,
                leader_epoch = new.leader_epoch, "partition role applied");
        } else if state.isr != new.isr {
            info!(topic = %self.topic, partition = self.index, isr = ?new.isr,
                partition_epoch = new.partition_epoch, "ISR applied");
        }
        *state = new;
        if state.role == Role::Leader {
            let mut log = self.lock();
            let leo = log.log_end_offset();
            let mut isr = self.lock_isr();
            if changed {
                // A new leadership: its epoch starts at the log's end, and the high watermark
                // stays what it was as a follower until the ISR has more (Kafka's `makeLeader`).
                log.assign_epoch_start(state.leader_epoch);
                isr.reset(
                    &state.replicas,
                    &state.isr,
                    state.node_id,
                    crate::clock::now_ms(),
                    leo,
                );
            } else {
                isr.clear_pending_unless(state.partition_epoch);
            }
            let min_insync = log.config().min_insync_replicas;
            drop(log);
            self.advance_high_watermark(&state, &isr, leo, min_insync);
        }
        if changed {
            // Wake long polls and acks=all waits so they re-check leadership now, not at their
            // deadline.
            self.high_watermark.send_modify(|_| ());
            self.log_end.send_modify(|_| ());
        }
        changed.then(|| self.leadership(&state))
    }

    /// Moves the high watermark up to what the ISR has, if this broker leads (Kafka's
    /// `maybeIncrementLeaderHW`). Never down: a shrinking ISR does not un-commit records.
    fn advance_high_watermark(
        &self,
        state: &ReplicaState,
        isr: &IsrTracker,
        leo: i64,
        min_insync: i32,
    ) {
        if state.role != Role::Leader {
            return;
        }
        let Some(hw) = isr.high_watermark(&state.isr, state.node_id, leo, min_insync) else {
            return;
        };
        self.high_watermark.send_if_modified(|old| {
            let moved = hw > *old;
            if moved {
                *old = hw;
            }
            moved
        });
    }

    /// The leadership as it stands, in the form reconcile reports changes.
    pub fn leadership(&self, state: &ReplicaState) -> LeadershipChange {
        LeadershipChange {
            topic: self.topic.clone(),
            partition: self.index,
            is_leader: state.role == Role::Leader,
            leader_epoch: state.leader_epoch,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, PartitionLog> {
        // A panic while holding the lock cannot leave the log half-written in memory (appends are
        // applied to files first), so a poisoned lock is still usable.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

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
        if state.role != Role::Leader {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        let mut log = self.lock();
        let min_insync = log.config().min_insync_replicas;
        if acks_all && (state.isr.len() as i32) < min_insync {
            return Err(ReplicaError::NotEnoughReplicas {
                isr: state.isr.len(),
                min_insync,
            });
        }
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

    /// Appends the marker ending `producer_id`'s transaction (WriteTxnMarkers: COMMIT if `commit`,
    /// else ABORT, with the coordinator's epoch) if this broker leads, after acks=all's check that
    /// the ISR has min.insync.replicas members, as Kafka writes markers with acks=-1. Returns the
    /// leader epoch it appended at, for [`Self::wait_committed_at`] (the marker's offset + 1).
    /// Stale producer or coordinator epochs are `ReplicaError::Log(LogError::Producer(..))`:
    /// INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<(AppendInfo, i32), ReplicaError> {
        let state = self.read_state();
        if state.role != Role::Leader {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        let mut log = self.lock();
        let min_insync = log.config().min_insync_replicas;
        if (state.isr.len() as i32) < min_insync {
            return Err(ReplicaError::NotEnoughReplicas {
                isr: state.isr.len(),
                min_insync,
            });
        }
        let epoch = state.leader_epoch;
        let flush_always = log.config().flush == FlushPolicy::Always;
        let mut append = || {
            log.append_marker(
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
                epoch,
                now_ms,
            )
        };
        let result = if flush_always {
            tokio::task::block_in_place(append)
        } else {
            append()
        };
        self.note_storage(&result);
        let info = result?;
        self.lock_txn_guards().clear(producer_id, producer_epoch);
        log.note_high_watermark(self.high_watermark());
        let leo = log.log_end_offset();
        drop(log);
        info!(topic = %self.topic, partition = self.index, producer_id, producer_epoch, commit,
            coordinator_epoch, offset = info.base_offset, "transaction marker appended");
        self.log_end.send_replace(leo);
        self.advance_high_watermark(&state, &self.lock_isr(), leo, min_insync);
        Ok((info, epoch))
    }

    /// The last stable offset: the high watermark, or below it the first offset of a transaction
    /// still open or whose marker is not yet replicated (Kafka's `lastStableOffset`).
    pub fn last_stable_offset(&self) -> i64 {
        let mut log = self.lock();
        let hw = *self.high_watermark.borrow();
        log.first_unstable_offset(hw).map_or(hw, |f| f.min(hw))
    }

    /// A read_committed consumer's read (Kafka's `FetchIsolation.TXN_COMMITTED`): whole batches
    /// below the last stable offset, and (producer id, first offset) of the aborted transactions
    /// overlapping what was read, for the consumer to drop their records.
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<(FetchSlice, Vec<(i64, i64)>), LogError> {
        let mut log = self.lock();
        let hw = *self.high_watermark.borrow();
        let lso = log.first_unstable_offset(hw).map_or(hw, |f| f.min(hw));
        let slice = log.read_below(offset, max_bytes, min_one, lso)?;
        let aborted = match next_offset_after(&slice.bytes) {
            Some(upper) => log.aborted_transactions(offset, upper),
            None => Vec::new(),
        };
        Ok((slice, aborted))
    }

    /// acks=all's precondition, for writers that append through [`Self::append_as_leader`]: this
    /// broker leads and the ISR has at least min.insync.replicas members.
    pub fn check_enough_replicas(&self) -> Result<(), ReplicaError> {
        let state = self.read_state();
        if state.role != Role::Leader {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        let min_insync = self.lock().config().min_insync_replicas;
        if (state.isr.len() as i32) < min_insync {
            return Err(ReplicaError::NotEnoughReplicas {
                isr: state.isr.len(),
                min_insync,
            });
        }
        Ok(())
    }

    /// [`Self::wait_committed_at`] the leader epoch in force now (call it right after appending).
    pub async fn wait_committed(
        &self,
        next_offset: i64,
        timeout: Duration,
    ) -> Result<(), ReplicaError> {
        let epoch = self.leader_epoch();
        self.wait_committed_at(next_offset, epoch, timeout).await
    }

    /// Waits until the high watermark reaches `next_offset` (Kafka's DelayedProduce for acks=all):
    /// then the ISR has every record below it, unless it shrank under min.insync.replicas meanwhile
    /// (NOT_ENOUGH_REPLICAS_AFTER_APPEND). Leadership lost, or gained again at another epoch (the
    /// records may have been truncated since), is NOT_LEADER_OR_FOLLOWER; `timeout` passing is
    /// REQUEST_TIMED_OUT (the records may still become committed later).
    pub async fn wait_committed_at(
        &self,
        next_offset: i64,
        leader_epoch: i32,
        timeout: Duration,
    ) -> Result<(), ReplicaError> {
        let mut hw = self.high_watermark.subscribe();
        let wait = async {
            loop {
                let reached = *hw.borrow_and_update() >= next_offset;
                {
                    let state = self.read_state();
                    if state.role != Role::Leader || state.leader_epoch != leader_epoch {
                        return Err(ReplicaError::NotLeaderOrFollower);
                    }
                    if reached {
                        let min_insync = self.lock().config().min_insync_replicas;
                        if (state.isr.len() as i32) < min_insync {
                            return Err(ReplicaError::NotEnoughReplicasAfterAppend {
                                isr: state.isr.len(),
                                min_insync,
                            });
                        }
                        return Ok(());
                    }
                }
                if hw.changed().await.is_err() {
                    return Err(ReplicaError::NotLeaderOrFollower);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(ReplicaError::RequestTimedOut))
    }

    /// A follower's fetch at `fetch_offset` (its log end) with its broker epoch, to the leader:
    /// recorded, the high watermark moved up to what the ISR now has, and, if the follower is out of
    /// the ISR and has caught up, the ISR change to ask of the controller (Kafka's
    /// `updateFollowerFetchState` and `maybeExpandIsr`).
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Option<IsrChange> {
        let state = self.read_state();
        if state.role != Role::Leader {
            return None;
        }
        let log = self.lock();
        let (leo, min_insync) = (log.log_end_offset(), log.config().min_insync_replicas);
        drop(log);
        let mut isr = self.lock_isr();
        isr.record_fetch(replica, broker_epoch, fetch_offset, leo, now_ms);
        self.advance_high_watermark(&state, &isr, leo, min_insync);
        let new_isr = isr.expanded_isr(&state.isr, replica, self.high_watermark())?;
        Some(self.ask_isr(&state, &mut isr, new_isr))
    }

    /// The ISR without the followers that have not caught up for `lag_max_ms`, to ask of the
    /// controller, if this broker leads and any fell behind (Kafka's `maybeShrinkIsr`).
    pub fn lagging_isr_change(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrChange> {
        let state = self.read_state();
        if state.role != Role::Leader {
            return None;
        }
        let mut isr = self.lock_isr();
        let new_isr = isr.shrunk_isr(&state.isr, state.node_id, now_ms, lag_max_ms)?;
        info!(topic = %self.topic, partition = self.index, isr = ?state.isr, new_isr = ?new_isr,
            lag_max_ms, "followers fell behind; shrinking the ISR");
        Some(self.ask_isr(&state, &mut isr, new_isr))
    }

    fn ask_isr(&self, state: &ReplicaState, isr: &mut IsrTracker, new_isr: Vec<i32>) -> IsrChange {
        isr.set_pending(state.partition_epoch, new_isr.clone());
        IsrChange {
            topic: self.topic.clone(),
            topic_id: self.topic_id,
            partition: self.index,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr: new_isr
                .into_iter()
                .map(|r| {
                    (
                        r,
                        if r == state.node_id {
                            -1
                        } else {
                            isr.broker_epoch(r)
                        },
                    )
                })
                .collect(),
        }
    }

    /// The controller answered (or could not be asked) the ISR change based on `partition_epoch`:
    /// another may be asked.
    pub fn isr_change_answered(&self, partition_epoch: i32) {
        self.lock_isr().answered(partition_epoch);
    }

    /// OffsetForLeaderEpoch from the log's leader-epoch cache.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.lock().end_offset_for_epoch(epoch)
    }

    /// One log line when appends start failing for storage reasons (a full disk: every retry of every
    /// producer would fail the same way) and one when they succeed again.
    fn note_storage(&self, result: &Result<AppendInfo, LogError>) {
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

    /// A consumer's read (Kafka's `FetchIsolation.HIGH_WATERMARK`): from `offset`, whole batches below the
    /// high watermark only. An offset between the high watermark and the log end reads nothing, without
    /// error (as Kafka's `LocalLog.read`): a new leader's high watermark may trail the old leader's
    /// for a moment, and a consumer at the old one must not be sent to reset its position.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<FetchSlice, LogError> {
        let log = self.lock();
        let hw = *self.high_watermark.borrow();
        log.read_below(offset, max_bytes, min_one, hw)
    }

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

    /// DeleteRecords: records below `offset` (-1: the high watermark) become unreadable and the
    /// segments wholly below it are deleted. Returns the new log start offset (the low watermark).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut log = self.lock();
        let hw = *self.high_watermark.borrow();
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: log.log_start_offset(),
                end: hw,
            });
        }
        log.advance_log_start_offset(target)?;
        Ok(log.log_start_offset())
    }

    /// Kafka's `localLogWithEpochOrThrow`, the one check before serving a client: its
    /// `current_leader_epoch` (KIP-320; -1 when it knows none) must be ours: older is
    /// FENCED_LEADER_EPOCH (its metadata is stale), newer UNKNOWN_LEADER_EPOCH (ours is). Then, if
    /// `require_leader`, this broker must lead the partition. Returns the epoch in force.
    pub fn check_leader_epoch(
        &self,
        requested: i32,
        require_leader: bool,
    ) -> Result<i32, ReplicaError> {
        let state = self.read_state();
        let current = state.leader_epoch;
        if requested >= 0 && requested < current {
            return Err(ReplicaError::FencedLeaderEpoch { requested, current });
        }
        if requested > current {
            return Err(ReplicaError::UnknownLeaderEpoch { requested, current });
        }
        if require_leader && state.role != Role::Leader {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        Ok(current)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.lock().log_start_offset()
    }

    /// How many long-polling fetches (and other watchers) wait on the high watermark.
    pub fn watchers(&self) -> usize {
        self.high_watermark.receiver_count()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// A watch of the log end offset: followers' long polls wait for new records, not commits.
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.lock().offset_for_timestamp(ts)
    }

    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.lock().max_timestamp()
    }

    pub fn flush(&self) -> Result<(), LogError> {
        self.lock().flush()
    }

    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        self.lock().enforce_retention(now_ms)
    }

    /// One compaction pass if the log is due one. Only planning and the final swap hold the lock:
    /// appends and fetches go on while the sealed segments are cleaned.
    pub fn clean(&self, now_ms: i64) -> Result<Option<CleanStats>, LogError> {
        let plan = {
            let mut log = self.lock();
            // Transactions whose markers are replicated no longer hold the cleaner back.
            log.note_high_watermark(self.high_watermark());
            log.plan_cleaning(now_ms)
        };
        let Some(plan) = plan else {
            return Ok(None);
        };
        let cleaned = plan.run()?;
        self.lock().finish_cleaning(cleaned).map(Some)
    }

    /// Closes the log cleanly (indexes trimmed, producer snapshot and clean-shutdown marker written),
    /// so the next start skips the full recovery scan.
    pub fn close(self) -> Result<(), LogError> {
        self.into_log().close()
    }

    /// The first step of closing many logs at once (see [`PartitionLog::close_files`]).
    pub fn close_files(&self, sync: FileSync) -> Result<(), LogError> {
        self.lock().close_files(sync)
    }

    /// The last step of closing (see [`PartitionLog::mark_clean`]).
    pub fn mark_clean(self, sync: FileSync) -> Result<(), LogError> {
        self.into_log().mark_clean(sync)
    }

    fn into_log(self) -> PartitionLog {
        self.log.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        f(&mut self.lock())
    }
}

/// The offset after the last whole batch of a read, `None` when it holds none.
fn next_offset_after(bytes: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    let mut next = None;
    while let Some(h) = bytes
        .get(pos..pos + BatchHeader::SIZE)
        .and_then(|b| BatchHeader::parse(b).ok())
    {
        if h.total_size() < BatchHeader::SIZE {
            break;
        }
        next = Some(h.last_offset() + 1);
        pos += h.total_size();
    }
    next
}
