//! Consumer groups and committed offsets, as Kafka's classic group coordinator does them: the
//! membership protocol (`coordinator.rs`, `join.rs`, `membership.rs`, `group.rs`, `timers.rs`), offsets (`offset_ops.rs`),
//! administration (`admin.rs`), and their durable log on `__consumer_offsets` (`offsets.rs`,
//! `records.rs`, written as `store.rs` says). This broker coordinates the groups of the offsets
//! partitions it leads (`loading.rs`): on a single node, every group.

mod admin;
mod coordinator;
mod error;
#[allow(clippy::module_inception)]
mod group;
mod join;
mod loading;
mod membership;
mod offset_ops;
pub mod offsets;
pub mod records;
mod store;
mod timers;
mod txn_offsets;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_txn;

pub use admin::{GroupDescription, GroupListing, MemberDescription};
pub use coordinator::{CoordinatorHandles, GroupConfig, GroupCoordinator};
pub use error::{code_of, GroupError};
pub use group::{Committed, GroupState, JoinOutcome, SyncOutcome};
pub use join::JoinRequest;
pub use membership::SyncRequest;
pub use offset_ops::{CommitPartition, FetchedOffsets, PartitionResults, StableOffsets};
pub use txn_offsets::TxnCommit;

use crate::broker::topics::TopicError;

impl GroupCoordinator {
    /// Loads the groups of every `__consumer_offsets` partition led here (if the topic exists yet)
    /// and starts offset expiry. Like Kafka, the topic itself is created by the first group request,
    /// not at start-up.
    pub async fn start(&self) -> Result<(), TopicError> {
        self.on_metadata(&self.image());
        self.wait_loaded_a_while().await;
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
            Ok(()) => {
                // Take up its partitions now rather than when the metadata follower gets to it, so
                // that the request that created it is served.
                self.on_metadata(&self.image());
                self.wait_loaded_a_while().await;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the offsets topic");
                false
            }
        }
    }

    /// Waits for the loads under way, but not forever: a partition whose log cannot be opened keeps
    /// loading (its groups answer COORDINATOR_LOAD_IN_PROGRESS) and must not stall start-up.
    async fn wait_loaded_a_while(&self) {
        let wait = std::time::Duration::from_secs(10);
        if tokio::time::timeout(wait, self.shards.wait_loaded())
            .await
            .is_err()
        {
            tracing::warn!(
                "offsets partitions still loading; their groups answer COORDINATOR_LOAD_IN_PROGRESS until they are loaded"
            );
        }
    }
}
