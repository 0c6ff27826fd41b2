//! Idempotent-producer state of one partition (Kafka's ProducerStateManager): per producer id its epoch and
//! last five batches, checked before and updated after every append, snapshotted to `<offset>.snapshot`;
//! for transactional producers also the first offset of the open transaction and the last coordinator
//! epoch of their markers.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::batch::BatchHeader;
use super::txn::TxnMarker;

/// Kafka keeps the metadata of this many recent batches per producer (and the producer keeps at most this
/// many requests in flight per partition), so any retry of an unacknowledged batch is recognised.
pub const MAX_CACHED_BATCHES: usize = 5;
/// RecordBatch.NO_PRODUCER_EPOCH
pub const NO_PRODUCER_EPOCH: i16 = -1;
const SNAPSHOT_EXT: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"VLPS";
/// Version 1: no transaction fields (every producer has batches); version 2 adds the coordinator epoch
/// and open transaction's first offset per producer, and allows producers known only by a marker.
const SNAPSHOT_VERSION_V1: i16 = 1;
const SNAPSHOT_VERSION: i16 = 2;

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

    /// Every producer id known here, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

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
            body.extend(e.coordinator_epoch.to_be_bytes());
            body.extend(e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
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
        if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_V1 {
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
            let (coordinator_epoch, txn_first) = if version == SNAPSHOT_VERSION_V1 {
                (-1, -1)
            } else {
                (r.i32()?, r.i64()?)
            };
            let n = r.take(1)?[0] as usize;
            if (n == 0 && version == SNAPSHOT_VERSION_V1) || n > MAX_CACHED_BATCHES {
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
                    coordinator_epoch,
                    current_txn_first_offset: (txn_first >= 0).then_some(txn_first),
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
        self.write_snapshot_with(dir, offset, super::recovery::FileSync::Each)
    }

    /// [`ProducerStateManager::write_snapshot`], fsyncing nothing with `FileSync::Later`.
    pub fn write_snapshot_with(
        &self,
        dir: &Path,
        offset: i64,
        sync: super::recovery::FileSync,
    ) -> io::Result<()> {
        let path = snapshot_path(dir, offset);
        let tmp = path.with_extension("snapshot.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&self.encode())?;
        if sync == super::recovery::FileSync::Each {
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        if sync == super::recovery::FileSync::Each {
            super::recovery::sync_dir(dir)?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    /// Checks and, if accepted, records `h` at `offset` as the log would.
    fn append(s: &mut ProducerStateManager, mut h: BatchHeader, offset: i64) -> AppendCheck {
        let check = s.check(&[h]).unwrap();
        if check == AppendCheck::Append {
            h.base_offset = offset;
            s.record_header(&h);
        }
        check
    }

    #[test]
    fn in_order_batches_are_accepted_and_gaps_refused() {
        let mut s = ProducerStateManager::new();
        assert_eq!(append(&mut s, header(7, 0, 0, 3), 0), AppendCheck::Append);
        assert_eq!(append(&mut s, header(7, 0, 3, 2), 3), AppendCheck::Append);
        assert!(matches!(
            s.check(&[header(7, 0, 6, 1)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        assert!(matches!(
            s.check(&[header(7, 0, 4, 1)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        assert_eq!(s.get(7).map(|e| e.last_seq()), Some(4));
    }

    #[test]
    fn window_of_five_recognises_retries_and_forgets_older() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            append(&mut s, header(1, 0, i * 2, 2), i as i64 * 2);
        }
        assert_eq!(s.get(1).map(|e| e.batches.len()), Some(MAX_CACHED_BATCHES));
        // Batches 2..=6 are cached; a retry of any of them is a duplicate with its original offsets.
        for i in 2..7 {
            match s.check(&[header(1, 0, i * 2, 2)]).unwrap() {
                AppendCheck::Duplicate(b) => {
                    assert_eq!(
                        (b.first_offset, b.last_offset),
                        (i as i64 * 2, i as i64 * 2 + 1)
                    )
                }
                other => panic!("batch {i}: {other:?}"),
            }
        }
        // The two oldest fell out of the window: their retry is out of order, as in Kafka.
        assert!(matches!(
            s.check(&[header(1, 0, 0, 2)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        // Same first sequence but a different length is not the same batch.
        assert!(s.check(&[header(1, 0, 12, 1)]).is_err());
    }

    #[test]
    fn several_batches_of_one_request_chain_their_sequences() {
        let mut s = ProducerStateManager::new();
        // An unknown producer may start anywhere, so give producer 3 a history first.
        append(&mut s, header(3, 0, 0, 1), 0);
        assert_eq!(
            s.check(&[header(3, 0, 1, 1), header(3, 0, 2, 2)]).unwrap(),
            AppendCheck::Append
        );
        assert!(matches!(
            s.check(&[header(3, 0, 1, 2), header(3, 0, 5, 1)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        assert!(matches!(
            s.check(&[header(3, 0, 0, 2), header(4, 0, 2, 1)]),
            Err(ProducerError::InvalidRecord(_))
        ));
        assert!(matches!(
            s.check(&[header(3, 0, 0, 2), header(3, 1, 0, 1)]),
            Err(ProducerError::InvalidRecord(_))
        ));
        assert!(matches!(
            s.check(&[header(3, 0, 0, 2), header(-1, -1, -1, 1)]),
            Err(ProducerError::InvalidRecord(_))
        ));
        // A request that retries two batches is a duplicate as a whole; half a retry is refused.
        let mut t = ProducerStateManager::new();
        append(&mut t, header(3, 0, 0, 1), 0);
        append(&mut t, header(3, 0, 1, 2), 1);
        assert!(matches!(
            t.check(&[header(3, 0, 0, 1), header(3, 0, 1, 2)]).unwrap(),
            AppendCheck::Duplicate(b) if (b.first_offset, b.last_offset) == (0, 2)
        ));
        assert!(matches!(
            t.check(&[header(3, 0, 1, 2), header(3, 0, 3, 1)]),
            Err(ProducerError::InvalidRecord(_))
        ));
        assert!(matches!(
            s.check(&[header(3, 0, -5, 1)]),
            Err(ProducerError::InvalidRecord(_))
        ));
        assert_eq!(
            s.check(&[header(-1, -1, -1, 1)]).unwrap(),
            AppendCheck::NotIdempotent
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(last_sequence(i32::MAX - 1, 2), 0);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        let mut s = ProducerStateManager::new();
        // Unknown producer: any first sequence is accepted (Kafka >= 2.5).
        assert_eq!(
            append(&mut s, header(9, 0, i32::MAX - 2, 3), 0),
            AppendCheck::Append
        );
        assert_eq!(s.get(9).map(|e| e.last_seq()), Some(i32::MAX));
        assert_eq!(append(&mut s, header(9, 0, 0, 2), 3), AppendCheck::Append);
        // A batch that itself wraps.
        let mut t = ProducerStateManager::new();
        append(&mut t, header(9, 0, i32::MAX - 1, 3), 0);
        assert_eq!(t.get(9).map(|e| e.last_seq()), Some(0));
        assert_eq!(append(&mut t, header(9, 0, 1, 1), 3), AppendCheck::Append);
        assert!(matches!(
            t.check(&[header(9, 0, i32::MAX - 1, 3)]).unwrap(),
            AppendCheck::Duplicate(b) if b.first_offset == 0
        ));
    }

    #[test]
    fn epochs_fence_and_bump() {
        let mut s = ProducerStateManager::new();
        append(&mut s, header(5, 3, 0, 1), 0);
        append(&mut s, header(5, 3, 1, 1), 1);
        assert!(matches!(
            s.check(&[header(5, 2, 2, 1)]),
            Err(ProducerError::InvalidProducerEpoch(_))
        ));
        // A retry with a stale epoch is not a duplicate either.
        assert!(matches!(
            s.check(&[header(5, 2, 1, 1)]),
            Err(ProducerError::InvalidProducerEpoch(_))
        ));
        // A new epoch must start at sequence 0, and then forgets the old epoch's batches.
        assert!(matches!(
            s.check(&[header(5, 4, 2, 1)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        assert_eq!(append(&mut s, header(5, 4, 0, 1), 2), AppendCheck::Append);
        let e = s.get(5).unwrap();
        assert_eq!((e.epoch, e.batches.len()), (4, 1));
    }

    #[test]
    fn snapshot_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::new();
        for i in 0..8 {
            append(&mut s, header(i % 3, 1, (i / 3) as i32, 1), i);
        }
        s.write_snapshot(dir.path(), 8).unwrap();
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![8]);
        let path = snapshot_path(dir.path(), 8);
        assert!(path.ends_with("00000000000000000008.snapshot"));
        assert_eq!(ProducerStateManager::read_snapshot(&path).unwrap(), Some(s));
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(ProducerStateManager::read_snapshot(&path).unwrap(), None);
        fs::write(&path, &bytes[..10]).unwrap();
        assert_eq!(ProducerStateManager::read_snapshot(&path).unwrap(), None);
        delete_snapshots_outside(dir.path(), 9, i64::MAX).unwrap();
        assert!(list_snapshots(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn version_1_snapshots_load_and_transactions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        // A snapshot as written before transactions: producer 7, epoch 2, one batch.
        let mut body = Vec::new();
        body.extend(1u32.to_be_bytes());
        body.extend(7i64.to_be_bytes());
        body.extend(2i16.to_be_bytes());
        body.extend(1_000i64.to_be_bytes());
        body.push(1);
        for v in [0i32, 4] {
            body.extend(v.to_be_bytes());
        }
        for v in [10i64, 14, 1_000] {
            body.extend(v.to_be_bytes());
        }
        let mut file = SNAPSHOT_MAGIC.to_vec();
        file.extend(SNAPSHOT_VERSION_V1.to_be_bytes());
        file.extend(crc32c::crc32c(&body).to_be_bytes());
        file.extend(body);
        let path = snapshot_path(dir.path(), 15);
        fs::write(&path, file).unwrap();
        let s = ProducerStateManager::read_snapshot(&path).unwrap().unwrap();
        let e = s.get(7).unwrap();
        assert_eq!((e.epoch, e.last_seq(), e.coordinator_epoch), (2, 4, -1));
        assert_eq!(e.current_txn_first_offset, None);
        // Version 2 keeps an open transaction and a producer known only by its marker.
        let mut t = ProducerStateManager::new();
        let mut h = header(3, 0, 0, 2);
        h.attributes = 0x10;
        h.base_offset = 20;
        t.record_header(&h);
        let mut m = header(4, 1, -1, 1);
        m.attributes = 0x30;
        m.base_offset = 22;
        let done = t.record_marker(
            &m,
            TxnMarker {
                commit: false,
                coordinator_epoch: 9,
            },
        );
        assert_eq!((done.first_offset, done.aborted), (22, true));
        assert_eq!(t.first_unstable_offset(), Some(20));
        t.write_snapshot(dir.path(), 23).unwrap();
        let back = ProducerStateManager::read_snapshot(&snapshot_path(dir.path(), 23))
            .unwrap()
            .unwrap();
        assert_eq!(back, t);
        assert_eq!(back.get(4).map(|e| e.coordinator_epoch), Some(9));
    }

    #[test]
    fn expiration_and_truncation() {
        let mut s = ProducerStateManager::new();
        let mut old = header(1, 0, 0, 1);
        old.max_timestamp = 1_000;
        let mut new = header(2, 0, 0, 1);
        new.max_timestamp = 5_000;
        append(&mut s, old, 0);
        append(&mut s, new, 1);
        assert_eq!(s.remove_expired(5_999, 5_000), 0);
        assert_eq!(s.remove_expired(6_000, 5_000), 1);
        assert!(s.get(1).is_none() && s.get(2).is_some());
        append(&mut s, header(2, 0, 1, 1), 2);
        s.truncate_to(2);
        assert_eq!(s.get(2).map(|e| e.batches.len()), Some(1));
        s.truncate_to(1);
        assert!(s.is_empty());
    }

    #[test]
    fn coordinator_batches_are_checked_for_their_epoch_only() {
        let mut s = ProducerStateManager::new();
        let at = |offset: i64, epoch: i16| BatchHeader {
            base_offset: offset,
            ..header(9, epoch, 0, 2)
        };
        // Every coordinator batch starts at sequence 0: never a retry, never out of order.
        for (i, epoch) in [1, 1, 2].into_iter().enumerate() {
            assert_eq!(
                s.check_coordinator(&[at(0, epoch)]).unwrap(),
                AppendCheck::Append
            );
            s.record_header(&at(i as i64 * 2, epoch));
        }
        // A client's check would have taken the repeated sequence 0 for a retry.
        assert!(matches!(
            s.check(&[at(0, 2)]),
            Ok(AppendCheck::Duplicate(_))
        ));
        assert!(matches!(
            s.check_coordinator(&[at(0, 1)]),
            Err(ProducerError::InvalidProducerEpoch(_))
        ));
        assert_eq!(
            s.check_coordinator(&[header(-1, -1, -1, 1)]).unwrap(),
            AppendCheck::NotIdempotent
        );
    }
}
