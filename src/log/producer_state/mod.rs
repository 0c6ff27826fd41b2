//! Idempotent-producer state of one partition (Kafka's ProducerStateManager): per producer id its epoch and
//! last five batches, checked before and updated after every append, snapshotted to `<offset>.snapshot`;
//! for transactional producers also the first offset of the open transaction and the last coordinator
//! epoch of their markers. The checks of an append are in `sequence.rs`, the markers and open
//! transactions in `txn.rs`, the snapshot files in `snapshot.rs`.

mod sequence;
mod snapshot;
mod txn;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_snapshot;

use std::collections::{HashMap, VecDeque};

use super::batch::BatchHeader;

pub use sequence::{last_sequence, AppendCheck};
pub use snapshot::{delete_snapshots_outside, list_snapshots, snapshot_path};
pub use txn::CompletedTxn;

/// Kafka keeps the metadata of this many recent batches per producer (and the producer keeps at most this
/// many requests in flight per partition), so any retry of an unacknowledged batch is recognised.
pub const MAX_CACHED_BATCHES: usize = 5;
/// RecordBatch.NO_PRODUCER_EPOCH
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Why a producer's batches were refused; the handler maps each variant to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45)
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    /// INVALID_PRODUCER_EPOCH (47)
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// INVALID_RECORD (87): producer fields Kafka's LogValidator rejects.
    #[error("invalid producer fields: {0}")]
    InvalidRecord(String),
    /// TRANSACTION_COORDINATOR_FENCED (52): a marker from a coordinator older than the last one seen.
    #[error("transaction coordinator fenced: {0}")]
    CoordinatorFenced(String),
}

/// One appended batch as the producer state remembers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (the append time under LogAppendTime).
    pub timestamp: i64,
}

/// What the partition knows about one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most `MAX_CACHED_BATCHES`, all of `epoch`.
    pub batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the last batch; expiration is measured from it (as Kafka does).
    pub last_timestamp: i64,
    /// Coordinator epoch of the producer's last marker, -1 before any.
    pub coordinator_epoch: i32,
    /// First offset of its open transaction: set by its first transactional batch, cleared by a marker.
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }

    fn empty(epoch: i16, timestamp: i64) -> Self {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(MAX_CACHED_BATCHES),
            last_timestamp: timestamp,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }
    }

    /// Kafka's `maybeUpdateProducerEpoch`: a new epoch forgets the older epoch's batches.
    fn update_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// The producer state of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Every producer id known here, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Producer id -> last offset of its last batch.
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(id, p)| p.batches.back().map(|b| (*id, b.last_offset)))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Records an appended (or, on rebuild, a read) batch of `producer_id`. A new epoch forgets older batches.
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMetadata) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::empty(epoch, batch.timestamp));
        entry.update_epoch(epoch);
        if entry.batches.len() == MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        entry.last_timestamp = batch.timestamp;
    }

    /// Records a data batch header of the log (appended, or read on rebuild); batches without a
    /// producer id and control batches are skipped (markers go to [`Self::record_marker`]). A
    /// transactional batch opens its producer's transaction if none is open.
    pub fn record_header(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.is_control() {
            return;
        }
        if h.is_transactional() {
            let first = h.base_offset;
            let entry = self
                .producers
                .entry(h.producer_id)
                .or_insert_with(|| ProducerEntry::empty(h.producer_epoch, h.max_timestamp));
            entry.current_txn_first_offset.get_or_insert(first);
        }
        self.record(
            h.producer_id,
            h.producer_epoch,
            BatchMetadata {
                first_seq: h.base_sequence,
                last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
                first_offset: h.base_offset,
                last_offset: h.last_offset(),
                timestamp: h.max_timestamp,
            },
        );
    }

    /// Drops producers whose last batch is `expiration_ms` or more older than `now_ms`
    /// (`producer.id.expiration.ms`), but never one with an open transaction (it holds the LSO
    /// until its marker). Returns how many were dropped.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Drops every batch at or after `offset` (and producers left without batches or transaction):
    /// the log was cut there. Markers cut off are not undone here; the log rebuilds its state from a
    /// snapshot instead.
    pub fn truncate_to(&mut self, offset: i64) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.last_offset < offset);
            if e.current_txn_first_offset.is_some_and(|f| f >= offset) {
                e.current_txn_first_offset = None;
            }
            !e.batches.is_empty() || e.current_txn_first_offset.is_some()
        });
    }
}
