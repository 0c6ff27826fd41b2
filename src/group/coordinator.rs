//! The group coordinator: every group's state behind one mutex that is never held across an await,
//! and the rebalance transitions Kafka's GroupCoordinator makes (prepare, complete the join phase,
//! expire the sync phase, remove members). JoinGroup lives in `join.rs`; SyncGroup, Heartbeat and
//! LeaveGroup in `membership.rs`. A request that must wait (a join until the rebalance completes, a
//! follower's sync until the leader's assignment) gets a oneshot answered by whoever completes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::info;

use super::error::GroupError;
use super::group::{Group, GroupState, InitialDelay, JoinOutcome, SyncOutcome};
use crate::broker::coordinator_shards::CoordinatorShards;
use crate::broker::internal_topic::InternalTopic;
use crate::clock::Clock;
use crate::cluster::MetadataImage;
use crate::config::Config;

/// Settings the coordinator reads from the broker configuration.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offset_metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
}

impl GroupConfig {
    pub fn from_config(c: &Config) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: c.group_min_session_timeout_ms,
            max_session_timeout_ms: c.group_max_session_timeout_ms,
            max_size: c.group_max_size.max(1) as usize,
            offset_metadata_max_bytes: c.offset_metadata_max_bytes,
            offsets_retention_ms: c.offsets_retention_minutes.saturating_mul(60_000),
            offsets_retention_check_interval_ms: c.offsets_retention_check_interval_ms,
        }
    }
}

/// The handles the coordinator works through instead of the broker: its internal topic, the
/// metadata image as it changes, the clock it stamps records and states with, and where it spawns
/// its timers.
pub struct CoordinatorHandles {
    pub offsets: InternalTopic,
    pub metadata: watch::Receiver<Arc<MetadataImage>>,
    pub clock: Clock,
    pub spawner: tokio::runtime::Handle,
    /// This broker: it coordinates the groups of the offsets partitions it leads.
    pub node_id: i32,
}

pub struct GroupCoordinator {
    /// Timer tasks hold this, never the coordinator itself, so they never keep it alive.
    pub(super) me: Weak<GroupCoordinator>,
    pub(super) config: GroupConfig,
    pub(super) offsets: InternalTopic,
    pub(super) metadata: watch::Receiver<Arc<MetadataImage>>,
    pub(super) clock: Clock,
    pub(super) spawner: tokio::runtime::Handle,
    /// The offsets partitions led here, whose groups are in `groups`.
    pub(super) shards: CoordinatorShards,
    pub(super) groups: Mutex<HashMap<String, Group>>,
    next_uid: AtomicU64,
}

/// A request's answer: now, or once the group gets there.
pub(super) enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, handles: CoordinatorHandles) -> Arc<GroupCoordinator> {
        Arc::new_cyclic(|me| GroupCoordinator {
            me: me.clone(),
            config,
            shards: CoordinatorShards::new(handles.offsets.name(), handles.node_id),
            offsets: handles.offsets,
            metadata: handles.metadata,
            clock: handles.clock,
            spawner: handles.spawner,
            groups: Mutex::new(HashMap::new()),
            next_uid: AtomicU64::new(1),
        })
    }

    pub(super) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// `__consumer_offsets`' partition count (configured until it exists): AddOffsetsToTxn adds
    /// the group's partition of it to a transaction.
    pub fn offsets_partition_count(&self) -> i32 {
        self.offsets.partition_count()
    }

    /// The latest metadata image.
    pub(super) fn image(&self) -> Arc<MetadataImage> {
        self.metadata.borrow().clone()
    }

    /// Expires committed offsets every `offsets.retention.check.interval.ms` while the coordinator lives.
    pub(super) fn spawn_offset_expiry(&self) {
        let weak = self.me.clone();
        let every = Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(1));
        self.spawner.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(coordinator) = weak.upgrade() else {
                    break;
                };
                coordinator.expire_offsets(coordinator.now_ms()).await;
            }
        });
    }

    /// A number never handed out before by this coordinator: member incarnations and join epochs.
    pub(super) fn next_member_uid(&self) -> u64 {
        self.next_uid.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        // Every transition completes before the lock is released, so a poisoned map is consistent.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn maybe_prepare_rebalance(&self, g: &mut Group, reason: &str) {
        if matches!(
            g.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(g, reason);
        }
    }

    pub(super) fn prepare_rebalance(&self, g: &mut Group, reason: &str) {
        if g.state == GroupState::CompletingRebalance {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                m.answer_sync(SyncOutcome::failed(GroupError::RebalanceInProgress));
            }
        }
        let was_empty = g.state == GroupState::Empty;
        g.transition(GroupState::PreparingRebalance, self.now_ms());
        g.join_epoch = self.next_member_uid();
        let rebalance_timeout = g.max_rebalance_timeout_ms();
        let delay = self.config.initial_rebalance_delay_ms;
        info!(group = %g.id, generation = g.generation, reason, "preparing to rebalance");
        if was_empty && delay > 0 {
            g.initial_delay = Some(InitialDelay {
                remaining_ms: rebalance_timeout.saturating_sub(delay),
                new_member_joined: false,
            });
            self.spawn_join_timer(&g.id, g.join_epoch, delay.min(rebalance_timeout.max(1)));
        } else {
            g.initial_delay = None;
            self.spawn_join_timer(&g.id, g.join_epoch, rebalance_timeout);
        }
    }

    /// Completes the join phase if every member has rejoined (outside the initial delay).
    pub(super) fn try_complete_join(&self, g: &mut Group) {
        if g.state == GroupState::PreparingRebalance
            && g.initial_delay.is_none()
            && g.all_members_joined()
        {
            self.complete_join(g);
        }
    }

    /// A join timer fired: extend the initial delay if members keep arriving, else complete the join.
    pub(super) fn on_join_timer(&self, g: &mut Group) {
        if let Some(d) = g.initial_delay.as_mut() {
            if d.new_member_joined && d.remaining_ms > 0 {
                let next = self.config.initial_rebalance_delay_ms.min(d.remaining_ms);
                d.remaining_ms -= next;
                d.new_member_joined = false;
                g.join_epoch = self.next_member_uid();
                self.spawn_join_timer(&g.id, g.join_epoch, next);
                return;
            }
        }
        self.complete_join(g);
    }

    /// Kafka's `onCompleteJoin`: drop members that did not rejoin, start the next generation and
    /// answer every waiting JoinGroup (the leader gets the members' metadata).
    fn complete_join(&self, g: &mut Group) {
        g.initial_delay = None;
        g.join_epoch = self.next_member_uid();
        let missing: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            info!(group = %g.id, member = %id, "member did not rejoin in time; removed");
            self.remove_member(g, &id);
        }
        g.generation += 1;
        let now = self.now_ms();
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.transition(GroupState::Empty, now);
            info!(group = %g.id, generation = g.generation, "group is empty");
            self.store_group_logged(g, "cannot store empty group");
            return;
        }
        g.protocol = g.select_protocol();
        if !g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g.transition(GroupState::CompletingRebalance, now);
        info!(group = %g.id, generation = g.generation, protocol = ?g.protocol,
            members = g.members.len(), "rebalance: join phase complete");
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in ids {
            let outcome = g.join_outcome_for(&id, false);
            if let Some(m) = g.members.get_mut(&id) {
                m.last_heartbeat = Instant::now();
                m.answer_join(outcome);
            }
        }
        self.spawn_sync_timer(&g.id, g.join_epoch, g.max_rebalance_timeout_ms());
    }

    /// The sync phase outlived the rebalance timeout: members that never sent SyncGroup are removed
    /// and the group rebalances (Kafka's pending-sync expiry), so waiting followers are not stuck.
    pub(super) fn on_sync_timeout(&self, g: &mut Group) {
        let missing: Vec<String> = g
            .members
            .values()
            .filter(|m| m.sync_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &missing {
            info!(group = %g.id, member = %id, "member did not sync in time; removed");
            self.remove_member(g, id);
        }
        self.prepare_rebalance(g, "members did not sync in time");
        self.try_complete_join(g);
    }

    /// Removes a member and answers anything it waits on; keeps the leader and static map consistent.
    pub(super) fn remove_member(&self, g: &mut Group, id: &str) {
        if let Some(mut m) = g.members.shift_remove(id) {
            m.answer_join(JoinOutcome::failed(GroupError::UnknownMemberId, id));
            m.answer_sync(SyncOutcome::failed(GroupError::UnknownMemberId));
            if let Some(instance) = &m.instance_id {
                if g.static_members.get(instance).map(String::as_str) == Some(id) {
                    g.static_members.remove(instance);
                }
            }
        }
        if g.is_leader(id) {
            g.leader = g.members.keys().next().cloned();
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup` (leave or session expiry).
    pub(super) fn remove_member_and_update(&self, g: &mut Group, id: &str, reason: &str) {
        self.remove_member(g, id);
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(g, reason);
                self.try_complete_join(g);
            }
            GroupState::PreparingRebalance => self.try_complete_join(g),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
}
