//! Coordination follows leadership: the groups of a `__consumer_offsets` partition live on the broker
//! that leads it. A partition gained is replayed from its log (COORDINATOR_LOAD_IN_PROGRESS for its
//! groups meanwhile) and its groups installed; a partition lost takes its groups out of memory
//! (NOT_COORDINATOR from then on; requests waiting on them are told so). Which partitions are led
//! here, and at which epoch, is `CoordinatorShards`'s business (shared with future coordinators).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::coordinator::GroupCoordinator;
use super::error::GroupError;
use super::group::{Group, GroupState, JoinOutcome, Member, SyncOutcome};
use super::offsets;
use super::records::partition_for;
use crate::broker::coordinator_shards::{coordinator_endpoint, ShardChange, ShardStatus};
use crate::cluster::{BrokerInfo, MetadataImage};

/// How long a load waits before retrying a partition whose log is not open here yet.
const LOAD_RETRY: Duration = Duration::from_secs(1);

impl GroupCoordinator {
    /// Follows `image`'s leadership of `__consumer_offsets`: loads the partitions gained, unloads
    /// those lost. Idempotent; the broker's metadata follower calls it after `partitions.reconcile`.
    pub fn on_metadata(&self, image: &MetadataImage) {
        let count = image
            .topics
            .get(self.offsets.name())
            .map_or(0, |t| t.partitions.len() as i32);
        for change in self.shards.on_metadata(image) {
            match change {
                ShardChange::Lost { partition } => self.unload(partition, count),
                ShardChange::Gained { partition, epoch } => self.spawn_load(partition, epoch),
            }
        }
    }

    /// Returns once no offsets partition led here is still loading.
    pub async fn wait_loaded(&self) {
        self.shards.wait_loaded().await
    }

    /// Where `group`'s coordinator is: the leader of its offsets partition (FindCoordinator).
    pub fn coordinator_for(&self, group: &str) -> Option<BrokerInfo> {
        let image = self.image();
        let partition = partition_for(group, self.offsets.partition_count());
        coordinator_endpoint(&image, self.offsets.name(), partition).cloned()
    }

    /// Kafka's validateGroupStatus, coordinator part: whether this broker serves `group` now.
    /// Before the offsets topic exists nothing is stored anywhere, and every broker answers from
    /// its (empty) memory.
    pub(super) fn check_coordinator(&self, group: &str) -> Result<(), GroupError> {
        if !self.offsets.exists() {
            return Ok(());
        }
        match self
            .shards
            .status(partition_for(group, self.offsets.partition_count()))
        {
            ShardStatus::Active { .. } => Ok(()),
            ShardStatus::Loading { .. } => Err(GroupError::CoordinatorLoadInProgress),
            ShardStatus::NotLeader => Err(GroupError::NotCoordinator),
        }
    }

    /// [`check_coordinator`](Self::check_coordinator) for a request that writes the offsets topic:
    /// without the topic (it could not be created: fewer live brokers than
    /// `offsets.topic.replication.factor`) there is nowhere to write, and the client is told to
    /// look for its coordinator again (COORDINATOR_NOT_AVAILABLE, as Kafka's FindCoordinator says).
    pub(super) fn check_coordinator_for_write(&self, group: &str) -> Result<(), GroupError> {
        if !self.offsets.exists() {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.check_coordinator(group)
    }

    /// Whether any offsets partition led here is still loading (ListGroups answers so).
    pub fn is_loading(&self) -> bool {
        (0..self.offsets.partition_count())
            .any(|p| matches!(self.shards.status(p), ShardStatus::Loading { .. }))
    }

    pub(super) fn spawn_load(&self, partition: i32, epoch: i32) {
        let weak = self.me.clone();
        self.spawner.spawn(async move {
            loop {
                let Some(coordinator) = weak.upgrade() else {
                    return;
                };
                if coordinator.shards.status(partition) != (ShardStatus::Loading { epoch }) {
                    return;
                }
                let reader = coordinator.clone();
                let replayed = tokio::task::spawn_blocking(move || {
                    offsets::replay_partition(&reader.offsets, partition)
                })
                .await;
                match replayed {
                    Ok(Some(replayed)) => return coordinator.install(partition, epoch, replayed),
                    Ok(None) => {
                        warn!(
                            partition,
                            "offsets partition led here is not open yet; load retried"
                        )
                    }
                    Err(e) => {
                        warn!(partition, error = %e, "offsets partition load failed; retried")
                    }
                }
                drop(coordinator);
                tokio::time::sleep(LOAD_RETRY).await;
            }
        });
    }

    /// Takes the groups of `partition` (of `count`) out of memory; their waiting requests are
    /// answered NOT_COORDINATOR, as Kafka's `onGroupUnloaded` does.
    fn unload(&self, partition: i32, count: i32) {
        let mut groups = self.lock();
        let count = if count > 0 {
            count
        } else {
            self.offsets.partition_count()
        };
        let gone: Vec<String> = groups
            .keys()
            .filter(|id| partition_for(id, count) == partition)
            .cloned()
            .collect();
        self.forget_txns_of(partition, &gone);
        for id in &gone {
            let Some(mut g) = groups.remove(id) else {
                continue;
            };
            g.transition(GroupState::Dead, self.now_ms());
            for m in g.members.values_mut() {
                m.answer_join(JoinOutcome::failed(
                    GroupError::NotCoordinator,
                    &m.id.clone(),
                ));
                m.answer_sync(SyncOutcome::failed(GroupError::NotCoordinator));
            }
        }
        info!(
            partition,
            groups = gone.len(),
            "consumer groups unloaded: no longer this partition's leader"
        );
    }

    /// Rebuilds the groups of one offsets partition from its replayed records, unless the partition
    /// was lost or re-gained meanwhile. A group stored with members comes back Stable with its
    /// generation and assignments; its members must heartbeat within their session timeout or they
    /// expire and the group rebalances, as after a Kafka coordinator failover.
    fn install(&self, partition: i32, epoch: i32, replayed: HashMap<String, offsets::Replayed>) {
        let now = self.now_ms();
        let mut groups = self.lock();
        if !self.shards.loaded(partition, epoch) {
            return;
        }
        let loaded = replayed.len();
        let mut expiries = Vec::new();
        for (id, r) in replayed {
            if r.group.is_none() && r.offsets.is_empty() && r.pending.is_empty() {
                continue;
            }
            let mut g = Group::new(&id, now);
            g.offsets = r.offsets;
            for producer_id in r.pending.keys() {
                self.note_open_txn(*producer_id, &id);
            }
            g.pending_txn = r.pending;
            g.next_order = r.next_order;
            if let Some(v) = r.group {
                g.generation = v.generation;
                g.protocol_type = Some(v.protocol_type.clone()).filter(|t| !t.is_empty());
                g.protocol = v.protocol.clone();
                g.leader = v.leader.clone();
                if v.current_state_timestamp >= 0 {
                    g.state_since_ms = v.current_state_timestamp;
                }
                let protocol = v.protocol.clone().unwrap_or_default();
                for m in v.members {
                    let uid = self.next_member_uid();
                    if let Some(i) = &m.group_instance_id {
                        g.static_members.insert(i.clone(), m.member_id.clone());
                    }
                    expiries.push((id.clone(), m.member_id.clone(), uid, m.session_timeout_ms));
                    g.members.insert(
                        m.member_id.clone(),
                        Member {
                            id: m.member_id,
                            uid,
                            instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            session_timeout_ms: m.session_timeout_ms,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            protocols: vec![(protocol.clone(), m.subscription)],
                            assignment: m.assignment,
                            join_waiter: None,
                            sync_waiter: None,
                            last_heartbeat: Instant::now(),
                        },
                    );
                }
                if !g.members.is_empty() && g.protocol.is_some() {
                    g.state = GroupState::Stable;
                } else {
                    g.members.clear();
                    g.static_members.clear();
                    g.leader = None;
                }
            }
            groups.insert(id, g);
        }
        self.apply_deferred_markers(&mut groups, partition);
        info!(partition, epoch, groups = loaded, "consumer groups loaded");
        drop(groups);
        for (g, m, uid, session) in expiries {
            self.spawn_member_expiry(&g, &m, uid, session);
        }
    }
}
