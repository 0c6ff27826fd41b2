//! Idempotent-producer state of one partition (Kafka's ProducerStateManager): per producer id its epoch and
//! last five batches, checked before and updated after every append, snapshotted to `<offset>.snapshot`.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::batch::BatchHeader;

/// Kafka keeps the metadata of this many recent batches per producer (and the producer keeps at most this
/// many requests in flight per partition), so any retry of an unacknowledged batch is recognised.
pub const MAX_CACHED_BATCHES: usize = 5;
/// RecordBatch.NO_PRODUCER_EPOCH
pub const NO_PRODUCER_EPOCH: i16 = -1;
const SNAPSHOT_EXT: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"VLPS";
const SNAPSHOT_VERSION: i16 = 1;

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
}

impl ProducerEntry {
    fn last_seq(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }

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

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

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
        // A retry is recognised against the state before this request, whatever else the request holds.
        for h in headers {
            let last = last_sequence(h.base_sequence, h.last_offset_delta);
            if let Some(dup) = current.and_then(|e| e.find_duplicate(epoch, h.base_sequence, last))
            {
                return Ok(AppendCheck::Duplicate(dup));
            }
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

    /// Records an appended (or, on rebuild, a read) batch of `producer_id`. A new epoch forgets older batches.
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMetadata) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::with_capacity(MAX_CACHED_BATCHES),
                last_timestamp: batch.timestamp,
            });
        if entry.epoch != epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        entry.last_timestamp = batch.timestamp;
    }

    /// Records a batch header of the log (rebuild); batches without a producer id and control batches are skipped.
    pub fn record_header(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.is_control() {
            return;
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
    /// (`producer.id.expiration.ms`). Returns how many were dropped.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// Drops every batch at or after `offset` (and producers left without batches): the log was cut there.
    pub fn truncate_to(&mut self, offset: i64) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.last_offset < offset);
            !e.batches.is_empty()
        });
    }

    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(8 + self.producers.len() * (19 + 36));
        body.extend((self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[id];
            body.extend(id.to_be_bytes());
            body.extend(e.epoch.to_be_bytes());
            body.extend(e.last_timestamp.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend(b.first_seq.to_be_bytes());
                body.extend(b.last_seq.to_be_bytes());
                body.extend(b.first_offset.to_be_bytes());
                body.extend(b.last_offset.to_be_bytes());
                body.extend(b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(10 + body.len());
        out.extend(SNAPSHOT_MAGIC);
        out.extend(SNAPSHOT_VERSION.to_be_bytes());
        out.extend(crc32c::crc32c(&body).to_be_bytes());
        out.extend(body);
        out
    }

    fn decode(buf: &[u8]) -> Result<Self, String> {
        let mut r = Reader { buf, pos: 0 };
        if r.take(4)? != SNAPSHOT_MAGIC {
            return Err("bad magic".into());
        }
        let version = r.i16()?;
        if version != SNAPSHOT_VERSION {
            return Err(format!("unknown version {version}"));
        }
        let crc = r.u32()?;
        if crc32c::crc32c(&buf[r.pos..]) != crc {
            return Err("crc mismatch".into());
        }
        let count = r.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let n = r.take(1)?[0] as usize;
            if n == 0 || n > MAX_CACHED_BATCHES {
                return Err(format!("producer {id} has {n} batches"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        if r.pos != buf.len() {
            return Err("trailing bytes".into());
        }
        Ok(ProducerStateManager { producers })
    }

    /// Writes `<offset>.snapshot` (the state of every batch below `offset`) atomically: tmp, fsync, rename.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> io::Result<()> {
        let path = snapshot_path(dir, offset);
        let tmp = path.with_extension("snapshot.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&self.encode())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        super::recovery::sync_dir(dir)
    }

    /// Reads a snapshot file; `Ok(None)` if it is damaged (logged), so the caller falls back to an older one.
    pub fn read_snapshot(path: &Path) -> io::Result<Option<Self>> {
        let buf = fs::read(path)?;
        match Self::decode(&buf) {
            Ok(s) => Ok(Some(s)),
            Err(reason) => {
                warn!(file = %path.display(), %reason, "ignoring damaged producer state snapshot");
                Ok(None)
            }
        }
    }
}

/// `<dir>/<offset, 20 digits>.snapshot`, Kafka's name for producer state snapshots.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_EXT}"))
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SNAPSHOT_EXT))
            .and_then(|n| n.strip_suffix('.'))
        else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(offset) = stem.parse() {
                out.push(offset);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Removes the snapshots whose offset is below `below` or above `above`.
pub fn delete_snapshots_outside(dir: &Path, below: i64, above: i64) -> io::Result<()> {
    for offset in list_snapshots(dir)? {
        if offset < below || offset > above {
            match fs::remove_file(snapshot_path(dir, offset)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or_else(|| "truncated".to_string())?;
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }
}
