//! The Kafka protocol server: accept loop, connection limit, graceful shutdown.

mod accept;
mod connection;
pub mod dispatch;
pub mod frame;
pub mod limits;
pub mod prewalk;
pub mod response;
pub mod sasl;
mod shutdown;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use crate::broker::Broker;
use crate::config::SecurityProtocol;
pub use shutdown::Shutdown;

/// A bound client listener and what it speaks.
pub struct Listener {
    pub socket: TcpListener,
    /// Its name in `listeners` (for logs).
    pub name: String,
    pub protocol: SecurityProtocol,
}

/// Accepts connections on every listener until `shutdown` completes, then waits for every
/// connection to finish its in-flight request. One task per connection; at most `max_connections`
/// at once across all listeners (further clients wait in the kernel's accept backlog, as with
/// Kafka's `max.connections`), and at most `max_connections_per_ip` from one address (see
/// `limits`). A failing `accept` (out of descriptors) is retried with back-off (see `accept`).
/// Each listener authenticates and encrypts as its protocol says: SSL and SASL_SSL with the `[tls]`
/// certificate, SASL_PLAINTEXT and SASL_SSL with the `[sasl]` mechanisms.
/// Fails only when a listener's SASL or TLS setup, checked at start-up, cannot be built now.
pub async fn run(
    listeners: Vec<Listener>,
    broker: Arc<Broker>,
    shutdown: impl Future,
) -> Result<(), String> {
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let max_connections = broker.config.max_connections;
    let free = Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS)));
    let per_ip = limits::PerIp::default();
    let queued = broker.config.limits.queued_max_request_bytes;
    let request_pool = Arc::new(Semaphore::new(queued as usize));
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
    let mut accepting = JoinSet::new();
    for listener in listeners {
        let auth = if listener.protocol.uses_sasl() {
            match &auth {
                Some(a) => Some(a.clone()),
                None => return Err(missing(&listener, "no SASL mechanism is enabled")),
            }
        } else {
            None
        };
        let tls = if listener.protocol.uses_tls() {
            match &tls {
                Some(t) => Some(t.clone()),
                None => return Err(missing(&listener, "no TLS certificate is configured")),
            }
        } else {
            None
        };
        let ctx = AcceptContext {
            broker: broker.clone(),
            slots: accept::Slots::shared(free.clone(), max_connections),
            per_ip: per_ip.clone(),
            request_pool: (request_pool.clone(), queued),
            auth,
            tls,
            listener_name: Arc::from(listener.name.as_str()),
            notify_shutdown: notify_shutdown.clone(),
            done: done_tx.clone(),
        };
        accepting.spawn(accept_loop(listener.socket, ctx));
    }

    tokio::select! {
        _ = accepting.join_next() => error!("accept loop ended"),
        _ = shutdown => info!("shutting down: no longer accepting connections"),
    }
    // The accept loops hold shutdown and done senders: stop them before waiting on those.
    accepting.abort_all();
    while accepting.join_next().await.is_some() {}
    drop(notify_shutdown);
    drop(done_tx);
    // Every connection task holds a sender; recv returns None once all have finished.
    let _ = done_rx.recv().await;
    Ok(())
}

fn missing(listener: &Listener, what: &str) -> String {
    let e = format!(
        "listener {} is {} but {what}; not accepting connections",
        listener.name, listener.protocol
    );
    error!(listener = %listener.name, "{e}");
    e
}

/// What one listener's accept loop shares with the others.
struct AcceptContext {
    broker: Arc<Broker>,
    slots: accept::Slots,
    per_ip: limits::PerIp,
    request_pool: (Arc<Semaphore>, u32),
    auth: Option<Arc<sasl::Authenticator>>,
    tls: Option<TlsAcceptor>,
    listener_name: Arc<str>,
    notify_shutdown: broadcast::Sender<()>,
    done: mpsc::Sender<()>,
}

/// Accepts on one listener until aborted, one task per connection.
async fn accept_loop(listener: TcpListener, mut ctx: AcceptContext) {
    let mut backoff = accept::Backoff::default();
    let max_per_ip = ctx.broker.config.limits.max_connections_per_ip;
    let handshake_timeout = ctx.broker.config.limits.frame_read_timeout();
    loop {
        let Some(permit) = ctx.slots.acquire().await else {
            return;
        };
        let (stream, peer) = loop {
            match ctx.slots.accept(&listener).await {
                Ok(accepted) => {
                    backoff.succeeded();
                    break accepted;
                }
                Err(e) => backoff.failed(&e).await,
            }
        };
        // `max.connections.per.ip`: Kafka closes the new connection at once.
        let Some(ip_slot) = ctx.per_ip.try_acquire(peer.ip(), max_per_ip) else {
            warn!(%peer, max_per_ip, "closing connection: too many connections from this address");
            drop(stream);
            continue;
        };
        let broker = ctx.broker.clone();
        let shutdown = Shutdown::new(ctx.notify_shutdown.subscribe());
        let done = ctx.done.clone();
        let pool = ctx.request_pool.clone();
        let session = Arc::new(sasl::Session::on_listener(
            ctx.auth.clone(),
            ctx.listener_name.clone(),
        ));
        let tls = ctx.tls.clone();
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            match tls {
                None => {
                    let halves = stream.into_split();
                    connection::serve(halves, peer, broker, session, shutdown, pool).await;
                }
                // The handshake is bounded like a request frame (slowloris).
                Some(tls) => {
                    match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let halves = tokio::io::split(stream);
                            connection::serve(halves, peer, broker, session, shutdown, pool).await;
                        }
                        Ok(Err(e)) => {
                            info!(%peer, error = %e, "closing connection: TLS handshake failed")
                        }
                        Err(_) => info!(%peer, "closing connection: TLS handshake timed out"),
                    }
                }
            }
            drop(ip_slot);
            drop(permit);
            drop(done);
        });
    }
}
