//! Temporary stand-ins for the acks=all API the ISR work adds to `Partition` (deleted at merge:
//! the real versions live in `partition.rs`). Here the ISR is not tracked, so there is always
//! "enough" of it, and the high watermark is the leader's log end offset.

use std::time::Duration;

use super::replica::ReplicaError;
use super::Partition;

impl Partition {
    /// acks=all's precondition: Err(ReplicaError::NotEnoughReplicas) when the ISR is smaller than
    /// min.insync.replicas (or this broker does not lead: NotLeaderOrFollower).
    pub fn check_enough_replicas(&self) -> Result<(), ReplicaError> {
        if !self.is_leader() {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        Ok(())
    }

    /// Waits until the high watermark reaches `next_offset`: Ok, or NotLeaderOrFollower (leadership
    /// lost), NotEnoughReplicasAfterAppend (reached, but the ISR shrank below min.insync.replicas),
    /// RequestTimedOut (after `timeout`).
    pub async fn wait_committed(
        &self,
        next_offset: i64,
        timeout: Duration,
    ) -> Result<(), ReplicaError> {
        let mut hw = self.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            hw.wait_for(|hw| *hw >= next_offset || !self.is_leader()),
        )
        .await;
        match waited {
            Err(_) => Err(ReplicaError::RequestTimedOut),
            Ok(Err(_)) => Err(ReplicaError::NotLeaderOrFollower),
            Ok(Ok(hw)) if *hw >= next_offset => Ok(()),
            Ok(Ok(_)) => Err(ReplicaError::NotLeaderOrFollower),
        }
    }
}
