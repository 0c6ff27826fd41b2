//! Durable Raft log storage: an append-only file of crc32c-checked JSON records plus small
//! atomically-replaced files for the vote, the committed log id and the purge point.
//!
//! Layout under `<data_dir>/raft/`: `log` (records), `vote`, `committed`, `purged`.
//! The whole (short, because it is snapshotted and purged) log is also kept in memory, so reads
//! never touch the disk. I/O is synchronous under a mutex: the metadata log is tiny and low-rate,
//! and serialising all writes is exactly what openraft requires of a log store anyway.
//!
//! Every write goes through the directory's [`Reserve`] and either succeeds durably or fails
//! leaving the files as they were (so the reserve can retry it, and a restart reads a clean log).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError};

use super::durable::{self, atomic_write, decode_record, encode_record, read_atomic};
use super::reserve::Reserve;
use super::types::{LogEntry, LogId, StorageError, TypeConfig, Vote};

const LOG_FILE: &str = "log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";
const PURGED_FILE: &str = "purged";

/// The Raft log store; cloning shares the same underlying state (used as the log reader too).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    reserve: Arc<Reserve>,
}

struct LogInner {
    dir: PathBuf,
    /// Opened with O_APPEND, so writes always land at the current end, also after `set_len`.
    file: File,
    file_len: u64,
    /// index -> (entry, byte offset of its record in `log`).
    entries: BTreeMap<u64, (LogEntry, u64)>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// A failed log write, saying which (openraft's own text names only the "Logs" subject).
fn io_err(what: &str, e: &io::Error) -> StorageError {
    StorageIOError::write_logs(AnyError::error(format!("{what}: {e}"))).into()
}

/// Serialize `entries` as records; returns the bytes and each record's offset within them.
fn encode_entries<'a>(
    entries: impl Iterator<Item = &'a LogEntry>,
) -> io::Result<(Vec<u8>, Vec<u64>)> {
    let mut buf = Vec::new();
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(buf.len() as u64);
        let json = serde_json::to_vec(e).map_err(io::Error::other)?;
        encode_record(&mut buf, &json);
    }
    Ok((buf, offsets))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match read_atomic(path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| invalid(format!("{}: {e}", path.display()))),
    }
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(v).map_err(io::Error::other)?;
    atomic_write(path, &bytes)
}

impl LogStore {
    /// Open (or create) the log under `dir`, truncating a torn tail at the last valid record.
    /// Writes go through `reserve`.
    pub(crate) fn open(dir: &Path, reserve: Arc<Reserve>) -> io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let vote: Option<Vote> = read_json(&dir.join(VOTE_FILE))?;
        let committed: Option<LogId> = read_json(&dir.join(COMMITTED_FILE))?;
        let last_purged: Option<LogId> = read_json(&dir.join(PURGED_FILE))?;

        let log_path = dir.join(LOG_FILE);
        let data = match fs::read(&log_path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut entries = BTreeMap::new();
        let mut pos = 0usize;
        let mut prev: Option<u64> = None;
        while let Some((payload, next)) = decode_record(&data, pos) {
            // A checksum-valid record that does not parse is not a torn write: refuse to start
            // rather than silently dropping (possibly committed) entries.
            let entry: LogEntry = serde_json::from_slice(payload)
                .map_err(|e| invalid(format!("raft log record at byte {pos}: {e}")))?;
            let index = entry.log_id.index;
            if let Some(p) = prev {
                if index != p + 1 {
                    return Err(invalid(format!(
                        "raft log not consecutive at byte {pos}: index {index} after {p}"
                    )));
                }
            }
            prev = Some(index);
            // Entries at or below the purge point may remain if we crashed mid-purge.
            if last_purged.is_none_or(|lp| index > lp.index) {
                entries.insert(index, (entry, pos as u64));
            }
            pos = next;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        if pos < data.len() {
            tracing::warn!(
                path = %log_path.display(),
                valid_bytes = pos,
                dropped_bytes = data.len() - pos,
                "raft log has a torn/corrupt tail; truncating at the last valid record"
            );
            file.set_len(pos as u64)?;
            file.sync_all()?;
        } else if data.is_empty() {
            // Make the (possibly just created) file's directory entry durable.
            durable::fsync_dir(dir)?;
        }
        tracing::info!(
            entries = entries.len(),
            ?last_purged,
            ?committed,
            "opened raft log"
        );
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_path_buf(),
                file,
                file_len: pos as u64,
                entries,
                last_purged,
                vote,
                committed,
            })),
            reserve,
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // A panic while holding the lock cannot leave a half-applied in-memory update that
        // differs from disk in a dangerous way (memory is updated after I/O), so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogInner {
    fn append(&mut self, reserve: &Reserve, entries: Vec<LogEntry>) -> io::Result<()> {
        let (buf, offsets) = encode_entries(entries.iter())?;
        let base = self.file_len;
        reserve.write("raft log append", || self.write_at_end(&buf))?;
        for (e, off) in entries.into_iter().zip(offsets) {
            self.entries.insert(e.log_id.index, (e, base + off));
        }
        Ok(())
    }

    /// Appends `buf` durably, or fails with the file back at `file_len`: a half-written record is
    /// never left for a later append (or a retry) to follow.
    fn write_at_end(&mut self, buf: &[u8]) -> io::Result<()> {
        let res = self.file.write_all(buf).and_then(|_| self.file.sync_data());
        if let Err(e) = res {
            if let Err(te) = self.file.set_len(self.file_len) {
                // Not retryable (no OS error code): the core stops, and a restart's open()
                // truncates the torn tail.
                return Err(io::Error::other(format!(
                    "{e}; the partial record could not be truncated: {te}"
                )));
            }
            return Err(e);
        }
        self.file_len += buf.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, reserve: &Reserve, index: u64) -> io::Result<()> {
        let Some((_, (_, off))) = self.entries.range(index..).next() else {
            return Ok(());
        };
        let off = *off;
        reserve.write("raft log truncate", || {
            self.file.set_len(off)?;
            self.file.sync_data()
        })?;
        self.file_len = off;
        self.entries.split_off(&index);
        Ok(())
    }

    fn purge(&mut self, reserve: &Reserve, log_id: LogId) -> io::Result<()> {
        if self.last_purged.is_some_and(|lp| lp.index >= log_id.index) {
            return Ok(());
        }
        // Recording the purge point is the purge: open() skips the entries at or below it that
        // are still in the file, so the rewrite below only reclaims space.
        let purged = self.dir.join(PURGED_FILE);
        reserve.write("raft purge point", || write_json(&purged, &log_id))?;
        self.last_purged = Some(log_id);
        let keep = self.entries.split_off(&(log_id.index + 1));
        self.entries = keep;
        self.compact()
    }

    /// Rewrites the remaining entries into a fresh file and atomically swaps it in. A failure
    /// before the rename keeps the old file, which is still consistent (it is compacted at the
    /// next purge); from the rename on, the new file is the log whatever happens.
    fn compact(&mut self) -> io::Result<()> {
        let (buf, offsets) = encode_entries(self.entries.values().map(|(e, _)| e))?;
        let path = self.dir.join(LOG_FILE);
        let tmp = self.dir.join("log.tmp");
        let _ = fs::remove_file(&tmp);
        // Opened for appending before the rename: the handle follows the file to its new name.
        let written = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(&buf)?;
                f.sync_all()?;
                Ok(f)
            })
            .and_then(|f| fs::rename(&tmp, &path).map(|()| f));
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                tracing::warn!(error = %e, "cannot compact the raft log after a purge; keeping the old file");
                return Ok(());
            }
        };
        self.file = file;
        self.file_len = buf.len() as u64;
        for ((_, off), new_off) in self.entries.values_mut().zip(offsets) {
            *off = new_off;
        }
        durable::fsync_dir(&self.dir)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let inner = self.lock();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let path = inner.dir.join(VOTE_FILE);
        self.reserve
            .write("raft vote", || write_json(&path, vote))
            .map_err(|e| {
                let e = AnyError::error(format!("raft vote: {e}"));
                StorageError::from(StorageIOError::write_vote(e))
            })?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let path = inner.dir.join(COMMITTED_FILE);
        self.reserve
            .write("raft committed", || write_json(&path, &committed))
            .map_err(|e| io_err("raft committed", &e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let res = self
            .lock()
            .append(&self.reserve, entries.into_iter().collect());
        match res {
            // Durable (fsync'ed) before we acknowledge.
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "raft log append failed");
                let se = io_err("raft log append", &e);
                callback.log_io_completed(Err(e));
                Err(se)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating raft log");
        let res = self.lock().truncate(&self.reserve, log_id.index);
        res.map_err(|e| io_err("raft log truncate", &e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging raft log");
        let res = self.lock().purge(&self.reserve, log_id);
        res.map_err(|e| io_err("raft log purge", &e))
    }
}
