//! The producer state snapshot file `<offset>.snapshot`: its format (magic, version, CRC32C of the
//! body), atomic writes, damaged files ignored, and the listing and removal of snapshots.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::{BatchMetadata, ProducerEntry, ProducerStateManager, MAX_CACHED_BATCHES};
use crate::log::recovery::{self, FileSync};

const SNAPSHOT_EXT: &str = "snapshot";
pub(super) const SNAPSHOT_MAGIC: &[u8; 4] = b"VLPS";
/// Version 1: no transaction fields (every producer has batches); version 2 adds the coordinator epoch
/// and open transaction's first offset per producer, and allows producers known only by a marker.
pub(super) const SNAPSHOT_VERSION_V1: i16 = 1;
const SNAPSHOT_VERSION: i16 = 2;

impl ProducerStateManager {
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
        self.write_snapshot_with(dir, offset, FileSync::Each)
    }

    /// [`ProducerStateManager::write_snapshot`], fsyncing nothing with `FileSync::Later`.
    pub fn write_snapshot_with(&self, dir: &Path, offset: i64, sync: FileSync) -> io::Result<()> {
        let path = snapshot_path(dir, offset);
        let tmp = path.with_extension("snapshot.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&self.encode())?;
        if sync == FileSync::Each {
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        if sync == FileSync::Each {
            recovery::sync_dir(dir)?;
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
