//! One client connection: read frames, answer each in request order, flush when the pipeline drains.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::dispatch::{dispatch, Outcome};
use super::frame::{FrameError, FrameReader};
use super::shutdown::Shutdown;
use crate::broker::Broker;

/// Serves one connection until the client leaves, a protocol error closes it, or the broker shuts down.
/// Requests are handled one at a time, in order, as Kafka does: a pipelining client (librdkafka sends
/// many produce requests without waiting) gets its responses in request order and its appends in
/// send order.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let mut reader = FrameReader::new(read_half, broker.config.socket_request_max_bytes);
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
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        match dispatch(&broker, peer, frame.freeze()).await {
            Outcome::Respond(bytes) => {
                if let Err(e) = writer.write_all(&bytes).await {
                    debug!(%peer, error = %e, "connection write failed");
                    break;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                info!(%peer, %reason, "closing connection");
                break;
            }
        }
        // Batch responses to pipelined requests into one write; flush once nothing more is waiting.
        if !reader.has_buffered_frame() {
            if let Err(e) = writer.flush().await {
                debug!(%peer, error = %e, "connection flush failed");
                break;
            }
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    debug!(%peer, "connection closed");
}
