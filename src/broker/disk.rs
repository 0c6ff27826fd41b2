//! The data directory's free-space floor: below it, client produce is refused with
//! KAFKA_STORAGE_ERROR before the filesystem is full, so the metadata log, committed offsets,
//! index files and recovery keep room, and the broker goes on by itself once space is back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tracing::{info, warn};

use crate::log::volume;

/// How long a reading of the free space is trusted; appends in between are subtracted from it.
const RECHECK_MS: i64 = 100;
/// The default floor: this share of the volume…
const DEFAULT_FLOOR_PERCENT: u64 = 1;
/// …but never more than this: enough for the metadata log and committed offsets, small enough not to
/// refuse produce on a nearly full development disk that Kafka would still write to.
const DEFAULT_FLOOR_MAX: u64 = 64 << 20;

/// Why a produce is refused.
#[derive(Debug, thiserror::Error)]
#[error("the data directory {dir} has {free} bytes free, below its floor of {floor} bytes (log.min_free_bytes)")]
pub struct BelowFloor {
    pub dir: String,
    pub free: u64,
    pub floor: u64,
}

pub struct DiskSpace {
    dir: PathBuf,
    floor: u64,
    /// Free bytes at the last reading, less what was appended since.
    free: AtomicU64,
    checked_at_ms: AtomicI64,
    below: AtomicBool,
}

impl DiskSpace {
    /// `floor`: bytes to keep free; negative for the default (1% of the volume, at most 64 MiB).
    pub fn new(dir: PathBuf, floor: i64) -> DiskSpace {
        let floor = u64::try_from(floor).unwrap_or_else(|_| {
            volume::space(&dir).map_or(0, |(total, _)| {
                (total / 100 * DEFAULT_FLOOR_PERCENT).min(DEFAULT_FLOOR_MAX)
            })
        });
        info!(dir = %dir.display(), floor_bytes = floor, "free-space floor for produce");
        DiskSpace {
            dir,
            floor,
            free: AtomicU64::new(u64::MAX),
            checked_at_ms: AtomicI64::new(i64::MIN),
            below: AtomicBool::new(false),
        }
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Whether `bytes` more may be appended for a client: the free space (read at most every
    /// [`RECHECK_MS`]) minus them stays at or above the floor. Logs once when the floor is crossed
    /// either way.
    pub fn admit(&self, bytes: u64, now_ms: i64) -> Result<(), BelowFloor> {
        if self.floor == 0 {
            return Ok(());
        }
        let stale = now_ms.saturating_sub(self.checked_at_ms.load(Ordering::Relaxed)) >= RECHECK_MS;
        let mut free = self.free.load(Ordering::Relaxed);
        // A refusal is always judged on a fresh reading, so space that came back counts at once.
        if stale || free.saturating_sub(bytes) < self.floor {
            self.checked_at_ms.store(now_ms, Ordering::Relaxed);
            // statvfs failing is no reason to refuse: the append itself reports a real problem.
            free = volume::space(&self.dir).map_or(u64::MAX, |(_, usable)| usable);
            self.free.store(free, Ordering::Relaxed);
        }
        // The log follows the directory's state; a single refusal may also come from its own size.
        let below = free < self.floor;
        if self.below.swap(below, Ordering::Relaxed) != below {
            if below {
                warn!(dir = %self.dir.display(), free_bytes = free, floor_bytes = self.floor,
                    "data directory below its free-space floor: refusing produce (KAFKA_STORAGE_ERROR)");
            } else {
                info!(dir = %self.dir.display(), free_bytes = free, floor_bytes = self.floor,
                    "data directory above its free-space floor again: accepting produce");
            }
        }
        if free.saturating_sub(bytes) < self.floor {
            return Err(BelowFloor {
                dir: self.dir.display().to_string(),
                free,
                floor: self.floor,
            });
        }
        let _ = self
            .free
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some(f.saturating_sub(bytes))
            });
        Ok(())
    }
}
