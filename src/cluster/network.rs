//! Raft RPC over plain TCP: length-prefixed (u32 BE) serde_json frames. `NetworkFactory` /
//! `PeerClient` are the openraft client side; `serve_raft` answers RPCs for a local `Raft`.
//!
//! Snapshots use openraft's chunked `install_snapshot` (the default `full_snapshot`), so the
//! wire protocol is just three request kinds.

use std::io;
use std::time::Duration;

use openraft::error::{
    Infallible, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::durable::MAX_RECORD_LEN;
use super::types::{Node, NodeId, RaftInstance, TypeConfig};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

#[derive(Serialize, Deserialize)]
enum RaftResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
}

async fn write_frame<T: Serialize>(stream: &mut TcpStream, msg: &T) -> io::Result<()> {
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

/// Read one frame; `Ok(None)` on a clean EOF before the frame starts.
async fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut TcpStream) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_RECORD_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "raft frame too large",
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Creates one `PeerClient` per target; the address comes from the membership's `BasicNode`,
/// so adding voters is a membership change, not a code change.
#[derive(Clone, Default)]
pub struct NetworkFactory;

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

/// A connection to one peer, (re)established lazily; RPCs on it are sequential.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    conn: Option<TcpStream>,
}

type RpcErr<E> = RPCError<NodeId, Node, RaftError<NodeId, E>>;

// The (large) error type is dictated by the `RaftNetwork` trait, so boxing is not an option.
#[allow(clippy::result_large_err)]
impl PeerClient {
    async fn call<E: std::error::Error>(
        &mut self,
        req: RaftRequest,
        ttl: Duration,
    ) -> Result<RaftResponse, RpcErr<E>> {
        let mut stream = match self.conn.take() {
            Some(s) => s,
            None => {
                let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
                    .await
                    .map_err(|e| {
                        RPCError::Unreachable(Unreachable::new(&io::Error::new(
                            io::ErrorKind::TimedOut,
                            e,
                        )))
                    })?
                    .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
                // Raft RPCs are small and latency-sensitive.
                let _ = s.set_nodelay(true);
                s
            }
        };
        let exchange = async {
            write_frame(&mut stream, &req).await?;
            read_frame::<RaftResponse>(&mut stream)
                .await?
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the connection")
                })
        };
        let resp = match tokio::time::timeout(ttl, exchange).await {
            Ok(Ok(resp)) => resp,
            // On any failure the stream may hold half a frame: drop it, reconnect next time.
            Ok(Err(e)) => return Err(RPCError::Network(NetworkError::new(&e))),
            Err(e) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, e);
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        };
        self.conn = Some(stream);
        Ok(resp)
    }

    fn unexpected<E: std::error::Error>(&self) -> RpcErr<E> {
        let e = io::Error::new(io::ErrorKind::InvalidData, "mismatched raft response kind");
        RPCError::Network(NetworkError::new(&e))
    }

    fn remote<T, E: std::error::Error>(
        &self,
        r: Result<T, RaftError<NodeId, E>>,
    ) -> Result<T, RpcErr<E>> {
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<Infallible>> {
        match self
            .call(RaftRequest::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            RaftResponse::AppendEntries(r) => self.remote(r),
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self
            .call(RaftRequest::InstallSnapshot(rpc), option.hard_ttl())
            .await?
        {
            RaftResponse::InstallSnapshot(r) => self.remote(r),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<Infallible>> {
        match self.call(RaftRequest::Vote(rpc), option.hard_ttl()).await? {
            RaftResponse::Vote(r) => self.remote(r),
            _ => Err(self.unexpected()),
        }
    }
}

/// Answer Raft RPCs arriving on `listener` until the task is dropped/aborted (aborting it also
/// aborts its per-connection tasks, which live in a `JoinSet`). Each RPC goes to the Raft
/// instance `raft` holds at the time: the `MetadataStore` replaces it when it restarts Raft.
pub async fn serve_raft(listener: TcpListener, raft: watch::Receiver<RaftInstance>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let raft = raft.clone();
                    conns.spawn(async move {
                        if let Err(e) = serve_conn(stream, raft).await {
                            tracing::debug!(%peer, error = %e, "raft connection closed");
                        }
                    });
                }
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "raft accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_conn(
    mut stream: TcpStream,
    current: watch::Receiver<RaftInstance>,
) -> io::Result<()> {
    while let Some(req) = read_frame::<RaftRequest>(&mut stream).await? {
        let raft = current.borrow().clone();
        let resp = match req {
            RaftRequest::AppendEntries(r) => {
                RaftResponse::AppendEntries(raft.append_entries(r).await)
            }
            RaftRequest::Vote(r) => RaftResponse::Vote(raft.vote(r).await),
            RaftRequest::InstallSnapshot(r) => {
                RaftResponse::InstallSnapshot(raft.install_snapshot(r).await)
            }
        };
        write_frame(&mut stream, &resp).await?;
    }
    Ok(())
}
