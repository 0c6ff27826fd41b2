//! The `MetadataStore` supervisor: watches the current Raft instance and, once its core has
//! stopped on an error (a failed log, vote or snapshot write), probes the metadata directory and
//! restarts Raft from disk with backoff, logging one line per failure. Between failures it
//! re-creates the space reserve when the volume has room again.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::error::ClusterError;
use super::instance::fatal_error;
use super::store::Inner;

/// How often a released reserve is re-created if space allows.
const RESERVE_CHECK_EVERY: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Between storage probes (silent after the first failure, and cheap).
const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Between restarts that fail, or of cores that stop again soon: each logs openraft's errors.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A restarted core that runs this long resets the restart backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            next: BACKOFF_MIN,
            max,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// Runs until the store is shut down (which also aborts it) or dropped.
pub(super) async fn supervise(store: Weak<Inner>) {
    let mut restarts = Backoff::new(RESTART_BACKOFF_MAX);
    let mut since = Instant::now();
    loop {
        let Some(inner) = store.upgrade() else { return };
        let mut metrics = inner.current().metrics();
        let reserve = inner.shared.reserve.clone();
        drop(inner);
        let stopped = tokio::select! {
            _ = metrics.wait_for(|m| m.running_state.is_err()) => true,
            () = tokio::time::sleep(RESERVE_CHECK_EVERY) => false,
        };
        if !stopped {
            reserve.replenish();
            continue;
        }
        let Some(inner) = store.upgrade() else { return };
        if inner.shut_down.load(Ordering::SeqCst) {
            return;
        }
        let cause = match &metrics.borrow().running_state {
            Err(fatal) => fatal_error(fatal),
            Ok(()) => ClusterError::Raft("the raft core task ended".into()),
        };
        tracing::error!(error = %cause,
            "metadata raft core stopped; metadata writes fail until it is restarted from disk");
        inner.set_down(&cause);
        if since.elapsed() >= STABLE_AFTER {
            restarts = Backoff::new(RESTART_BACKOFF_MAX);
        } else {
            // The last restarted core stopped soon: wait before the next restart too.
            tokio::time::sleep(restarts.next()).await;
        }
        let down_at = Instant::now();
        if !recover(&inner, &mut restarts).await {
            return;
        }
        since = Instant::now();
        tracing::info!(
            down_ms = down_at.elapsed().as_millis() as u64,
            "metadata raft restarted from disk"
        );
    }
}

/// Probes the storage and restarts Raft until it works; false if the store was shut down.
async fn recover(inner: &Inner, restarts: &mut Backoff) -> bool {
    let mut probes = Backoff::new(PROBE_BACKOFF_MAX);
    let mut probe_failed = false;
    loop {
        if inner.shut_down.load(Ordering::SeqCst) {
            return false;
        }
        inner.shared.reserve.replenish();
        // A core restarted on storage that still refuses writes would stop again at once.
        if let Err(e) = inner.shared.reserve.probe() {
            let delay = probes.next();
            if !probe_failed {
                probe_failed = true;
                tracing::warn!(error = %e, dir = %inner.shared.dir.display(),
                    "metadata storage still refuses writes; retrying with backoff");
            } else {
                tracing::debug!(error = %e, retry_in = ?delay, "metadata storage probe failed");
            }
            tokio::time::sleep(delay).await;
            continue;
        }
        match inner.restart().await {
            Ok(restarted) => return restarted,
            Err(e) => {
                let delay = restarts.next();
                tracing::warn!(error = %e, retry_in = ?delay, "restarting the metadata raft failed");
                inner.set_down(&e);
                tokio::time::sleep(delay).await;
            }
        }
    }
}
