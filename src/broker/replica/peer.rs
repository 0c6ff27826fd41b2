//! A follower's connection to a leader's inter-broker listener: Kafka frames out (from this node's own
//! address, so tests can cut links by address pair) and Fetch responses back.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{lookup_host, TcpSocket, TcpStream};

/// Fetch v15 carries the replica id and broker epoch in ReplicaState (KIP-903) and topic ids.
pub const FETCH_VERSION: i16 = 15;
/// A response frame larger than this is refused (the request asks for far less).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot reach the leader: {0}")]
    Io(#[from] io::Error),
    #[error("leader {0} has no endpoint in the metadata image")]
    NoEndpoint(i32),
    #[error("no answer from the leader within {0:?}")]
    Timeout(Duration),
    #[error("bad frame from the leader: {0}")]
    Protocol(String),
    #[error("the leader refused the fetch: error code {0}")]
    Refused(i16),
}

pub struct PeerConnection {
    stream: TcpStream,
    correlation: i32,
    client_id: StrBytes,
}

impl PeerConnection {
    /// Connects to `host:port`, binding the outgoing socket to `bind_ip` when given.
    pub async fn connect(
        host: &str,
        port: i32,
        bind_ip: Option<IpAddr>,
        node_id: i32,
    ) -> Result<Self, PeerError> {
        let port = u16::try_from(port)
            .map_err(|_| PeerError::Protocol(format!("leader port {port} out of range")))?;
        let peer = lookup_host((host, port)).await?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))
        })?;
        let socket = match peer {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = bind_ip.filter(|ip| ip.is_ipv4() == peer.is_ipv4()) {
            // A port picked here may be one a restarting node is about to listen on again.
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(peer).await?;
        // A connect to a loopback port nobody listens on can pick that very port (a self-connect).
        if stream.local_addr()? == stream.peer_addr()? {
            return Err(
                io::Error::new(io::ErrorKind::ConnectionRefused, "connected to itself").into(),
            );
        }
        let _ = stream.set_nodelay(true);
        Ok(PeerConnection {
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(format!("vltava-replica-fetcher-{node_id}")),
        })
    }

    /// Sends one Fetch and waits for its answer, at most `timeout`.
    pub async fn fetch(
        &mut self,
        request: &FetchRequest,
        timeout: Duration,
    ) -> Result<FetchResponse, PeerError> {
        tokio::time::timeout(timeout, self.round_trip(request))
            .await
            .map_err(|_| PeerError::Timeout(timeout))?
    }

    async fn round_trip(&mut self, request: &FetchRequest) -> Result<FetchResponse, PeerError> {
        let key = ApiKey::Fetch;
        let v = FETCH_VERSION;
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        let encode = |e: anyhow::Error| PeerError::Protocol(format!("cannot encode Fetch: {e}"));
        header
            .encode(&mut buf, key.request_header_version(v))
            .map_err(encode)?;
        request.encode(&mut buf, v).map_err(encode)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).await?;

        let len = self.stream.read_i32().await?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| PeerError::Protocol(format!("response length {len}")))?;
        let mut body = BytesMut::zeroed(len);
        self.stream.read_exact(&mut body).await?;
        let mut body = body.freeze();
        let decode =
            |e: anyhow::Error| PeerError::Protocol(format!("cannot decode Fetch response: {e}"));
        let header =
            ResponseHeader::decode(&mut body, key.response_header_version(v)).map_err(decode)?;
        if header.correlation_id != self.correlation {
            return Err(PeerError::Protocol(format!(
                "correlation id {} answers request {}",
                header.correlation_id, self.correlation
            )));
        }
        FetchResponse::decode(&mut body, v).map_err(decode)
    }
}
