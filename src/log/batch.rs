//! RecordBatch v2 header parsing, validation of client batches, and the in-place header rewrites done on append.

use super::config::TimestampType;
use super::error::BatchError;

// Field offsets inside a v2 batch (big-endian).
const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;
/// Bytes before batch_length's payload: baseOffset + batchLength.
pub(crate) const LOG_OVERHEAD: usize = 12;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;

/// The fixed 61-byte header of a v2 record batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

// Callers guarantee `at + N <= buf.len()`; `get` keeps even a broken caller from panicking.
fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = buf.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}
pub(crate) fn read_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(be(buf, at))
}
pub(crate) fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(be(buf, at))
}

impl BatchHeader {
    pub const SIZE: usize = 61;

    /// Parse the header fields only (no CRC check). Needs at least 61 bytes and magic 2.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < MAGIC + 1 {
            return Err(BatchError::Corrupt(format!(
                "{} bytes is too short for a batch header",
                buf.len()
            )));
        }
        let magic = buf[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < Self::SIZE {
            return Err(BatchError::Corrupt(format!(
                "{} bytes is too short for a batch header",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET),
            batch_length: read_i32(buf, BATCH_LENGTH),
            partition_leader_epoch: read_i32(buf, LEADER_EPOCH),
            magic,
            crc: u32::from_be_bytes(be(buf, CRC)),
            attributes: i16::from_be_bytes(be(buf, ATTRIBUTES)),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP),
            producer_id: read_i64(buf, PRODUCER_ID),
            producer_epoch: i16::from_be_bytes(be(buf, PRODUCER_EPOCH)),
            base_sequence: read_i32(buf, BASE_SEQUENCE),
            records_count: read_i32(buf, RECORDS_COUNT),
        })
    }

    /// Size of the whole batch on disk: 12 + batch_length (0 if batch_length is negative).
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.batch_length).unwrap_or(0)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    /// Compression codec id (attribute bits 0-2).
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Header-level sanity of a batch already known to be in a log: framing and offsets only.
    pub(crate) fn check_structure(&self) -> Result<(), BatchError> {
        if (self.batch_length as i64) < (Self::SIZE - LOG_OVERHEAD) as i64 {
            return Err(BatchError::Corrupt(format!(
                "batch length {} too small",
                self.batch_length
            )));
        }
        if self.last_offset_delta < 0 {
            return Err(BatchError::InvalidRecord(format!(
                "negative last offset delta {}",
                self.last_offset_delta
            )));
        }
        Ok(())
    }
}

/// crc32c over everything after the crc field.
pub(crate) fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES..).unwrap_or(&[]))
}

/// Validate one complete client batch (`batch` is exactly the batch's bytes) including its CRC: a stored
/// batch's checks, plus at least one record and one record per offset, as Kafka requires of produced batches.
pub(crate) fn validate_one(
    batch: &[u8],
    max_message_bytes: u32,
) -> Result<BatchHeader, BatchError> {
    if batch.len() > max_message_bytes as usize {
        return Err(BatchError::TooLarge {
            size: batch.len(),
            max: max_message_bytes,
        });
    }
    let h = validate_stored(batch)?;
    if h.records_count <= 0 {
        return Err(BatchError::InvalidRecord(format!(
            "invalid record count {}",
            h.records_count
        )));
    }
    if h.records_count as i64 != h.last_offset_delta as i64 + 1 {
        return Err(BatchError::InvalidRecord(format!(
            "record count {} inconsistent with last offset delta {}",
            h.records_count, h.last_offset_delta
        )));
    }
    Ok(h)
}

/// Validate one complete batch as it may be stored: framing, CRC, codec, and record count. Compaction
/// leaves batches with fewer records than offsets (gaps, the last offset kept) or none at all (the
/// last batch of a producer, kept for its sequence), as Kafka's cleaner does.
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    h.check_structure()?;
    if h.total_size() != batch.len() {
        return Err(BatchError::Corrupt(format!(
            "batch length {} inconsistent with {} bytes",
            h.batch_length,
            batch.len()
        )));
    }
    let crc = compute_crc(batch);
    if crc != h.crc {
        return Err(BatchError::Corrupt(format!(
            "crc mismatch: stored {:#010x}, computed {crc:#010x}",
            h.crc
        )));
    }
    if h.records_count < 0 || h.records_count as i64 > h.last_offset_delta as i64 + 1 {
        return Err(BatchError::InvalidRecord(format!(
            "record count {} inconsistent with last offset delta {}",
            h.records_count, h.last_offset_delta
        )));
    }
    if h.compression() > 4 {
        return Err(BatchError::InvalidRecord(format!(
            "unknown compression codec {}",
            h.compression()
        )));
    }
    if h.compression() == 0 {
        check_record_framing(&batch[BatchHeader::SIZE..], h.records_count)?;
    }
    Ok(h)
}

/// An uncompressed batch must hold exactly `records_count` length-prefixed records filling it, as
/// Kafka checks on append; a header that lies about its records would mislead every consumer.
/// Allocation-free: only each record's length varint is read.
fn check_record_framing(records: &[u8], records_count: i32) -> Result<(), BatchError> {
    let mut pos = 0usize;
    let mut count = 0i64;
    while pos < records.len() {
        let mut value: u64 = 0;
        let mut done = false;
        for shift in (0..35).step_by(7) {
            let Some(&b) = records.get(pos) else { break };
            pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                done = true;
                break;
            }
        }
        let len = ((value >> 1) as i64) ^ -((value & 1) as i64);
        if !done || len < 0 || len as u64 > (records.len() - pos) as u64 {
            return Err(BatchError::InvalidRecord(format!(
                "record {count} has an invalid length"
            )));
        }
        pos += len as usize;
        count += 1;
        if count > i64::from(records_count) {
            break;
        }
    }
    if count != i64::from(records_count) {
        return Err(BatchError::InvalidRecord(format!(
            "batch holds {count} records but its header says {records_count}"
        )));
    }
    Ok(())
}

/// Length of the batch starting at `buf[0..]` according to its batch_length field, if at least 12 bytes are there.
pub(crate) fn framed_size(buf: &[u8]) -> Option<i64> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    Some(LOG_OVERHEAD as i64 + read_i32(buf, BATCH_LENGTH) as i64)
}

/// Validate the records blob of one partition of a Produce request: one or more concatenated v2 batches, each
/// complete, magic 2, crc32c correct, length and count consistent, each at most `max_message_bytes`.
pub fn validate_batches(
    records: &[u8],
    max_message_bytes: u32,
) -> Result<Vec<BatchHeader>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::InvalidRecord("empty records".into()));
    }
    let mut headers = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        // Magic sits at byte 16 in every message format, so check it before trusting the v2 layout.
        if rest.len() > MAGIC && rest[MAGIC] as i8 != 2 {
            return Err(BatchError::UnsupportedMagic(rest[MAGIC] as i8));
        }
        let size = framed_size(rest)
            .ok_or_else(|| BatchError::Corrupt(format!("truncated batch at byte {pos}")))?;
        if size < BatchHeader::SIZE as i64 {
            return Err(BatchError::Corrupt(format!(
                "batch length {} too small at byte {pos}",
                size - 12
            )));
        }
        if size > max_message_bytes as i64 {
            return Err(BatchError::TooLarge {
                size: size as usize,
                max: max_message_bytes,
            });
        }
        let size = size as usize;
        if size > rest.len() {
            return Err(BatchError::Corrupt(format!(
                "truncated batch at byte {pos}: needs {size} bytes, {} left",
                rest.len()
            )));
        }
        headers.push(validate_one(&rest[..size], max_message_bytes)?);
        pos += size;
    }
    Ok(headers)
}

/// Rewrite the fields the broker owns in a batch about to be appended. Base offset and leader epoch are outside
/// the CRC; with LogAppendTime the timestamp type bit and max timestamp change too, so the CRC is recomputed.
pub(crate) fn stamp(
    batch: &mut [u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) {
    if batch.len() < BatchHeader::SIZE {
        return;
    }
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(now) = log_append_time {
        let attrs = i16::from_be_bytes(be(batch, ATTRIBUTES)) | TIMESTAMP_TYPE_BIT;
        batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.to_be_bytes());
        let crc = compute_crc(batch);
        batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Rewrite the header of a batch whose records section was replaced (compaction): the batch length from
/// `batch.len()`, the record count, optionally the max timestamp and attributes, then the CRC.
pub(crate) fn rewrite_header(
    batch: &mut [u8],
    records_count: i32,
    max_timestamp: Option<i64>,
    attributes: Option<i16>,
) {
    if batch.len() < BatchHeader::SIZE {
        return;
    }
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    batch[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&records_count.to_be_bytes());
    if let Some(ts) = max_timestamp {
        batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
    }
    if let Some(a) = attributes {
        batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&a.to_be_bytes());
    }
    let crc = compute_crc(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}
