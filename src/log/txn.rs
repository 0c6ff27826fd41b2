//! Transaction markers and the aborted-transaction index: Kafka's control batch for EndTxn
//! (`EndTransactionMarker`, `ControlRecordType`) and the per-segment `.txnindex` of 34-byte
//! `AbortedTxn` entries, which read_committed fetches consult.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use tracing::warn;

use super::batch::{compute_crc, BatchHeader};
use super::recovery::FileSync;

/// Control batch attributes: transactional (bit 4) + control (bit 5).
const CONTROL_ATTRIBUTES: i16 = 0x30;
/// ControlRecordType ABORT / COMMIT.
const ABORT: i16 = 0;
const COMMIT: i16 = 1;
/// Bytes of one `.txnindex` entry: version, producer id, first, last and last stable offset.
pub(crate) const ABORTED_TXN_SIZE: usize = 34;
/// A control batch larger than this is not an end-transaction marker (ours are 83 bytes).
pub(crate) const MAX_MARKER_BATCH: usize = 1024;

/// The content of an end-transaction marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// One aborted transaction of a segment's `.txnindex` (Kafka's `AbortedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The partition's first unstable offset once it was aborted (the marker's next offset when
    /// no other transaction was open): a search for aborted transactions below it can stop here.
    pub last_stable_offset: i64,
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The control batch the broker writes to end a transaction: one record, key `{version 0, type}`,
/// value `{version 0, coordinator_epoch}`, base offset 0 (assigned on append), no sequence.
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend(0i16.to_be_bytes());
    key.extend((if marker.commit { COMMIT } else { ABORT }).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend(0i16.to_be_bytes());
    value.extend(marker.coordinator_epoch.to_be_bytes());
    let mut body = vec![0u8]; // record attributes
    varint(&mut body, 0); // timestamp delta
    varint(&mut body, 0); // offset delta
    varint(&mut body, key.len() as i64);
    body.extend(&key);
    varint(&mut body, value.len() as i64);
    body.extend(&value);
    varint(&mut body, 0); // headers
    let mut record = Vec::with_capacity(body.len() + 2);
    varint(&mut record, body.len() as i64);
    record.extend(body);

    let mut b = Vec::with_capacity(BatchHeader::SIZE + record.len());
    b.extend(0i64.to_be_bytes());
    b.extend(((BatchHeader::SIZE - 12 + record.len()) as i32).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.push(2);
    b.extend([0u8; 4]);
    b.extend(CONTROL_ATTRIBUTES.to_be_bytes());
    b.extend(0i32.to_be_bytes()); // last offset delta
    b.extend(timestamp.to_be_bytes());
    b.extend(timestamp.to_be_bytes());
    b.extend(producer_id.to_be_bytes());
    b.extend(producer_epoch.to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(1i32.to_be_bytes());
    b.extend(record);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    None
}

/// The end-transaction marker in a whole control batch, if it is one (uncompressed, one record
/// whose key is `{0, ABORT|COMMIT}`). Other control records (Raft's, unknown types) are `None`.
pub fn parse_marker(batch: &[u8]) -> Option<TxnMarker> {
    let h = BatchHeader::parse(batch).ok()?;
    if !h.is_control() || h.compression() != 0 || h.records_count < 1 {
        return None;
    }
    let rec = batch.get(BatchHeader::SIZE..)?;
    let mut pos = 0usize;
    read_varint(rec, &mut pos)?; // record length
    pos += 1; // attributes
    read_varint(rec, &mut pos)?; // timestamp delta
    read_varint(rec, &mut pos)?; // offset delta
    let key_len = usize::try_from(read_varint(rec, &mut pos)?).ok()?;
    let key = rec.get(pos..pos + key_len)?;
    pos += key_len;
    if key_len < 4 {
        return None;
    }
    let kind = i16::from_be_bytes([key[2], key[3]]);
    if kind != ABORT && kind != COMMIT {
        return None;
    }
    let value_len = usize::try_from(read_varint(rec, &mut pos)?).ok()?;
    let value = rec.get(pos..pos + value_len)?;
    if value_len < 6 {
        return None;
    }
    Some(TxnMarker {
        commit: kind == COMMIT,
        coordinator_epoch: i32::from_be_bytes([value[2], value[3], value[4], value[5]]),
    })
}

impl AbortedTxn {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(0i16.to_be_bytes());
        out.extend(self.producer_id.to_be_bytes());
        out.extend(self.first_offset.to_be_bytes());
        out.extend(self.last_offset.to_be_bytes());
        out.extend(self.last_stable_offset.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| -> Option<i64> {
            Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        if b.get(..2)? != [0, 0] {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        })
    }
}

/// The entries of a `.txnindex` file; `None` when it is missing or damaged (logged), so the caller
/// rebuilds it from the batches.
pub(crate) fn read_index(path: &Path) -> io::Result<Option<Vec<AbortedTxn>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() % ABORTED_TXN_SIZE != 0 {
        warn!(file = %path.display(), len = bytes.len(), "transaction index has a partial entry; rebuilding");
        return Ok(None);
    }
    let mut out = Vec::with_capacity(bytes.len() / ABORTED_TXN_SIZE);
    for chunk in bytes.chunks_exact(ABORTED_TXN_SIZE) {
        match AbortedTxn::decode(chunk) {
            Some(t) if t.first_offset <= t.last_offset => out.push(t),
            _ => {
                warn!(file = %path.display(), "transaction index has a bad entry; rebuilding");
                return Ok(None);
            }
        }
    }
    Ok(Some(out))
}

/// Appends one entry to a `.txnindex` file (creating it).
pub(crate) fn append_index(path: &Path, entry: &AbortedTxn, sync: FileSync) -> io::Result<()> {
    let mut buf = Vec::with_capacity(ABORTED_TXN_SIZE);
    entry.encode(&mut buf);
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(&buf)?;
    if sync == FileSync::Each {
        f.sync_data()?;
    }
    Ok(())
}

/// Replaces a `.txnindex` file with `entries` (tmp + rename, so a crash leaves one or the other).
pub(crate) fn write_index(path: &Path, entries: &[AbortedTxn]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(entries.len() * ABORTED_TXN_SIZE);
    for e in entries {
        e.encode(&mut buf);
    }
    let tmp = path.with_extension("txnindex.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&buf)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_as_a_valid_control_batch() {
        for commit in [true, false] {
            let m = TxnMarker {
                commit,
                coordinator_epoch: 77,
            };
            let b = encode_marker(42, 3, m, 1_234);
            let h = super::super::batch::validate_stored(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.records_count),
                (42, 3, 1)
            );
            assert_eq!(h.base_sequence, -1);
            assert_eq!(parse_marker(&b), Some(m));
        }
    }

    #[test]
    fn index_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        assert_eq!(read_index(&path).unwrap(), None);
        let a = AbortedTxn {
            producer_id: 9,
            first_offset: 3,
            last_offset: 8,
            last_stable_offset: 9,
        };
        append_index(&path, &a, FileSync::Each).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), ABORTED_TXN_SIZE as u64);
        assert_eq!(read_index(&path).unwrap(), Some(vec![a]));
        write_index(&path, &[]).unwrap();
        assert_eq!(read_index(&path).unwrap(), Some(vec![]));
        fs::write(&path, [0u8; 10]).unwrap();
        assert_eq!(read_index(&path).unwrap(), None);
    }
}
