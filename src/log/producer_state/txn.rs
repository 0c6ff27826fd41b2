//! The transaction side of the producer state: markers checked and recorded, the open transactions
//! and the first unstable offset they hold.

use super::{ProducerEntry, ProducerError, ProducerStateManager};
use crate::log::batch::BatchHeader;
use crate::log::txn::TxnMarker;

/// A transaction its marker ended, as the aborted-transaction index and the LSO need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// Its first batch's offset (the marker's own offset when no transaction was open).
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

impl ProducerStateManager {
    /// The least first offset of the open transactions (Kafka's `firstUnstableOffset` before the
    /// high watermark is taken into account).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.current_txn_first_offset)
            .min()
    }

    /// Kafka's marker checks on the leader: the producer epoch must not be older than the producer's,
    /// nor the coordinator epoch older than the last marker's. A producer never seen passes.
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ProducerError> {
        let Some(e) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if producer_epoch < e.epoch {
            return Err(ProducerError::InvalidProducerEpoch(format!(
                "marker epoch {producer_epoch} of producer {producer_id} is older than {}",
                e.epoch
            )));
        }
        if coordinator_epoch < e.coordinator_epoch {
            return Err(ProducerError::CoordinatorFenced(format!(
                "marker of producer {producer_id} from coordinator epoch {coordinator_epoch}, \
                 older than the last seen {}",
                e.coordinator_epoch
            )));
        }
        Ok(())
    }

    /// Records an end-transaction marker stored at `h.base_offset` (appended, replicated or read on
    /// rebuild, so never refused here): the open transaction, if any, ends.
    pub fn record_marker(&mut self, h: &BatchHeader, marker: TxnMarker) -> CompletedTxn {
        let offset = h.base_offset;
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::empty(h.producer_epoch, h.max_timestamp));
        if h.producer_epoch > entry.epoch {
            entry.update_epoch(h.producer_epoch);
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp = h.max_timestamp;
        let first = entry.current_txn_first_offset.take();
        CompletedTxn {
            producer_id: h.producer_id,
            first_offset: first.unwrap_or(offset),
            last_offset: offset,
            aborted: !marker.commit,
        }
    }
}
