//! Transaction markers on the leader and what they bound: the marker append, the last stable
//! offset, and read_committed reads with the aborted transactions they overlap.

use tracing::info;

use super::Partition;
use crate::broker::replica::ReplicaError;
use crate::log::{AppendInfo, BatchHeader, FetchSlice, FlushPolicy, LogError};

impl Partition {
    /// Appends the marker ending `producer_id`'s transaction (WriteTxnMarkers: COMMIT if `commit`,
    /// else ABORT, with the coordinator's epoch) if this broker leads, after acks=all's check that
    /// the ISR has min.insync.replicas members, as Kafka writes markers with acks=-1. Returns the
    /// leader epoch it appended at, for [`Self::wait_committed_at`] (the marker's offset + 1).
    /// Stale producer or coordinator epochs are `ReplicaError::Log(LogError::Producer(..))`:
    /// INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<(AppendInfo, i32), ReplicaError> {
        let state = self.read_state();
        let mut log = self.lock();
        let min_insync = log.config().min_insync_replicas;
        state.check_can_append(min_insync, true)?;
        let epoch = state.leader_epoch;
        let flush_always = log.config().flush == FlushPolicy::Always;
        let mut append = || {
            log.append_marker(
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
                epoch,
                now_ms,
            )
        };
        let result = if flush_always {
            tokio::task::block_in_place(append)
        } else {
            append()
        };
        self.note_storage(&result);
        let info = result?;
        self.lock_txn_guards().clear(producer_id, producer_epoch);
        log.note_high_watermark(self.high_watermark());
        let leo = log.log_end_offset();
        drop(log);
        info!(topic = %self.topic, partition = self.index, producer_id, producer_epoch, commit,
            coordinator_epoch, offset = info.base_offset, "transaction marker appended");
        self.log_end.send_replace(leo);
        self.advance_high_watermark(&state, &self.lock_isr(), leo, min_insync);
        Ok((info, epoch))
    }

    /// The last stable offset: the high watermark, or below it the first offset of a transaction
    /// still open or whose marker is not yet replicated (Kafka's `lastStableOffset`).
    pub fn last_stable_offset(&self) -> i64 {
        let mut log = self.lock();
        let hw = *self.high_watermark.borrow();
        log.first_unstable_offset(hw).map_or(hw, |f| f.min(hw))
    }

    /// A read_committed consumer's read (Kafka's `FetchIsolation.TXN_COMMITTED`): whole batches
    /// below the last stable offset, and (producer id, first offset) of the aborted transactions
    /// overlapping what was read, for the consumer to drop their records.
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<(FetchSlice, Vec<(i64, i64)>), LogError> {
        let mut log = self.lock();
        let hw = *self.high_watermark.borrow();
        let lso = log.first_unstable_offset(hw).map_or(hw, |f| f.min(hw));
        let slice = log.read_below(offset, max_bytes, min_one, lso)?;
        let aborted = match next_offset_after(&slice.bytes) {
            Some(upper) => log.aborted_transactions(offset, upper),
            None => Vec::new(),
        };
        Ok((slice, aborted))
    }
}

/// The offset after the last whole batch of a read, `None` when it holds none.
fn next_offset_after(bytes: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    let mut next = None;
    while let Some(h) = bytes
        .get(pos..pos + BatchHeader::SIZE)
        .and_then(|b| BatchHeader::parse(b).ok())
    {
        if h.total_size() < BatchHeader::SIZE {
            break;
        }
        next = Some(h.last_offset() + 1);
        pos += h.total_size();
    }
    next
}
