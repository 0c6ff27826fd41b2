//! Opening a partition directory: finding segments, cleaning leftovers, and recovering after a crash.

use std::fs;
use std::io;
use std::path::Path;

use tracing::{debug, warn};

use super::config::LogConfig;
use super::error::LogError;
use super::partition::PartitionLog;
use super::producer_state::{list_snapshots, snapshot_path, ProducerStateManager};
use super::retention::{read_checkpoint, CHECKPOINT_FILE};
use super::segment::{segment_path, Segment};
use super::txn::AbortedTxn;

/// Written by `close`, removed by `open`: its presence means the last segment and its indexes are complete.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// fsync a directory so file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// When the files a step writes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSync {
    /// Each file (and its directory entry) is fsynced before the step returns.
    Each,
    /// Nothing is fsynced: the caller syncs the whole filesystem ([`sync_filesystem`]) before
    /// anything that depends on these files being durable.
    Later,
}

/// Flushes every dirty file of the filesystem holding `dir` to disk (`syncfs`): one call instead of
/// an fsync per file, when many logs close at once.
pub fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = fs::File::open(dir)?;
    // SAFETY: syncfs on a descriptor this function owns; it reads no memory of ours.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Base offset from a `<20 digits>.<ext>` file name.
fn parse_base(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn remove_segment_files(dir: &Path, base: i64) -> io::Result<()> {
    for ext in ["log", "index", "timeindex", "txnindex"] {
        match fs::remove_file(segment_path(dir, base, ext)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

impl PartitionLog {
    /// Open (creating the directory if missing) and recover. Sealed segments are trusted when their indexes pass
    /// sanity checks (else rebuilt). Unless the log was closed cleanly, the last segment is scanned with CRC
    /// checks, its torn or corrupt tail truncated and its indexes rebuilt. If a sealed segment has to be truncated, later segments are dropped.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        fs::create_dir_all(dir)?;
        super::compaction::finish_interrupted(dir)?;
        let mut bases = Vec::new();
        let mut index_bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = parse_base(name, "log") {
                bases.push(base);
            } else if let Some(base) = parse_base(name, "index")
                .or_else(|| parse_base(name, "timeindex"))
                .or_else(|| parse_base(name, "txnindex"))
            {
                index_bases.push((base, entry.path()));
            } else if name.ends_with(".tmp") {
                // Includes a `<offset>.snapshot.tmp` a crash interrupted.
                warn!(file = %entry.path().display(), "removing leftover temporary file");
                fs::remove_file(entry.path())?;
            }
        }
        bases.sort_unstable();
        for (base, path) in index_bases {
            if bases.binary_search(&base).is_err() {
                warn!(file = %path.display(), "removing index without a log segment");
                fs::remove_file(path)?;
            }
        }

        // Only a clean close lets us skip the full CRC scan of the last segment. The marker stays while
        // the last segment is exactly as that close left it: it goes (durably) before anything changes
        // that segment, here or at the first append, so a crash from then on is treated as unclean.
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let mut clean = marker.exists();
        let unclean = |clean: &mut bool| -> io::Result<()> {
            if std::mem::take(clean) {
                fs::remove_file(&marker)?;
                sync_dir(dir)?;
            }
            Ok(())
        };
        let (index_bytes, interval) = (config.segment_index_bytes, config.index_interval_bytes);
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let trusted = if is_last && clean {
                Segment::open_clean_active(dir, base, index_bytes, interval)?
            } else {
                None
            };
            let (seg, truncated) = if let Some(seg) = trusted {
                (seg, false)
            } else if is_last {
                unclean(&mut clean)?;
                Segment::recover(dir, base, index_bytes, interval)?
            } else {
                Segment::open_sealed(dir, base, index_bytes, interval)?
            };
            if let Some(prev) = segments.last() {
                if seg.base_offset < prev.next_offset {
                    return Err(LogError::Corrupt(format!(
                        "segment {base} overlaps the previous one ending at offset {}",
                        prev.next_offset
                    )));
                }
            }
            segments.push(seg);
            if truncated && !is_last {
                // The log must stay contiguous: everything after a truncation point is unreachable.
                unclean(&mut clean)?;
                for &later in &bases[i + 1..] {
                    warn!(dir = %dir.display(), base_offset = later, "deleting segment after truncated segment");
                    remove_segment_files(dir, later)?;
                }
                break;
            }
        }

        let checkpoint = read_checkpoint(dir);
        if segments.is_empty() {
            let base = checkpoint.unwrap_or(0).max(0);
            segments.push(Segment::create(dir, base, index_bytes, interval)?);
        }
        let first_base = segments.first().map_or(0, |s| s.base_offset);
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: checkpoint.unwrap_or(first_base).max(first_base),
            last_flush_ms: 0,
            producers: ProducerStateManager::new(),
            clean_marker: false,
            epochs: Default::default(),
            completed_txns: Vec::new(),
        };
        let end = log.log_end_offset();
        if log.log_start_offset > end {
            // Data up to the checkpointed start offset was lost (e.g. truncated); restart empty at the start offset.
            warn!(dir = %dir.display(), log_start_offset = log.log_start_offset, log_end_offset = end,
                "log start offset beyond recovered end; starting an empty log at the start offset");
            unclean(&mut clean)?;
            for seg in log.segments.drain(..) {
                seg.delete()?;
            }
            let seg = Segment::create(dir, log.log_start_offset, index_bytes, interval)?;
            log.segments.push(seg);
        }
        if !dir.join(CHECKPOINT_FILE).exists() && log.log_start_offset > first_base {
            log.write_checkpoint()?;
        }
        let mut txn_indexes_lost = false;
        for seg in &mut log.segments {
            if !seg.load_txn_index()? {
                txn_indexes_lost = true;
            }
        }
        if txn_indexes_lost {
            warn!(dir = %dir.display(), "transaction index missing or damaged; rebuilding from the whole log");
        }
        log.rebuild_producer_state(wall_clock_ms(), txn_indexes_lost)?;
        log.load_leader_epochs(clean)?;
        log.clean_marker = clean;
        if !clean {
            sync_dir(dir)?;
        }
        Ok(log)
    }

    /// Rebuilds the idempotent-producer state: the newest readable snapshot at or below the (recovered) log
    /// end offset, then the headers of the batches after it (no decompression, no CRC). Snapshots beyond the
    /// end describe batches recovery cut off and are deleted, so truncated batches leave no state behind.
    /// Producers whose last batch is older than `producer.id.expiration.ms` are dropped.
    pub(super) fn load_producer_state(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.rebuild_producer_state(now_ms, false)
    }

    /// [`Self::load_producer_state`]; the aborted-transaction entries of markers at or after the
    /// snapshot are rebuilt from the batches with it. `from_scratch` (a `.txnindex` was lost) ignores
    /// the snapshots and rebuilds producer state and every segment's index from the first segment.
    pub(super) fn rebuild_producer_state(
        &mut self,
        now_ms: i64,
        from_scratch: bool,
    ) -> Result<(), LogError> {
        let end = self.log_end_offset();
        let first_base = self.segments.first().map_or(0, |s| s.base_offset);
        let mut snapshots = list_snapshots(&self.dir)?;
        for &offset in snapshots.iter().filter(|&&o| o > end) {
            warn!(dir = %self.dir.display(), offset, log_end_offset = end,
                "deleting producer state snapshot beyond the log end");
            fs::remove_file(snapshot_path(&self.dir, offset))?;
        }
        snapshots.retain(|&o| o <= end);
        let mut loaded = None;
        while let Some(offset) = snapshots.pop().filter(|_| !from_scratch) {
            let path = snapshot_path(&self.dir, offset);
            match ProducerStateManager::read_snapshot(&path)? {
                Some(state) => {
                    loaded = Some((state, offset));
                    break;
                }
                None => fs::remove_file(&path)?,
            }
        }
        let (mut state, from) = loaded.unwrap_or((ProducerStateManager::new(), first_base));
        for seg in &mut self.segments {
            seg.retain_aborted_below(from, from_scratch)?;
        }
        let mut scanned = 0usize;
        let mut aborted = Vec::new();
        let mut completed = Vec::new();
        for seg in &self.segments {
            if seg.next_offset <= from {
                continue;
            }
            seg.for_each_batch_meta(from, |h, marker| {
                scanned += 1;
                let Some(marker) = marker.filter(|_| h.is_control()) else {
                    state.record_header(h);
                    return;
                };
                let done = state.record_marker(h, marker);
                if done.aborted {
                    aborted.push(AbortedTxn {
                        producer_id: done.producer_id,
                        first_offset: done.first_offset,
                        last_offset: done.last_offset,
                        last_stable_offset: state
                            .first_unstable_offset()
                            .unwrap_or(done.last_offset + 1),
                    });
                }
                completed.push(done);
            })?;
        }
        // One write per segment that gained entries, not one fsync per abort.
        let mut touched = Vec::new();
        for entry in aborted {
            let seg = self.segment_holding(entry.last_offset)?;
            seg.aborted.push(entry);
            if touched.last() != Some(&seg.base_offset) {
                touched.push(seg.base_offset);
            }
        }
        for seg in self
            .segments
            .iter()
            .filter(|s| touched.contains(&s.base_offset))
        {
            seg.persist_aborted()?;
        }
        self.completed_txns = completed;
        state.remove_expired(now_ms, self.config.producer_id_expiration_ms);
        debug!(dir = %self.dir.display(), snapshot_offset = from, batches_scanned = scanned,
            producers = state.len(), "producer state loaded");
        self.producers = state;
        Ok(())
    }
}
