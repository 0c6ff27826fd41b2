//! JoinGroup, as Kafka's GroupCoordinator handles it: the KIP-394 MEMBER_ID_REQUIRED handshake,
//! KIP-345 static members (a rejoining instance replaces and fences its old member id, without a
//! rebalance when the group is Stable), protocol checks, `group.max.size`, and the rejoin rules per
//! group state.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use super::coordinator::{Answer, GroupCoordinator};
use super::error::GroupError;
use super::group::{Group, GroupState, JoinOutcome, Member, SyncOutcome};
use super::store::group_store_error;

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

impl GroupCoordinator {
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
        self.check_coordinator_for_write(&req.group_id)?;
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if !groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return Err(GroupError::UnknownMemberId);
            }
            groups.insert(
                req.group_id.clone(),
                Group::new(&req.group_id, self.now_ms()),
            );
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
        let uid = self.next_member_uid();
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
        member.uid = self.next_member_uid();
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
                    let undo = StaticReplacement {
                        old_id: old_id.to_string(),
                        new_id: new_id.clone(),
                        uid,
                        old_protocols,
                        was_leader,
                        instance: req.instance_id.clone(),
                    };
                    let pending = match self.store_group(g) {
                        Ok(pending) => pending,
                        Err(e) => {
                            self.undo_static_replacement(g, undo, &e);
                            return Err(e);
                        }
                    };
                    // Answered once the group record with the new member id is committed.
                    let outcome = g.join_outcome_for(&new_id, was_leader);
                    let (tx, rx) = oneshot::channel();
                    let (group, member_id) = (g.id.clone(), req.member_id.clone());
                    self.on_stored(pending, move |coordinator, groups, result| {
                        let answer = match (result, groups.get_mut(&group)) {
                            (Ok(()), _) => outcome,
                            (Err(e), g) => {
                                let e = group_store_error(e);
                                if let Some(g) = g {
                                    coordinator.undo_static_replacement(g, undo, &e);
                                }
                                JoinOutcome::failed(e, &member_id)
                            }
                        };
                        let _ = tx.send(answer);
                    });
                    return Ok(Answer::Later(rx));
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
}

/// What a static member's replacement changed, to undo it if the group record cannot be stored.
struct StaticReplacement {
    old_id: String,
    new_id: String,
    uid: u64,
    old_protocols: Vec<(String, Bytes)>,
    was_leader: bool,
    instance: Option<String>,
}

impl GroupCoordinator {
    /// Kafka's storeGroup failure path after a static rejoin: the old member id is current again.
    fn undo_static_replacement(&self, g: &mut Group, r: StaticReplacement, e: &GroupError) {
        warn!(group = %g.id, error = %e, "cannot store group after static rejoin");
        if g.members.get(&r.new_id).is_none_or(|m| m.uid != r.uid) {
            return;
        }
        let Some(mut m) = g.members.shift_remove(&r.new_id) else {
            return;
        };
        m.id = r.old_id.clone();
        m.protocols = r.old_protocols;
        // A fresh incarnation, so that exactly one expiry task watches the restored member.
        m.uid = self.next_member_uid();
        let (uid, session) = (m.uid, m.session_timeout_ms);
        g.members.insert(r.old_id.clone(), m);
        self.spawn_member_expiry(&g.id, &r.old_id, uid, session);
        if r.was_leader {
            g.leader = Some(r.old_id.clone());
        }
        if let Some(instance) = r.instance {
            g.static_members.insert(instance, r.old_id);
        }
    }
}
