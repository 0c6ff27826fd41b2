//! Coordination follows leadership of `__transaction_state`: a partition gained is replayed
//! (COORDINATOR_LOAD_IN_PROGRESS for its ids meanwhile) and its decided-but-incomplete transactions
//! (Prepare*) resumed: markers re-sent, then Complete* written. A partition lost takes its ids out
//! of memory (NOT_COORDINATOR from then on; in-flight writes and marker rounds notice and stop).

use std::collections::HashMap;
use std::time::Duration;

use tracing::{info, warn};

use super::coordinator::TransactionCoordinator;
use super::state::{TxnMetadata, TxnState};
use super::topic::{partition_for, replay_partition};
use crate::broker::coordinator_shards::{ShardChange, ShardStatus};
use crate::cluster::MetadataImage;

/// How long a load waits before retrying a partition whose log is not open here yet.
const LOAD_RETRY: Duration = Duration::from_secs(1);

impl TransactionCoordinator {
    /// Follows `image`'s leadership of `__transaction_state`: loads the partitions gained, unloads
    /// those lost. Idempotent; the broker's metadata follower calls it on every image.
    pub fn on_metadata(&self, image: &MetadataImage) {
        for change in self.shards.on_metadata(image) {
            match change {
                ShardChange::Lost { partition } => self.unload(partition),
                ShardChange::Gained { partition, epoch } => self.spawn_load(partition, epoch),
            }
        }
    }

    /// Returns once no partition led here is still loading.
    pub async fn wait_loaded(&self) {
        self.shards.wait_loaded().await
    }

    fn spawn_load(&self, partition: i32, epoch: i32) {
        let weak = self.me.clone();
        self.spawner.spawn(async move {
            loop {
                let Some(c) = weak.upgrade() else { return };
                if c.shards.status(partition) != (ShardStatus::Loading { epoch }) {
                    return;
                }
                let reader = c.clone();
                let replayed = tokio::task::spawn_blocking(move || {
                    replay_partition(reader.log.as_ref(), partition)
                })
                .await;
                match replayed {
                    Ok(Some(txns)) => return c.install(partition, epoch, txns),
                    Ok(None) => warn!(
                        partition,
                        "transaction log partition not open yet; load retried"
                    ),
                    Err(e) => warn!(partition, error = %e, "transaction log load failed; retried"),
                }
                drop(c);
                tokio::time::sleep(LOAD_RETRY).await;
            }
        });
    }

    fn unload(&self, partition: i32) {
        let count = self.log.partition_count();
        let mut txns = self.lock();
        let before = txns.len();
        txns.retain(|id, _| partition_for(id, count) != partition);
        info!(
            partition,
            transactional_ids = before - txns.len(),
            "transactional ids unloaded: no longer this partition's leader"
        );
    }

    /// Installs the replayed ids unless the partition was lost or re-gained meanwhile, and resumes
    /// the transactions whose outcome was decided but not completed.
    fn install(&self, partition: i32, epoch: i32, replayed: HashMap<String, TxnMetadata>) {
        let mut txns = self.lock();
        if !self.shards.loaded(partition, epoch) {
            return;
        }
        let mut resume = Vec::new();
        let loaded = replayed.len();
        for (id, md) in replayed {
            // Kafka never writes Dead (a tombstone does) nor PrepareEpochFence; nothing to serve.
            if matches!(md.state, TxnState::Dead | TxnState::PrepareEpochFence) {
                continue;
            }
            if md.state.is_prepare() {
                resume.push((id.clone(), md.clone()));
            }
            txns.insert(id, md);
        }
        drop(txns);
        info!(
            partition,
            epoch,
            transactional_ids = loaded,
            resumed = resume.len(),
            "transaction coordinator loaded its partition"
        );
        for (id, md) in resume {
            let prepared = md.transit();
            self.spawn_markers(id, epoch, prepared);
        }
    }
}
