//! How the coordinator writes `__consumer_offsets`: records are queued on the group's offsets partition
//! while the coordinator lock is held (so one group's writes land in the order its state changed), and
//! what depends on their being committed (an answer, a state change, an undo) runs under the lock again
//! once they are, in a task of its own so that a client going away cannot skip it.

use std::collections::HashMap;
use std::future::Future;

use bytes::Bytes;
use tracing::{debug, warn};

use super::coordinator::GroupCoordinator;
use super::error::GroupError;
use super::group::Group;
use super::records::{partition_for, RecordKey};
use crate::broker::internal_topic::{InternalTopicError, PendingAppend};

impl GroupCoordinator {
    /// Queues `records` of `group` on its offsets partition. Call it under the coordinator lock.
    pub(super) fn append(
        &self,
        group: &str,
        records: Vec<(RecordKey, Option<Bytes>)>,
        now_ms: i64,
    ) -> Result<PendingAppend, GroupError> {
        let partition = partition_for(group, self.offsets.partition_count());
        let records = records.into_iter().map(|(k, v)| (k.encode(), v)).collect();
        self.offsets
            .append(partition, records, now_ms)
            .map_err(|e| stored_error(group, e))
    }

    /// Queues the group's metadata record (Kafka's `storeGroup`).
    pub(super) fn store_group(&self, g: &Group) -> Result<PendingAppend, GroupError> {
        let key = RecordKey::Group {
            group: g.id.clone(),
        };
        let record = vec![(key, Some(g.to_value().encode()))];
        self.append(&g.id, record, self.now_ms())
            .map_err(group_store_error)
    }

    /// Stores the group's metadata and only logs a failure (nothing waits on it).
    pub(super) fn store_group_logged(&self, g: &Group, what: &'static str) {
        let id = g.id.clone();
        match self.store_group(g) {
            Ok(pending) => self.on_stored(pending, move |_, _, result| {
                if let Err(e) = result {
                    warn!(group = %id, error = %e, "{what}");
                }
            }),
            Err(e) => warn!(group = %id, error = %e, "{what}"),
        }
    }

    /// Runs `then` under the coordinator lock once `pending` is committed (or has failed).
    pub(super) fn on_stored(
        &self,
        pending: PendingAppend,
        then: impl FnOnce(&GroupCoordinator, &mut HashMap<String, Group>, Result<(), GroupError>)
            + Send
            + 'static,
    ) {
        let stored = async move { pending.wait().await.map_err(|e| stored_error("", e)) };
        self.on_stored_with(stored, then)
    }

    /// [`Self::on_stored`] once `stored` (the wait for an append) is over.
    pub(super) fn on_stored_with(
        &self,
        stored: impl Future<Output = Result<(), GroupError>> + Send + 'static,
        then: impl FnOnce(&GroupCoordinator, &mut HashMap<String, Group>, Result<(), GroupError>)
            + Send
            + 'static,
    ) {
        let weak = self.me.clone();
        self.spawner.spawn(async move {
            let result = stored.await;
            let Some(coordinator) = weak.upgrade() else {
                return;
            };
            let mut groups = coordinator.lock();
            then(&coordinator, &mut groups, result);
        });
    }
}

pub(super) fn stored_error(group: &str, e: InternalTopicError) -> GroupError {
    match &e {
        InternalTopicError::Encode(_) => {
            warn!(group, error = %e, "cannot build a __consumer_offsets batch")
        }
        // The client is only told COORDINATOR_NOT_AVAILABLE; the reason is here.
        InternalTopicError::NotEnoughReplicas(_)
        | InternalTopicError::NotEnoughReplicasAfterAppend(_)
        | InternalTopicError::TimedOut(_) => {
            debug!(group, error = %e, "__consumer_offsets write not committed")
        }
        _ => {}
    }
    GroupError::from(e)
}

/// Kafka's storeGroup answers a group record too large to store with UNKNOWN_SERVER_ERROR.
pub(super) fn group_store_error(e: GroupError) -> GroupError {
    match e {
        GroupError::RecordTooLarge { .. } => GroupError::UnknownServerError,
        e => e,
    }
}
