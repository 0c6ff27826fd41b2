//! Open segment files and index maps, bounded: one least-recently-used cache for every log of the
//! process, so the descriptors and maps in use stay under a budget however many partitions are hosted.
//!
//! A segment holds no descriptor of its own. It asks the cache for its [`SegmentFiles`] when it reads
//! or writes, and the cache opens them on a miss and closes the least recently used ones beyond the
//! budget. The budget is process-wide because the limits it protects are (`RLIMIT_NOFILE`,
//! `vm.max_map_count`); [`set_budget`] sets it at start-up. A handle an operation still holds stays open
//! until it is dropped, so the budget can be exceeded by the operations in flight, never by idle
//! partitions.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use memmap2::Mmap;

/// Cached segments when nothing sets the budget (tests, tools): small, so eviction is exercised.
const DEFAULT_BUDGET: usize = 1024;

/// The open files of one segment: the log, and for a sealed segment its two indexes mapped read-only.
pub(crate) struct SegmentFiles {
    pub(crate) log: File,
    pub(crate) offset_index: Option<Mmap>,
    pub(crate) time_index: Option<Mmap>,
}

impl SegmentFiles {
    pub(crate) fn offset_index(&self) -> &[u8] {
        self.offset_index.as_deref().unwrap_or(&[])
    }
    pub(crate) fn time_index(&self) -> &[u8] {
        self.time_index.as_deref().unwrap_or(&[])
    }
}

struct Cache {
    /// Segment id -> (last use, files).
    open: HashMap<u64, (u64, Arc<SegmentFiles>)>,
    /// Last use -> segment id, oldest first.
    by_use: BTreeMap<u64, u64>,
    clock: u64,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
static BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_BUDGET);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static OPENS: AtomicU64 = AtomicU64::new(0);

fn cache() -> MutexGuard<'static, Option<Cache>> {
    // Every update below leaves the two maps consistent before anything can panic.
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many segments may have their files open at once (each: one descriptor, up to two maps).
pub fn set_budget(segments: usize) {
    BUDGET.store(segments.max(1), Ordering::Relaxed);
}

/// The budget in segments.
pub fn budget() -> usize {
    BUDGET.load(Ordering::Relaxed)
}

/// (segments with open files now, segment opens since start).
pub fn stats() -> (usize, u64) {
    let open = cache().as_ref().map_or(0, |c| c.open.len());
    (open, OPENS.load(Ordering::Relaxed))
}

/// A new segment identity: the cache key of one `Segment` value, never reused.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The files of segment `id`, opened with `open` when they are not cached.
pub(crate) fn get(
    id: u64,
    open: impl FnOnce() -> io::Result<SegmentFiles>,
) -> io::Result<Arc<SegmentFiles>> {
    {
        let mut guard = cache();
        if let Some(c) = guard.as_mut() {
            c.clock += 1;
            let now = c.clock;
            if let Some((used, files)) = c.open.get_mut(&id) {
                c.by_use.remove(used);
                *used = now;
                c.by_use.insert(now, id);
                return Ok(files.clone());
            }
        }
    }
    // Open without the lock: other partitions' reads go on meanwhile. Only the partition owning the
    // segment (under its own lock) opens it, so two opens of one id do not race.
    let files = Arc::new(open()?);
    OPENS.fetch_add(1, Ordering::Relaxed);
    let evicted = {
        let mut guard = cache();
        let c = guard.get_or_insert_with(|| Cache {
            open: HashMap::new(),
            by_use: BTreeMap::new(),
            clock: 0,
        });
        c.clock += 1;
        let now = c.clock;
        if let Some((old, _)) = c.open.insert(id, (now, files.clone())) {
            c.by_use.remove(&old);
        }
        c.by_use.insert(now, id);
        let mut evicted = Vec::new();
        while c.open.len() > budget() {
            let Some((_, oldest)) = c.by_use.pop_first() else {
                break;
            };
            if let Some((_, f)) = c.open.remove(&oldest) {
                evicted.push(f);
            }
        }
        evicted
    };
    // Closing descriptors and unmapping happen outside the lock.
    drop(evicted);
    Ok(files)
}

/// Forgets segment `id`'s files (its segment is gone or its files changed); they close once no
/// operation holds them.
pub(crate) fn evict(id: u64) {
    let removed = {
        let mut guard = cache();
        let Some(c) = guard.as_mut() else { return };
        let removed = c.open.remove(&id);
        if let Some((used, _)) = &removed {
            c.by_use.remove(used);
        }
        removed
    };
    drop(removed);
}

/// A budget that leaves half the process's descriptors (`RLIMIT_NOFILE`, soft) to connections, the
/// Raft log and everything else, and uses at most half the memory maps (`vm.max_map_count`, two per
/// cached sealed segment): (budget, descriptor limit, map limit).
pub fn budget_from_process_limits() -> (usize, u64, u64) {
    // SAFETY: getrlimit fills the zeroed struct it is given; it is read only if the call succeeded.
    let nofile = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur
        } else {
            1024
        }
    };
    let maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(65530);
    let budget = (nofile / 2).min(maps / 4).clamp(16, 1 << 20);
    (budget as usize, nofile, maps)
}
