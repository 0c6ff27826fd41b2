//! The producer checks of an append: sequences in order, a retry recognised, an older epoch fenced.

use super::{BatchMetadata, ProducerEntry, ProducerError, ProducerStateManager, NO_PRODUCER_EPOCH};
use crate::log::batch::BatchHeader;

/// Outcome of checking a partition's batches against the producer state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendCheck {
    /// No producer id: nothing to check or record.
    NotIdempotent,
    /// In sequence: append, then `record` each batch.
    Append,
    /// A retry of this already-appended batch: acknowledge it with its original offsets, write nothing.
    Duplicate(BatchMetadata),
}

/// Sequence of the last record of a batch, wrapping past i32::MAX to 0 as producers do.
pub fn last_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    if base_sequence > i32::MAX - last_offset_delta {
        last_offset_delta - (i32::MAX - base_sequence) - 1
    } else {
        base_sequence + last_offset_delta
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq as i64 == last_seq as i64 + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerEntry {
    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }
}

impl ProducerStateManager {
    /// Checks one partition's batches of a produce request, as Kafka's `analyzeAndValidateProducerState` and
    /// `ProducerAppendInfo` do for client appends. Batches with a producer id must all carry the same id and
    /// epoch (Kafka accepts only one batch per partition, so it never sees them disagree) and a sequence >= 0.
    pub fn check(&self, headers: &[BatchHeader]) -> Result<AppendCheck, ProducerError> {
        let Some(first) = headers.iter().find(|h| h.producer_id >= 0) else {
            return Ok(AppendCheck::NotIdempotent);
        };
        let (pid, epoch) = (first.producer_id, first.producer_epoch);
        for h in headers {
            if h.producer_id != pid || h.producer_epoch != epoch {
                return Err(ProducerError::InvalidRecord(format!(
                    "batches of one partition carry different producers ({}/{} and {}/{})",
                    pid, epoch, h.producer_id, h.producer_epoch
                )));
            }
            if h.base_sequence < 0 {
                return Err(ProducerError::InvalidRecord(format!(
                    "invalid sequence number {} in record batch with producer id {pid}",
                    h.base_sequence
                )));
            }
        }
        let current = self.producers.get(&pid);
        // A retry is recognised against the state before this request. Kafka (one batch per partition)
        // answers the first duplicate for the whole append; with several batches that would acknowledge new
        // ones unwritten, so a request is either wholly a retry or refused.
        let dups: Vec<Option<BatchMetadata>> = headers
            .iter()
            .map(|h| {
                let last = last_sequence(h.base_sequence, h.last_offset_delta);
                current.and_then(|e| e.find_duplicate(epoch, h.base_sequence, last))
            })
            .collect();
        if let (Some(Some(first)), Some(Some(last))) = (dups.first(), dups.last()) {
            if dups.iter().all(Option::is_some) {
                return Ok(AppendCheck::Duplicate(BatchMetadata {
                    last_seq: last.last_seq,
                    last_offset: last.last_offset,
                    ..*first
                }));
            }
        }
        if dups.iter().any(Option::is_some) {
            return Err(ProducerError::InvalidRecord(format!(
                "producer {pid} mixes retried batches with new ones in one request"
            )));
        }
        let current_epoch = current.map_or(NO_PRODUCER_EPOCH, |e| e.epoch);
        let (mut epoch_now, mut last_seq) = (current_epoch, current.map_or(-1, |e| e.last_seq()));
        for h in headers {
            let seq = h.base_sequence;
            if epoch < epoch_now {
                return Err(ProducerError::InvalidProducerEpoch(format!(
                    "epoch of producer {pid} is {epoch}, older than the last seen epoch {epoch_now}"
                )));
            }
            if epoch != epoch_now {
                // A new epoch starts its sequences at 0 (KIP-360 epoch bump).
                if seq != 0 && epoch_now != NO_PRODUCER_EPOCH {
                    return Err(ProducerError::OutOfOrderSequence(format!(
                        "producer {pid} starts epoch {epoch} at sequence {seq}, expected 0"
                    )));
                }
            } else if !(current_epoch == NO_PRODUCER_EPOCH || in_sequence(last_seq, seq)) {
                // An unknown producer (state never seen or expired) may start at any sequence, as in Kafka
                // since 2.5 (KIP-360): the broker no longer answers UNKNOWN_PRODUCER_ID.
                return Err(ProducerError::OutOfOrderSequence(format!(
                    "producer {pid} sent sequence {seq}, expected {}",
                    last_seq.wrapping_add(1).max(0)
                )));
            }
            epoch_now = epoch;
            last_seq = last_sequence(seq, h.last_offset_delta);
        }
        Ok(AppendCheck::Append)
    }

    /// Checks the batches a coordinator writes for a producer (Kafka's `AppendOrigin.COORDINATOR`:
    /// the group coordinator's transactional offset commits): only the epoch is checked, an older
    /// one than the producer's is INVALID_PRODUCER_EPOCH; sequences are not (the coordinator writes
    /// every batch at sequence 0, as Kafka's does), so nothing is ever taken for a retry.
    pub fn check_coordinator(&self, headers: &[BatchHeader]) -> Result<AppendCheck, ProducerError> {
        let Some(first) = headers.iter().find(|h| h.producer_id >= 0) else {
            return Ok(AppendCheck::NotIdempotent);
        };
        let (pid, epoch) = (first.producer_id, first.producer_epoch);
        if headers
            .iter()
            .any(|h| h.producer_id != pid || h.producer_epoch != epoch)
        {
            return Err(ProducerError::InvalidRecord(format!(
                "coordinator batches of one append carry different producers than {pid}/{epoch}"
            )));
        }
        match self.producers.get(&pid) {
            Some(e) if epoch < e.epoch => Err(ProducerError::InvalidProducerEpoch(format!(
                "epoch of producer {pid} is {epoch}, older than the last seen epoch {}",
                e.epoch
            ))),
            _ => Ok(AppendCheck::Append),
        }
    }
}
