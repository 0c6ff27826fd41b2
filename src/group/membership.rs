//! SyncGroup (the leader's assignment, stored, then handed to every member), Heartbeat and
//! LeaveGroup, with Kafka's checks in Kafka's order.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use super::coordinator::{Answer, GroupCoordinator};
use super::error::GroupError;
use super::group::{Group, GroupState, SyncOutcome};
use super::store::group_store_error;

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

impl GroupCoordinator {
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
        let g = live_group(self, groups, &req.group_id)?;
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

    /// The leader's SyncGroup: store the assignment; once it is committed the group is Stable and
    /// every waiting member gets its assignment (Kafka's storeGroup callback). Until then the group
    /// stays CompletingRebalance; if it moved on meanwhile (a rebalance), the stored record is moot.
    fn apply_leader_assignment(&self, g: &mut Group, assignments: Vec<(String, Bytes)>) {
        let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in g.members.values_mut() {
            m.assignment = by_member.remove(&m.id).unwrap_or_default();
        }
        let pending = match self.store_group(g) {
            Ok(pending) => pending,
            Err(e) => return self.assignment_not_stored(g, e),
        };
        let (id, generation) = (g.id.clone(), g.generation);
        self.on_stored(pending, move |coordinator, groups, result| {
            let Some(g) = groups.get_mut(&id) else { return };
            if g.generation != generation || g.state != GroupState::CompletingRebalance {
                return;
            }
            match result {
                Ok(()) => coordinator.assignment_stored(g),
                Err(e) => coordinator.assignment_not_stored(g, group_store_error(e)),
            }
        });
    }

    fn assignment_stored(&self, g: &mut Group) {
        g.transition(GroupState::Stable, self.now_ms());
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

    fn assignment_not_stored(&self, g: &mut Group, e: GroupError) {
        warn!(group = %g.id, error = %e, "cannot store group assignment; rebalancing again");
        for m in g.members.values_mut() {
            m.assignment = Bytes::new();
            m.answer_sync(SyncOutcome::failed(e.clone()));
        }
        self.prepare_rebalance(g, "assignment could not be stored");
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        let mut groups = self.lock();
        let g = live_group(self, &mut groups, group_id)?;
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
        let mut groups = self.lock();
        let g = live_group(self, &mut groups, group_id)?;
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

/// The group a member request (SyncGroup, Heartbeat, LeaveGroup) names, as Kafka checks it: a group
/// id is required, this broker must coordinate it, an unknown group knows no member, and a group being deleted is not coordinated.
fn live_group<'a>(
    coordinator: &GroupCoordinator,
    groups: &'a mut HashMap<String, Group>,
    group_id: &str,
) -> Result<&'a mut Group, GroupError> {
    if group_id.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    coordinator.check_coordinator(group_id)?;
    let g = groups
        .get_mut(group_id)
        .ok_or(GroupError::UnknownMemberId)?;
    if g.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    Ok(g)
}
