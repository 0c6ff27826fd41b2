//! The openraft client side of the metadata port: `NetworkFactory` / `PeerClient` send
//! AppendEntries, Vote and chunked InstallSnapshot (openraft's default `full_snapshot`) to one
//! peer over a reconnecting TCP stream (frames in `wire.rs`; the server is `server.rs`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Infallible, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::net::TcpStream;

use super::durable::MAX_RECORD_LEN;
use super::identity::Identity;
use super::types::{Node, NodeId, TypeConfig};
use super::wire::{
    dial, read_frame, write_frame, Request as RaftRequest, Response as RaftResponse,
};

/// Creates one `PeerClient` per target; the address comes from the membership's `BasicNode`,
/// so adding voters is a membership change, not a code change.
#[derive(Clone)]
pub struct NetworkFactory {
    /// How this node introduces itself, and the IP outgoing connections are bound to.
    pub(super) identity: Arc<Identity>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            identity: self.identity.clone(),
            conn: None,
        }
    }
}

/// A connection to one peer, (re)established lazily; RPCs on it are sequential.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    identity: Arc<Identity>,
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
                dial(&self.identity, &self.addr, Some(self.target))
                    .await
                    .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?
                    .0
            }
        };
        let exchange = async {
            write_frame(&mut stream, &req).await?;
            read_frame::<RaftResponse>(&mut stream, MAX_RECORD_LEN)
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
