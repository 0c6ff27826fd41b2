//! Consumer groups and committed offsets, as Kafka's classic group coordinator does them: the
//! membership protocol (`coordinator.rs`, `join.rs`, `membership.rs`, `group.rs`, `timers.rs`), offsets (`offset_ops.rs`),
//! administration (`admin.rs`), and their durable log on `__consumer_offsets` (`offsets.rs`,
//! `records.rs`). On a single node this broker coordinates every group.

mod admin;
mod coordinator;
mod error;
#[allow(clippy::module_inception)]
mod group;
mod join;
mod membership;
mod offset_ops;
pub mod offsets;
pub mod records;
mod store;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use tokio::time::Instant;
use tracing::info;

pub use admin::{GroupDescription, GroupListing, MemberDescription};
pub use coordinator::{CoordinatorHandles, GroupConfig, GroupCoordinator};
pub use error::{code_of, GroupError};
pub use group::{Committed, GroupState, JoinOutcome, SyncOutcome};
pub use join::JoinRequest;
pub use membership::SyncRequest;
pub use offset_ops::{CommitPartition, FetchedOffsets, PartitionResults};

use crate::broker::topics::TopicError;
use group::{Group, Member};

impl GroupCoordinator {
    /// Loads every group from `__consumer_offsets` (if it exists yet) and starts offset expiry.
    /// Like Kafka, the topic itself is created by the first group request, not at start-up.
    pub async fn start(&self) -> Result<(), TopicError> {
        let replayed = offsets::replay(&self.offsets, 0..self.offsets.partition_count());
        self.load(replayed);
        self.spawn_offset_expiry();
        Ok(())
    }

    /// Creates `__consumer_offsets` on first use (Kafka does it on the first FindCoordinator).
    /// Returns false, after logging why, when it cannot be created; group writes then answer
    /// COORDINATOR_NOT_AVAILABLE and clients retry.
    pub async fn ensure_offsets_topic(&self) -> bool {
        if self.offsets.exists() {
            return true;
        }
        match self.offsets.ensure_exists().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the offsets topic");
                false
            }
        }
    }

    /// Rebuilds groups from replayed records. A group stored with members comes back Stable with its
    /// generation and assignments; its members must heartbeat within their session timeout or they
    /// expire and the group rebalances, as after a Kafka coordinator failover.
    fn load(&self, replayed: HashMap<String, offsets::Replayed>) {
        let now = self.now_ms();
        let mut groups = self.lock();
        let mut expiries = Vec::new();
        for (id, r) in replayed {
            if r.group.is_none() && r.offsets.is_empty() {
                continue;
            }
            let mut g = Group::new(&id, now);
            g.offsets = r
                .offsets
                .into_iter()
                .map(|(k, v)| (k, Committed::from(v)))
                .collect();
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
        info!(groups = groups.len(), "consumer groups loaded");
        drop(groups);
        for (g, m, uid, session) in expiries {
            self.spawn_member_expiry(&g, &m, uid, session);
        }
    }
}
