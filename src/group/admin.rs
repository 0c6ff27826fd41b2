//! Group administration: DescribeGroups, ListGroups and DeleteGroups.

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::info;

use super::coordinator::GroupCoordinator;
use super::error::GroupError;
use super::group::GroupState;
use super::records::RecordKey;

/// One member as DescribeGroups shows it.
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// One group as DescribeGroups shows it; an unknown group is described as Dead with no members.
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
    pub exists: bool,
}

/// One group as ListGroups shows it.
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

impl GroupCoordinator {
    /// DescribeGroups for one group; `Err` when this broker does not serve it now.
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        let groups = self.lock();
        self.check_coordinator(group_id)?;
        let Some(g) = groups.get(group_id).filter(|g| g.state != GroupState::Dead) else {
            return Ok(GroupDescription {
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
                exists: false,
            });
        };
        // As Kafka: member metadata and assignments only once the group is Stable.
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        Ok(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            exists: true,
        })
    }

    pub fn list(&self) -> Vec<GroupListing> {
        let groups = self.lock();
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups for one group: only an empty group can go; its offsets and metadata get tombstones.
    /// The group is gone from memory at once; should the tombstones fail, it comes back (as Empty) and
    /// the error is answered.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        let stored = self.delete_group_locked(group_id)?;
        stored
            .await
            .unwrap_or(Err(GroupError::CoordinatorNotAvailable))
    }

    fn delete_group_locked(
        &self,
        group_id: &str,
    ) -> Result<oneshot::Receiver<Result<(), GroupError>>, GroupError> {
        // Kafka accepts the empty group id here (so that its state can be deleted).
        let mut groups = self.lock();
        self.check_coordinator_for_write(group_id)?;
        let g = groups
            .get_mut(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .ok_or(GroupError::GroupIdNotFound)?;
        if g.state != GroupState::Empty {
            return Err(GroupError::NonEmptyGroup);
        }
        // Pending transactional offsets get tombstones too (Kafka's `deleteAllOffsets`), so that
        // their producer's marker, replayed, finds nothing to commit.
        let mut pending: Vec<&(String, i32)> = g
            .pending_txn
            .values()
            .flat_map(|held| held.keys())
            .filter(|k| !g.offsets.contains_key(*k))
            .collect();
        pending.sort();
        pending.dedup();
        let mut records: Vec<(RecordKey, Option<Bytes>)> = g
            .offsets
            .keys()
            .chain(pending)
            .map(|(t, p)| {
                (
                    RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: *p,
                    },
                    None,
                )
            })
            .collect();
        records.push((
            RecordKey::Group {
                group: group_id.to_string(),
            },
            None,
        ));
        let pending = self.append(group_id, records, self.now_ms())?;
        let Some(mut g) = groups.remove(group_id) else {
            return Err(GroupError::GroupIdNotFound);
        };
        g.transition(GroupState::Dead, self.now_ms());
        info!(group = group_id, "group deleted");
        let (tx, rx) = oneshot::channel();
        self.on_stored(pending, move |coordinator, groups, result| {
            if result.is_err() && !groups.contains_key(&g.id) {
                g.transition(GroupState::Empty, coordinator.now_ms());
                groups.insert(g.id.clone(), g);
            }
            let _ = tx.send(result);
        });
        Ok(rx)
    }
}
