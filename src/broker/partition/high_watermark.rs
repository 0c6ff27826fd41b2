//! The leader's high watermark and ISR: the watermark moved up by followers' fetches, acks=all waits
//! on it, and the ISR expansions and shrinks to ask of the controller.

use std::time::Duration;

use tracing::info;

use super::{Partition, ReplicaState, Role};
use crate::broker::isr::IsrTracker;
use crate::broker::replica::ReplicaError;
use crate::cluster::IsrChange;

impl Partition {
    /// Moves the high watermark up to what the ISR has, if this broker leads (Kafka's
    /// `maybeIncrementLeaderHW`). Never down: a shrinking ISR does not un-commit records.
    pub(super) fn advance_high_watermark(
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
}
