//! One partition replica hosted here: its log behind a lock, its role and epochs as the metadata
//! image last assigned them, what it knows of its followers while it leads, and watches of its high
//! watermark (consumers' long polls and acks=all wait on it) and log end (followers' long polls).
//! Split by concern: leader appends (`leader.rs`), transaction markers and read_committed
//! (`markers.rs`), the follower side (`follower.rs`), the high watermark, ISR and acks=all waits
//! (`high_watermark.rs`), and reads and upkeep of the log (`log_access.rs`).

mod follower;
mod high_watermark;
mod leader;
mod log_access;
mod markers;

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, RwLock};

use tokio::sync::watch;
use tracing::info;
use uuid::Uuid;

use super::isr::IsrTracker;
use super::replica::ReplicaError;
use super::txn_guard::TxnGuards;
use crate::cluster::PartitionInfo;
use crate::log::PartitionLog;

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
    /// What an append here needs: this replica leads, and, for an `acks_all` one, the ISR has at
    /// least `min_insync` members (NOT_ENOUGH_REPLICAS before anything is written, as Kafka).
    pub(super) fn check_can_append(
        &self,
        min_insync: i32,
        acks_all: bool,
    ) -> Result<(), ReplicaError> {
        if self.role != Role::Leader {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        if acks_all && (self.isr.len() as i32) < min_insync {
            return Err(ReplicaError::NotEnoughReplicas {
                isr: self.isr.len(),
                min_insync,
            });
        }
        Ok(())
    }

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
}
