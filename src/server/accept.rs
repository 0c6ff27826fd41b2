//! The accept side of the listeners: `max.connections` slots (shared by every listener), and accept
//! errors backed off.
//!
//! Both conditions leave clients waiting in the kernel's accept backlog, where nothing on the client
//! side says why, so each is logged once when it starts and once when it ends (with how long it
//! lasted), never once per client or per failed `accept`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tracing::{debug, info, warn};

/// One slot per open connection, `max.connections` in all across the listeners (each listener has
/// its own `Slots` over the one semaphore). A slot is taken before `accept`, so clients beyond the
/// limit wait in the accept backlog (as with Kafka) and hold no descriptor.
pub(super) struct Slots {
    free: Arc<Semaphore>,
    max: usize,
    /// Set from the moment every slot is taken until a slot is free and nobody is waiting for it.
    full: Option<Full>,
}

struct Full {
    since: Instant,
    /// Clients found waiting in the backlog when a slot came free.
    waited: u64,
}

impl Slots {
    /// Slots taken from `free`, which holds `max` permits and is shared with the other listeners.
    pub(super) fn shared(free: Arc<Semaphore>, max: usize) -> Slots {
        Slots {
            free,
            max,
            full: None,
        }
    }

    /// A slot for the next connection; waits while all are taken. `None` only if the semaphore
    /// was closed (it never is).
    pub(super) async fn acquire(&mut self) -> Option<OwnedSemaphorePermit> {
        match self.free.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(TryAcquireError::Closed) => None,
            Err(TryAcquireError::NoPermits) => {
                if self.full.is_none() {
                    warn!(
                        max_connections = self.max,
                        "connection limit reached: new clients wait in the accept backlog until a \
                         connection closes"
                    );
                    self.full = Some(Full {
                        since: Instant::now(),
                        waited: 0,
                    });
                }
                self.free.clone().acquire_owned().await.ok()
            }
        }
    }

    /// Accepts the next connection (with a slot already taken). After the limit was reached, a
    /// client already waiting is counted; if none is, the limit no longer holds anyone back and
    /// that is logged.
    pub(super) async fn accept(
        &mut self,
        listener: &TcpListener,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        if let Some(full) = &mut self.full {
            // One poll: ready now means the client was already in the backlog.
            let waiting = std::future::poll_fn(|cx| {
                Poll::Ready(match listener.poll_accept(cx) {
                    Poll::Ready(r) => Some(r),
                    Poll::Pending => None,
                })
            })
            .await;
            if let Some(accepted) = waiting {
                full.waited += 1;
                return accepted;
            }
            info!(
                max_connections = self.max,
                at_limit_ms = full.since.elapsed().as_millis() as u64,
                clients_waited = full.waited,
                "connection limit no longer reached: accepting connections at once again"
            );
            self.full = None;
        }
        listener.accept().await
    }
}

/// Exponential back-off after a failed `accept` (1 ms doubling to 1 s, reset by a success), as
/// tokio's mini-redis does: a descriptor limit (EMFILE) leaves the connection in the backlog and
/// the listener readable, so retrying at once would spin.
pub(super) struct Backoff {
    delay: Duration,
    failing: Option<Failing>,
}

struct Failing {
    since: Instant,
    failures: u64,
}

const FIRST_DELAY: Duration = Duration::from_millis(1);
const MAX_DELAY: Duration = Duration::from_secs(1);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            delay: FIRST_DELAY,
            failing: None,
        }
    }
}

impl Backoff {
    /// Handles a failed `accept`: logs the first failure of a burst, then sleeps before the retry.
    pub(super) async fn failed(&mut self, e: &io::Error) {
        // One client's aborted handshake: nothing to wait for, and it cannot repeat without more
        // clients (each takes a backlog entry), so it cannot spin.
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        ) {
            debug!(error = %e, "accept: client connection gone before it was accepted");
            return;
        }
        match &mut self.failing {
            Some(f) => f.failures += 1,
            None => {
                warn!(
                    error = %e,
                    cause = cause(e),
                    max_retry_delay_ms = MAX_DELAY.as_millis() as u64,
                    "accept failed: new clients wait in the accept backlog; retrying with back-off \
                     (logged again when accept succeeds)"
                );
                self.failing = Some(Failing {
                    since: Instant::now(),
                    failures: 1,
                });
            }
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(MAX_DELAY);
    }

    /// A successful `accept` ends a burst of failures.
    pub(super) fn succeeded(&mut self) {
        self.delay = FIRST_DELAY;
        if let Some(f) = self.failing.take() {
            info!(
                failures = f.failures,
                failing_ms = f.since.elapsed().as_millis() as u64,
                "accept succeeds again"
            );
        }
    }
}

/// What an operator can do about an accept error.
fn cause(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE) => "the process's open-file limit (ulimit -n) is reached",
        Some(libc::ENFILE) => "the system-wide open-file limit (fs.file-max) is reached",
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) => "out of kernel memory for sockets",
        _ => "unexpected accept error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let start = tokio::time::Instant::now();
        for _ in 0..12 {
            b.failed(&emfile).await;
        }
        // 1+2+4+...+512 ms, then 1 s twice.
        assert_eq!(start.elapsed(), Duration::from_millis(1023 + 2000));
        assert_eq!(b.failing.as_ref().map(|f| f.failures), Some(12));
        b.succeeded();
        assert!(b.failing.is_none());
        assert_eq!(b.delay, FIRST_DELAY);
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        let start = tokio::time::Instant::now();
        b.failed(&aborted).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(b.failing.is_none());
    }
}
