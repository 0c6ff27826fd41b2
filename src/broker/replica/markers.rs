//! Transaction markers through the partition layer (Kafka's `ReplicaManager.appendRecords` for
//! WriteTxnMarkers): the marker appended by the leader, then awaited until the ISR has it, as
//! Kafka writes markers with acks=-1.

use std::time::Duration;

use super::{ReplicaError, ReplicaManager};

/// One marker to write: which transaction it ends, how, and for which coordinator.
#[derive(Clone, Copy, Debug)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl ReplicaManager {
    /// Appends `marker` to `topic`-`index` if this broker leads it and waits (at most `timeout`)
    /// until its high watermark passes the marker. Errors are the partition layer's: unknown or
    /// not-led partitions, too small an ISR, stale producer or coordinator epochs (from the log),
    /// leadership lost or time out while waiting.
    pub async fn write_txn_marker(
        &self,
        topic: &str,
        index: i32,
        marker: TxnMarker,
        now_ms: i64,
        timeout: Duration,
    ) -> Result<(), ReplicaError> {
        let image = self.metadata.image();
        let partition = self.hosted(&image, topic, index)?;
        let (info, leader_epoch) = partition.append_marker(
            marker.producer_id,
            marker.producer_epoch,
            marker.commit,
            marker.coordinator_epoch,
            now_ms,
        )?;
        partition
            .wait_committed_at(info.last_offset + 1, leader_epoch, timeout)
            .await
    }
}
