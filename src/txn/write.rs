//! How a transition reaches `__transaction_state`: its record is queued under the coordinator lock,
//! and a task of its own waits for the in-sync replicas and then completes the transition (or drops
//! it on a failed write) under the lock again, unless the partition was lost or reloaded meanwhile.

use tracing::debug;

use super::coordinator::TransactionCoordinator;
use super::error::TxnError;
use super::ports::PendingWrite;
use super::records::encode_key;
use super::state::{Transit, TxnMetadata, TxnState};

/// A transition queued for writing, with the coordinator epoch it was decided at.
pub(super) struct QueuedWrite {
    pub transactional_id: String,
    pub coordinator_epoch: i32,
    pub transit: Transit,
    pub wait: PendingWrite,
}

impl TransactionCoordinator {
    /// Queues `transit`'s record (a tombstone for Dead). Call it under the lock, right after the
    /// transition was prepared on `md`; a refused append drops the pending transition.
    pub(super) fn queue_write(
        &self,
        md: &mut TxnMetadata,
        coordinator_epoch: i32,
        transit: Transit,
    ) -> Result<QueuedWrite, TxnError> {
        let id = md.transactional_id.clone();
        // Kafka writes the flexible value (v1) from `transaction.version` 1.
        let version = self.config.transaction_version.min(1);
        let value = (transit.state != TxnState::Dead).then(|| transit.to_value().encode(version));
        let partition = self.partition_of(&id);
        match self
            .log
            .append(partition, vec![(encode_key(&id), value)], self.now_ms())
        {
            Ok(wait) => Ok(QueuedWrite {
                transactional_id: id,
                coordinator_epoch,
                transit,
                wait,
            }),
            Err(e) => {
                md.abort_pending();
                Err(e.into())
            }
        }
    }

    /// Waits for `write` and completes its transition; NOT_COORDINATOR when the partition was lost
    /// or re-gained at another epoch meanwhile (the state in memory is not this write's any more).
    pub(super) async fn finish_write(&self, write: QueuedWrite) -> Result<Transit, TxnError> {
        let written = write.wait.await;
        let id = &write.transactional_id;
        let mut txns = self.lock();
        if self.coordinator_epoch(id) != Ok(write.coordinator_epoch) {
            return Err(TxnError::NotCoordinator);
        }
        let Some(md) = txns.get_mut(id) else {
            return Err(TxnError::NotCoordinator);
        };
        if let Err(e) = written {
            debug!(transactional_id = %id, error = %e, "transaction log write failed");
            if md.pending == Some(write.transit.state) {
                md.abort_pending();
            }
            return Err(e.into());
        }
        if !md.complete(&write.transit) {
            return Err(TxnError::NotCoordinator);
        }
        if md.state == TxnState::Dead {
            txns.remove(id);
        }
        Ok(write.transit)
    }

    /// [`Self::finish_write`] in a task of its own (a caller dropped mid-way does not cancel it),
    /// followed by the markers when the transition was a Prepare*.
    pub(super) async fn run_write(&self, write: QueuedWrite) -> Result<Transit, TxnError> {
        let Some(me) = self.me.upgrade() else {
            return Err(TxnError::CoordinatorNotAvailable);
        };
        let task = self.spawner.spawn(async move {
            let epoch = write.coordinator_epoch;
            let id = write.transactional_id.clone();
            let done = me.finish_write(write).await?;
            if done.state.is_prepare() {
                me.spawn_markers(id, epoch, done.clone());
            }
            Ok(done)
        });
        task.await.unwrap_or(Err(TxnError::UnknownServerError))
    }
}
