//! The metadata directory's space reserve: a preallocated ballast file in `<data_dir>/raft/`,
//! released when a Raft storage write runs out of space so that write is retried once (and
//! metadata keeps working while user data fills the disk), re-created when space returns.
//!
//! Every durable Raft write (log append/truncate/purge, vote, committed, snapshot) goes through
//! [`Reserve::write`]. A retried write must be safe to repeat: each caller guarantees that a
//! failed attempt leaves nothing behind that a second attempt would build on (the log append
//! truncates back, the atomic files are replaced whole by rename).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::durable::{atomic_write, fsync_dir};
use crate::log::volume;

pub(crate) const RESERVE_FILE: &str = "reserve";
const PROBE_FILE: &str = "probe";
/// What a probe writes: one page, as much as the smallest Raft write (a vote) needs.
const PROBE_BYTES: usize = 4096;

/// The reserve of one metadata directory; shared by the log store and the state machine, and
/// by every Raft instance the `MetadataStore` opens on that directory.
pub(crate) struct Reserve {
    dir: PathBuf,
    /// 0 disables the reserve.
    size: u64,
    state: Mutex<State>,
    /// How many times the ballast was released: a write that failed while another released it
    /// is worth retrying too.
    releases: AtomicU64,
    /// Test-only fault hook: this many next write attempts fail with ENOSPC.
    #[cfg(test)]
    injected: std::sync::atomic::AtomicU32,
}

struct State {
    held: bool,
    /// A failed (re-)creation is logged once until one succeeds.
    warned: bool,
}

/// ENOSPC, or a quota that is used up: the failures freeing the reserve can help with.
pub(crate) fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl Reserve {
    /// Uses the ballast in `dir` if it is there, else tries to create it. Never fails: a reserve
    /// that cannot be created (say, on a disk that is already full) is logged and re-tried by
    /// [`Reserve::replenish`].
    pub(crate) fn open(dir: &Path, size: u64) -> Reserve {
        let reserve = Reserve {
            dir: dir.to_path_buf(),
            size,
            state: Mutex::new(State {
                held: false,
                warned: false,
            }),
            releases: AtomicU64::new(0),
            #[cfg(test)]
            injected: std::sync::atomic::AtomicU32::new(0),
        };
        if size == 0 {
            let _ = fs::remove_file(reserve.path());
            return reserve;
        }
        let present = fs::metadata(reserve.path()).is_ok_and(|m| m.len() == size);
        if present {
            reserve.lock().held = true;
        } else {
            reserve.create();
        }
        reserve
    }

    fn path(&self) -> PathBuf {
        self.dir.join(RESERVE_FILE)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op`, a durable write; if it runs out of space and the reserve is (or was meanwhile)
    /// released, runs it once more.
    pub(crate) fn write<T>(
        &self,
        what: &'static str,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        let releases = self.releases.load(Ordering::SeqCst);
        match self.attempt(&mut op) {
            Err(e) if is_out_of_space(&e) => {
                let released = self.release(what);
                if !released && self.releases.load(Ordering::SeqCst) == releases {
                    return Err(e);
                }
                self.attempt(&mut op)
            }
            other => other,
        }
    }

    fn attempt<T>(&self, op: &mut impl FnMut() -> io::Result<T>) -> io::Result<T> {
        #[cfg(test)]
        {
            let take = |n: u32| n.checked_sub(1);
            if self
                .injected
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
                .is_ok()
            {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        op()
    }

    /// Deletes the ballast; true if there was one to delete.
    fn release(&self, what: &'static str) -> bool {
        let mut state = self.lock();
        if !state.held {
            return false;
        }
        state.held = false;
        if let Err(e) = fs::remove_file(self.path()) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::error!(path = %self.path().display(), error = %e,
                    "cannot release the metadata reserve");
                return false;
            }
        }
        self.releases.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(
            write = what,
            bytes = self.size,
            dir = %self.dir.display(),
            "metadata storage is out of space: released the reserve to complete the raft write"
        );
        true
    }

    /// Re-creates a released reserve once the volume has room for it and as much again. Cheap
    /// when there is nothing to do (one statvfs).
    pub(crate) fn replenish(&self) {
        if self.size == 0 || self.lock().held {
            return;
        }
        let usable = volume::space(&self.dir).map(|(_, usable)| usable);
        if usable.is_some_and(|free| free >= self.size.saturating_mul(2)) {
            self.create();
        }
    }

    /// Allocates the ballast (tmp file, fallocate, fsync, rename), logging the outcome once.
    fn create(&self) {
        let mut state = self.lock();
        if state.held {
            return;
        }
        match allocate(&self.dir, &self.path(), self.size) {
            Ok(()) => {
                let recreated = state.warned || self.releases.load(Ordering::SeqCst) > 0;
                state.held = true;
                state.warned = false;
                if recreated {
                    tracing::info!(bytes = self.size, dir = %self.dir.display(),
                        "metadata reserve re-created");
                }
            }
            Err(e) if !state.warned => {
                state.warned = true;
                tracing::warn!(bytes = self.size, dir = %self.dir.display(), error = %e,
                    "cannot allocate the metadata reserve; retrying when space returns");
            }
            Err(e) => tracing::debug!(error = %e, "metadata reserve still cannot be allocated"),
        }
    }

    /// Writes, syncs and removes a small file: can the directory take a Raft write again?
    pub(crate) fn probe(&self) -> io::Result<()> {
        let path = self.dir.join(PROBE_FILE);
        let res = self.attempt(&mut || atomic_write(&path, &[0u8; PROBE_BYTES]));
        let _ = fs::remove_file(&path);
        res
    }

    /// Whether the ballast is in place.
    #[cfg(test)]
    pub(crate) fn is_held(&self) -> bool {
        self.lock().held
    }

    /// Test-only fault hook: the next `n` write attempts fail with ENOSPC without writing.
    #[cfg(test)]
    pub(crate) fn fail_next_writes(&self, n: u32) {
        self.injected.store(n, Ordering::SeqCst);
    }
}

fn allocate(dir: &Path, path: &Path, size: u64) -> io::Result<()> {
    let tmp = dir.join(format!("{RESERVE_FILE}.tmp"));
    let res = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        fallocate(&file, size)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Really allocates `size` bytes to `file` (a sparse file would free nothing when deleted).
fn fallocate(file: &File, size: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "reserve size too large"))?;
    // SAFETY: a valid, open file descriptor; posix_fallocate only touches that file.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}
