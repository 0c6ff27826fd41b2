//! The Kafka protocol server: accept loop, connection limit, graceful shutdown.

mod accept;
mod connection;
pub mod dispatch;
pub mod frame;
pub mod limits;
pub mod prewalk;
pub mod sasl;
mod shutdown;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tracing::{error, info, warn};

use crate::broker::Broker;
pub use shutdown::Shutdown;

/// Accepts connections until `shutdown` completes, then waits for every connection to finish its
/// in-flight request. One task per connection; at most `max_connections` at once (further clients
/// wait in the kernel's accept backlog, as with Kafka's `max.connections`), and at most
/// `max_connections_per_ip` from one address (see `limits`). A failing `accept` (out of
/// descriptors) is retried with back-off (see `accept`).
/// Fails only when the listener's SASL or TLS setup, checked at start-up, cannot be built now.
pub async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future,
) -> Result<(), String> {
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut slots = accept::Slots::new(broker.config.max_connections);
    let mut backoff = accept::Backoff::default();
    let per_ip = limits::PerIp::default();
    let queued = broker.config.limits.queued_max_request_bytes;
    let request_pool = Arc::new(Semaphore::new(queued as usize));
    let max_per_ip = broker.config.limits.max_connections_per_ip;
    // Validated at start-up; a listener without mechanisms needs no authentication.
    // Both were checked when the broker started; should they fail now (a certificate file gone),
    // serve nobody rather than fall back to an unauthenticated or unencrypted listener.
    let security = sasl::Authenticator::from_settings(&broker.config.sasl)
        .and_then(|auth| Ok((auth.map(Arc::new), tls::acceptor(&broker.config.tls)?)));
    let (auth, tls) = match security {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot set up the listener's security; not accepting connections");
            return Err(e);
        }
    };
    let handshake_timeout = broker.config.limits.frame_read_timeout();

    let accept = async {
        loop {
            let Some(permit) = slots.acquire().await else {
                return;
            };
            let (stream, peer) = loop {
                match slots.accept(&listener).await {
                    Ok(accepted) => {
                        backoff.succeeded();
                        break accepted;
                    }
                    Err(e) => backoff.failed(&e).await,
                }
            };
            // `max.connections.per.ip`: Kafka closes the new connection at once.
            let Some(ip_slot) = per_ip.try_acquire(peer.ip(), max_per_ip) else {
                warn!(%peer, max_per_ip, "closing connection: too many connections from this address");
                drop(stream);
                continue;
            };
            let broker = broker.clone();
            let shutdown = Shutdown::new(notify_shutdown.subscribe());
            let done = done_tx.clone();
            let pool = (request_pool.clone(), queued);
            let session = Arc::new(sasl::Session::new(auth.clone()));
            let tls = tls.clone();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                match tls {
                    None => {
                        let halves = stream.into_split();
                        connection::serve(halves, peer, broker, session, shutdown, pool).await;
                    }
                    // The handshake is bounded like a request frame (slowloris).
                    Some(tls) => match tokio::time::timeout(handshake_timeout, tls.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            let halves = tokio::io::split(stream);
                            connection::serve(halves, peer, broker, session, shutdown, pool).await;
                        }
                        Ok(Err(e)) => {
                            info!(%peer, error = %e, "closing connection: TLS handshake failed")
                        }
                        Err(_) => info!(%peer, "closing connection: TLS handshake timed out"),
                    },
                }
                drop(ip_slot);
                drop(permit);
                drop(done);
            });
        }
    };

    tokio::select! {
        _ = accept => error!("accept loop ended"),
        _ = shutdown => info!("shutting down: no longer accepting connections"),
    }
    drop(notify_shutdown);
    drop(done_tx);
    // Every connection task holds a sender; recv returns None once all have finished.
    let _ = done_rx.recv().await;
    Ok(())
}
