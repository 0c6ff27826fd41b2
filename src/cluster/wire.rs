//! The metadata port's wire format: length-prefixed (u32 BE) serde_json frames, the requests and
//! responses they carry (openraft RPCs and controller requests), and dialing a peer: from this
//! node's own address, with the hello frames exchanged before any request.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{lookup_host, TcpSocket, TcpStream};

use super::controller::{ControllerReply, ControllerRequest, WireError};
use super::durable::MAX_RECORD_LEN;
use super::identity::{HelloReply, Identity};
use super::types::{NodeId, TypeConfig};

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The hello is read with this cap, so a stranger's garbage can't make us allocate much.
pub(super) const MAX_HELLO_LEN: usize = 4096;

#[derive(Serialize, Deserialize)]
pub(super) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A request for the controller (the Raft leader), answered once done or after `timeout_ms`.
    Controller {
        req: ControllerRequest,
        timeout_ms: u64,
    },
}

#[derive(Serialize, Deserialize)]
pub(super) enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Controller(Result<ControllerReply, WireError>),
}

pub(super) async fn write_frame<T: Serialize>(stream: &mut TcpStream, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if body.len() > MAX_RECORD_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "raft frame too large",
        ));
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(&buf).await?;
    stream.flush().await
}

/// Read one frame of at most `max` bytes; `Ok(None)` on a clean EOF before the frame starts.
pub(super) async fn read_frame<T: for<'de> Deserialize<'de>>(
    stream: &mut TcpStream,
    max: usize,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Connects to `addr` from this node's own address (so links can be cut by address pair) and
/// introduces both sides; `target` is the node id expected there (`None`: any member, as when a
/// learner tries the voters). Returns the stream and the peer's node id.
pub(super) async fn dial(
    identity: &Identity,
    addr: &str,
    target: Option<NodeId>,
) -> io::Result<(TcpStream, NodeId)> {
    let connect = async {
        let peer = resolve(addr).await?;
        let socket = match peer {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = identity.bind_ip {
            if ip.is_ipv4() == peer.is_ipv4() {
                // bind() picks the port before knowing the peer, and may take one a restarting
                // node is about to listen on again: let that listener still bind it.
                socket.set_reuseaddr(true)?;
                socket.bind(SocketAddr::new(ip, 0))?;
            }
        }
        let mut stream = socket.connect(peer).await?;
        // Connecting to a loopback port nobody listens on can pick that very port as the source
        // (a TCP self-connect): we would read back our own frames.
        if stream.local_addr()? == stream.peer_addr()? {
            return Err(refused(format!(
                "{addr}: connected to itself (nothing listens there)"
            )));
        }
        // Raft RPCs are small and latency-sensitive.
        let _ = stream.set_nodelay(true);
        write_frame(&mut stream, &identity.hello()).await?;
        let reply: HelloReply = read_frame(&mut stream, MAX_HELLO_LEN)
            .await?
            .ok_or_else(|| refused(format!("{addr} closed the connection at the hello")))?;
        let theirs = match reply {
            HelloReply::Welcome(h) => h,
            HelloReply::Refused(why) => return Err(refused(format!("{addr} refused us: {why}"))),
        };
        if let Some(t) = target.filter(|t| *t != theirs.node_id) {
            return Err(refused(format!(
                "{addr} is node {} where node {t} was expected",
                theirs.node_id
            )));
        }
        identity
            .check_cluster(&theirs)
            .map_err(|why| refused(format!("{addr}: {why}")))?;
        Ok((stream, theirs.node_id))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::TimedOut, e))?
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, why)
}

async fn resolve(addr: &str) -> io::Result<SocketAddr> {
    lookup_host(addr).await?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{addr} resolves to no address"),
        )
    })
}

/// The IP a configured address names literally (`None` for a host name).
pub(super) fn literal_ip(addr: &str) -> Option<IpAddr> {
    addr.parse::<SocketAddr>().ok().map(|a| a.ip())
}
