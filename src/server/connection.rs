//! One client connection: read frames, answer each in request order, flush when the pipeline drains.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::dispatch::{dispatch, Outcome};
use super::frame::{FrameError, FrameReader};
use super::sasl::Session;
use super::shutdown::Shutdown;
use crate::broker::Broker;

/// Serves one connection until the client leaves, a protocol error closes it, or the broker shuts down.
/// Requests are handled one at a time, in order, as Kafka does: a pipelining client (librdkafka sends
/// many produce requests without waiting) gets its responses in request order and its appends in
/// send order. Only one request is handled at a time and nothing more is read meanwhile, so a
/// pipelining client is held back by TCP instead of growing a queue here (see `super::limits`).
/// `read_half` and `write_half` are the two directions of a TCP or TLS stream.
pub async fn serve<R, W>(
    (read_half, write_half): (R, W),
    peer: SocketAddr,
    broker: Arc<Broker>,
    session: Arc<Session>,
    mut shutdown: Shutdown,
    request_pool: (Arc<Semaphore>, u32),
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = &broker.config.limits;
    let idle = limits.idle();
    let mut reader = FrameReader::new(read_half, broker.config.socket_request_max_bytes)
        .with_timeouts(idle, limits.frame_read_timeout())
        .with_memory_pool(request_pool.0, request_pool.1);
    let mut writer = BufWriter::with_capacity(256 * 1024, write_half);
    debug!(%peer, "connection opened");
    loop {
        let frame = tokio::select! {
            frame = reader.read_frame() => frame,
            _ = shutdown.recv() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                debug!(%peer, error = %e, "connection read failed");
                break;
            }
            Err(e @ FrameError::Idle(_)) => {
                debug!(%peer, error = %e, "closing idle connection");
                break;
            }
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        let (response, close_after) = match dispatch(&broker, &session, peer, frame.freeze()).await
        {
            Outcome::Respond(bytes) => (Some(bytes), false),
            Outcome::RespondAndClose(bytes) => (Some(bytes), true),
            Outcome::NoResponse => (None, false),
            Outcome::Close(reason) => {
                info!(%peer, %reason, "closing connection");
                break;
            }
        };
        if let Some(frame) = response {
            // A client that never reads its responses must not hold the connection forever.
            let write = async {
                // Chunks past the buffer's capacity (record batches) go to the socket directly.
                for chunk in frame.chunks() {
                    writer.write_all(chunk).await?;
                }
                Ok::<(), std::io::Error>(())
            };
            match tokio::time::timeout(idle, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "connection write failed");
                    break;
                }
                Err(_) => {
                    warn!(%peer, "closing connection: client has not read its responses for connections.max.idle.ms");
                    break;
                }
            }
        }
        if close_after {
            let delay = broker.config.sasl.connection_failed_authentication_delay_ms;
            info!(%peer, delay_ms = delay, "closing connection after a refused SASL authentication");
            let _ = tokio::time::timeout(idle, writer.flush()).await;
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            break;
        }
        // Batch responses to pipelined requests into one write; flush once nothing more is waiting.
        if !reader.has_buffered_frame() {
            match tokio::time::timeout(idle, writer.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "connection flush failed");
                    break;
                }
                Err(_) => {
                    warn!(%peer, "closing connection: client has not read its responses for connections.max.idle.ms");
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(idle, async {
        let _ = writer.flush().await;
        let _ = writer.shutdown().await;
    })
    .await;
    debug!(%peer, "connection closed");
}
