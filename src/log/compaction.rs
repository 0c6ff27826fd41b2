//! Log compaction (`cleanup.policy=compact`), as Kafka's log cleaner does it: in the sealed segments only
//! the latest record of each key stays, tombstones (null values) go once `delete.retention.ms` has passed
//! since they were written, records without a key go, and every record keeps its offset (a compacted log
//! has gaps). Records of aborted transactions go whatever their keys and never count as a key's
//! latest; transaction markers stay; nothing at or past the first unstable offset is cleaned.
//!
//! A pass has three steps. `PartitionLog::plan_cleaning` (under the partition lock) picks the segments;
//! `CleanPlan::run` (no lock: sealed segments never change) writes a cleaned copy of each as
//! `<base>.cleaned`, reads it back with full validation and renames it `<base>.swap`;
//! `PartitionLog::finish_cleaning` (under the lock again) swaps them in. A `.swap` file is complete, so
//! opening a log finishes an interrupted swap; a `.cleaned` file may not be, and is deleted.
//!
//! A batch whose records all stay is copied byte for byte. Any other batch is rebuilt from the raw bytes
//! of the records that stay, under its own header (same base offset, base timestamp, producer fields and
//! last offset delta, so each record's encoding stays valid), compressed again with its codec. A batch
//! left with no records is dropped, unless it is the last batch of a producer the partition still
//! tracks: it stays empty, so the producer's sequence survives a rebuild of the producer state. A
//! segment left with nothing is deleted, unless it is the first one.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use super::batch::{framed_size, rewrite_header, validate_stored, BatchHeader, LOG_OVERHEAD};
use super::error::LogError;
use super::partition::PartitionLog;
use super::records::{compress, for_each_record, records_section, RecordView};
use super::recovery::sync_dir;
use super::segment::{segment_path, Segment};
use super::txn::AbortedTxn;
use super::TimestampType;

/// Holds the first offset the cleaner has not cleaned yet (Kafka's `cleaner-offset-checkpoint`).
pub(crate) const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Kafka's `log.cleaner.dedupe.buffer.size`: the most key bytes one pass keeps in memory. A pass that
/// reaches it cleans up to the segment where it stopped; the next pass goes on from there. (A single
/// segment with more distinct keys than this is never cleaned, as in Kafka.)
const KEY_MAP_BUDGET: usize = 128 << 20;
/// Bytes charged per key on top of its own (the map entry).
const KEY_OVERHEAD: usize = 48;
/// A batch that decompresses to more than this is kept as it is.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// Segment files are read this much at a time.
const READ_CHUNK: u64 = 1 << 20;
/// Low three bits of the attributes: the compression codec.
const CODEC_MASK: i16 = 0x07;

/// Key -> offset of its latest record.
type KeyMap = HashMap<Box<[u8]>, i64>;

/// One segment a pass works on, as it was when planned.
#[derive(Clone, Debug)]
struct Planned {
    base_offset: i64,
    size: u64,
    next_offset: i64,
    modified: SystemTime,
}

/// The work of one cleaning pass; built under the partition lock, run without it.
#[derive(Debug)]
pub struct CleanPlan {
    dir: PathBuf,
    /// Sealed segments from the first one up to the last cleanable one, in offset order.
    segments: Vec<Planned>,
    first_dirty: i64,
    /// Producer id -> last offset of its last batch.
    producer_last: HashMap<i64, i64>,
    /// Every aborted transaction of the log: their records go whatever their keys (Kafka's cleaner).
    aborted: Vec<AbortedTxn>,
    /// Tombstones in segments last written before this are dropped.
    tombstone_horizon: SystemTime,
    /// The most bytes of keys (plus per-key overhead) the key map may hold.
    key_budget: usize,
}

/// The `.swap` files a pass produced, ready to be swapped in.
#[derive(Debug)]
pub struct Cleaned {
    /// (base offset, size when planned, size cleaned, records removed).
    swaps: Vec<(i64, u64, u64, u64)>,
    /// The first offset not cleaned by this pass.
    end_dirty: i64,
}

/// What a pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

fn read_checkpoint(dir: &Path) -> Option<i64> {
    fs::read_to_string(dir.join(CHECKPOINT_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn write_checkpoint(dir: &Path, offset: i64) -> Result<(), LogError> {
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{offset}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    sync_dir(dir)?;
    Ok(())
}

/// Calls `f` with each batch of the first `size` bytes of a segment file, in order.
fn for_each_batch(
    file: &File,
    size: u64,
    mut f: impl FnMut(&[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64;
    let mut pos = 0u64;
    while pos < size {
        let avail = size - pos;
        let holds = |buf: &Vec<u8>, start: u64, len: u64| {
            pos >= start && pos + len <= start + buf.len() as u64
        };
        if !holds(&buf, buf_start, (LOG_OVERHEAD as u64).min(avail)) {
            buf.resize(avail.min(READ_CHUNK) as usize, 0);
            file.read_exact_at(&mut buf, pos)?;
            buf_start = pos;
        }
        let at = (pos - buf_start) as usize;
        let len = framed_size(&buf[at..])
            .filter(|l| *l >= BatchHeader::SIZE as i64 && *l as u64 <= avail)
            .ok_or_else(|| LogError::Corrupt(format!("bad batch frame at position {pos}")))?
            as u64;
        if !holds(&buf, buf_start, len) {
            buf.resize((len as usize).max(avail.min(READ_CHUNK) as usize), 0);
            file.read_exact_at(&mut buf, pos)?;
            buf_start = pos;
        }
        let at = (pos - buf_start) as usize;
        f(&buf[at..at + len as usize])?;
        pos += len;
    }
    Ok(())
}

/// Finishes what a crash interrupted: a `.swap` file replaces its segment's log (whose indexes are
/// removed first, to be rebuilt), a `.cleaned` file is deleted. Called before a log is opened.
pub(crate) fn finish_interrupted(dir: &Path) -> Result<(), LogError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".cleaned") {
            warn!(file = %path.display(), "removing unfinished cleaned segment");
            fs::remove_file(&path)?;
        } else if let Some(base) = name
            .strip_suffix(".swap")
            .and_then(|b| b.parse::<i64>().ok())
        {
            if segment_path(dir, base, "log").exists() {
                warn!(file = %path.display(), "finishing interrupted swap of a cleaned segment");
                install_swap(dir, base)?;
            } else {
                // Its segment was deleted (retention) after it was cleaned.
                fs::remove_file(&path)?;
            }
        }
    }
    sync_dir(dir)?;
    Ok(())
}

/// Replaces a segment's log with its `.swap` file. The old indexes go first: if a crash follows, the
/// swap is finished again on open, and indexes never describe the wrong file.
fn install_swap(dir: &Path, base: i64) -> Result<(), LogError> {
    for ext in ["index", "timeindex"] {
        match fs::remove_file(segment_path(dir, base, ext)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    sync_dir(dir)?;
    fs::rename(
        segment_path(dir, base, "swap"),
        segment_path(dir, base, "log"),
    )?;
    sync_dir(dir)?;
    Ok(())
}

impl PartitionLog {
    /// The next cleaning pass, if this log is compacted and enough of it is dirty: the sealed segments
    /// older than `min.compaction.lag.ms`, when the never-cleaned ones make up at least
    /// `min.cleanable.dirty.ratio` of their bytes or the oldest of them is past `max.compaction.lag.ms`.
    pub fn plan_cleaning(&self, now_ms: i64) -> Option<CleanPlan> {
        if !self.config.cleanup_compact {
            return None;
        }
        let sealed = &self.segments[..self.segments.len().saturating_sub(1)];
        let lag_limit = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        // Never past the first unstable offset (Kafka's `firstUncleanableDirtyOffset`): an open
        // transaction's records may still be aborted.
        let unstable = self
            .producers
            .first_unstable_offset()
            .into_iter()
            .chain(self.completed_txns.iter().map(|t| t.first_offset))
            .min()
            .unwrap_or(i64::MAX);
        let cleanable: Vec<&Segment> = sealed
            .iter()
            .take_while(|s| s.size == 0 || s.largest_timestamp() <= lag_limit)
            .take_while(|s| s.next_offset <= unstable)
            .collect();
        let first_dirty = read_checkpoint(&self.dir)
            .unwrap_or(self.log_start_offset)
            .max(self.log_start_offset);
        let total: u64 = cleanable.iter().map(|s| s.size).sum();
        let dirty: Vec<&&Segment> = cleanable
            .iter()
            .filter(|s| s.next_offset > first_dirty && s.size > 0)
            .collect();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
        if dirty_bytes == 0 {
            return None;
        }
        let ratio = dirty_bytes as f64 / total as f64;
        let overdue = dirty.first().is_some_and(|s| {
            now_ms.saturating_sub(s.largest_timestamp()) > self.config.max_compaction_lag_ms
        });
        if ratio < self.config.min_cleanable_dirty_ratio && !overdue {
            return None;
        }
        let horizon = now_ms
            .saturating_sub(self.config.delete_retention_ms)
            .max(0);
        Some(CleanPlan {
            dir: self.dir.clone(),
            segments: cleanable
                .iter()
                .map(|s| Planned {
                    base_offset: s.base_offset,
                    size: s.size,
                    next_offset: s.next_offset,
                    modified: s.modified().unwrap_or(SystemTime::now()),
                })
                .collect(),
            first_dirty,
            producer_last: self.producers.last_batch_offsets(),
            aborted: self
                .segments
                .iter()
                .flat_map(|s| s.aborted.iter().copied())
                .collect(),
            tombstone_horizon: UNIX_EPOCH + Duration::from_millis(horizon as u64),
            key_budget: KEY_MAP_BUDGET,
        })
    }

    /// Swaps in what `CleanPlan::run` produced, for each segment that is still as it was planned; a
    /// segment deleted meanwhile (retention) loses its swap file and the checkpoint stays where it was.
    pub fn finish_cleaning(&mut self, cleaned: Cleaned) -> Result<CleanStats, LogError> {
        let mut stats = CleanStats::default();
        let mut complete = true;
        let (index_bytes, interval) = (
            self.config.segment_index_bytes,
            self.config.index_interval_bytes,
        );
        for (base, planned_size, cleaned_size, removed) in cleaned.swaps {
            let found = self.segments[..self.segments.len().saturating_sub(1)]
                .iter()
                .position(|s| s.base_offset == base && s.size == planned_size);
            let Some(i) = found else {
                complete = false;
                fs::remove_file(segment_path(&self.dir, base, "swap"))?;
                continue;
            };
            if cleaned_size == 0 && i > 0 {
                // Nothing left: the segment goes (a read in its range moves on to the next one). The
                // first segment stays, even empty, as it carries the log start.
                fs::remove_file(segment_path(&self.dir, base, "swap"))?;
                self.segments.remove(i).delete()?;
                sync_dir(&self.dir)?;
            } else {
                install_swap(&self.dir, base)?;
                let (mut seg, truncated) =
                    Segment::recover(&self.dir, base, index_bytes, interval)?;
                if truncated {
                    // `run` read the file back before renaming it: the disk changed it since.
                    warn!(dir = %self.dir.display(), base_offset = base, "cleaned segment failed recovery");
                    complete = false;
                }
                seg.seal()?;
                // Markers are never cleaned away, so the segment's aborted transactions stay.
                seg.aborted = std::mem::take(&mut self.segments[i].aborted);
                self.segments[i] = seg;
            }
            stats.segments += 1;
            stats.bytes_before += planned_size;
            stats.bytes_after += cleaned_size;
            stats.records_removed += removed;
        }
        if complete {
            write_checkpoint(&self.dir, cleaned.end_dirty)?;
        }
        if stats.segments > 0 {
            info!(dir = %self.dir.display(), segments = stats.segments, bytes_before = stats.bytes_before,
                bytes_after = stats.bytes_after, records_removed = stats.records_removed, "compacted log");
        }
        Ok(stats)
    }
}

impl CleanPlan {
    /// The end offset of the last segment the pass covers.
    #[cfg(test)]
    pub(crate) fn last_planned_offset(&self) -> i64 {
        self.segments.last().map_or(-1, |s| s.next_offset)
    }

    #[cfg(test)]
    pub(crate) fn with_key_budget(mut self, keys: usize, key_len: usize) -> Self {
        self.key_budget = keys * (key_len + KEY_OVERHEAD);
        self
    }

    /// Builds the key map over the dirty segments, then writes, checks and renames a cleaned copy of every
    /// planned segment below the end of the map. Takes no lock; on error no swap file is left behind.
    pub fn run(self) -> Result<Cleaned, LogError> {
        let (map, end_dirty) = self.key_map()?;
        let mut swaps = Vec::new();
        for seg in self.segments.iter().filter(|s| s.next_offset <= end_dirty) {
            match self.clean_segment(seg, &map) {
                Ok(Some((size, removed))) => swaps.push((seg.base_offset, seg.size, size, removed)),
                Ok(None) => {}
                Err(e) => {
                    for (base, ..) in swaps {
                        let _ = fs::remove_file(segment_path(&self.dir, base, "swap"));
                    }
                    let _ = fs::remove_file(segment_path(&self.dir, seg.base_offset, "cleaned"));
                    return Err(e);
                }
            }
        }
        sync_dir(&self.dir)?;
        Ok(Cleaned { swaps, end_dirty })
    }

    /// Key -> offset of its latest record, over the dirty segments in order, and the offset where the map
    /// ends: the end of the last planned segment, or the start of the one where the key budget ran out.
    /// (The keys mapped from that segment still only remove older records of theirs: a later record of
    /// each exists.)
    fn key_map(&self) -> Result<(KeyMap, i64), LogError> {
        let mut map: KeyMap = HashMap::new();
        let mut charged = 0usize;
        let mut full = false;
        let mut end = self.first_dirty;
        for seg in &self.segments {
            if seg.next_offset <= self.first_dirty {
                end = end.max(seg.next_offset);
                continue;
            }
            let file = File::open(segment_path(&self.dir, seg.base_offset, "log"))?;
            for_each_batch(&file, seg.size, |batch| {
                let Ok((header, payload)) = records_section(batch, MAX_BATCH_BYTES) else {
                    return Ok(());
                };
                // An aborted record must not make an older committed one of its key look superseded.
                if header.is_control() || self.is_aborted(&header) {
                    return Ok(());
                }
                let _ = for_each_record(&header, &payload, |r| {
                    let Some(key) = r.key else { return };
                    if let Some(latest) = map.get_mut(key) {
                        *latest = r.offset;
                    } else if charged + key.len() + KEY_OVERHEAD <= self.key_budget {
                        charged += key.len() + KEY_OVERHEAD;
                        map.insert(key.into(), r.offset);
                    } else {
                        full = true;
                    }
                });
                Ok(())
            })?;
            if full {
                if end == self.first_dirty {
                    warn!(dir = %self.dir.display(), base_offset = seg.base_offset,
                        "the keys of one segment exceed the cleaner's key budget; it stays uncleaned");
                }
                break;
            }
            end = seg.next_offset;
        }
        Ok((map, end))
    }

    /// A data batch of an aborted transaction: transactional, of a producer whose aborted
    /// transaction spans its offset (first batch to ABORT marker).
    fn is_aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted.iter().any(|t| {
                t.producer_id == h.producer_id
                    && t.first_offset <= h.base_offset
                    && h.base_offset < t.last_offset
            })
    }

    /// Writes `<base>.cleaned`, reads it back with full validation, then renames it `<base>.swap`.
    /// Returns its size and how many records it lost; `None` (and no file) when nothing would change.
    fn clean_segment(&self, seg: &Planned, map: &KeyMap) -> Result<Option<(u64, u64)>, LogError> {
        let drop_tombstones = seg.modified < self.tombstone_horizon;
        let source = File::open(segment_path(&self.dir, seg.base_offset, "log"))?;
        let cleaned_path = segment_path(&self.dir, seg.base_offset, "cleaned");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&cleaned_path)?;
        let mut out = BufWriter::new(file);
        let (mut written, mut removed, mut changed) = (0u64, 0u64, false);
        for_each_batch(&source, seg.size, |batch| {
            let kept = self.clean_batch(batch, map, drop_tombstones, &mut removed);
            changed |= kept.is_some();
            let bytes = kept.as_deref().unwrap_or(batch);
            out.write_all(bytes)?;
            written += bytes.len() as u64;
            Ok(())
        })?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if !changed {
            drop(file);
            fs::remove_file(&cleaned_path)?;
            return Ok(None);
        }
        file.sync_all()?;
        // Tombstone expiry and retention go by when the segment was last written, not when it was cleaned.
        file.set_modified(seg.modified)?;
        for_each_batch(&file, written, |batch| {
            validate_stored(batch)?;
            Ok(())
        })?;
        drop(file);
        fs::rename(
            &cleaned_path,
            segment_path(&self.dir, seg.base_offset, "swap"),
        )?;
        Ok(Some((written, removed)))
    }

    /// The cleaned form of one batch: `None` to keep it as it is, an empty vector to drop it, else the
    /// rebuilt batch.
    fn clean_batch(
        &self,
        batch: &[u8],
        map: &KeyMap,
        drop_tombstones: bool,
        removed: &mut u64,
    ) -> Option<Vec<u8>> {
        let aborted = BatchHeader::parse(batch).is_ok_and(|h| self.is_aborted(&h));
        let (cleaned, gone) = compact_batch(batch, |r| {
            if aborted {
                return false;
            }
            let latest = r
                .key
                .is_some_and(|k| map.get(k).is_none_or(|&last| r.offset >= last));
            latest && !(r.tombstone && drop_tombstones)
        })?;
        *removed += gone;
        let header = BatchHeader::parse(&cleaned).ok()?;
        let last_of_producer = header.producer_id >= 0
            && self.producer_last.get(&header.producer_id) == Some(&header.last_offset());
        if header.records_count == 0 && !last_of_producer {
            return Some(Vec::new());
        }
        Some(cleaned)
    }
}

/// One stored batch with only the records `keep` accepts, and how many it lost: `None` when all stay,
/// or when the batch cannot be read record by record (a control batch, a damaged one, one beyond
/// the decompression bound), which is then kept as it is. A batch left with no records comes back as
/// its bare header (no records, no codec). The rebuilt batch keeps the original header but for its
/// length, record count, max timestamp (CreateTime) and CRC, and holds the kept records' own bytes
/// compressed again with the batch's codec.
pub fn compact_batch(
    batch: &[u8],
    mut keep: impl FnMut(&RecordView) -> bool,
) -> Option<(Vec<u8>, u64)> {
    let (header, payload) = records_section(batch, MAX_BATCH_BYTES).ok()?;
    if header.is_control() {
        return None;
    }
    let mut kept: Vec<RecordView> = Vec::new();
    let mut seen = 0usize;
    for_each_record(&header, &payload, |r| {
        seen += 1;
        if keep(&r) {
            kept.push(r);
        }
    })
    .ok()?;
    if seen != header.records_count.max(0) as usize || kept.len() == seen {
        return None;
    }
    let gone = (seen - kept.len()) as u64;
    if kept.is_empty() {
        let mut empty = batch.get(..BatchHeader::SIZE)?.to_vec();
        rewrite_header(&mut empty, 0, None, Some(header.attributes & !CODEC_MASK));
        return Some((empty, gone));
    }
    let mut records = Vec::with_capacity(kept.iter().map(|r| r.raw.len()).sum());
    for r in &kept {
        records.extend_from_slice(r.raw);
    }
    let body = compress(header.compression(), &records).ok()?;
    let mut rebuilt = Vec::with_capacity(BatchHeader::SIZE + body.len());
    rebuilt.extend_from_slice(batch.get(..BatchHeader::SIZE)?);
    rebuilt.extend_from_slice(&body);
    let max_timestamp = (header.timestamp_type() == TimestampType::CreateTime)
        .then(|| kept.iter().map(|r| r.timestamp).max())
        .flatten();
    rewrite_header(&mut rebuilt, kept.len() as i32, max_timestamp, None);
    Some((rebuilt, gone))
}
