//! The controller side of the metadata port: what other nodes ask the Raft leader (a metadata
//! write forwarded as KIP-590's envelope does), the answers, the error form they travel in, and
//! how the leader executes them locally.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::error::ClusterError;
use super::heartbeat::{BrokerHeartbeat, HeartbeatReply, Liveness};
use super::image::{CommandResult, MetadataCommand, MetadataImage};
use super::instance::{fatal_error, stopped};
use super::types::{Node, NodeId, RaftInstance};

/// A request only the controller (the Raft leader) can answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum ControllerRequest {
    /// Commit a metadata command and answer its result.
    Write(MetadataCommand),
    /// Add a broker-only node as a non-voting learner at its Raft address.
    AddLearner { node_id: NodeId, addr: String },
    /// A broker's heartbeat, answered from the controller's memory.
    Heartbeat(BrokerHeartbeat),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum ControllerReply {
    /// The command's result and the Raft log index it was committed at.
    Written {
        result: CommandResult,
        index: u64,
    },
    LearnerAdded,
    Heartbeat(HeartbeatReply),
}

/// A `ClusterError` as it crosses the wire (I/O errors travel as text).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum WireError {
    NotLeader(Option<NodeId>),
    Timeout(String),
    StaleBrokerEpoch(String),
    StorageUnavailable(String),
    Other(String),
}

impl From<ClusterError> for WireError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::NotLeader { leader } => WireError::NotLeader(leader),
            ClusterError::Timeout(s) => WireError::Timeout(s),
            ClusterError::StaleBrokerEpoch(s) => WireError::StaleBrokerEpoch(s),
            ClusterError::StorageUnavailable(s) => WireError::StorageUnavailable(s),
            other => WireError::Other(other.to_string()),
        }
    }
}

impl From<WireError> for ClusterError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotLeader(leader) => ClusterError::NotLeader { leader },
            WireError::Timeout(s) => ClusterError::Timeout(s),
            WireError::StaleBrokerEpoch(s) => ClusterError::StaleBrokerEpoch(s),
            WireError::StorageUnavailable(s) => ClusterError::StorageUnavailable(s),
            WireError::Other(s) => ClusterError::Raft(s),
        }
    }
}

/// Executes controller requests on this node; shared by the local write path and the server.
pub(super) struct Controller {
    /// The applied image, which heartbeats are judged against.
    pub(super) images: watch::Receiver<Arc<MetadataImage>>,
    /// When each broker last heartbeated (this node's memory, while it leads).
    pub(super) liveness: Liveness,
    /// The Raft instance in use (replaced when the store restarts Raft).
    pub(super) raft: watch::Receiver<RaftInstance>,
}

impl Controller {
    /// Answers `req` as the leader, within `timeout`; `NotLeader` when this node is not the
    /// leader (nothing was done, so the caller may send it elsewhere).
    pub(super) async fn handle(
        &self,
        req: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, ClusterError> {
        let raft = self.raft.borrow().clone();
        if let Some(e) = stopped(&raft) {
            return Err(e);
        }
        match req {
            ControllerRequest::Write(cmd) => local_write(&raft, cmd, timeout)
                .await
                .map(|(result, index)| ControllerReply::Written { result, index }),
            ControllerRequest::AddLearner { node_id, addr } => {
                add_learner(&raft, node_id, addr, timeout).await?;
                Ok(ControllerReply::LearnerAdded)
            }
            ControllerRequest::Heartbeat(hb) => self
                .answer_heartbeat(hb, timeout)
                .await
                .map(ControllerReply::Heartbeat),
        }
    }
}

/// Proposes `cmd` on the local Raft and waits until it is applied.
pub(super) async fn local_write(
    raft: &RaftInstance,
    cmd: MetadataCommand,
    timeout: Duration,
) -> Result<(CommandResult, u64), ClusterError> {
    match tokio::time::timeout(timeout, raft.client_write(cmd)).await {
        Err(_) => Err(ClusterError::Timeout(format!(
            "metadata write not committed within {timeout:?}"
        ))),
        Ok(Ok(resp)) => Ok((resp.data, resp.log_id.index)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            Err(ClusterError::NotLeader {
                leader: f.leader_id,
            })
        }
        Ok(Err(RaftError::Fatal(f))) => Err(fatal_error(&f)),
        Ok(Err(e)) => Err(ClusterError::Raft(e.to_string())),
    }
}

/// Adds `node_id` as a learner; a voter's id is refused (a duplicate node id).
async fn add_learner(
    raft: &RaftInstance,
    node_id: NodeId,
    addr: String,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(metrics.id) {
        return Err(ClusterError::NotLeader {
            leader: metrics.current_leader,
        });
    }
    let membership = metrics.membership_config.membership();
    if membership.voter_ids().any(|v| v == node_id) {
        return Err(ClusterError::InvalidConfig(format!(
            "node id {node_id} belongs to a voter; a learner needs an id of its own"
        )));
    }
    if membership.get_node(&node_id).map(|n| n.addr.as_str()) == Some(addr.as_str()) {
        return Ok(());
    }
    tracing::info!(node_id, %addr, "adding a broker-only node as a metadata learner");
    let added = tokio::time::timeout(timeout, raft.add_learner(node_id, Node::new(addr), false));
    match added.await {
        Err(_) => Err(ClusterError::Timeout(format!(
            "adding learner {node_id} not committed within {timeout:?}"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            Err(ClusterError::NotLeader {
                leader: f.leader_id,
            })
        }
        Ok(Err(RaftError::Fatal(f))) => Err(fatal_error(&f)),
        Ok(Err(e)) => Err(ClusterError::Raft(e.to_string())),
    }
}
