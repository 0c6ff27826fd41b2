//! `PartitionLog::append_as_follower`: a replica appends the leader's batches as they are, offsets and leader
//! epochs included (Kafka's `UnifiedLog.appendAsFollower`), after checking they chain onto its log.

use bytes::Bytes;

use super::batch::{validate_stored, BatchHeader};
use super::config::FlushPolicy;
use super::error::{BatchError, LogError};
use super::partition::{AppendInfo, PartitionLog};

/// Headers of the whole batches at the start of a fetched records blob, each validated as a stored batch
/// (CRC, framing, codec; compacted batches allowed), and how many bytes they span. A partial batch at the
/// end (a leader may cut its answer at `max_bytes`) is left out, as Kafka's follower does.
pub fn validate_fetched(records: &[u8]) -> Result<(Vec<BatchHeader>, usize), BatchError> {
    let mut headers = Vec::new();
    let mut pos = 0usize;
    while let Some(size) = super::batch::framed_size(&records[pos..]) {
        let size = usize::try_from(size)
            .map_err(|_| BatchError::Corrupt(format!("negative batch length at byte {pos}")))?;
        if size < BatchHeader::SIZE {
            return Err(BatchError::Corrupt(format!(
                "batch of {size} bytes at byte {pos}"
            )));
        }
        let Some(batch) = records.get(pos..pos + size) else {
            break;
        };
        headers.push(validate_stored(batch)?);
        pos += size;
    }
    Ok((headers, pos))
}

impl PartitionLog {
    /// Appends batches fetched from the leader without assigning anything: `records` is their concatenation
    /// and `headers` describe them (from [`validate_fetched`]). The first batch must start at or after the log
    /// end offset (after it only where the leader's compaction removed whole batches) and every batch after
    /// the previous one. The leader-epoch cache learns the batches' epochs and the producer state their
    /// producers, with no sequence check (the leader made it), so this replica deduplicates as the leader did
    /// if it takes over.
    pub fn append_as_follower(
        &mut self,
        records: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            return Err(BatchError::InvalidRecord("no batches to append".into()).into());
        };
        let end = self.log_end_offset();
        let not_chained = |why: String| LogError::NotChained {
            first: first.base_offset,
            end,
            why,
        };
        if first.base_offset < end {
            return Err(not_chained("first batch starts below the log end".into()));
        }
        let mut total = 0usize;
        let mut next = first.base_offset;
        let mut epoch = first.partition_leader_epoch;
        for h in headers {
            h.check_structure()?;
            if h.base_offset < next {
                return Err(not_chained(format!(
                    "batch at {} overlaps the one before",
                    h.base_offset
                )));
            }
            if h.partition_leader_epoch < epoch.max(0) {
                return Err(not_chained(format!(
                    "batch at {} has leader epoch {} after epoch {epoch}",
                    h.base_offset, h.partition_leader_epoch
                )));
            }
            epoch = h.partition_leader_epoch;
            if super::batch::framed_size(records.get(total..).unwrap_or_default())
                != Some(h.total_size() as i64)
            {
                return Err(BatchError::Corrupt(format!(
                    "header does not match the batch at byte {total}"
                ))
                .into());
            }
            next = h.last_offset() + 1;
            total += h.total_size();
        }
        if total != records.len() {
            return Err(BatchError::Corrupt(format!(
                "headers describe {total} bytes, records hold {}",
                records.len()
            ))
            .into());
        }
        self.leave_clean_state()?;
        self.maybe_roll(records.len() as u64, last.last_offset(), now_ms)?;
        self.active()?.append(&records, headers, now_ms)?;
        self.note_epochs(headers);
        // The leader's markers end transactions here as they did there, so a new leader has the
        // same LSO and aborted index.
        let mut pos = 0usize;
        for h in headers {
            let batch = records.get(pos..pos + h.total_size()).unwrap_or_default();
            pos += h.total_size();
            match super::txn::parse_marker(batch).filter(|_| h.is_control()) {
                Some(marker) => self.note_marker(h, marker)?,
                None => self.producers.record_header(h),
            }
        }
        match self.config.flush {
            FlushPolicy::Always => self.flush()?,
            FlushPolicy::Interval(d)
                if now_ms.saturating_sub(self.last_flush_ms) >= d.as_millis() as i64 =>
            {
                self.flush()?;
                self.last_flush_ms = now_ms;
            }
            _ => {}
        }
        Ok(AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset(),
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }
}
