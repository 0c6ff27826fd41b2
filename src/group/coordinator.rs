//! The group coordinator's membership protocol, as Kafka's GroupCoordinator does it: JoinGroup (with
//! the KIP-394 MEMBER_ID_REQUIRED handshake and KIP-345 static members), SyncGroup, Heartbeat and
//! LeaveGroup, and the rebalance transitions they drive. All group state sits behind one mutex that is
//! never held across an await; a request that must wait (a join until the rebalance completes, a
//! follower's sync until the leader's assignment) gets a oneshot answered by whoever completes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Weak};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use super::error::GroupError;
use super::group::{Group, GroupState, InitialDelay, JoinOutcome, Member, SyncOutcome};
use super::offsets;
use super::records::RecordKey;
use crate::broker::Broker;
use crate::config::Config;
use crate::handlers::now_ms;

/// Settings the coordinator reads from the broker configuration.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offset_metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
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
        }
    }
}

pub struct GroupCoordinator {
    pub(super) broker: Weak<Broker>,
    pub(super) config: GroupConfig,
    pub(super) groups: Mutex<HashMap<String, Group>>,
    next_uid: AtomicU64,
}

/// A JoinGroup request, version-independent.
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member first gets MEMBER_ID_REQUIRED with its id (KIP-394).
    pub require_known_member_id: bool,
}

/// A SyncGroup request, version-independent.
pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

impl GroupCoordinator {
    pub fn new(broker: Weak<Broker>, config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            broker,
            config,
            groups: Mutex::new(HashMap::new()),
            next_uid: AtomicU64::new(1),
        }
    }

    pub(super) fn next_member_uid(&self) -> u64 {
        self.next_uid.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        // Every transition completes before the lock is released, so a poisoned map is consistent.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the group's metadata record (Kafka's `storeGroup`).
    pub(super) fn persist_group(&self, g: &Group) -> Result<(), GroupError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        let key = RecordKey::Group {
            group: g.id.clone(),
        };
        offsets::append(
            &broker,
            &g.id,
            vec![(key, Some(g.to_value().encode()))],
            now_ms(),
        )
    }

    pub async fn join(&self, req: JoinRequest) -> JoinOutcome {
        let member_id = req.member_id.clone();
        let answer = {
            let mut groups = self.lock();
            self.join_locked(&mut groups, req)
        };
        match answer {
            Ok(Answer::Now(o)) => o,
            Ok(Answer::Later(rx)) => rx.await.unwrap_or_else(|_| {
                JoinOutcome::failed(GroupError::RebalanceInProgress, &member_id)
            }),
            Err(e) => JoinOutcome::failed(e, &member_id),
        }
    }

    fn join_locked(
        &self,
        groups: &mut HashMap<String, Group>,
        req: JoinRequest,
    ) -> Result<Answer<JoinOutcome>, GroupError> {
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if !groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return Err(GroupError::UnknownMemberId);
            }
            groups.insert(req.group_id.clone(), Group::new(&req.group_id, now_ms()));
        }
        let g = groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if !g.supports(&req.protocol_type, &req.protocols) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(g, req)
        } else {
            self.join_known_member(g, req)
        }
    }

    fn join_unknown_member(
        &self,
        g: &mut Group,
        req: JoinRequest,
    ) -> Result<Answer<JoinOutcome>, GroupError> {
        let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = req.instance_id.as_deref() {
            if let Some(old) = g.static_members.get(instance).cloned() {
                return self.replace_static_member(g, &old, new_id, req);
            }
        }
        if g.size() >= self.config.max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        if req.require_known_member_id && req.instance_id.is_none() {
            g.pending.insert(new_id.clone());
            self.spawn_pending_expiry(&g.id, &new_id, req.session_timeout_ms);
            info!(group = %g.id, member = %new_id, "new member must rejoin with its id (MEMBER_ID_REQUIRED)");
            return Ok(Answer::Now(JoinOutcome::failed(
                GroupError::MemberIdRequired,
                &new_id,
            )));
        }
        Ok(Answer::Later(self.add_member_and_rebalance(g, new_id, req)))
    }

    fn join_known_member(
        &self,
        g: &mut Group,
        req: JoinRequest,
    ) -> Result<Answer<JoinOutcome>, GroupError> {
        let id = req.member_id.clone();
        if g.pending.remove(&id) {
            return Ok(Answer::Later(self.add_member_and_rebalance(g, id, req)));
        }
        if g.is_fenced(req.instance_id.as_deref(), &id) {
            return Err(GroupError::FencedInstanceId);
        }
        let Some(member) = g.members.get(&id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let same_protocols = member.protocols == req.protocols;
        match g.state {
            GroupState::PreparingRebalance => {
                Ok(Answer::Later(self.update_member_and_rebalance(g, req)))
            }
            GroupState::CompletingRebalance if same_protocols => {
                // The member lost the join answer: send it again.
                Ok(Answer::Now(g.join_outcome_for(&id, false)))
            }
            GroupState::CompletingRebalance => {
                Ok(Answer::Later(self.update_member_and_rebalance(g, req)))
            }
            GroupState::Stable if g.is_leader(&id) || !same_protocols => {
                Ok(Answer::Later(self.update_member_and_rebalance(g, req)))
            }
            GroupState::Stable => {
                if let Some(m) = g.members.get_mut(&id) {
                    m.last_heartbeat = Instant::now();
                }
                Ok(Answer::Now(g.join_outcome_for(&id, false)))
            }
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    fn add_member_and_rebalance(
        &self,
        g: &mut Group,
        id: String,
        req: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let uid = self.next_uid.fetch_add(1, Ordering::Relaxed);
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.instance_id {
            g.static_members.insert(instance.clone(), id.clone());
        }
        if g.leader.is_none() {
            g.leader = Some(id.clone());
        }
        let session = req.session_timeout_ms;
        g.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                uid,
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                last_heartbeat: Instant::now(),
            },
        );
        if let Some(d) = g.initial_delay.as_mut() {
            d.new_member_joined = true;
        }
        info!(group = %g.id, member = %id, members = g.members.len(), "member joined");
        self.spawn_member_expiry(&g.id, &id, uid, session);
        self.maybe_prepare_rebalance(g, "member joined");
        self.try_complete_join(g);
        rx
    }

    fn update_member_and_rebalance(
        &self,
        g: &mut Group,
        req: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = g.members.get_mut(&req.member_id) {
            m.protocols = req.protocols;
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.last_heartbeat = Instant::now();
            m.answer_join(JoinOutcome::failed(
                GroupError::RebalanceInProgress,
                &req.member_id,
            ));
            m.join_waiter = Some(tx);
        }
        self.maybe_prepare_rebalance(g, "member rejoined with new metadata or as leader");
        self.try_complete_join(g);
        rx
    }

    /// KIP-345: a static member rejoined with an unknown member id: it takes over the old member's
    /// place (the old id is fenced). In a Stable group whose protocol still fits, no rebalance happens.
    fn replace_static_member(
        &self,
        g: &mut Group,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
    ) -> Result<Answer<JoinOutcome>, GroupError> {
        let Some(mut member) = g.members.shift_remove(old_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        member.answer_join(JoinOutcome::failed(GroupError::FencedInstanceId, old_id));
        member.answer_sync(SyncOutcome::failed(GroupError::FencedInstanceId));
        let old_protocols = std::mem::replace(&mut member.protocols, req.protocols);
        member.id = new_id.clone();
        member.uid = self.next_uid.fetch_add(1, Ordering::Relaxed);
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.last_heartbeat = Instant::now();
        let (uid, session) = (member.uid, member.session_timeout_ms);
        let was_leader = g.is_leader(old_id);
        if was_leader {
            g.leader = Some(new_id.clone());
        }
        if let Some(instance) = &req.instance_id {
            g.static_members.insert(instance.clone(), new_id.clone());
        }
        info!(group = %g.id, old = %old_id, new = %new_id, instance = ?req.instance_id, "static member rejoined; old member id fenced");
        match g.state {
            GroupState::Stable => {
                g.members.insert(new_id.clone(), member);
                self.spawn_member_expiry(&g.id, &new_id, uid, session);
                if g.select_protocol() == g.protocol {
                    if let Err(e) = self.persist_group(g) {
                        warn!(group = %g.id, error = %e, "cannot store group after static rejoin");
                        if let Some(mut m) = g.members.shift_remove(&new_id) {
                            m.id = old_id.to_string();
                            m.protocols = old_protocols;
                            g.members.insert(old_id.to_string(), m);
                        }
                        if was_leader {
                            g.leader = Some(old_id.to_string());
                        }
                        if let Some(instance) = &req.instance_id {
                            g.static_members
                                .insert(instance.clone(), old_id.to_string());
                        }
                        return Err(e);
                    }
                    return Ok(Answer::Now(g.join_outcome_for(&new_id, was_leader)));
                }
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                self.maybe_prepare_rebalance(g, "static member rejoined with new protocols");
                self.try_complete_join(g);
                Ok(Answer::Later(rx))
            }
            GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
                let (tx, rx) = oneshot::channel();
                member.join_waiter = Some(tx);
                g.members.insert(new_id.clone(), member);
                self.spawn_member_expiry(&g.id, &new_id, uid, session);
                self.maybe_prepare_rebalance(g, "static member rejoined during a rebalance");
                self.try_complete_join(g);
                Ok(Answer::Later(rx))
            }
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    pub(super) fn maybe_prepare_rebalance(&self, g: &mut Group, reason: &str) {
        if matches!(
            g.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(g, reason);
        }
    }

    fn prepare_rebalance(&self, g: &mut Group, reason: &str) {
        if g.state == GroupState::CompletingRebalance {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                m.answer_sync(SyncOutcome::failed(GroupError::RebalanceInProgress));
            }
        }
        let was_empty = g.state == GroupState::Empty;
        g.transition(GroupState::PreparingRebalance, now_ms());
        g.join_epoch += 1;
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
                g.join_epoch += 1;
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
        g.join_epoch += 1;
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
        let now = now_ms();
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.transition(GroupState::Empty, now);
            info!(group = %g.id, generation = g.generation, "group is empty");
            if let Err(e) = self.persist_group(g) {
                warn!(group = %g.id, error = %e, "cannot store empty group");
            }
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
    fn remove_member(&self, g: &mut Group, id: &str) {
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

    pub async fn sync(&self, req: SyncRequest) -> SyncOutcome {
        let answer = {
            let mut groups = self.lock();
            self.sync_locked(&mut groups, req)
        };
        match answer {
            Ok(Answer::Now(o)) => o,
            Ok(Answer::Later(rx)) => rx
                .await
                .unwrap_or_else(|_| SyncOutcome::failed(GroupError::RebalanceInProgress)),
            Err(e) => SyncOutcome::failed(e),
        }
    }

    fn sync_locked(
        &self,
        groups: &mut HashMap<String, Group>,
        req: SyncRequest,
    ) -> Result<Answer<SyncOutcome>, GroupError> {
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let g = groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if g.is_fenced(req.instance_id.as_deref(), &req.member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if !g.members.contains_key(&req.member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if req.generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != g.protocol.as_ref())
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let ok = |g: &Group, assignment: Bytes| SyncOutcome {
            error: None,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            assignment,
        };
        match g.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let m = g
                    .members
                    .get_mut(&req.member_id)
                    .ok_or(GroupError::UnknownMemberId)?;
                m.last_heartbeat = Instant::now();
                let assignment = m.assignment.clone();
                Ok(Answer::Now(ok(g, assignment)))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.members.get_mut(&req.member_id) {
                    m.last_heartbeat = Instant::now();
                    m.answer_sync(SyncOutcome::failed(GroupError::RebalanceInProgress));
                    m.sync_waiter = Some(tx);
                }
                if g.is_leader(&req.member_id) {
                    self.apply_leader_assignment(g, req.assignments);
                }
                Ok(Answer::Later(rx))
            }
        }
    }

    /// The leader's SyncGroup: store the assignment, then move to Stable and answer every waiting member.
    fn apply_leader_assignment(&self, g: &mut Group, assignments: Vec<(String, Bytes)>) {
        let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in g.members.values_mut() {
            m.assignment = by_member.remove(&m.id).unwrap_or_default();
        }
        if let Err(e) = self.persist_group(g) {
            warn!(group = %g.id, error = %e, "cannot store group assignment; rebalancing again");
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                m.answer_sync(SyncOutcome::failed(e.clone()));
            }
            self.prepare_rebalance(g, "assignment could not be stored");
            return;
        }
        g.transition(GroupState::Stable, now_ms());
        info!(group = %g.id, generation = g.generation, members = g.members.len(), "group is stable");
        let (pt, pn) = (g.protocol_type.clone(), g.protocol.clone());
        for m in g.members.values_mut() {
            let outcome = SyncOutcome {
                error: None,
                protocol_type: pt.clone(),
                protocol_name: pn.clone(),
                assignment: m.assignment.clone(),
            };
            m.answer_sync(outcome);
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let mut groups = self.lock();
        let g = groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if g.is_fenced(instance_id, member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if g.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        let m = g
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        m.last_heartbeat = Instant::now();
        match g.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for one member identity; `member_id` may be empty when `instance_id` names it.
    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let mut groups = self.lock();
        let g = groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let id = match instance_id {
            Some(instance) => match g.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(m) if !member_id.is_empty() && m != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(m) => m.clone(),
            },
            None => member_id.to_string(),
        };
        if g.pending.remove(&id) {
            self.try_complete_join(g);
            return Ok(());
        }
        if !g.members.contains_key(&id) {
            return Err(GroupError::UnknownMemberId);
        }
        info!(group = %g.id, member = %id, "member left the group");
        self.remove_member_and_update(g, &id, "member left");
        Ok(())
    }
}
